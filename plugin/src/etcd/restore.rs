//! Restoring a member's data directory from a stored snapshot, and the
//! printed plan for a whole cluster.
//!
//! The data directory is written by the maintained implementation, never by
//! us: `etcdutl snapshot restore` (etcd 3.5+), or `etcdctl snapshot restore`
//! on 3.4 where etcdutl does not exist. By default the restore bumps the
//! revision and marks it compacted (etcd's recovery guide for Kubernetes:
//! watchers and informers then see a compaction and relist instead of
//! silently missing changes). 3.4's etcdctl cannot do that; we detect it,
//! say so, restore without the bump and print what to do instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// etcd's recovery guide suggests a bump larger than any revision the
/// cluster could have advanced since the snapshot: one billion.
pub const DEFAULT_BUMP: u64 = 1_000_000_000;

/// Errors of restore planning and running.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// `--initial-cluster` is malformed.
    #[error(
        "invalid --initial-cluster {value:?}: {reason} (expected NAME=PEER_URL[,NAME=PEER_URL…])"
    )]
    InitialCluster {
        /// As given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// `--name` is not in `--initial-cluster`, or the peer URL is not its.
    #[error("{0}")]
    Inconsistent(String),
    /// No restore tool.
    #[error(
        "neither etcdutl nor etcdctl is on PATH: install etcd's tools (etcdutl ships with etcd 3.5+; on Debian `apt-get install etcd-client`) or pass --etcdutl PATH"
    )]
    NoTool,
    /// The tool could not be run.
    #[error("cannot run {tool}")]
    Spawn {
        /// The tool.
        tool: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tool failed.
    #[error("{tool} snapshot restore failed ({status}):\n{stderr}")]
    ToolFailed {
        /// The tool.
        tool: PathBuf,
        /// Exit status.
        status: String,
        /// Its error output.
        stderr: String,
    },
    /// The data directory is not empty.
    #[error(
        "data directory {0} is not empty: pick an empty one, or pass --force to move the existing one aside"
    )]
    DataDirNotEmpty(PathBuf),
    /// Preparing the data directory failed.
    #[error("cannot prepare data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tool reported success but left no member directory.
    #[error("{tool} reported success but {path} does not exist")]
    NoMemberDir {
        /// The tool.
        tool: PathBuf,
        /// The missing path.
        path: PathBuf,
    },
}

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMember {
    /// Member name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// Parse `a=https://10.0.0.1:2380,b=https://10.0.0.2:2380` (a name may
/// repeat to give several URLs), keeping the order.
pub fn parse_initial_cluster(value: &str) -> Result<Vec<PeerMember>, RestoreError> {
    let bad = |reason: &str| RestoreError::InitialCluster {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let mut members: Vec<PeerMember> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| bad(&format!("{entry:?} has no '='")))?;
        if name.is_empty() || url.is_empty() {
            return Err(bad(&format!("{entry:?} needs both a name and a URL")));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(&format!(
                "peer URL {url:?} must start with http:// or https://"
            )));
        }
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_owned()),
            None => members.push(PeerMember {
                name: name.to_owned(),
                peer_urls: vec![url.to_owned()],
            }),
        }
    }
    if members.is_empty() {
        return Err(bad("it is empty"));
    }
    Ok(members)
}

