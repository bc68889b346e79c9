//! In what order a restore applies resources, and which resources it never
//! applies at all.
//!
//! Order matters because Kubernetes validates references at admission time
//! (a Pod's ServiceAccount, a PVC's StorageClass, a custom resource's CRD) and
//! because admission webhooks from the backup must not intercept the rest of the
//! restore. Items are grouped in [`Tier`]s; a tier starts only when the one
//! before it has finished, items inside one tier are applied concurrently.

use crate::json::{at, meta_str};
use serde::Serialize;
use serde_json::Value;

/// A priority tier. Lower tiers are applied first; the derive order is the
/// restore order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// CustomResourceDefinitions; the restore waits for them to be Established.
    CustomResourceDefinitions,
    /// Namespaces, with their labels and annotations (Pod Security labels too).
    Namespaces,
    /// StorageClasses, before anything that provisions through them.
    StorageClasses,
    /// VolumeSnapshotClasses.
    VolumeSnapshotClasses,
    /// VolumeSnapshotContents (the pre-provisioned ones of a volume restore too).
    VolumeSnapshotContents,
    /// VolumeSnapshots.
    VolumeSnapshots,
    /// PersistentVolumes.
    PersistentVolumes,
    /// PersistentVolumeClaims.
    PersistentVolumeClaims,
    /// ClusterRoles, ClusterRoleBindings, Roles, RoleBindings.
    Rbac,
    /// ServiceAccounts.
    ServiceAccounts,
    /// Secrets.
    Secrets,
    /// ConfigMaps.
    ConfigMaps,
    /// LimitRanges (before Pods, which they default).
    LimitRanges,
    /// PriorityClasses (before Pods, which name them).
    PriorityClasses,
    /// Pods.
    Pods,
    /// ReplicaSets.
    ReplicaSets,
    /// Services.
    Services,
    /// Everything else: workloads, custom resources, policies, ingresses, ...
    Rest,
    /// Admission webhook configurations and APIServices: LAST, so that a
    /// restored webhook (or aggregated API) pointing at a Service restored
    /// above can never block or break the rest of the restore.
    Webhooks,
}

impl Tier {
    /// Every tier, in restore order.
    pub const ALL: [Tier; 19] = [
        Tier::CustomResourceDefinitions,
        Tier::Namespaces,
        Tier::StorageClasses,
        Tier::VolumeSnapshotClasses,
        Tier::VolumeSnapshotContents,
        Tier::VolumeSnapshots,
        Tier::PersistentVolumes,
        Tier::PersistentVolumeClaims,
        Tier::Rbac,
        Tier::ServiceAccounts,
        Tier::Secrets,
        Tier::ConfigMaps,
        Tier::LimitRanges,
        Tier::PriorityClasses,
        Tier::Pods,
        Tier::ReplicaSets,
        Tier::Services,
        Tier::Rest,
        Tier::Webhooks,
    ];

    /// The tier of a resource, by API group (`""` for core) and plural name.
    pub fn of(group: &str, resource: &str) -> Tier {
        match (group, resource) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                Tier::CustomResourceDefinitions
            }
            ("", "namespaces") => Tier::Namespaces,
            ("storage.k8s.io", "storageclasses") => Tier::StorageClasses,
            ("snapshot.storage.k8s.io", "volumesnapshotclasses") => Tier::VolumeSnapshotClasses,
            ("snapshot.storage.k8s.io", "volumesnapshotcontents") => Tier::VolumeSnapshotContents,
            ("snapshot.storage.k8s.io", "volumesnapshots") => Tier::VolumeSnapshots,
            ("", "persistentvolumes") => Tier::PersistentVolumes,
            ("", "persistentvolumeclaims") => Tier::PersistentVolumeClaims,
            (
                "rbac.authorization.k8s.io",
                "clusterroles" | "clusterrolebindings" | "roles" | "rolebindings",
            ) => Tier::Rbac,
            ("", "serviceaccounts") => Tier::ServiceAccounts,
            ("", "secrets") => Tier::Secrets,
            ("", "configmaps") => Tier::ConfigMaps,
            ("", "limitranges") => Tier::LimitRanges,
            ("scheduling.k8s.io", "priorityclasses") => Tier::PriorityClasses,
            ("", "pods") => Tier::Pods,
            ("apps", "replicasets") => Tier::ReplicaSets,
            ("", "services") => Tier::Services,
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations"
                | "validatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings",
            )
            | ("apiregistration.k8s.io", "apiservices") => Tier::Webhooks,
            _ => Tier::Rest,
        }
    }
}

