//! Azurite (npm `azurite`), the real Azure Blob API for the tests.
//!
//! Azurite serves the well-known development account `devstoreaccount1`
//! under `http://127.0.0.1:PORT/devstoreaccount1` and checks SharedKey
//! signatures. object_store does not create containers, so
//! [`AzuriteServer::create_container`] signs the `PUT ?restype=container`
//! itself.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tempfile::TempDir;

use super::{ChildGuard, free_port, hmac_sha256, require_program, spawn_server};

/// The development storage account Azurite serves.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// Its published, well-known account key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The storage API version the signed requests claim.
const API_VERSION: &str = "2021-08-06";

/// How to install Azurite when it is missing.
const INSTALL_HINT: &str = "npm install -g azurite";

/// A running Azurite blob service; stopped when dropped.
pub struct AzuriteServer {
    port: u16,
    _child: ChildGuard,
    _dir: TempDir,
}

impl AzuriteServer {
    /// Start `azurite-blob` on a free port with its data in a temp dir.
    pub fn start() -> AzuriteServer {
        super::install_crypto_provider();
        let program = require_program("azurite-blob", INSTALL_HINT);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let port = free_port();
        let data = dir.path().join("data");
        let mut command = Command::new(program);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            // Telemetry would try to reach the internet; the API version check
            // would refuse clients newer than this Azurite.
            .args(["--disableTelemetry", "--skipApiVersionCheck"])
            .current_dir(dir.path());
        let child = spawn_server(
            "azurite",
            &mut command,
            dir.path(),
            port,
            Duration::from_secs(30),
        );
        AzuriteServer {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`: the blob endpoint including
    /// the account, as object_store's `with_endpoint` wants it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// The port Azurite listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage account name.
    pub fn account(&self) -> &'static str {
        AZURITE_ACCOUNT
    }

    /// The account key.
    pub fn key(&self) -> &'static str {
        AZURITE_KEY
    }

    /// Environment for an ad-hoc `az://CONTAINER` location pointing here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AZURE_STORAGE_ACCOUNT_NAME".to_owned(),
                AZURITE_ACCOUNT.to_owned(),
            ),
            (
                "AZURE_STORAGE_ACCOUNT_KEY".to_owned(),
                AZURITE_KEY.to_owned(),
            ),
            ("AZURE_STORAGE_ENDPOINT".to_owned(), self.endpoint()),
            ("AZURE_ALLOW_HTTP".to_owned(), "true".to_owned()),
        ]
    }

    /// Create `container` (object_store cannot): a SharedKey-signed
    /// `PUT /devstoreaccount1/<container>?restype=container`.
    pub async fn create_container(&self, container: &str) -> anyhow::Result<()> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let url = format!("{}/{container}?restype=container", self.endpoint());
        // Blob service SharedKey string-to-sign: twelve standard headers (all
        // empty here; Content-Length is empty when 0), the x-ms- headers, then
        // the canonicalized resource. With a path-style emulator URL the
        // account appears twice: once as the account, once in the path.
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        let signature = BASE64.encode(hmac_sha256(
            &BASE64.decode(AZURITE_KEY)?,
            string_to_sign.as_bytes(),
        ));
        let response = reqwest::Client::new()
            .put(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("content-length", "0")
            .header(
                "authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            )
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "creating container {container} on Azurite: HTTP {status}: {body}"
        );
        Ok(())
    }

    /// An account SAS token (query string without `?`) granting `permissions`
    /// (e.g. `rwdlac`) on blobs and containers for an hour.
    pub fn account_sas(&self, permissions: &str) -> anyhow::Result<String> {
        let now = chrono::Utc::now();
        let start = (now - chrono::Duration::minutes(5))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let expiry = (now + chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let version = "2019-12-12";
        // Account SAS string-to-sign for versions 2015-04-05 to 2020-10-02:
        // account, permissions, services, resource types, start, expiry, IP,
        // protocol, version, each followed by a newline.
        let string_to_sign = format!(
            "{AZURITE_ACCOUNT}\n{permissions}\nb\nsco\n{start}\n{expiry}\n\nhttps,http\n{version}\n"
        );
        let signature = BASE64.encode(hmac_sha256(
            &BASE64.decode(AZURITE_KEY)?,
            string_to_sign.as_bytes(),
        ));
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("sv", version)
            .append_pair("ss", "b")
            .append_pair("srt", "sco")
            .append_pair("sp", permissions)
            .append_pair("st", &start)
            .append_pair("se", &expiry)
            .append_pair("spr", "https,http")
            .append_pair("sig", &signature);
        Ok(query.finish())
    }
}
