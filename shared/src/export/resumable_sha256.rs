//! SHA-256 whose state can be saved between invocations: a file continued by a later
//! invocation still gets the SHA-256 of all its bytes in the manifest (docs/architecture.md,
//! "Resuming past the deadline"). sha2 0.10 exposes its block function but no saved state, so
//! this keeps the eight words, the length and the unhashed tail itself; the padding is
//! FIPS 180-4's.

use sha2::digest::generic_array::GenericArray;

use crate::domain::export::task::Sha256State;

const BLOCK: usize = 64;
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, the tail included.
    len: u64,
    /// The bytes after the last whole block (fewer than 64).
    tail: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self {
            state: INITIAL,
            len: 0,
            tail: Vec::with_capacity(BLOCK),
        }
    }
}

impl ResumableSha256 {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            let block = std::mem::take(&mut self.tail);
            self.compress(&block);
        }
        let whole = bytes.len() / BLOCK * BLOCK;
        self.compress(&bytes[..whole]);
        self.tail.extend_from_slice(&bytes[whole..]);
    }

    fn compress(&mut self, blocks: &[u8]) {
        let blocks: Vec<GenericArray<u8, _>> = blocks
            .chunks_exact(BLOCK)
            .map(|b| *GenericArray::from_slice(b))
            .collect();
        sha2::compress256(&mut self.state, &blocks);
    }

    pub fn to_state(&self) -> Sha256State {
        Sha256State {
            words: self.state,
            len: self.len,
            tail: self.tail.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// `None` for a state no hasher saved: a tail that is not hex of under 64 bytes, or
    /// disagrees with the length.
    pub fn from_state(saved: &Sha256State) -> Option<Self> {
        let text = &saved.tail;
        if !text.len().is_multiple_of(2) || text.len() >= 2 * BLOCK {
            return None;
        }
        let tail = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        if saved.len % BLOCK as u64 != tail.len() as u64 {
            return None;
        }
        Some(Self {
            state: saved.words,
            len: saved.len,
            tail,
        })
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest, lowercase hex.
    pub fn finish_hex(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut padding = vec![0x80u8];
        let used = (self.tail.len() + 1) % BLOCK;
        let zeros = if used <= BLOCK - 8 {
            BLOCK - 8 - used
        } else {
            2 * BLOCK - 8 - used
        };
        padding.resize(1 + zeros, 0);
        padding.extend_from_slice(&bits.to_be_bytes());
        let mut block = std::mem::take(&mut self.tail);
        block.extend_from_slice(&padding);
        self.compress(&block);
        self.state.iter().map(|w| format!("{w:08x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn reference(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn every_length_around_the_block_and_padding_edges_matches_sha2() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 0..data.len() {
            let mut hash = ResumableSha256::default();
            hash.update(&data[..len]);
            assert_eq!(hash.len(), len as u64);
            assert_eq!(hash.finish_hex(), reference(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn a_state_saved_and_restored_between_any_two_writes_gives_the_same_digest() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 253) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 127, 128, 500, 999, 1000] {
            for step in [1, 13, 64, 100] {
                let mut hash = ResumableSha256::default();
                for chunk in data[..cut].chunks(step) {
                    hash.update(chunk);
                }
                let saved = serde_json::to_string(&hash.to_state()).unwrap();
                let mut restored =
                    ResumableSha256::from_state(&serde_json::from_str(&saved).unwrap()).unwrap();
                restored.update(&data[cut..]);
                assert_eq!(
                    restored.finish_hex(),
                    reference(&data),
                    "cut {cut} step {step}"
                );
            }
        }
    }

    #[test]
    fn a_state_no_hasher_saved_is_refused() {
        let mut hash = ResumableSha256::default();
        hash.update(&[7; 70]);
        let good = hash.to_state();
        assert_eq!(good.tail.len(), 12);
        assert!(ResumableSha256::from_state(&good).is_some());
        for (tail, len) in [
            ("abc", 70),
            ("zz", 65),
            ("070707070707", 71),
            (&"00".repeat(64)[..], 128),
        ] {
            let bad = Sha256State {
                tail: tail.to_owned(),
                len,
                ..good.clone()
            };
            assert!(ResumableSha256::from_state(&bad).is_none(), "{tail} {len}");
        }
    }
}
