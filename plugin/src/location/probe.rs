//! Checking that a location is usable: write, read, list and delete a small
//! probe object, and when a step fails, say why in words a user can act on
//! (bucket missing, access denied, TLS/CA problem, wrong region, endpoint
//! unreachable).

use std::fmt;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;

use super::Store;

/// The folder (under the location's prefix) probe objects are written to.
pub const PROBE_DIR: &str = ".kubectl-backup-probe";

/// One step of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Upload the probe object.
    Write,
    /// Download it and compare.
    Read,
    /// Find it in a listing.
    List,
    /// Remove it.
    Delete,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Write => "write",
            Step::Read => "read",
            Step::List => "list",
            Step::Delete => "delete",
        })
    }
}

/// Why a step failed, as far as can be told from the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Failure {
    /// The bucket or container does not exist.
    BucketMissing,
    /// Credentials refused, or not allowed to do this.
    AccessDenied,
    /// The TLS handshake failed: untrusted certificate, wrong CA.
    Tls,
    /// The bucket lives in another region than configured.
    WrongRegion,
    /// The endpoint did not answer: DNS, refused connection, timeout.
    Unreachable,
    /// The data read back differs from what was written.
    Corrupted,
    /// Anything else.
    Other,
}

impl Failure {
    /// What the failure means and what to do about it.
    pub fn explanation(self) -> &'static str {
        match self {
            Failure::BucketMissing => {
                "the bucket (or container) does not exist: create it first, or check its name"
            }
            Failure::AccessDenied => {
                "access denied: the credentials were refused or lack permission; check the \
                 access key and secret (or account key, SAS token, service account), the role \
                 and its external id, and the bucket's policy"
            }
            Failure::Tls => {
                "TLS problem: the server's certificate is not trusted; pass the CA that signed \
                 it with --ca-cert, or check that the endpoint really speaks https"
            }
            Failure::WrongRegion => {
                "wrong region: the bucket lives in another region; pass --region with the \
                 bucket's region"
            }
            Failure::Unreachable => {
                "endpoint unreachable: no answer from the storage endpoint; check --endpoint, \
                 DNS, the network and any proxy"
            }
            Failure::Corrupted => {
                "the probe object read back differs from what was written; the endpoint \
                 or a proxy in between alters data"
            }
            Failure::Other => "the storage service refused the request",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::BucketMissing => "bucket missing",
            Failure::AccessDenied => "access denied",
            Failure::Tls => "TLS/CA problem",
            Failure::WrongRegion => "wrong region",
            Failure::Unreachable => "endpoint unreachable",
            Failure::Corrupted => "data corrupted",
            Failure::Other => "request failed",
        })
    }
}

/// A failed probe.
#[derive(Debug, thiserror::Error)]
#[error(
    "location {location} cannot be used: the {step} step failed: {failure}.\n  {}\n  details: {detail}",
    failure.explanation()
)]
pub struct ProbeError {
    /// The location's name or URL.
    pub location: String,
    /// The step that failed.
    pub step: Step,
    /// The classified cause.
    pub failure: Failure,
    /// The underlying error, flattened to text (never contains credentials:
    /// object_store and STS errors do not echo them).
    pub detail: String,
}

/// A successful probe: every step and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The location's name or URL.
    pub location: String,
    /// The steps in order.
    pub steps: Vec<StepTiming>,
}

/// One successful step and how long it took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepTiming {
    /// The step.
    pub step: Step,
    /// Its duration in milliseconds.
    pub millis: u64,
}

/// Write, read back, list and delete a probe object in `store`.
pub async fn probe(store: &Store) -> Result<ProbeReport, ProbeError> {
    let key = format!("{PROBE_DIR}/{}", uuid::Uuid::new_v4());
    let path = store.path(&key);
    let content = format!("kubectl-backup location probe {}\n", chrono::Utc::now());
    let backend = store.object_store();
    let mut steps = Vec::new();

    let started = Instant::now();
    backend
        .put(&path, PutPayload::from(content.clone().into_bytes()))
        .await
        .map_err(|e| failure(store, Step::Write, &e))?;
    steps.push(StepTiming {
        step: Step::Write,
        millis: millis(started.elapsed()),
    });

    if let Err(error) = read_and_list(store, &path, &content, &mut steps).await {
        // Best effort: do not leave the probe object behind.
        let _ = backend.delete(&path).await;
        return Err(error);
    }

    let started = Instant::now();
    backend
        .delete(&path)
        .await
        .map_err(|e| failure(store, Step::Delete, &e))?;
    steps.push(StepTiming {
        step: Step::Delete,
        millis: millis(started.elapsed()),
    });

    Ok(ProbeReport {
        location: store.name().to_owned(),
        steps,
    })
}

/// The read and list steps, once the probe object is written.
async fn read_and_list(
    store: &Store,
    path: &object_store::path::Path,
    content: &str,
    steps: &mut Vec<StepTiming>,
) -> Result<(), ProbeError> {
    let backend = store.object_store();
    let started = Instant::now();
    let read = async { backend.get(path).await?.bytes().await };
    let bytes = read.await.map_err(|e| failure(store, Step::Read, &e))?;
    if bytes.as_ref() != content.as_bytes() {
        return Err(ProbeError {
            location: store.name().to_owned(),
            step: Step::Read,
            failure: Failure::Corrupted,
            detail: format!(
                "wrote {} bytes, read back {} different bytes",
                content.len(),
                bytes.len()
            ),
        });
    }
    steps.push(StepTiming {
        step: Step::Read,
        millis: millis(started.elapsed()),
    });

    let started = Instant::now();
    let dir = store.path(PROBE_DIR);
    let listed: Vec<_> = backend
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| failure(store, Step::List, &e))?;
    if !listed.iter().any(|meta| &meta.location == path) {
        return Err(ProbeError {
            location: store.name().to_owned(),
            step: Step::List,
            failure: Failure::Other,
            detail: format!("the probe object {path} is missing from the listing of {dir}"),
        });
    }
    steps.push(StepTiming {
        step: Step::List,
        millis: millis(started.elapsed()),
    });
    Ok(())
}

