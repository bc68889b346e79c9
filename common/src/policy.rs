//! The webhook's policy configuration: the YAML schema of the mounted
//! ConfigMap, its defaults and its validation.
//!
//! Shared by `backup-webhook` (which loads and reloads the file) and
//! `kubectl backup webhook install --policy FILE` (which refuses an invalid
//! file before touching the cluster), so both give the same precise message.
//!
//! ```yaml
//! snapshotClass:
//!   mode: mutate            # mutate | deny | warn | off
//!   contentScope: restored  # which VolumeSnapshotContents: restored | all
//! podSecurity:
//!   mode: mutate
//!   scope: restored         # restored | all
//!   defaults:
//!     enforce: {level: baseline, version: latest}
//!     audit: {level: restricted, version: latest}
//!     warn: {level: restricted, version: latest}
//!   rules:
//!     - namespaces: ["volume-snapshot-controller"]
//!       enforce: {level: privileged}
//!       override: false     # true: replace existing labels, even to weaken them
//! storageClass:
//!   mode: mutate
//!   scope: restored
//!   map: {gp2: standard}    # old class -> new class (the target must exist)
//!   fallbackToDefault: false
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The YAML does not match the schema (serde names the field, line and column).
    #[error("invalid policy: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// A namespace glob of a Pod Security rule does not compile.
    #[error("invalid policy: podSecurity.rules[{rule}].namespaces: bad glob {glob:?}: {reason}")]
    Glob {
        /// Index of the rule.
        rule: usize,
        /// The offending glob.
        glob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Pod Security rule without namespaces would never match.
    #[error("invalid policy: podSecurity.rules[{rule}].namespaces must list at least one glob")]
    EmptyRule {
        /// Index of the rule.
        rule: usize,
    },
    /// A StorageClass map entry names something that cannot be a StorageClass.
    #[error(
        "invalid policy: storageClass.map: {name:?} is not a valid StorageClass name \
         (lowercase DNS subdomain, at most 253 characters)"
    )]
    ClassName {
        /// The offending name.
        name: String,
    },
    /// A StorageClass map entry maps a class to itself.
    #[error("invalid policy: storageClass.map maps {name:?} to itself")]
    SelfMap {
        /// The class.
        name: String,
    },
}

/// What a policy does when an object breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fix the object with a JSON patch (and say so in a warning).
    #[default]
    Mutate,
    /// Refuse the object with a message saying why.
    Deny,
    /// Let the object through with a warning.
    Warn,
    /// Do nothing.
    Off,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Mutate => "mutate",
            Mode::Deny => "deny",
            Mode::Warn => "warn",
            Mode::Off => "off",
        })
    }
}

/// Which objects a policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only objects carrying the restore label (`kubectl-backup.dev/restore-name`).
    #[default]
    Restored,
    /// Every object of the kinds the policy covers.
    All,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Restored => "restored",
            Scope::All => "all",
        })
    }
}

/// The whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy 1: snapshot classes (and restored snapshot contents) keep `Retain`.
    #[serde(default)]
    pub snapshot_class: SnapshotClassPolicy,
    /// Policy 2: namespaces carry Pod Security Admission labels.
    #[serde(default)]
    pub pod_security: PodSecurityPolicy,
    /// Policy 3: restored PVCs and StatefulSets only name StorageClasses that exist.
    #[serde(default)]
    pub storage_class: StorageClassPolicy,
}

/// Policy 1 settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotClassPolicy {
    /// What to do with `deletionPolicy: Delete`.
    #[serde(default)]
    pub mode: Mode,
    /// Which VolumeSnapshotContents are covered (VolumeSnapshotClasses always are).
    #[serde(default)]
    pub content_scope: Scope,
}

/// Policy 2 settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityPolicy {
    /// What to do with missing labels (invalid values are refused in `mutate`
    /// and `deny` modes, and warned about in `warn` mode).
    #[serde(default)]
    pub mode: Mode,
    /// Which namespaces are covered.
    #[serde(default)]
    pub scope: Scope,
    /// Labels every covered namespace gets when it has none of its own.
    #[serde(default = "PsaLabels::default_policy")]
    pub defaults: PsaLabels,
    /// Per-namespace rules by name glob; the first matching rule wins and
    /// overrides the defaults mode by mode.
    #[serde(default = "PsaRule::default_rules")]
    pub rules: Vec<PsaRule>,
}

