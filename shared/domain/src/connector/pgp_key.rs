//! Parsing a connector's OpenPGP public key at setup: it must be able to encrypt.
//!
//! Setup (`check`) and the export's encryptor (`encryption_keys`) read a key by the same rules,
//! so a key accepted here is one the export can encrypt to (docs/architecture.md, "Export").
//!
//! A key can encrypt through its subkeys, or through the primary key when its self-signature
//! flags it for encryption (old single-key RSA keys). A component counts when its newest
//! self-signature verifies, its key flags allow encryption (no flags at all: its algorithm
//! decides), it is not revoked and has not expired. A revoked or expired primary key makes
//! every component unusable.

use chrono::{DateTime, Utc};
use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey, SignedSecretKey};
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag, Timestamp};

/// Why a pasted key cannot be used. Each message completes "export.pgp_public_key …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error(
        "must be an ASCII-armored OpenPGP public key (-----BEGIN PGP PUBLIC KEY BLOCK----- … -----END PGP PUBLIC KEY BLOCK-----)"
    )]
    NotArmoredPublicKey,
    #[error(
        "is a PRIVATE key: never share it; revoke it if it was exposed, and paste the PUBLIC key block (gpg --armor --export <key id>)"
    )]
    PrivateKey,
    #[error(
        "could not be read as an OpenPGP public key ({0}): paste the whole block exactly as exported (gpg --armor --export <key id>)"
    )]
    Unparsable(String),
    #[error("is revoked: paste a key that is not revoked")]
    Revoked,
    #[error(
        "has expired (primary key): extend its expiry (gpg --quick-set-expire <fingerprint> 2y) and paste it again"
    )]
    Expired,
    #[error(
        "has no key that can encrypt (it can only sign or certify): add an encryption subkey (gpg --quick-add-key <fingerprint> cv25519 encr) and paste the key again"
    )]
    NoEncryptionKey,
    #[error(
        "has no usable encryption key: every encryption (sub)key is expired or revoked; extend its expiry (gpg --quick-set-expire <fingerprint> 2y '*') or add a new encryption subkey, then paste the key again"
    )]
    EncryptionKeysExpiredOrRevoked,
}

/// One component of the key that the export encrypts the session key to.
#[derive(Debug, Clone, Copy)]
pub enum EncryptionKey<'a> {
    Primary(&'a PublicKey),
    Subkey(&'a PublicSubkey),
}

/// The setup check: the key parses as a public key and has at least one usable encryption
/// (sub)key now. The error is the rule, for the API's 400.
pub fn check(armored: &str) -> Result<(), String> {
    check_at(armored, Utc::now()).map_err(|refusal| refusal.to_string())
}

/// [`check`] at a given time.
pub fn check_at(armored: &str, now: DateTime<Utc>) -> Result<(), KeyRefusal> {
    let key = parse(armored)?;
    encryption_keys(&key, now).map(|_| ())
}

/// Reads an armored public key block (one certificate).
pub fn parse(armored: &str) -> Result<SignedPublicKey, KeyRefusal> {
    let armored = armored.trim();
    if armored.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Err(KeyRefusal::PrivateKey);
    }
    if !armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        return Err(KeyRefusal::NotArmoredPublicKey);
    }
    match SignedPublicKey::from_string(armored) {
        Ok((key, _headers)) => Ok(key),
        Err(error) => {
            // Secret key packets inside a block relabelled as public.
            if SignedSecretKey::from_string(
                &armored.replace("PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK"),
            )
            .is_ok()
            {
                return Err(KeyRefusal::PrivateKey);
            }
            Err(KeyRefusal::Unparsable(error.to_string()))
        }
    }
}

/// The key's components usable for encryption at `now`, primary first.
pub fn encryption_keys(
    key: &SignedPublicKey,
    now: DateTime<Utc>,
) -> Result<Vec<EncryptionKey<'_>>, KeyRefusal> {
    let now = Timestamp::from_secs(u32::try_from(now.timestamp().max(0)).unwrap_or(u32::MAX));
    let primary = &key.primary_key;
    if key.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    }) {
        return Err(KeyRefusal::Revoked);
    }
    let primary_self_signature = newest_primary_self_signature(key);
    if let Some(sig) = primary_self_signature
        && has_expired(primary.created_at(), sig, now)
    {
        return Err(KeyRefusal::Expired);
    }

    let mut any_capable = false;
    let mut usable = Vec::new();
    if let Some(sig) = primary_self_signature
        && flags_allow_encryption(sig, primary.algorithm())
        && primary.algorithm().can_encrypt()
    {
        any_capable = true;
        usable.push(EncryptionKey::Primary(primary));
    }
    for subkey in &key.public_subkeys {
        let Some(binding) = newest_binding(primary, subkey) else {
            continue;
        };
        if !(subkey.key.algorithm().can_encrypt()
            && flags_allow_encryption(binding, subkey.key.algorithm()))
        {
            continue;
        }
        any_capable = true;
        let revoked = subkey.signatures.iter().any(|sig| {
            sig.typ() == Some(SignatureType::SubkeyRevocation)
                && sig.verify_subkey_binding(primary, &subkey.key).is_ok()
        });
        if !revoked && !has_expired(subkey.key.created_at(), binding, now) {
            usable.push(EncryptionKey::Subkey(&subkey.key));
        }
    }
    match (usable.is_empty(), any_capable) {
        (false, _) => Ok(usable),
        (true, true) => Err(KeyRefusal::EncryptionKeysExpiredOrRevoked),
        (true, false) => Err(KeyRefusal::NoEncryptionKey),
    }
}

/// The newest verifying direct-key or user ID self-signature: it carries the primary key's
/// flags and expiry.
fn newest_primary_self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    let primary = &key.primary_key;
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|sig| sig.verify_key(primary).is_ok());
    let user_ids = key.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |sig| {
            sig.verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
        })
    });
    direct
        .chain(user_ids)
        .filter(|sig| sig.typ() != Some(SignatureType::CertRevocation))
        .max_by_key(|sig| sig.created().map(Timestamp::as_secs))
}

fn newest_binding<'a>(
    primary: &PublicKey,
    subkey: &'a SignedPublicSubKey,
) -> Option<&'a Signature> {
    subkey
        .signatures
        .iter()
        .filter(|sig| sig.typ() == Some(SignatureType::SubkeyBinding))
        .filter(|sig| sig.verify_subkey_binding(primary, &subkey.key).is_ok())
        .max_by_key(|sig| sig.created().map(Timestamp::as_secs))
}

/// Key flags say what a component is for; a signature without any flags leaves it to the
/// algorithm (keys made before key flags existed).
fn flags_allow_encryption(
    sig: &Signature,
    algorithm: pgp::crypto::public_key::PublicKeyAlgorithm,
) -> bool {
    let flags = sig.key_flags();
    let any_flag = flags.certify()
        || flags.sign()
        || flags.encrypt_comms()
        || flags.encrypt_storage()
        || flags.authentication();
    if any_flag {
        flags.encrypt_comms() || flags.encrypt_storage()
    } else {
        algorithm.can_encrypt()
    }
}

/// A key expiration time counts from the key's creation; zero or absent means never.
fn has_expired(created: Timestamp, sig: &Signature, now: Timestamp) -> bool {
    match sig.key_expiration_time().map(|d| d.as_secs()) {
        None | Some(0) => false,
        Some(valid_for) => {
            u64::from(created.as_secs()) + u64::from(valid_for) <= u64::from(now.as_secs())
        }
    }
}

#[cfg(test)]
mod tests;
