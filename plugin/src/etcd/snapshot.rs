//! Taking a snapshot: the Maintenance.Snapshot stream of one member, piped
//! through zstd (and age) on a blocking thread into a multipart upload.
//!
//! Nothing is ever held whole: the stream, the compressor and the upload run
//! concurrently through small bounded channels, so memory stays flat whatever
//! the database size. The sha256 trailer is checked before the upload is
//! committed: a multipart upload is invisible until it completes, so a
//! stream that is cut off or fails its trailer is aborted and nothing appears
//! in the location. Parts are retried by the object store client; the sidecar
//! is written last and is what makes a snapshot listed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use etcd_client::GetOptions;
use object_store::{ObjectStoreExt, WriteMultipart};

use super::catalog::{self, MemberInfo, SnapshotMeta};
use super::codec::{self, CodecError, TRAILER_LEN};
use super::connect::{ConnectArgs, ConnectError};
use crate::location::Store;

/// Part size of the multipart upload (S3's minimum is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight at once; with [`PART_SIZE`] this bounds upload memory.
const PARTS_IN_FLIGHT: usize = 2;
/// How long to wait for the next message of the stream before giving up.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors taking a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The member could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An RPC before the stream failed.
    #[error("{action} on {endpoint} failed")]
    Rpc {
        /// What was asked.
        action: &'static str,
        /// The member.
        endpoint: String,
        /// The client error.
        source: etcd_client::Error,
    },
    /// The snapshot stream broke off.
    #[error(
        "the snapshot stream from {endpoint} broke off after {received} bytes: {reason}; nothing was uploaded"
    )]
    StreamCut {
        /// The member.
        endpoint: String,
        /// Bytes received.
        received: u64,
        /// What happened.
        reason: String,
    },
    /// The stream ended without the size it announced plus a trailer.
    #[error(
        "the snapshot stream from {endpoint} ended after {received} bytes, but announced {announced} bytes plus a 32-byte sha256 trailer; nothing was uploaded"
    )]
    Incomplete {
        /// The member.
        endpoint: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced (database only).
        announced: u64,
    },
    /// The trailer check or compression failed.
    #[error("snapshot from {endpoint} refused, nothing was uploaded")]
    Codec {
        /// The member.
        endpoint: String,
        /// What failed.
        source: CodecError,
    },
    /// The upload failed (after the object store client's retries).
    #[error(
        "uploading {path} to location {location} failed; the partial upload was aborted and nothing is listed"
    )]
    Upload {
        /// The location.
        location: String,
        /// The key.
        path: String,
        /// The object-store error.
        source: object_store::Error,
    },
    /// Writing the sidecar failed.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// A blocking task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What to snapshot and where to put it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Cluster folder; the etcd cluster id (hex) when `None`.
    pub cluster: Option<String>,
    /// Snapshot name; `<timestamp>-<member>` when `None`.
    pub name: Option<String>,
    /// age recipients; empty for no encryption.
    pub recipients: Vec<age::x25519::Recipient>,
    /// zstd level.
    pub level: i32,
}

/// What the reader task saw.
struct StreamSummary {
    received: u64,
    announced: Option<u64>,
    header_revision: Option<i64>,
    version: String,
}

