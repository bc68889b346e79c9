//! Decoding AdmissionReviews and encoding the answers.
//!
//! [`Review`] is an axum extractor whose rejection is a clear HTTP error with
//! a plain-text body (malformed JSON, wrong content type, a review without a
//! request): the API server logs it as a webhook failure and applies the
//! webhook's `failurePolicy`, and nothing in here can panic. Every well-formed
//! review is answered HTTP 200 with an `admission.k8s.io/v1` AdmissionReview
//! echoing the request's uid.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};

use crate::policy::Verdict;

/// The only AdmissionReview version served (`admissionReviewVersions: [v1]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Largest body accepted: Kubernetes objects are at most ~1.5 MiB in etcd,
/// and a review can hold the object twice (object + oldObject).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// A decoded admission request.
#[derive(Debug)]
pub struct Review(pub AdmissionRequest<DynamicObject>);

/// Why a body is not an AdmissionReview we can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewRejection {
    /// The content type is not JSON.
    #[error("expected Content-Type application/json, got {0:?}")]
    ContentType(String),
    /// The body could not be read (too large, connection error).
    #[error("cannot read the request body: {0}")]
    Body(String),
    /// The body is not a valid AdmissionReview.
    #[error("the body is not a valid AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    /// Another apiVersion/kind than `admission.k8s.io/v1` AdmissionReview.
    #[error("expected apiVersion {API_VERSION} kind AdmissionReview, got {api_version:?} {kind:?}")]
    Version {
        /// The apiVersion sent.
        api_version: String,
        /// The kind sent.
        kind: String,
    },
    /// A review without `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

impl ReviewRejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            ReviewRejection::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ReviewRejection::Body(m) if m.contains("length limit") => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ReviewRejection {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

impl Review {
    /// Decode a body (exposed for tests and benchmarks).
    pub fn from_slice(body: &[u8]) -> Result<Review, ReviewRejection> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
        if review.types.api_version != API_VERSION || review.types.kind != "AdmissionReview" {
            return Err(ReviewRejection::Version {
                api_version: review.types.api_version,
                kind: review.types.kind,
            });
        }
        let request: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| ReviewRejection::NoRequest)?;
        Ok(Review(request))
    }
}

impl<S: Send + Sync> FromRequest<S> for Review {
    type Rejection = ReviewRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ReviewRejection::ContentType(content_type));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ReviewRejection::Body(e.body_text()))?;
        Review::from_slice(&body)
    }
}

/// An AdmissionReview answer as the API server reads it.
///
/// Our own type rather than kube's `AdmissionResponse`, which serializes the
/// patch as an array of numbers: Go's decoder accepts that, but the API
/// server itself (and every recorded exchange) uses the standard base64
/// string for `[]byte`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// Always `admission.k8s.io/v1`.
    pub api_version: &'static str,
    /// Always `AdmissionReview`.
    pub kind: &'static str,
    /// The response.
    pub response: AnswerResponse,
}

/// The `response` of an [`Answer`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerResponse {
    /// The request's uid, echoed.
    pub uid: String,
    /// Allowed or denied.
    pub allowed: bool,
    /// Set when denied: code 403 and the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AnswerStatus>,
    /// Base64 of the JSON patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Warnings for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The `status` of a denial.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnswerStatus {
    /// HTTP code the API server answers the client with.
    pub code: u16,
    /// `Forbidden`.
    pub reason: &'static str,
    /// Why.
    pub message: String,
}

/// The answer to a request: allowed or denied (403 with the messages),
/// the JSON patch and the warnings.
pub fn respond(req: &AdmissionRequest<DynamicObject>, verdict: Verdict) -> Answer {
    let mut response = AnswerResponse {
        uid: req.uid.clone(),
        allowed: verdict.denials.is_empty(),
        status: None,
        patch: None,
        patch_type: None,
        warnings: verdict.warnings,
    };
    if !verdict.denials.is_empty() {
        // A code makes the API server answer 403 Forbidden instead of a
        // reason-less 400 (see the recorded admission-validating-deny-* files).
        response.status = Some(AnswerStatus {
            code: 403,
            reason: "Forbidden",
            message: verdict.denials.join("; "),
        });
    } else if !verdict.patch.is_empty() {
        match serde_json::to_vec(&verdict.patch) {
            Ok(bytes) => {
                use base64::Engine as _;
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                response.patch_type = Some("JSONPatch");
            }
            // Serializing patch operations cannot fail; if it ever did,
            // answering without the patch is the fail-open choice.
            Err(error) => tracing::error!(%error, "cannot serialize the JSON patch"),
        }
    }
    Answer {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Outcome, PolicyName};

    fn body(file: &str, index: usize) -> Vec<u8> {
        serde_json::to_vec(&crate::policy::test_support::review_json(file, index)).unwrap()
    }

    #[test]
    fn decodes_a_recorded_review() {
        let Review(req) = Review::from_slice(&body("admission-pvc-create.json", 0)).unwrap();
        assert_eq!(req.uid, "811cf651-4ac5-4c1e-9e42-3b232334d319");
        assert_eq!(req.kind.kind, "PersistentVolumeClaim");
    }

    #[test]
    fn malformed_bodies_are_rejected_clearly() {
        let err = Review::from_slice(b"{\"kind\":").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(
            err.to_string().contains("not a valid AdmissionReview"),
            "{err}"
        );
        let err = Review::from_slice(b"[]").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err =
            Review::from_slice(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
                .unwrap_err();
        assert!(matches!(err, ReviewRejection::NoRequest));
        let mut v = crate::policy::test_support::review_json("admission-pvc-create.json", 0);
        v["apiVersion"] = "admission.k8s.io/v1beta1".into();
        let err = Review::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("v1beta1"), "{err}");
        // An object that is not an object at all.
        let mut v = crate::policy::test_support::review_json("admission-pvc-create.json", 0);
        v["request"]["object"] = "surprise".into();
        assert!(Review::from_slice(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn answers_echo_the_uid_and_carry_patch_and_warnings() {
        let Review(req) =
            Review::from_slice(&body("admission-volumesnapshotclass-create.json", 0)).unwrap();
        let verdict = Verdict {
            patch: vec![json_patch::PatchOperation::Replace(
                json_patch::ReplaceOperation {
                    path: json_patch::jsonptr::PointerBuf::from_tokens(["deletionPolicy"]),
                    value: "Retain".into(),
                },
            )],
            warnings: vec!["changed".into()],
            denials: vec![],
            decision: Some((PolicyName::SnapshotClass, Outcome::Mutated)),
        };
        let out = serde_json::to_value(respond(&req, verdict)).unwrap();
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], req.uid.as_str());
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        assert_eq!(out["response"]["warnings"][0], "changed");
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&patch).unwrap(),
            serde_json::json!([{"op":"replace","path":"/deletionPolicy","value":"Retain"}])
        );

        let denied = Verdict {
            denials: vec!["no".into(), "never".into()],
            ..Verdict::default()
        };
        let out = serde_json::to_value(respond(&req, denied)).unwrap();
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["message"], "no; never");
        assert!(out["response"].get("patch").is_none());
    }
}
