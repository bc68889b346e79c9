//! The three admission policies as pure functions over an AdmissionRequest
//! and a snapshot of cluster state.
//!
//! Every policy looks at an object and reports *findings*: violations, each
//! with the JSON patch that would fix it when one exists. The stage (the
//! mutating or the validating webhook) and the policy's [`Mode`] then decide
//! what happens, the same way for all three policies:
//!
//! | mode     | `/mutate`                       | `/validate` (sees the final object)   |
//! |----------|---------------------------------|---------------------------------------|
//! | `mutate` | apply fixes, warn what changed  | deny what is still wrong              |
//! | `deny`   | nothing                         | deny                                  |
//! | `warn`   | nothing                         | allow with a warning                  |
//! | `off`    | nothing                         | nothing                               |
//!
//! Mutations are idempotent (a fixed object has no findings), so
//! `reinvocationPolicy: IfNeeded` is safe, and the validating webhook checks
//! the final state even when the mutating one (which fails open) was skipped.

pub mod pod_security;
pub mod snapshot_class;
pub mod storage_class;

use std::fmt;

use backup_common::policy::{Mode, Policy, Scope};
use json_patch::PatchOperation;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};

/// Which webhook is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `/mutate`: may patch.
    Mutate,
    /// `/validate`: sees the final object, may only allow or deny.
    Validate,
}

impl Stage {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Mutate => "mutate",
            Stage::Validate => "validate",
        }
    }
}

/// The policies, named as in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyName {
    /// Policy 1.
    SnapshotClass,
    /// Policy 2.
    PodSecurity,
    /// Policy 3.
    StorageClass,
}

impl PolicyName {
    /// All policies.
    pub const ALL: [PolicyName; 3] = [
        PolicyName::SnapshotClass,
        PolicyName::PodSecurity,
        PolicyName::StorageClass,
    ];

    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::SnapshotClass => "snapshot-class",
            PolicyName::PodSecurity => "pod-security",
            PolicyName::StorageClass => "storage-class",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The object complies (or is out of scope for this stage).
    Allowed,
    /// The object was patched.
    Mutated,
    /// The object was let through with a warning.
    Warned,
    /// The object was refused.
    Denied,
}

impl Outcome {
    /// All outcomes.
    pub const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Mutated,
        Outcome::Warned,
        Outcome::Denied,
    ];

    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Mutated => "mutated",
            Outcome::Warned => "warned",
            Outcome::Denied => "denied",
        }
    }
}

/// One StorageClass as the policies need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageClassInfo {
    /// Its name.
    pub name: String,
    /// Annotated `storageclass.kubernetes.io/is-default-class: "true"`.
    pub is_default: bool,
    /// `metadata.creationTimestamp` as RFC 3339, to break ties between
    /// several default classes the way Kubernetes does (newest wins).
    pub created: String,
}

/// What the policies know about the cluster, from the watch-backed caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Every StorageClass, sorted by name.
    pub storage_classes: Vec<StorageClassInfo>,
}

impl ClusterState {
    /// A state with these StorageClasses (sorted by name).
    pub fn new(mut storage_classes: Vec<StorageClassInfo>) -> ClusterState {
        storage_classes.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterState { storage_classes }
    }

    /// Does a StorageClass of this name exist?
    pub fn has_class(&self, name: &str) -> bool {
        self.storage_classes
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .is_ok()
    }

    /// The default StorageClass; with several, the newest (as Kubernetes picks).
    pub fn default_class(&self) -> Option<&str> {
        self.storage_classes
            .iter()
            .filter(|c| c.is_default)
            .max_by(|a, b| a.created.cmp(&b.created).then(b.name.cmp(&a.name)))
            .map(|c| c.name.as_str())
    }

