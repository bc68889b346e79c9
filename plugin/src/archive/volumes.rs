//! `volumes.json`: the CSI volume snapshots a backup took.
//!
//! One record per selected PVC. A record with `volumeSnapshotContent` set is
//! restorable: the content is `Retain`ed, so the storage-side snapshot outlives
//! the VolumeSnapshot object, and a restore pre-provisions a content pointing
//! at `snapshotHandle`.

use serde::{Deserialize, Serialize};

use super::{Error, FORMAT_VERSION, Result};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecords {
    /// Archive format version.
    pub format_version: u32,
    /// One record per PVC that was considered.
    pub volumes: Vec<VolumeRecord>,
}

impl VolumeRecords {
    /// An empty file of the current format.
    pub fn new() -> Self {
        VolumeRecords {
            format_version: FORMAT_VERSION,
            volumes: Vec::new(),
        }
    }

    /// Parse `volumes.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(Error::Json)
    }

    /// Serialize as pretty JSON.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(Error::Json)?;
        v.push(b'\n');
        Ok(v)
    }
}

/// One PVC and its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    /// Namespace of the PVC.
    pub namespace: String,
    /// Name of the PVC.
    pub pvc: String,
    /// Name of the bound PV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume: Option<String>,
    /// CSI driver of the PV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// StorageClass of the PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Requested size of the PVC (e.g. `10Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// VolumeSnapshotClass used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class: Option<String>,
    /// Name of the VolumeSnapshot created in the PVC's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_name: Option<String>,
    /// Name of the bound VolumeSnapshotContent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
    /// The storage system's snapshot id (`status.snapshotHandle` of the content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_handle: Option<String>,
    /// `status.restoreSize` of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<String>,
    /// Did the snapshot become ready to use?
    pub ready_to_use: bool,
    /// The VolumeSnapshot object as read after it became ready (cleaned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<serde_json::Value>,
    /// The VolumeSnapshotContent object as read after it was set to Retain (cleaned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content: Option<serde_json::Value>,
    /// Why there is no usable snapshot (no class for the driver, timeout, error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VolumeRecord {
    /// Can a restore recreate the volume from this record?
    pub fn is_restorable(&self) -> bool {
        self.ready_to_use && self.snapshot_handle.is_some() && self.error.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_restorable_needs_handle() {
        let mut rec = VolumeRecord {
            namespace: "db".into(),
            pvc: "data".into(),
            persistent_volume: Some("pv-1".into()),
            driver: Some("hostpath.csi.k8s.io".into()),
            storage_class: Some("fast".into()),
            size: Some("1Gi".into()),
            volume_snapshot_class: Some("csi-hostpath".into()),
            volume_snapshot_name: Some("data-abc".into()),
            volume_snapshot_content_name: Some("snapcontent-1".into()),
            snapshot_handle: Some("h-1".into()),
            restore_size: Some("1Gi".into()),
            ready_to_use: true,
            volume_snapshot: None,
            volume_snapshot_content: None,
            error: None,
        };
        assert!(rec.is_restorable());
        let mut file = VolumeRecords::new();
        file.volumes.push(rec.clone());
        let back = VolumeRecords::from_slice(&file.to_vec().unwrap()).unwrap();
        assert_eq!(back, file);
        rec.snapshot_handle = None;
        assert!(!rec.is_restorable());
    }
}
