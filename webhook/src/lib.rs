//! `backup-webhook`: the mutating and validating admission webhook that makes
//! kubectl-backup restores land safely (snapshot classes keep `Retain`,
//! namespaces carry Pod Security labels, PVCs only land when their
//! StorageClass exists).

pub mod policy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command-line arguments of `backup-webhook`.
#[derive(Debug, Parser)]
#[command(name = "backup-webhook", version, about, long_about = None)]
pub struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,

    /// PEM serving certificate (reloaded when it and the key change).
    #[arg(
        long,
        env = "WEBHOOK_TLS_CERT",
        default_value = "/etc/backup-webhook/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,

    /// PEM private key of the serving certificate.
    #[arg(
        long,
        env = "WEBHOOK_TLS_KEY",
        default_value = "/etc/backup-webhook/tls/tls.key"
    )]
    pub tls_key: PathBuf,

    /// Policy configuration file (YAML, reloaded on change).
    #[arg(
        long,
        env = "WEBHOOK_POLICY",
        default_value = "/etc/backup-webhook/policy/policy.yaml"
    )]
    pub policy: PathBuf,
}

/// Install the process-wide rustls crypto provider (aws-lc-rs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Run the server until SIGTERM.
pub fn main_with(_args: Args) -> ExitCode {
    eprintln!("backup-webhook: the server is not implemented yet");
    ExitCode::FAILURE
}
