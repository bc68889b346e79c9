//! The registry of served resource types: the built-in kinds of a v1.28
//! API server plus those that CustomResourceDefinitions add.
//!
//! The built-in table is not hand-written: it is read from the aggregated
//! discovery documents recorded from a real kube-apiserver v1.28.7
//! (`tests/fixtures/real-apiserver/discovery-*-aggregated-v2beta1.json`), so
//! names, short names, categories, verbs, scopes and subresources are exactly
//! those of the real server.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

const CORE_DISCOVERY: &str =
    include_str!("../../fixtures/real-apiserver/discovery-api-aggregated-v2beta1.json");
const GROUPS_DISCOVERY: &str =
    include_str!("../../fixtures/real-apiserver/discovery-apis-aggregated-v2beta1.json");

/// A subresource of a resource type (`status`, `scale`, `log`, ...).
#[derive(Debug, Clone)]
pub struct Subresource {
    /// `status`, `scale`, ...
    pub name: String,
    /// Group of the kind this subresource answers with ("" = same as the parent).
    pub group: String,
    /// Version of that kind ("" = same as the parent).
    pub version: String,
    /// Kind it answers with.
    pub kind: String,
    /// Allowed verbs.
    pub verbs: Vec<String>,
}

/// One served resource in one group version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: String,
    /// Version (`v1`, ...).
    pub version: String,
    /// Plural resource name as used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Allowed verbs.
    pub verbs: Vec<String>,
    /// Short names (`cm`, `deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources.
    pub subresources: Vec<Subresource>,
    /// Served from a CustomResourceDefinition.
    pub custom: bool,
    /// For custom resources: the CRD version schema and printer columns.
    pub crd_version: Option<Arc<Value>>,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage identity: versions of one group/resource share their objects.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Does the resource support `verb`?
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Does the resource have a `status` subresource (main endpoint ignores status changes)?
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// `resource` or `resource.group`, as used in `kubectl` and error messages' qualified names.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Identity of stored objects of one resource (all versions share it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

/// One version of a group with its resources, in discovery order.
#[derive(Debug, Clone)]
pub struct GroupVersion {
    /// Version name.
    pub version: String,
    /// Resources served in it.
    pub resources: Vec<Arc<ResourceType>>,
}

/// One API group with its versions, preferred version first.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name ("" for core).
    pub name: String,
    /// Versions, preferred first.
    pub versions: Vec<GroupVersion>,
}

/// The served API surface.
#[derive(Debug, Clone)]
pub struct Registry {
    builtin: Vec<Group>,
    /// Custom resource types by CRD name (`widgets.example.com`): the CRD's
    /// resourceVersion they were made from, and one entry per served version.
    custom: HashMap<String, (String, Vec<Arc<ResourceType>>)>,
}

