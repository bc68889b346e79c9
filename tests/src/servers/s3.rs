//! moto's S3 server (PyPI `moto[server]`), the real S3 API for the tests.
//!
//! Plain mode accepts any credentials. [`S3Server::start_with_auth`] seeds an
//! IAM user with an access key and a role whose trust policy requires an
//! `sts:ExternalId`, then lets moto enforce signatures and trust conditions
//! (`INITIAL_NO_AUTH_ACTION_COUNT`): a wrong secret key is refused with
//! `SignatureDoesNotMatch`, a wrong external id with `AccessDenied`. moto
//! answers STS and IAM on the same port as S3. In that mode moto runs with a
//! fix for its signature check of query strings (see [`MOTO_WITH_QUERY_FIX`]).

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use tempfile::TempDir;

use super::{ChildGuard, free_port, require_program, spawn_server, xml_text};

/// The region every test bucket lives in.
pub const S3_REGION: &str = "us-east-1";

/// How to install moto when it is missing.
const INSTALL_HINT: &str = "pip install 'moto[server]'";

/// The IAM calls [`S3Server::start_with_auth`] makes before moto starts
/// enforcing authentication; must match the number of `iam_call`s there.
const SEED_CALLS: u32 = 5;

/// A static access key.
#[derive(Clone, Debug)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

/// A role the seeded user may assume, but only with the right external id.
#[derive(Clone, Debug)]
pub struct S3Role {
    /// The role's ARN.
    pub role_arn: String,
    /// The `sts:ExternalId` its trust policy requires.
    pub external_id: String,
}

/// A running moto server; stopped when dropped.
pub struct S3Server {
    port: u16,
    credentials: S3Credentials,
    role: Option<S3Role>,
    _child: ChildGuard,
    _dir: TempDir,
}

impl S3Server {
    /// Start moto accepting any credentials ([`S3Server::credentials`] are
    /// placeholders that sign correctly).
    pub fn start() -> S3Server {
        let (child, dir, port) = spawn_moto(None);
        S3Server {
            port,
            credentials: S3Credentials {
                access_key_id: "moto-test-key".to_owned(),
                secret_access_key: "moto-test-secret".to_owned(),
            },
            role: None,
            _child: child,
            _dir: dir,
        }
    }

    /// Start moto with authentication enforced: only [`S3Server::credentials`]
    /// (an IAM user allowed everything) are accepted, and [`S3Server::role`]
    /// can be assumed with its external id only.
    pub async fn start_with_auth() -> S3Server {
        let (child, dir, port) = spawn_moto(Some(SEED_CALLS));
        let endpoint = format!("http://127.0.0.1:{port}");
        // Any key signs the seeding calls; moto only starts checking after them.
        let seed = AwsCredential {
            key_id: "seed".to_owned(),
            secret_key: "seed".to_owned(),
            token: None,
        };
        let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

        let user = iam_call(
            &endpoint,
            &seed,
            &[("Action", "CreateUser"), ("UserName", "backup")],
        )
        .await;
        let user_arn = xml_text(&user, "Arn").unwrap_or_else(|| panic!("no Arn in {user}"));
        let key = iam_call(
            &endpoint,
            &seed,
            &[("Action", "CreateAccessKey"), ("UserName", "backup")],
        )
        .await;
        let credentials = S3Credentials {
            access_key_id: xml_text(&key, "AccessKeyId")
                .unwrap_or_else(|| panic!("no AccessKeyId in {key}")),
            secret_access_key: xml_text(&key, "SecretAccessKey")
                .unwrap_or_else(|| panic!("no SecretAccessKey in {key}")),
        };
        iam_call(
            &endpoint,
            &seed,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", "backup"),
                ("PolicyName", "all"),
                ("PolicyDocument", allow_all),
            ],
        )
        .await;
        let external_id = format!("ext-{}", uuid::Uuid::new_v4().simple());
        // moto matches the trust policy's principal against the caller's ARN.
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": user_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
            }]
        })
        .to_string();
        let role = iam_call(
            &endpoint,
            &seed,
            &[
                ("Action", "CreateRole"),
                ("RoleName", "backup-writer"),
                ("AssumeRolePolicyDocument", &trust),
            ],
        )
        .await;
        let role_arn = xml_text(&role, "Arn").unwrap_or_else(|| panic!("no Arn in {role}"));
        iam_call(
            &endpoint,
            &seed,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", "backup-writer"),
                ("PolicyName", "all"),
                ("PolicyDocument", allow_all),
            ],
        )
        .await;
        S3Server {
            port,
            credentials,
            role: Some(S3Role {
                role_arn,
                external_id,
            }),
            _child: child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`: the S3, STS and IAM endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The region to configure clients with.
    pub fn region(&self) -> &'static str {
        S3_REGION
    }

    /// Credentials the server accepts.
    pub fn credentials(&self) -> &S3Credentials {
        &self.credentials
    }

    /// The assumable role, in auth-enforced mode.
    pub fn role(&self) -> Option<&S3Role> {
        self.role.as_ref()
    }

    /// Environment for an ad-hoc `s3://BUCKET` location pointing here
    /// (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, region and the access key).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT".to_owned(), self.endpoint()),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("AWS_REGION".to_owned(), S3_REGION.to_owned()),
            (
                "AWS_ACCESS_KEY_ID".to_owned(),
                self.credentials.access_key_id.clone(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                self.credentials.secret_access_key.clone(),
            ),
        ]
    }

    /// Create `bucket` (object_store cannot): a signed `PUT /<bucket>`.
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let credential = AwsCredential {
            key_id: self.credentials.access_key_id.clone(),
            secret_key: self.credentials.secret_access_key.clone(),
            token: None,
        };
        let url = format!("{}/{bucket}", self.endpoint());
        let (status, body) = signed_request(
            http::Method::PUT,
            &url,
            &[],
            Bytes::new(),
            &credential,
            "s3",
        )
        .await?;
        anyhow::ensure!(
            status.is_success(),
            "creating bucket {bucket} on moto: HTTP {status}: {body}"
        );
        Ok(())
    }
}

