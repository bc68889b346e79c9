//! Reading fields of JSON objects on hot paths.
//!
//! `Value::pointer` splits its path and unescapes every token into a new
//! string on each call; a restore reads a few fields of tens of thousands of
//! objects, so the per-item paths use these lookups by plain keys instead.

use serde_json::Value;

/// The value at `path`, a list of object keys (no escaping, no array indices).
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// `metadata.<key>` of an object.
pub fn meta<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get("metadata")?.get(key)
}

/// `metadata.<key>` of an object, when it is a string.
pub fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    meta(object, key)?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookups_agree_with_json_pointers() {
        let obj = json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"claimRef": {"namespace": "shop"}},
        });
        assert_eq!(meta_str(&obj, "name"), Some("web"));
        assert_eq!(meta(&obj, "labels"), obj.pointer("/metadata/labels"));
        assert_eq!(
            at(&obj, &["metadata", "labels", "app.kubernetes.io/name"]),
            obj.pointer("/metadata/labels/app.kubernetes.io~1name")
        );
        assert_eq!(
            at(&obj, &["spec", "claimRef", "namespace"]),
            Some(&json!("shop"))
        );
        assert_eq!(at(&obj, &["spec", "missing", "namespace"]), None);
        assert_eq!(meta_str(&obj, "namespace"), None);
        assert_eq!(meta_str(&json!("not an object"), "name"), None);
        assert_eq!(at(&obj, &[]), Some(&obj));
    }
}