/// Errors reading the built-in discovery data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded discovery JSON did not have the expected shape.
    #[error("embedded discovery document is malformed: {0}")]
    Malformed(String),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn parse_groups(doc: &str) -> Result<Vec<Group>, Error> {
    let recorded: Value = serde_json::from_str(doc).map_err(|e| Error::Malformed(e.to_string()))?;
    let items = recorded
        .pointer("/body/items")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Malformed("no body.items".into()))?;
    let mut groups = Vec::new();
    for item in items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut versions = Vec::new();
        for v in item
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let version = str_of(v, "version").to_owned();
            let mut resources = Vec::new();
            for r in v
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let subresources = r
                    .get("subresources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|s| Subresource {
                        name: str_of(s, "subresource").to_owned(),
                        group: s
                            .pointer("/responseKind/group")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        version: s
                            .pointer("/responseKind/version")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        kind: s
                            .pointer("/responseKind/kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        verbs: strings(s.get("verbs")),
                    })
                    .collect();
                resources.push(Arc::new(ResourceType {
                    group: name.clone(),
                    version: version.clone(),
                    plural: str_of(r, "resource").to_owned(),
                    singular: str_of(r, "singularResource").to_owned(),
                    kind: r
                        .pointer("/responseKind/kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    namespaced: str_of(r, "scope") == "Namespaced",
                    verbs: strings(r.get("verbs")),
                    short_names: strings(r.get("shortNames")),
                    categories: strings(r.get("categories")),
                    subresources,
                    custom: false,
                    crd_version: None,
                }));
            }
            versions.push(GroupVersion { version, resources });
        }
        groups.push(Group { name, versions });
    }
    Ok(groups)
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first; others sort last by name.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((stage, major, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

impl Registry {
    /// The built-in API surface of kube-apiserver v1.28.
    pub fn builtin() -> Result<Registry, Error> {
        let mut builtin = parse_groups(CORE_DISCOVERY)?;
        builtin.extend(parse_groups(GROUPS_DISCOVERY)?);
        Ok(Registry {
            builtin,
            custom: HashMap::new(),
        })
    }

    /// All groups, built-in first (core first), then custom groups sorted by name,
    /// each with its versions, preferred first.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups = self.builtin.clone();
        let mut custom: Vec<Group> = Vec::new();
        let mut crd_names: Vec<&String> = self.custom.keys().collect();
        crd_names.sort();
        for crd in crd_names {
            for rt in &self.custom[crd].1 {
                let group = match custom.iter_mut().find(|g| g.name == rt.group) {
                    Some(g) => g,
                    None => {
                        custom.push(Group {
                            name: rt.group.clone(),
                            versions: Vec::new(),
                        });
                        custom.last_mut().expect("just pushed")
                    }
                };
                match group.versions.iter_mut().find(|v| v.version == rt.version) {
                    Some(v) => v.resources.push(rt.clone()),
                    None => group.versions.push(GroupVersion {
                        version: rt.version.clone(),
                        resources: vec![rt.clone()],
                    }),
                }
            }
        }
        for g in &mut custom {
            g.versions
                .sort_by(|a, b| compare_versions(&a.version, &b.version));
            for v in &mut g.versions {
                v.resources.sort_by(|a, b| a.plural.cmp(&b.plural));
            }
        }
        custom.sort_by(|a, b| a.name.cmp(&b.name));
        // A CRD may extend a built-in group name only in theory (the API server forbids
        // `*.k8s.io` CRD groups without an approval annotation); keep them separate.
        groups.extend(custom);
        groups
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<Group> {
        self.groups().into_iter().find(|g| g.name == name)
    }

    /// Is `group/version` served?
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.builtin
            .iter()
            .filter(|g| g.name == group)
            .any(|g| g.versions.iter().any(|v| v.version == version))
            || self
                .custom
                .values()
                .flat_map(|(_, types)| types)
                .any(|rt| rt.group == group && rt.version == version)
    }

    /// The resource type served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.find(group, version, |r| r.plural == plural)
    }

    /// The resource type of `kind` served in `group/version` (not a subresource).
    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.find(group, version, |r| r.kind == kind)
    }

    fn find(
        &self,
        group: &str,
        version: &str,
        wanted: impl Fn(&ResourceType) -> bool,
    ) -> Option<Arc<ResourceType>> {
        for g in self.builtin.iter().filter(|g| g.name == group) {
            for v in g.versions.iter().filter(|v| v.version == version) {
                if let Some(rt) = v.resources.iter().find(|r| wanted(r)) {
                    return Some(rt.clone());
                }
            }
        }
        self.custom
            .values()
            .flat_map(|(_, types)| types)
            .find(|rt| rt.group == group && rt.version == version && wanted(rt))
            .cloned()
    }

    /// Any served version of `group/plural` (the preferred one first), for internal callers
    /// that address storage rather than a URL.
    pub fn lookup_any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.group(group)?
            .versions
            .iter()
            .find_map(|v| v.resources.iter().find(|r| r.plural == plural).cloned())
    }

    /// Every served storage key with one representative type (preferred version).
    pub fn storage_types(&self) -> Vec<Arc<ResourceType>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for g in self.groups() {
            for v in &g.versions {
                for r in &v.resources {
                    if seen.insert(r.storage_key()) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
    }

    /// Serve (or re-serve) the resources of CRD `crd_name` at resourceVersion `rv`.
    pub fn set_custom(&mut self, crd_name: &str, rv: &str, types: Vec<Arc<ResourceType>>) {
        self.custom
            .insert(crd_name.to_owned(), (rv.to_owned(), types));
    }

    /// The resourceVersion of CRD `crd_name` whose resources are served.
    pub fn custom_version(&self, crd_name: &str) -> Option<&str> {
        self.custom.get(crd_name).map(|(rv, _)| rv.as_str())
    }

    /// Stop serving the resources of CRD `crd_name`; returns what was served.
    pub fn remove_custom(&mut self, crd_name: &str) -> Option<Vec<Arc<ResourceType>>> {
        self.custom.remove(crd_name).map(|(_, types)| types)
    }

    /// Names of the CRDs whose resources are served.
    pub fn custom_names(&self) -> Vec<String> {
        self.custom.keys().cloned().collect()
    }

    /// Is `group` a built-in group?
    pub fn is_builtin_group(&self, group: &str) -> bool {
        self.builtin.iter().any(|g| g.name == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_has_the_kinds_a_backup_tool_meets() {
        let reg = Registry::builtin().unwrap();
        let cm = reg.lookup("", "v1", "configmaps").unwrap();
        assert_eq!(cm.kind, "ConfigMap");
        assert!(cm.namespaced);
        assert_eq!(cm.short_names, vec!["cm"]);
        let ns = reg.lookup("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert!(ns.has_status());
        let deploy = reg.lookup("apps", "v1", "deployments").unwrap();
        assert!(deploy.subresource("scale").is_some());
        for (g, v, r) in [
            ("batch", "v1", "cronjobs"),
            ("rbac.authorization.k8s.io", "v1", "clusterroles"),
            ("storage.k8s.io", "v1", "storageclasses"),
            ("networking.k8s.io", "v1", "ingresses"),
            ("policy", "v1", "poddisruptionbudgets"),
            ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            (
                "admissionregistration.k8s.io",
                "v1",
                "mutatingwebhookconfigurations",
            ),
            ("scheduling.k8s.io", "v1", "priorityclasses"),
            ("coordination.k8s.io", "v1", "leases"),
            ("discovery.k8s.io", "v1", "endpointslices"),
        ] {
            assert!(reg.lookup(g, v, r).is_some(), "{g}/{v}/{r}");
        }
        assert!(reg.lookup("apps", "v1", "nosuch").is_none());
        assert!(reg.has_group_version("autoscaling", "v2"));
        assert!(!reg.has_group_version("example.com", "v1"));
    }

    #[test]
    fn version_priority_matches_kubernetes() {
        let mut v = vec![
            "v1alpha1", "v2beta1", "v1", "v1beta2", "v2", "foo", "v1beta1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }
}
