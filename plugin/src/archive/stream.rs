//! Streaming writer and reader for `resources.tar.zst`.
//!
//! Both are synchronous (`Write`/`Read`): compression and hashing are CPU work
//! that belongs on a blocking thread, not on the async executor. The backup
//! pipeline feeds an [`ArchiveWriter`] from a channel on a `spawn_blocking`
//! thread; a restore wraps the object-store download in
//! `tokio_util::io::SyncIoBridge` and reads it with [`ArchiveReader`] on a
//! blocking thread. Neither ever holds more than one item in memory.

use std::io::{self, BufReader, Read, Write};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::path::{ItemPath, METADATA_RESOURCES, METADATA_VERSION, write_tar_path};
use super::tarball::TarWriter;
use super::{Error, FORMAT_VERSION, PartInfo, ResourceType, Result};

/// Largest single entry the reader accepts. Kubernetes objects are limited to
/// about 1.5 MiB by etcd; anything far larger is a corrupt or hostile archive.
pub const MAX_ENTRY_BYTES: u64 = 64 * 1024 * 1024;

/// zstd level used for archives. Compression is the largest CPU cost of a
/// backup; level 1 compresses Kubernetes JSON nearly as well as level 3 (a
/// few percent larger) in clearly less time, which `bench-backup` measures.
pub const ZSTD_LEVEL: i32 = 1;

/// Bytes gathered before they are handed to a zstd encoder: each call into
/// the encoder has a fixed cost, which small writes (a tar header, a log line
/// written token by token) would pay many times over.
pub const ENCODER_INPUT: usize = 64 * 1024;

/// Input compressed into each zstd frame of a [`FrameEncoder`].
pub const FRAME_INPUT: usize = 2 * 1024 * 1024;

// === FrameEncoder ===

/// A zstd encoder that compresses its input in frames of [`FRAME_INPUT`]
/// bytes, each in one call from one contiguous buffer. zstd's streaming
/// encoder keeps its input in a ring buffer instead, and once that has
/// wrapped (after the first few hundred KiB) it compresses on its
/// external-dictionary path, which a backup profile showed taking about
/// twice as long as the contiguous one. Frames written one after another
/// are one valid zstd stream: every zstd decoder (the `zstd` tool, this
/// crate's reader) reads them as a single output.
pub struct FrameEncoder<W: Write> {
    inner: W,
    compressor: zstd::bulk::Compressor<'static>,
    input: Vec<u8>,
    output: Vec<u8>,
    frames: u64,
}

impl<W: Write> FrameEncoder<W> {
    /// An encoder writing frames of zstd `level` to `inner`.
    pub fn new(inner: W, level: i32) -> io::Result<Self> {
        Ok(FrameEncoder {
            inner,
            compressor: zstd::bulk::Compressor::new(level)?,
            input: Vec::with_capacity(FRAME_INPUT),
            output: Vec::new(),
            frames: 0,
        })
    }

    /// The writer frames go to.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn write_frame(&mut self) -> io::Result<()> {
        self.output.clear();
        self.output
            .reserve(zstd::zstd_safe::compress_bound(self.input.len()));
        self.compressor
            .compress_to_buffer(&self.input[..], &mut self.output)?;
        self.inner.write_all(&self.output)?;
        self.input.clear();
        self.frames += 1;
        Ok(())
    }

    /// Compress what is left (an empty input still makes one frame, so the
    /// output is always a zstd stream) and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.input.is_empty() || self.frames == 0 {
            self.write_frame()?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for FrameEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME_INPUT - self.input.len());
        self.input.extend_from_slice(&buf[..n]);
        if self.input.len() == FRAME_INPUT {
            self.write_frame()?;
        }
        Ok(n)
    }

    /// Flushes the inner writer only: a frame is cut when it is full, so
    /// flushing never makes the output worse.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// === HashingWriter ===

