//! OpenPGP encryption to the connector's public key over a ByteSink.
//!
//! The output is a binary OpenPGP message (RFC 9580 / RFC 4880): one PKESK v3 packet per usable
//! encryption (sub)key, then one SEIPD v1 packet (AES-256 with MDC, which gpg 2.2, Sequoia and
//! the managed-file-transfer tools all read) holding a binary literal data packet named after
//! the file (docs/architecture.md, "Export").
//!
//! rpgp's message builder only pulls from a `Read` and drops the literal packet's file name, so
//! the packets are framed here and rpgp does the cryptography: the session key, its encryption
//! to each key, and the CFB stream with its MDC. That stream pulls its plaintext, so it runs on
//! a dedicated thread fed through a bounded channel; memory stays at a few chunks per file.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use domain::connector::pgp_key::{self, EncryptionKey, KeyRefusal};
use pgp::composed::Esk;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::PublicKeyEncryptedSessionKey;
use pgp::ser::Serialize;
use rand_core_06::OsRng;

use super::sink::ByteSink;

/// AES-256: every current OpenPGP implementation reads it, and it is what gpg prefers.
const CIPHER: SymmetricKeyAlgorithm = SymmetricKeyAlgorithm::AES256;

/// Body bytes per partial-length packet piece (a power of two, at least 512, RFC 9580 §4.2.1.4).
const CHUNK: usize = 1 << 16;

/// Chunks in flight between the writer and the encryption thread.
const CHANNEL_CHUNKS: usize = 4;

const TAG_LITERAL_DATA: u8 = 11;
const TAG_SEIPD: u8 = 18;
const SEIPD_VERSION_1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    #[error("the connector's export.pgp_public_key {0}")]
    Key(#[from] KeyRefusal),
    #[error("cannot encrypt the session key to the connector's OpenPGP key: {0}")]
    SessionKey(String),
    #[error("cannot start the OpenPGP encryption: {0}")]
    Start(#[source] io::Error),
}

/// The layer that encrypts everything written to it for `public_key_armored`, as a binary
/// OpenPGP message whose literal data packet is named `file_name`, into `inner`.
pub fn encryptor(
    public_key_armored: &str,
    file_name: &str,
    inner: Box<dyn ByteSink>,
) -> Result<Box<dyn ByteSink>, PgpError> {
    let key = pgp_key::parse(public_key_armored)?;
    let recipients = pgp_key::encryption_keys(&key, chrono::Utc::now())?;
    let session_key = CIPHER.new_session_key(OsRng);
    let mut inner = inner;
    for recipient in recipients {
        let pkesk = match recipient {
            EncryptionKey::Primary(k) => {
                PublicKeyEncryptedSessionKey::from_session_key_v3(OsRng, &session_key, CIPHER, k)
            }
            EncryptionKey::Subkey(k) => {
                PublicKeyEncryptedSessionKey::from_session_key_v3(OsRng, &session_key, CIPHER, k)
            }
        }
        .map_err(|e| PgpError::SessionKey(e.to_string()))?;
        Esk::PublicKeyEncryptedSessionKey(pkesk)
            .to_writer(&mut inner)
            .map_err(|e| PgpError::Start(io::Error::other(e)))?;
    }

    let (sender, receiver) = mpsc::sync_channel::<Message>(CHANNEL_CHUNKS);
    let plaintext = ChannelReader {
        receiver,
        current: Vec::new(),
        position: 0,
        ended: false,
    };
    let stream = CIPHER
        .stream_encryptor(OsRng, session_key.as_ref(), plaintext)
        .map_err(|e| PgpError::Start(io::Error::other(e)))?;
    let worker = std::thread::Builder::new()
        .name("pgp-encrypt".into())
        .spawn(move || encrypt_stream(stream, inner))
        .map_err(PgpError::Start)?;

    let mut literal = PacketWriter::new(ChannelWriter { sender }, TAG_LITERAL_DATA);
    literal
        .write_all(&literal_data_header(file_name))
        .map_err(PgpError::Start)?;
    Ok(Box::new(PgpSink {
        literal: Some(literal),
        worker: Some(worker),
    }))
}

/// The encryption thread: ciphertext (CFB prefix, data, MDC) into one SEIPD v1 packet.
fn encrypt_stream(
    mut stream: impl Read,
    inner: Box<dyn ByteSink>,
) -> io::Result<Box<dyn ByteSink>> {
    let mut seipd = PacketWriter::new(inner, TAG_SEIPD);
    seipd.write_all(&[SEIPD_VERSION_1])?;
    io::copy(&mut stream, &mut seipd)?;
    seipd.finish()
}

/// Format 'b' (binary), the file name (at most 255 bytes, cut at a character boundary), and the
/// time as the literal's date.
fn literal_data_header(file_name: &str) -> Vec<u8> {
    let mut end = file_name.len().min(255);
    while !file_name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &file_name.as_bytes()[..end];
    let now = u32::try_from(chrono::Utc::now().timestamp().max(0)).unwrap_or(u32::MAX);
    let mut header = Vec::with_capacity(6 + name.len());
    header.push(b'b');
    // `end` is at most 255.
    header.push(end as u8);
    header.extend_from_slice(name);
    header.extend_from_slice(&now.to_be_bytes());
    header
}

struct PgpSink {
    literal: Option<PacketWriter<ChannelWriter>>,
    worker: Option<JoinHandle<io::Result<Box<dyn ByteSink>>>>,
}

impl PgpSink {
    /// The thread stopped taking plaintext: its own error says why.
    fn worker_error(&mut self, fallback: io::Error) -> io::Error {
        self.literal = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => error,
            Some(Err(_)) => io::Error::other("the OpenPGP encryption thread panicked"),
            Some(Ok(Ok(_))) | None => fallback,
        }
    }
}