    /// The names of all classes, comma separated, for messages.
    pub fn class_list(&self) -> String {
        if self.storage_classes.is_empty() {
            "none".to_owned()
        } else {
            self.storage_classes
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// A violation found by a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Why the object breaks the policy (the denial or warning text).
    pub message: String,
    /// The patch that fixes it, when there is one, and the warning that says so.
    pub fix: Option<Fix>,
}

/// A fix for a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// The JSON patch operations (applied in order).
    pub patch: Vec<PatchOperation>,
    /// What the patch did, returned as an admission warning (under 120 characters).
    pub warning: String,
}

/// What one policy reports about an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Violations.
    pub findings: Vec<Finding>,
    /// Notes that are not violations (e.g. "no default StorageClass"), returned
    /// as warnings by the stage that acts in the policy's mode.
    pub notes: Vec<String>,
}

/// The combined answer of all policies for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// JSON patch to return (mutating stage only).
    pub patch: Vec<PatchOperation>,
    /// Warnings to return.
    pub warnings: Vec<String>,
    /// Denial messages; any makes the answer `allowed: false`.
    pub denials: Vec<String>,
    /// The policy that looked at the request (if any) and what it decided.
    pub decision: Option<(PolicyName, Outcome)>,
}

impl Verdict {
    /// Is the request allowed?
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }
}

/// The webhook's fixed context: its own namespace (always excluded).
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    /// The cluster snapshot.
    pub state: &'a ClusterState,
    /// The namespace the webhook runs in.
    pub own_namespace: &'a str,
}

/// Namespaces no policy ever touches, whatever the registration says.
pub fn is_excluded_namespace(namespace: &str, own_namespace: &str) -> bool {
    namespace == "kube-system" || namespace == own_namespace
}

/// Does `obj` carry the restore label?
pub fn is_restored(obj: &DynamicObject) -> bool {
    obj.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(backup_common::LABEL_RESTORE_NAME))
}

/// Is `obj` in scope?
pub fn in_scope(scope: Scope, obj: &DynamicObject) -> bool {
    scope == Scope::All || is_restored(obj)
}

/// Review one request at one stage.
pub fn review(req: &AdmissionRequest<DynamicObject>, stage: Stage, ctx: &Context<'_>) -> Verdict {
    let Some(obj) = req.object.as_ref() else {
        // DELETE and CONNECT carry no object: nothing to check.
        return Verdict::default();
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Verdict::default();
    }
    // Namespaced objects are excluded by their namespace, Namespaces by their name.
    let namespace = if req.kind.group.is_empty() && req.kind.kind == "Namespace" {
        Some(req.name.as_str())
    } else {
        req.namespace.as_deref()
    };
    if namespace.is_some_and(|ns| is_excluded_namespace(ns, ctx.own_namespace)) {
        return Verdict::default();
    }
    let config = &ctx.policy.config;
    let (name, mode, report) = match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        (snapshot_class::GROUP, "VolumeSnapshotClass") => (
            PolicyName::SnapshotClass,
            config.snapshot_class.mode,
            snapshot_class::review_class(obj),
        ),
        (snapshot_class::GROUP, "VolumeSnapshotContent") => {
            if !in_scope(config.snapshot_class.content_scope, obj) {
                return Verdict::default();
            }
            (
                PolicyName::SnapshotClass,
                config.snapshot_class.mode,
                snapshot_class::review_content(obj),
            )
        }
        ("", "Namespace") => {
            if !in_scope(config.pod_security.scope, obj) {
                return Verdict::default();
            }
            (
                PolicyName::PodSecurity,
                config.pod_security.mode,
                pod_security::review(obj, &req.name, ctx.policy),
            )
        }
        ("", "PersistentVolumeClaim") if req.operation == Operation::Create => {
            if !in_scope(config.storage_class.scope, obj) {
                return Verdict::default();
            }
            (
                PolicyName::StorageClass,
                config.storage_class.mode,
                storage_class::review_pvc(obj, &config.storage_class, ctx.state),
            )
        }
        ("apps", "StatefulSet") => {
            if !in_scope(config.storage_class.scope, obj) {
                return Verdict::default();
            }
            (
                PolicyName::StorageClass,
                config.storage_class.mode,
                storage_class::review_statefulset(
                    obj,
                    req.old_object.as_ref(),
                    &config.storage_class,
                    ctx.state,
                ),
            )
        }
        _ => return Verdict::default(),
    };
    decide(name, mode, stage, report)
}