/// A writer that passes bytes through while counting them and hashing them
/// with SHA-256, so a part's size and checksum are known the moment it is
/// finished, without reading it back.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Unwrap: the inner writer plus the size and sha256 of everything written.
    pub fn finish(self) -> (W, PartInfo) {
        let info = PartInfo {
            size: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, info)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hash everything `reader` yields: its size and sha256, for verifying a part
/// against the manifest without holding it in memory.
pub fn digest_reader<R: Read>(mut reader: R) -> io::Result<PartInfo> {
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut sink)?;
    Ok(sink.finish().1)
}

// === ArchiveWriter ===

/// Writes `resources.tar.zst`: one tar stream, zstd-compressed, hashed as it
/// goes. Call [`ArchiveWriter::new`] (which writes `metadata/version` and
/// `metadata/resources.json` first), then [`ArchiveWriter::append`] per item,
/// then [`ArchiveWriter::finish`].
pub struct ArchiveWriter<W: Write> {
    tar: TarWriter<FrameEncoder<HashingWriter<W>>>,
    /// The tar path being written, kept to reuse its allocation.
    path: String,
    items: u64,
    uncompressed: u64,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("items", &self.items)
            .field("uncompressed", &self.uncompressed)
            .finish_non_exhaustive()
    }
}

/// What [`ArchiveWriter::finish`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Items appended (metadata entries not counted).
    pub items: u64,
    /// Bytes of item JSON before compression.
    pub uncompressed_bytes: u64,
    /// Size and sha256 of the compressed archive as written.
    pub part: PartInfo,
}

impl<W: Write> ArchiveWriter<W> {
    /// Start an archive on `out`. Entries get `started_at` as their mtime so
    /// that an archive is a function of its content and start time only.
    pub fn new(out: W, started_at: DateTime<Utc>, resources: &[ResourceType]) -> Result<Self> {
        let encoder =
            FrameEncoder::new(HashingWriter::new(out), ZSTD_LEVEL).map_err(Error::Write)?;
        let mtime = u64::try_from(started_at.timestamp()).unwrap_or(0);
        let mut writer = ArchiveWriter {
            tar: TarWriter::new(encoder, mtime).map_err(Error::Write)?,
            path: String::new(),
            items: 0,
            uncompressed: 0,
        };
        writer.append_raw(METADATA_VERSION, format!("{FORMAT_VERSION}\n").as_bytes())?;
        let table = serde_json::to_vec(resources).map_err(Error::Json)?;
        writer.append_raw(METADATA_RESOURCES, &table)?;
        Ok(writer)
    }

    /// Append one object's JSON at its item path.
    pub fn append(&mut self, path: &ItemPath, json: &[u8]) -> Result<()> {
        let resource = path.key.to_string();
        self.append_item(&resource, path.namespace.as_deref(), &path.name, json)
    }

    /// [`ArchiveWriter::append`], with the item path in parts: `resource` is
    /// its [`ResourceKey`](super::ResourceKey) as displayed.
    pub fn append_item(
        &mut self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        json: &[u8],
    ) -> Result<()> {
        self.path.clear();
        write_tar_path(&mut self.path, resource, namespace, name);
        self.tar.append(&self.path, json).map_err(Error::Write)?;
        self.items += 1;
        self.uncompressed += json.len() as u64;
        Ok(())
    }

    fn append_raw(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.tar.append(path, data).map_err(Error::Write)
    }

    /// Items appended so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Compressed bytes handed to the output so far (lags the input by up
    /// to one frame).
    pub fn compressed_bytes(&mut self) -> u64 {
        self.tar.get_mut().get_ref().bytes()
    }

    /// Close the tar stream and the zstd frame; return the output and a summary.
    pub fn finish(self) -> Result<(W, ArchiveSummary)> {
        let encoder = self.tar.finish().map_err(Error::Write)?;
        let hashing = encoder.finish().map_err(Error::Write)?;
        let (mut out, part) = hashing.finish();
        out.flush().map_err(Error::Write)?;
        Ok((
            out,
            ArchiveSummary {
                items: self.items,
                uncompressed_bytes: self.uncompressed,
                part,
            },
        ))
    }
}

