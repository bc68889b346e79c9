//! What a named location is made of: a provider, its non-secret settings
//! ([`LocationSpec`]) and its credentials ([`Credentials`]), and how both are
//! kept in one Kubernetes Secret per location.
//!
//! Pure data and conversions; no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The object-store service a location lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon S3 (or any S3 API with `--endpoint`).
    Aws,
    /// MinIO: an S3 endpoint with path-style requests and often a private CA.
    Minio,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A folder on the machine running the plugin.
    Fs,
}

impl Provider {
    /// The lower-case name used in flags, tables and Secrets.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Minio => "minio",
            Provider::Gcs => "gcs",
            Provider::Azure => "azure",
            Provider::Fs => "fs",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an S3 location (AWS or MinIO) obtains credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AwsAuth {
    /// The access key stored with the location (or, when none is stored, the
    /// `AWS_*` environment of whoever runs the plugin).
    #[default]
    Static,
    /// Assume `role_arn` through STS `AssumeRole`, signing with the stored
    /// access key (or the environment's), passing the stored external id.
    #[serde(rename_all = "camelCase")]
    AssumeRole {
        /// The role to assume.
        role_arn: String,
        /// STS endpoint; default: the location's endpoint when set, else
        /// `https://sts.<region>.amazonaws.com`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sts_endpoint: Option<String>,
    },
    /// Web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and
    /// `AWS_ROLE_ARN` from the environment of the process at run time.
    WebIdentity,
}

/// The non-secret settings of a location. Stored as `config.json` in the
/// location's Secret and shown by `location describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationSpec {
    /// Which service.
    pub provider: Provider,
    /// Bucket (S3, GCS) or container (Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket, without leading or trailing slash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL overriding the provider's default (S3-compatible
    /// services, Azure sovereign clouds or emulators, private GCS endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3: path-style requests (`endpoint/bucket/key`) instead of virtual-hosted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_path_style: bool,
    /// PEM CA certificate(s) trusted in addition to the system's (MinIO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// Azure storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<String>,
    /// Local folder (fs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// S3 credential source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_auth: Option<AwsAuth>,
}

impl LocationSpec {
    /// A spec for `provider` with nothing else set.
    pub fn new(provider: Provider) -> Self {
        LocationSpec {
            provider,
            bucket: None,
            prefix: None,
            region: None,
            endpoint: None,
            force_path_style: false,
            ca_certificate: None,
            storage_account: None,
            path: None,
            aws_auth: None,
        }
    }

    /// A URL-like description for tables and messages, e.g.
    /// `s3://bucket/prefix`, `az://account/container`, `file:///dir`.
    pub fn display_url(&self) -> String {
        let bucket = self.bucket.as_deref().unwrap_or("?");
        let base = match self.provider {
            Provider::Aws | Provider::Minio => format!("s3://{bucket}"),
            Provider::Gcs => format!("gs://{bucket}"),
            Provider::Azure => format!(
                "az://{}/{bucket}",
                self.storage_account.as_deref().unwrap_or("?")
            ),
            Provider::Fs => return format!("file://{}", self.path.as_deref().unwrap_or("?")),
        };
        match self.prefix.as_deref() {
            Some(p) if !p.is_empty() => format!("{base}/{p}"),
            _ => base,
        }
    }
}

/// Credentials of a location. Never printed: `Debug` shows which fields are
/// set, not their values, and there is deliberately no `Serialize`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// S3 access key id.
    pub aws_access_key_id: Option<String>,
    /// S3 secret access key.
    pub aws_secret_access_key: Option<String>,
    /// S3 session token (temporary keys).
    pub aws_session_token: Option<String>,
    /// External id passed to STS `AssumeRole`.
    pub aws_external_id: Option<String>,
    /// GCS service-account key (JSON document).
    pub gcs_service_account_json: Option<String>,
    /// Azure storage account key.
    pub azure_account_key: Option<String>,
    /// Azure SAS token (query string, with or without leading `?`).
    pub azure_sas_token: Option<String>,
    /// Azure AD tenant id (service principal).
    pub azure_tenant_id: Option<String>,
    /// Azure AD client id (service principal).
    pub azure_client_id: Option<String>,
    /// Azure AD client secret (service principal).
    pub azure_client_secret: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("set", &self.field_names())
            .finish_non_exhaustive()
    }
}