/// Turn a policy's report into a verdict for this stage and mode.
pub fn decide(name: PolicyName, mode: Mode, stage: Stage, report: Report) -> Verdict {
    let mut verdict = Verdict {
        decision: Some((name, Outcome::Allowed)),
        ..Verdict::default()
    };
    if mode == Mode::Off {
        return verdict;
    }
    // Notes come from the stage that acts in this mode, so each is said once.
    let acting_stage = if mode == Mode::Mutate {
        Stage::Mutate
    } else {
        Stage::Validate
    };
    if stage == acting_stage {
        verdict.warnings.extend(report.notes);
    }
    for finding in report.findings {
        match (stage, mode) {
            (Stage::Mutate, Mode::Mutate) => {
                if let Some(fix) = finding.fix {
                    verdict.patch.extend(fix.patch);
                    verdict.warnings.push(fix.warning);
                }
                // A finding without a fix is left to /validate, which sees the
                // final object after every other mutating webhook.
            }
            (Stage::Validate, Mode::Mutate | Mode::Deny) => verdict.denials.push(finding.message),
            (Stage::Validate, Mode::Warn) => verdict.warnings.push(finding.message),
            _ => {}
        }
    }
    let outcome = if !verdict.denials.is_empty() {
        Outcome::Denied
    } else if !verdict.patch.is_empty() {
        Outcome::Mutated
    } else if !verdict.warnings.is_empty() {
        Outcome::Warned
    } else {
        Outcome::Allowed
    };
    verdict.decision = Some((name, outcome));
    verdict
}

