//! The byte-level parts of a snapshot, all synchronous so they run on a
//! blocking thread, never on the async executor:
//!
//! - [`TrailerCheck`]: an etcd snapshot is the bbolt database followed by a
//!   32-byte sha256 of everything before it. The check hashes a stream while
//!   holding back its last 32 bytes, then compares.
//! - [`encode`]: raw snapshot chunks in, (optionally age-encrypted) zstd
//!   chunks out, with the trailer checked on the way.
//! - [`decode`]: the reverse, for `verify`, `download`, `status --deep` and
//!   `restore`: stored bytes in, the plain snapshot out to an optional file,
//!   trailer checked.

use std::io::{self, Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Length of the sha256 trailer etcd appends to a snapshot.
pub const TRAILER_LEN: usize = 32;

/// Size of the compressed chunks handed to the uploader. Small enough to keep
/// memory flat, large enough that channel overhead does not matter.
const OUT_CHUNK: usize = 1024 * 1024;

/// Errors of the byte pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The data is shorter than a trailer: not an etcd snapshot (or cut off).
    #[error("the snapshot is only {len} bytes: too short to hold its 32-byte sha256 trailer")]
    TooShort {
        /// Bytes seen.
        len: u64,
    },
    /// The trailer is not the sha256 of the data before it.
    #[error(
        "sha256 mismatch: the snapshot's trailer says {expected} but its {data_len} data bytes hash to {actual}"
    )]
    Mismatch {
        /// The trailer, hex.
        expected: String,
        /// What the data hashes to, hex.
        actual: String,
        /// Bytes hashed.
        data_len: u64,
    },
    /// Compression, decompression or a local file failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// Encryption setup failed.
    #[error("cannot encrypt the snapshot: {0}")]
    Encrypt(String),
    /// The stored snapshot could not be decrypted.
    #[error("cannot decrypt the snapshot: {0}")]
    Decrypt(String),
    /// The consumer of the output went away (the upload failed or was cancelled).
    #[error("the upload stopped before the snapshot was fully written")]
    OutputClosed,
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> CodecError {
    move |source| CodecError::Io { what, source }
}

/// Hashes a stream while keeping its last [`TRAILER_LEN`] bytes aside, then
/// checks that they are the sha256 of the rest.
#[derive(Debug, Clone, Default)]
pub struct TrailerCheck {
    hasher: Sha256,
    tail: Vec<u8>,
    hashed: u64,
}

/// A checked trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The sha256 (hex) that the trailer holds and the data hashes to.
    pub sha256: String,
    /// Bytes of database before the trailer.
    pub db_size: u64,
}

impl TrailerCheck {
    /// A fresh check.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        if data.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail);
            self.hashed += self.tail.len() as u64;
            let cut = data.len() - TRAILER_LEN;
            self.hasher.update(&data[..cut]);
            self.hashed += cut as u64;
            self.tail.clear();
            self.tail.extend_from_slice(&data[cut..]);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > TRAILER_LEN {
                let cut = self.tail.len() - TRAILER_LEN;
                self.hasher.update(&self.tail[..cut]);
                self.hashed += cut as u64;
                self.tail.drain(..cut);
            }
        }
    }

    /// Total bytes fed so far, trailer included.
    pub fn len(&self) -> u64 {
        self.hashed + self.tail.len() as u64
    }

    /// Has nothing been fed?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compare the held-back trailer with the hash of everything before it.
    pub fn finish(self) -> Result<Checked, CodecError> {
        if self.tail.len() < TRAILER_LEN {
            return Err(CodecError::TooShort { len: self.len() });
        }
        let actual = hex::encode(self.hasher.finalize());
        let expected = hex::encode(&self.tail);
        if actual != expected {
            return Err(CodecError::Mismatch {
                expected,
                actual,
                data_len: self.hashed,
            });
        }
        Ok(Checked {
            sha256: actual,
            db_size: self.hashed,
        })
    }
}

/// A `Write` that hands fixed-size chunks to an async consumer; it blocks
/// when the consumer is behind, which is what bounds memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    written: u64,
    hasher: Sha256,
}

