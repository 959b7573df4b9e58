//! Alertmanager label matchers: `name="value"`, `name!=value`,
//! `name=~"regex"`, `name!~regex`, alone or as a list such as
//! `{a="b", c=~"d|e"}`.
//!
//! The grammar accepts both of Alertmanager's spellings (the classic parser
//! and the newer UTF-8 one): values may be quoted or not, label names may be
//! quoted, the braces are optional and a trailing comma is allowed. Regexes
//! are fully anchored, and a label the alert does not have matches as the
//! empty string, so `severity!="critical"` matches an alert without a
//! `severity` label and `team=~".*"` matches everything.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::LabelSet;

/// How a matcher compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    /// True for `=` and `=~`, Alertmanager's `isEqual`.
    pub fn is_positive(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }

    /// The operator for Alertmanager's API flags.
    pub fn from_flags(is_regex: bool, is_equal: bool) -> MatchOp {
        match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matcher that failed to parse or compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad matcher {input:?}: {message} (at character {position})")]
pub struct MatcherError {
    /// The whole text that was being parsed.
    pub input: String,
    /// 1-based character position of the problem within `input`.
    pub position: usize,
    pub message: String,
}

/// One label matcher. Compares by name, operator and value; the compiled
/// regex is derived from those.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the value as a fully anchored regex for
    /// `=~` and `!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        let describe = || format!("{}{}{}", quote_name(&name), op, quote_value(&value));
        if name.is_empty() {
            return Err(MatcherError {
                input: describe(),
                position: 1,
                message: "the label name is empty".into(),
            });
        }
        let re = if op.is_regex() {
            // Anchored like Alertmanager and Prometheus: `a|b` must match
            // the whole value, not a substring of it.
            match Regex::new(&format!("^(?:{value})$")) {
                Ok(re) => Some(re),
                Err(e) => {
                    return Err(MatcherError {
                        input: describe(),
                        position: name.chars().count() + op.as_str().len() + 1,
                        message: format!("invalid regex {value:?}: {}", one_line(&e.to_string())),
                    });
                }
            }
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (empty when the label is missing) matches.
    pub fn matches_value(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|re| re.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|re| re.is_match(v)),
        }
    }

    /// Whether the label set matches; a missing label counts as empty.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).map(String::as_str).unwrap_or(""))
    }
}

/// Whether every matcher matches (true for an empty list).
pub fn matches_all(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Alertmanager's order (name, value, operator): it decides how a route's
/// matchers are spelled in its group key, so keys stay the same whatever
/// order the config lists them in.
impl Ord for Matcher {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.name, &self.value, self.op).cmp(&(&other.name, &other.value, other.op))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            quote_name(&self.name),
            self.op,
            quote_value(&self.value)
        )
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_matcher(s)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_matcher(&s).map_err(serde::de::Error::custom)
    }
}

/// Matchers written as one string (`'{a="b", c=~"d"}'`) or a list of
/// strings (`['a="b"', 'c=~d']`), each of which may itself hold several.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn matches(&self, labels: &LabelSet) -> bool {
        matches_all(&self.0, labels)
    }
}

impl fmt::Display for Matchers {
    /// Alertmanager's spelling: `{a="b",c=~"d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl FromStr for Matchers {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_matchers(s).map(Matchers)
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| m.to_string()))
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let lines = match Raw::deserialize(d)? {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        };
        parse_matcher_lines(&lines)
            .map(Matchers)
            .map_err(|(_, e)| serde::de::Error::custom(e))
    }
}

/// Parses config lines, each holding one or more matchers; on failure
/// returns the index of the bad line with its error.
pub fn parse_matcher_lines<S: AsRef<str>>(
    lines: &[S],
) -> Result<Vec<Matcher>, (usize, MatcherError)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        out.extend(parse_matchers(line.as_ref()).map_err(|e| (i, e))?);
    }
    Ok(out)
}

/// Parses exactly one matcher.
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherError> {
    let mut all = parse_matchers(input)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(MatcherError {
            input: input.to_string(),
            position: 1,
            message: "expected a matcher such as name=\"value\"".into(),
        }),
        n => Err(MatcherError {
            input: input.to_string(),
            position: 1,
            message: format!("expected one matcher, found {n}"),
        }),
    }
}

/// Parses a comma-separated list of matchers, optionally inside braces.
/// An empty string or `{}` gives an empty list.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut p = Parser {
        input,
        chars: input.char_indices().collect(),
        pos: 0,
    };
    p.skip_ws();
    let braced = p.eat('{');
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.at_end() {
            if braced {
                return Err(p.err("missing closing '}'"));
            }
            break;
        }
        if braced && p.peek() == Some('}') {
            p.pos += 1;
            p.skip_ws();
            if !p.at_end() {
                return Err(p.err("unexpected text after closing '}'"));
            }
            break;
        }
        out.push(p.matcher(braced)?);
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        if p.at_end() || (braced && p.peek() == Some('}')) {
            continue;
        }
        return Err(p.err("expected ',' between matchers"));
    }
    Ok(out)
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

