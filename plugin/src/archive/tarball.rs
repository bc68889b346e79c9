//! Writing the tar stream of `resources.tar.zst`.
//!
//! The bytes are exactly those of `tar::Builder::append_data` with a GNU
//! header (a unit test compares them): the same header fields, GNU long-name
//! entries for paths over 100 bytes, the same padding and end-of-archive
//! blocks. What this skips is the builder's per-entry cost, which a backup
//! profile showed at about a tenth of the plugin's CPU: parsing every path
//! into components and re-joining it, formatting each number through
//! `format!`, and copying every entry through an 8 KiB stack buffer on its
//! way to the encoder. Item paths are built by this tool from names the API
//! server validated, so there is nothing to normalise; a NUL byte, which no
//! tar reader could get back, is refused.
//!
//! The archive is read with the `tar` crate.

use std::io::{self, Write};

/// tar's block size: headers are one block, data is padded to whole blocks.
pub const BLOCK: usize = 512;

/// Bytes of the header's name field; longer paths get a GNU long-name entry.
const NAME_LEN: usize = 100;

// Field offsets of the (old-style) header all tar formats share.
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const MAGIC: std::ops::Range<usize> = 257..265;

/// The GNU magic and version (`"ustar "`, `" \0"`).
const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// The name GNU tar gives the entry that carries a long path.
const LONG_LINK: &[u8] = b"././@LongLink";

const ZEROS: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// A tar stream of regular files, written to `out`.
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    out: W,
    /// The header every entry starts from: magic, mode 0644, type regular,
    /// the archive's mtime; uid and gid left empty.
    template: Template,
    /// The same for GNU long-name entries (uid and gid 0, mtime 0).
    long_template: Template,
}

/// A header with every field set but the name, the size and the checksum.
#[derive(Debug)]
struct Template {
    bytes: [u8; BLOCK],
    /// The sum of its bytes with the checksum field counted as spaces.
    sum: u64,
}

impl Template {
    fn new(bytes: [u8; BLOCK]) -> Self {
        let mut with_spaces = bytes;
        with_spaces[CKSUM].fill(b' ');
        Template {
            bytes,
            sum: byte_sum(&with_spaces),
        }
    }

    /// The header for `name` (at most [`NAME_LEN`] bytes; empty leaves the
    /// template's) and `size`, checksum included. The fields written are
    /// zero in the template, so the checksum is the template's sum plus
    /// theirs.
    fn header(&self, name: &[u8], size: u64) -> io::Result<[u8; BLOCK]> {
        let mut header = self.bytes;
        header[..name.len()].copy_from_slice(name);
        octal(&mut header[SIZE], size)?;
        let sum = self.sum + byte_sum(name) + byte_sum(&header[SIZE]);
        octal(&mut header[CKSUM], sum)?;
        Ok(header)
    }
}

fn byte_sum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

impl<W: Write> TarWriter<W> {
    /// A writer whose entries all carry `mtime` (seconds since the epoch).
    pub fn new(out: W, mtime: u64) -> io::Result<Self> {
        let mut template = [0u8; BLOCK];
        template[MAGIC].copy_from_slice(GNU_MAGIC);
        octal(&mut template[MODE], 0o644)?;
        octal(&mut template[MTIME], mtime)?;
        template[TYPEFLAG] = b'0';

        let mut long_template = [0u8; BLOCK];
        long_template[MAGIC].copy_from_slice(GNU_MAGIC);
        long_template[..LONG_LINK.len()].copy_from_slice(LONG_LINK);
        octal(&mut long_template[MODE], 0o644)?;
        octal(&mut long_template[UID], 0)?;
        octal(&mut long_template[GID], 0)?;
        octal(&mut long_template[MTIME], 0)?;
        long_template[TYPEFLAG] = b'L';
        Ok(TarWriter {
            out,
            template: Template::new(template),
            long_template: Template::new(long_template),
        })
    }

