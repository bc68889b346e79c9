//! What a backup takes: pure decisions over discovery results, namespace
//! names and objects, unit-tested without a cluster.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::Value;

use super::discovery::DiscoveredResource;
use crate::archive::{ClusterResources, ResourceKey};

/// Resource types that are never backed up, and why (see docs/format.md).
pub const NEVER_BACKED_UP: &[(&str, &str)] = &[
    ("events", "a stream of what happened, not state"),
    (
        "events.events.k8s.io",
        "a stream of what happened, not state",
    ),
    ("nodes", "belong to the machines; kubelets register them"),
    (
        "leases.coordination.k8s.io",
        "leader-election and heartbeat leases",
    ),
    ("csinodes.storage.k8s.io", "per-node CSI state"),
    (
        "volumeattachments.storage.k8s.io",
        "per-node attachment state",
    ),
    (
        "componentstatuses",
        "a virtual view of control-plane health",
    ),
];

/// API groups never backed up: live figures, not state.
pub const NEVER_BACKED_UP_GROUPS: &[&str] = &["metrics.k8s.io"];

/// Is this resource type never backed up?
pub fn never_backed_up(key: &ResourceKey) -> bool {
    let text = key.to_string();
    NEVER_BACKED_UP.iter().any(|(k, _)| *k == text)
        || NEVER_BACKED_UP_GROUPS.contains(&key.group.as_str())
}

/// `namespaces` (core): handled apart, see [`ResourcePlan::namespaces`].
pub fn is_namespaces(key: &ResourceKey) -> bool {
    key.group.is_empty() && key.resource == "namespaces"
}

/// `persistentvolumes` (core).
pub fn is_persistent_volumes(key: &ResourceKey) -> bool {
    key.group.is_empty() && key.resource == "persistentvolumes"
}

/// `persistentvolumeclaims` (core).
pub fn is_persistent_volume_claims(key: &ResourceKey) -> bool {
    key.group.is_empty() && key.resource == "persistentvolumeclaims"
}

/// `customresourcedefinitions.apiextensions.k8s.io`.
pub fn is_crds(key: &ResourceKey) -> bool {
    key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions"
}

/// Find the resource types a user-typed name means: `deployments.apps`,
/// `deployments`, `deployment`, `Deployment`, `deploy`, `deploy.apps`, or
/// `deployments.v1.apps`. Without a group, every group's match is returned.
pub fn resolve_resource(name: &str, all: &[DiscoveredResource]) -> Vec<ResourceKey> {
    let lower = name.trim().to_ascii_lowercase();
    let (res, group) = match lower.split_once('.') {
        Some((r, g)) => (r.to_owned(), Some(g.to_owned())),
        None => (lower.clone(), None),
    };
    all.iter()
        .filter(|d| {
            let name_ok = d.key.resource == res
                || d.singular == res
                || d.kind.to_ascii_lowercase() == res
                || d.short_names.contains(&res);
            let group_ok = match &group {
                None => true,
                Some(g) => {
                    *g == d.key.group
                        || *g == format!("{}.{}", d.version, d.key.group)
                        || (d.key.group.is_empty() && *g == d.version)
                }
            };
            name_ok && group_ok
        })
        .map(|d| d.key.clone())
        .collect()
}

/// The resource types a backup lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePlan {
    /// Namespaced types, listed in the selected namespaces.
    pub namespaced: Vec<DiscoveredResource>,
    /// Cluster-scoped types listed whole (`always`, or named explicitly in
    /// `--include-resources` under `auto`).
    pub cluster: Vec<DiscoveredResource>,
    /// The `namespaces` type, when Namespace objects of the selected
    /// namespaces are taken (always, unless excluded by resource filters).
    pub namespaces: Option<DiscoveredResource>,
    /// `persistentvolumes`, when `auto` brings the PVs of selected claims.
    pub auto_pvs: Option<DiscoveredResource>,
    /// `customresourcedefinitions`, when `auto` brings the CRDs of backed-up
    /// custom resources.
    pub auto_crds: Option<DiscoveredResource>,
    /// Names that did not resolve to any type.
    pub unknown: Vec<String>,
}