/// Characters that end an unquoted label name: operators, separators,
/// quotes and whitespace, as in Alertmanager's UTF-8 parser.
fn ends_name(c: char) -> bool {
    c.is_whitespace() || matches!(c, '=' | '!' | '~' | ',' | '{' | '}' | '"' | '\'' | '`')
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.pos + 1).map(|&(_, c)| c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn err_at(&self, pos: usize, message: impl Into<String>) -> MatcherError {
        MatcherError {
            input: self.input.to_string(),
            position: pos + 1,
            message: message.into(),
        }
    }

    fn err(&self, message: impl Into<String>) -> MatcherError {
        self.err_at(self.pos, message)
    }

    fn matcher(&mut self, braced: bool) -> Result<Matcher, MatcherError> {
        let name_at = self.pos;
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.pos;
            while self.peek().is_some_and(|c| !ends_name(c)) {
                self.pos += 1;
            }
            self.slice(start, self.pos).to_string()
        };
        if name.is_empty() {
            return Err(self.err_at(name_at, "expected a label name"));
        }
        self.skip_ws();
        let op = match (self.peek(), self.peek2()) {
            (Some('='), Some('~')) => MatchOp::Regex,
            (Some('!'), Some('=')) => MatchOp::NotEqual,
            (Some('!'), Some('~')) => MatchOp::NotRegex,
            (Some('='), _) => MatchOp::Equal,
            _ => {
                return Err(self.err(format!(
                    "expected an operator (=, !=, =~ or !~) after label name {name:?}"
                )));
            }
        };
        self.pos += op.as_str().len();
        self.skip_ws();
        let value_at = self.pos;
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            self.unquoted(braced)?
        };
        Matcher::new(name, op, value).map_err(|e| self.err_at(value_at, e.message))
    }

    fn slice(&self, from: usize, to: usize) -> &str {
        let start = self.chars.get(from).map_or(self.input.len(), |&(i, _)| i);
        let end = self.chars.get(to).map_or(self.input.len(), |&(i, _)| i);
        &self.input[start..end]
    }

    /// An unquoted value runs to the next comma (or the closing brace of a
    /// braced list), trailing whitespace trimmed.
    fn unquoted(&mut self, braced: bool) -> Result<String, MatcherError> {
        let start = self.pos;
        let mut end = self.pos;
        // In a braced list the last `}` closes the list; braces before it
        // belong to the value, so regexes like `a{2}` work unquoted.
        let close = if braced {
            self.chars.iter().rposition(|&(_, c)| c == '}')
        } else {
            None
        };
        while let Some(c) = self.peek() {
            if c == ',' || Some(self.pos) == close {
                break;
            }
            if c == '"' {
                return Err(
                    self.err("unexpected '\"' inside an unquoted value; quote the whole value")
                );
            }
            self.pos += 1;
            if !c.is_whitespace() {
                end = self.pos;
            }
        }
        let value = self.slice(start, end).to_string();
        self.pos = end;
        Ok(value)
    }

    /// A double-quoted string. `\"`, `\\`, `\n` and `\t` are escapes; any
    /// other backslash is kept, so regex escapes like `\d` need no doubling.
    fn quoted(&mut self) -> Result<String, MatcherError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(open, "unterminated quoted string"));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => match self.peek() {
                    Some('"') => {
                        out.push('"');
                        self.pos += 1;
                    }
                    Some('\\') => {
                        out.push('\\');
                        self.pos += 1;
                    }
                    Some('n') => {
                        out.push('\n');
                        self.pos += 1;
                    }
                    Some('t') => {
                        out.push('\t');
                        self.pos += 1;
                    }
                    _ => out.push('\\'),
                },
                c => out.push(c),
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn quote_name(name: &str) -> String {
    if is_plain_name(name) {
        name.to_string()
    } else {
        quote_value(name)
    }
}

