//! Where etcd snapshots live in a location and what their sidecar says.
//!
//! Layout: `<prefix>/etcd/<cluster>/<name>.db.zst` (`.db.zst.age` when
//! encrypted) plus `<prefix>/etcd/<cluster>/<name>.json`, written LAST. A
//! snapshot without its sidecar is incomplete and never listed. `<name>` is
//! `<UTC timestamp>-<member>` unless given. The pure decisions (naming, which
//! snapshots a prune deletes, resolving a user's reference) are here, tested
//! without a store.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::location::Store;

/// Version of the sidecar format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Folder of all etcd snapshots inside a location.
pub const ROOT: &str = "etcd";

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Listing or reading the location failed.
    #[error("cannot read {path} in location {location}")]
    Store {
        /// The location.
        location: String,
        /// The key.
        path: String,
        /// The object-store error.
        source: object_store::Error,
    },
    /// A sidecar is not valid JSON of the expected shape.
    #[error("snapshot record {path} in location {location} is not valid")]
    BadSidecar {
        /// The location.
        location: String,
        /// The key.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// No snapshot matches the reference.
    #[error(
        "no etcd snapshot {reference:?} in location {location} (see `kubectl backup etcd list`)"
    )]
    NotFound {
        /// What the user asked for.
        reference: String,
        /// The location.
        location: String,
    },
    /// Several snapshots match.
    #[error("{reference:?} matches several snapshots ({candidates}): name one as CLUSTER/NAME")]
    Ambiguous {
        /// What the user asked for.
        reference: String,
        /// The matches.
        candidates: String,
    },
}

/// The member a snapshot was taken from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// Member id, hex as etcdctl prints it.
    pub id: String,
    /// Member name.
    pub name: String,
    /// The client URL the snapshot was read from.
    pub endpoint: String,
}

/// The latest re-verification of a stored copy (`etcd verify`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// When.
    pub at: DateTime<Utc>,
    /// Did the stored copy decompress and match its sha256 trailer?
    pub ok: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The JSON sidecar of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The cluster folder.
    pub cluster: String,
    /// The snapshot name inside the cluster folder.
    pub name: String,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The member it was read from.
    pub member: MemberInfo,
    /// etcd cluster id, hex.
    pub cluster_id: String,
    /// etcd server version of the member.
    pub etcd_version: String,
    /// The store revision when the snapshot was taken.
    pub revision: i64,
    /// Keys in the keyspace at that revision.
    pub total_keys: i64,
    /// Size of the database (bytes, without the trailer).
    pub db_size: u64,
    /// sha256 (hex) of the database: the snapshot's own trailer, checked before upload.
    pub sha256: String,
    /// `zstd`.
    pub compression: String,
    /// `age` when encrypted to age recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The key of the stored object, relative to the location prefix.
    pub object: String,
    /// Bytes stored.
    pub stored_size: u64,
    /// sha256 (hex) of the stored bytes.
    pub stored_sha256: String,
    /// How long taking and uploading took, milliseconds.
    pub duration_ms: u64,
    /// The latest `etcd verify` of the stored copy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<Verification>,
}

impl SnapshotMeta {
    /// `cluster/name`, the full reference.
    pub fn id(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }

    /// Key of the sidecar, relative to the location prefix.
    pub fn sidecar_key(&self) -> String {
        sidecar_key(&self.cluster, &self.name)
    }

    /// Is the stored copy known good: checked at creation and not found
    /// corrupt by a later `verify`?
    pub fn is_verified(&self) -> bool {
        self.last_verification.as_ref().is_none_or(|v| v.ok)
    }
}

/// Key of a snapshot's data object.
pub fn object_key(cluster: &str, name: &str, encrypted: bool) -> String {
    let suffix = if encrypted { ".db.zst.age" } else { ".db.zst" };
    format!("{ROOT}/{cluster}/{name}{suffix}")
}

/// Key of a snapshot's sidecar.
pub fn sidecar_key(cluster: &str, name: &str) -> String {
    format!("{ROOT}/{cluster}/{name}.json")
}

/// Reduce `s` to what is safe in a key segment: ASCII alphanumerics, `-`
/// and `.`; anything else becomes `-`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with(['-', '.']) {
        out.remove(0);
    }
    if out.is_empty() {
        out.push_str("unnamed");
    }
    out
}

/// The default snapshot name: `<UTC timestamp>-<member>`, which sorts by time.
pub fn default_name(at: DateTime<Utc>, member: &str) -> String {
    format!("{}-{}", at.format("%Y%m%dT%H%M%SZ"), sanitize(member))
}