/// The Secret data key holding the [`LocationSpec`].
pub const CONFIG_KEY: &str = "config.json";

impl Credentials {
    fn fields(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("aws_access_key_id", &self.aws_access_key_id),
            ("aws_secret_access_key", &self.aws_secret_access_key),
            ("aws_session_token", &self.aws_session_token),
            ("aws_external_id", &self.aws_external_id),
            ("gcs_service_account_json", &self.gcs_service_account_json),
            ("azure_account_key", &self.azure_account_key),
            ("azure_sas_token", &self.azure_sas_token),
            ("azure_tenant_id", &self.azure_tenant_id),
            ("azure_client_id", &self.azure_client_id),
            ("azure_client_secret", &self.azure_client_secret),
        ]
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "aws_access_key_id" => &mut self.aws_access_key_id,
            "aws_secret_access_key" => &mut self.aws_secret_access_key,
            "aws_session_token" => &mut self.aws_session_token,
            "aws_external_id" => &mut self.aws_external_id,
            "gcs_service_account_json" => &mut self.gcs_service_account_json,
            "azure_account_key" => &mut self.azure_account_key,
            "azure_sas_token" => &mut self.azure_sas_token,
            "azure_tenant_id" => &mut self.azure_tenant_id,
            "azure_client_id" => &mut self.azure_client_id,
            "azure_client_secret" => &mut self.azure_client_secret,
            _ => return None,
        })
    }

    /// Names of the fields that are set (safe to show: no values).
    pub fn field_names(&self) -> Vec<&'static str> {
        self.fields()
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect()
    }

    /// Is nothing set?
    pub fn is_empty(&self) -> bool {
        self.field_names().is_empty()
    }

    /// Secret data entries, one per field that is set.
    pub fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        self.fields()
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.as_bytes().to_vec())))
            .collect()
    }

    /// Read the fields back from Secret data; unknown keys are ignored.
    pub fn from_data(data: &BTreeMap<String, Vec<u8>>) -> Self {
        let mut credentials = Credentials::default();
        for (key, value) in data {
            if let Some(field) = credentials.field_mut(key) {
                *field = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        credentials
    }

    /// Fill fields from `other` where this has none.
    pub fn or(mut self, other: Credentials) -> Credentials {
        for (key, value) in other.fields() {
            if let (Some(field), Some(value)) = (self.field_mut(key), value)
                && field.is_none()
            {
                *field = Some(value.clone());
            }
        }
        self
    }
}

/// Errors of reading a credentials file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    /// A line that is neither `key = value`, a `[section]`, a comment nor blank.
    #[error("line {line}: expected KEY=VALUE")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// The AWS profile asked for is not in the file.
    #[error("profile [{profile}] not found")]
    MissingProfile {
        /// The profile.
        profile: String,
    },
    /// The GCS file is not a JSON service-account key.
    #[error("not a service-account JSON key: {reason}")]
    NotServiceAccount {
        /// What is wrong.
        reason: String,
    },
}

