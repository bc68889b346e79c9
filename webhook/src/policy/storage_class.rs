//! Policy 3: restored PVCs and StatefulSets only name StorageClasses that exist.
//!
//! A backup taken on one cluster names that cluster's classes (`gp2`,
//! `premium-rwo`, ...). Restored elsewhere, a PVC with an unknown class stays
//! Pending forever. The webhook remaps the class from the policy's map (the
//! target must exist), else to the default class when the policy allows it,
//! else refuses the object naming the missing class and the classes that do
//! exist. StorageClasses come from the watch-backed cache in [`ClusterState`].

use backup_common::policy::StorageClassPolicy;
use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{PatchOperation, ReplaceOperation};
use kube::core::DynamicObject;
use serde_json::Value;

use super::{ClusterState, Finding, Fix, Report, short_warning};

/// Review a PersistentVolumeClaim CREATE.
pub fn review_pvc(
    obj: &DynamicObject,
    policy: &StorageClassPolicy,
    state: &ClusterState,
) -> Report {
    let name = obj.metadata.name.as_deref().unwrap_or("");
    let mut report = Report::default();
    match obj.data.pointer("/spec/storageClassName") {
        None | Some(Value::Null) => {
            // The DefaultStorageClass admission plugin runs before webhooks,
            // so a PVC still without a class means there is no default.
            if state.default_class().is_none() {
                report.notes.push(short_warning(format!(
                    "PVC {name} has no storageClassName and the cluster has no default StorageClass; \
                     it binds only to a matching PV"
                )));
            }
        }
        Some(Value::String(class)) => {
            let what = format!("PersistentVolumeClaim {name:?}");
            if let Some(f) = check_class(&what, class, &["spec", "storageClassName"], policy, state)
            {
                report.findings.push(f);
            }
        }
        // A non-string class is the API server's to refuse.
        Some(_) => {}
    }
    report
}

/// Review a StatefulSet CREATE or UPDATE (`spec.volumeClaimTemplates`).
///
/// On UPDATE, templates identical to the old object's are skipped: they are
/// immutable, and refusing an unrelated update (a scale, an image bump)
/// because of a class chosen at creation would wedge the StatefulSet.
pub fn review_statefulset(
    obj: &DynamicObject,
    old: Option<&DynamicObject>,
    policy: &StorageClassPolicy,
    state: &ClusterState,
) -> Report {
    let name = obj.metadata.name.as_deref().unwrap_or("");
    let mut report = Report::default();
    let Some(templates) = obj
        .data
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
    else {
        return report;
    };
    let old_templates = old
        .and_then(|o| o.data.pointer("/spec/volumeClaimTemplates"))
        .and_then(Value::as_array);
    for (index, template) in templates.iter().enumerate() {
        if old_templates.is_some_and(|olds| olds.contains(template)) {
            continue;
        }
        let Some(class) = template
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let template_name = template
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let what = format!("StatefulSet {name:?} volumeClaimTemplate {template_name:?}");
        let index = index.to_string();
        let path = [
            "spec",
            "volumeClaimTemplates",
            index.as_str(),
            "spec",
            "storageClassName",
        ];
        if let Some(f) = check_class(&what, class, &path, policy, state) {
            report.findings.push(f);
        }
    }
    report
}

/// A finding when `class` does not exist, with a remap fix when possible.
fn check_class(
    what: &str,
    class: &str,
    path: &[&str],
    policy: &StorageClassPolicy,
    state: &ClusterState,
) -> Option<Finding> {
    // "" asks explicitly for no class (static provisioning).
    if class.is_empty() || state.has_class(class) {
        return None;
    }
    let mapped = policy.map.get(class);
    let (target, how) = match mapped {
        Some(to) if state.has_class(to) => (Some(to.as_str()), "mapped"),
        _ if policy.fallback_to_default => (state.default_class(), "the default class"),
        _ => (None, ""),
    };
    let mut message = format!(
        "{what}: StorageClass {class:?} does not exist on this cluster (existing: {})",
        state.class_list()
    );
    match mapped {
        Some(to) if !state.has_class(to) => message.push_str(&format!(
            "; the policy maps it to {to:?}, which does not exist either"
        )),
        _ => message.push_str(&format!(
            "; restore with --storage-class-map {class}=<existing class> or add it to storageClass.map in the webhook policy"
        )),
    }
    let fix = target.map(|to| Fix {
        patch: vec![PatchOperation::Replace(ReplaceOperation {
            path: PointerBuf::from_tokens(path.iter().map(|t| Token::new(*t))),
            value: Value::String(to.to_owned()),
        })],
        warning: short_warning(format!(
            "{}: StorageClass {class} does not exist, using {to} ({how})",
            what.replace('"', "")
        )),
    });
    Some(Finding { message, fix })
}

