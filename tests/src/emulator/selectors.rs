//! Label and field selectors, parsed with the grammar and error messages of
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields`.

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed label selector (requirements ANDed together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    Gt,
    Lt,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::DoesNotExist => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                j += 1;
            }
            // Longest known operator first, like the Go lexer.
            let s: String = chars[i..j].iter().collect();
            let (tok, len) = if s.starts_with("==") {
                (Token::DoubleEquals, 2)
            } else if s.starts_with("!=") {
                (Token::NotEquals, 2)
            } else {
                (
                    match c {
                        '=' => Token::Equals,
                        '!' => Token::DoesNotExist,
                        '(' => Token::OpenPar,
                        ')' => Token::ClosedPar,
                        ',' => Token::Comma,
                        '>' => Token::Gt,
                        _ => Token::Lt,
                    },
                    1,
                )
            };
            out.push(tok);
            i += len;
            continue;
        }
        let mut j = i;
        while j < chars.len() && !chars[j].is_whitespace() && !is_special(chars[j]) {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
        i = j;
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    /// Next token; in "values" context the keywords `in`/`notin` are plain identifiers.
    fn lookahead(&self, values: bool) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        if values {
            match t {
                Token::In => Token::Identifier("in".into()),
                Token::NotIn => Token::Identifier("notin".into()),
                t => t,
            }
        } else {
            t
        }
    }

    fn consume(&mut self, values: bool) -> Token {
        let t = self.lookahead(values);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            match self.lookahead(true) {
                Token::Identifier(_) | Token::DoesNotExist => {
                    reqs.push(self.requirement()?);
                    let t = self.consume(true);
                    match t {
                        Token::End => return Ok(reqs),
                        Token::Comma => {
                            let t2 = self.lookahead(true);
                            if !matches!(t2, Token::Identifier(_) | Token::DoesNotExist) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t2.literal()
                                ));
                            }
                        }
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ));
                        }
                    }
                }
                Token::End => return Ok(reqs),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut t = self.consume(true);
        let mut op = None;
        if t == Token::DoesNotExist {
            op = Some(Op::DoesNotExist);
            t = self.consume(true);
        }
        let key = match t {
            Token::Identifier(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        validate_key(&key)?;
        if matches!(self.lookahead(true), Token::End | Token::Comma) {
            return Ok(Requirement {
                key,
                op: op.unwrap_or(Op::Exists),
                values: Vec::new(),
            });
        }
        if op == Some(Op::DoesNotExist) {
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: Vec::new(),
            });
        }
        let (op, set) = match self.consume(false) {
            Token::In => (Op::In, true),
            Token::NotIn => (Op::NotIn, true),
            Token::Equals | Token::DoubleEquals => (Op::In, false),
            Token::NotEquals => (Op::NotIn, false),
            Token::Gt => (Op::Gt, false),
            Token::Lt => (Op::Lt, false),
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ));
            }
        };
        let values = if set {
            self.values()?
        } else {
            vec![self.exact_value()?]
        };
        for v in &values {
            validate_value(v)?;
        }
        if matches!(op, Op::Gt | Op::Lt) && values[0].parse::<i64>().is_err() {
            return Err(format!(
                "for 'Gt', 'Lt' operators, the value must be an integer, got {:?}",
                values[0]
            ));
        }
        Ok(Requirement { key, op, values })
    }

    fn values(&mut self) -> Result<Vec<String>, String> {
        let t = self.consume(true);
        if t != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.lookahead(true) {
            Token::Identifier(_) | Token::Comma => {
                let list = self.identifiers()?;
                let t = self.consume(true);
                if t != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", t.literal()));
                }
                Ok(list)
            }
            Token::ClosedPar => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        loop {
            match self.consume(true) {
                Token::Identifier(v) => {
                    if !out.contains(&v) {
                        out.push(v);
                    }
                    match self.lookahead(true) {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(out),
                        t => {
                            return Err(format!("found '{}', expected: ',' or ')'", t.literal()));
                        }
                    }
                }
                Token::Comma => {
                    if out.is_empty() {
                        out.push(String::new());
                    }
                    match self.lookahead(true) {
                        Token::ClosedPar => {
                            out.push(String::new());
                            return Ok(out);
                        }
                        Token::Comma => {
                            out.push(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, String> {
        match self.lookahead(true) {
            Token::End | Token::Comma => Ok(String::new()),
            _ => match self.consume(true) {
                Token::Identifier(v) => Ok(v),
                t => Err(format!("found '{}', expected: identifier", t.literal())),
            },
        }
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
    });
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ))
    }
}

fn validate_value(v: &str) -> Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "values[0][]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ))
    }
}

impl LabelSelector {
    /// Parse `labelSelector`; the error is the message of the real 400 BadRequest.
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let mut p = Parser {
            tokens: lex(input),
            pos: 0,
        };
        p.parse()
            .map(|requirements| LabelSelector { requirements })
            .map_err(|e| format!("unable to parse requirement: {e}"))
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Does an object with `labels` match?
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match r.op {
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Gt | Op::Lt => {
                    let (Some(v), Ok(want)) = (
                        v.and_then(|v| v.parse::<i64>().ok()),
                        r.values[0].parse::<i64>(),
                    ) else {
                        return false;
                    };
                    if r.op == Op::Gt { v > want } else { v < want }
                }
            }
        })
    }

    /// Does `object` (its `metadata.labels`) match?
    pub fn matches_object(&self, object: &Value) -> bool {
        self.is_empty()
            || self.matches(
                object
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object),
            )
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Field selector keys beyond `metadata.name`/`metadata.namespace` that the real server
/// supports for a resource (group, plural).
fn extra_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parse `fieldSelector` for resource `group`/`plural`; the error is the real 400 message.
    pub fn parse(input: &str, group: &str, plural: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in split_unescaped(input) {
            if part.is_empty() {
                continue;
            }
            let (key, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                ));
            };
            let key = key.trim();
            let extra = extra_fields(group, plural);
            if key != "metadata.name" && key != "metadata.namespace" && !extra.contains(&key) {
                let mut known = vec![
                    "\"metadata.name\"".to_owned(),
                    "\"metadata.namespace\"".to_owned(),
                ];
                known.extend(extra.iter().map(|f| format!("{f:?}")));
                return Err(format!(
                    "{key:?} is not a known field selector: only {}",
                    known.join(", ")
                ));
            }
            terms.push((
                key.to_owned(),
                eq,
                value.replace("\\,", ",").replace("\\=", "="),
            ));
        }
        Ok(FieldSelector { terms })
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name a `metadata.name=` term pins the selection to, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(k, eq, _)| *eq && k == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Does `object` match?
    pub fn matches_object(&self, object: &Value) -> bool {
        self.terms.iter().all(|(key, eq, want)| {
            let have = field_value(object, key);
            (have == *want) == *eq
        })
    }
}

fn field_value(object: &Value, key: &str) -> String {
    let pointer = format!("/{}", key.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        // An unset field compares as the empty string (and `false` for spec.unschedulable,
        // `0` for counters) as in the real field-label conversion functions.
        _ => match key {
            "spec.unschedulable" | "spec.hostNetwork" => "false".into(),
            "status.replicas" | "status.successful" => "0".into(),
            _ => String::new(),
        },
    }
}

fn split_unescaped(input: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// A `matchLabels` + `matchExpressions` selector object (as in webhooks and workloads).
pub fn label_selector_object_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let have = |k: &str| labels.get(k).map(String::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if have(k) != v.as_str() {
                return false;
            }
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => have(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => have(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => have(key).is_some(),
            "DoesNotExist" => have(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Value {
        json!({"metadata": {"labels": v}})
    }

    #[test]
    fn operators_select_like_kubernetes() {
        let obj = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web,db)",
            "app notin (db)",
            "app",
            "!missing",
            "app=web,tier=front",
            "n>3",
            "n<9",
            "missing!=x",
            "missing notin (x)",
            "  app = web ",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches_object(&obj), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "app notin (web)",
            "missing",
            "!app",
            "app=web,tier=back",
            "n>5",
            "n<5",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches_object(&obj),
                "{s}"
            );
        }
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn parse_errors_match_recorded_messages() {
        assert_eq!(
            LabelSelector::parse("app in (a,b").unwrap_err(),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            LabelSelector::parse("a b=c").unwrap_err(),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert!(LabelSelector::parse("app=").is_ok());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("app=web,").is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}, "type": "Opaque"});
        let s = FieldSelector::parse(
            "metadata.name=a,metadata.namespace!=other",
            "",
            "configmaps",
        )
        .unwrap();
        assert!(s.matches_object(&obj));
        assert_eq!(s.exact_name(), Some("a"));
        assert!(
            !FieldSelector::parse("metadata.name==b", "", "configmaps")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            FieldSelector::parse("type=Opaque", "", "secrets")
                .unwrap()
                .matches_object(&obj)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=bar", "", "configmaps").unwrap_err(),
            "\"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }

    #[test]
    fn selector_objects() {
        let l: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(label_selector_object_matches(&json!({}), &l));
        assert!(label_selector_object_matches(
            &json!({"matchLabels": {"a": "1"}}),
            &l
        ));
        assert!(!label_selector_object_matches(
            &json!({"matchLabels": {"a": "2"}}),
            &l
        ));
        assert!(label_selector_object_matches(
            &json!({"matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]}),
            &l
        ));
        assert!(!label_selector_object_matches(
            &json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}),
            &l
        ));
    }
}
