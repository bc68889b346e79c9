//! Which backed-up items a restore applies: namespace globs, resource names,
//! a label selector and the `--cluster-resources` mode.
//!
//! Decisions are made per item from the item alone ([`Selection::admits`]),
//! except for the cluster-scoped items that `auto` brings along because
//! something selected needs them (CRDs of restored custom resources, PVs of
//! restored claims); those are decided once the whole archive has been seen
//! ([`Selection::admits_cluster_item`]).

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::Value;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace glob does not parse.
    #[error("invalid namespace pattern {pattern:?}: {reason}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The label selector does not parse.
    #[error("invalid label selector {selector:?}: {reason}")]
    Selector {
        /// The selector as given.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `--cluster-resources`, shared with backups: `auto` restores PVs bound to
/// restored claims and the CRDs of restored custom resources, `always` every
/// cluster-scoped item, `never` none.
pub use crate::archive::ClusterResources;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the key, as Kubernetes does).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the key).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Parse kubectl's `-l` syntax.
    pub fn parse(selector: &str) -> Result<LabelSelector> {
        let err = |reason: &str| Error::Selector {
            selector: selector.to_owned(),
            reason: reason.to_owned(),
        };
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            let term = term.trim();
            if term.is_empty() {
                return Err(err("empty requirement"));
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(checked_key(key.trim()).map_err(|r| err(&r))?)
            } else if let Some((key, values)) = split_set(term, " notin ") {
                Requirement::NotIn(
                    checked_key(key).map_err(|r| err(&r))?,
                    parse_set(values).map_err(|r| err(&r))?,
                )
            } else if let Some((key, values)) = split_set(term, " in ") {
                Requirement::In(
                    checked_key(key).map_err(|r| err(&r))?,
                    parse_set(values).map_err(|r| err(&r))?,
                )
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(
                    checked_key(key.trim()).map_err(|r| err(&r))?,
                    checked_value(value.trim()).map_err(|r| err(&r))?,
                )
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::Equals(
                    checked_key(key.trim()).map_err(|r| err(&r))?,
                    checked_value(value.trim()).map_err(|r| err(&r))?,
                )
            } else {
                Requirement::Exists(checked_key(term).map_err(|r| err(&r))?)
            };
            requirements.push(req);
        }
        Ok(LabelSelector(requirements))
    }

    /// Does an object with these labels match?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Does this object match, by its `metadata.labels` (non-string values
    /// count as absent)?
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = crate::json::meta(obj, "labels");
        self.matches_with(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// Split on commas that are not inside a `( … )` set.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn split_set<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (key, rest) = term.split_once(op)?;
    Some((key.trim(), rest.trim()))
}

fn parse_set(values: &str) -> Result<Vec<String>, String> {
    let inner = values
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, got {values:?}"))?;
    inner.split(',').map(|v| checked_value(v.trim())).collect()
}

fn checked_key(key: &str) -> Result<String, String> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let prefix_ok = key.find('/').is_none()
        || (!prefix.is_empty()
            && prefix.len() <= 253
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)));
    if name_ok && prefix_ok {
        Ok(key.to_owned())
    } else {
        Err(format!("{key:?} is not a valid label key"))
    }
}

fn checked_value(value: &str) -> Result<String, String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not a valid label value"))
    }
}

/// What the user asked to restore.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    include_namespaces: Option<GlobSet>,
    exclude_namespaces: Option<GlobSet>,
    include_resources: Vec<String>,
    exclude_resources: Vec<String>,
    selector: LabelSelector,
    /// The `--cluster-resources` mode.
    pub cluster_resources: ClusterResources,
}

/// The selection's verdict on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restore it.
    Restore,
    /// Not selected.
    Skip,
    /// A cluster-scoped item that `auto` restores only if something selected
    /// needs it; decided by [`Selection::admits_cluster_item`] once the whole
    /// archive has been read.
    Deferred,
}