/// Write a sidecar (the commit point of a snapshot).
pub async fn put_meta(store: &Store, meta: &SnapshotMeta) -> Result<(), CatalogError> {
    let key = meta.sidecar_key();
    let body = serde_json::to_vec_pretty(meta).map_err(|source| CatalogError::BadSidecar {
        location: store.name().to_owned(),
        path: key.clone(),
        source,
    })?;
    store
        .object_store()
        .put(&store.path(&key), PutPayload::from(body))
        .await
        .map_err(|source| CatalogError::Store {
            location: store.name().to_owned(),
            path: key,
            source,
        })?;
    Ok(())
}

/// Every complete snapshot in the location (optionally of one cluster), newest first.
pub async fn list(store: &Store, cluster: Option<&str>) -> Result<Vec<SnapshotMeta>, CatalogError> {
    let root = match cluster {
        Some(c) => format!("{ROOT}/{c}"),
        None => ROOT.to_owned(),
    };
    let prefix = store.path(&root);
    let keys: Vec<object_store::path::Path> = store
        .object_store()
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_filter(|p| futures::future::ready(p.as_ref().ends_with(".json")))
        .try_collect()
        .await
        .map_err(|source| CatalogError::Store {
            location: store.name().to_owned(),
            path: root.clone(),
            source,
        })?;
    let mut metas: Vec<SnapshotMeta> = futures::stream::iter(keys)
        .map(|key| async move { get_meta_at(store, &key).await })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    sort_newest_first(&mut metas);
    Ok(metas)
}

async fn get_meta_at(
    store: &Store,
    key: &object_store::path::Path,
) -> Result<SnapshotMeta, CatalogError> {
    let bytes = store
        .object_store()
        .get(key)
        .await
        .map_err(|source| CatalogError::Store {
            location: store.name().to_owned(),
            path: key.to_string(),
            source,
        })?
        .bytes()
        .await
        .map_err(|source| CatalogError::Store {
            location: store.name().to_owned(),
            path: key.to_string(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|source| CatalogError::BadSidecar {
        location: store.name().to_owned(),
        path: key.to_string(),
        source,
    })
}

/// Newest first; ties broken by id so the order is stable.
pub fn sort_newest_first(metas: &mut [SnapshotMeta]) {
    metas.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id().cmp(&a.id()))
    });
}

