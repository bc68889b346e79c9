//! etcd test server: the real `etcd` from Debian's `etcd-server` package,
//! single member, on free 127.0.0.1 ports in a temporary data directory,
//! plain or TLS with client-certificate authentication (certificates made
//! with rcgen), stopped when its guard is dropped.
//!
//! It can also be started on an existing data directory, which is how the
//! restore tests bring up a member from a restored snapshot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{ChildGuard, free_port, require_program, wait_for_port};

const INSTALL_HINT: &str = "apt-get install etcd-server etcd-client";

/// How to start an [`EtcdServer`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Serve clients over TLS and require client certificates.
    pub tls: bool,
    /// The member name (`--name`); `default` when `None`.
    pub name: Option<String>,
    /// Use this data directory (e.g. a restored one) instead of a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// The peer port, for a restored data directory whose membership records
    /// `http://127.0.0.1:<port>` as the advertised peer URL. Free when `None`.
    pub peer_port: Option<u16>,
    /// Quota of the backend database in bytes (`--quota-backend-bytes`).
    pub quota_bytes: Option<u64>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            tls: false,
            name: None,
            data_dir: None,
            peer_port: None,
            quota_bytes: Some(2 * 1024 * 1024 * 1024),
        }
    }
}

/// A running etcd member. Killed when dropped; its temp dir goes with it.
pub struct EtcdServer {
    client_url: String,
    peer_url: String,
    name: String,
    data_dir: PathBuf,
    tls: Option<EtcdTls>,
    guard: ChildGuard,
    _temp: tempfile::TempDir,
}

impl EtcdServer {
    /// A plain-HTTP member with a fresh data directory.
    pub fn start() -> EtcdServer {
        Self::start_with(EtcdOptions::default())
    }

    /// A TLS member that requires client certificates signed by its CA.
    pub fn start_tls() -> EtcdServer {
        Self::start_with(EtcdOptions {
            tls: true,
            ..EtcdOptions::default()
        })
    }

    /// A member started with `options`. Panics (with the install command)
    /// when etcd is missing, and when it does not come up.
    pub fn start_with(options: EtcdOptions) -> EtcdServer {
        let etcd = require_program("etcd", INSTALL_HINT);
        let temp = tempfile::Builder::new()
            .prefix("e2e-etcd-")
            .tempdir()
            .expect("cannot create a temp dir for etcd");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let name = options.name.clone().unwrap_or_else(|| "default".to_owned());
        let client_port = free_port();
        let peer_port = options.peer_port.unwrap_or_else(free_port);
        let tls = options
            .tls
            .then(|| EtcdTls::generate(&temp.path().join("pki")));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");

        let mut cmd = Command::new(etcd);
        cmd.arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{name}={peer_url}"))
            .arg("--initial-cluster-token")
            .arg("e2e-etcd")
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", free_port()))
            .arg("--log-outputs")
            .arg("stderr")
            .env_remove("ETCDCTL_API")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(q) = options.quota_bytes {
            cmd.arg("--quota-backend-bytes").arg(q.to_string());
        }
        if let Some(t) = &tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca_cert)
                .arg("--client-cert-auth");
        }
        // etcd logs a lot; keep it in a file next to the data for post-mortems
        // instead of interleaving it with test output.
        let log_path = temp.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("cannot create the etcd log file");
        cmd.stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e} ({INSTALL_HINT})"));
        let mut guard = ChildGuard::new("etcd", child);
        wait_for_port(
            format!("127.0.0.1:{client_port}")
                .parse()
                .expect("valid socket address"),
            Duration::from_secs(20),
            "etcd",
        );
        guard.assert_running();
        let server = EtcdServer {
            client_url,
            peer_url,
            name,
            data_dir,
            tls,
            guard,
            _temp: temp,
        };
        server.wait_healthy(&log_path);
        server
    }

    /// Wait until `etcdctl endpoint health` succeeds: the port opens before
    /// the member has elected itself leader.
    fn wait_healthy(&self, log_path: &Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .etcdctl()
                .args(["endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if matches!(status, Ok(s) if s.success()) {
                return;
            }
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!(
                    "etcd at {} never became healthy; log tail:\n{tail}",
                    self.client_url
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URL (`http://127.0.0.1:PORT` or `https://…`).
    pub fn endpoint(&self) -> &str {
        &self.client_url
    }

    /// The advertised peer URL.
    pub fn peer_url(&self) -> &str {
        &self.peer_url
    }

    /// The member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The certificates, when started with TLS.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// Flags that point the plugin (or etcdctl) at this member, TLS files included.
    pub fn client_flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--endpoints={}", self.client_url)];
        if let Some(t) = &self.tls {
            flags.push(format!("--cacert={}", t.ca_cert.display()));
            flags.push(format!("--cert={}", t.client_cert.display()));
            flags.push(format!("--key={}", t.client_key.display()));
        }
        flags
    }

    /// An `etcdctl` (API v3) command already pointed at this member.
    pub fn etcdctl(&self) -> Command {
        let etcdctl = require_program("etcdctl", INSTALL_HINT);
        let mut cmd = Command::new(etcdctl);
        cmd.env("ETCDCTL_API", "3").args(self.client_flags());
        cmd
    }

    /// An etcd-client connection to this member.
    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        if let Some(t) = &self.tls {
            let tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(
                    &t.ca_cert,
                )?))
                .identity(etcd_client::Identity::from_pem(
                    std::fs::read(&t.client_cert)?,
                    std::fs::read(&t.client_key)?,
                ));
            options = options.with_tls(tls);
        }
        Ok(etcd_client::Client::connect([self.client_url.as_str()], Some(options)).await?)
    }

    /// Stop the member now (the guard kills and reaps it) and return its data
    /// directory, e.g. to inspect it after the process is gone.
    pub fn stop(self) -> PathBuf {
        let dir = self.data_dir.clone();
        drop(self);
        dir
    }
}

