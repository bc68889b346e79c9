//! API errors rendered as the real API server renders them: `Status` objects
//! with the same reasons, codes, messages and details, or the plain-text
//! `404 page not found` of an unknown path.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A `Status` object (boxed: results stay small on the happy path).
    Status(Box<StatusError>),
    /// The mux's plain-text `404 page not found`.
    PageNotFound,
}

/// The content of a `Status` error.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusError {
    /// HTTP code (also `code` in the body).
    pub code: u16,
    /// `reason`, absent for some errors (e.g. a webhook denial without a code).
    pub reason: Option<String>,
    /// `message`.
    pub message: String,
    /// `details`, when the real server sends them.
    pub details: Option<Value>,
    /// `metadata` (normally empty; 410 Expired carries a fresh `continue`).
    pub metadata: Value,
    /// `Warning` headers to send along (webhook warnings on a denial).
    pub warnings: Vec<String>,
}

/// Result type of the emulator's request handling.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A Status error.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError::Status(Box::new(StatusError {
            code,
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            message: message.into(),
            details: None,
            metadata: json!({}),
            warnings: Vec::new(),
        }))
    }

    /// Attach `Warning` header texts.
    pub fn with_warnings(mut self, w: Vec<String>) -> ApiError {
        if let ApiError::Status(s) = &mut self {
            s.warnings = w;
        }
        self
    }

    /// The `Warning` header texts to send with this error.
    pub fn warnings(&self) -> &[String] {
        match self {
            ApiError::Status(s) => &s.warnings,
            ApiError::PageNotFound => &[],
        }
    }

    /// Attach `details`.
    pub fn with_details(mut self, d: Value) -> ApiError {
        if let ApiError::Status(s) = &mut self {
            s.details = Some(d);
        }
        self
    }

    /// `400 BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// `500 InternalError` with the real server's wording.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message}]}))
    }

    /// `404 NotFound` for an object of `rt`.
    pub fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        Self::not_found_qualified(&rt.group, &rt.plural, name)
    }

    /// `404 NotFound` for `group`/`plural` named `name`.
    pub fn not_found_qualified(group: &str, plural: &str, name: &str) -> ApiError {
        let qualified = qualified(group, plural);
        ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(details(group, plural, name))
    }

    /// `409 AlreadyExists`.
    pub fn already_exists(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified()),
        )
        .with_details(details(&rt.group, &rt.plural, name))
    }

    /// `409 Conflict` for a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                rt.qualified()
            ),
        )
        .with_details(details(&rt.group, &rt.plural, name))
    }

    /// The stale-resourceVersion conflict.
    pub fn stale(rt: &ResourceType, name: &str) -> ApiError {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `422 Invalid` for `kind` `name` with field causes `(reason, field, message)`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[Cause]) -> ApiError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert(
            "causes".into(),
            Value::Array(
                causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect(),
            ),
        );
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(Value::Object(d))
    }

    /// `405 MethodNotAllowed`.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// JSON `404` for an unknown resource in a served group version.
    pub fn unknown_resource() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// `415 UnsupportedMediaType`.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message).with_details(json!({}))
    }

    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Status(s) => s.code,
            ApiError::PageNotFound => 404,
        }
    }

    /// The `Status` object (None for the plain-text 404).
    pub fn to_status(&self) -> Option<Value> {
        match self {
            ApiError::Status(e) => {
                let StatusError {
                    code,
                    reason,
                    message,
                    details,
                    metadata,
                    ..
                } = e.as_ref();
                let mut s = serde_json::Map::new();
                s.insert("kind".into(), json!("Status"));
                s.insert("apiVersion".into(), json!("v1"));
                s.insert("metadata".into(), metadata.clone());
                s.insert("status".into(), json!("Failure"));
                s.insert("message".into(), json!(message));
                if let Some(r) = reason {
                    s.insert("reason".into(), json!(r));
                }
                if let Some(d) = details {
                    s.insert("details".into(), d.clone());
                }
                s.insert("code".into(), json!(code));
                Some(Value::Object(s))
            }
            ApiError::PageNotFound => None,
        }
    }
}

/// One entry of `details.causes`.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// The field path (`metadata.name`).
    pub field: String,
    /// The message (`Required value: ...`).
    pub message: String,
}

impl Cause {
    /// A `FieldValueRequired` cause.
    pub fn required(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            field: field.to_owned(),
            message: if detail.is_empty() {
                "Required value".to_owned()
            } else {
                format!("Required value: {detail}")
            },
        }
    }

    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {shown}: {detail}"),
        }
    }

    /// A `FieldValueNotSupported` cause.
    pub fn not_supported(field: &str, value: &Value, supported: &[String]) -> Cause {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.to_owned(),
            message: format!(
                "Unsupported value: {shown}: supported values: {}",
                quoted.join(", ")
            ),
        }
    }

    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            field: field.to_owned(),
            message: format!("Forbidden: {detail}"),
        }
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    d.insert("name".into(), json!(name));
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(plural));
    Value::Object(d)
}

/// The `Status` a successful DELETE answers with when the object is gone.
pub fn delete_success(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    let mut d = serde_json::Map::new();
    d.insert("name".into(), json!(name));
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(plural));
    d.insert("uid".into(), json!(uid));
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Value {
        let path = format!(
            "{}/fixtures/real-apiserver/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["body"].clone()
    }

    #[test]
    fn invalid_matches_recorded_missing_name() {
        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "",
            &[Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        );
        assert_eq!(
            e.to_status().unwrap(),
            recorded("error-create-cm-without-name")
        );
    }

    #[test]
    fn not_found_and_conflict_match_recordings() {
        let reg = super::super::resources::Registry::builtin().unwrap();
        let cm = reg.lookup("", "v1", "configmaps").unwrap();
        assert_eq!(
            ApiError::not_found(&cm, "does-not-exist").to_status(),
            Some(recorded("cm-get-not-found"))
        );
        assert_eq!(
            ApiError::stale(&cm, "cm1").to_status(),
            Some(recorded("cm-update-stale-rv-conflict"))
        );
        assert_eq!(
            ApiError::already_exists(&cm, "cm1").to_status(),
            Some(recorded("cm-create-already-exists"))
        );
        assert_eq!(
            ApiError::method_not_allowed().to_status(),
            Some(recorded("error-method-not-allowed"))
        );
        assert_eq!(
            ApiError::unknown_resource().to_status(),
            Some(recorded("error-unknown-resource-404"))
        );
        assert_eq!(
            ApiError::not_found_qualified("", "namespaces", "no-such-ns").to_status(),
            Some(recorded("error-create-in-missing-namespace"))
        );
    }
}
