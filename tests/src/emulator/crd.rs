//! CustomResourceDefinitions: what a CRD serves, the defaults and status the
//! API server and its apiextensions controllers give it, and basic
//! validation of custom resources against `openAPIV3Schema` (types,
//! `required`, `enum`, `minimum`/`maximum`) with pruning of unknown fields.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::resources::{ResourceType, Subresource};
use super::status::Cause;

/// The finalizer the API server puts on every CRD to delete its objects first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The resource types a CRD serves (one per served version).
pub fn resource_types(crd: &Value) -> Vec<Arc<ResourceType>> {
    let group = s(crd, "/spec/group").to_owned();
    let names = &crd["spec"]["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push(Subresource {
                name: "status".into(),
                group: String::new(),
                version: String::new(),
                kind: s(names, "/kind").to_owned(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        if v.pointer("/subresources/scale").is_some() {
            subresources.push(Subresource {
                name: "scale".into(),
                group: "autoscaling".into(),
                version: "v1".into(),
                kind: "Scale".into(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        let kind = s(names, "/kind").to_owned();
        out.push(Arc::new(ResourceType {
            group: group.clone(),
            version: s(v, "/name").to_owned(),
            plural: s(names, "/plural").to_owned(),
            singular: match s(names, "/singular") {
                "" => kind.to_lowercase(),
                x => x.to_owned(),
            },
            kind,
            namespaced: s(crd, "/spec/scope") == "Namespaced",
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .map(String::from)
            .to_vec(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            subresources,
            custom: true,
            crd_version: Some(Arc::new(v.clone())),
        }));
    }
    out
}

/// Is the CRD Established (its resources are served)?
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// Defaults the API server gives a CRD on create.
pub fn on_create(crd: &mut Value) {
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
        let kind = spec
            .get("names")
            .and_then(|n| n.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            names
                .entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")));
            names
                .entry("singular")
                .or_insert_with(|| json!(kind.to_lowercase()));
        }
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    if let Some(m) = crd.as_object_mut() {
        m.insert(
            "status".into(),
            json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored}),
        );
    }
    if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        let f = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Value::Array(a) = f
            && !a.iter().any(|x| x == CLEANUP_FINALIZER)
        {
            a.push(json!(CLEANUP_FINALIZER));
        }
    }
}

/// The status the naming and establishing controllers give a CRD.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let mut accepted = crd["spec"]["names"].clone();
    if let Some(m) = accepted.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "acceptedNames": accepted,
        "storedVersions": crd["status"]["storedVersions"].clone(),
    })
}