impl ChannelWriter {
    fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(OUT_CHUNK),
            written: 0,
            hasher: Sha256::new(),
        }
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUT_CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What [`encode`] produced.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The checked trailer of the raw snapshot.
    pub checked: Checked,
    /// Bytes of the raw snapshot, trailer included.
    pub raw_size: u64,
    /// Bytes stored (compressed, and encrypted when asked).
    pub stored_size: u64,
    /// sha256 (hex) of the stored bytes.
    pub stored_sha256: String,
}

/// Compress (zstd at `level`) and optionally encrypt the raw snapshot chunks
/// arriving on `input`, send the result in chunks to `output`, and check the
/// trailer. Runs on a blocking thread. The output is complete only when this
/// returns `Ok`; on `Err` the consumer must discard everything it got.
pub fn encode(
    mut input: tokio::sync::mpsc::Receiver<Bytes>,
    output: tokio::sync::mpsc::Sender<Bytes>,
    recipients: &[age::x25519::Recipient],
    level: i32,
) -> Result<Encoded, CodecError> {
    let mut check = TrailerCheck::new();
    let sink = ChannelWriter::new(output);

    let map_write = |e: io::Error| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CodecError::OutputClosed
        } else {
            CodecError::Io {
                what: "cannot compress the snapshot",
                source: e,
            }
        }
    };

    let mut sink = if recipients.is_empty() {
        let mut z =
            zstd::stream::write::Encoder::new(sink, level).map_err(io_err("cannot start zstd"))?;
        while let Some(chunk) = input.blocking_recv() {
            check.update(&chunk);
            z.write_all(&chunk).map_err(map_write)?;
        }
        z.finish().map_err(map_write)?
    } else {
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| CodecError::Encrypt(e.to_string()))?;
        let aged = encryptor.wrap_output(sink).map_err(map_write)?;
        let mut z =
            zstd::stream::write::Encoder::new(aged, level).map_err(io_err("cannot start zstd"))?;
        while let Some(chunk) = input.blocking_recv() {
            check.update(&chunk);
            z.write_all(&chunk).map_err(map_write)?;
        }
        z.finish().map_err(map_write)?.finish().map_err(map_write)?
    };
    let raw_size = check.len();
    // Check before the last chunk leaves: a bad stream never completes the output.
    let checked = check.finish()?;
    sink.send_buf().map_err(map_write)?;
    Ok(Encoded {
        checked,
        raw_size,
        stored_size: sink.written,
        stored_sha256: hex::encode(sink.hasher.clone().finalize()),
    })
}

/// What [`decode`] found.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The trailer check: `Ok` when the snapshot is intact.
    pub check: Result<Checked, String>,
    /// Bytes of the plain snapshot, trailer included.
    pub raw_size: u64,
    /// Bytes read from the store.
    pub stored_size: u64,
    /// sha256 (hex) of the stored bytes.
    pub stored_sha256: String,
}