impl Selection {
    /// Build a selection from the command-line values. Empty include lists
    /// mean "everything"; `*` is accepted as "everything" too.
    pub fn new(
        include_namespaces: &[String],
        exclude_namespaces: &[String],
        include_resources: &[String],
        exclude_resources: &[String],
        selector: Option<&str>,
        cluster_resources: ClusterResources,
    ) -> Result<Selection> {
        Ok(Selection {
            include_namespaces: glob_set(include_namespaces)?,
            exclude_namespaces: glob_set(exclude_namespaces)?,
            include_resources: normalise(include_resources),
            exclude_resources: normalise(exclude_resources),
            selector: match selector {
                Some(s) if !s.trim().is_empty() => LabelSelector::parse(s)?,
                _ => LabelSelector::default(),
            },
            cluster_resources,
        })
    }

    /// Is the (source) namespace selected?
    pub fn namespace_selected(&self, namespace: &str) -> bool {
        self.include_namespaces
            .as_ref()
            .is_none_or(|set| set.is_match(namespace))
            && !self
                .exclude_namespaces
                .as_ref()
                .is_some_and(|set| set.is_match(namespace))
    }

    /// Is the resource (`group`, plural `resource`, `kind`) selected by the
    /// resource filters?
    pub fn resource_selected(&self, group: &str, resource: &str, kind: &str) -> bool {
        let matches = |pattern: &String| resource_matches(pattern, group, resource, kind);
        (self.include_resources.is_empty() || self.include_resources.iter().any(matches))
            && !self.exclude_resources.iter().any(matches)
    }