/// PEM files of a TLS member: its CA, server pair and one valid client pair,
/// plus the CA's key so tests can issue more (expired, foreign) client certs.
pub struct EtcdTls {
    dir: PathBuf,
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// Server certificate (SANs: 127.0.0.1, localhost).
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// A valid client certificate.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl EtcdTls {
    fn generate(dir: &Path) -> EtcdTls {
        std::fs::create_dir_all(dir).expect("cannot create the pki dir");
        let (ca_pem, issuer) = new_ca("e2e-etcd-ca");
        let ca_cert = write(dir, "ca.crt", &ca_pem);
        let (server_cert_pem, server_key_pem) = leaf(
            &issuer,
            "etcd-server",
            &["127.0.0.1", "localhost"],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            false,
        );
        let server_cert = write(dir, "server.crt", &server_cert_pem);
        let server_key = write(dir, "server.key", &server_key_pem);
        let (client_cert_pem, client_key_pem) = leaf(
            &issuer,
            "e2e-client",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        );
        let client_cert = write(dir, "client.crt", &client_cert_pem);
        let client_key = write(dir, "client.key", &client_key_pem);
        EtcdTls {
            dir: dir.to_owned(),
            ca_cert,
            server_cert,
            server_key,
            client_cert,
            client_key,
            issuer,
        }
    }

    /// A client certificate signed by this CA that expired in 2001: the server must refuse it.
    /// Returns (cert, key) paths.
    pub fn expired_client(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = leaf(
            &self.issuer,
            "e2e-expired",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            true,
        );
        (
            write(&self.dir, "expired.crt", &cert),
            write(&self.dir, "expired.key", &key),
        )
    }

    /// A different CA with its own client pair: as `--cacert` it does not
    /// trust the server; as `--cert/--key` the server does not trust it.
    /// Returns (ca, cert, key) paths.
    pub fn foreign(&self) -> (PathBuf, PathBuf, PathBuf) {
        let (ca_pem, issuer) = new_ca("e2e-foreign-ca");
        let (cert, key) = leaf(
            &issuer,
            "e2e-foreign-client",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        );
        (
            write(&self.dir, "foreign-ca.crt", &ca_pem),
            write(&self.dir, "foreign.crt", &cert),
            write(&self.dir, "foreign.key", &key),
        )
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    path
}

fn new_ca(common_name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().expect("generate CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    sans: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
    expired: bool,
) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("valid SANs");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages.to_vec();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().expect("generate key");
    let cert = params.signed_by(&key, issuer).expect("sign certificate");
    (cert.pem(), key.serialize_pem())
}
