//! Turning a [`LocationSpec`] and its [`Credentials`] into a [`Store`]: one
//! object_store builder per provider.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{BackoffConfig, Certificate, ClientOptions, ObjectStore, RetryConfig};

use super::spec::{AwsAuth, Credentials, LocationSpec, Provider};
use super::sts::AssumeRoleProvider;
use super::{Error, Result, Store, open_local};

/// The region used when an S3 location names none (MinIO ignores it, AWS
/// needs the bucket's real one).
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// How patient the opened store is with failing requests.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Retries of failed requests.
    pub retry: RetryConfig,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Default for OpenOptions {
    /// object_store's default retries (10, with backoff up to 3 minutes):
    /// right for long uploads over flaky networks.
    fn default() -> Self {
        OpenOptions {
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl OpenOptions {
    /// Few, quick retries: for validation, where a definite answer soon is
    /// worth more than riding out a long outage.
    pub fn quick() -> Self {
        OpenOptions {
            retry: RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
            },
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Open the location `name` described by `spec` with `credentials`.
/// Credentials missing from `credentials` are taken from the environment
/// where the provider supports that (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub fn open_spec(
    name: &str,
    spec: &LocationSpec,
    credentials: &Credentials,
    options: &OpenOptions,
) -> Result<Store> {
    let open_error = |source| Error::Open {
        location: name.to_owned(),
        source,
    };
    let store: Arc<dyn ObjectStore> = match spec.provider {
        Provider::Fs => {
            let dir = spec.path.as_deref().ok_or_else(|| missing(name, "path"))?;
            let local = open_local(std::path::Path::new(dir))?;
            return Ok(Store::new(
                name,
                Arc::clone(local.object_store()),
                prefix(spec),
            ));
        }
        Provider::Aws | Provider::Minio => Arc::new(
            s3_builder(name, spec, credentials, options)?
                .build()
                .map_err(open_error)?,
        ),
        Provider::Gcs => Arc::new(
            gcs_builder(name, spec, credentials, options)?
                .build()
                .map_err(open_error)?,
        ),
        Provider::Azure => Arc::new(
            azure_builder(name, spec, credentials, options)?
                .build()
                .map_err(open_error)?,
        ),
    };
    Ok(Store::new(name, store, prefix(spec)))
}

fn prefix(spec: &LocationSpec) -> Path {
    Path::from(spec.prefix.as_deref().unwrap_or("").trim_matches('/'))
}

fn missing(name: &str, what: &str) -> Error {
    Error::Incomplete {
        location: name.to_owned(),
        missing: what.to_owned(),
    }
}

/// Client options shared by every provider: timeouts, plain HTTP for an
/// `http://` endpoint, extra CA certificates.
fn client_options(
    name: &str,
    spec: &LocationSpec,
    options: &OpenOptions,
    http_endpoint: bool,
) -> Result<ClientOptions> {
    let mut client = ClientOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_allow_http(http_endpoint);
    if let Some(pem) = &spec.ca_certificate {
        let certificates =
            Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| Error::CaCertificate {
                location: name.to_owned(),
                reason: e.to_string(),
            })?;
        if certificates.is_empty() {
            return Err(Error::CaCertificate {
                location: name.to_owned(),
                reason: "no PEM certificate found".to_owned(),
            });
        }
        for certificate in certificates {
            client = client.with_root_certificate(certificate);
        }
    }
    Ok(client)
}

fn is_http(url: Option<&str>) -> bool {
    url.is_some_and(|u| u.starts_with("http://"))
}

fn s3_builder(
    name: &str,
    spec: &LocationSpec,
    credentials: &Credentials,
    options: &OpenOptions,
) -> Result<AmazonS3Builder> {
    let bucket = spec
        .bucket
        .as_deref()
        .ok_or_else(|| missing(name, "bucket"))?;
    let region = spec.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    if spec.provider == Provider::Minio && spec.endpoint.is_none() {
        return Err(missing(name, "endpoint (MinIO needs --endpoint)"));
    }
    let auth = spec.aws_auth.clone().unwrap_or_default();
    // MinIO is always path-style (`endpoint/bucket/key`); AWS uses
    // virtual-hosted requests (`bucket.endpoint/key`) unless told otherwise.
    let virtual_hosted = spec.provider == Provider::Aws && !spec.force_path_style;
    let mut builder = AmazonS3Builder::new();
    let credentials = aws_credentials_or(
        credentials,
        super::spec::aws_credentials_from_env(std::env::vars()),
    );
    builder = builder
        .with_bucket_name(bucket)
        .with_region(region)
        .with_retry(options.retry.clone())
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_client_options(client_options(
            name,
            spec,
            options,
            is_http(spec.endpoint.as_deref()),
        )?);
    if let Some(endpoint) = &spec.endpoint {
        let endpoint = if virtual_hosted {
            bucket_in_host(name, endpoint, bucket)?
        } else {
            endpoint.trim_end_matches('/').to_owned()
        };
        builder = builder.with_endpoint(endpoint);
    }
    match auth {
        AwsAuth::Static => {
            if let (Some(id), Some(secret)) = (
                &credentials.aws_access_key_id,
                &credentials.aws_secret_access_key,
            ) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                if let Some(token) = &credentials.aws_session_token {
                    builder = builder.with_token(token);
                }
            } else {
                // No keys anywhere: let object_store's chain (web identity,
                // container credentials, instance metadata) find some.
                builder = env_identity(builder);
            }
        }
        AwsAuth::AssumeRole {
            role_arn,
            sts_endpoint,
        } => {
            let (Some(id), Some(secret)) = (
                credentials.aws_access_key_id.clone(),
                credentials.aws_secret_access_key.clone(),
            ) else {
                return Err(missing(
                    name,
                    "an access key to call STS AssumeRole with (credentials file or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
                ));
            };
            let sts_endpoint = sts_endpoint
                .or_else(|| spec.endpoint.clone())
                .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
            let provider = AssumeRoleProvider::new(
                sts_http_client(name, spec, options)?,
                sts_endpoint,
                region,
                role_arn,
                credentials.aws_external_id.clone(),
                AwsCredential {
                    key_id: id,
                    secret_key: secret,
                    token: credentials.aws_session_token.clone(),
                },
            );
            builder = builder.with_credentials(Arc::new(provider));
        }
        AwsAuth::WebIdentity => {
            let token_file = std::env::var("AWS_WEB_IDENTITY_TOKEN_FILE").ok();
            let role_arn = std::env::var("AWS_ROLE_ARN").ok();
            // object_store would silently fall through to instance metadata
            // when either is missing; say what is missing instead.
            let (Some(token_file), Some(role_arn)) = (token_file, role_arn) else {
                return Err(missing(
                    name,
                    "web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must be set (EKS sets them for a service account annotated with eks.amazonaws.com/role-arn; to save such a location from outside the cluster, add it with --skip-validation)",
                ));
            };
            builder = builder
                .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, token_file)
                .with_config(AmazonS3ConfigKey::RoleArn, role_arn);
            if let Ok(session) = std::env::var("AWS_ROLE_SESSION_NAME") {
                builder = builder.with_config(AmazonS3ConfigKey::RoleSessionName, session);
            }
            if let Ok(sts) = std::env::var("AWS_ENDPOINT_URL_STS") {
                builder = builder.with_config(AmazonS3ConfigKey::StsEndpoint, sts);
            }
        }
    }
    Ok(builder)
}

/// The stored access key as a whole, or (when none is stored) the
/// environment's. Mixing would be wrong: an unrelated `AWS_SESSION_TOKEN`
/// from the user's shell would break a stored long-term key's signatures.
fn aws_credentials_or(stored: &Credentials, env: Credentials) -> Credentials {
    if stored.aws_access_key_id.is_some() {
        return stored.clone();
    }
    Credentials {
        aws_access_key_id: env.aws_access_key_id,
        aws_secret_access_key: env.aws_secret_access_key,
        aws_session_token: env.aws_session_token,
        aws_external_id: stored.aws_external_id.clone().or(env.aws_external_id),
        ..stored.clone()
    }
}

/// `https://host/` → `https://bucket.host`: with a custom endpoint
/// object_store expects virtual-hosted endpoints to name the bucket already.
fn bucket_in_host(name: &str, endpoint: &str, bucket: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: endpoint.to_owned(),
        reason: format!("location {name}: {reason}"),
    };
    let mut url = url::Url::parse(endpoint).map_err(|e| invalid(&e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid("the endpoint has no host"))?
        .to_owned();
    url.set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|e| invalid(&e.to_string()))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Copy the identity-related `AWS_*` variables (web identity, container
/// credentials, metadata endpoint) into the builder; never endpoint or
/// bucket settings, which belong to the location.
fn env_identity(mut builder: AmazonS3Builder) -> AmazonS3Builder {
    for (key, value) in std::env::vars() {
        let identity = matches!(
            key.as_str(),
            "AWS_WEB_IDENTITY_TOKEN_FILE"
                | "AWS_ROLE_ARN"
                | "AWS_ROLE_SESSION_NAME"
                | "AWS_ENDPOINT_URL_STS"
                | "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
                | "AWS_CONTAINER_CREDENTIALS_FULL_URI"
                | "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
                | "AWS_METADATA_ENDPOINT"
                | "AWS_IMDSV1_FALLBACK"
        );
        if identity && let Ok(config_key) = key.to_ascii_lowercase().parse() {
            builder = builder.with_config(config_key, value);
        }
    }
    builder
}

/// The HTTP client for STS: same CA certificates as the store.
fn sts_http_client(
    name: &str,
    spec: &LocationSpec,
    options: &OpenOptions,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().connect_timeout(options.connect_timeout);
    if let Some(pem) = &spec.ca_certificate {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            Error::CaCertificate {
                location: name.to_owned(),
                reason: e.to_string(),
            }
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| Error::CaCertificate {
        location: name.to_owned(),
        reason: format!("cannot build an HTTP client: {e}"),
    })
}

fn gcs_builder(
    name: &str,
    spec: &LocationSpec,
    credentials: &Credentials,
    options: &OpenOptions,
) -> Result<GoogleCloudStorageBuilder> {
    let bucket = spec
        .bucket
        .as_deref()
        .ok_or_else(|| missing(name, "bucket"))?;
    let mut builder = match &credentials.gcs_service_account_json {
        Some(json) => GoogleCloudStorageBuilder::new().with_service_account_key(json),
        // GOOGLE_APPLICATION_CREDENTIALS, or the metadata server (GKE
        // Workload Identity).
        None => GoogleCloudStorageBuilder::from_env(),
    };
    // A service-account key may carry its own base URL (`gcs_base_url`,
    // used for emulators); plain HTTP is allowed only when that or the
    // explicit endpoint is http.
    let key_base_url = credentials
        .gcs_service_account_json
        .as_deref()
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|v| v.get("gcs_base_url")?.as_str().map(str::to_owned));
    let http = is_http(spec.endpoint.as_deref()) || is_http(key_base_url.as_deref());
    builder = builder
        .with_bucket_name(bucket)
        .with_retry(options.retry.clone())
        .with_client_options(client_options(name, spec, options, http)?);
    if let Some(endpoint) = &spec.endpoint {
        builder = builder.with_base_url(endpoint.trim_end_matches('/'));
    }
    Ok(builder)
}

fn azure_builder(
    name: &str,
    spec: &LocationSpec,
    credentials: &Credentials,
    options: &OpenOptions,
) -> Result<MicrosoftAzureBuilder> {
    let container = spec
        .bucket
        .as_deref()
        .ok_or_else(|| missing(name, "container"))?;
    let account = spec
        .storage_account
        .as_deref()
        .ok_or_else(|| missing(name, "storage account"))?;
    // Stored credentials are used as a whole; the environment's only when
    // none are stored, so that an unrelated variable never mixes in.
    let credentials = if credentials
        .field_names()
        .iter()
        .any(|f| f.starts_with("azure_"))
    {
        credentials.clone()
    } else {
        super::spec::azure_credentials_from_env(std::env::vars())
    };
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_container_name(container)
        .with_retry(options.retry.clone())
        .with_client_options(client_options(
            name,
            spec,
            options,
            is_http(spec.endpoint.as_deref()),
        )?);
    if let Some(endpoint) = &spec.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    if let Some(key) = &credentials.azure_account_key {
        builder = builder.with_access_key(key);
    } else if let Some(sas) = &credentials.azure_sas_token {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(sas.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        builder = builder.with_sas_authorization(pairs);
    } else if let (Some(tenant), Some(client_id), Some(secret)) = (
        &credentials.azure_tenant_id,
        &credentials.azure_client_id,
        &credentials.azure_client_secret,
    ) {
        builder = builder.with_client_secret_authorization(client_id, secret, tenant);
        if let Ok(authority) = std::env::var("AZURE_AUTHORITY_HOST") {
            builder = builder.with_authority_host(authority);
        }
    } else {
        return Err(missing(
            name,
            "Azure credentials: an account key, a SAS token, or tenant id + client id + client secret",
        ));
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_never_mix_with_the_environment() {
        let stored = Credentials {
            aws_access_key_id: Some("AKIA-STORED".into()),
            aws_secret_access_key: Some("stored".into()),
            ..Credentials::default()
        };
        let env = Credentials {
            aws_access_key_id: Some("ASIA-ENV".into()),
            aws_secret_access_key: Some("env".into()),
            aws_session_token: Some("token".into()),
            ..Credentials::default()
        };
        assert_eq!(aws_credentials_or(&stored, env.clone()), stored);

        // Nothing stored but an external id: keys from the environment.
        let role_only = Credentials {
            aws_external_id: Some("ext".into()),
            ..Credentials::default()
        };
        let merged = aws_credentials_or(&role_only, env);
        assert_eq!(merged.aws_access_key_id.as_deref(), Some("ASIA-ENV"));
        assert_eq!(merged.aws_session_token.as_deref(), Some("token"));
        assert_eq!(merged.aws_external_id.as_deref(), Some("ext"));
    }

    #[test]
    fn virtual_hosted_endpoints_name_the_bucket() {
        assert_eq!(
            bucket_in_host("x", "https://s3.example.com:9000/", "b").unwrap(),
            "https://b.s3.example.com:9000"
        );
        assert!(bucket_in_host("x", "not a url", "b").is_err());
    }

    #[test]
    fn incomplete_specs_are_reported() {
        let spec = LocationSpec::new(Provider::Minio);
        let err =
            open_spec("m", &spec, &Credentials::default(), &OpenOptions::quick()).unwrap_err();
        assert!(err.to_string().contains("missing bucket"), "{err}");
        let mut spec = LocationSpec::new(Provider::Azure);
        spec.bucket = Some("c".into());
        spec.storage_account = Some("a".into());
        spec.endpoint = Some("http://127.0.0.1:1/a".into());
        let creds = Credentials {
            azure_account_key: Some("a2V5".into()),
            ..Credentials::default()
        };
        assert!(open_spec("a", &spec, &creds, &OpenOptions::quick()).is_ok());
        let mut bad_ca = LocationSpec::new(Provider::Aws);
        bad_ca.bucket = Some("b".into());
        bad_ca.ca_certificate = Some("not pem".into());
        let creds = Credentials {
            aws_access_key_id: Some("k".into()),
            aws_secret_access_key: Some("s".into()),
            ..Credentials::default()
        };
        let err = open_spec("c", &bad_ca, &creds, &OpenOptions::quick()).unwrap_err();
        assert!(matches!(err, Error::CaCertificate { .. }), "{err}");
    }
}
