//! Parsing a connector's OpenPGP public key at setup: it must be able to encrypt.