// === ArchiveReader ===

/// What an entry of the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A backed-up object.
    Item(ItemPath),
    /// `metadata/version`.
    Version,
    /// `metadata/resources.json`.
    Resources,
    /// Anything else (directories, files a future version adds); skip it.
    Other(String),
}

/// One entry read from the archive: what it is and its bytes (an object's
/// JSON for [`EntryKind::Item`]).
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// What the entry is.
    pub kind: EntryKind,
    /// Its content.
    pub data: Vec<u8>,
}

/// Reads `resources.tar.zst` as a stream of entries, one in memory at a time.
///
/// ```no_run
/// use kubectl_backup::archive::{ArchiveReader, EntryKind};
/// let file = std::fs::File::open("resources.tar.zst")?;
/// let mut reader = ArchiveReader::new(file)?;
/// for entry in reader.entries()? {
///     let entry = entry?;
///     if let EntryKind::Item(path) = &entry.kind {
///         let object: serde_json::Value = serde_json::from_slice(&entry.data)?;
///         println!("{path}: {}", object["kind"]);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ArchiveReader<R: Read> {
    tar: tar::Archive<zstd::stream::read::Decoder<'static, BufReader<R>>>,
}

impl<R: Read> std::fmt::Debug for ArchiveReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader").finish_non_exhaustive()
    }
}

impl<R: Read> ArchiveReader<R> {
    /// Read a zstd-compressed tar from `input`.
    pub fn new(input: R) -> Result<Self> {
        let decoder = zstd::stream::read::Decoder::new(input).map_err(Error::Read)?;
        Ok(ArchiveReader {
            tar: tar::Archive::new(decoder),
        })
    }

    /// Iterate over the entries in archive order. Item order is not defined
    /// (the writer lists resource types concurrently); `metadata/*` entries
    /// come first in archives this tool writes.
    pub fn entries(&mut self) -> Result<Entries<'_, R>> {
        let inner = self.tar.entries().map_err(Error::Read)?;
        Ok(Entries { inner })
    }
}

/// Iterator returned by [`ArchiveReader::entries`].
pub struct Entries<'a, R: Read> {
    inner: tar::Entries<'a, zstd::stream::read::Decoder<'static, BufReader<R>>>,
}

impl<R: Read> std::fmt::Debug for Entries<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

impl<R: Read> Iterator for Entries<'_, R> {
    type Item = Result<ArchiveEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut entry = match self.inner.next()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(Error::Read(e))),
            };
            let entry_type = entry.header().entry_type();
            if entry_type.is_dir() {
                continue;
            }
            let path = match entry.path() {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(e) => return Some(Err(Error::Read(e))),
            };
            let size = entry.size();
            if size > MAX_ENTRY_BYTES {
                return Some(Err(Error::EntryTooLarge { path, size }));
            }
            let kind = match classify(&path) {
                Ok(kind) => kind,
                Err(e) => return Some(Err(e)),
            };
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            if let Err(e) = entry.read_to_end(&mut data) {
                return Some(Err(Error::Read(e)));
            }
            return Some(Ok(ArchiveEntry { kind, data }));
        }
    }
}

