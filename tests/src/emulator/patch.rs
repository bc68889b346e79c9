//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes strategic merge patch for the built-in kinds (merge keys and
//! the `$patch`, `$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList`
//! directives, as `kubectl apply`/`edit`/`patch` send them).
//!
//! Strategic merge needs each list's merge key. The real server reads it from
//! the Go struct tags; here a table keyed by field name (and for `ports`, the
//! parent field) covers the lists of the built-in kinds that have one. Lists
//! without a merge key are replaced, as in the real server.

use serde_json::{Map, Value};

use super::status::ApiError;

/// The patch types of the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Apply a JSON patch document to `target`.
pub fn json_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    json_patch::patch(target, &ops.0).map_err(|e| match e.kind {
        // The real server answers a failed `test` with a generic 422.
        json_patch::PatchErrorKind::TestFailed => ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
        .with_details(serde_json::json!({})),
        _ => ApiError::new(422, "Invalid", e.to_string()).with_details(serde_json::json!({})),
    })
}

/// Apply a JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal patch into Go value of type map[string]interface {}",
        ));
    }
    json_patch::merge(target, &patch);
    Ok(())
}

/// The merge key of the list in field `field` whose parent field is `parent`:
/// `Some("")` for lists of scalars merged as sets, `None` for lists replaced as a whole.
pub fn merge_key(field: &str, parent: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "webhooks"
        | "schedulingGates"
        | "claims"
        | "resourceClaims"
        | "secrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => match parent {
            "containers" | "initContainers" | "ephemeralContainers" => "containerPort",
            _ => "port",
        },
        "ownerReferences" => "uid",
        "conditions" => "type",
        "hostAliases" => "ip",
        "readinessGates" => "conditionType",
        "topologySpreadConstraints" => "topologyKey",
        "finalizers" if parent == "metadata" => "",
        _ => return None,
    })
}

/// Apply a strategic merge patch to `target`.
pub fn strategic_merge_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal patch into Go value of type map[string]interface {}",
        ));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    merge_map(target, &patch, "").map_err(ApiError::bad_request)
}