    /// Verdict for one backed-up item. `namespace` is `None` for
    /// cluster-scoped items.
    pub fn admits(
        &self,
        group: &str,
        resource: &str,
        kind: &str,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Verdict {
        if !self.resource_selected(group, resource, kind) {
            return Verdict::Skip;
        }
        match namespace {
            Some(ns) => {
                if self.namespace_selected(ns) && self.selector.matches_object(obj) {
                    Verdict::Restore
                } else {
                    Verdict::Skip
                }
            }
            None if group.is_empty() && resource == "namespaces" => {
                // Namespace objects follow the namespace selection, not the
                // cluster-resources mode or the label selector: restored items
                // need their namespace, with its labels and annotations.
                let name = crate::json::meta_str(obj, "name").unwrap_or("");
                if self.namespace_selected(name) {
                    Verdict::Restore
                } else {
                    Verdict::Skip
                }
            }
            None => match self.cluster_resources {
                ClusterResources::Never => Verdict::Skip,
                ClusterResources::Always => {
                    if self.selector.matches_object(obj) {
                        Verdict::Restore
                    } else {
                        Verdict::Skip
                    }
                }
                ClusterResources::Auto => {
                    let deferrable = matches!(
                        (group, resource),
                        ("", "persistentvolumes")
                            | ("apiextensions.k8s.io", "customresourcedefinitions")
                    );
                    if deferrable {
                        Verdict::Deferred
                    } else {
                        Verdict::Skip
                    }
                }
            },
        }
    }

    /// Decide a [`Verdict::Deferred`] item: a PV is restored when its
    /// `claimRef` names a claim the restore restores, a CRD when the restore
    /// restores custom resources of it.
    pub fn admits_cluster_item(
        &self,
        group: &str,
        resource: &str,
        obj: &Value,
        claim_restored: impl Fn(&str, &str) -> bool,
        custom_resource_restored: impl Fn(&str) -> bool,
    ) -> bool {
        match (group, resource) {
            ("", "persistentvolumes") => {
                let ns = obj
                    .pointer("/spec/claimRef/namespace")
                    .and_then(Value::as_str);
                let name = obj.pointer("/spec/claimRef/name").and_then(Value::as_str);
                matches!((ns, name), (Some(ns), Some(name)) if claim_restored(ns, name))
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(custom_resource_restored),
            _ => false,
        }
    }
}

/// Does a `--include-resources` pattern match? Accepted: `*`, `resource`
/// (any group), `resource.group`, and the kind (`Deployment`), all
/// case-insensitive.
fn resource_matches(pattern: &str, group: &str, resource: &str, kind: &str) -> bool {
    if pattern == "*" || pattern == resource || pattern.eq_ignore_ascii_case(kind) {
        return true;
    }
    match pattern.split_once('.') {
        Some((r, g)) => r == resource && g == group,
        None => false,
    }
}

fn normalise(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    let patterns: Vec<&str> = patterns
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| Error::Glob {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|e| Error::Glob {
        pattern: String::new(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_operators() {
        let sel =
            LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team").unwrap();
        assert_eq!(sel.0.len(), 5);
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "a")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "a"),
            ("legacy", "")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "a"),
            ("tier", "db")
        ])));

        let notin = LabelSelector::parse("env notin (prod),app==web").unwrap();
        assert!(notin.matches(&labels(&[("app", "web")])));
        assert!(!notin.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(LabelSelector::parse("example.com/tier=gold").is_ok());
    }

    #[test]
    fn objects_match_by_their_labels_as_label_maps_do() {
        let sel =
            LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team").unwrap();
        let object = |labels: Value| json!({"metadata": {"name": "x", "labels": labels}});
        let cases = [
            (json!({"app": "web", "env": "prod", "team": "a"}), true),
            (json!({"app": "web", "env": "dev", "team": "a"}), false),
            (
                json!({"app": "web", "env": "prod", "team": "a", "legacy": ""}),
                false,
            ),
            (
                json!({"app": "web", "env": "prod", "team": "a", "tier": "db"}),
                false,
            ),
            // A label that is not a string counts as absent.
            (json!({"app": "web", "env": "prod", "team": 7}), false),
            (json!(null), false),
        ];
        for (labels, expected) in cases {
            let as_map: BTreeMap<String, String> = labels
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect();
            assert_eq!(sel.matches(&as_map), expected, "{labels}");
            assert_eq!(
                sel.matches_object(&object(labels.clone())),
                expected,
                "{labels}"
            );
        }
        let missing = LabelSelector::parse("!legacy").unwrap();
        assert!(missing.matches_object(&json!({"metadata": {}})));
        assert!(LabelSelector::default().matches_object(&json!({})));
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in [
            "app=",
            "=x",
            "a b=c",
            "app in prod",
            "app=-x",
            ",",
            "x/=y",
            "app=web,",
        ] {
            if bad == "app=" {
                // An empty value is valid in Kubernetes.
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    fn cm(ns: &str, labels: Value) -> Value {
        json!({"metadata": {"name": "c", "namespace": ns, "labels": labels}})
    }

    #[test]
    fn namespace_globs_and_excludes() {
        let sel = Selection::new(
            &["shop-*".into(), "web".into()],
            &["shop-old".into()],
            &[],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        let admit =
            |ns: &str| sel.admits("", "configmaps", "ConfigMap", Some(ns), &cm(ns, json!({})));
        assert_eq!(admit("shop-a"), Verdict::Restore);
        assert_eq!(admit("web"), Verdict::Restore);
        assert_eq!(admit("shop-old"), Verdict::Skip);
        assert_eq!(admit("kube-system"), Verdict::Skip);
        let ns_obj = json!({"metadata": {"name": "shop-a"}});
        assert_eq!(
            sel.admits("", "namespaces", "Namespace", None, &ns_obj),
            Verdict::Restore
        );
        let other = json!({"metadata": {"name": "db"}});
        assert_eq!(
            sel.admits("", "namespaces", "Namespace", None, &other),
            Verdict::Skip
        );
    }

    #[test]
    fn resource_filters() {
        let sel = Selection::new(
            &[],
            &[],
            &["deployments.apps,configmaps".into(), "Secret".into()],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        assert!(sel.resource_selected("apps", "deployments", "Deployment"));
        assert!(sel.resource_selected("", "configmaps", "ConfigMap"));
        assert!(sel.resource_selected("", "secrets", "Secret"));
        assert!(!sel.resource_selected("", "services", "Service"));
        // A bare kind matches in any group, `resource.group` only in its group.
        let only_group = Selection::new(
            &[],
            &[],
            &["deployments.apps".into()],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        assert!(!only_group.resource_selected("extensions", "deployments", "Deployment"));

        let ex = Selection::new(
            &[],
            &[],
            &[],
            &["secrets".into(), "widgets.example.com".into()],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        assert!(!ex.resource_selected("", "secrets", "Secret"));
        assert!(!ex.resource_selected("example.com", "widgets", "Widget"));
        assert!(ex.resource_selected("other.io", "widgets", "Widget"));
        assert!(ex.resource_selected("", "configmaps", "ConfigMap"));
    }

    #[test]
    fn label_selector_applies_to_namespaced_items_not_namespaces() {
        let sel =
            Selection::new(&[], &[], &[], &[], Some("app=web"), ClusterResources::Auto).unwrap();
        assert_eq!(
            sel.admits(
                "",
                "configmaps",
                "ConfigMap",
                Some("a"),
                &cm("a", json!({"app": "web"}))
            ),
            Verdict::Restore
        );
        assert_eq!(
            sel.admits(
                "",
                "configmaps",
                "ConfigMap",
                Some("a"),
                &cm("a", json!({"app": "db"}))
            ),
            Verdict::Skip
        );
        let ns = json!({"metadata": {"name": "a"}});
        assert_eq!(
            sel.admits("", "namespaces", "Namespace", None, &ns),
            Verdict::Restore
        );
    }

    #[test]
    fn cluster_resource_modes() {
        let sc = json!({"metadata": {"name": "fast"}});
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {"claimRef": {"namespace": "a", "name": "data"}}});
        let crd = json!({"metadata": {"name": "widgets.example.com"}});
        let mode = |m| Selection::new(&[], &[], &[], &[], None, m).unwrap();

        let never = mode(ClusterResources::Never);
        assert_eq!(
            never.admits(
                "storage.k8s.io",
                "storageclasses",
                "StorageClass",
                None,
                &sc
            ),
            Verdict::Skip
        );
        assert_eq!(
            never.admits("", "persistentvolumes", "PersistentVolume", None, &pv),
            Verdict::Skip
        );

        let always = mode(ClusterResources::Always);
        assert_eq!(
            always.admits(
                "storage.k8s.io",
                "storageclasses",
                "StorageClass",
                None,
                &sc
            ),
            Verdict::Restore
        );
        assert_eq!(
            always.admits("", "persistentvolumes", "PersistentVolume", None, &pv),
            Verdict::Restore
        );

        let auto = mode(ClusterResources::Auto);
        assert_eq!(
            auto.admits(
                "storage.k8s.io",
                "storageclasses",
                "StorageClass",
                None,
                &sc
            ),
            Verdict::Skip
        );
        assert_eq!(
            auto.admits("", "persistentvolumes", "PersistentVolume", None, &pv),
            Verdict::Deferred
        );
        assert_eq!(
            auto.admits(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                None,
                &crd
            ),
            Verdict::Deferred
        );

        assert!(auto.admits_cluster_item(
            "",
            "persistentvolumes",
            &pv,
            |ns, n| ns == "a" && n == "data",
            |_| false
        ));
        assert!(!auto.admits_cluster_item("", "persistentvolumes", &pv, |_, _| false, |_| true));
        let unbound = json!({"metadata": {"name": "pv2"}, "spec": {}});
        assert!(!auto.admits_cluster_item(
            "",
            "persistentvolumes",
            &unbound,
            |_, _| true,
            |_| true
        ));
        assert!(auto.admits_cluster_item(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &crd,
            |_, _| false,
            |n| n == "widgets.example.com"
        ));
        assert!(!auto.admits_cluster_item(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &crd,
            |_, _| false,
            |_| false
        ));
    }

    #[test]
    fn invalid_glob_is_an_error() {
        assert!(
            Selection::new(&["[".into()], &[], &[], &[], None, ClusterResources::Auto).is_err()
        );
    }
}