fn failure(store: &Store, step: Step, error: &(dyn std::error::Error + 'static)) -> ProbeError {
    ProbeError {
        location: store.name().to_owned(),
        step,
        failure: classify(error),
        detail: error_chain(error),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The error and its sources, joined with ": ", with repeats removed
/// (object_store often repeats its source in its own message).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Classify an object-store error by its kind and, since HTTP errors reach
/// us mostly as text, by the error codes the services put in their answers.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(sts) = e.downcast_ref::<super::sts::Error>() {
            return match sts {
                super::sts::Error::Unreachable { .. } => classify_text(&error_chain(error)),
                _ if sts.is_access_denied() => Failure::AccessDenied,
                _ => Failure::Other,
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Failure::AccessDenied;
        }
        current = e.source();
    }
    let text_class = classify_text(&error_chain(error));
    if text_class != Failure::Other {
        return text_class;
    }
    match error.downcast_ref::<object_store::Error>() {
        Some(object_store::Error::PermissionDenied { .. })
        | Some(object_store::Error::Unauthenticated { .. }) => Failure::AccessDenied,
        _ => Failure::Other,
    }
}

/// The text rules of [`classify`], in priority order: the service's own
/// error codes first, transport problems last (a TLS failure is also "error
/// sending request").
pub fn classify_text(text: &str) -> Failure {
    let t = text.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if any(&[
        "nosuchbucket",
        "containernotfound",
        "the specified bucket does not exist",
        "the specified container does not exist",
        "bucket not found",
        "bucketnotfound",
    ]) {
        Failure::BucketMissing
    } else if any(&[
        "permanentredirect",
        "authorizationheadermalformed",
        "illegallocationconstraint",
        "the bucket you are attempting to access must be addressed using the specified endpoint",
        "wrong region",
        "incorrectendpoint",
    ]) {
        Failure::WrongRegion
    } else if any(&[
        "accessdenied",
        "access denied",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "invalidclienttokenid",
        "authenticationfailed",
        "authorizationfailure",
        "authorizationpermissionmismatch",
        "noauthenticationinformation",
        "invalid_grant",
        "unauthorized",
        "forbidden",
        "expiredtoken",
        "permission denied",
    ]) {
        Failure::AccessDenied
    } else if any(&[
        "certificate",
        "unknownissuer",
        "unknown issuer",
        "invalid peer",
        "tls handshake",
        "handshake failure",
        "invalidcontenttype",
        "received corrupt message",
        "peer is incompatible",
    ]) {
        Failure::Tls
    } else if any(&[
        "connection refused",
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no route to host",
        "timed out",
        "deadline has elapsed",
        "connection reset",
        "tcp connect error",
        "network is unreachable",
        "error sending request",
        "client error (connect)",
    ]) {
        Failure::Unreachable
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_codes() {
        // Real answer fragments from S3, Azure and GCS.
        let cases = [
            (
                "Client error with status 404 Not Found: <Error><Code>NoSuchBucket</Code>",
                Failure::BucketMissing,
            ),
            (
                "<Code>ContainerNotFound</Code><Message>The specified container does not exist.",
                Failure::BucketMissing,
            ),
            (
                "403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
                Failure::AccessDenied,
            ),
            (
                "<Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist",
                Failure::AccessDenied,
            ),
            (
                "Server returned non-2xx status code: 403 Forbidden: AuthenticationFailed",
                Failure::AccessDenied,
            ),
            (
                "<Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.",
                Failure::WrongRegion,
            ),
            (
                "<Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'",
                Failure::WrongRegion,
            ),
            (
                "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer",
                Failure::Tls,
            ),
            (
                "error sending request for url (http://127.0.0.1:1/b): client error (Connect): tcp connect error: Connection refused (os error 111)",
                Failure::Unreachable,
            ),
            (
                "dns error: failed to lookup address information: Name or service not known",
                Failure::Unreachable,
            ),
            ("HTTP 500: something odd", Failure::Other),
        ];
        for (text, expected) in cases {
            assert_eq!(classify_text(text), expected, "{text}");
        }
    }

    #[test]
    fn typed_errors() {
        let denied = object_store::Error::PermissionDenied {
            path: "p".into(),
            source: "nope".into(),
        };
        assert_eq!(classify(&denied), Failure::AccessDenied);
        let sts = object_store::Error::Generic {
            store: "S3",
            source: Box::new(crate::location::sts::Error::Refused {
                role_arn: "r".into(),
                status: 403,
                code: "AccessDenied".into(),
                message: "not authorized".into(),
            }),
        };
        assert_eq!(classify(&sts), Failure::AccessDenied);
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(classify(&io), Failure::AccessDenied);
    }

    #[test]
    fn chain_drops_repeats() {
        let inner = std::io::Error::other("boom");
        let outer = object_store::Error::Generic {
            store: "S3",
            source: Box::new(inner),
        };
        assert_eq!(error_chain(&outer), "Generic S3 error: boom");
    }

    #[test]
    fn probe_error_names_step_and_cause() {
        let e = ProbeError {
            location: "prod".into(),
            step: Step::Write,
            failure: Failure::BucketMissing,
            detail: "NoSuchBucket".into(),
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "location prod cannot be used: the write step failed: bucket missing."
            ),
            "{text}"
        );
        assert!(text.contains("create it first"), "{text}");
    }
}
