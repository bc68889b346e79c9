//! What happens to each object between the LIST and the archive.
//!
//! Kept deliberately small: a backup is a faithful record, and stripping what
//! must not be re-applied (uid, resourceVersion, status…) is the restore's job.
//! Here we only add what list responses leave out and drop pure server
//! bookkeeping:
//! - `apiVersion` and `kind` are set (list items of built-in types carry neither);
//! - `metadata.managedFields` is removed (often half the object's size, and
//!   meaningless on another cluster).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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

// === listed items, cleaned without building the whole tree ===

/// One object from a LIST page, read shallowly: its top-level fields and its
/// `metadata` fields as the server's own JSON text, in the server's order.
/// Only what the backup looks at (name, namespace, one label) is decoded;
/// `spec`, `data` and the rest pass through byte for byte. This is what
/// [`clean_item`] does, without parsing and re-serializing every object.
#[derive(Debug)]
pub struct Listed<'a> {
    /// Top-level fields; `metadata` is `None` here, its fields are below.
    fields: Vec<(Cow<'a, str>, Option<&'a RawValue>)>,
    metadata: Members<'a>,
}

/// An object's members in order, values left as the server's text.
type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A list item as it comes off the page: `None` when its `metadata` is
/// missing or not an object (it is then left out, like an object with no
/// name). An item that is not an object at all fails the page.
#[derive(Debug)]
pub struct ListedItem<'a>(pub Option<Listed<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for ListedItem<'a> {
    /// One pass over the item: `metadata`'s members are read as they come,
    /// not kept as text and parsed again.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ListedItem<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ListedItem<'a>, M::Error> {
                let mut fields: Vec<(Cow<'a, str>, Option<&'a RawValue>)> = Vec::new();
                // `None`: no metadata yet; `Some(None)`: metadata that is not an object.
                let mut metadata: Option<Option<Members<'a>>> = None;
                while let Some(CowStr(k)) = map.next_key::<CowStr<'a>>()? {
                    let value = if k == "metadata" {
                        metadata = Some(map.next_value::<MaybeFields<'a>>()?.0);
                        None
                    } else {
                        Some(map.next_value::<&'a RawValue>()?)
                    };
                    // A repeated key keeps its last value, as a tree parse would.
                    if let Some(slot) = fields.iter_mut().find(|(have, _)| *have == k) {
                        slot.1 = value;
                    } else {
                        fields.push((k, value));
                    }
                }
                Ok(ListedItem(
                    metadata
                        .flatten()
                        .map(|metadata| Listed { fields, metadata }),
                ))
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'a> Listed<'a> {
    fn meta_str(&self, key: &str) -> Option<Cow<'a, str>> {
        let (_, v) = self.metadata.iter().find(|(k, _)| k == key)?;
        let CowStr(s) = serde_json::from_str(v.get()).ok()?;
        Some(s)
    }

    /// `(namespace, name)`, as [`identity`] reads it.
    pub fn identity(&self) -> Option<(Option<Cow<'a, str>>, Cow<'a, str>)> {
        let name = self.meta_str("name").filter(|n| !n.is_empty())?;
        let namespace = self.meta_str("namespace").filter(|n| !n.is_empty());
        Some((namespace, name))
    }

    /// The value of label `key`, if the object has it.
    pub fn label(&self, key: &str) -> Option<String> {
        let (_, labels) = self.metadata.iter().find(|(k, _)| k == "labels")?;
        // Most objects do not carry the label: skip decoding them.
        if !labels.get().contains(key) && !labels.get().contains('\\') {
            return None;
        }
        let map: std::collections::BTreeMap<String, Value> =
            serde_json::from_str(labels.get()).ok()?;
        map.get(key)?.as_str().map(str::to_owned)
    }

    /// The whole object as a tree, for the few types that need more than
    /// the metadata (PVCs, CRDs).
    pub fn value(&self) -> Option<Value> {
        let tree = |members: &Members<'a>| -> Option<Value> {
            let mut map = serde_json::Map::new();
            for (k, v) in members {
                map.insert(k.clone().into_owned(), serde_json::from_str(v.get()).ok()?);
            }
            Some(Value::Object(map))
        };
        let mut map = serde_json::Map::new();
        for (k, v) in &self.fields {
            let value = match v {
                Some(v) => serde_json::from_str(v.get()).ok()?,
                None => tree(&self.metadata)?,
            };
            map.insert(k.clone().into_owned(), value);
        }
        Some(Value::Object(map))
    }