#[cfg(test)]
mod tests {
    use backup_common::policy::Policy;
    use serde_json::json;

    use super::super::test_support::*;
    use super::super::*;

    fn state(default: Option<&str>) -> ClusterState {
        ClusterState::new(
            ["fast", "standard"]
                .into_iter()
                .map(|n| StorageClassInfo {
                    name: n.into(),
                    is_default: Some(n) == default,
                    created: "2026-01-01T00:00:00Z".into(),
                })
                .collect(),
        )
    }

    fn run(yaml: &str, state: &ClusterState, v: serde_json::Value, stage: Stage) -> Verdict {
        let policy = Policy::from_yaml(yaml).unwrap();
        let ctx = Context {
            policy: &policy,
            state,
            own_namespace: "kubectl-backup",
        };
        review(&request(v), stage, &ctx)
    }

    fn pvc(class: Option<&str>, index: usize) -> serde_json::Value {
        let mut v = review_json("admission-pvc-create.json", index);
        mark_restored(&mut v);
        if let Some(c) = class {
            v["request"]["object"]["spec"]["storageClassName"] = c.into();
        }
        v
    }

    #[test]
    fn existing_class_passes() {
        let s = state(None);
        for stage in [Stage::Mutate, Stage::Validate] {
            let verdict = run("", &s, pvc(Some("fast"), 0), stage);
            assert!(verdict.allowed() && verdict.patch.is_empty() && verdict.warnings.is_empty());
            assert_eq!(
                verdict.decision,
                Some((PolicyName::StorageClass, Outcome::Allowed))
            );
        }
    }

    #[test]
    fn mapped_class_is_remapped() {
        let s = state(None);
        let yaml = "storageClass: {map: {gp2: standard}}";
        let v = pvc(Some("gp2"), 0);
        let verdict = run(yaml, &s, v.clone(), Stage::Mutate);
        assert_eq!(
            serde_json::to_value(&verdict.patch).unwrap(),
            json!([{"op": "replace", "path": "/spec/storageClassName", "value": "standard"}])
        );
        assert!(verdict.warnings[0].contains("gp2") && verdict.warnings[0].contains("standard"));
        let patched = apply(&v, &verdict.patch);
        assert!(
            run(yaml, &s, patched.clone(), Stage::Mutate)
                .patch
                .is_empty()
        );
        assert!(run(yaml, &s, patched, Stage::Validate).allowed());
    }

    #[test]
    fn missing_class_is_refused_naming_what_exists() {
        let s = state(Some("standard"));
        let v = pvc(Some("gp2"), 1);
        // No map, no fallback: /mutate cannot fix it, /validate refuses.
        assert!(run("", &s, v.clone(), Stage::Mutate).patch.is_empty());
        let verdict = run("", &s, v.clone(), Stage::Validate);
        assert_eq!(
            verdict.decision,
            Some((PolicyName::StorageClass, Outcome::Denied))
        );
        let msg = &verdict.denials[0];
        assert!(msg.contains("StorageClass \"gp2\" does not exist"), "{msg}");
        assert!(msg.contains("existing: fast, standard"), "{msg}");
        assert!(msg.contains("--storage-class-map gp2="), "{msg}");
        // A map whose target is missing too says so.
        let verdict = run(
            "storageClass: {map: {gp2: premium}}",
            &s,
            v,
            Stage::Validate,
        );
        assert!(
            verdict.denials[0].contains("maps it to \"premium\""),
            "{:?}",
            verdict.denials
        );
    }

    #[test]
    fn fallback_to_default_when_allowed() {
        let yaml = "storageClass: {fallbackToDefault: true}";
        let v = pvc(Some("gp2"), 0);
        let verdict = run(yaml, &state(Some("fast")), v.clone(), Stage::Mutate);
        let patched = apply(&v, &verdict.patch);
        assert_eq!(
            patched["request"]["object"]["spec"]["storageClassName"],
            "fast"
        );
        assert!(verdict.warnings[0].contains("default"));
        // Allowed, but with no default class there is nothing to fall back to.
        let verdict = run(yaml, &state(None), v.clone(), Stage::Mutate);
        assert!(verdict.patch.is_empty());
        assert!(!run(yaml, &state(None), v, Stage::Validate).allowed());
    }