/// Parse an AWS shared-credentials file (`[profile]` sections of
/// `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token`, plus
/// our `external_id`), as Velero takes it. A file without sections is one
/// profile.
pub fn parse_aws_credentials(
    text: &str,
    profile: &str,
) -> Result<Credentials, CredentialsFileError> {
    let mut current: Option<String> = None;
    let mut found = false;
    let mut credentials = Credentials::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            // ~/.aws/config style "[profile name]" is accepted too.
            let section = section.strip_prefix("profile ").unwrap_or(section).trim();
            current = Some(section.to_owned());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or(CredentialsFileError::Syntax { line: i + 1 })?;
        if current.as_deref().is_some_and(|c| c != profile) {
            continue;
        }
        found = true;
        let value = value.trim().to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => credentials.aws_access_key_id = Some(value),
            "aws_secret_access_key" => credentials.aws_secret_access_key = Some(value),
            "aws_session_token" => credentials.aws_session_token = Some(value),
            "external_id" | "aws_external_id" => credentials.aws_external_id = Some(value),
            _ => {}
        }
    }
    if !found {
        return Err(CredentialsFileError::MissingProfile {
            profile: profile.to_owned(),
        });
    }
    Ok(credentials)
}

/// Parse an Azure credentials file of `KEY=VALUE` lines, as Velero's Azure
/// plugin takes it: `AZURE_STORAGE_ACCOUNT_ACCESS_KEY` (or
/// `AZURE_STORAGE_ACCOUNT_KEY`), `AZURE_STORAGE_SAS_TOKEN`,
/// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
pub fn parse_azure_credentials(text: &str) -> Result<Credentials, CredentialsFileError> {
    let mut credentials = Credentials::default();
    for (key, value) in parse_env_lines(text)? {
        apply_azure_var(&mut credentials, &key, value);
    }
    Ok(credentials)
}

/// Azure credentials from `AZURE_*` variables (the same names as the file).
pub fn azure_credentials_from_env(vars: impl IntoIterator<Item = (String, String)>) -> Credentials {
    let mut credentials = Credentials::default();
    for (key, value) in vars {
        apply_azure_var(&mut credentials, &key, value);
    }
    credentials
}

fn apply_azure_var(credentials: &mut Credentials, key: &str, value: String) {
    match key {
        "AZURE_STORAGE_ACCOUNT_ACCESS_KEY" | "AZURE_STORAGE_ACCOUNT_KEY" | "AZURE_STORAGE_KEY" => {
            credentials.azure_account_key = Some(value)
        }
        "AZURE_STORAGE_SAS_TOKEN" | "AZURE_STORAGE_SAS_KEY" => {
            credentials.azure_sas_token = Some(value)
        }
        "AZURE_TENANT_ID" => credentials.azure_tenant_id = Some(value),
        "AZURE_CLIENT_ID" => credentials.azure_client_id = Some(value),
        "AZURE_CLIENT_SECRET" => credentials.azure_client_secret = Some(value),
        _ => {}
    }
}

/// AWS credentials from `AWS_*` variables.
pub fn aws_credentials_from_env(vars: impl IntoIterator<Item = (String, String)>) -> Credentials {
    let mut credentials = Credentials::default();
    for (key, value) in vars {
        match key.as_str() {
            "AWS_ACCESS_KEY_ID" => credentials.aws_access_key_id = Some(value),
            "AWS_SECRET_ACCESS_KEY" => credentials.aws_secret_access_key = Some(value),
            "AWS_SESSION_TOKEN" => credentials.aws_session_token = Some(value),
            "AWS_EXTERNAL_ID" => credentials.aws_external_id = Some(value),
            _ => {}
        }
    }
    credentials
}

