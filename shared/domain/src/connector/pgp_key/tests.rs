use chrono::TimeZone;

use super::*;
use crate::testing::{PGP_PUBLIC_KEY, PGP_SECRET_KEY};

const SIGN_ONLY: &str = include_str!("../../testdata/pgp_sign_only.asc");
/// Made on 2020-01-01 with an encryption subkey valid for one day.
const EXPIRED_SUBKEY: &str = include_str!("../../testdata/pgp_expired_subkey.asc");
/// A key revocation certificate imported into the key.
const REVOKED: &str = include_str!("../../testdata/pgp_revoked.asc");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap()
}

#[test]
fn a_key_with_a_live_encryption_subkey_is_accepted() {
    let cases = [
        ("as exported", PGP_PUBLIC_KEY.to_owned()),
        (
            "surrounding blank lines",
            format!("\n\n{PGP_PUBLIC_KEY}\n  \n"),
        ),
        ("CRLF line ends", PGP_PUBLIC_KEY.replace('\n', "\r\n")),
    ];
    for (name, armored) in cases {
        assert_eq!(check_at(&armored, now()), Ok(()), "{name}");
    }
    assert_eq!(check(PGP_PUBLIC_KEY), Ok(()));
}

#[test]
fn the_usable_keys_are_the_encryption_subkeys() {
    let key = parse(PGP_PUBLIC_KEY).unwrap();
    let keys = encryption_keys(&key, now()).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(matches!(keys[0], EncryptionKey::Subkey(_)), "{keys:?}");
}

#[test]
fn unusable_keys_are_refused_naming_the_rule() {
    let truncated = {
        let lines: Vec<&str> = PGP_PUBLIC_KEY.lines().collect();
        let mut kept = lines[..3].to_vec();
        kept.push(lines[lines.len() - 1]);
        kept.join("\n")
    };
    let cases: [(&str, String, KeyRefusal, &str); 9] = [
        ("empty", String::new(), KeyRefusal::NotArmoredPublicKey, "ASCII-armored"),
        (
            "plain text",
            "ssh-ed25519 AAAAC3Nza me@host".into(),
            KeyRefusal::NotArmoredPublicKey,
            "ASCII-armored",
        ),
        (
            "a private key block",
            PGP_SECRET_KEY.into(),
            KeyRefusal::PrivateKey,
            "PUBLIC key block",
        ),
        (
            "secret packets relabelled as public",
            PGP_SECRET_KEY.replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK"),
            KeyRefusal::PrivateKey,
            "PRIVATE key",
        ),
        (
            "garbage inside the armor",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBFexample\n-----END PGP PUBLIC KEY BLOCK-----"
                .into(),
            KeyRefusal::Unparsable(String::new()),
            "could not be read",
        ),
        (
            "truncated",
            truncated,
            KeyRefusal::Unparsable(String::new()),
            "whole block",
        ),
        ("signing only", SIGN_ONLY.into(), KeyRefusal::NoEncryptionKey, "encryption subkey"),
        (
            "encryption subkey expired",
            EXPIRED_SUBKEY.into(),
            KeyRefusal::EncryptionKeysExpiredOrRevoked,
            "expired or revoked",
        ),
        ("revoked", REVOKED.into(), KeyRefusal::Revoked, "revoked"),
    ];
    for (name, armored, expected, phrase) in cases {
        let refusal = check_at(&armored, now()).expect_err(name);
        match (&refusal, &expected) {
            (KeyRefusal::Unparsable(_), KeyRefusal::Unparsable(_)) => {}
            _ => assert_eq!(refusal, expected, "{name}"),
        }
        let message = refusal.to_string();
        assert!(message.contains(phrase), "{name}: {message}");
    }
}

#[test]
fn an_expiring_subkey_counts_until_it_expires() {
    let made = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let cases = [
        (made + chrono::Duration::hours(1), true),
        (made + chrono::Duration::hours(23), true),
        (made + chrono::Duration::hours(24), false),
        (made + chrono::Duration::days(400), false),
    ];
    for (when, usable) in cases {
        assert_eq!(check_at(EXPIRED_SUBKEY, when).is_ok(), usable, "{when}");
    }
}

#[test]
fn check_returns_the_rule_as_text() {
    let rule = check(SIGN_ONLY).unwrap_err();
    assert!(rule.starts_with("has no key that can encrypt"), "{rule}");
}
