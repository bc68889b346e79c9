//! A checker for krew plugin manifests: krew's own structural rules (those
//! of `internal/index/validation` in krew: apiVersion, kind, safe name that
//! matches the file name, one-line short description, `v`-prefixed semver,
//! per platform `uri`, lowercase `sha256`, `bin`, `files` and an `os`/`arch`
//! selector) plus what `kubectl krew install --manifest --archive` checks at
//! install time (the archive's sha256, and that `bin` exists once the `files`
//! operations are applied), plus this project's own rules for the caveats.

use std::collections::BTreeSet;
use std::io::Read;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The krew API version this checker knows.
pub const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";

/// A krew `Plugin` manifest (the fields krew reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugin {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be `Plugin`.
    pub kind: String,
    /// Holds the plugin name.
    pub metadata: Metadata,
    /// The plugin spec.
    pub spec: Spec,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    /// The plugin name (`kubectl <name>`).
    pub name: String,
}

/// `spec`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `v`-prefixed semantic version.
    #[serde(default)]
    pub version: String,
    /// Project homepage.
    #[serde(default)]
    pub homepage: String,
    /// One line.
    #[serde(default)]
    pub short_description: String,
    /// Longer text.
    #[serde(default)]
    pub description: String,
    /// Shown after install.
    #[serde(default)]
    pub caveats: String,
    /// One entry per os/arch.
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

/// One downloadable archive.
#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    /// Which machines it is for.
    pub selector: Option<Selector>,
    /// Download URL.
    #[serde(default)]
    pub uri: String,
    /// Lowercase hex sha256 of the archive.
    #[serde(default)]
    pub sha256: String,
    /// The executable, relative to the install directory.
    #[serde(default)]
    pub bin: String,
    /// Files to copy out of the archive (`None`: all of it).
    pub files: Option<Vec<FileOperation>>,
}

/// A platform selector (a Kubernetes label selector over `os` and `arch`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Exact labels.
    pub match_labels: Option<std::collections::BTreeMap<String, String>>,
    /// Expressions.
    pub match_expressions: Option<Vec<serde_json::Value>>,
}

/// `files[]`: copy what matches `from` (a glob) into the directory `to`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileOperation {
    /// Glob relative to the archive root.
    #[serde(default)]
    pub from: String,
    /// Directory relative to the install directory.
    #[serde(default)]
    pub to: String,
}

impl Platform {
    /// `os/arch` from the selector's matchLabels, for messages and coverage checks.
    pub fn os_arch(&self) -> Option<String> {
        let labels = self.selector.as_ref()?.match_labels.as_ref()?;
        Some(format!("{}/{}", labels.get("os")?, labels.get("arch")?))
    }
}

const WINDOWS_FORBIDDEN: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn is_safe_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !WINDOWS_FORBIDDEN
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
}

