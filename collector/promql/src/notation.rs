//! The series notation of Prometheus's test formats, shared by PromQL test
//! scripts (`load` blocks, expected results) and `promtool test rules`
//! files (`input_series`): `1 2 _ stale 0+10x3 _x2 1x2`, where `a+bxn`
//! gives n+1 values starting at a, `_xn` gives n blanks, and `{{...}}`
//! stands for a native-histogram sample.

use lookout_protocol::{Label, Labels};

/// One value of a sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seq {
    Value(f64),
    /// A stale marker.
    Stale,
    /// No sample at this step.
    Blank,
    /// A native-histogram sample, which the store does not hold.
    Histogram,
}

/// Splits `metric{a="b"} rest` into the series part and the rest, with
/// quotes respected.
pub fn split_series(line: &str) -> (&str, &str) {
    let mut in_quote = false;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in line.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], &line[i + 1..]);
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], &line[i..]),
            _ => {}
        }
    }
    (line, "")
}

/// Label set of a series descriptor such as `m{a="b"}` or `{__name__="m"}`.
pub fn parse_labels(desc: &str) -> Option<Labels> {
    let desc = desc.trim();
    if desc == "{}" {
        return Some(Labels::new());
    }
    let expr = promql_parser::parser::parse(desc).ok()?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return None;
    };
    let mut v: Vec<Label> = Vec::new();
    if let Some(n) = &vs.name {
        v.push(Label::new("__name__", n.as_str()));
    }
    for m in vs.matchers.matchers.iter().filter(|m| !m.value.is_empty()) {
        v.push(Label::new(m.name.as_str(), m.value.as_str()));
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Labels::from(v))
}

pub fn parse_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Expands series notation: `1 2 _ stale 0+10x3 _x2 1x2 {{...}}x2`.
pub fn parse_values(s: &str) -> Option<Vec<Seq>> {
    let mut out = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    // Histograms `{{...}}` may hold spaces: keep them as one token.
    let mut rest = s.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            let end = rest.find("}}")? + 2;
            let mut tok_end = end;
            // `{{..}}x3` or `{{..}}+{{..}}x3`
            while tok_end < rest.len() && !rest[tok_end..].starts_with(char::is_whitespace) {
                if rest[tok_end..].starts_with("{{") {
                    tok_end += rest[tok_end..].find("}}")? + 2;
                } else {
                    tok_end += rest[tok_end..].chars().next()?.len_utf8();
                }
            }
            tokens.push(rest[..tok_end].to_string());
            rest = rest[tok_end..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            tokens.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    for tok in tokens {
        if tok.starts_with("{{") {
            let times = match tok.rfind("}}x") {
                Some(p) => tok[p + 3..].parse::<usize>().ok()? + 1,
                None => 1,
            };
            out.extend(std::iter::repeat_n(Seq::Histogram, times));
            continue;
        }
        if tok == "_" {
            out.push(Seq::Blank);
            continue;
        }
        if tok == "stale" {
            out.push(Seq::Stale);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(Seq::Blank, n.parse().ok()?));
            continue;
        }
        if let Some(v) = parse_number(&tok) {
            out.push(Seq::Value(v));
            continue;
        }
        // a+bxn, a-bxn, axn
        let x = tok.rfind('x')?;
        let times: usize = tok[x + 1..].parse().ok()?;
        let head = &tok[..x];
        // Find the sign that separates start and increment (not a leading
        // sign, not an exponent's sign).
        let bytes = head.as_bytes();
        let mut split = None;
        for i in 1..bytes.len() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
            }
        }
        let (mut start, step) = match split {
            Some(i) => (parse_number(&head[..i])?, parse_number(&head[i..])?),
            None => (parse_number(head)?, 0.0),
        };
        for _ in 0..=times {
            out.push(Seq::Value(start));
            start += step;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation_expands() {
        let v = parse_values("0+10x2 _ stale 1x1 _x2 -1-1x1").unwrap_or_default();
        let s: Vec<String> = v
            .iter()
            .map(|x| match x {
                Seq::Value(f) => f.to_string(),
                Seq::Stale => "stale".into(),
                Seq::Blank => "_".into(),
                Seq::Histogram => "h".into(),
            })
            .collect();
        assert_eq!(
            s,
            [
                "0", "10", "20", "_", "stale", "1", "1", "_", "_", "-1", "-2"
            ]
        );
    }
}
