//! Label selectors (`-l`): parsed and checked before anything starts, so a
//! typo is a usage error rather than a half-made backup; also evaluated
//! locally where the API server cannot filter (PVs and CRDs pulled in by
//! `--cluster-resources auto`).
//!
//! The grammar is Kubernetes' set-based one: `k=v`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated.

use serde_json::{Map, Value};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`, `k in (…)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (…)`.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse a selector, with a message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err("empty requirement (stray comma?)".to_owned());
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Does an object with these labels match?
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Is the selector empty?
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".to_owned());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_key(key)?;
        return Ok(Requirement::DoesNotExist(key.to_owned()));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            validate_key(k)?;
            validate_value(v)?;
            let values = vec![v.to_owned()];
            return Ok(if negate {
                Requirement::NotIn(k.to_owned(), values)
            } else {
                Requirement::In(k.to_owned(), values)
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim_start();
        for (op, negate) in [("notin", true), ("in", false)] {
            if let Some(list) = rest.strip_prefix(op) {
                let list = list.trim();
                let inner = list
                    .strip_prefix('(')
                    .and_then(|l| l.strip_suffix(')'))
                    .ok_or_else(|| format!("{op} needs a parenthesised list: {key} {op} (a,b)"))?;
                validate_key(key)?;
                let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
                if values.iter().all(String::is_empty) {
                    return Err(format!("{key} {op} (): the list is empty"));
                }
                for v in &values {
                    validate_value(v)?;
                }
                return Ok(if negate {
                    Requirement::NotIn((*key).to_owned(), values)
                } else {
                    Requirement::In((*key).to_owned(), values)
                });
            }
        }
        return Err(format!(
            "cannot parse {part:?}: expected key=value, key!=value, key in (…), key notin (…), key or !key"
        ));
    }
    validate_key(part)?;
    Ok(Requirement::Exists(part.to_owned()))
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty() && p.len() <= 253 && p.split('.').all(backup_common::is_dns1123_label)
    });
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid label key {key:?}: [prefix/]name, the name at most 63 characters of \
             letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: at most 63 characters of letters, digits, '-', '_' \
             and '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let s =
            LabelSelector::parse("app=web, tier!=db,env in (prod, stage),!legacy,team").unwrap();
        let ok = labels(json!({"app": "web", "tier": "front", "env": "prod", "team": "x"}));
        assert!(s.matches(Some(&ok)));
        let mut bad = ok.clone();
        bad.insert("legacy".into(), json!("1"));
        assert!(!s.matches(Some(&bad)));
        let mut bad_env = ok.clone();
        bad_env.insert("env".into(), json!("dev"));
        assert!(!s.matches(Some(&bad_env)));
        assert!(!s.matches(None));
    }

    #[test]
    fn notin_and_double_equals() {
        let s = LabelSelector::parse("app==web,env notin (dev)").unwrap();
        assert!(s.matches(Some(&labels(json!({"app": "web"})))));
        assert!(!s.matches(Some(&labels(json!({"app": "web", "env": "dev"})))));
    }

    #[test]
    fn empty_matches_all() {
        let s = LabelSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(None));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "=web",
            "a b c",
            "env in prod",
            "env in ()",
            "a,,b",
            "x=(",
            "Bad Key=1",
            "a=b=c",
        ] {
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        // An empty value is legal in Kubernetes.
        assert!(LabelSelector::parse("app=").is_ok());
    }

    #[test]
    fn prefixed_keys() {
        let s = LabelSelector::parse("app.kubernetes.io/name=web").unwrap();
        assert!(s.matches(Some(&labels(json!({"app.kubernetes.io/name": "web"})))));
        assert!(LabelSelector::parse("Bad_Prefix/name=web").is_err());
    }
}
