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
    let text = request_text_with_retry(client, build).await?;
    serde_json::from_str(&text).map_err(kube::Error::SerdeError)
}

/// [`request_with_retry`], returning the body as text: for callers that
/// read it in place instead of into owned values.
pub async fn request_text_with_retry<F>(
    client: &kube::Client,
    build: F,
) -> Result<String, kube::Error>
where
    F: Fn() -> Result<http::Request<Vec<u8>>, kube::Error>,
{
    let mut attempt = 0;
    loop {
        let request = build()?;
        match client.request_text(request).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn retries_throttling_and_server_errors_only() {
        assert!(is_retryable(&api_error(429)));
        assert!(is_retryable(&api_error(503)));
        assert!(!is_retryable(&api_error(404)));
        assert!(!is_retryable(&api_error(403)));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < Duration::from_millis(600));
        assert!(backoff(10) <= Duration::from_millis(10_000));
        assert!(backoff(10) >= Duration::from_millis(6_000));
    }
}