    /// Append the cleaned object's JSON to `out`: `apiVersion` and `kind`
    /// set first, then the server's fields in its order, with
    /// `metadata.managedFields` left out.
    pub fn clean_json_into(&self, out: &mut Vec<u8>, api_version: &str, kind: &str) {
        /// A key as read: borrowed, it is the server's text between the
        /// quotes, which held no escapes, so JSON as it stands.
        fn key(out: &mut Vec<u8>, (text, verbatim): (&str, bool)) {
            if verbatim {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            } else {
                // Writing a string to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, text);
            }
            out.push(b':');
        }
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, |v| v.get().len()) + 4)
            .chain(
                self.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.get().len() + 4),
            )
            .sum();
        out.reserve(size + api_version.len() + kind.len() + 32);
        out.push(b'{');
        key(out, ("apiVersion", true));
        let _ = serde_json::to_writer(&mut *out, api_version);
        out.push(b',');
        key(out, ("kind", true));
        let _ = serde_json::to_writer(&mut *out, kind);
        for (k, v) in &self.fields {
            match (k.as_ref(), v) {
                ("apiVersion" | "kind", _) => continue,
                (_, None) => {
                    out.push(b',');
                    key(out, (k, matches!(k, Cow::Borrowed(_))));
                    out.push(b'{');
                    let mut first = true;
                    for (mk, mv) in &self.metadata {
                        if mk == "managedFields" {
                            continue;
                        }
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        key(out, (mk, matches!(mk, Cow::Borrowed(_))));
                        out.extend_from_slice(mv.get().as_bytes());
                    }
                    out.push(b'}');
                }
                (_, Some(v)) => {
                    out.push(b',');
                    key(out, (k, matches!(k, Cow::Borrowed(_))));
                    out.extend_from_slice(v.get().as_bytes());
                }
            }
        }
        out.push(b'}');
    }
}

/// A JSON value that is an object: its members in order, values left as
/// text (a key repeated in the input keeps its last value, as a tree parse
/// would). Any other value is read through and gives `None`.
struct MaybeFields<'a>(Option<Members<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeFields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<MaybeFields<'a>, M::Error> {
                let mut out: Members<'a> = Vec::new();
                while let Some((CowStr(k), v)) = map.next_entry::<CowStr<'a>, &'a RawValue>()? {
                    if let Some(slot) = out.iter_mut().find(|(have, _)| *have == k) {
                        slot.1 = v;
                    } else {
                        out.push((k, v));
                    }
                }
                Ok(MaybeFields(Some(out)))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<MaybeFields<'a>, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeFields(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeFields<'a>, E> {
                Ok(MaybeFields(None))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A string that borrows from the input unless it holds escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(V(std::marker::PhantomData))
    }
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

    fn clean_json(listed: &Listed<'_>, api_version: &str, kind: &str) -> Vec<u8> {
        let mut out = b"[".to_vec();
        listed.clean_json_into(&mut out, api_version, kind);
        // Appended after what the buffer held.
        assert_eq!(out.remove(0), b'[');
        out
    }