/// Validate `obj` against the version's `openAPIV3Schema` and prune unknown fields;
/// returns the 422 causes and the pruned field paths (for warnings).
pub fn validate_and_prune(version: &Value, obj: &mut Value) -> (Vec<Cause>, Vec<String>) {
    let mut causes = Vec::new();
    let mut pruned = Vec::new();
    let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
        return (causes, pruned);
    };
    if let (Some(props), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object_mut(),
    ) {
        for (k, v) in map.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(sub) = props.get(k) {
                check(sub, v, k, &mut causes, &mut pruned);
            }
        }
        if !preserves_unknown(schema) {
            let unknown: Vec<String> = map
                .keys()
                .filter(|k| {
                    !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                        && !props.contains_key(*k)
                })
                .cloned()
                .collect();
            for k in unknown {
                map.remove(&k);
                pruned.push(k);
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str()
                && !map.contains_key(r)
            {
                causes.push(Cause::required(r, ""));
            }
        }
    }
    (causes, pruned)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn check(
    schema: &Value,
    v: &mut Value,
    path: &str,
    causes: &mut Vec<Cause>,
    pruned: &mut Vec<String>,
) {
    if v.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            // Null is dropped for non-nullable fields by the real server's defaulting; accept.
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !int_or_string
        && !type_ok(ty, v)
    {
        let got = match v {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
        };
        causes.push(Cause {
            reason: "FieldValueTypeInvalid",
            field: path.to_owned(),
            message: format!(
                "Invalid value: {:?}: {path} in body must be of type {ty}: {got:?}",
                got
            ),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| a.to_string())
            })
            .collect();
        causes.push(Cause::not_supported(path, v, &names));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            causes.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            causes.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body should be less than or equal to {max}"),
            ));
        }
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, child) in map.iter_mut() {
                let sub = props
                    .and_then(|p| p.get(k))
                    .or_else(|| additional.filter(|a| a.is_object()));
                if let Some(sub) = sub {
                    check(sub, child, &format!("{path}.{k}"), causes, pruned);
                }
            }
            if let Some(props) = props
                && !preserves_unknown(schema)
                && additional.is_none()
            {
                let unknown: Vec<String> = map
                    .keys()
                    .filter(|k| !props.contains_key(*k))
                    .cloned()
                    .collect();
                for k in unknown {
                    map.remove(&k);
                    pruned.push(format!("{path}.{k}"));
                }
            }
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str()
                    && !map.contains_key(r)
                {
                    causes.push(Cause::required(&format!("{path}.{r}"), ""));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), causes, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Evaluate a printer-column JSONPath (`.spec.size`, `.status.conditions[0].type`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        if seg.is_empty() {
            continue;
        }
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Columns of a CR table: Name, then the version's additionalPrinterColumns (or Age).
pub fn printer_columns(version: Option<&Value>) -> Vec<Map<String, Value>> {
    let mut cols = Vec::new();
    if let Some(v) = version {
        for c in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut m = Map::new();
            m.insert("name".into(), c["name"].clone());
            m.insert("type".into(), c["type"].clone());
            m.insert("format".into(), json!(c["format"].as_str().unwrap_or("")));
            m.insert(
                "description".into(),
                json!(
                    c["description"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!(
                            "Custom resource definition column (in JSONPath format): {}",
                            c["jsonPath"].as_str().unwrap_or("")
                        ))
                ),
            );
            m.insert(
                "priority".into(),
                json!(c["priority"].as_i64().unwrap_or(0)),
            );
            m.insert("jsonPath".into(), c["jsonPath"].clone());
            cols.push(m);
        }
    }
    cols
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

    #[test]
    fn crd_create_and_establish_match_recordings() {
        let rec = recorded("crd-widgets-create");
        let mut crd = rec["request"]["body"].clone();
        on_create(&mut crd);
        assert_eq!(crd["spec"]["conversion"], rec["body"]["spec"]["conversion"]);
        assert_eq!(crd["status"], rec["body"]["status"]);
        let est = recorded("crd-widgets-get-established");
        let mut status = established_status(&crd, "t");
        let mut want = est["body"]["status"].clone();
        for c in status["conditions"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .chain(want["conditions"].as_array_mut().unwrap())
        {
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
        assert_eq!(status, want);
        let types = resource_types(&crd);
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].kind, "Widget");
        assert!(types[0].has_status());
        assert_eq!(types[0].short_names, vec!["wd"]);
    }

    #[test]
    fn schema_validation_and_pruning() {
        let crd = recorded("crd-widgets-create")["request"]["body"].clone();
        let version = &crd["spec"]["versions"][0];
        let mut ok = json!({"spec": {"size": 3, "color": "red", "extra": 1}, "junk": true});
        let (causes, pruned) = validate_and_prune(version, &mut ok);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(pruned, vec!["spec.extra".to_string(), "junk".to_string()]);
        assert!(ok["spec"].get("extra").is_none());

        let mut bad = json!({"spec": {"size": 0, "color": "pink"}});
        let (causes, _) = validate_and_prune(version, &mut bad);
        let reasons: Vec<&str> = causes.iter().map(|c| c.reason).collect();
        assert_eq!(reasons, ["FieldValueNotSupported", "FieldValueInvalid"]);

        let mut missing = json!({"spec": {"color": "red"}});
        let (causes, _) = validate_and_prune(version, &mut missing);
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].reason, "FieldValueRequired");
    }

    #[test]
    fn json_paths() {
        let v = json!({"spec": {"size": 3}, "status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&v, ".spec.size"), Some(&json!(3)));
        assert_eq!(
            json_path(&v, ".status.conditions[0].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(json_path(&v, ".spec.nope"), None);
    }
}
