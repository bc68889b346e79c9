//! Policy 1: snapshot classes keep `Retain`.
//!
//! A backup records the VolumeSnapshotContent of each volume snapshot; with
//! `deletionPolicy: Delete` the storage system deletes the snapshot as soon
//! as its VolumeSnapshot object goes away (a namespace deletion, a cleanup
//! job), and the backup silently loses its data. VolumeSnapshotClasses (all
//! of them) and restored VolumeSnapshotContents must therefore say `Retain`.

use json_patch::jsonptr::PointerBuf;
use json_patch::{PatchOperation, ReplaceOperation};
use kube::core::DynamicObject;
use serde_json::Value;

use super::{Finding, Fix, Report, short_warning};

/// The CSI snapshot API group.
pub const GROUP: &str = "snapshot.storage.k8s.io";

const WHY: &str = "backups need Retain so the snapshot data outlives its VolumeSnapshot \
                   (with Delete, deleting the VolumeSnapshot destroys the backup's data)";

/// Review a VolumeSnapshotClass (`deletionPolicy` at the top level).
pub fn review_class(obj: &DynamicObject) -> Report {
    review_at(obj, "VolumeSnapshotClass", &["deletionPolicy"])
}

/// Review a VolumeSnapshotContent (`spec.deletionPolicy`).
pub fn review_content(obj: &DynamicObject) -> Report {
    review_at(obj, "VolumeSnapshotContent", &["spec", "deletionPolicy"])
}