/// Check that `json` is a GCS service-account key and wrap it.
pub fn parse_gcs_service_account(json: &str) -> Result<Credentials, CredentialsFileError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| CredentialsFileError::NotServiceAccount {
            reason: e.to_string(),
        })?;
    for field in ["client_email", "private_key"] {
        if value.get(field).and_then(|v| v.as_str()).is_none() {
            return Err(CredentialsFileError::NotServiceAccount {
                reason: format!("no \"{field}\" field"),
            });
        }
    }
    Ok(Credentials {
        gcs_service_account_json: Some(json.to_owned()),
        ..Credentials::default()
    })
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped, optional
/// `export ` prefix and surrounding quotes removed.
fn parse_env_lines(text: &str) -> Result<Vec<(String, String)>, CredentialsFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or(CredentialsFileError::Syntax { line: i + 1 })?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_json() {
        let mut spec = LocationSpec::new(Provider::Aws);
        spec.bucket = Some("b".into());
        spec.aws_auth = Some(AwsAuth::AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            sts_endpoint: None,
        });
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"provider":"aws","bucket":"b","awsAuth":{"type":"assumeRole","roleArn":"arn:aws:iam::1:role/r"}}"#
        );
        assert_eq!(serde_json::from_str::<LocationSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn display_urls() {
        let mut s = LocationSpec::new(Provider::Azure);
        s.bucket = Some("c".into());
        s.storage_account = Some("acct".into());
        s.prefix = Some("team".into());
        assert_eq!(s.display_url(), "az://acct/c/team");
        let mut f = LocationSpec::new(Provider::Fs);
        f.path = Some("/var/backups".into());
        assert_eq!(f.display_url(), "file:///var/backups");
    }

    #[test]
    fn credentials_debug_hides_values() {
        let c = Credentials {
            aws_access_key_id: Some("AKIA".into()),
            aws_secret_access_key: Some("very-secret".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("AKIA"),
            "{shown}"
        );
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
    }

    #[test]
    fn credentials_round_trip_through_secret_data() {
        let c = Credentials {
            azure_account_key: Some("k".into()),
            azure_sas_token: Some("sv=1&sig=2".into()),
            ..Default::default()
        };
        let mut data = c.to_data();
        assert_eq!(data.len(), 2);
        data.insert(CONFIG_KEY.into(), b"{}".to_vec());
        assert_eq!(Credentials::from_data(&data), c);
    }

    #[test]
    fn aws_file_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=S\n\n\
                    [other]\naws_access_key_id=B\naws_secret_access_key=T\nexternal_id=x\n";
        let d = parse_aws_credentials(text, "default").unwrap();
        assert_eq!(d.aws_access_key_id.as_deref(), Some("A"));
        assert_eq!(d.aws_secret_access_key.as_deref(), Some("S"));
        assert_eq!(d.aws_external_id, None);
        let o = parse_aws_credentials(text, "other").unwrap();
        assert_eq!(o.aws_access_key_id.as_deref(), Some("B"));
        assert_eq!(o.aws_external_id.as_deref(), Some("x"));
        assert!(matches!(
            parse_aws_credentials(text, "nope"),
            Err(CredentialsFileError::MissingProfile { .. })
        ));
        let bare = parse_aws_credentials("aws_access_key_id=C\n", "default").unwrap();
        assert_eq!(bare.aws_access_key_id.as_deref(), Some("C"));
        assert!(matches!(
            parse_aws_credentials("garbage\n", "default"),
            Err(CredentialsFileError::Syntax { line: 1 })
        ));
    }

    #[test]
    fn azure_file() {
        let c = parse_azure_credentials(
            "# comment\nAZURE_STORAGE_ACCOUNT_ACCESS_KEY=\"abc==\"\nexport AZURE_CLIENT_ID=id\n",
        )
        .unwrap();
        assert_eq!(c.azure_account_key.as_deref(), Some("abc=="));
        assert_eq!(c.azure_client_id.as_deref(), Some("id"));
    }

    #[test]
    fn gcs_service_account_is_checked() {
        assert!(parse_gcs_service_account(r#"{"client_email":"a","private_key":"k"}"#).is_ok());
        assert!(parse_gcs_service_account(r#"{"client_email":"a"}"#).is_err());
        assert!(parse_gcs_service_account("not json").is_err());
    }

    #[test]
    fn or_fills_missing_fields_only() {
        let a = Credentials {
            aws_access_key_id: Some("A".into()),
            ..Default::default()
        };
        let b = Credentials {
            aws_access_key_id: Some("B".into()),
            aws_secret_access_key: Some("S".into()),
            ..Default::default()
        };
        let c = a.or(b);
        assert_eq!(c.aws_access_key_id.as_deref(), Some("A"));
        assert_eq!(c.aws_secret_access_key.as_deref(), Some("S"));
    }
}