/// A `Read` that counts and hashes what passes through.
struct HashingReader<R> {
    inner: R,
    read: u64,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Decrypt (when `identities` is given), decompress and check a stored
/// snapshot read from `input`, writing the plain snapshot to `out` if any.
/// Runs on a blocking thread.
pub fn decode(
    input: impl Read,
    identities: Option<&[Box<dyn age::Identity>]>,
    mut out: Option<&mut dyn Write>,
) -> Result<Decoded, CodecError> {
    let mut counted = HashingReader {
        inner: input,
        read: 0,
        hasher: Sha256::new(),
    };
    let mut check = TrailerCheck::new();
    {
        let source: Box<dyn Read + '_> = match identities {
            None => Box::new(&mut counted),
            Some(ids) => {
                let decryptor = age::Decryptor::new(&mut counted)
                    .map_err(|e| CodecError::Decrypt(e.to_string()))?;
                let reader = decryptor
                    .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
                    .map_err(|e| CodecError::Decrypt(e.to_string()))?;
                Box::new(reader)
            }
        };
        let mut z =
            zstd::stream::read::Decoder::new(source).map_err(io_err("cannot start zstd"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = z
                .read(&mut buf)
                .map_err(io_err("cannot decompress the stored snapshot"))?;
            if n == 0 {
                break;
            }
            check.update(&buf[..n]);
            if let Some(w) = out.as_mut() {
                w.write_all(&buf[..n])
                    .map_err(io_err("cannot write the snapshot file"))?;
            }
        }
    }
    // Drain anything after the zstd frame so the stored hash covers the whole object.
    io::copy(&mut counted, &mut io::sink()).map_err(io_err("cannot read the stored snapshot"))?;
    let raw_size = check.len();
    Ok(Decoded {
        check: check.finish().map_err(|e| e.to_string()),
        raw_size,
        stored_size: counted.read,
        stored_sha256: hex::encode(counted.hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.extend_from_slice(&Sha256::digest(data));
        v
    }

    #[test]
    fn trailer_check_accepts_any_chunking() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let snap = snapshot_of(&data);
        for chunk in [1, 5, 31, 32, 33, 4096, 32 * 1024, snap.len()] {
            let mut c = TrailerCheck::new();
            for part in snap.chunks(chunk) {
                c.update(part);
            }
            assert_eq!(c.len(), snap.len() as u64);
            let checked = c.finish().unwrap();
            assert_eq!(checked.db_size, data.len() as u64);
            assert_eq!(checked.sha256, hex::encode(Sha256::digest(&data)));
        }
    }

    #[test]
    fn trailer_check_catches_a_flipped_byte_and_a_cut() {
        let data = vec![42u8; 10_000];
        let mut snap = snapshot_of(&data);
        snap[1234] ^= 1;
        let mut c = TrailerCheck::new();
        c.update(&snap);
        assert!(matches!(c.finish(), Err(CodecError::Mismatch { .. })));

        let snap = snapshot_of(&data);
        let mut c = TrailerCheck::new();
        c.update(&snap[..5000]);
        assert!(matches!(c.finish(), Err(CodecError::Mismatch { .. })));

        let mut c = TrailerCheck::new();
        c.update(&snap[..10]);
        assert!(matches!(c.finish(), Err(CodecError::TooShort { len: 10 })));
    }

    fn run_encode(
        snap: &[u8],
        recipients: &[age::x25519::Recipient],
    ) -> (Result<Encoded, CodecError>, Vec<u8>) {
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let chunks: Vec<Bytes> = snap.chunks(32 * 1024).map(Bytes::copy_from_slice).collect();
        let feeder = std::thread::spawn(move || {
            for c in chunks {
                in_tx.blocking_send(c).unwrap();
            }
        });
        let collector = std::thread::spawn(move || {
            let mut all = Vec::new();
            while let Some(c) = out_rx.blocking_recv() {
                all.extend_from_slice(&c);
            }
            all
        });
        let recipients = recipients.to_vec();
        let result = encode(in_rx, out_tx, &recipients, 3);
        feeder.join().unwrap();
        (result, collector.join().unwrap())
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
        let snap = snapshot_of(&data);
        let (enc, stored) = run_encode(&snap, &[]);
        let enc = enc.unwrap();
        assert_eq!(enc.stored_size, stored.len() as u64);
        assert!(
            enc.stored_size < snap.len() as u64 / 10,
            "zstd should shrink this"
        );
        let mut plain = Vec::new();
        let dec = decode(&stored[..], None, Some(&mut plain)).unwrap();
        assert_eq!(plain, snap);
        assert_eq!(dec.check.unwrap(), enc.checked);
        assert_eq!(dec.stored_sha256, enc.stored_sha256);
    }

    #[test]
    fn encrypted_round_trip_needs_the_identity() {
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let snap = snapshot_of(b"some etcd database bytes, long enough to matter");
        let (enc, stored) = run_encode(&snap, &[identity.to_public()]);
        enc.unwrap();
        let ids: Vec<Box<dyn age::Identity>> = vec![Box::new(identity)];
        let mut plain = Vec::new();
        decode(&stored[..], Some(&ids), Some(&mut plain)).unwrap();
        assert_eq!(plain, snap);
        let wrong: Vec<Box<dyn age::Identity>> = vec![Box::new(other)];
        assert!(matches!(
            decode(&stored[..], Some(&wrong), None),
            Err(CodecError::Decrypt(_))
        ));
    }

    #[test]
    fn encode_refuses_a_stream_without_trailer() {
        let data = vec![1u8; 100_000];
        let (enc, _) = run_encode(&data, &[]);
        assert!(matches!(enc, Err(CodecError::Mismatch { .. })));
    }
}