/// Check that `name` is in the cluster and `advertise` are its peer URLs,
/// as etcd itself checks at start-up (better to learn it now).
pub fn check_member(
    members: &[PeerMember],
    name: &str,
    advertise: &[String],
) -> Result<(), RestoreError> {
    let member = members.iter().find(|m| m.name == name).ok_or_else(|| {
        RestoreError::Inconsistent(format!(
            "--name {name} is not in --initial-cluster (members: {})",
            members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    for url in advertise {
        if !member.peer_urls.contains(url) {
            return Err(RestoreError::Inconsistent(format!(
                "--initial-advertise-peer-urls {url} is not among {name}'s peer URLs in --initial-cluster ({})",
                member.peer_urls.join(", ")
            )));
        }
    }
    Ok(())
}

/// Which restore implementation is used and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The binary.
    pub path: PathBuf,
    /// `etcdctl` (3.4, API v3 mode) rather than `etcdutl`.
    pub is_etcdctl: bool,
    /// Does it have `--bump-revision` and `--mark-compacted`?
    pub supports_bump: bool,
    /// Its version line.
    pub version: String,
}

/// Find the tool: `explicit`, else `etcdutl` on PATH, else `etcdctl`.
pub fn find_tool(explicit: Option<&Path>) -> Result<Tool, RestoreError> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => which("etcdutl")
            .or_else(|| which("etcdctl"))
            .ok_or(RestoreError::NoTool)?,
    };
    let is_etcdctl = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("etcdctl"));
    let run = |args: &[&str]| -> Result<String, RestoreError> {
        let out = Command::new(&path)
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .map_err(|source| RestoreError::Spawn {
                tool: path.clone(),
                source,
            })?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    let help = run(&["snapshot", "restore", "--help"])?;
    let version = run(&["version"])?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(Tool {
        supports_bump: help_supports_bump(&help),
        is_etcdctl,
        path,
        version,
    })
}

/// Does `snapshot restore --help` list both flags the bump needs?
pub fn help_supports_bump(help: &str) -> bool {
    help.contains("--bump-revision") && help.contains("--mark-compacted")
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Everything one member's restore needs.
#[derive(Debug, Clone)]
pub struct MemberRestore {
    /// The plain snapshot file.
    pub snapshot_file: PathBuf,
    /// The data directory to create.
    pub data_dir: PathBuf,
    /// Member name.
    pub name: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`.
    pub advertise_peer_urls: Vec<String>,
    /// Revision bump (0: none).
    pub bump_revision: u64,
    /// Pass `--skip-hash-check` to the tool.
    pub skip_hash_check: bool,
}

/// The arguments for `tool snapshot restore`, without the program.
pub fn tool_args(tool: &Tool, r: &MemberRestore) -> (Vec<String>, Option<String>) {
    let mut args = vec![
        "snapshot".to_owned(),
        "restore".to_owned(),
        r.snapshot_file.display().to_string(),
        format!("--data-dir={}", r.data_dir.display()),
        format!("--name={}", r.name),
        format!("--initial-cluster={}", r.initial_cluster),
        format!("--initial-cluster-token={}", r.initial_cluster_token),
        format!(
            "--initial-advertise-peer-urls={}",
            r.advertise_peer_urls.join(",")
        ),
    ];
    if r.skip_hash_check {
        args.push("--skip-hash-check".to_owned());
    }
    let mut warning = None;
    if r.bump_revision > 0 {
        if tool.supports_bump {
            args.push(format!("--bump-revision={}", r.bump_revision));
            args.push("--mark-compacted".to_owned());
        } else {
            warning = Some(format!(
                "{} ({}) has no --bump-revision/--mark-compacted: the data directory was restored WITHOUT a revision bump. \
The restored store continues from the snapshot's revision, so a Kubernetes watcher or informer that saw later revisions \
can miss changes instead of relisting. Instead: restart every kube-apiserver, kube-controller-manager, kube-scheduler and \
every kubelet (and any operator that watches) after etcd is back, so all caches are rebuilt from the restored state; \
or install etcdutl 3.5+ and pass --etcdutl PATH to get the bump. (Pass --bump-revision 0 to silence this.)",
                tool.path.display(),
                tool.version
            ));
        }
    }
    (args, warning)
}

/// Prepare `data_dir`: absent or empty is fine (an empty one is removed,
/// since the tools create it themselves); non-empty is refused unless
/// `force`, which moves it aside to `<dir>.before-restore-<timestamp>` and
/// returns that path.
pub fn prepare_data_dir(data_dir: &Path, force: bool) -> Result<Option<PathBuf>, RestoreError> {
    let io = |source| RestoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    };
    if !data_dir.exists() {
        return Ok(None);
    }
    let empty = std::fs::read_dir(data_dir).map_err(io)?.next().is_none();
    if empty {
        std::fs::remove_dir(data_dir).map_err(io)?;
        return Ok(None);
    }
    if !force {
        return Err(RestoreError::DataDirNotEmpty(data_dir.to_owned()));
    }
    let mut aside = data_dir.as_os_str().to_owned();
    aside.push(format!(
        ".before-restore-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let aside = PathBuf::from(aside);
    std::fs::rename(data_dir, &aside).map_err(io)?;
    Ok(Some(aside))
}

/// Run the tool and check that it left a member directory.
pub fn run_tool(tool: &Tool, args: &[String]) -> Result<(), RestoreError> {
    let out = Command::new(&tool.path)
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .map_err(|source| RestoreError::Spawn {
            tool: tool.path.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RestoreError::ToolFailed {
            tool: tool.path.clone(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// After the tool ran: the member's bbolt database must exist.
pub fn check_restored(tool: &Tool, data_dir: &Path) -> Result<PathBuf, RestoreError> {
    let db = data_dir.join("member").join("snap").join("db");
    if !db.is_file() {
        return Err(RestoreError::NoMemberDir {
            tool: tool.path.clone(),
            path: db,
        });
    }
    Ok(db)
}

/// Shell-quote a word for the printed plan.
fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Inputs of the printed multi-member plan.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The snapshot reference (`CLUSTER/NAME`).
    pub snapshot: String,
    /// Its revision, for the checks.
    pub revision: i64,
    /// Its sha256.
    pub sha256: String,
    /// The members.
    pub members: Vec<PeerMember>,
    /// `--initial-cluster` as given.
    pub initial_cluster: String,
    /// Token.
    pub token: String,
    /// Data directory on every member.
    pub data_dir: PathBuf,
    /// Flags that select the location (`--location …`), repeated in commands.
    pub location_flags: Vec<String>,
    /// Revision bump.
    pub bump_revision: u64,
    /// `--identity FILE` when the snapshot is encrypted.
    pub identity_flag: Option<String>,
}

/// The full procedure for restoring every member from the same snapshot,
/// with the exact command for each member. A kubeadm-style control plane is
/// assumed for the stop/start commands (static pods); they are marked as such.
pub fn plan(p: &PlanInput) -> String {
    let mut s = String::new();
    let dd = p.data_dir.display().to_string();
    let loc = p
        .location_flags
        .iter()
        .map(|f| sh(f))
        .collect::<Vec<_>>()
        .join(" ");
    let id = p
        .identity_flag
        .as_ref()
        .map(|f| format!(" {}", sh(f)))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "# Restore plan: etcd cluster of {} member(s) from snapshot {} (revision {}, sha256 {})",
        p.members.len(),
        p.snapshot,
        p.revision,
        p.sha256
    );
    let _ = writeln!(
        s,
        "# Every member is restored from the SAME snapshot; a member restored from another one would diverge.\n\
# Commands for the stop/start steps assume kubeadm static pods (/etc/kubernetes/manifests); adapt for\n\
# systemd-managed etcd (systemctl stop/start etcd) or k3s/rke2 (their own cluster-reset).\n"
    );
    let _ = writeln!(
        s,
        "## 1. Stop every kube-apiserver (on each control-plane node)"
    );
    let _ = writeln!(
        s,
        "mkdir -p /etc/kubernetes/manifests.stopped\nmv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/manifests.stopped/\n"
    );
    let _ = writeln!(s, "## 2. Stop etcd on every member and keep its old data");
    let _ = writeln!(
        s,
        "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/manifests.stopped/\n\
# wait until no etcd process is left: crictl ps --name etcd   (must print nothing)\n\
mv {dd} {dd}.before-restore\n",
        dd = sh(&dd)
    );
    let _ = writeln!(
        s,
        "## 3. Restore each member's data directory from the same snapshot (run each on its own node)"
    );
    for m in &p.members {
        let _ = writeln!(s, "# on member {}:", m.name);
        let _ = writeln!(
            s,
            "kubectl backup etcd restore {snap} {loc}{id} --data-dir {dd} --name {name} --initial-cluster {ic} --initial-cluster-token {tok} --initial-advertise-peer-urls {urls} --bump-revision {bump}",
            snap = sh(&p.snapshot),
            dd = sh(&dd),
            name = sh(&m.name),
            ic = sh(&p.initial_cluster),
            tok = sh(&p.token),
            urls = sh(&m.peer_urls.join(",")),
            bump = p.bump_revision,
        );
    }
    let _ = writeln!(
        s,
        "# each run downloads the snapshot, checks its sha256, runs etcdutl (or 3.4's etcdctl) snapshot restore\n\
# and checks {dd}/member/snap/db exists.\n",
        dd = dd
    );
    let _ = writeln!(
        s,
        "## 4. Start etcd on every member, then check the cluster"
    );
    let _ = writeln!(
        s,
        "mv /etc/kubernetes/manifests.stopped/etcd.yaml /etc/kubernetes/manifests/\n\
# no change to etcd.yaml is needed: the restored data dir holds the membership (same names and peer URLs as above)\n\
ETCDCTL_API=3 etcdctl --endpoints=<every member's client URL> --cacert=… --cert=… --key=… endpoint health\n\
ETCDCTL_API=3 etcdctl … endpoint status -w table     # every member shows the same revision (snapshot revision{}), one leader\n\
ETCDCTL_API=3 etcdctl … member list -w table          # exactly: {}\n",
        if p.bump_revision > 0 {
            format!(" + {} bump", p.bump_revision)
        } else {
            String::new()
        },
        p.members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "## 5. Start every kube-apiserver");
    let _ = writeln!(
        s,
        "mv /etc/kubernetes/manifests.stopped/kube-apiserver.yaml /etc/kubernetes/manifests/\nkubectl get --raw /readyz?verbose\n"
    );
    let _ = writeln!(
        s,
        "## 6. Restart the controllers, the scheduler and every kubelet so no cache outlives the restore"
    );
    let _ = writeln!(
        s,
        "# on each control-plane node:\n\
mv /etc/kubernetes/manifests/kube-controller-manager.yaml /etc/kubernetes/manifests.stopped/ && sleep 20 && mv /etc/kubernetes/manifests.stopped/kube-controller-manager.yaml /etc/kubernetes/manifests/\n\
mv /etc/kubernetes/manifests/kube-scheduler.yaml /etc/kubernetes/manifests.stopped/ && sleep 20 && mv /etc/kubernetes/manifests.stopped/kube-scheduler.yaml /etc/kubernetes/manifests/\n\
# on every node:\n\
systemctl restart kubelet\n\
kubectl get nodes && kubectl get pods -A    # then restart operators that keep watches (e.g. kubectl rollout restart)"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_checks() {
        let ms = parse_initial_cluster(
            "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,a=https://[::1]:2380",
        )
        .unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(
            ms[0].peer_urls,
            vec!["https://10.0.0.1:2380", "https://[::1]:2380"]
        );
        assert!(check_member(&ms, "b", &["https://10.0.0.2:2380".into()]).is_ok());
        assert!(matches!(
            check_member(&ms, "c", &[]),
            Err(RestoreError::Inconsistent(_))
        ));
        assert!(matches!(
            check_member(&ms, "b", &["https://10.0.0.1:2380".into()]),
            Err(RestoreError::Inconsistent(_))
        ));
        for bad in ["", "a", "a=", "=http://x", "a=ftp://x"] {
            assert!(
                parse_initial_cluster(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    fn restore() -> MemberRestore {
        MemberRestore {
            snapshot_file: "/tmp/s.db".into(),
            data_dir: "/var/lib/etcd".into(),
            name: "a".into(),
            initial_cluster: "a=http://1.2.3.4:2380".into(),
            initial_cluster_token: "etcd-cluster".into(),
            advertise_peer_urls: vec!["http://1.2.3.4:2380".into()],
            bump_revision: DEFAULT_BUMP,
            skip_hash_check: false,
        }
    }

    #[test]
    fn bump_only_when_the_tool_has_it() {
        let mut tool = Tool {
            path: "/usr/bin/etcdutl".into(),
            is_etcdctl: false,
            supports_bump: true,
            version: "etcdutl version: 3.5.9".into(),
        };
        let (args, warning) = tool_args(&tool, &restore());
        assert!(args.contains(&"--bump-revision=1000000000".to_owned()));
        assert!(args.contains(&"--mark-compacted".to_owned()));
        assert!(warning.is_none());

        tool.supports_bump = false;
        let (args, warning) = tool_args(&tool, &restore());
        assert!(!args.iter().any(|a| a.starts_with("--bump-revision")));
        assert!(warning.unwrap().contains("WITHOUT a revision bump"));

        let mut r = restore();
        r.bump_revision = 0;
        assert!(tool_args(&tool, &r).1.is_none());
    }

    #[test]
    fn help_detection() {
        assert!(help_supports_bump(
            "  --bump-revision uint\n  --mark-compacted\n"
        ));
        assert!(!help_supports_bump(
            "  --skip-hash-check\n  --wal-dir string\n"
        ));
    }

    #[test]
    fn data_dir_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = tmp.path().join("data");
        assert_eq!(prepare_data_dir(&dd, false).unwrap(), None);
        std::fs::create_dir(&dd).unwrap();
        assert_eq!(prepare_data_dir(&dd, false).unwrap(), None);
        assert!(
            !dd.exists(),
            "an empty dir is removed for the tool to create"
        );
        std::fs::create_dir(&dd).unwrap();
        std::fs::write(dd.join("x"), "y").unwrap();
        assert!(matches!(
            prepare_data_dir(&dd, false),
            Err(RestoreError::DataDirNotEmpty(_))
        ));
        let aside = prepare_data_dir(&dd, true).unwrap().unwrap();
        assert!(aside.join("x").is_file());
        assert!(!dd.exists());
    }

    #[test]
    fn plan_has_a_command_per_member() {
        let members = parse_initial_cluster(
            "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380",
        )
        .unwrap();
        let text = plan(&PlanInput {
            snapshot: "prod/20261121T000000Z-m1".into(),
            revision: 42,
            sha256: "ab".repeat(32),
            members,
            initial_cluster:
                "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380".into(),
            token: "etcd-cluster".into(),
            data_dir: "/var/lib/etcd".into(),
            location_flags: vec!["--location".into(), "s3://b/p".into()],
            bump_revision: DEFAULT_BUMP,
            identity_flag: None,
        });
        for n in ["m1", "m2", "m3"] {
            assert!(text.contains(&format!("--name {n} ")), "{text}");
        }
        assert!(text.contains("--initial-advertise-peer-urls https://10.0.0.2:2380"));
        let order = [
            "Stop every kube-apiserver",
            "Stop etcd",
            "Restore each",
            "Start etcd",
            "Start every kube-apiserver",
            "Restart the controllers",
        ];
        let mut last = 0;
        for step in order {
            let at = text.find(step).unwrap_or_else(|| panic!("missing {step}"));
            assert!(at >= last, "{step} out of order");
            last = at;
        }
    }
}
