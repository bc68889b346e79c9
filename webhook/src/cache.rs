//! The watch-backed StorageClass cache (a kube-runtime reflector).
//!
//! Policies never GET a StorageClass per request: a watch keeps a local copy,
//! and every change rebuilds the immutable [`ClusterState`] snapshot that
//! requests read. The server is ready only once the initial list has synced.

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};

use crate::App;
use crate::policy::{ClusterState, StorageClassInfo};

/// The annotation that marks the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its deprecated beta spelling, still honoured by Kubernetes.
pub const DEFAULT_CLASS_ANNOTATION_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// What the policies need from a StorageClass.
pub fn info(class: &StorageClass) -> StorageClassInfo {
    let annotations = class.metadata.annotations.as_ref();
    let is_default = [DEFAULT_CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION_BETA]
        .iter()
        .any(|k| {
            annotations
                .and_then(|a| a.get(*k))
                .is_some_and(|v| v == "true")
        });
    StorageClassInfo {
        name: class.metadata.name.clone().unwrap_or_default(),
        is_default,
        created: class
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

/// Watch StorageClasses until the process ends, keeping `app`'s snapshot
/// current and flipping readiness once the first list is in.
pub async fn run(client: kube::Client, app: Arc<App>) {
    let api: Api<StorageClass> = Api::all(client);
    let (reader, writer) = reflector::store();
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_)) => {
                let classes: Vec<StorageClassInfo> =
                    reader.state().iter().map(|c| info(c)).collect();
                let count = classes.len();
                app.set_state(ClusterState::new(classes));
                if !app.is_ready() {
                    tracing::info!(storage_classes = count, "StorageClass cache synced; ready");
                    app.set_ready(true);
                }
            }
            Ok(Event::Init | Event::InitApply(_)) => {}
            // The watcher retries with backoff; keep serving from the last
            // snapshot (a relist will resync it).
            Err(error) => tracing::warn!(%error, "StorageClass watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_annotations_are_recognised() {
        let mut sc: StorageClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "std", "creationTimestamp": "2026-11-21T14:24:32Z",
                         "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": "x"
        }))
        .unwrap();
        let i = info(&sc);
        assert!(i.is_default);
        assert_eq!(i.name, "std");
        assert!(i.created.starts_with("2026-11-21"));
        sc.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION_BETA.to_owned(), "true".to_owned())].into());
        assert!(info(&sc).is_default);
        sc.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION.to_owned(), "false".to_owned())].into());
        assert!(!info(&sc).is_default);
    }
}