impl Default for PodSecurityPolicy {
    fn default() -> Self {
        PodSecurityPolicy {
            mode: Mode::default(),
            scope: Scope::default(),
            defaults: PsaLabels::default_policy(),
            rules: PsaRule::default_rules(),
        }
    }
}

/// The three Pod Security Admission modes, each optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PsaLabels {
    /// `pod-security.kubernetes.io/enforce` (+ `-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<PsaSetting>,
    /// `pod-security.kubernetes.io/audit` (+ `-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PsaSetting>,
    /// `pod-security.kubernetes.io/warn` (+ `-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<PsaSetting>,
}

impl PsaLabels {
    /// The built-in defaults: enforce `baseline`, audit and warn `restricted`,
    /// all at `latest`. Baseline blocks known privilege escalations while
    /// letting ordinary workloads run; restricted in audit/warn tells users
    /// what hardening is still missing without breaking their restore.
    pub fn default_policy() -> PsaLabels {
        PsaLabels {
            enforce: Some(PsaSetting::new(Level::Baseline)),
            audit: Some(PsaSetting::new(Level::Restricted)),
            warn: Some(PsaSetting::new(Level::Restricted)),
        }
    }

    /// The setting for one PSA mode.
    pub fn get(&self, mode: PsaMode) -> Option<&PsaSetting> {
        match mode {
            PsaMode::Enforce => self.enforce.as_ref(),
            PsaMode::Audit => self.audit.as_ref(),
            PsaMode::Warn => self.warn.as_ref(),
        }
    }
}

/// One PSA mode's level and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PsaSetting {
    /// The level.
    pub level: Level,
    /// The policy version (`latest` or `v1.N`); when absent no `-version`
    /// label is added (Kubernetes then uses `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<PsaVersion>,
}

impl PsaSetting {
    /// `level` at version `latest`.
    pub fn new(level: Level) -> PsaSetting {
        PsaSetting {
            level,
            version: Some(PsaVersion::latest()),
        }
    }
}

/// A per-namespace Pod Security rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PsaRule {
    /// Namespace name globs (`*`, `?`, `[abc]`).
    pub namespaces: Vec<String>,
    /// `enforce` for matching namespaces (else the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<PsaSetting>,
    /// `audit` for matching namespaces (else the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PsaSetting>,
    /// `warn` for matching namespaces (else the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<PsaSetting>,
    /// Replace labels the namespace already has, even when that weakens them.
    /// Without it existing labels are kept and a rule that would lower one
    /// only produces a warning.
    #[serde(default, rename = "override")]
    pub override_existing: bool,
}

impl PsaRule {
    /// The built-in rules: the CSI snapshot controller needs privileged pods.
    pub fn default_rules() -> Vec<PsaRule> {
        vec![PsaRule {
            namespaces: vec!["volume-snapshot-controller".to_owned()],
            enforce: Some(PsaSetting::new(Level::Privileged)),
            audit: Some(PsaSetting::new(Level::Privileged)),
            warn: Some(PsaSetting::new(Level::Privileged)),
            override_existing: false,
        }]
    }

    /// The rule's setting for one PSA mode.
    pub fn get(&self, mode: PsaMode) -> Option<&PsaSetting> {
        match mode {
            PsaMode::Enforce => self.enforce.as_ref(),
            PsaMode::Audit => self.audit.as_ref(),
            PsaMode::Warn => self.warn.as_ref(),
        }
    }
}

/// The three Pod Security Admission modes, in label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsaMode {
    /// Violations are refused.
    Enforce,
    /// Violations are recorded in the audit log.
    Audit,
    /// Violations are returned as warnings.
    Warn,
}

impl PsaMode {
    /// All modes, in the order labels are written.
    pub const ALL: [PsaMode; 3] = [PsaMode::Enforce, PsaMode::Audit, PsaMode::Warn];

    /// The level label key.
    pub fn label(self) -> &'static str {
        match self {
            PsaMode::Enforce => "pod-security.kubernetes.io/enforce",
            PsaMode::Audit => "pod-security.kubernetes.io/audit",
            PsaMode::Warn => "pod-security.kubernetes.io/warn",
        }
    }

    /// The version label key.
    pub fn version_label(self) -> &'static str {
        match self {
            PsaMode::Enforce => "pod-security.kubernetes.io/enforce-version",
            PsaMode::Audit => "pod-security.kubernetes.io/audit-version",
            PsaMode::Warn => "pod-security.kubernetes.io/warn-version",
        }
    }
}