impl ResourcePlan {
    /// Every type the archive may hold (for `metadata/resources.json`).
    pub fn all_types(&self) -> Vec<&DiscoveredResource> {
        let mut all: Vec<&DiscoveredResource> =
            self.namespaced.iter().chain(&self.cluster).collect();
        for extra in [&self.namespaces, &self.auto_pvs, &self.auto_crds]
            .into_iter()
            .flatten()
        {
            if !all.iter().any(|d| d.key == extra.key) {
                all.push(extra);
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}

/// Decide which resource types to list.
pub fn plan_resources(
    all: &[DiscoveredResource],
    include: &[String],
    exclude: &[String],
    cluster_resources: ClusterResources,
) -> ResourcePlan {
    let mut unknown = Vec::new();
    let mut resolve = |names: &[String]| -> BTreeSet<ResourceKey> {
        let mut set = BTreeSet::new();
        for n in names.iter().filter(|n| n.as_str() != "*") {
            let found = resolve_resource(n, all);
            if found.is_empty() {
                unknown.push(n.clone());
            }
            set.extend(found);
        }
        set
    };
    let include_all = include.is_empty() || include.iter().any(|n| n == "*");
    let included = resolve(include);
    let excluded = resolve(exclude);
    let mut plan = ResourcePlan {
        unknown,
        ..Default::default()
    };
    // Namespace objects of the selected namespaces come along whatever the
    // include list says (a restore needs their labels), unless excluded.
    if let Some(ns) = all.iter().find(|d| is_namespaces(&d.key))
        && ns.listable()
        && !excluded.contains(&ns.key)
    {
        plan.namespaces = Some(ns.clone());
    }
    let wanted = |d: &DiscoveredResource| {
        d.listable()
            && !never_backed_up(&d.key)
            && !excluded.contains(&d.key)
            && (include_all || included.contains(&d.key))
    };
    for d in all.iter().filter(|d| wanted(d)) {
        if is_namespaces(&d.key) {
            continue;
        } else if d.namespaced {
            plan.namespaced.push(d.clone());
        } else {
            let take = match cluster_resources {
                ClusterResources::Always => true,
                ClusterResources::Never => false,
                // Under auto, a cluster-scoped type the user named explicitly is taken whole.
                ClusterResources::Auto => !include_all && included.contains(&d.key),
            };
            if take {
                plan.cluster.push(d.clone());
            } else if cluster_resources == ClusterResources::Auto {
                if is_persistent_volumes(&d.key) {
                    plan.auto_pvs = Some(d.clone());
                } else if is_crds(&d.key) {
                    plan.auto_crds = Some(d.clone());
                }
            }
        }
    }
    plan
}

/// Compiled `--include-namespaces` / `--exclude-namespaces` globs.
#[derive(Debug, Clone)]
pub struct NamespaceFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    literal_includes: Vec<String>,
}

impl NamespaceFilter {
    /// Compile the globs; an invalid glob is a message for the user.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let build = |patterns: &[String]| -> Result<GlobSet, String> {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                let glob =
                    Glob::new(p).map_err(|e| format!("invalid namespace pattern {p:?}: {e}"))?;
                b.add(glob);
            }
            b.build().map_err(|e| e.to_string())
        };
        let include_all = include.is_empty() || include.iter().any(|p| p == "*");
        Ok(NamespaceFilter {
            include: if include_all {
                None
            } else {
                Some(build(include)?)
            },
            exclude: build(exclude)?,
            literal_includes: include
                .iter()
                .filter(|p| !p.contains(['*', '?', '[', '{']))
                .cloned()
                .collect(),
        })
    }

    /// Is every namespace selected (no include list, no excludes)?
    pub fn is_everything(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Is this namespace selected?
    pub fn matches(&self, namespace: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(namespace))
            && !self.exclude.is_match(namespace)
    }

    /// The selected namespaces among `existing`, plus a warning for every
    /// literal (non-glob) include that names no existing namespace.
    pub fn select(&self, existing: &[String]) -> (Vec<String>, Vec<String>) {
        let selected: Vec<String> = existing
            .iter()
            .filter(|n| self.matches(n))
            .cloned()
            .collect();
        let missing = self
            .literal_includes
            .iter()
            .filter(|n| !existing.contains(n))
            .map(|n| format!("namespace {n:?} does not exist"))
            .collect();
        (selected, missing)
    }
}