/// Why an item is never restored, or `None` when it may be.
///
/// `service_has_selector` answers whether the backup holds a Service of the
/// same namespace and name with a `spec.selector` (its Endpoints are then the
/// endpoints controller's, rebuilt on the target).
pub fn never_restored(
    group: &str,
    resource: &str,
    obj: &Value,
    service_has_selector: impl Fn(&str, &str) -> bool,
) -> Option<&'static str> {
    let name = meta_str(obj, "name").unwrap_or("");
    let namespace = meta_str(obj, "namespace").unwrap_or("");
    let label = |key: &str| at(obj, &["metadata", "labels", key]).and_then(Value::as_str);
    let annotation = |key: &str| at(obj, &["metadata", "annotations", key]).and_then(Value::as_str);
    match (group, resource) {
        ("", "nodes") => Some("nodes belong to the source cluster's machines"),
        ("", "events") | ("events.k8s.io", "events") => Some("events are history, not state"),
        ("coordination.k8s.io", "leases") => {
            Some("leases are node heartbeats and leader locks of the source cluster")
        }
        ("storage.k8s.io", "csinodes" | "volumeattachments") => {
            Some("node-bound storage state is rebuilt by the target's CSI drivers")
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            Some("certificate requests are signed by the source cluster's CA")
        }
        ("", "componentstatuses") | ("", "bindings") => Some("not a stored resource"),
        ("metrics.k8s.io", _) => Some("metrics are computed, not stored"),
        ("discovery.k8s.io", "endpointslices")
            if label("endpointslice.kubernetes.io/managed-by").is_some_and(|m| {
                m == "endpointslice-controller.k8s.io"
                    || m == "endpointslicemirroring-controller.k8s.io"
            }) =>
        {
            Some("managed by the endpointslice controller, rebuilt on the target")
        }
        ("", "endpoints") if service_has_selector(namespace, name) => {
            Some("managed by the endpoints controller for a Service with a selector")
        }
        ("", "endpoints") | ("", "services") if namespace == "default" && name == "kubernetes" => {
            Some("the API server's own Service, managed by the target's API server")
        }
        ("", "configmaps") if name == "kube-root-ca.crt" => {
            Some("holds the source cluster's CA; the target's controller creates its own")
        }
        ("", "secrets") if is_auto_created_token_secret(obj) => {
            Some("auto-created service-account token, recreated by the target's token controller")
        }
        ("rbac.authorization.k8s.io", _)
            if label("kubernetes.io/bootstrapping") == Some("rbac-defaults") =>
        {
            Some("a default RBAC object, reconciled by the target's API server")
        }
        ("scheduling.k8s.io", "priorityclasses") if name.starts_with("system-") => {
            Some("a built-in priority class of the API server")
        }
        ("apiregistration.k8s.io", "apiservices")
            if label("kube-aggregator.kubernetes.io/automanaged").is_some() =>
        {
            Some("a built-in API group, managed by the target's API server")
        }
        ("flowcontrol.apiserver.k8s.io", _)
            if annotation("apf.kubernetes.io/autoupdate-spec") == Some("true") =>
        {
            Some("a default flow-control object, maintained by the target's API server")
        }
        _ => None,
    }
}