impl Write for PgpSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(literal) = self.literal.as_mut() else {
            return Err(io::Error::other("the OpenPGP encryption already failed"));
        };
        match literal.write(buf) {
            Ok(n) => Ok(n),
            Err(error) => Err(self.worker_error(error)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks leave as they fill; a flush would only cut short packets.
        Ok(())
    }
}

impl ByteSink for PgpSink {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let Some(literal) = self.literal.take() else {
            return Err(io::Error::other("the OpenPGP encryption already failed"));
        };
        let sent = literal.finish().and_then(|channel| {
            channel
                .sender
                .send(Message::End)
                .map_err(|_| io::Error::other("the OpenPGP encryption thread stopped"))
        });
        if let Err(error) = sent {
            return Err(self.worker_error(error));
        }
        let inner = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            Some(Err(_)) => return Err(io::Error::other("the OpenPGP encryption thread panicked")),
            None => return Err(io::Error::other("the OpenPGP encryption already failed")),
        };
        inner.finish()
    }
}

impl Drop for PgpSink {
    fn drop(&mut self) {
        // Closing the channel without `End` fails the thread, which drops `inner` unfinished;
        // waiting for it means the inner sink is gone when this layer is.
        self.literal = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

enum Message {
    Chunk(Vec<u8>),
    End,
}

struct ChannelWriter {
    sender: mpsc::SyncSender<Message>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .send(Message::Chunk(buf.to_vec()))
            .map_err(|_| io::Error::other("the OpenPGP encryption thread stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The thread's plaintext: chunks until `End`; a channel closed without it is an abandoned
/// file, reported as an error so nothing is finished.
struct ChannelReader {
    receiver: mpsc::Receiver<Message>,
    current: Vec<u8>,
    position: usize,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Message::Chunk(chunk)) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Ok(Message::End) => self.ended = true,
                Err(mpsc::RecvError) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the file was abandoned before it was finished",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// One OpenPGP packet of unknown length (new format): full `CHUNK`s go out as partial-length
/// pieces as they fill, `finish` writes the rest with a fixed length (possibly zero).
struct PacketWriter<W: Write> {
    out: W,
    header: Option<u8>,
    body: Vec<u8>,
}

impl<W: Write> PacketWriter<W> {
    fn new(out: W, tag: u8) -> Self {
        Self {
            out,
            header: Some(0xC0 | tag),
            body: Vec::with_capacity(CHUNK),
        }
    }

    /// Writes one piece (packet header first, then its length, then body) in one write.
    fn emit(&mut self, length: &[u8]) -> io::Result<()> {
        let mut piece = Vec::with_capacity(1 + length.len() + self.body.len());
        piece.extend(self.header.take());
        piece.extend_from_slice(length);
        piece.append(&mut self.body);
        self.out.write_all(&piece)
    }

    fn finish(mut self) -> io::Result<W> {
        let length = fixed_length(self.body.len());
        self.emit(&length)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for PacketWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.body.len());
        self.body.extend_from_slice(&buf[..n]);
        if self.body.len() == CHUNK {
            self.emit(&[partial_length()])?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The partial body length octet for `CHUNK` (RFC 9580 §4.2.1.4).
fn partial_length() -> u8 {
    0xE0 | CHUNK.trailing_zeros() as u8
}

/// A new-format fixed body length (RFC 9580 §4.2.1.1–3).
fn fixed_length(len: usize) -> Vec<u8> {
    match len {
        0..192 => vec![len as u8],
        192..8384 => {
            let rest = len - 192;
            vec![(rest >> 8) as u8 + 192, (rest & 0xFF) as u8]
        }
        _ => {
            let mut bytes = vec![0xFF];
            // Bodies here are at most CHUNK long.
            bytes.extend_from_slice(&(len as u32).to_be_bytes());
            bytes
        }
    }
}

#[cfg(test)]
mod tests;
