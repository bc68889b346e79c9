//! Policy 2: namespaces carry Pod Security Admission labels.
//!
//! Missing `pod-security.kubernetes.io/{enforce,audit,warn}` labels (and their
//! `-version`) are added from the policy's defaults or the first rule whose
//! name glob matches. Labels a namespace already has (a restored namespace
//! keeps those of its backup) are never weakened silently: a rule that would
//! lower one is only a warning unless the rule says `override: true`.
//! Invalid values are refused with the list of allowed ones.

use std::collections::BTreeMap;

use backup_common::policy::{Level, Policy, PsaMode, PsaSetting, PsaVersion};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use kube::core::DynamicObject;
use serde_json::Value;

use super::{Finding, Fix, Report, short_warning};

/// Review a Namespace named `name`.
pub fn review(obj: &DynamicObject, name: &str, policy: &Policy) -> Report {
    let empty = BTreeMap::new();
    let labels = obj.metadata.labels.as_ref().unwrap_or(&empty);
    let mut report = Report::default();
    let mut added: Vec<(PsaMode, &PsaSetting)> = Vec::new();
    let mut replaced: Vec<(PsaMode, &str, &PsaSetting)> = Vec::new();

    for mode in PsaMode::ALL {
        let current = labels.get(mode.label()).map(String::as_str);
        let current_version = labels.get(mode.version_label()).map(String::as_str);
        let mut valid = true;
        if let Some(value) = current
            && value.parse::<Level>().is_err()
        {
            valid = false;
            report.findings.push(Finding {
                message: format!(
                    "namespace {name:?}: label {}={value:?} is not a Pod Security level; allowed: {}",
                    mode.label(),
                    Level::ALLOWED
                ),
                fix: None,
            });
        }
        if let Some(value) = current_version
            && !PsaVersion::is_valid(value)
        {
            valid = false;
            report.findings.push(Finding {
                message: format!(
                    "namespace {name:?}: label {}={value:?} is not a Pod Security version; allowed: {}",
                    mode.version_label(),
                    PsaVersion::ALLOWED
                ),
                fix: None,
            });
        }
        if !valid {
            // Never patch around a value the user got wrong: /validate refuses it.
            continue;
        }
        // Defaults only fill gaps; a matching rule may also speak about
        // labels the namespace already has.
        let rule = policy.psa_rule_for(name);
        let from_rule = rule.and_then(|r| r.get(mode));
        let override_existing = from_rule.is_some() && rule.is_some_and(|r| r.override_existing);
        let Some(wanted) = from_rule.or_else(|| policy.config.pod_security.defaults.get(mode))
        else {
            continue;
        };
        match current.and_then(|v| v.parse::<Level>().ok()) {
            None => added.push((mode, wanted)),
            Some(level) if level == wanted.level => {}
            Some(level) if override_existing => {
                replaced.push((mode, level.as_str(), wanted));
            }
            Some(level) if from_rule.is_some() && wanted.level < level => {
                report.notes.push(short_warning(format!(
                    "namespace {name}: kept {}={level}; policy would lower it to {} (set override: true)",
                    short(mode),
                    wanted.level
                )));
            }
            // The namespace keeps what it has (a restored namespace keeps the
            // labels of its backup); raising it is only done with `override`.
            Some(_) => {}
        }
    }

    if !added.is_empty() || !replaced.is_empty() {
        let mut patch = Vec::new();
        if obj.metadata.labels.is_none() {
            patch.push(add(
                &["metadata", "labels"],
                Value::Object(Default::default()),
            ));
        }
        let mut set = |mode: PsaMode, setting: &PsaSetting| {
            patch.push(add(
                &["metadata", "labels", mode.label()],
                setting.level.as_str().into(),
            ));
            if let Some(version) = &setting.version {
                patch.push(add(
                    &["metadata", "labels", mode.version_label()],
                    version.as_str().into(),
                ));
            }
        };
        for (mode, setting) in &added {
            set(*mode, setting);
        }
        for (mode, _, setting) in &replaced {
            set(*mode, setting);
        }
        let mut described = Vec::new();
        let mut problems = Vec::new();
        for (mode, setting) in &added {
            described.push(format!("{}={}", short(*mode), setting.level));
            problems.push(format!("{} (policy: {})", mode.label(), setting.level));
        }
        for (mode, old, setting) in &replaced {
            described.push(format!("{}={} (was {old})", short(*mode), setting.level));
            problems.push(format!(
                "{}={old} (policy overrides it with {})",
                mode.label(),
                setting.level
            ));
        }
        report.findings.push(Finding {
            message: format!(
                "namespace {name:?} lacks the Pod Security labels the backup webhook policy requires: {}",
                problems.join(", ")
            ),
            fix: Some(Fix {
                patch,
                warning: short_warning(format!(
                    "namespace {name}: set Pod Security labels {}",
                    described.join(", ")
                )),
            }),
        });
    }
    report
}

