//! AWS STS `AssumeRole` with an external id, as an object_store
//! [`CredentialProvider`].
//!
//! object_store has static keys, web identity, ECS, EKS pod identity and
//! instance metadata, but not AssumeRole: the usual way for a backup tool to
//! write into another account's bucket (Velero, Palette). This provider signs
//! the STS query-API form POST with the base credentials, and caches the
//! temporary credentials until shortly before they expire.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::CredentialProvider;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use tokio::sync::Mutex;

/// Ask for credentials valid this long.
const SESSION_SECONDS: u32 = 3600;

/// Renew this long before the credentials expire, so that a request signed
/// with them (and its retries) still lands in time.
const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Why AssumeRole failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// STS answered with an error document.
    #[error("STS AssumeRole of {role_arn} was refused: HTTP {status} {code}: {message}")]
    Refused {
        /// The role.
        role_arn: String,
        /// HTTP status.
        status: u16,
        /// The AWS error code (`AccessDenied`, `InvalidClientTokenId`, ...).
        code: String,
        /// The AWS error message.
        message: String,
    },
    /// STS could not be reached.
    #[error("cannot reach STS at {endpoint}: {source}")]
    Unreachable {
        /// The STS endpoint.
        endpoint: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// STS answered something that is not an AssumeRole result.
    #[error("unexpected answer from STS at {endpoint}: {reason}")]
    BadResponse {
        /// The STS endpoint.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be signed.
    #[error("cannot sign the STS request: {0}")]
    Sign(#[source] object_store::Error),
}

impl Error {
    /// Was the call refused for lack of permission (wrong keys, trust policy,
    /// external id)?
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self,
            Error::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// Assumes a role through STS and caches the result.
#[derive(Debug)]
pub struct AssumeRoleProvider {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    base: AwsCredential,
    cached: Mutex<Option<(Arc<AwsCredential>, DateTime<Utc>)>>,
}

impl AssumeRoleProvider {
    /// A provider assuming `role_arn` at the STS `endpoint` (e.g.
    /// `https://sts.eu-west-1.amazonaws.com`) in `region`, signing with `base`.
    /// `http` carries the TLS settings (extra CA certificates).
    pub fn new(
        http: reqwest::Client,
        endpoint: impl Into<String>,
        region: impl Into<String>,
        role_arn: impl Into<String>,
        external_id: Option<String>,
        base: AwsCredential,
    ) -> Self {
        AssumeRoleProvider {
            http,
            endpoint: endpoint.into(),
            region: region.into(),
            role_arn: role_arn.into(),
            external_id,
            session_name: format!("kubectl-backup-{}", std::process::id()),
            base,
            cached: Mutex::new(None),
        }
    }

    /// The current temporary credentials, assuming the role when there are
    /// none or they are about to expire.
    pub async fn credential(&self) -> Result<Arc<AwsCredential>, Error> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expires)) = cached.as_ref()
            && Utc::now() + REFRESH_MARGIN < *expires
        {
            return Ok(Arc::clone(credential));
        }
        let (credential, expires) = self.assume_role().await?;
        let credential = Arc::new(credential);
        *cached = Some((Arc::clone(&credential), expires));
        Ok(credential)
    }

    async fn assume_role(&self) -> Result<(AwsCredential, DateTime<Utc>), Error> {
        // The serializer is not Send: build the body in its own scope.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", "AssumeRole")
                .append_pair("Version", "2011-06-15")
                .append_pair("RoleArn", &self.role_arn)
                .append_pair("RoleSessionName", &self.session_name)
                .append_pair("DurationSeconds", &SESSION_SECONDS.to_string());
            if let Some(id) = &self.external_id {
                form.append_pair("ExternalId", id);
            }
            Bytes::from(form.finish())
        };
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(HttpRequestBody::from(body.clone()))
            .map_err(|e| Error::BadResponse {
                endpoint: self.endpoint.clone(),
                reason: format!("invalid STS endpoint URL: {e}"),
            })?;
        AwsAuthorizer::new(&self.base, "sts", &self.region)
            .try_authorize(&mut request, None)
            .map_err(Error::Sign)?;
        let unreachable = |source| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        };
        let response = self
            .http
            .post(&url)
            .headers(request.headers().clone())
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(Error::Refused {
                role_arn: self.role_arn.clone(),
                status: status.as_u16(),
                code: xml_text(&text, "Code").unwrap_or_else(|| "Unknown".to_owned()),
                message: xml_text(&text, "Message").unwrap_or_else(|| text.trim().to_owned()),
            });
        }
        parse_assume_role_response(&text).map_err(|reason| Error::BadResponse {
            endpoint: self.endpoint.clone(),
            reason,
        })
    }
}

impl CredentialProvider for AssumeRoleProvider {
    type Credential = AwsCredential;

    // Written out instead of using #[async_trait] (what the trait is declared
    // with) to avoid a dependency for one method.
    fn get_credential<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = object_store::Result<Arc<AwsCredential>>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.credential()
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                })
        })
    }
}

/// The credentials and their expiry from an `AssumeRoleResponse` document.
fn parse_assume_role_response(xml: &str) -> Result<(AwsCredential, DateTime<Utc>), String> {
    let field = |tag: &str| xml_text(xml, tag).ok_or_else(|| format!("no <{tag}> in the answer"));
    let expiration = field("Expiration")?;
    let expires = DateTime::parse_from_rfc3339(&expiration)
        .map_err(|e| format!("bad <Expiration> {expiration:?}: {e}"))?
        .with_timezone(&Utc);
    Ok((
        AwsCredential {
            key_id: field("AccessKeyId")?,
            secret_key: field("SecretAccessKey")?,
            token: Some(field("SessionToken")?),
        },
        expires,
    ))
}

/// The text of the first `<tag>…</tag>` with XML's predefined entities
/// decoded; STS answers are small and flat enough for this.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of a real AssumeRole answer (AWS API reference example).
    const RESPONSE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764&amp;x</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn parses_assume_role_answer() {
        let (credential, expires) = parse_assume_role_response(RESPONSE).unwrap();
        assert_eq!(credential.key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            credential.secret_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(
            credential.token.as_deref(),
            Some("AQoDYXdzEPT//////////wEXAMPLEtc764&x")
        );
        assert_eq!(expires.to_rfc3339(), "2019-11-09T13:34:41+00:00");
    }

    #[test]
    fn incomplete_answer_is_an_error() {
        let err =
            parse_assume_role_response("<Credentials><AccessKeyId>A</AccessKeyId></Credentials>")
                .unwrap_err();
        assert!(err.contains("Expiration"), "{err}");
    }

    #[test]
    fn refusals_are_access_denied() {
        let refused = Error::Refused {
            role_arn: "r".into(),
            status: 403,
            code: "AccessDenied".into(),
            message: "no".into(),
        };
        assert!(refused.is_access_denied());
        assert!(refused.to_string().contains("AccessDenied"));
    }
}
