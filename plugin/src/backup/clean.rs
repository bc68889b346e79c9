//! What happens to each object between the LIST and the archive.
//!
//! Kept deliberately small: a backup is a faithful record, and stripping what
//! must not be re-applied (uid, resourceVersion, status…) is the restore's job.
//! Here we only add what list responses leave out and drop pure server
//! bookkeeping:
//! - `apiVersion` and `kind` are set (list items of built-in types carry neither);
//! - `metadata.managedFields` is removed (often half the object's size, and
//!   meaningless on another cluster).

use serde_json::Value;

/// Clean one listed object in place.
pub fn clean_item(object: &mut Value, api_version: &str, kind: &str) {
    if let Some(map) = object.as_object_mut() {
        map.insert(
            "apiVersion".to_owned(),
            Value::String(api_version.to_owned()),
        );
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
}

/// `(namespace, name)` of an object; `None` when it has no name.
pub fn identity(object: &Value) -> Option<(Option<&str>, &str)> {
    let meta = object.get("metadata")?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    Some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adds_type_and_drops_managed_fields_only() {
        let mut cm = json!({
            "metadata": {
                "name": "settings", "namespace": "shop", "uid": "u1", "resourceVersion": "42",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            },
            "data": {"a": "b"}
        });
        clean_item(&mut cm, "v1", "ConfigMap");
        assert_eq!(cm["apiVersion"], "v1");
        assert_eq!(cm["kind"], "ConfigMap");
        assert!(cm["metadata"].get("managedFields").is_none());
        assert_eq!(cm["metadata"]["uid"], "u1");
        assert_eq!(cm["metadata"]["resourceVersion"], "42");
        assert_eq!(cm["data"]["a"], "b");
        assert!(
            cm["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_some()
        );
    }

    #[test]
    fn custom_resources_keep_their_own_type() {
        let mut w =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        clean_item(&mut w, "example.com/v1", "Widget");
        assert_eq!(w["apiVersion"], "example.com/v1");
    }

    #[test]
    fn identity_reads_namespace_and_name() {
        let ns = json!({"metadata": {"name": "a", "namespace": "b"}});
        assert_eq!(identity(&ns), Some((Some("b"), "a")));
        let cl = json!({"metadata": {"name": "pv"}});
        assert_eq!(identity(&cl), Some((None, "pv")));
        assert_eq!(identity(&json!({"metadata": {}})), None);
    }
}