/// Is `v` a semantic version with a leading `v` (as krew's semver.Parse requires)?
/// SemVer 2.0.0, checked by hand to keep the rules readable.
pub fn is_krew_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident(i) && (!i.bytes().all(|b| b.is_ascii_digit()) || numeric(i)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

fn is_valid_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parse and check a manifest whose file is named `<file_stem>.yaml`.
/// Returns the plugin and every problem found (empty when valid).
pub fn validate_manifest(file_stem: &str, yaml: &str) -> Result<(Plugin, Vec<String>), String> {
    let plugin: Plugin =
        serde_yaml::from_str(yaml).map_err(|e| format!("not a krew manifest: {e}"))?;
    let mut problems = Vec::new();
    if plugin.api_version != API_VERSION {
        problems.push(format!(
            "apiVersion is {:?}, must be {API_VERSION:?}",
            plugin.api_version
        ));
    }
    if plugin.kind != "Plugin" {
        problems.push(format!("kind is {:?}, must be \"Plugin\"", plugin.kind));
    }
    if !is_safe_plugin_name(file_stem) {
        problems.push(format!("plugin name {file_stem:?} must match ^[\\w-]+$"));
    }
    if plugin.metadata.name != file_stem {
        problems.push(format!(
            "metadata.name is {:?} but the file is {file_stem}.yaml",
            plugin.metadata.name
        ));
    }
    let spec = &plugin.spec;
    if spec.short_description.is_empty() {
        problems.push("spec.shortDescription is empty".into());
    }
    if spec.short_description.contains(['\r', '\n']) {
        problems.push("spec.shortDescription has a line break".into());
    }
    if !is_krew_semver(&spec.version) {
        problems.push(format!(
            "spec.version {:?} is not a semantic version with a leading v",
            spec.version
        ));
    }
    if !spec.homepage.starts_with("https://") {
        problems.push(format!(
            "spec.homepage {:?} should be an https URL",
            spec.homepage
        ));
    }
    // krew-index review rule: the description explains, it does not list flags.
    if spec
        .description
        .lines()
        .any(|l| l.trim_start().starts_with('-') || l.contains(" --"))
    {
        problems.push("spec.description lists flags; describe what the plugin does instead".into());
    }
    for needle in ["webhook", "kubectl-backup namespace"] {
        if !spec.caveats.contains(needle) {
            problems.push(format!("spec.caveats should mention the {needle}"));
        }
    }
    if spec.platforms.is_empty() {
        problems.push("spec.platforms is empty".into());
    }
    let mut seen = BTreeSet::new();
    for (i, p) in spec.platforms.iter().enumerate() {
        let at = p.os_arch().unwrap_or_else(|| format!("platforms[{i}]"));
        if !seen.insert(at.clone()) {
            problems.push(format!("{at}: listed twice"));
        }
        if p.uri.is_empty() {
            problems.push(format!("{at}: uri has to be set"));
        } else if !p.uri.starts_with("https://") {
            problems.push(format!("{at}: uri {:?} should be https", p.uri));
        }
        if !is_valid_sha256(&p.sha256) {
            problems.push(format!(
                "{at}: sha256 {:?} must match ^[a-f0-9]{{64}}$",
                p.sha256
            ));
        }
        if p.bin.is_empty() {
            problems.push(format!("{at}: bin has to be set"));
        }
        match &p.files {
            Some(files) if files.is_empty() => {
                problems.push(format!("{at}: files has to be unspecified or non-empty"))
            }
            Some(files) => {
                for f in files {
                    if f.from.is_empty() || f.to.is_empty() {
                        problems.push(format!("{at}: every files entry needs from and to"));
                    }
                }
            }
            None => {}
        }
        match &p.selector {
            None => problems.push(format!("{at}: a selector is required")),
            Some(sel) => {
                let labels = sel.match_labels.as_ref();
                let exprs = sel.match_expressions.as_ref();
                if labels.is_none_or(|l| l.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
                    problems.push(format!("{at}: empty selector"));
                }
                for key in labels.into_iter().flat_map(|l| l.keys()) {
                    if key != "os" && key != "arch" {
                        problems.push(format!(
                            "{at}: selector key {key:?} is not supported (os, arch)"
                        ));
                    }
                }
            }
        }
    }
    Ok((plugin, problems))
}

/// Check an archive (`.tar.gz`) against its platform entry: the sha256
/// matches, and `bin` exists after the `files` operations are applied.
pub fn check_archive(platform: &Platform, archive: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    let at = platform.os_arch().unwrap_or_else(|| "platform".into());
    let actual = hex::encode(Sha256::digest(archive));
    if actual != platform.sha256 {
        problems.push(format!(
            "{at}: sha256 is {} but the archive's is {actual}",
            platform.sha256
        ));
    }
    let mut entries = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let list = tar.entries().and_then(|es| {
        for e in es {
            let mut e = e?;
            let path = e
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let mode = e.header().mode().unwrap_or(0);
            let mut sink = Vec::new();
            e.read_to_end(&mut sink)?;
            entries.push((path, mode));
        }
        Ok(())
    });
    if let Err(e) = list {
        problems.push(format!("{at}: the archive cannot be read as .tar.gz: {e}"));
        return problems;
    }
    let installed: Vec<(String, u32)> = match &platform.files {
        None => entries.clone(),
        Some(ops) => {
            let mut out = Vec::new();
            for op in ops {
                let glob = match globset::Glob::new(op.from.trim_start_matches("./")) {
                    Ok(g) => g.compile_matcher(),
                    Err(e) => {
                        problems.push(format!(
                            "{at}: files.from {:?} is not a valid glob: {e}",
                            op.from
                        ));
                        continue;
                    }
                };
                let matched: Vec<_> = entries.iter().filter(|(p, _)| glob.is_match(p)).collect();
                if matched.is_empty() {
                    problems.push(format!(
                        "{at}: files.from {:?} matches nothing in the archive",
                        op.from
                    ));
                }
                for (p, mode) in matched {
                    let base = p.rsplit('/').next().unwrap_or(p);
                    let to = op.to.trim_start_matches("./").trim_end_matches('/');
                    let dest = if to.is_empty() || to == "." {
                        base.to_owned()
                    } else {
                        format!("{to}/{base}")
                    };
                    out.push((dest, *mode));
                }
            }
            out
        }
    };
    let bin = platform.bin.trim_start_matches("./");
    match installed.iter().find(|(p, _)| p == bin) {
        None => problems.push(format!(
            "{at}: bin {:?} is not in the installed files {installed:?}",
            platform.bin
        )),
        Some((_, mode)) if !bin.ends_with(".exe") && mode & 0o111 == 0 => problems.push(format!(
            "{at}: bin {bin:?} is not executable (mode {mode:o})"
        )),
        Some(_) => {}
    }
    if !installed.iter().any(|(p, _)| p == "LICENSE") {
        problems.push(format!("{at}: LICENSE is not installed with the plugin"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: backup
spec:
  version: v0.1.0
  homepage: https://example.com
  shortDescription: Back up clusters
  description: Backs things up.
  caveats: Uses the kubectl-backup namespace; install the webhook.
  platforms:
  - selector:
      matchLabels: {os: linux, arch: amd64}
    uri: https://example.com/a.tar.gz
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    bin: kubectl-backup
    files:
    - {from: kubectl-backup, to: .}
    - {from: LICENSE, to: .}
"#;

    fn problems(yaml: &str) -> Vec<String> {
        validate_manifest("backup", yaml).expect("parses").1
    }

    #[test]
    fn good_manifest_passes() {
        assert_eq!(problems(GOOD), Vec::<String>::new());
    }

    #[test]
    fn each_rule_catches_its_fault() {
        let cases = [
            ("version: v0.1.0", "version: 0.1.0", "semantic version"),
            ("name: backup", "name: other", "metadata.name"),
            ("sha256: 0000", "sha256: ABCD", "sha256"),
            ("bin: kubectl-backup", "bin: ''", "bin has to be set"),
            ("os: linux", "distro: linux", "not supported"),
            ("kind: Plugin", "kind: Thing", "kind"),
            (
                "shortDescription: Back up clusters",
                "shortDescription: ''",
                "shortDescription",
            ),
            ("install the webhook", "install it", "webhook"),
        ];
        for (from, to, expect) in cases {
            let yaml = GOOD.replacen(from, to, 1);
            let found = problems(&yaml);
            assert!(
                found.iter().any(|p| p.contains(expect)),
                "replacing {from:?} by {to:?} should report {expect:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn semver_rules() {
        for ok in ["v0.1.0", "v1.2.3-rc.1", "v1.0.0+build.5", "v10.20.30"] {
            assert!(is_krew_semver(ok), "{ok}");
        }
        for bad in [
            "0.1.0",
            "v1.2",
            "v01.2.3",
            "v1.2.3-",
            "v1.2.3-01",
            "vx.y.z",
            "",
        ] {
            assert!(!is_krew_semver(bad), "{bad}");
        }
    }

    fn targz(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data, mode) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_cksum();
            builder.append_data(&mut h, name, *data).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gz")
    }

    #[test]
    fn archive_checks() {
        let (plugin, _) = validate_manifest("backup", GOOD).expect("parses");
        let archive = targz(&[
            ("kubectl-backup", b"\x7fELF", 0o755),
            ("LICENSE", b"Apache", 0o644),
        ]);
        let mut platform = plugin.spec.platforms[0].clone();
        platform.sha256 = hex::encode(Sha256::digest(&archive));
        assert_eq!(check_archive(&platform, &archive), Vec::<String>::new());

        let wrong_sha = Platform {
            sha256: "0".repeat(64),
            ..platform.clone()
        };
        assert!(check_archive(&wrong_sha, &archive)[0].contains("sha256"));

        let no_bin = targz(&[("LICENSE", b"Apache", 0o644)]);
        let p = Platform {
            sha256: hex::encode(Sha256::digest(&no_bin)),
            ..platform.clone()
        };
        assert!(check_archive(&p, &no_bin).iter().any(|m| m.contains("bin")));

        let not_exec = targz(&[("kubectl-backup", b"x", 0o644), ("LICENSE", b"A", 0o644)]);
        let p = Platform {
            sha256: hex::encode(Sha256::digest(&not_exec)),
            ..platform
        };
        assert!(
            check_archive(&p, &not_exec)
                .iter()
                .any(|m| m.contains("not executable"))
        );
    }
}