    #[test]
    fn deny_and_warn_modes() {
        let s = state(None);
        let v = pvc(Some("gp2"), 1);
        let yaml = "storageClass: {mode: deny, map: {gp2: standard}}";
        assert!(run(yaml, &s, v.clone(), Stage::Mutate).patch.is_empty());
        assert!(!run(yaml, &s, v.clone(), Stage::Validate).allowed());
        let verdict = run("storageClass: {mode: warn}", &s, v.clone(), Stage::Validate);
        assert!(verdict.allowed());
        assert!(verdict.warnings[0].contains("gp2"));
        let verdict = run("storageClass: {mode: off}", &s, v, Stage::Validate);
        assert!(verdict.allowed() && verdict.warnings.is_empty());
    }

    #[test]
    fn no_class_and_no_default_is_a_warning() {
        // The recorded PVC has no storageClassName (that cluster had no default).
        let v = pvc(None, 0);
        let verdict = run("", &state(None), v.clone(), Stage::Mutate);
        assert!(verdict.allowed() && verdict.patch.is_empty());
        assert!(verdict.warnings[0].contains("no default StorageClass"));
        assert!(
            run("", &state(None), v.clone(), Stage::Validate)
                .warnings
                .is_empty()
        );
        assert!(
            run("", &state(Some("fast")), v, Stage::Mutate)
                .warnings
                .is_empty()
        );
        // An explicit "" (static provisioning) is respected.
        let verdict = run("", &state(None), pvc(Some(""), 1), Stage::Validate);
        assert!(verdict.allowed() && verdict.warnings.is_empty());
    }

    #[test]
    fn unlabelled_and_dry_run_pvcs() {
        let s = state(None);
        let mut v = review_json("admission-pvc-create.json", 1);
        v["request"]["object"]["spec"]["storageClassName"] = "gp2".into();
        assert_eq!(run("", &s, v.clone(), Stage::Validate), Verdict::default());
        assert!(!run("storageClass: {scope: all}", &s, v, Stage::Validate).allowed());
        // Dry-run requests are judged like real ones (sideEffects: None).
        let mut v = review_json("admission-pvc-create-dry-run.json", 1);
        mark_restored(&mut v);
        v["request"]["object"]["spec"]["storageClassName"] = "gp2".into();
        assert!(!run("", &s, v, Stage::Validate).allowed());
    }

    #[test]
    fn statefulset_templates_are_remapped() {
        let s = state(None);
        let mut v = review_json("admission-statefulset-create.json", 0);
        mark_restored(&mut v);
        v["request"]["object"]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] =
            "gp2".into();
        let yaml = "storageClass: {map: {gp2: fast}}";
        let verdict = run(yaml, &s, v.clone(), Stage::Mutate);
        assert_eq!(
            serde_json::to_value(&verdict.patch).unwrap(),
            json!([{"op": "replace", "path": "/spec/volumeClaimTemplates/0/spec/storageClassName", "value": "fast"}])
        );
        let verdict = run("", &s, v.clone(), Stage::Validate);
        assert!(
            verdict.denials[0].contains("volumeClaimTemplate \"data\""),
            "{:?}",
            verdict.denials
        );

        // An UPDATE that leaves the (immutable) templates alone is not refused.
        let mut upd = v.clone();
        upd["request"]["operation"] = "UPDATE".into();
        upd["request"]["oldObject"] = upd["request"]["object"].clone();
        upd["request"]["object"]["spec"]["replicas"] = 3.into();
        assert!(run("", &s, upd, Stage::Validate).allowed());
    }

    #[test]
    fn templates_without_a_class_or_spec_are_fine() {
        let s = state(None);
        let mut v = review_json("admission-statefulset-create.json", 1);
        mark_restored(&mut v);
        assert!(run("", &s, v.clone(), Stage::Validate).allowed());
        v["request"]["object"]["spec"]["volumeClaimTemplates"] = json!("garbage");
        assert!(run("", &s, v, Stage::Validate).allowed());
    }
}