/// Is the object labelled `kubectl-backup.dev/exclude-from-backup=true`?
pub fn excluded_by_label(object: &Value) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(backup_common::LABEL_EXCLUDE_FROM_BACKUP))
        .and_then(Value::as_str)
        == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        resource: &str,
        group: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> DiscoveredResource {
        DiscoveredResource {
            key: ResourceKey::new(resource, group),
            version: "v1".into(),
            kind: kind.into(),
            namespaced,
            verbs: vec!["list".into(), "get".into(), "create".into()],
            short_names: short.iter().map(|s| s.to_string()).collect(),
            singular: kind.to_ascii_lowercase(),
        }
    }

    fn cluster() -> Vec<DiscoveredResource> {
        let mut review = res(
            "tokenreviews",
            "authentication.k8s.io",
            "TokenReview",
            false,
            &[],
        );
        review.verbs = vec!["create".into()];
        vec![
            res("configmaps", "", "ConfigMap", true, &["cm"]),
            res("secrets", "", "Secret", true, &[]),
            res("events", "", "Event", true, &["ev"]),
            res("events", "events.k8s.io", "Event", true, &["ev"]),
            res("nodes", "", "Node", false, &["no"]),
            res("namespaces", "", "Namespace", false, &["ns"]),
            res("persistentvolumes", "", "PersistentVolume", false, &["pv"]),
            res(
                "persistentvolumeclaims",
                "",
                "PersistentVolumeClaim",
                true,
                &["pvc"],
            ),
            res(
                "storageclasses",
                "storage.k8s.io",
                "StorageClass",
                false,
                &["sc"],
            ),
            res(
                "customresourcedefinitions",
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                false,
                &["crd"],
            ),
            res("deployments", "apps", "Deployment", true, &["deploy"]),
            res("leases", "coordination.k8s.io", "Lease", true, &[]),
            res("widgets", "example.com", "Widget", true, &[]),
            review,
        ]
    }

    fn keys(v: &[DiscoveredResource]) -> Vec<String> {
        v.iter().map(|d| d.key.to_string()).collect()
    }

    #[test]
    fn resolves_every_spelling() {
        let all = cluster();
        for name in [
            "deployments.apps",
            "deployments",
            "deployment",
            "Deployment",
            "deploy",
            "deployments.v1.apps",
        ] {
            assert_eq!(
                resolve_resource(name, &all),
                vec![ResourceKey::new("deployments", "apps")],
                "{name}"
            );
        }
        assert_eq!(resolve_resource("ev", &all).len(), 2);
        assert_eq!(resolve_resource("events.events.k8s.io", &all).len(), 1);
        assert!(resolve_resource("deployments.batch", &all).is_empty());
        assert_eq!(
            resolve_resource("cm", &all),
            vec![ResourceKey::new("configmaps", "")]
        );
    }

    #[test]
    fn auto_takes_namespaced_plus_derived_cluster_types() {
        let plan = plan_resources(&cluster(), &[], &[], ClusterResources::Auto);
        assert_eq!(
            keys(&plan.namespaced),
            [
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
                "deployments.apps",
                "widgets.example.com"
            ]
        );
        assert!(plan.cluster.is_empty());
        assert!(plan.namespaces.is_some());
        assert!(plan.auto_pvs.is_some());
        assert!(plan.auto_crds.is_some());
        assert!(plan.unknown.is_empty());
    }

    #[test]
    fn always_takes_every_cluster_type_but_the_never_list() {
        let plan = plan_resources(&cluster(), &[], &[], ClusterResources::Always);
        assert_eq!(
            keys(&plan.cluster),
            [
                "persistentvolumes",
                "storageclasses.storage.k8s.io",
                "customresourcedefinitions.apiextensions.k8s.io"
            ]
        );
        assert!(plan.auto_pvs.is_none() && plan.auto_crds.is_none());
    }

    #[test]
    fn never_takes_no_cluster_type_but_keeps_namespaces() {
        let plan = plan_resources(&cluster(), &[], &[], ClusterResources::Never);
        assert!(plan.cluster.is_empty() && plan.auto_pvs.is_none() && plan.auto_crds.is_none());
        assert!(plan.namespaces.is_some());
    }

    #[test]
    fn include_exclude_and_unknown() {
        let inc = vec!["deploy".to_owned(), "sc".to_owned(), "gizmos".to_owned()];
        let plan = plan_resources(&cluster(), &inc, &[], ClusterResources::Auto);
        assert_eq!(keys(&plan.namespaced), ["deployments.apps"]);
        // Named explicitly, so taken under auto.
        assert_eq!(keys(&plan.cluster), ["storageclasses.storage.k8s.io"]);
        assert_eq!(plan.unknown, ["gizmos"]);
        assert!(plan.namespaces.is_some(), "namespace objects come along");

        let exc = vec!["secrets".to_owned(), "crd".to_owned(), "ns".to_owned()];
        let plan = plan_resources(&cluster(), &[], &exc, ClusterResources::Auto);
        assert!(plan.namespaces.is_none());
        assert!(!keys(&plan.namespaced).contains(&"secrets".to_owned()));
        assert!(plan.auto_crds.is_none());
    }

    #[test]
    fn never_backed_up_even_when_asked() {
        let inc = vec!["events".to_owned(), "nodes".to_owned(), "leases".to_owned()];
        let plan = plan_resources(&cluster(), &inc, &[], ClusterResources::Always);
        assert!(plan.namespaced.is_empty() && plan.cluster.is_empty());
    }

    #[test]
    fn namespace_globs() {
        let existing: Vec<String> = ["default", "kube-system", "shop-a", "shop-b", "db"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f =
            NamespaceFilter::new(&["shop-*".into(), "ghost".into()], &["shop-b".into()]).unwrap();
        let (sel, warnings) = f.select(&existing);
        assert_eq!(sel, ["shop-a"]);
        assert_eq!(warnings, ["namespace \"ghost\" does not exist"]);
        assert!(!f.is_everything());

        let all = NamespaceFilter::new(&[], &[]).unwrap();
        assert!(all.is_everything());
        assert_eq!(all.select(&existing).0.len(), 5);

        let but = NamespaceFilter::new(&["*".into()], &["kube-*".into()]).unwrap();
        assert_eq!(
            but.select(&existing).0,
            ["default", "shop-a", "shop-b", "db"]
        );
        assert!(NamespaceFilter::new(&["[".into()], &[]).is_err());
    }

    #[test]
    fn exclude_label() {
        let yes = serde_json::json!({"metadata": {"labels": {"kubectl-backup.dev/exclude-from-backup": "true"}}});
        let no = serde_json::json!({"metadata": {"labels": {"kubectl-backup.dev/exclude-from-backup": "false"}}});
        assert!(excluded_by_label(&yes));
        assert!(!excluded_by_label(&no));
        assert!(!excluded_by_label(&serde_json::json!({"metadata": {}})));
    }
}
