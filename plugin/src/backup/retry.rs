//! Retrying API requests on 429 and 5xx with capped exponential backoff: an
//! API server under load (or restarting) should slow a backup down, not fail it.
//!
//! kube-rs' own retry layer is switched off for backups ([`client_without_retries`]):
//! it retries up to 15 times with delays growing towards 1000 s, so a resource
//! that never answers would stall a backup for many minutes; and it does not
//! retry 500/502 or connection errors, which this module does.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// Attempts before giving up (the first try included).
pub const MAX_ATTEMPTS: u32 = 8;

/// Most a response body's announced length may reserve up front.
const MAX_PREALLOCATION: usize = 16 * 1024 * 1024;

/// A client for `config` without kube-rs' built-in retry layer.
pub fn client_without_retries(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// Is this error worth retrying?
pub fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Delay before attempt `attempt` (1-based retry count): 200 ms doubling, capped
/// at 8 s (about half a minute over all attempts: long enough for an API
/// server restart), with ±25 % jitter so concurrent listers do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1u64 << attempt.min(10)).min(8_000);
    let jitter = rand::random_range(0.75..1.25);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Send a request built by `build` (rebuilt for every attempt), retrying
/// retryable failures.
pub async fn request_with_retry<T, F>(client: &kube::Client, build: F) -> Result<T, kube::Error>
where
    T: DeserializeOwned,
    F: Fn() -> Result<http::Request<Vec<u8>>, kube::Error>,
{
    let body = request_bytes_with_retry(client, build).await?;
    serde_json::from_slice(&body).map_err(kube::Error::SerdeError)
}

/// [`request_with_retry`], returning the body itself: for callers that read
/// it in place instead of into owned values (LIST pages).
pub async fn request_bytes_with_retry<F>(
    client: &kube::Client,
    build: F,
) -> Result<Vec<u8>, kube::Error>
where
    F: Fn() -> Result<http::Request<Vec<u8>>, kube::Error>,
{
    let mut attempt = 0;
    loop {
        let request = build()?;
        match request_bytes(client, request).await {
            Ok(v) => return Ok(v),
            Err(e) if is_retryable(&e) && attempt + 1 < MAX_ATTEMPTS => {
                attempt += 1;
                let delay = backoff(attempt);
                tracing::info!(error = %e, attempt, ?delay, "retrying API request");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One request's body, gathered into one buffer as it arrives. kube's
/// `request_text` copies a body twice (its chunks into one `Bytes`, that
/// into a `String`); a backup reads the whole cluster through here.
async fn request_bytes(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> Result<Vec<u8>, kube::Error> {
    use http_body_util::BodyExt as _;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let mut body = response.into_body();
    // A length hint only: never trust it for more than one page's worth.
    let mut out = Vec::with_capacity(length.unwrap_or(0).min(MAX_PREALLOCATION));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    if status.is_client_error() || status.is_server_error() {
        return Err(api_error(status, &out));
    }
    Ok(out)
}

/// The error for a failed response, as kube reports one: the API's
/// `Status` when the body is one, else the body's text under the HTTP code
/// (a proxy's HTML page, a plain-text error).
fn api_error(status: http::StatusCode, body: &[u8]) -> kube::Error {
    let code = status.as_u16();
    let status = match serde_json::from_slice::<kube::core::Status>(body) {
        Ok(parsed) if parsed.code == 0 => parsed.with_code(code),
        Ok(parsed) => parsed,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            kube::core::Status::failure(text.trim(), "Failed to parse error data").with_code(code)
        }
    };
    kube::Error::Api(status.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn retries_throttling_and_server_errors_only() {
        assert!(is_retryable(&status_error(429)));
        assert!(is_retryable(&status_error(503)));
        assert!(!is_retryable(&status_error(404)));
        assert!(!is_retryable(&status_error(403)));
    }

    fn status_of(error: kube::Error) -> kube::core::Status {
        match error {
            kube::Error::Api(status) => *status,
            other => panic!("not an API error: {other}"),
        }
    }

    #[test]
    fn failed_responses_read_as_the_api_status() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"configmaps is forbidden","reason":"Forbidden","code":403}"#;
        let status = status_of(api_error(http::StatusCode::FORBIDDEN, body));
        assert_eq!(status.code, 403);
        assert_eq!(status.message, "configmaps is forbidden");
        assert_eq!(status.reason, "Forbidden");

        // Not a Status (a proxy's page): its text, under the HTTP code.
        let status = status_of(api_error(
            http::StatusCode::BAD_GATEWAY,
            b"<html>502 Bad Gateway</html>\n",
        ));
        assert_eq!(status.code, 502);
        assert_eq!(status.message, "<html>502 Bad Gateway</html>");
        assert!(is_retryable(&kube::Error::Api(Box::new(status))));

        // A JSON body without a code takes the HTTP one.
        let status = status_of(api_error(http::StatusCode::TOO_MANY_REQUESTS, b"{}"));
        assert_eq!(status.code, 429);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < Duration::from_millis(600));
        assert!(backoff(10) <= Duration::from_millis(10_000));
        assert!(backoff(10) >= Duration::from_millis(6_000));
    }
}
