//! Paths inside `resources.tar.zst`, in Velero's layout:
//!
//! ```text
//! resources/<resource>[.<group>]/namespaces/<namespace>/<name>.json
//! resources/<resource>[.<group>]/cluster/<name>.json
//! metadata/version
//! metadata/resources.json
//! ```
//!
//! Velero also writes a copy under `<version>-preferredversion/` between the
//! resource and the scope; the reader accepts that form too, so Velero archives
//! can be read, but the writer only writes the plain form.

use std::fmt;

use super::{Error, Result};

/// Directory of resource items inside the tar.
pub const RESOURCES_DIR: &str = "resources";
/// Path of the archive format version file inside the tar.
pub const METADATA_VERSION: &str = "metadata/version";
/// Path of the resource type table (group, version, kind per resource) inside the tar.
pub const METADATA_RESOURCES: &str = "metadata/resources.json";

/// A resource type as the archive names it: plural resource name plus API
/// group (empty for the core group). Displays as `resource.group` (or just
/// `resource` for the core group), the form users type in
/// `--include-resources` and Velero uses for directory names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// API group, e.g. `apps`; empty for the core group.
    pub group: String,
}

impl ResourceKey {
    /// A key from a resource and a group.
    pub fn new(resource: impl Into<String>, group: impl Into<String>) -> Self {
        ResourceKey {
            resource: resource.into(),
            group: group.into(),
        }
    }

    /// Parse `resource[.group]`: everything up to the first dot is the resource.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((resource, group)) => ResourceKey::new(resource, group),
            None => ResourceKey::new(s, ""),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl serde::Serialize for ResourceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ResourceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ResourceKey::parse(&s))
    }
}

/// Where one backed-up object sits in the archive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemPath {
    /// Its resource type.
    pub key: ResourceKey,
    /// Its namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Append the tar path of an item to `out`: `resource` is its
/// [`ResourceKey`] as displayed (`resource.group`).
pub fn write_tar_path(out: &mut String, resource: &str, namespace: Option<&str>, name: &str) {
    out.push_str(RESOURCES_DIR);
    out.push('/');
    out.push_str(resource);
    match namespace {
        Some(ns) => {
            out.push_str("/namespaces/");
            out.push_str(ns);
        }
        None => out.push_str("/cluster"),
    }
    out.push('/');
    out.push_str(name);
    out.push_str(".json");
}

impl ItemPath {
    /// The path of a namespaced object.
    pub fn namespaced(
        key: ResourceKey,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ItemPath {
            key,
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The path of a cluster-scoped object.
    pub fn cluster(key: ResourceKey, name: impl Into<String>) -> Self {
        ItemPath {
            key,
            namespace: None,
            name: name.into(),
        }
    }

    /// The tar path (`resources/…/<name>.json`).
    pub fn to_tar_path(&self) -> String {
        let mut path = String::new();
        write_tar_path(
            &mut path,
            &self.key.to_string(),
            self.namespace.as_deref(),
            &self.name,
        );
        path
    }

    /// Parse a tar path written by this tool or by Velero (which may insert a
    /// `<version>-preferredversion` segment). Returns `Ok(None)` for paths
    /// outside `resources/`.
    pub fn parse_tar_path(path: &str) -> Result<Option<ItemPath>> {
        let invalid = |reason: &str| Error::InvalidEntryPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let path_trimmed = path.strip_prefix("./").unwrap_or(path);
        let mut parts: Vec<&str> = path_trimmed.split('/').collect();
        if parts.first() != Some(&RESOURCES_DIR) {
            return Ok(None);
        }
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(invalid("empty, '.' or '..' path segment"));
        }
        // Velero's versioned copy: resources/<rg>/<v>-preferredversion/<scope>/...
        if parts.len() >= 3 && parts[2].ends_with("-preferredversion") {
            parts.remove(2);
        }
        let file = parts
            .last()
            .copied()
            .ok_or_else(|| invalid("no file name"))?;
        let name = file
            .strip_suffix(".json")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("item files end in .json"))?;
        let key = ResourceKey::parse(parts.get(1).copied().unwrap_or_default());
        match parts.as_slice() {
            [_, _, "namespaces", ns, _] => Ok(Some(ItemPath::namespaced(key, *ns, name))),
            [_, _, "cluster", _] => Ok(Some(ItemPath::cluster(key, name))),
            _ => Err(invalid(
                "expected resources/<resource>[.<group>]/namespaces/<ns>/<name>.json \
                 or resources/<resource>[.<group>]/cluster/<name>.json",
            )),
        }
    }
}

impl fmt::Display for ItemPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.key, ns, self.name),
            None => write!(f, "{} {}", self.key, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_keys_round_trip() {
        let k = ResourceKey::parse("deployments.apps");
        assert_eq!(k, ResourceKey::new("deployments", "apps"));
        assert_eq!(k.to_string(), "deployments.apps");
        let core = ResourceKey::parse("configmaps");
        assert_eq!(core.group, "");
        assert_eq!(core.to_string(), "configmaps");
        let crd = ResourceKey::parse("volumesnapshots.snapshot.storage.k8s.io");
        assert_eq!(crd.resource, "volumesnapshots");
        assert_eq!(crd.group, "snapshot.storage.k8s.io");
    }

    #[test]
    fn item_paths_follow_velero_layout() {
        let p = ItemPath::namespaced(ResourceKey::new("deployments", "apps"), "shop", "web");
        assert_eq!(
            p.to_tar_path(),
            "resources/deployments.apps/namespaces/shop/web.json"
        );
        assert_eq!(ItemPath::parse_tar_path(&p.to_tar_path()).unwrap(), Some(p));

        let c = ItemPath::cluster(ResourceKey::new("persistentvolumes", ""), "pv-1");
        assert_eq!(
            c.to_tar_path(),
            "resources/persistentvolumes/cluster/pv-1.json"
        );
        assert_eq!(ItemPath::parse_tar_path(&c.to_tar_path()).unwrap(), Some(c));
    }

    #[test]
    fn names_with_dots_and_colons_survive() {
        let p = ItemPath::cluster(
            ResourceKey::new("clusterroles", "rbac.authorization.k8s.io"),
            "system:controller:foo.bar",
        );
        assert_eq!(ItemPath::parse_tar_path(&p.to_tar_path()).unwrap(), Some(p));
    }

    #[test]
    fn velero_preferred_version_paths_are_read() {
        let p = ItemPath::parse_tar_path(
            "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(p.name, "web");
    }

    #[test]
    fn non_resource_paths_are_none_and_bad_paths_errors() {
        assert_eq!(ItemPath::parse_tar_path("metadata/version").unwrap(), None);
        assert!(ItemPath::parse_tar_path("resources/pods/namespaces/a/../b.json").is_err());
        assert!(ItemPath::parse_tar_path("resources/pods/namespaces/a/b.yaml").is_err());
        assert!(ItemPath::parse_tar_path("resources/pods/elsewhere/b.json").is_err());
    }
}