/// Is `obj` a Secret that the (legacy) token controller created by itself for
/// a ServiceAccount? Those are named `<serviceaccount>-token-<random>`.
/// Token Secrets a user created explicitly are restored (with their token data
/// cleared, see the transforms) so the target's controller fills them in.
pub fn is_auto_created_token_secret(obj: &Value) -> bool {
    if obj.get("type").and_then(Value::as_str) != Some(super::transform::SERVICE_ACCOUNT_TOKEN) {
        return false;
    }
    let name = meta_str(obj, "name").unwrap_or("");
    let account = at(
        obj,
        &[
            "metadata",
            "annotations",
            "kubernetes.io/service-account.name",
        ],
    )
    .and_then(Value::as_str)
    .unwrap_or("");
    !account.is_empty()
        && name
            .strip_prefix(account)
            .and_then(|rest| rest.strip_prefix("-token-"))
            .is_some_and(|suffix| {
                suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tiers_follow_the_design_order() {
        let order = [
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("", "namespaces"),
            ("storage.k8s.io", "storageclasses"),
            ("snapshot.storage.k8s.io", "volumesnapshotclasses"),
            ("snapshot.storage.k8s.io", "volumesnapshotcontents"),
            ("snapshot.storage.k8s.io", "volumesnapshots"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("", "serviceaccounts"),
            ("", "secrets"),
            ("", "configmaps"),
            ("", "limitranges"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("", "pods"),
            ("apps", "replicasets"),
            ("", "services"),
            ("apps", "deployments"),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
        ];
        let tiers: Vec<Tier> = order.iter().map(|(g, r)| Tier::of(g, r)).collect();
        let mut sorted = tiers.clone();
        sorted.sort();
        assert_eq!(tiers, sorted, "tiers must be strictly in the listed order");
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            order.len(),
            "each listed resource has its own tier"
        );
        assert_eq!(tiers.first(), Some(&Tier::ALL[0]));
        assert_eq!(tiers.last(), Tier::ALL.last());
    }

    #[test]
    fn webhooks_come_after_services_deployments_and_custom_resources() {
        let webhook = Tier::of(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        );
        for (g, r) in [
            ("", "services"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("example.com", "widgets"),
            ("networking.k8s.io", "ingresses"),
        ] {
            assert!(
                Tier::of(g, r) < webhook,
                "{r}.{g} must come before webhooks"
            );
        }
        assert_eq!(
            Tier::of("apiregistration.k8s.io", "apiservices"),
            Tier::Webhooks
        );
        // A custom resource whose plural collides with a core name is not a core resource.
        assert_eq!(Tier::of("example.com", "namespaces"), Tier::Rest);
    }

    #[test]
    fn all_is_sorted() {
        let mut sorted = Tier::ALL;
        sorted.sort();
        assert_eq!(sorted, Tier::ALL);
    }

    fn no_selector(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn never_restored_kinds() {
        let obj = json!({"metadata": {"name": "n1"}});
        assert!(never_restored("", "nodes", &obj, no_selector).is_some());
        assert!(never_restored("", "events", &obj, no_selector).is_some());
        assert!(never_restored("events.k8s.io", "events", &obj, no_selector).is_some());
        assert!(never_restored("coordination.k8s.io", "leases", &obj, no_selector).is_some());
        assert!(never_restored("", "configmaps", &obj, no_selector).is_none());
        assert!(never_restored("apps", "deployments", &obj, no_selector).is_none());
    }

    #[test]
    fn controller_managed_endpoints_are_skipped_but_manual_ones_kept() {
        let ep = json!({"metadata": {"name": "web", "namespace": "shop"}});
        let selector = |ns: &str, name: &str| ns == "shop" && name == "web";
        assert!(never_restored("", "endpoints", &ep, selector).is_some());
        assert!(never_restored("", "endpoints", &ep, no_selector).is_none());

        let managed = json!({"metadata": {"name": "web-abc", "namespace": "shop",
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}});
        assert!(
            never_restored("discovery.k8s.io", "endpointslices", &managed, no_selector).is_some()
        );
        let manual = json!({"metadata": {"name": "ext", "namespace": "shop",
            "labels": {"endpointslice.kubernetes.io/managed-by": "me"}}});
        assert!(
            never_restored("discovery.k8s.io", "endpointslices", &manual, no_selector).is_none()
        );
    }

    #[test]
    fn cluster_owned_objects_are_skipped() {
        let svc = json!({"metadata": {"name": "kubernetes", "namespace": "default"}});
        assert!(never_restored("", "services", &svc, no_selector).is_some());
        let other = json!({"metadata": {"name": "kubernetes", "namespace": "shop"}});
        assert!(never_restored("", "services", &other, no_selector).is_none());

        let ca = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}});
        assert!(never_restored("", "configmaps", &ca, no_selector).is_some());

        let role = json!({"metadata": {"name": "admin",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}});
        assert!(
            never_restored(
                "rbac.authorization.k8s.io",
                "clusterroles",
                &role,
                no_selector
            )
            .is_some()
        );
        let mine = json!({"metadata": {"name": "reader"}});
        assert!(
            never_restored(
                "rbac.authorization.k8s.io",
                "clusterroles",
                &mine,
                no_selector
            )
            .is_none()
        );

        let pc = json!({"metadata": {"name": "system-node-critical"}});
        assert!(never_restored("scheduling.k8s.io", "priorityclasses", &pc, no_selector).is_some());
        let api = json!({"metadata": {"name": "v1.apps",
            "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}});
        assert!(
            never_restored("apiregistration.k8s.io", "apiservices", &api, no_selector).is_some()
        );
    }

    #[test]
    fn token_secrets() {
        let auto = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "builder-token-x7k2p", "namespace": "ci",
                "annotations": {"kubernetes.io/service-account.name": "builder"}}});
        assert!(is_auto_created_token_secret(&auto));
        assert!(never_restored("", "secrets", &auto, no_selector).is_some());

        let manual = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "builder-long-lived", "namespace": "ci",
                "annotations": {"kubernetes.io/service-account.name": "builder"}}});
        assert!(!is_auto_created_token_secret(&manual));

        let opaque = json!({"type": "Opaque",
            "metadata": {"name": "builder-token-x7k2p", "namespace": "ci",
                "annotations": {"kubernetes.io/service-account.name": "builder"}}});
        assert!(!is_auto_created_token_secret(&opaque));
    }
}