    /// The writer the stream goes to.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Append a regular file `path` holding `data`.
    pub fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let name = path.as_bytes();
        if name.is_empty() || name.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?} cannot be a path in a tar archive"),
            ));
        }
        // The headers are complete before anything is written, so a
        // refused entry leaves nothing of itself in the stream.
        let size = data.len() as u64;
        if name.len() > NAME_LEN {
            // GNU long name: an entry holding the path (NUL-terminated),
            // then the header with as much of it as fits.
            let header = self
                .template
                .header(truncate_at_char(path, NAME_LEN), size)?;
            let long = self.long_template.header(&[], name.len() as u64 + 1)?;
            self.out.write_all(&long)?;
            self.out.write_all(name)?;
            self.out.write_all(&[0])?;
            self.pad(name.len() + 1)?;
            self.out.write_all(&header)?;
        } else {
            let header = self.template.header(name, size)?;
            self.out.write_all(&header)?;
        }
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    /// Zeros up to the next block boundary after `len` bytes of data.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        let rest = len % BLOCK;
        if rest == 0 {
            return Ok(());
        }
        self.out.write_all(&ZEROS[..BLOCK - rest])
    }

    /// End the archive (two zero blocks) and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&ZEROS)?;
        Ok(self.out)
    }
}

/// The longest prefix of `path` of at most `max` bytes that ends on a
/// character boundary (as the `tar` crate truncates long names).
fn truncate_at_char(path: &str, max: usize) -> &[u8] {
    let mut end = max.min(path.len());
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path.as_bytes()[..end]
}

/// Write `value` as zero-padded octal digits ending in a NUL, filling the
/// field, as the `tar` crate does for the numbers it writes.
fn octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let Some((nul, digits)) = field.split_last_mut() else {
        return Err(io::Error::other("an empty tar header field"));
    };
    *nul = 0;
    let mut rest = value;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (rest & 7) as u8;
        rest >>= 3;
    }
    if rest != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value} does not fit a tar header field"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What `tar::Builder` writes for the same entries (GNU headers, the
    /// fields `ArchiveWriter` used to set).
    fn with_tar_crate(entries: &[(&str, Vec<u8>)], mtime: u64) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn with_writer(entries: &[(&str, Vec<u8>)], mtime: u64) -> Vec<u8> {
        let mut writer = TarWriter::new(Vec::new(), mtime).unwrap();
        for (path, data) in entries {
            writer.append(path, data).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn writes_what_the_tar_crate_writes() {
        let exactly_100 = format!("resources/configmaps/namespaces/a/{}.json", "n".repeat(61));
        assert_eq!(exactly_100.len(), 100);
        let over_100 = format!("{}x", &exactly_100[..99]);
        let long = format!(
            "resources/roles.rbac.authorization.k8s.io/cluster/{}.json",
            "r".repeat(240)
        );
        // A two-byte character across the 100-byte cut.
        let utf8 = format!(
            "resources/roles/cluster/{}é{}.json",
            "u".repeat(75),
            "v".repeat(30)
        );
        let entries: Vec<(&str, Vec<u8>)> = vec![
            ("metadata/version", b"1\n".to_vec()),
            ("resources/configmaps/namespaces/a/one.json", b"{}".to_vec()),
            ("resources/secrets/namespaces/b/empty.json", Vec::new()),
            (
                "resources/secrets/namespaces/b/block.json",
                vec![b'x'; BLOCK],
            ),
            (
                "resources/secrets/namespaces/b/block1.json",
                vec![b'y'; BLOCK + 1],
            ),
            (exactly_100.as_str(), b"{\"a\":1}".to_vec()),
            (over_100.as_str(), b"{\"b\":2}".to_vec()),
            (long.as_str(), vec![b'z'; 3000]),
            (utf8.as_str(), b"{}".to_vec()),
        ];
        for mtime in [0, 1_767_323_045] {
            let ours = with_writer(&entries, mtime);
            let theirs = with_tar_crate(&entries, mtime);
            assert_eq!(ours.len(), theirs.len());
            for (block, (a, b)) in ours.chunks(BLOCK).zip(theirs.chunks(BLOCK)).enumerate() {
                assert!(a == b, "block {block} differs:\n{a:?}\n{b:?}");
            }
        }

        // And it reads back, long names included.
        let bytes = with_writer(&entries, 7);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut read = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().mtime().unwrap(), 7);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            read.push((path, data));
        }
        let want: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(p, d)| (p.to_string(), d.clone()))
            .collect();
        assert_eq!(read, want);
    }

    #[test]
    fn refuses_what_no_reader_could_get_back() {
        let mut writer = TarWriter::new(Vec::new(), 0).unwrap();
        assert!(writer.append("", b"{}").is_err());
        assert!(writer.append("resources/a\0b.json", b"{}").is_err());
        let mut field = [0u8; 12];
        assert!(octal(&mut field, 0o77_777_777_777).is_ok());
        assert_eq!(&field, b"77777777777\0");
        assert!(octal(&mut field, 1 << 33).is_err());
    }
}
