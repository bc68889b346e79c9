//! Encoding stored objects for the wire: single objects and watch events get
//! `kind`/`apiVersion` of the version asked for; list items of built-in kinds
//! carry neither, items of custom resources carry both (as on a real server).
//! Lists are serialized straight from the stored values without copying them.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::crd;
use super::resources::ResourceType;

/// An object with `kind`/`apiVersion` prepended, serialized without a copy.
pub struct Typed<'a> {
    /// `kind`.
    pub kind: &'a str,
    /// `apiVersion`.
    pub api_version: &'a str,
    /// The stored object.
    pub object: &'a Value,
}

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = self.object.as_object();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind)?;
        m.serialize_entry("apiVersion", self.api_version)?;
        for (k, v) in fields.into_iter().flatten() {
            if k != "kind" && k != "apiVersion" {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// A single object of `rt` as JSON with its type.
pub fn object(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(rt.kind));
    out.insert("apiVersion".into(), json!(rt.api_version()));
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k != "kind" && k != "apiVersion" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A single stored object of `rt` as answered: typed, serialized without a copy.
pub fn typed(rt: &ResourceType, obj: &Value) -> Vec<u8> {
    serde_json::to_vec(&Typed {
        kind: &rt.kind,
        api_version: &rt.api_version(),
        object: obj,
    })
    .unwrap_or_default()
}

/// A single stored object as `PartialObjectMetadata` of `api_version`
/// (`meta.k8s.io/v1` or `/v1beta1`): its metadata alone.
pub fn metadata_only(api_version: &str, obj: &Value) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Partial<'a> {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        metadata: &'a Value,
    }
    serde_json::to_vec(&Partial {
        kind: "PartialObjectMetadata",
        api_version,
        metadata: obj.get("metadata").unwrap_or(&Value::Null),
    })
    .unwrap_or_default()
}

/// Drop `kind`/`apiVersion` from a decoded request body before storing it.
pub fn strip_type(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
}

struct Items<'a> {
    rt: &'a ResourceType,
    items: &'a [Arc<Value>],
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let api_version = self.rt.api_version();
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for item in self.items {
            if self.rt.custom {
                seq.serialize_element(&Typed {
                    kind: &self.rt.kind,
                    api_version: &api_version,
                    object: item,
                })?;
            } else {
                seq.serialize_element(item.as_ref())?;
            }
        }
        seq.end()
    }
}

/// A `<Kind>List` with `metadata` and `items`, serialized to bytes.
pub fn list(rt: &ResourceType, metadata: &Value, items: &[Arc<Value>]) -> Vec<u8> {
    struct List<'a> {
        rt: &'a ResourceType,
        metadata: &'a Value,
        items: &'a [Arc<Value>],
    }
    impl Serialize for List<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(4))?;
            m.serialize_entry("kind", &format!("{}List", self.rt.kind))?;
            m.serialize_entry("apiVersion", &self.rt.api_version())?;
            m.serialize_entry("metadata", self.metadata)?;
            m.serialize_entry(
                "items",
                &Items {
                    rt: self.rt,
                    items: self.items,
                },
            )?;
            m.end()
        }
    }
    serde_json::to_vec(&List {
        rt,
        metadata,
        items,
    })
    .unwrap_or_default()
}

fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A `meta.k8s.io/v1` Table of `items` (what `kubectl get` asks for): Name plus the
/// printer columns of a custom resource, or Name and Created At for built-in kinds.
pub fn table(rt: &ResourceType, metadata: &Value, items: &[Arc<Value>]) -> Value {
    let name_col = json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0
    });
    let mut columns = vec![name_col];
    let mut paths: Vec<Option<String>> = vec![None];
    let printer = if rt.custom {
        crd::printer_columns(rt.crd_version.as_deref())
    } else {
        Vec::new()
    };
    if printer.is_empty() {
        columns.push(json!({
            "name": if rt.custom { "Age" } else { "Created At" },
            "type": "date", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "priority": 0
        }));
        paths.push(Some(".metadata.creationTimestamp".into()));
    } else {
        for mut c in printer {
            let path = c
                .remove("jsonPath")
                .and_then(|p| p.as_str().map(str::to_owned));
            columns.push(Value::Object(c));
            paths.push(path);
        }
    }
    let date_columns: Vec<Option<String>> = if rt.custom {
        columns
            .iter()
            .zip(&paths)
            .filter(|(c, _)| c["type"] == "date")
            .map(|(_, p)| p.clone())
            .collect()
    } else {
        Vec::new()
    };
    let date_columns: Vec<&String> = date_columns.iter().flatten().collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = paths
                .iter()
                .map(|p| match p {
                    None => obj
                        .pointer("/metadata/name")
                        .cloned()
                        .unwrap_or(Value::Null),
                    Some(p) => match (crd::json_path(obj, p), date_columns.contains(&p)) {
                        // The CRD table convertor shows dates as ages, like kubectl's AGE.
                        (Some(Value::String(t)), true) => json!(age(t)),
                        (v, _) => v.cloned().unwrap_or(Value::Null),
                    },
                })
                .collect();
            json!({"cells": cells, "object": partial_metadata(obj)})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// `duration.HumanDuration` of the time since RFC 3339 timestamp `t`.
pub fn age(t: &str) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(t) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_seconds();
    human_duration(secs)
}

/// Kubernetes' short human duration (`45s`, `3m12s`, `5h`, `3d4h`, ...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        match d % 365 {
            0 => format!("{y}y"),
            dd => format!("{y}y{dd}d"),
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    use super::*;
    use crate::emulator::resources::Registry;

    #[test]
    fn builtin_list_items_are_untyped_and_custom_ones_typed() {
        let reg = Registry::builtin().unwrap();
        let cm = reg.lookup("", "v1", "configmaps").unwrap();
        let items = vec![Arc::new(json!({"metadata": {"name": "a"}}))];
        let v: Value =
            serde_json::from_slice(&list(&cm, &json!({"resourceVersion": "5"}), &items)).unwrap();
        assert_eq!(
            v,
            json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
                   "items": [{"metadata": {"name": "a"}}]})
        );
        let mut widget = (*cm).clone();
        widget.custom = true;
        widget.kind = "Widget".into();
        widget.group = "example.com".into();
        let v: Value = serde_json::from_slice(&list(&widget, &json!({}), &items)).unwrap();
        assert_eq!(v["items"][0]["kind"], "Widget");
        assert_eq!(v["items"][0]["apiVersion"], "example.com/v1");
        assert_eq!(v["kind"], "WidgetList");
    }
}