/// Take a snapshot of the member `conn` selects and store it in `store`.
pub async fn take(
    conn: &ConnectArgs,
    store: &Store,
    request: &Request,
) -> Result<SnapshotMeta, SnapshotError> {
    let started = Instant::now();
    let member = conn.member().await?;
    let endpoint = member.endpoint.clone();
    let mut client = member.client.clone();
    let created_at = Utc::now();

    // Keys and revision just before the stream opens; refined below with the
    // revision the stream itself reports.
    let count = client
        .get(
            vec![0u8],
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .map_err(|source| SnapshotError::Rpc {
            action: "counting keys",
            endpoint: endpoint.clone(),
            source,
        })?;
    let mut revision = count.header().map_or(0, |h| h.revision());
    let mut total_keys = count.count();

    let cluster = request
        .cluster
        .clone()
        .unwrap_or_else(|| format!("{:x}", member.cluster_id));
    let cluster = catalog::sanitize(&cluster);
    let member_name = if member.name.is_empty() {
        format!("{:x}", member.id)
    } else {
        member.name.clone()
    };
    let name = catalog::sanitize(
        &request
            .name
            .clone()
            .unwrap_or_else(|| catalog::default_name(created_at, &member_name)),
    );
    let encrypted = !request.recipients.is_empty();
    let object = catalog::object_key(&cluster, &name, encrypted);
    let path = store.path(&object);

    let mut stream = client
        .maintenance_client()
        .snapshot()
        .await
        .map_err(|source| SnapshotError::Rpc {
            action: "opening the snapshot stream",
            endpoint: endpoint.clone(),
            source,
        })?;

    let (raw_tx, raw_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(4);

    let reader_endpoint = endpoint.clone();
    let reader = tokio::spawn(async move {
        let mut summary = StreamSummary {
            received: 0,
            announced: None,
            header_revision: None,
            version: String::new(),
        };
        loop {
            let next = tokio::time::timeout(STREAM_IDLE_TIMEOUT, stream.message()).await;
            let message = match next {
                Err(_) => {
                    return Err(SnapshotError::StreamCut {
                        endpoint: reader_endpoint,
                        received: summary.received,
                        reason: format!("no data for {STREAM_IDLE_TIMEOUT:?}"),
                    });
                }
                Ok(Err(e)) => {
                    return Err(SnapshotError::StreamCut {
                        endpoint: reader_endpoint,
                        received: summary.received,
                        reason: e.to_string(),
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(m))) => m,
            };
            let blob = message.blob();
            if summary.announced.is_none() {
                // The first message says how much database follows it.
                summary.announced = Some(message.remaining_bytes() + blob.len() as u64);
                summary.header_revision = message.header().map(|h| h.revision()).filter(|r| *r > 0);
                summary.version = message.version().to_owned();
            }
            summary.received += blob.len() as u64;
            if raw_tx.send(Bytes::copy_from_slice(blob)).await.is_err() {
                // The encoder stopped (it reports why); stop reading.
                break;
            }
        }
        Ok(summary)
    });

    let recipients = request.recipients.clone();
    let level = request.level;
    let encoder =
        tokio::task::spawn_blocking(move || codec::encode(raw_rx, out_tx, &recipients, level));

    let upload = store
        .object_store()
        .put_multipart(&path)
        .await
        .map_err(|source| SnapshotError::Upload {
            location: store.name().to_owned(),
            path: object.clone(),
            source,
        })?;
    let mut upload = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut upload_error = None;
    while let Some(chunk) = out_rx.recv().await {
        if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
            upload_error = Some(e);
            break;
        }
        upload.put(chunk);
    }
    // Closing the receiver makes the encoder (and then the reader) stop early
    // when the upload failed.
    drop(out_rx);

    let encoded = encoder
        .await
        .map_err(|e| SnapshotError::Internal(e.to_string()));
    let summary = reader
        .await
        .map_err(|e| SnapshotError::Internal(e.to_string()));

    // Decide whether to commit. The order of the checks picks the most
    // telling error: the upload's own, then the stream's, then the trailer's.
    let verdict = (|| {
        if let Some(source) = upload_error {
            return Err(SnapshotError::Upload {
                location: store.name().to_owned(),
                path: object.clone(),
                source,
            });
        }
        let summary = summary??;
        if let Some(announced) = summary.announced
            && summary.received != announced + TRAILER_LEN as u64
        {
            return Err(SnapshotError::Incomplete {
                endpoint: endpoint.clone(),
                received: summary.received,
                announced,
            });
        }
        let encoded = encoded?.map_err(|source| SnapshotError::Codec {
            endpoint: endpoint.clone(),
            source,
        })?;
        Ok((summary, encoded))
    })();
    let (summary, encoded) = match verdict {
        Ok(v) => v,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(%abort, path = %object, "could not abort the partial upload");
            }
            return Err(e);
        }
    };
    upload
        .finish()
        .await
        .map_err(|source| SnapshotError::Upload {
            location: store.name().to_owned(),
            path: object.clone(),
            source,
        })?;

    if let Some(stream_revision) = summary.header_revision
        && stream_revision != revision
    {
        // Writes landed between the count and the snapshot: count again at the
        // revision the stream reported, so keys and revision agree.
        if let Ok(recount) = client
            .get(
                vec![0u8],
                Some(
                    GetOptions::new()
                        .with_all_keys()
                        .with_count_only()
                        .with_revision(stream_revision),
                ),
            )
            .await
        {
            revision = stream_revision;
            total_keys = recount.count();
        }
    }

    let meta = SnapshotMeta {
        format_version: catalog::FORMAT_VERSION,
        cluster,
        name,
        created_at,
        member: MemberInfo {
            id: format!("{:x}", member.id),
            name: member_name,
            endpoint: endpoint.clone(),
        },
        cluster_id: format!("{:x}", member.cluster_id),
        etcd_version: if summary.version.is_empty() {
            member.version.clone()
        } else {
            summary.version.clone()
        },
        revision,
        total_keys,
        db_size: encoded.checked.db_size,
        sha256: encoded.checked.sha256.clone(),
        compression: "zstd".to_owned(),
        encryption: encrypted.then(|| "age".to_owned()),
        object: object.clone(),
        stored_size: encoded.stored_size,
        stored_sha256: encoded.stored_sha256.clone(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        last_verification: None,
    };
    if let Err(e) = catalog::put_meta(store, &meta).await {
        // Without its sidecar the object is an orphan nobody lists: remove it.
        let _ = store.object_store().delete(&path).await;
        return Err(e.into());
    }
    Ok(meta)
}
