//! `metadata.managedFields` and server-side apply.
//!
//! A simplified field-ownership model after structured-merge-diff: a field
//! set is the set of leaf paths of an object (map keys; lists and scalars are
//! leaves, so lists are owned atomically). Updates move the fields they change
//! to their manager; an apply (`application/apply-patch+yaml`) owns exactly the
//! fields of its configuration, conflicts with other managers' fields unless
//! forced, and removes the fields it applied before and no longer does.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch;
use super::status::ApiError;

/// A set of field paths.
pub type FieldSet = BTreeSet<Vec<String>>;

const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The leaf paths of `obj` that a manager can own.
pub fn field_set(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if !SYSTEM_METADATA.contains(&mk.as_str()) {
                            collect(mv, &mut vec!["metadata".into(), mk.clone()], &mut out);
                        }
                    }
                }
                continue;
            }
            collect(v, &mut vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(k.clone());
                collect(v, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        match cur.get_mut(k) {
            Some(v) => cur = v,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Struct-like fields carry no `"."` entry in update operations' `fieldsV1`;
/// maps and optional structs do (cosmetic).
fn is_structural(key: &str) -> bool {
    matches!(
        key,
        "metadata" | "spec" | "status" | "template" | "strategy"
    )
}

/// `fieldsV1` for a field set; `dots` adds the `"."` entries update operations carry.
pub fn to_fields_v1(set: &FieldSet, dots: bool) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for (i, k) in path.iter().enumerate() {
            let entry = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = entry else { break };
            if dots && i + 1 < path.len() && !is_structural(k) && !m.contains_key(".") {
                m.insert(".".into(), json!({}));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

/// The update-style `fieldsV1` of every field of `obj` a manager can own:
/// `to_fields_v1(&field_set(obj), true)` in one walk, without the path set
/// (what a create records, on every create).
fn all_fields_v1(obj: &Value) -> Map<String, Value> {
    fn owned(key: &str, value: &Value) -> Value {
        let mut out = Map::new();
        if let Value::Object(children) = value
            && !children.is_empty()
        {
            if !is_structural(key) {
                out.insert(".".into(), json!({}));
            }
            for (k, child) in children {
                out.insert(format!("f:{k}"), owned(k, child));
            }
        }
        Value::Object(out)
    }
    let mut root = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let fields: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(mk, _)| !SYSTEM_METADATA.contains(&mk.as_str()))
                    .map(|(mk, mv)| (format!("f:{mk}"), owned(mk, mv)))
                    .collect();
                if !fields.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(fields));
                }
            }
            _ => {
                root.insert(format!("f:{k}"), owned(k, v));
            }
        }
    }
    root
}

/// The field set described by `fieldsV1` (list item keys `k:`/`v:`/`i:` make the list a leaf).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        let children: Vec<(&String, &Value)> =
            m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
        let list_items = m
            .keys()
            .any(|k| k.starts_with("k:") || k.starts_with("v:") || k.starts_with("i:"));
        if (children.is_empty() || list_items) && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in children {
            path.push(k[2..].to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_owned(),
            time: e["time"].as_str().unwrap_or("").to_owned(),
            subresource: e["subresource"].as_str().map(str::to_owned),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// One `managedFields` entry as served.
fn entry_value(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
    fields_v1: Value,
) -> Value {
    let mut m = Map::new();
    m.insert("manager".into(), json!(manager));
    m.insert("operation".into(), json!(operation));
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("time".into(), json!(time));
    m.insert("fieldsType".into(), json!("FieldsV1"));
    m.insert("fieldsV1".into(), fields_v1);
    if let Some(s) = subresource {
        m.insert("subresource".into(), json!(s));
    }
    Value::Object(m)
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            entry_value(
                &e.manager,
                &e.operation,
                &e.api_version,
                &e.time,
                e.subresource.as_deref(),
                to_fields_v1(&e.fields, e.operation == "Update"),
            )
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Record a create or update by `manager` in `new`'s managedFields, starting from
/// `old`'s (None for a create).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let Some(old) = old else {
        // A create: the manager owns every field, in one entry.
        let fields = all_fields_v1(new);
        let managed = (!fields.is_empty()).then(|| {
            entry_value(
                manager,
                "Update",
                api_version,
                now,
                subresource,
                Value::Object(fields),
            )
        });
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            match managed {
                Some(entry) => meta.insert("managedFields".into(), Value::Array(vec![entry])),
                None => meta.remove("managedFields"),
            };
        }
        return;
    };
    let mut list = entries(old);
    let new_fields = field_set(new);
    let old_fields = field_set(old);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_fields.difference(&new_fields).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &list);
        return;
    }
    for e in &mut list {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let sub = subresource.map(str::to_owned);
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now.to_owned();
            e.api_version = api_version.to_owned();
        }
        None => list.push(Entry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            subresource: sub,
            fields: changed,
        }),
    }
    write_entries(new, &list);
}