/// A Pod Security Standard level, ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current hardening best practice.
    Restricted,
}

impl Level {
    /// The values Kubernetes accepts, for error messages.
    pub const ALLOWED: &'static str = "privileged, baseline, restricted";

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(()),
        }
    }
}

/// A Pod Security Standard version: `latest` or `v1.N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PsaVersion(String);

impl PsaVersion {
    /// What Kubernetes accepts, for error messages.
    pub const ALLOWED: &'static str = "latest or v1.N (for example v1.28)";

    /// `latest`.
    pub fn latest() -> PsaVersion {
        PsaVersion("latest".to_owned())
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is `s` a version Kubernetes accepts in a `-version` label?
    pub fn is_valid(s: &str) -> bool {
        if s == "latest" {
            return true;
        }
        // Kubernetes parses `v1.<minor>` with a decimal minor and no sign or
        // leading zeros beyond a single "0".
        s.strip_prefix("v1.").is_some_and(|minor| {
            !minor.is_empty()
                && minor.len() <= 4
                && minor.bytes().all(|b| b.is_ascii_digit())
                && (minor == "0" || !minor.starts_with('0'))
        })
    }
}

impl TryFrom<String> for PsaVersion {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if PsaVersion::is_valid(&value) {
            Ok(PsaVersion(value))
        } else {
            Err(format!(
                "invalid Pod Security version {value:?}: expected {}",
                PsaVersion::ALLOWED
            ))
        }
    }
}

impl From<PsaVersion> for String {
    fn from(value: PsaVersion) -> Self {
        value.0
    }
}

/// Policy 3 settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageClassPolicy {
    /// What to do with a class that does not exist.
    #[serde(default)]
    pub mode: Mode,
    /// Which PVCs and StatefulSets are covered.
    #[serde(default)]
    pub scope: Scope,
    /// Missing class → replacement (the replacement must exist on the cluster).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
    /// Remap a missing class with no map entry to the cluster's default class.
    #[serde(default)]
    pub fallback_to_default: bool,
}

/// A parsed and validated policy, with its globs compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The configuration as written.
    pub config: PolicyConfig,
    /// One matcher list per `podSecurity.rules` entry, same order.
    rule_matchers: Vec<Vec<GlobMatcher>>,
}

impl Default for Policy {
    fn default() -> Self {
        // The defaults contain only literal globs; compiling them cannot fail,
        // but fall back to no matchers rather than panic.
        Policy::new(PolicyConfig::default()).unwrap_or(Policy {
            config: PolicyConfig::default(),
            rule_matchers: Vec::new(),
        })
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Policy {
    /// Parse and validate a policy file's contents.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        // An empty file (or one holding only comments) means "all defaults".
        let config: PolicyConfig = if text.trim().is_empty()
            || text.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#') || l == "---"
            }) {
            PolicyConfig::default()
        } else {
            serde_yaml::from_str(text)?
        };
        Policy::new(config)
    }

    /// Validate a configuration built in code.
    pub fn new(config: PolicyConfig) -> Result<Policy, PolicyError> {
        let mut rule_matchers = Vec::with_capacity(config.pod_security.rules.len());
        for (rule, r) in config.pod_security.rules.iter().enumerate() {
            if r.namespaces.is_empty() {
                return Err(PolicyError::EmptyRule { rule });
            }
            let mut matchers = Vec::with_capacity(r.namespaces.len());
            for glob in &r.namespaces {
                let compiled = Glob::new(glob).map_err(|e| PolicyError::Glob {
                    rule,
                    glob: glob.clone(),
                    reason: e.kind().to_string(),
                })?;
                matchers.push(compiled.compile_matcher());
            }
            rule_matchers.push(matchers);
        }
        for (from, to) in &config.storage_class.map {
            for name in [from, to] {
                if !is_dns1123_subdomain(name) {
                    return Err(PolicyError::ClassName { name: name.clone() });
                }
            }
            if from == to {
                return Err(PolicyError::SelfMap { name: from.clone() });
            }
        }
        Ok(Policy {
            config,
            rule_matchers,
        })
    }

    /// The first Pod Security rule whose globs match `namespace`.
    pub fn psa_rule_for(&self, namespace: &str) -> Option<&PsaRule> {
        self.rule_matchers
            .iter()
            .position(|ms| ms.iter().any(|m| m.is_match(namespace)))
            .and_then(|i| self.config.pod_security.rules.get(i))
    }

    /// The setting `namespace` should carry for one PSA mode: the matching
    /// rule's, else the default.
    pub fn psa_wanted(&self, namespace: &str, mode: PsaMode) -> Option<&PsaSetting> {
        self.psa_rule_for(namespace)
            .and_then(|r| r.get(mode))
            .or_else(|| self.config.pod_security.defaults.get(mode))
    }

    /// Serialize back to YAML (for `webhook status`).
    pub fn to_yaml(&self) -> Result<String, PolicyError> {
        Ok(serde_yaml::to_string(&self.config)?)
    }
}

