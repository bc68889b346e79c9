//! `--help` of every command and subcommand, compared with the committed
//! text in `tests/snapshots/help/`. A change to the CLI shows up here as a
//! diff to review; `UPDATE_SNAPSHOTS=1 cargo nextest run -p e2e help_` rewrites
//! the files after a deliberate change.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use kubectl_backup::cli::Cli;

/// Every subcommand path, e.g. `["restore", "create"]`.
fn command_paths(cmd: &clap::Command, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        prefix.push(sub.get_name().to_owned());
        command_paths(sub, prefix, out);
        prefix.pop();
    }
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/help")
}

fn help_text(path: &[String]) -> String {
    let out = Command::new(e2e::bin_path("kubectl-backup"))
        .args(path)
        .arg("--help")
        // Values from the environment are shown in help: keep them out.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("COLUMNS", "100")
        .output()
        .expect("run kubectl-backup --help");
    assert!(out.status.success(), "{path:?} --help failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    let mut paths = Vec::new();
    command_paths(&Cli::command(), &mut Vec::new(), &mut paths);
    assert!(
        paths.len() > 20,
        "expected the whole command tree, got {paths:?}"
    );
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let dir = snapshot_dir();
    let mut mismatched = Vec::new();
    for path in &paths {
        let name = if path.is_empty() {
            "kubectl-backup".to_owned()
        } else {
            path.join("-")
        };
        let file = dir.join(format!("{name}.txt"));
        let actual = help_text(path);
        if update {
            std::fs::create_dir_all(&dir).expect("snapshot dir");
            std::fs::write(&file, &actual).expect("write snapshot");
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(expected) if expected == actual => {}
            Ok(_) => mismatched.push(format!("{} differs", file.display())),
            Err(_) => mismatched.push(format!("{} is missing", file.display())),
        }
    }
    assert!(
        mismatched.is_empty(),
        "help output changed (review, then UPDATE_SNAPSHOTS=1 to accept):\n{}",
        mismatched.join("\n")
    );
    // No stale snapshots of commands that no longer exist.
    let expected: std::collections::BTreeSet<String> = paths
        .iter()
        .map(|p| if p.is_empty() { "kubectl-backup".to_owned() } else { p.join("-") } + ".txt")
        .collect();
    for entry in std::fs::read_dir(&dir).expect("snapshot dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            expected.contains(&name),
            "stale help snapshot {name}: remove it"
        );
    }
}

#[test]
fn schedule_help_lists_the_presets() {
    let text = help_text(&["schedule".into(), "create".into()]);
    for preset in ["weekly", "biweekly", "monthly", "bimonthly", "never"] {
        assert!(
            text.contains(preset),
            "schedule create --help does not list {preset}"
        );
    }
}