/// Server-side apply of `applied` by `manager` over `live` (None: the object is created).
/// Returns the merged object with its managedFields, or 409 on conflicts unless `force`.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
) -> Result<Value, ApiError> {
    let applied_set = field_set(applied);
    let mut list = live.map(entries).unwrap_or_default();
    let mut merged = match live {
        Some(l) => l.clone(),
        None => json!({"metadata": {}}),
    };
    if let Some(live) = live {
        // Conflicts: a field this apply sets to a different value, owned by another manager.
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for e in list
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        {
            for p in &applied_set {
                let owned = e
                    .fields
                    .iter()
                    .any(|f| f.starts_with(p) || p.starts_with(f));
                if owned && get(live, p) != get(applied, p) {
                    conflicts.push((e.manager.clone(), format!(".{}", p.join("."))));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflict_error(&conflicts));
        }
        if force {
            for e in list
                .iter_mut()
                .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            {
                e.fields.retain(|f| {
                    !applied_set.iter().any(|p| {
                        (f.starts_with(p) || p.starts_with(f)) && get(live, p) != get(applied, p)
                    })
                });
            }
        }
        // Fields this manager applied before and no longer does go away, unless shared.
        if let Some(prev) = list
            .iter()
            .find(|e| e.manager == manager && e.operation == "Apply")
        {
            let dropped: Vec<Vec<String>> = prev.fields.difference(&applied_set).cloned().collect();
            for p in dropped {
                let shared = list.iter().any(|e| {
                    !(e.manager == manager && e.operation == "Apply") && e.fields.contains(&p)
                });
                if !shared {
                    remove(&mut merged, &p);
                }
            }
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    patch::strategic_merge_patch(&mut merged, &bytes)?;
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: api_version.to_owned(),
        time: now.to_owned(),
        subresource: None,
        fields: applied_set,
    });
    write_entries(&mut merged, &list);
    Ok(merged)
}

fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let n = conflicts.len();
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {:?}: {}",
            conflicts[0].0, conflicts[0].1
        )
    } else {
        let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
        for (m, f) in conflicts {
            match by_manager.iter_mut().find(|(x, _)| x == m) {
                Some((_, fs)) => fs.push(f.clone()),
                None => by_manager.push((m.clone(), vec![f.clone()])),
            }
        }
        let parts: Vec<String> = by_manager
            .iter()
            .map(|(m, fs)| {
                if fs.len() == 1 {
                    format!("conflict with {m:?}: {}", fs[0])
                } else {
                    format!(
                        "conflicts with {m:?}:\n{}",
                        fs.iter()
                            .map(|f| format!("- {f}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                }
            })
            .collect();
        format!("Apply failed with {n} conflicts: {}", parts.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?}"), "field": f}))
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Value {
        let path = format!(
            "{}/fixtures/real-apiserver/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn yaml(rec: &Value) -> Value {
        serde_yaml::from_str(rec["request"]["body"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn create_records_update_fields_like_the_real_server() {
        let rec = recorded("cm-create");
        let mut obj = rec["request"]["body"].clone();
        record_update(None, &mut obj, "curl", "v1", None, "t");
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            rec["body"]["metadata"]["managedFields"][0]["fieldsV1"]
        );
    }

    #[test]
    fn apply_sequence_matches_recordings() {
        let create = recorded("cm-apply-create");
        let first = apply(None, &yaml(&create), "rec", false, "v1", "t").unwrap();
        assert_eq!(first["data"], create["body"]["data"]);

        let update = recorded("cm-apply-update");
        let second = apply(Some(&first), &yaml(&update), "rec", false, "v1", "t").unwrap();
        assert_eq!(second["data"], update["body"]["data"]);
        assert_eq!(
            second["metadata"]["labels"],
            update["body"]["metadata"]["labels"]
        );
        assert_eq!(
            second["metadata"]["managedFields"][0]["fieldsV1"],
            update["body"]["metadata"]["managedFields"][0]["fieldsV1"]
        );

        let conflict = recorded("cm-apply-conflict");
        let err = apply(Some(&second), &yaml(&conflict), "other", false, "v1", "t").unwrap_err();
        assert_eq!(err.to_status().unwrap(), conflict["body"]);

        let forced = recorded("cm-apply-force");
        let third = apply(Some(&second), &yaml(&forced), "other", true, "v1", "t").unwrap();
        assert_eq!(third["data"], forced["body"]["data"]);
        let managers: Vec<&str> = third["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["rec", "other"]);
    }

    #[test]
    fn a_create_records_what_the_general_path_would() {
        let dir = format!("{}/fixtures/real-apiserver", env!("CARGO_MANIFEST_DIR"));
        let mut compared = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let rec: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for obj in [&rec["body"], &rec["request"]["body"]] {
                if obj.get("metadata").is_none() {
                    continue;
                }
                let expected = to_fields_v1(&field_set(obj), true);
                assert_eq!(
                    Value::Object(all_fields_v1(obj)),
                    expected,
                    "{}",
                    path.display()
                );
                compared += 1;
            }
        }
        assert!(compared > 50, "only {compared} recorded objects compared");

        let mut bare = json!({"metadata": {"name": "a", "uid": "u", "managedFields": []}});
        record_update(None, &mut bare, "m", "v1", None, "t");
        assert!(bare["metadata"].get("managedFields").is_none());
        let mut scaled = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        record_update(None, &mut scaled, "m", "v1", Some("scale"), "t");
        assert_eq!(
            scaled["metadata"]["managedFields"],
            json!([{"manager": "m", "operation": "Update", "apiVersion": "v1", "time": "t",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                    "subresource": "scale"}])
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}, "spec": {"list": [1]}});
        let set = field_set(&obj);
        assert_eq!(from_fields_v1(&to_fields_v1(&set, true)), set);
        assert_eq!(from_fields_v1(&to_fields_v1(&set, false)), set);
    }
}
