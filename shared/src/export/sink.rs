//! The byte stack beneath an encoder: every layer (compressor, container, encryptor, the
//! multipart writer at the bottom) is a [`ByteSink`] wrapping the next.

use std::io::{self, Write};

/// A `Write` that must be finished: a compressor writes its trailer, an encryptor its last
/// packet, the multipart writer hands over its last part. `finish` finishes the layer, then
/// the layer beneath it. A sink dropped without `finish` leaves a file that must not be
/// completed (the multipart writer aborts its upload).
pub trait ByteSink: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;

    /// Ends the file for now so that a later invocation can append to it (docs/architecture.md,
    /// "Resuming past the deadline"): a compressor ends its gzip member or zstd frame (readers
    /// accept concatenated ones), the multipart writer uploads what it holds and leaves the
    /// upload open. Formats that cannot be continued (zip, tar, OpenPGP) refuse.
    fn pause(self: Box<Self>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this layer's format cannot be continued by a later invocation",
        ))
    }
}

/// Collects bytes in memory: for tests, and for small objects such as the manifest.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    pub bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    pub finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MemorySink {
    pub fn contents(&self) -> Vec<u8> {
        self.bytes.lock().expect("sink lock").clone()
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.lock().expect("sink lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ByteSink for MemorySink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn pause(self: Box<Self>) -> io::Result<()> {
        self.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