    /// One list item, read as a LIST page's items are.
    fn read_item(text: &str) -> Result<Option<Listed<'_>>, serde_json::Error> {
        serde_json::from_str::<ListedItem>(text).map(|item| item.0)
    }

    /// The shallow path must produce exactly what `clean_item` produces.
    fn same_as_tree_clean(original: Value, api_version: &str, kind: &str) {
        let text = serde_json::to_string(&original).unwrap();
        let listed = read_item(&text).unwrap().unwrap();
        let shallow: Value =
            serde_json::from_slice(&clean_json(&listed, api_version, kind)).unwrap();
        assert_eq!(listed.value().as_ref(), Some(&original));
        let mut tree = original;
        clean_item(&mut tree, api_version, kind);
        assert_eq!(shallow, tree);
    }

    #[test]
    fn shallow_clean_matches_tree_clean() {
        same_as_tree_clean(
            json!({
                "metadata": {
                    "name": "settings", "namespace": "shop", "uid": "u1",
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}],
                    "labels": {"app": "shop"}
                },
                "data": {"a": "b", "quote\"d": "line\nbreak \u{e9}"}
            }),
            "v1",
            "ConfigMap",
        );
        // Custom resources carry their own type, possibly after metadata.
        same_as_tree_clean(
            json!({"metadata": {"name": "w"}, "spec": {"n": [1, 2.5, null, true]},
                   "apiVersion": "example.com/v1", "kind": "Widget"}),
            "example.com/v1",
            "Widget",
        );
        // Escaped keys survive.
        same_as_tree_clean(
            json!({"metadata": {"name": "x", "annotations": {"a\"b/c": "d"}}, "we\u{301}ird": 1}),
            "v1",
            "Secret",
        );
    }

    #[test]
    fn shallow_keeps_the_servers_field_order() {
        let text = r#"{"metadata":{"uid":"u","name":"a","managedFields":[]},"spec":{"z":1,"a":2},"status":{}}"#;
        let listed = read_item(text).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(clean_json(&listed, "v1", "Pod")).unwrap(),
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u","name":"a"},"spec":{"z":1,"a":2},"status":{}}"#
        );
        // Keys are copied as they stand, or written again when they held escapes.
        let text = r#"{"metadata":{"name":"a","l\u0061bels":{"a\"b":"c"}},"sp\"ec":{"é":1}}"#;
        let listed = read_item(text).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(clean_json(&listed, "v1", "Pod")).unwrap(),
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"a\"b":"c"}},"sp\"ec":{"é":1}}"#
        );
    }

    #[test]
    fn shallow_reads_identity_and_labels() {
        let text = r#"{"metadata":{"name":"a\u0062","namespace":"n","labels":{"kubectl-backup.dev/exclude-from-backup":"true","x":"y"}}}"#;
        let listed = read_item(text).unwrap().unwrap();
        let (ns, name) = listed.identity().unwrap();
        assert_eq!((ns.as_deref(), name.as_ref()), (Some("n"), "ab"));
        assert_eq!(
            listed
                .label(backup_common::LABEL_EXCLUDE_FROM_BACKUP)
                .as_deref(),
            Some("true")
        );
        assert_eq!(listed.label("missing"), None);

        let cluster = r#"{"metadata":{"name":"pv","namespace":""}}"#;
        let (ns, name) = read_item(cluster).unwrap().unwrap().identity().unwrap();
        assert_eq!((ns, name.as_ref()), (None, "pv"));
        let nameless = r#"{"metadata":{}}"#;
        assert!(read_item(nameless).unwrap().unwrap().identity().is_none());
        // Without an object `metadata` an item is left out...
        for no_metadata in [
            r#"{"metadata":"x"}"#,
            r#"{}"#,
            r#"{"metadata":[{"name":"a"},[1]],"spec":{}}"#,
            r#"{"metadata":null}"#,
            r#"{"metadata":1.5,"kind":"K"}"#,
            r#"{"metadata":-3}"#,
            r#"{"metadata":true}"#,
        ] {
            assert!(read_item(no_metadata).unwrap().is_none(), "{no_metadata}");
        }
        // ...which does not disturb the items after it on the page.
        let page: Vec<ListedItem> =
            serde_json::from_str(r#"[{"metadata":[1,{"a":[2]}]},{"metadata":{"name":"next"}}]"#)
                .unwrap();
        assert!(page[0].0.is_none());
        let (_, name) = page[1].0.as_ref().unwrap().identity().unwrap();
        assert_eq!(name, "next");
        // A repeated `metadata` keeps its last value, as a tree parse would.
        let twice = r#"{"metadata":{"name":"first"},"data":{},"metadata":{"name":"last"}}"#;
        let listed = read_item(twice).unwrap().unwrap();
        assert_eq!(listed.identity().unwrap().1, "last");
        assert_eq!(
            listed.value(),
            Some(json!({"metadata": {"name": "last"}, "data": {}}))
        );
        // ...and an item that is not an object at all fails its page.
        for not_an_object in [r#"[1]"#, r#""s""#] {
            assert!(read_item(not_an_object).is_err(), "{not_an_object}");
        }
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
