//! Reading a stored snapshot back: stream it from the location, decrypt and
//! decompress on a blocking thread, recheck the sha256 trailer, and write the
//! plain snapshot (database + trailer, as `etcdctl snapshot save` writes it)
//! to a file when asked. Used by `verify`, `download`, `status --deep` and
//! `restore`.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::catalog::SnapshotMeta;
use super::codec::{self, CodecError, Decoded};
use crate::location::Store;

/// Errors reading a stored snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The object could not be read.
    #[error("cannot read {path} from location {location}")]
    Store {
        /// The location.
        location: String,
        /// The key.
        path: String,
        /// The object-store error.
        source: object_store::Error,
    },
    /// Decryption or decompression failed.
    #[error("snapshot {id}")]
    Codec {
        /// The snapshot.
        id: String,
        /// What failed.
        source: CodecError,
    },
    /// The snapshot is encrypted and no identity was given.
    #[error(
        "snapshot {0} is encrypted with age: pass --identity FILE (an age identity file holding a matching key)"
    )]
    NeedsIdentity(String),
    /// The identity file is unusable.
    #[error("cannot use age identity file {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A local file could not be written.
    #[error("cannot write {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A blocking task panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Load age identities from a file (as `age -d -i FILE` reads it).
pub fn load_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, StoredError> {
    let bad = |reason: String| StoredError::Identity {
        path: path.to_owned(),
        reason,
    };
    let file =
        age::IdentityFile::from_file(path.display().to_string()).map_err(|e| bad(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
    if ids.is_empty() {
        return Err(bad("it holds no identities".to_owned()));
    }
    Ok(ids)
}

/// Stream `meta`'s object through the decoder; write the plain snapshot to
/// `out` when given. The trailer verdict is in the returned [`Decoded`].
pub async fn read(
    store: &Store,
    meta: &SnapshotMeta,
    identity: Option<&Path>,
    out: Option<std::fs::File>,
) -> Result<Decoded, StoredError> {
    // age identities are not Send: they are loaded on the blocking thread.
    let identity_file = match (&meta.encryption, identity) {
        (None, _) => None,
        (Some(_), None) => return Err(StoredError::NeedsIdentity(meta.id())),
        (Some(_), Some(path)) => Some(path.to_owned()),
    };
    let path = store.path(&meta.object);
    let result = store
        .object_store()
        .get(&path)
        .await
        .map_err(|source| StoredError::Store {
            location: store.name().to_owned(),
            path: meta.object.clone(),
            source,
        })?;
    let stream = result.into_stream().map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let id = meta.id();
    tokio::task::spawn_blocking(move || {
        let identities = identity_file.as_deref().map(load_identities).transpose()?;
        let mut out = out.map(std::io::BufWriter::new);
        let decoded = codec::decode(
            reader,
            identities.as_deref(),
            out.as_mut().map(|w| w as &mut dyn Write),
        );
        let decoded = decoded.map_err(|source| StoredError::Codec {
            id: id.clone(),
            source,
        })?;
        if let Some(mut w) = out {
            w.flush().map_err(|source| StoredError::Codec {
                id,
                source: CodecError::Io {
                    what: "cannot write the snapshot file",
                    source,
                },
            })?;
        }
        Ok(decoded)
    })
    .await
    .map_err(|e| StoredError::Internal(e.to_string()))?
}

/// Download `meta` into `dest` as a plain snapshot. It is written to
/// `dest.part` and renamed only when the trailer checks out (or when
/// `accept_mismatch`): a bad copy never sits at `dest`.
pub async fn download_to(
    store: &Store,
    meta: &SnapshotMeta,
    identity: Option<&Path>,
    dest: &Path,
    accept_mismatch: bool,
) -> Result<Decoded, StoredError> {
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let file = std::fs::File::create(&part).map_err(|source| StoredError::File {
        path: part.clone(),
        source,
    })?;
    let decoded = match read(store, meta, identity, Some(file)).await {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if decoded.check.is_err() && !accept_mismatch {
        let _ = std::fs::remove_file(&part);
        return Ok(decoded);
    }
    std::fs::rename(&part, dest).map_err(|source| StoredError::File {
        path: dest.to_owned(),
        source,
    })?;
    Ok(decoded)
}