/// Shorten a warning to the 120 characters the Kubernetes good-practices
/// page asks for (longer ones may be truncated by clients anyway).
pub fn short_warning(text: String) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        return text;
    }
    let mut cut: String = text.chars().take(MAX - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Loading the captured AdmissionReviews from `tests/fixtures/`.

    use kube::core::DynamicObject;
    use kube::core::admission::{AdmissionRequest, AdmissionReview};
    use serde_json::Value;

    /// The AdmissionReview the real API server sent to webhook `index` of a
    /// recorded exchange (0 = mutating, 1 = validating).
    pub fn review_json(file: &str, index: usize) -> Value {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let recorded: Value = serde_json::from_str(&text).unwrap();
        recorded["webhook_requests"][index]["body"].clone()
    }

    /// Decode a review into the request the policies take.
    pub fn request(review: Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).unwrap();
        review.try_into().unwrap()
    }

    /// Add the restore label to the review's object.
    pub fn mark_restored(review: &mut Value) {
        let meta = &mut review["request"]["object"]["metadata"];
        if meta.get("labels").is_none() {
            meta["labels"] = serde_json::json!({});
        }
        meta["labels"][backup_common::LABEL_RESTORE_NAME] = "r1".into();
    }

    /// Apply a verdict's patch to the review's object, as the API server would.
    pub fn apply(review: &Value, patch: &[json_patch::PatchOperation]) -> Value {
        let mut obj = review["request"]["object"].clone();
        json_patch::patch(&mut obj, patch).unwrap();
        let mut next = review.clone();
        next["request"]["object"] = obj;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn ctx_parts() -> (Policy, ClusterState) {
        (Policy::default(), ClusterState::default())
    }

    #[test]
    fn default_class_is_the_newest_default() {
        let state = ClusterState::new(vec![
            StorageClassInfo {
                name: "b".into(),
                is_default: true,
                created: "2024-01-01T00:00:00Z".into(),
            },
            StorageClassInfo {
                name: "a".into(),
                is_default: true,
                created: "2025-01-01T00:00:00Z".into(),
            },
            StorageClassInfo {
                name: "c".into(),
                is_default: false,
                created: "2026-01-01T00:00:00Z".into(),
            },
        ]);
        assert_eq!(state.default_class(), Some("a"));
        assert!(state.has_class("c") && !state.has_class("d"));
        assert_eq!(state.class_list(), "a, b, c");
        assert_eq!(ClusterState::default().class_list(), "none");
        assert_eq!(ClusterState::default().default_class(), None);
    }

    #[test]
    fn delete_and_unknown_kinds_pass_untouched() {
        let (policy, state) = ctx_parts();
        let ctx = Context {
            policy: &policy,
            state: &state,
            own_namespace: "kubectl-backup",
        };
        let req = request(review_json("admission-pvc-delete.json", 0));
        for stage in [Stage::Mutate, Stage::Validate] {
            assert_eq!(review(&req, stage, &ctx), Verdict::default());
        }
        // A ConfigMap is not ours to judge even when restored.
        let mut v = review_json("admission-pvc-create.json", 0);
        v["request"]["kind"]["kind"] = "ConfigMap".into();
        mark_restored(&mut v);
        let req = request(v);
        assert_eq!(review(&req, Stage::Validate, &ctx), Verdict::default());
    }

    #[test]
    fn kube_system_and_own_namespace_are_excluded() {
        let (policy, state) = ctx_parts();
        let ctx = Context {
            policy: &policy,
            state: &state,
            own_namespace: "tools",
        };
        for ns in ["kube-system", "tools"] {
            let mut v = review_json("admission-pvc-create.json", 1);
            mark_restored(&mut v);
            v["request"]["namespace"] = ns.into();
            v["request"]["object"]["spec"]["storageClassName"] = "missing".into();
            let verdict = review(&request(v), Stage::Validate, &ctx);
            assert_eq!(verdict, Verdict::default(), "{ns}");

            let mut v = review_json("admission-namespace-create.json", 0);
            mark_restored(&mut v);
            v["request"]["name"] = ns.into();
            let verdict = review(&request(v), Stage::Mutate, &ctx);
            assert_eq!(verdict, Verdict::default(), "{ns}");
        }
    }

    #[test]
    fn modes_map_to_stage_actions() {
        let report = || Report {
            findings: vec![Finding {
                message: "bad".into(),
                fix: Some(Fix {
                    patch: vec![PatchOperation::Test(json_patch::TestOperation {
                        path: json_patch::jsonptr::PointerBuf::root(),
                        value: serde_json::Value::Null,
                    })],
                    warning: "fixed".into(),
                }),
            }],
            notes: vec!["note".into()],
        };
        let name = PolicyName::SnapshotClass;
        let m = decide(name, Mode::Mutate, Stage::Mutate, report());
        assert_eq!(
            (m.patch.len(), m.warnings.clone()),
            (1, vec!["note".into(), "fixed".into()])
        );
        assert_eq!(m.decision, Some((name, Outcome::Mutated)));
        let v = decide(name, Mode::Mutate, Stage::Validate, report());
        assert_eq!(v.denials, vec!["bad".to_owned()]);
        assert!(v.warnings.is_empty());
        let d = decide(name, Mode::Deny, Stage::Mutate, report());
        assert!(d.patch.is_empty() && d.warnings.is_empty() && d.allowed());
        let d = decide(name, Mode::Deny, Stage::Validate, report());
        assert_eq!(d.decision, Some((name, Outcome::Denied)));
        assert_eq!(d.warnings, vec!["note".to_owned()]);
        let w = decide(name, Mode::Warn, Stage::Validate, report());
        assert!(w.allowed());
        assert_eq!(w.warnings, vec!["note".to_owned(), "bad".to_owned()]);
        assert_eq!(w.decision, Some((name, Outcome::Warned)));
        for stage in [Stage::Mutate, Stage::Validate] {
            let o = decide(name, Mode::Off, stage, report());
            assert!(o.patch.is_empty() && o.warnings.is_empty() && o.allowed());
        }
    }

    #[test]
    fn warnings_are_kept_short() {
        assert_eq!(short_warning("ok".into()), "ok");
        let long = short_warning("x".repeat(300));
        assert_eq!(long.chars().count(), 120);
        assert!(long.ends_with('…'));
    }
}
