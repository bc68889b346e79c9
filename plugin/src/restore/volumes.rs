//! Volumes from CSI snapshots: for each restored claim with a usable snapshot
//! record, a pre-provisioned VolumeSnapshotContent (`deletionPolicy: Retain`,
//! pointing at the recorded snapshot handle) and a VolumeSnapshot bound to it
//! in the claim's target namespace. The claim itself gets `dataSource`
//! pointing at that VolumeSnapshot (see the transforms), so the target's CSI
//! driver provisions a new volume with the snapshot's data.
//!
//! This is the "pre-provisioned snapshot" flow of the CSI external-snapshotter:
//! it works on another cluster too, as long as its driver can reach the
//! snapshot (same cloud account/region, or the same storage backend).

use backup_common::{LABEL_BACKUP_NAME, LABEL_RESTORE_NAME};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::plan::{Item, snapshot_name};
use super::transform::TransformOptions;
use crate::archive::VolumeRecord;

/// API version of the snapshot objects the restore creates.
pub const SNAPSHOT_API_VERSION: &str = "snapshot.storage.k8s.io/v1";

/// The name of the VolumeSnapshotContent a restore creates for a claim:
/// cluster-scoped, so it must be unique across namespaces and restores, and
/// the same on a re-run of the same restore (so a re-run converges).
pub fn content_name(restore: &str, target_namespace: &str, claim: &str) -> String {
    let digest = Sha256::digest(format!("{restore}/{target_namespace}/{claim}"));
    format!("{restore}-{}", &hex::encode(digest)[..12])
}

/// The VolumeSnapshotContent and VolumeSnapshot for one record, in target form
/// (already transformed: labelled, namespace mapped). `None` when the record
/// has no snapshot handle or driver.
pub fn snapshot_objects(record: &VolumeRecord, options: &TransformOptions) -> Option<[Item; 2]> {
    let handle = record.snapshot_handle.as_deref()?;
    let driver = record.driver.as_deref()?;
    let namespace = options.map_namespace(&record.namespace).to_owned();
    let snapshot = snapshot_name(&record.pvc, &options.restore_name);
    let content = content_name(&options.restore_name, &namespace, &record.pvc);
    let labels = json!({
        LABEL_BACKUP_NAME: options.backup_name,
        LABEL_RESTORE_NAME: options.restore_name,
    });
    let annotations = json!({
        "kubectl-backup.dev/source-claim": format!("{}/{}", record.namespace, record.pvc),
    });
    let mut content_spec = json!({
        "deletionPolicy": "Retain",
        "driver": driver,
        "source": {"snapshotHandle": handle},
        "volumeSnapshotRef": {"namespace": namespace, "name": snapshot},
    });
    let mut snapshot_spec = json!({"source": {"volumeSnapshotContentName": content}});
    if let Some(class) = &record.volume_snapshot_class {
        content_spec["volumeSnapshotClassName"] = Value::String(class.clone());
        snapshot_spec["volumeSnapshotClassName"] = Value::String(class.clone());
    }
    let content_obj = json!({
        "apiVersion": SNAPSHOT_API_VERSION,
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": content, "labels": labels, "annotations": annotations},
        "spec": content_spec,
    });
    let snapshot_obj = json!({
        "apiVersion": SNAPSHOT_API_VERSION,
        "kind": "VolumeSnapshot",
        "metadata": {"name": snapshot, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": snapshot_spec,
    });
    let item = |resource: &str, kind: &str, ns: Option<String>, name: String, object: Value| Item {
        group: "snapshot.storage.k8s.io".into(),
        resource: resource.into(),
        api_version: SNAPSHOT_API_VERSION.into(),
        kind: kind.into(),
        namespace: ns,
        name,
        deferred: false,
        generated: true,
        controller: None,
        object,
        untouched: Default::default(),
    };
    Some([
        item(
            "volumesnapshotcontents",
            "VolumeSnapshotContent",
            None,
            content,
            content_obj,
        ),
        item(
            "volumesnapshots",
            "VolumeSnapshot",
            Some(namespace),
            snapshot,
            snapshot_obj,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> VolumeRecord {
        VolumeRecord {
            namespace: "shop".into(),
            pvc: "data".into(),
            persistent_volume: Some("pv-1".into()),
            driver: Some("hostpath.csi.k8s.io".into()),
            storage_class: Some("fast".into()),
            size: Some("1Gi".into()),
            volume_snapshot_class: Some("csi-hostpath".into()),
            volume_snapshot_name: Some("data-nightly".into()),
            volume_snapshot_content_name: Some("snapcontent-1".into()),
            snapshot_handle: Some("7bdd".into()),
            restore_size: Some("1Gi".into()),
            ready_to_use: true,
            volume_snapshot: None,
            volume_snapshot_content: None,
            error: None,
        }
    }

    #[test]
    fn pre_provisioned_pair_points_at_each_other_in_the_mapped_namespace() {
        let options = TransformOptions {
            backup_name: "nightly".into(),
            restore_name: "r1".into(),
            namespace_mapping: [("shop".to_owned(), "shop2".to_owned())].into(),
            ..Default::default()
        };
        let [content, snapshot] = snapshot_objects(&record(), &options).unwrap();
        assert_eq!(content.object["spec"]["deletionPolicy"], "Retain");
        assert_eq!(content.object["spec"]["source"]["snapshotHandle"], "7bdd");
        assert_eq!(content.object["spec"]["driver"], "hostpath.csi.k8s.io");
        assert_eq!(
            content.object["spec"]["volumeSnapshotRef"],
            json!({"namespace": "shop2", "name": "data-r1"})
        );
        assert_eq!(snapshot.object["metadata"]["namespace"], "shop2");
        assert_eq!(snapshot.object["metadata"]["name"], "data-r1");
        assert_eq!(
            snapshot.object["spec"]["source"]["volumeSnapshotContentName"],
            content.object["metadata"]["name"]
        );
        assert_eq!(
            snapshot.object["spec"]["volumeSnapshotClassName"],
            "csi-hostpath"
        );
        assert_eq!(
            snapshot.object["metadata"]["labels"][LABEL_RESTORE_NAME],
            "r1"
        );
        assert!(content.generated && snapshot.generated);
        assert_eq!(content.namespace, None);
    }

    #[test]
    fn content_names_are_stable_and_distinct() {
        assert_eq!(
            content_name("r1", "a", "data"),
            content_name("r1", "a", "data")
        );
        assert_ne!(
            content_name("r1", "a", "data"),
            content_name("r1", "b", "data")
        );
        assert_ne!(
            content_name("r1", "a", "data"),
            content_name("r2", "a", "data")
        );
    }

    #[test]
    fn records_without_a_handle_make_nothing() {
        let mut r = record();
        r.snapshot_handle = None;
        assert!(snapshot_objects(&r, &TransformOptions::default()).is_none());
    }
}