/// Is `s` a DNS-1123 subdomain (what StorageClass names must be)?
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(crate::is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let p = Policy::from_yaml("# nothing\n").unwrap();
        assert_eq!(p.config, PolicyConfig::default());
        assert_eq!(p.config.snapshot_class.mode, Mode::Mutate);
        assert_eq!(
            p.psa_wanted("volume-snapshot-controller", PsaMode::Enforce)
                .unwrap()
                .level,
            Level::Privileged
        );
        assert_eq!(
            p.psa_wanted("shop", PsaMode::Enforce).unwrap().level,
            Level::Baseline
        );
    }

    #[test]
    fn full_file_parses() {
        let p = Policy::from_yaml(
            r#"
snapshotClass: {mode: deny, contentScope: all}
podSecurity:
  mode: warn
  scope: all
  defaults:
    enforce: {level: restricted, version: v1.28}
  rules:
    - namespaces: ["monitoring-*", "kube-?ublic"]
      enforce: {level: privileged}
      override: true
storageClass:
  mode: mutate
  map: {gp2: standard}
  fallbackToDefault: true
"#,
        )
        .unwrap();
        assert_eq!(p.config.snapshot_class.mode, Mode::Deny);
        assert_eq!(p.config.snapshot_class.content_scope, Scope::All);
        let s = p.psa_wanted("monitoring-eu", PsaMode::Enforce);
        assert_eq!(s.unwrap().level, Level::Privileged);
        assert!(p.psa_rule_for("monitoring-eu").unwrap().override_existing);
        // A rule without audit falls back to the defaults, which here have none.
        assert!(p.psa_wanted("monitoring-eu", PsaMode::Audit).is_none());
        assert!(p.psa_rule_for("kube-public").is_some());
        assert!(p.psa_rule_for("shop").is_none());
        assert_eq!(p.config.storage_class.map["gp2"], "standard");
        assert!(p.config.storage_class.fallback_to_default);
    }

    #[test]
    fn invalid_values_are_refused_precisely() {
        let err = Policy::from_yaml("podSecurity:\n  defaults:\n    enforce: {level: privilegd}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("privilegd"), "{err}");
        assert!(err.contains("privileged"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = Policy::from_yaml(
            "podSecurity:\n  defaults:\n    warn: {level: baseline, version: \"1.28\"}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("v1.N"), "{err}");

        let err = Policy::from_yaml("snapshotClass: {mode: refuse}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("refuse") && err.contains("mutate"), "{err}");

        let err = Policy::from_yaml("storageClas: {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `storageClas`"), "{err}");

        let err = Policy::from_yaml("storageClass: {map: {Gp2: standard}}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Gp2\""), "{err}");

        let err = Policy::from_yaml("storageClass: {map: {a: a}}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("itself"), "{err}");

        let err = Policy::from_yaml("podSecurity: {rules: [{namespaces: [\"a[\"]}]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0]"), "{err}");

        let err = Policy::from_yaml("podSecurity: {rules: [{namespaces: []}]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn versions() {
        for ok in ["latest", "v1.0", "v1.28", "v1.100"] {
            assert!(PsaVersion::is_valid(ok), "{ok}");
        }
        for bad in [
            "", "v1.", "v2.1", "1.28", "v1.028", "v1.2x", "Latest", "v1.28.1",
        ] {
            assert!(!PsaVersion::is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::Privileged < Level::Baseline && Level::Baseline < Level::Restricted);
        assert_eq!("baseline".parse::<Level>(), Ok(Level::Baseline));
        assert!("Baseline".parse::<Level>().is_err());
    }

    #[test]
    fn round_trips_through_yaml() {
        let p = Policy::default();
        let again = Policy::from_yaml(&p.to_yaml().unwrap()).unwrap();
        assert_eq!(p, again);
    }
}