/// Double-quotes a value, escaping what the parser unescapes.
pub(crate) fn quote_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(s: &str) -> Matcher {
        match parse_matcher(s) {
            Ok(m) => m,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn operators_quoted_and_unquoted() {
        let m = one(r#"foo="bar""#);
        assert_eq!(
            (m.name(), m.op(), m.value()),
            ("foo", MatchOp::Equal, "bar")
        );
        let m = one("foo!=bar");
        assert_eq!(
            (m.name(), m.op(), m.value()),
            ("foo", MatchOp::NotEqual, "bar")
        );
        let m = one(r#"foo=~"a|b""#);
        assert_eq!(
            (m.name(), m.op(), m.value()),
            ("foo", MatchOp::Regex, "a|b")
        );
        let m = one("foo !~ a.* ");
        assert_eq!(
            (m.name(), m.op(), m.value()),
            ("foo", MatchOp::NotRegex, "a.*")
        );
        let m = one("foo=");
        assert_eq!((m.op(), m.value()), (MatchOp::Equal, ""));
    }

    #[test]
    fn lists_with_and_without_braces() {
        let ms = parse_matchers(r#"{a="b", c=~"d"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].to_string(), r#"c=~"d""#);
        let ms = parse_matchers(r#"a=b,c!="x,y",d=~e,"#).unwrap();
        assert_eq!(
            ms.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            [r#"a="b""#, r#"c!="x,y""#, r#"d=~"e""#]
        );
        assert!(parse_matchers("").unwrap().is_empty());
        assert!(parse_matchers(" { } ").unwrap().is_empty());
        // Braces inside an unquoted regex belong to the value.
        let ms = parse_matchers("{a=~x{2}}").unwrap();
        assert_eq!(ms[0].value(), "x{2}");
    }

    #[test]
    fn escapes_and_quoted_names() {
        let m = one(r#"msg="say \"hi\"\\n""#);
        assert_eq!(m.value(), "say \"hi\"\\n");
        // A backslash before anything else is kept, for regex classes.
        let m = one(r#"n=~"\d+""#);
        assert_eq!(m.value(), r"\d+");
        assert!(m.matches(&labels(&[("n", "42")])));
        let m = one(r#""k8s.pod name"="x""#);
        assert_eq!(m.name(), "k8s.pod name");
        assert_eq!(m.to_string(), r#""k8s.pod name"="x""#);
        let m = one("k8s.pod=x");
        assert_eq!(m.name(), "k8s.pod");
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m = one("job=~node");
        assert!(m.matches(&labels(&[("job", "node")])));
        assert!(!m.matches(&labels(&[("job", "node-exporter")])));
        assert!(!m.matches(&labels(&[("job", "my-node")])));
        let m = one("job=~a|b");
        assert!(m.matches(&labels(&[("job", "a")])));
        assert!(!m.matches(&labels(&[("job", "ab")])));
        let missing = labels(&[]);
        assert!(one(r#"severity!="critical""#).matches(&missing));
        assert!(one(r#"severity="""#).matches(&missing));
        assert!(one("severity=~.*").matches(&missing));
        assert!(!one("severity=~.+").matches(&missing));
        assert!(one("severity!~.+").matches(&missing));
    }

    #[test]
    fn clear_errors() {
        let e = parse_matcher("foo").unwrap_err();
        assert!(e.message.contains("expected an operator"), "{e}");
        assert_eq!(e.position, 4);
        let e = parse_matcher(r#"foo="bar"#).unwrap_err();
        assert_eq!(e.message, "unterminated quoted string");
        assert_eq!(e.position, 5);
        let e = parse_matcher("foo=~(").unwrap_err();
        assert!(e.message.starts_with("invalid regex \"(\""), "{e}");
        assert_eq!(e.position, 6);
        let e = parse_matchers(r#"{a="b""#).unwrap_err();
        assert_eq!(e.message, "missing closing '}'");
        let e = parse_matchers(r#"a="b" c="d""#).unwrap_err();
        assert_eq!(e.message, "expected ',' between matchers");
        let e = parse_matcher("=x").unwrap_err();
        assert_eq!(e.message, "expected a label name");
        let e = parse_matcher(r#"a=b"c"#).unwrap_err();
        assert!(e.message.contains("unquoted value"), "{e}");
        let e = parse_matcher("a=b,c=d").unwrap_err();
        assert_eq!(e.message, "expected one matcher, found 2");
        let e = parse_matchers("{a=b} x").unwrap_err();
        assert_eq!(e.message, "unexpected text after closing '}'");
        assert!(e.to_string().starts_with(r#"bad matcher "{a=b} x""#), "{e}");
    }

    #[test]
    fn display_round_trips_and_sorts_like_alertmanager() {
        let mut ms =
            parse_matchers(r#"{severity="critical", alertname=~"Node.*", a!="x\"y"}"#).unwrap();
        ms.sort();
        let text = Matchers(ms.clone()).to_string();
        assert_eq!(
            text,
            r#"{a!="x\"y",alertname=~"Node.*",severity="critical"}"#
        );
        assert_eq!(parse_matchers(&text).unwrap(), ms);
    }

    #[test]
    fn yaml_deserialization() {
        let m: Matcher = serde_yaml_ng::from_str(r#"'severity="critical"'"#).unwrap();
        assert_eq!(m.value(), "critical");
        let ms: Matchers = serde_yaml_ng::from_str("- a=b\n- '{c=~\"d|e\", f!=g}'\n").unwrap();
        assert_eq!(ms.0.len(), 3);
        let ms: Matchers = serde_yaml_ng::from_str("'a=b, c=d'").unwrap();
        assert_eq!(ms.0.len(), 2);
        let err = serde_yaml_ng::from_str::<Matchers>("- a=b\n- c=~(\n").unwrap_err();
        assert!(err.to_string().contains("invalid regex"), "{err}");
        assert_eq!(
            serde_json::to_string(&ms).unwrap(),
            r#"["a=\"b\"","c=\"d\""]"#
        );
    }

    #[test]
    fn api_flags() {
        assert_eq!(MatchOp::from_flags(true, false), MatchOp::NotRegex);
        assert_eq!(MatchOp::from_flags(false, true), MatchOp::Equal);
        assert!(MatchOp::Regex.is_positive() && !MatchOp::NotEqual.is_positive());
    }
}
