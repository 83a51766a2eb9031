use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pgp::composed::{
    Deserializable, EncryptionCaps, KeyType, Message as PgpMessage, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::types::Password;

use super::*;
use crate::export::sink::MemorySink;

/// A fresh Curve25519 key pair: ed25519 primary (certify, sign), cv25519 encryption subkey.
fn generated_key() -> (String, SignedSecretKey) {
    let mut subkey = SubkeyParamsBuilder::default();
    subkey
        .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
        .can_encrypt(EncryptionCaps::All);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("Export Test <export@example.com>".into())
        .subkeys(vec![subkey.build().unwrap()]);
    let secret = params.build().unwrap().generate(OsRng).unwrap();
    let public = SignedPublicKey::from(secret.clone())
        .to_armored_string(Default::default())
        .unwrap();
    (public, secret)
}

fn secret_key(armored: &str) -> SignedSecretKey {
    SignedSecretKey::from_string(armored).unwrap().0
}

fn encrypt(public: &str, file_name: &str, plaintext: &[u8]) -> MemorySink {
    let sink = MemorySink::default();
    let mut layer = encryptor(public, file_name, Box::new(sink.clone())).unwrap();
    for piece in plaintext.chunks(10_007) {
        layer.write_all(piece).unwrap();
    }
    layer.finish().unwrap();
    sink
}

/// Decrypts with rpgp's reader: (literal file name, plaintext).
fn decrypt(secret: &SignedSecretKey, ciphertext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let message = PgpMessage::from_bytes(ciphertext).unwrap();
    assert!(message.is_encrypted());
    let mut plain = message.decrypt(&Password::empty(), secret).unwrap();
    let data = plain.as_data_vec().unwrap();
    let name = plain
        .literal_data_header()
        .expect("a literal data packet")
        .file_name()
        .to_vec();
    (name, data)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn round_trips_every_size_around_the_packet_chunks() {
    let (public, secret) = generated_key();
    let name = "orders_20260115T020000Z_0001.csv.gz";
    // The literal header takes 2 + name + 4 bytes of the first chunk.
    let first = CHUNK - (6 + name.len());
    let sizes = [
        0,
        1,
        191,
        192,
        8383,
        8384,
        first - 1,
        first,
        first + 1,
        3 * CHUNK,
        (1 << 20) + 17,
    ];
    for size in sizes {
        let plaintext = pattern(size);
        let sink = encrypt(&public, name, &plaintext);
        assert!(sink.is_finished(), "{size}");
        let (file_name, data) = decrypt(&secret, &sink.contents());
        assert_eq!(file_name, name.as_bytes(), "{size}");
        assert!(data == plaintext, "{size}: plaintext differs");
    }
}

#[test]
fn decrypts_with_the_gpg_made_fixtures() {
    let cases = [
        (
            domain::testing::PGP_PUBLIC_KEY,
            domain::testing::PGP_SECRET_KEY,
        ),
        (
            include_str!("../testdata/rsa_public_key.asc"),
            include_str!("../testdata/rsa_secret_key.asc"),
        ),
    ];
    for (public, secret) in cases {
        let plaintext = "id,note\n1,\"a,b\"\r\n2,Données 😀\t|\n".repeat(500);
        let sink = encrypt(public, "f.csv", plaintext.as_bytes());
        let (name, data) = decrypt(&secret_key(secret), &sink.contents());
        assert_eq!(name, b"f.csv");
        assert_eq!(data, plaintext.as_bytes());
    }
}

#[test]
fn the_output_is_binary_pkesk_then_seipd_v1() {
    use pgp::packet::{Packet, PacketParser};
    let sink = encrypt(
        domain::testing::PGP_PUBLIC_KEY,
        "f.csv",
        &pattern(3 * CHUNK),
    );
    let bytes = sink.contents();
    assert!(!bytes.starts_with(b"-----BEGIN"), "binary, not armored");
    let packets: Vec<Packet> = PacketParser::new(bytes.as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert!(matches!(
        packets[0],
        Packet::PublicKeyEncryptedSessionKey(_)
    ));
    let Packet::SymEncryptedProtectedData(seipd) = &packets[1] else {
        panic!("{:?}", packets[1]);
    };
    assert_eq!(seipd.version(), 1, "SEIPD v1 (MDC)");
}

#[test]
fn a_long_file_name_is_cut_to_255_bytes_on_a_character_boundary() {
    let cases = [
        ("short.csv".to_owned(), "short.csv".to_owned()),
        ("a".repeat(300), "a".repeat(255)),
        // 127 two-byte characters fill 254 bytes; the 128th would pass 255.
        ("é".repeat(200), "é".repeat(127)),
    ];
    for (name, expected) in cases {
        let header = literal_data_header(&name);
        assert_eq!(header[0], b'b');
        assert_eq!(header[1] as usize, expected.len());
        assert_eq!(&header[2..2 + expected.len()], expected.as_bytes());
        assert_eq!(header.len(), 2 + expected.len() + 4);
    }
}

#[test]
fn length_encodings_follow_the_rfc() {
    let cases: [(usize, &[u8]); 6] = [
        (0, &[0]),
        (191, &[191]),
        (192, &[192, 0]),
        (8383, &[223, 255]),
        (8384, &[0xFF, 0, 0, 0x20, 0xC0]),
        (65535, &[0xFF, 0, 0, 0xFF, 0xFF]),
    ];
    for (len, expected) in cases {
        assert_eq!(fixed_length(len), expected, "{len}");
    }
    assert_eq!(partial_length(), 0xE0 | 16);
}

#[test]
fn keys_that_cannot_encrypt_are_refused_before_any_byte_is_written() {
    let cases = [
        (
            include_str!("../../../domain/src/testdata/pgp_sign_only.asc"),
            "can encrypt",
        ),
        (domain::testing::PGP_SECRET_KEY, "PRIVATE key"),
        ("not a key", "ASCII-armored"),
    ];
    for (armored, phrase) in cases {
        let sink = MemorySink::default();
        let error = encryptor(armored, "f.csv", Box::new(sink.clone()))
            .err()
            .expect("refused");
        let message = error.to_string();
        assert!(message.contains("export.pgp_public_key"), "{message}");
        assert!(message.contains(phrase), "{message}");
        assert!(sink.contents().is_empty());
    }
}

/// Counts what reaches it without keeping it.
#[derive(Clone, Default)]
struct CountingSink {
    received: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.received.fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ByteSink for CountingSink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn sixty_four_mib_stream_through_with_a_few_chunks_in_flight() {
    const TOTAL: usize = 64 << 20;
    const PIECE: usize = 1 << 20;
    // Channel, literal and SEIPD buffers, the cipher's block: well under this.
    const MAX_IN_FLIGHT: u64 = 2 << 20;
    let sink = CountingSink::default();
    let mut layer = encryptor(
        domain::testing::PGP_PUBLIC_KEY,
        "big.csv",
        Box::new(sink.clone()),
    )
    .unwrap();
    let piece = pattern(PIECE);
    let mut written = 0u64;
    let mut most_in_flight = 0u64;
    while (written as usize) < TOTAL {
        layer.write_all(&piece).unwrap();
        written += PIECE as u64;
        let in_flight = written.saturating_sub(sink.received.load(Ordering::SeqCst));
        most_in_flight = most_in_flight.max(in_flight);
        assert!(
            in_flight <= MAX_IN_FLIGHT,
            "{in_flight} bytes held after {written}"
        );
    }
    layer.finish().unwrap();
    assert!(sink.finished.load(Ordering::SeqCst));
    let received = sink.received.load(Ordering::SeqCst);
    // Prefix, MDC, headers and one length octet per 64 KiB chunk: a few KiB over.
    assert!(
        received > TOTAL as u64 && received < TOTAL as u64 + 16_384,
        "{received}"
    );
    // One write per 64 KiB piece, not one at the end.
    assert!(sink.writes.load(Ordering::SeqCst) >= (TOTAL / CHUNK) as u64);
    eprintln!("64 MiB: at most {most_in_flight} bytes in flight");
}

#[test]
fn dropping_without_finish_leaves_the_inner_sink_unfinished() {
    let sink = MemorySink::default();
    let mut layer = encryptor(
        domain::testing::PGP_PUBLIC_KEY,
        "f.csv",
        Box::new(sink.clone()),
    )
    .unwrap();
    layer.write_all(&pattern(3 * CHUNK + 5)).unwrap();
    drop(layer);
    assert!(!sink.is_finished());
}

/// Takes `limit` bytes, then fails every write.
struct FailingAfter {
    limit: usize,
}

impl Write for FailingAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.limit {
            return Err(io::Error::other(
                "upload refused: bucket policy denies PutObject",
            ));
        }
        self.limit -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ByteSink for FailingAfter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        panic!("a failed stack is never finished");
    }
}

#[test]
fn an_inner_error_reaches_the_writer_or_finish() {
    // (plaintext, bytes the upload takes): fails on the PKESK while starting, on a SEIPD piece
    // while writing, or on the last piece at finish (the PKESK is under 100 bytes).
    let cases = [
        (100, 50),
        (16 << 20, 1 << 10),
        (1 << 20, 1 << 17),
        (100, 150),
    ];
    for (plaintext_len, limit) in cases {
        let result = encryptor(
            domain::testing::PGP_PUBLIC_KEY,
            "f.csv",
            Box::new(FailingAfter { limit }),
        )
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|mut layer| {
            layer.write_all(&pattern(plaintext_len))?;
            layer.finish()
        });
        let error = result.expect_err("fails");
        assert!(
            error.to_string().contains("upload refused"),
            "{plaintext_len}: {error}"
        );
    }
}

#[test]
#[ignore = "writes files for an outside decryption check"]
fn write_samples_for_outside_tools() {
    let dir = std::env::var("PGP_SAMPLE_DIR").unwrap_or_else(|_| "/tmp/pgp-samples".into());
    std::fs::create_dir_all(&dir).unwrap();
    let plaintext = "id,note\n1,\"a,b\"\r\n2,Données 😀\t|\n".repeat(50_000);
    std::fs::write(format!("{dir}/plain.csv"), &plaintext).unwrap();
    for (name, public) in [
        ("cv25519", domain::testing::PGP_PUBLIC_KEY),
        ("rsa", include_str!("../testdata/rsa_public_key.asc")),
    ] {
        let sink = encrypt(public, "plain.csv", plaintext.as_bytes());
        std::fs::write(format!("{dir}/{name}.csv.pgp"), sink.contents()).unwrap();
    }
}