/// Find the one snapshot `reference` names: `CLUSTER/NAME`, or a `NAME` that
/// is unique across clusters, or `latest` (the newest, within `cluster` if given).
pub fn resolve<'a>(
    metas: &'a [SnapshotMeta],
    reference: &str,
    location: &str,
) -> Result<&'a SnapshotMeta, CatalogError> {
    let not_found = || CatalogError::NotFound {
        reference: reference.to_owned(),
        location: location.to_owned(),
    };
    if reference == "latest" {
        return metas.first().ok_or_else(not_found);
    }
    let matches: Vec<&SnapshotMeta> = if reference.contains('/') {
        metas.iter().filter(|m| m.id() == reference).collect()
    } else {
        metas.iter().filter(|m| m.name == reference).collect()
    };
    match matches.as_slice() {
        [] => Err(not_found()),
        [one] => Ok(one),
        many => Err(CatalogError::Ambiguous {
            reference: reference.to_owned(),
            candidates: many.iter().map(|m| m.id()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// What `prune` keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Keep at most this many newest snapshots per cluster.
    pub keep: Option<usize>,
    /// Delete snapshots older than this.
    pub max_age: Option<chrono::Duration>,
}

/// Which snapshots a prune deletes (their ids), per cluster folder: those
/// beyond the `keep` newest, and those older than `max_age`. The newest
/// verified snapshot of each cluster is never deleted, whatever the rules say,
/// so a prune can never leave a cluster without a usable snapshot.
pub fn plan_prune(metas: &[SnapshotMeta], rules: Retention, now: DateTime<Utc>) -> Vec<String> {
    let mut sorted = metas.to_vec();
    sort_newest_first(&mut sorted);
    let clusters: Vec<String> = {
        let mut seen = HashSet::new();
        sorted
            .iter()
            .filter(|m| seen.insert(m.cluster.clone()))
            .map(|m| m.cluster.clone())
            .collect()
    };
    let mut doomed = Vec::new();
    for cluster in clusters {
        let of_cluster: Vec<&SnapshotMeta> =
            sorted.iter().filter(|m| m.cluster == cluster).collect();
        let protected = of_cluster.iter().find(|m| m.is_verified()).map(|m| m.id());
        for (index, meta) in of_cluster.iter().enumerate() {
            let beyond_keep = rules.keep.is_some_and(|k| index >= k);
            let too_old = rules.max_age.is_some_and(|age| now - meta.created_at > age);
            if (beyond_keep || too_old) && protected.as_deref() != Some(meta.id().as_str()) {
                doomed.push(meta.id());
            }
        }
    }
    doomed
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn meta(
        cluster: &str,
        name: &str,
        hours_ago: i64,
        ok: Option<bool>,
    ) -> SnapshotMeta {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        SnapshotMeta {
            format_version: FORMAT_VERSION,
            cluster: cluster.into(),
            name: name.into(),
            created_at: now - chrono::Duration::hours(hours_ago),
            member: MemberInfo {
                id: "8e9e05c52164694d".into(),
                name: "default".into(),
                endpoint: "http://127.0.0.1:2379".into(),
            },
            cluster_id: "cdf818194e3a8c32".into(),
            etcd_version: "3.4.23".into(),
            revision: 10,
            total_keys: 5,
            db_size: 20480,
            sha256: "00".repeat(32),
            compression: "zstd".into(),
            encryption: None,
            object: object_key(cluster, name, false),
            stored_size: 100,
            stored_sha256: "11".repeat(32),
            duration_ms: 5,
            last_verification: ok.map(|ok| Verification {
                at: now,
                ok,
                error: None,
            }),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn names_and_keys() {
        let at: DateTime<Utc> = "2026-11-21T15:04:05Z".parse().unwrap();
        assert_eq!(default_name(at, "Master_1"), "20261121T150405Z-Master-1");
        assert_eq!(object_key("c", "n", false), "etcd/c/n.db.zst");
        assert_eq!(object_key("c", "n", true), "etcd/c/n.db.zst.age");
        assert_eq!(sidecar_key("c", "n"), "etcd/c/n.json");
        assert_eq!(sanitize("../x"), "x");
        assert_eq!(sanitize(""), "unnamed");
    }

    #[test]
    fn keep_n_per_cluster() {
        let metas: Vec<_> = (0..5)
            .map(|i| meta("a", &format!("s{i}"), i, None))
            .chain((0..2).map(|i| meta("b", &format!("t{i}"), i, None)))
            .collect();
        let doomed = plan_prune(
            &metas,
            Retention {
                keep: Some(2),
                max_age: None,
            },
            now(),
        );
        assert_eq!(doomed, vec!["a/s2", "a/s3", "a/s4"]);
    }

    #[test]
    fn max_age_spares_the_newest_verified() {
        let metas = vec![
            meta("a", "new-corrupt", 30, Some(false)),
            meta("a", "old-good", 40, Some(true)),
            meta("a", "older", 50, None),
        ];
        let doomed = plan_prune(
            &metas,
            Retention {
                keep: None,
                max_age: Some(chrono::Duration::hours(24)),
            },
            now(),
        );
        assert_eq!(doomed, vec!["a/new-corrupt", "a/older"]);
        // keep 0 still keeps the newest verified one
        let doomed = plan_prune(
            &metas,
            Retention {
                keep: Some(0),
                max_age: None,
            },
            now(),
        );
        assert!(!doomed.contains(&"a/old-good".to_owned()));
        assert_eq!(doomed.len(), 2);
    }

    #[test]
    fn resolve_references() {
        let metas = vec![
            meta("a", "x", 1, None),
            meta("b", "x", 2, None),
            meta("a", "y", 3, None),
        ];
        assert_eq!(resolve(&metas, "a/x", "loc").unwrap().id(), "a/x");
        assert_eq!(resolve(&metas, "y", "loc").unwrap().id(), "a/y");
        assert_eq!(resolve(&metas, "latest", "loc").unwrap().id(), "a/x");
        assert!(matches!(
            resolve(&metas, "x", "loc"),
            Err(CatalogError::Ambiguous { .. })
        ));
        assert!(matches!(
            resolve(&metas, "z", "loc"),
            Err(CatalogError::NotFound { .. })
        ));
    }

    #[test]
    fn sidecar_round_trips() {
        let m = meta("a", "x", 1, Some(true));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"totalKeys\":5"));
        assert_eq!(serde_json::from_str::<SnapshotMeta>(&json).unwrap(), m);
    }
}