/// moto's own server entry point, with one bug fixed: when it checks a
/// signature it rebuilds the request from the *decoded* URL, so any query
/// value containing '/' (every S3 listing under a prefix) fails with
/// SignatureDoesNotMatch, for boto3 as for object_store. This re-encodes the
/// query the way SigV4 does (RFC 3986 unreserved characters only) for the
/// check and nothing else; wrong keys and external ids are still refused.
const MOTO_WITH_QUERY_FIX: &str = r#"
import sys
from urllib.parse import urlsplit, urlunsplit, parse_qsl, quote
from moto.core.authorization import ActionAuthenticatorMixin
_check = ActionAuthenticatorMixin._authenticate_and_authorize_action
def _check_with_encoded_query(self, *args, **kwargs):
    uri = self.uri
    parts = urlsplit(uri)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in pairs)
        self.uri = urlunsplit(parts._replace(query=query))
    try:
        return _check(self, *args, **kwargs)
    finally:
        self.uri = uri
ActionAuthenticatorMixin._authenticate_and_authorize_action = _check_with_encoded_query
from moto.server import main
main(sys.argv[1:])
"#;

/// Start moto on a free port, optionally enforcing authentication after
/// `no_auth_calls` requests (then through [`MOTO_WITH_QUERY_FIX`]).
fn spawn_moto(no_auth_calls: Option<u32>) -> (ChildGuard, TempDir, u16) {
    super::install_crypto_provider();
    let program = require_program("moto_server", INSTALL_HINT);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let port = free_port();
    let mut command = if no_auth_calls.is_some() {
        let mut python = Command::new(require_program("python3", INSTALL_HINT));
        python.args(["-c", MOTO_WITH_QUERY_FIX]);
        python
    } else {
        Command::new(program)
    };
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        // moto reads these for its default region and account.
        .env("AWS_DEFAULT_REGION", S3_REGION)
        .env_remove("MOTO_ACCOUNT_ID");
    if let Some(n) = no_auth_calls {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    let child = spawn_server(
        "moto",
        &mut command,
        dir.path(),
        port,
        Duration::from_secs(30),
    );
    (child, dir, port)
}

/// One IAM query-API call (form POST signed for service `iam`); panics on
/// failure because the server cannot be set up without it.
async fn iam_call(endpoint: &str, credential: &AwsCredential, params: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.append_pair("Version", "2010-05-08");
    let body = Bytes::from(form.finish());
    let (status, text) = signed_request(
        http::Method::POST,
        &format!("{endpoint}/"),
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
        credential,
        "iam",
    )
    .await
    .unwrap_or_else(|e| panic!("seeding moto IAM ({params:?}): {e:#}"));
    assert!(
        status.is_success(),
        "seeding moto IAM ({:?}) failed: HTTP {status}: {text}",
        params.first()
    );
    text
}

/// Send a request signed with AWS SigV4 for `service`; returns status and body.
async fn signed_request(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    credential: &AwsCredential,
    service: &str,
) -> anyhow::Result<(http::StatusCode, String)> {
    let mut builder = http::Request::builder().method(method.clone()).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(HttpRequestBody::from(body.clone()))?;
    AwsAuthorizer::new(credential, service, S3_REGION).try_authorize(&mut request, None)?;
    let response = reqwest::Client::new()
        .request(method, url)
        .headers(request.headers().clone())
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, text))
}