fn short(mode: PsaMode) -> &'static str {
    match mode {
        PsaMode::Enforce => "enforce",
        PsaMode::Audit => "audit",
        PsaMode::Warn => "warn",
    }
}

fn add(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(path.iter().copied()),
        value,
    })
}

#[cfg(test)]
mod tests {
    use backup_common::policy::{Level, Policy};
    use serde_json::json;

    use super::super::test_support::*;
    use super::super::*;

    fn run_with(policy: &Policy, v: serde_json::Value, stage: Stage) -> Verdict {
        let state = ClusterState::default();
        let ctx = Context {
            policy,
            state: &state,
            own_namespace: "kubectl-backup",
        };
        review(&request(v), stage, &ctx)
    }

    fn policy(yaml: &str) -> Policy {
        Policy::from_yaml(yaml).unwrap()
    }

    fn restored_ns(index: usize) -> serde_json::Value {
        let mut v = review_json("admission-namespace-create.json", index);
        mark_restored(&mut v);
        v
    }

    fn labels(v: &serde_json::Value) -> &serde_json::Value {
        &v["request"]["object"]["metadata"]["labels"]
    }

    #[test]
    fn missing_labels_are_added_from_the_defaults() {
        let p = Policy::default();
        let v = restored_ns(0);
        let verdict = run_with(&p, v.clone(), Stage::Mutate);
        assert_eq!(
            verdict.decision,
            Some((PolicyName::PodSecurity, Outcome::Mutated))
        );
        let patched = apply(&v, &verdict.patch);
        let l = labels(&patched);
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(l["pod-security.kubernetes.io/enforce-version"], "latest");
        assert_eq!(l["pod-security.kubernetes.io/audit"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/warn"], "restricted");
        // The labels the namespace had are kept.
        assert_eq!(l["team"], "storage");
        assert_eq!(verdict.warnings.len(), 1, "{:?}", verdict.warnings);
        assert!(verdict.warnings[0].contains("enforce=baseline"));
        // Idempotent, and the final state passes /validate.
        assert!(
            run_with(&p, patched.clone(), Stage::Mutate)
                .patch
                .is_empty()
        );
        assert!(run_with(&p, patched, Stage::Validate).allowed());
    }

    #[test]
    fn the_patch_creates_a_missing_label_map() {
        let p = Policy::default();
        let mut v = review_json("admission-namespace-create.json", 0);
        v["request"]["object"]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        // Scope all, since without labels there is no restore label.
        let p_all = policy("podSecurity: {scope: all}");
        let verdict = run_with(&p_all, v.clone(), Stage::Mutate);
        assert_eq!(
            serde_json::to_value(&verdict.patch[0]).unwrap(),
            json!({"op": "add", "path": "/metadata/labels", "value": {}})
        );
        let patched = apply(&v, &verdict.patch);
        assert_eq!(
            labels(&patched)["pod-security.kubernetes.io/warn"],
            "restricted"
        );
        // Under the default scope the unlabelled namespace is untouched.
        assert_eq!(run_with(&p, v, Stage::Mutate), Verdict::default());
    }

    #[test]
    fn rules_by_glob_win_over_defaults() {
        let p = Policy::default();
        let mut v = restored_ns(0);
        v["request"]["name"] = "volume-snapshot-controller".into();
        let verdict = run_with(&p, v.clone(), Stage::Mutate);
        let patched = apply(&v, &verdict.patch);
        assert_eq!(
            labels(&patched)["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
    }

    #[test]
    fn existing_labels_are_never_weakened_silently() {
        let p = policy(
            "podSecurity:\n  rules:\n    - namespaces: [\"rec-*\"]\n      enforce: {level: privileged}\n",
        );
        let mut v = restored_ns(0);
        v["request"]["object"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] =
            "restricted".into();
        let verdict = run_with(&p, v.clone(), Stage::Mutate);
        let patched = apply(&v, &verdict.patch);
        assert_eq!(
            labels(&patched)["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
        assert!(
            verdict
                .warnings
                .iter()
                .any(|w| w.contains("kept enforce=restricted")),
            "{:?}",
            verdict.warnings
        );
        // With override the rule wins, and says so.
        let p = policy(
            "podSecurity:\n  rules:\n    - namespaces: [\"rec-*\"]\n      enforce: {level: privileged}\n      override: true\n",
        );
        let verdict = run_with(&p, v.clone(), Stage::Mutate);
        let patched = apply(&v, &verdict.patch);
        assert_eq!(
            labels(&patched)["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
        assert!(
            verdict
                .warnings
                .iter()
                .any(|w| w.contains("was restricted"))
        );
        assert!(run_with(&p, patched, Stage::Validate).allowed());
    }

    #[test]
    fn existing_labels_differing_from_the_defaults_are_kept_quietly() {
        let p = Policy::default();
        let mut v = restored_ns(0);
        for (k, val) in [
            ("enforce", "restricted"),
            ("audit", "privileged"),
            ("warn", "restricted"),
        ] {
            v["request"]["object"]["metadata"]["labels"]
                [format!("pod-security.kubernetes.io/{k}")] = val.into();
        }
        let verdict = run_with(&p, v, Stage::Mutate);
        assert!(
            verdict.patch.is_empty() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    #[test]
    fn invalid_values_are_refused_with_the_allowed_list() {
        let p = Policy::default();
        let mut v = restored_ns(1);
        v["request"]["object"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] =
            "privilegd".into();
        v["request"]["object"]["metadata"]["labels"]["pod-security.kubernetes.io/audit-version"] =
            "1.28".into();
        let verdict = run_with(&p, v.clone(), Stage::Validate);
        assert!(!verdict.allowed());
        let all = verdict.denials.join("\n");
        assert!(
            all.contains("\"privilegd\"") && all.contains(Level::ALLOWED),
            "{all}"
        );
        assert!(all.contains("\"1.28\"") && all.contains("v1.N"), "{all}");
        // /mutate does not paper over them (it only adds the warn label).
        let mutated = run_with(&p, v.clone(), Stage::Mutate);
        let patched = apply(&v, &mutated.patch);
        assert_eq!(
            labels(&patched)["pod-security.kubernetes.io/enforce"],
            "privilegd"
        );
        // Warn mode lets it through with the same text as a warning.
        let warn = policy("podSecurity: {mode: warn}");
        let verdict = run_with(&warn, v.clone(), Stage::Validate);
        assert!(verdict.allowed());
        assert!(verdict.warnings.iter().any(|w| w.contains("privilegd")));
        let off = policy("podSecurity: {mode: off}");
        assert!(run_with(&off, v, Stage::Validate).allowed());
    }

    #[test]
    fn deny_mode_refuses_missing_labels() {
        let p = policy("podSecurity: {mode: deny}");
        let v = restored_ns(1);
        assert!(run_with(&p, v.clone(), Stage::Mutate).patch.is_empty());
        let verdict = run_with(&p, v, Stage::Validate);
        assert_eq!(
            verdict.decision,
            Some((PolicyName::PodSecurity, Outcome::Denied))
        );
        assert!(
            verdict.denials[0].contains("pod-security.kubernetes.io/enforce (policy: baseline)")
        );
    }

    #[test]
    fn updates_are_checked_like_creates() {
        let p = Policy::default();
        let mut v = review_json("admission-namespace-update.json", 0);
        mark_restored(&mut v);
        let verdict = run_with(&p, v, Stage::Mutate);
        assert_eq!(
            verdict.decision,
            Some((PolicyName::PodSecurity, Outcome::Mutated))
        );
        // Unlabelled namespaces are outside the default scope.
        let v = review_json("admission-namespace-update.json", 0);
        assert_eq!(run_with(&p, v, Stage::Validate), Verdict::default());
    }
}