/// Remove every `$...` directive from a value being inserted as is.
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Merge `patch` into the map `target`. `field` is the name of the field holding `target`.
fn merge_map(target: &mut Value, patch: &Map<String, Value>, field: &str) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(&Value::Object(patch.clone()));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(list_field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((list_field.to_owned(), order.clone()));
            }
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(Value::Array(list)) = target.get_mut(list_field) {
                list.retain(|x| !remove.contains(&x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let Some(tmap) = target.as_object_mut() else {
            break;
        };
        match v {
            Value::Null => {
                tmap.remove(k);
            }
            Value::Object(pm) => {
                let slot = tmap.entry(k.clone()).or_insert(Value::Null);
                merge_map(slot, pm, k)?;
                if slot.is_null() {
                    tmap.remove(k);
                }
            }
            Value::Array(pl) => {
                let slot = tmap.entry(k.clone()).or_insert(Value::Null);
                merge_list(slot, pl, k, field)?;
            }
            other => {
                tmap.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        if let Some(tmap) = target.as_object_mut() {
            tmap.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    for (list_field, order) in orders {
        let parent = field;
        if let Some(Value::Array(list)) = target.get_mut(&list_field) {
            reorder(list, &order, merge_key(&list_field, parent));
        }
    }
    Ok(())
}

fn reorder(list: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let id = |v: &Value| -> Value {
        match key {
            Some(k) if !k.is_empty() => v.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&id).collect();
    let mut sorted: Vec<Value> = Vec::with_capacity(list.len());
    for w in &wanted {
        if let Some(pos) = list.iter().position(|x| id(x) == *w) {
            sorted.push(list.remove(pos));
        }
    }
    sorted.append(list);
    *list = sorted;
}

fn merge_list(
    target: &mut Value,
    patch: &[Value],
    field: &str,
    parent: &str,
) -> Result<(), String> {
    let key = merge_key(field, parent);
    // `{"$patch": "replace"}` as an element replaces the whole list with the other elements.
    let replace = patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"));
    let Some(key) = key.filter(|_| !replace) else {
        *target = Value::Array(
            patch
                .iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
        return Ok(());
    };
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let Some(list) = target.as_array_mut() else {
        return Ok(());
    };
    if key.is_empty() {
        // A set of scalars: union, keeping the existing order.
        for e in patch {
            if !list.contains(e) {
                list.push(e.clone());
            }
        }
        return Ok(());
    }
    for e in patch {
        let Some(em) = e.as_object() else {
            return Err(format!(
                "unable to merge list {field:?}: element {e} is not an object"
            ));
        };
        let Some(kv) = em.get(key) else {
            return Err(format!(
                "map: {e} does not contain declared merge key: {key}"
            ));
        };
        let pos = list.iter().position(|x| x.get(key) == Some(kv));
        if em.get("$patch").and_then(Value::as_str) == Some("delete") {
            list.retain(|x| x.get(key) != Some(kv));
            continue;
        }
        match pos {
            Some(i) => merge_map(&mut list[i], em, field)?,
            None => list.push(strip_directives(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(name: &str) -> Value {
        let path = format!(
            "{}/fixtures/real-apiserver/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn containers(v: &Value) -> Vec<Value> {
        v.pointer("/spec/template/spec/containers")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "ports": c.get("ports")}))
            .collect()
    }

    #[test]
    fn strategic_merge_matches_recorded_container_merge() {
        let create = recorded("deploy-create");
        let rec = recorded("deploy-patch-strategic-merge-containers");
        let mut obj = create["body"].clone();
        let body = serde_json::to_vec(&rec["request"]["body"]).unwrap();
        strategic_merge_patch(&mut obj, &body).unwrap();
        assert_eq!(containers(&obj), containers(&rec["body"]));
    }

    #[test]
    fn strategic_merge_delete_directive_and_plain_merge_replace() {
        let rec = recorded("deploy-patch-strategic-merge-delete-directive");
        let mut obj = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
        let body = serde_json::to_vec(&rec["request"]["body"]).unwrap();
        strategic_merge_patch(&mut obj, &body).unwrap();
        let names: Vec<&str> = obj
            .pointer("/spec/template/spec/containers")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a"]);

        let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        merge_patch(&mut obj, br#"{"spec": {"containers": [{"name": "c"}]}}"#).unwrap();
        assert_eq!(obj, json!({"spec": {"containers": [{"name": "c"}]}}));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut obj = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "ports": [{"port": 80, "name": "http"}]}});
        let patch = json!({
            "metadata": {"finalizers": ["b"], "labels": {"x": null}},
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "ports": [{"port": 443, "name": "https"}],
                "$setElementOrder/ports": [{"port": 443}, {"port": 80}]
            }
        });
        strategic_merge_patch(&mut obj, &serde_json::to_vec(&patch).unwrap()).unwrap();
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"y": "2"}},
            "spec": {"strategy": {"type": "Recreate"},
                     "ports": [{"port": 443, "name": "https"}, {"port": 80, "name": "http"}]}})
        );
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                           "spec": {"$patch": "replace", "replicas": 1}});
        strategic_merge_patch(&mut obj, &serde_json::to_vec(&patch).unwrap()).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(obj["spec"], json!({"replicas": 1}));
    }

    #[test]
    fn json_patch_test_failure_is_the_recorded_422() {
        let rec = recorded("cm-patch-json-patch-test-fails");
        let mut obj = json!({"data": {"k1": "v1"}});
        let body = serde_json::to_vec(&rec["request"]["body"]).unwrap();
        let err = json_patch(&mut obj, &body).unwrap_err();
        assert_eq!(err.to_status().unwrap(), rec["body"]);
        json_patch(
            &mut obj,
            br#"[{"op":"add","path":"/data/k2","value":"v2"}]"#,
        )
        .unwrap();
        assert_eq!(obj["data"]["k2"], "v2");
    }
}