fn review_at(obj: &DynamicObject, kind: &str, path: &[&str]) -> Report {
    let mut value = &obj.data;
    for key in path {
        value = value.get(key).unwrap_or(&Value::Null);
    }
    // Anything but the string "Delete" is left alone: "Retain" complies, and
    // a missing or malformed field is the CRD schema's to refuse.
    if value.as_str() != Some("Delete") {
        return Report::default();
    }
    let name = obj.metadata.name.as_deref().unwrap_or("");
    Report {
        findings: vec![Finding {
            message: format!(
                "{kind} {name:?} has deletionPolicy Delete: {WHY}; set deletionPolicy: Retain"
            ),
            fix: Some(Fix {
                patch: vec![PatchOperation::Replace(ReplaceOperation {
                    path: PointerBuf::from_tokens(path.iter().copied()),
                    value: Value::String("Retain".to_owned()),
                })],
                warning: short_warning(format!(
                    "{kind} {name}: deletionPolicy Delete changed to Retain so backups keep their snapshots"
                )),
            }),
        }],
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use backup_common::policy::{Mode, Policy, PolicyConfig};

    use super::super::test_support::*;
    use super::super::*;

    fn policy(mode: Mode) -> Policy {
        let mut config = PolicyConfig::default();
        config.snapshot_class.mode = mode;
        Policy::new(config).unwrap()
    }

    fn run(review_value: serde_json::Value, stage: Stage, mode: Mode) -> Verdict {
        let policy = policy(mode);
        let state = ClusterState::default();
        let ctx = Context {
            policy: &policy,
            state: &state,
            own_namespace: "kubectl-backup",
        };
        review(&request(review_value), stage, &ctx)
    }

    #[test]
    fn mutate_mode_patches_delete_to_retain() {
        let v = review_json("admission-volumesnapshotclass-create.json", 0);
        let verdict = run(v.clone(), Stage::Mutate, Mode::Mutate);
        assert!(verdict.allowed());
        assert_eq!(
            verdict.decision,
            Some((PolicyName::SnapshotClass, Outcome::Mutated))
        );
        assert_eq!(
            serde_json::to_value(&verdict.patch).unwrap(),
            serde_json::json!([{"op": "replace", "path": "/deletionPolicy", "value": "Retain"}])
        );
        assert_eq!(verdict.warnings.len(), 1);
        assert!(verdict.warnings[0].contains("Retain") && verdict.warnings[0].len() <= 120);

        // The patched object passes /validate and a reinvocation changes nothing.
        let patched = apply(&v, &verdict.patch);
        assert_eq!(patched["request"]["object"]["deletionPolicy"], "Retain");
        let again = run(patched.clone(), Stage::Mutate, Mode::Mutate);
        assert!(again.patch.is_empty() && again.warnings.is_empty());
        let validated = run(patched, Stage::Validate, Mode::Mutate);
        assert!(validated.allowed() && validated.warnings.is_empty());
    }

    #[test]
    fn mutate_mode_validate_refuses_a_delete_that_got_through() {
        // e.g. the mutating webhook (fail-open) was unreachable.
        let v = review_json("admission-volumesnapshotclass-create.json", 1);
        let verdict = run(v, Stage::Validate, Mode::Mutate);
        assert!(!verdict.allowed());
        assert!(verdict.denials[0].contains("\"rec-vsc\""));
    }

    #[test]
    fn deny_mode_refuses_with_the_reason() {
        let v = review_json("admission-volumesnapshotclass-create.json", 1);
        let mutated = run(v.clone(), Stage::Mutate, Mode::Deny);
        assert!(mutated.patch.is_empty() && mutated.allowed());
        let verdict = run(v, Stage::Validate, Mode::Deny);
        assert_eq!(
            verdict.decision,
            Some((PolicyName::SnapshotClass, Outcome::Denied))
        );
        let msg = &verdict.denials[0];
        assert!(msg.contains("deletionPolicy Delete"), "{msg}");
        assert!(msg.contains("backups need Retain"), "{msg}");
    }

    #[test]
    fn update_is_covered_too() {
        let v = review_json("admission-volumesnapshotclass-update.json", 0);
        let verdict = run(v, Stage::Mutate, Mode::Mutate);
        assert_eq!(verdict.patch.len(), 1);
    }

    #[test]
    fn warn_and_off_modes() {
        let v = review_json("admission-volumesnapshotclass-create.json", 1);
        let warned = run(v.clone(), Stage::Validate, Mode::Warn);
        assert!(warned.allowed());
        assert_eq!(warned.warnings.len(), 1);
        assert_eq!(
            warned.decision,
            Some((PolicyName::SnapshotClass, Outcome::Warned))
        );
        for stage in [Stage::Mutate, Stage::Validate] {
            let off = run(v.clone(), stage, Mode::Off);
            assert!(off.allowed() && off.warnings.is_empty() && off.patch.is_empty());
        }
    }

    #[test]
    fn retain_and_malformed_policies_are_left_alone() {
        for value in [
            serde_json::json!("Retain"),
            serde_json::json!(null),
            serde_json::json!(5),
            serde_json::json!({"x": 1}),
        ] {
            let mut v = review_json("admission-volumesnapshotclass-create.json", 0);
            v["request"]["object"]["deletionPolicy"] = value.clone();
            for stage in [Stage::Mutate, Stage::Validate] {
                let verdict = run(v.clone(), stage, Mode::Deny);
                assert!(verdict.allowed() && verdict.patch.is_empty(), "{value}");
            }
        }
    }

    #[test]
    fn restored_contents_are_patched_under_spec() {
        let mut v = review_json("admission-volumesnapshotclass-create.json", 0);
        v["request"]["kind"]["kind"] = "VolumeSnapshotContent".into();
        v["request"]["object"]["kind"] = "VolumeSnapshotContent".into();
        v["request"]["object"]["spec"] =
            serde_json::json!({"deletionPolicy": "Delete", "driver": "d"});
        // Not restored: out of the default content scope.
        let untouched = run(v.clone(), Stage::Mutate, Mode::Mutate);
        assert!(untouched.patch.is_empty() && untouched.decision.is_none());
        mark_restored(&mut v);
        let verdict = run(v, Stage::Mutate, Mode::Mutate);
        assert_eq!(
            serde_json::to_value(&verdict.patch).unwrap(),
            serde_json::json!([{"op": "replace", "path": "/spec/deletionPolicy", "value": "Retain"}])
        );
    }
}
