//! The end-to-end test harness.
//!
//! - [`cluster`]: the Kubernetes cluster the tests run against: an existing
//!   one named by `TEST_KUBECONFIG` (and `TEST_KUBECONFIG_TARGET` for a second
//!   one), or else the project's own API emulator.
//! - [`bin_path`]: where the built binaries under test are.

pub mod bench;
pub mod cluster;
pub mod emulator;
pub mod krew;
pub mod servers;

use std::path::PathBuf;

/// The emulator, the benchmarks and their floor allocate many short-lived JSON
/// trees on several threads; glibc's allocator spent a quarter of the
/// emulator's CPU time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Path of a binary built by this workspace (`kubectl-backup`, `backup-webhook`).
///
/// `$<NAME>_BIN` (upper-cased, `-` → `_`, e.g. `KUBECTL_BACKUP_BIN`) wins;
/// otherwise the binary next to the running test's target directory. Panics
/// with the command to run when it has not been built: the end-to-end tests
/// drive the real binaries, so `cargo build --workspace` must come first.
pub fn bin_path(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/test-xxxx or target/<profile>/<bin>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        candidate.exists(),
        "{} not found: run `cargo build --workspace` before the end-to-end tests, or set {var}",
        candidate.display()
    );
    candidate
}
