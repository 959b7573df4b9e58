//! Label and field selectors, as in `?labelSelector=` and `?fieldSelector=`.

use crate::resources::ResourceType;

/// What a selector looks at.
pub trait Selectable {
    fn label(&self, key: &str) -> Option<&str>;
    /// A selectable field's value; a missing field reads as `""`, as the
    /// apiserver's field sets do.
    fn field(&self, path: &str) -> &str;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    path: String,
    value: String,
    negated: bool,
}

/// A parsed pair of label and field selectors (both ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Selector {
    /// Parses both selectors, checking field paths against what `resource`
    /// supports (the apiserver refuses unknown ones rather than matching
    /// nothing).
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        resource: &ResourceType,
    ) -> Result<Selector, SelectorError> {
        let labels = match label_selector {
            Some(s) => parse_labels(s)?,
            None => Vec::new(),
        };
        let fields = match field_selector {
            Some(s) => parse_fields(s)?,
            None => Vec::new(),
        };
        if let Some(bad) = fields.iter().find(|f| !resource.supports_field(&f.path)) {
            return Err(SelectorError::UnsupportedField(bad.path.clone()));
        }
        Ok(Selector { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &impl Selectable) -> bool {
        self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => obj.label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => obj.label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => obj.label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => obj.label(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelReq::Exists(k) => obj.label(k).is_some(),
            LabelReq::NotExists(k) => obj.label(k).is_none(),
        }) && self
            .fields
            .iter()
            .all(|f| (obj.field(&f.path) == f.value) != f.negated)
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

fn valid_key(k: &str) -> bool {
    let name = match k.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || name.contains('/') {
                return false;
            }
            name
        }
        None => k,
    };
    !name.is_empty() && valid_value(name)
}

/// Splits at commas outside parentheses (`a in (x,y),b`).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_labels(s: &str) -> Result<Vec<LabelReq>, SelectorError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(s)
        .into_iter()
        .map(|part| parse_label_req(part.trim()))
        .collect()
}

fn parse_label_req(req: &str) -> Result<LabelReq, SelectorError> {
    let err = |why: &str| SelectorError::Label(format!("{why} in '{req}'"));
    if let Some(key) = req.strip_prefix('!') {
        let key = key.trim();
        if !valid_key(key) {
            return Err(err("invalid label key"));
        }
        return Ok(LabelReq::NotExists(key.to_owned()));
    }
    let key_end = req.find(|c: char| !is_key_char(c)).unwrap_or(req.len());
    let key = &req[..key_end];
    if !valid_key(key) {
        return Err(err("invalid label key"));
    }
    let key = key.to_owned();
    let rest = req[key_end..].trim_start();
    let value = |v: &str| -> Result<String, SelectorError> {
        let v = v.trim();
        if valid_value(v) {
            Ok(v.to_owned())
        } else {
            Err(err("invalid label value"))
        }
    };
    if rest.is_empty() {
        Ok(LabelReq::Exists(key))
    } else if let Some(v) = rest.strip_prefix("!=") {
        Ok(LabelReq::NotEq(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix("==") {
        Ok(LabelReq::Eq(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix('=') {
        Ok(LabelReq::Eq(key, value(v)?))
    } else if let Some(set) = rest.strip_prefix("notin") {
        Ok(LabelReq::NotIn(
            key,
            parse_set(set).ok_or_else(|| err("bad set"))?,
        ))
    } else if let Some(set) = rest.strip_prefix("in") {
        Ok(LabelReq::In(
            key,
            parse_set(set).ok_or_else(|| err("bad set"))?,
        ))
    } else {
        Err(err("expected one of '=', '==', '!=', 'in', 'notin'"))
    }
}

/// ` (a, b)` → `["a", "b"]`.
fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    (values.iter().all(|v| valid_value(v)) && !inner.trim().is_empty()).then_some(values)
}

fn parse_fields(s: &str) -> Result<Vec<FieldReq>, SelectorError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_unescaped(s, ',')
        .into_iter()
        .map(|term| parse_field_term(s, term))
        .collect()
}

/// Splits at `sep` not preceded by a backslash escape.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_field_term(whole: &str, term: &str) -> Result<FieldReq, SelectorError> {
    let bad = || SelectorError::Field(whole.to_owned(), term.to_owned());
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => return make_field(term, i, 2, true, bad),
            b'=' if bytes.get(i + 1) == Some(&b'=') => return make_field(term, i, 2, false, bad),
            b'=' => return make_field(term, i, 1, false, bad),
            _ => i += 1,
        }
    }
    Err(bad())
}

fn make_field(
    term: &str,
    at: usize,
    op_len: usize,
    negated: bool,
    bad: impl Fn() -> SelectorError,
) -> Result<FieldReq, SelectorError> {
    let path = term[..at].trim();
    if path.is_empty() {
        return Err(bad());
    }
    Ok(FieldReq {
        path: path.to_owned(),
        value: unescape(&term[at + op_len..]).ok_or_else(bad)?,
        negated,
    })
}

fn unescape(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                e @ ('\\' | ',' | '=') => out.push(e),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    struct Obj {
        labels: Vec<(&'static str, &'static str)>,
        node: &'static str,
    }

    impl Selectable for Obj {
        fn label(&self, key: &str) -> Option<&str> {
            self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        }
        fn field(&self, path: &str) -> &str {
            match path {
                "spec.nodeName" => self.node,
                "metadata.name" => "p1",
                _ => "",
            }
        }
    }

    fn sel(l: Option<&str>, f: Option<&str>) -> Selector {
        Selector::parse(l, f, Kind::PODS.info()).expect("valid selector")
    }

    #[test]
    fn label_requirements() {
        let o = Obj {
            labels: vec![("app", "web"), ("tier", "front")],
            node: "n1",
        };
        assert!(sel(Some("app=web"), None).matches(&o));
        assert!(sel(Some("app==web,tier"), None).matches(&o));
        assert!(!sel(Some("app!=web"), None).matches(&o));
        assert!(sel(Some("app!=db, !missing"), None).matches(&o));
        assert!(!sel(Some("!app"), None).matches(&o));
        assert!(sel(Some("app in (db, web)"), None).matches(&o));
        assert!(!sel(Some("app notin (web)"), None).matches(&o));
        assert!(sel(Some("missing notin (web)"), None).matches(&o));
        assert!(sel(Some("example.com/x!=y"), None).matches(&o));
        assert!(sel(Some(""), None).is_empty());
    }

    #[test]
    fn field_requirements() {
        let o = Obj {
            labels: vec![],
            node: "n1",
        };
        assert!(sel(None, Some("spec.nodeName=n1")).matches(&o));
        assert!(sel(None, Some("spec.nodeName==n1,metadata.name=p1")).matches(&o));
        assert!(!sel(None, Some("spec.nodeName!=n1")).matches(&o));
        assert!(sel(None, Some("status.phase=")).matches(&o));
    }

    #[test]
    fn rejects_bad_input() {
        let pods = Kind::PODS.info();
        for bad in ["app=(", "=x", "a b", "app in x", "app=web!"] {
            assert!(
                Selector::parse(Some(bad), None, pods).is_err(),
                "accepted {bad}"
            );
        }
        assert!(Selector::parse(None, Some("nodeName"), pods).is_err());
        assert_eq!(
            Selector::parse(None, Some("spec.foo=x"), pods),
            Err(SelectorError::UnsupportedField("spec.foo".into()))
        );
        assert!(Selector::parse(None, Some("spec.nodeName=x"), Kind::NODES.info()).is_err());
    }
}