fn classify(path: &str) -> Result<EntryKind> {
    let trimmed = path.strip_prefix("./").unwrap_or(path);
    if trimmed == METADATA_VERSION {
        return Ok(EntryKind::Version);
    }
    if trimmed == METADATA_RESOURCES {
        return Ok(EntryKind::Resources);
    }
    Ok(match ItemPath::parse_tar_path(trimmed)? {
        Some(item) => EntryKind::Item(item),
        None => EntryKind::Other(trimmed.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ResourceKey;

    fn types() -> Vec<ResourceType> {
        vec![ResourceType {
            key: ResourceKey::new("configmaps", ""),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        }]
    }

    #[test]
    fn write_then_read_round_trips() {
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut w = ArchiveWriter::new(Vec::new(), started, &types()).unwrap();
        let long_name = "x".repeat(200);
        let paths = [
            ItemPath::namespaced(ResourceKey::new("configmaps", ""), "a", "one"),
            ItemPath::namespaced(ResourceKey::new("configmaps", ""), "b", &long_name),
            ItemPath::cluster(ResourceKey::new("namespaces", ""), "a"),
        ];
        for (i, p) in paths.iter().enumerate() {
            w.append(p, format!("{{\"i\":{i}}}").as_bytes()).unwrap();
        }
        let (bytes, summary) = w.finish().unwrap();
        assert_eq!(summary.items, 3);
        assert_eq!(summary.part.size, bytes.len() as u64);
        assert_eq!(summary.part, digest_reader(&bytes[..]).unwrap());

        let mut r = ArchiveReader::new(&bytes[..]).unwrap();
        let entries: Vec<ArchiveEntry> = r.entries().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0].kind, EntryKind::Version);
        assert_eq!(entries[0].data, b"1\n");
        assert_eq!(entries[1].kind, EntryKind::Resources);
        let table: Vec<ResourceType> = serde_json::from_slice(&entries[1].data).unwrap();
        assert_eq!(table, types());
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(entries[i + 2].kind, EntryKind::Item(p.clone()));
            assert_eq!(entries[i + 2].data, format!("{{\"i\":{i}}}").into_bytes());
        }
    }

    #[test]
    fn frames_make_one_zstd_stream() {
        // Varied, compressible input over several frames and a partial last one.
        let pattern = br#"{"kind":"ConfigMap","data":[0123456789]}"#;
        let input: Vec<u8> = (0..FRAME_INPUT * 5 / 2)
            .map(|i| pattern[i % pattern.len()] ^ (i / 4093) as u8)
            .collect();
        let mut encoder = FrameEncoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
        // Small and large writes, as tar makes them.
        for chunk in input.chunks(700_001) {
            let (head, tail) = chunk.split_at(chunk.len().min(512));
            encoder.write_all(head).unwrap();
            encoder.write_all(tail).unwrap();
        }
        assert_eq!(encoder.frames, 2);
        let out = encoder.finish().unwrap();
        assert!(out.len() < input.len() / 4, "{} bytes", out.len());
        let mut decoded = Vec::new();
        zstd::stream::read::Decoder::new(&out[..])
            .unwrap()
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(decoded == input, "the frames decode to the input");
        // Three frames, each a complete one.
        let mut frames = 0;
        let mut rest = &out[..];
        while !rest.is_empty() {
            let size = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            rest = &rest[size..];
            frames += 1;
        }
        assert_eq!(frames, 3);

        // No input still makes a (decodable, empty) stream.
        let empty = FrameEncoder::new(Vec::new(), ZSTD_LEVEL)
            .unwrap()
            .finish()
            .unwrap();
        assert!(!empty.is_empty());
        assert!(zstd::stream::decode_all(&empty[..]).unwrap().is_empty());
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let started = Utc::now();
        let mut w = ArchiveWriter::new(Vec::new(), started, &types()).unwrap();
        for i in 0..200 {
            let p = ItemPath::namespaced(ResourceKey::new("configmaps", ""), "a", format!("c{i}"));
            // Incompressible-ish payloads so that the archive spans many blocks.
            let payload: String = (0..400)
                .map(|j| char::from(b'a' + ((i * 7 + j * 13) % 26) as u8))
                .collect();
            w.append(&p, payload.as_bytes()).unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        let cut = &bytes[..bytes.len() / 2];
        let mut r = ArchiveReader::new(cut).unwrap();
        let result: Result<Vec<_>> = r.entries().unwrap().collect();
        assert!(result.is_err(), "a truncated archive must not read cleanly");
    }
}
