//! OpenPGP encryption to the connector's public key over a ByteSink.
