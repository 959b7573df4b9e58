//! Duration arithmetic in ranges, subquery steps and offsets
//! (`foo[5m+1m]`, `[1h/2:10s*3]`, `offset (2 * 2)`), which Prometheus 3
//! accepts and the pinned parser does not: such expressions are computed
//! here and written back as plain millisecond durations before parsing.

use std::borrow::Cow;

use crate::error::{QueryError, Result};

/// Returns the query with every duration expression replaced by its value.
pub fn rewrite(query: &str) -> Result<Cow<'_, str>> {
    if !query.contains('[') && !query.contains("offset") && !query.contains('@') {
        return Ok(Cow::Borrowed(query));
    }
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            let end = skip_string(b, i);
            out.push_str(&query[i..end]);
            i = end;
            continue;
        }
        if c == b'#' {
            // A comment runs to the end of the line.
            let end = query[i..].find('\n').map_or(b.len(), |p| i + p);
            out.push_str(&query[i..end]);
            i = end;
            continue;
        }
        if c == b'[' {
            let Some(close) = query[i..].find(']').map(|p| i + p) else {
                out.push_str(&query[i..]);
                break;
            };
            let inner = &query[i + 1..close];
            let mut parts = Vec::new();
            for part in split_top_level(inner, ':') {
                let t = part.trim();
                if t.is_empty() || is_plain(t) {
                    check_range(t, plain_secs(t))?;
                    parts.push(part.to_string());
                } else {
                    let secs = eval(t)?;
                    check_range(t, Some(secs))?;
                    if secs <= 0.0 {
                        return Err(QueryError::bad_data(format!(
                            "duration expression {t:?} must be positive, got {secs}s"
                        )));
                    }
                    parts.push(format!("{}ms", (secs * 1000.0).round() as i64));
                    changed = true;
                }
            }
            out.push('[');
            out.push_str(&parts.join(":"));
            out.push(']');
            i = close + 1;
            continue;
        }
        if query[i..].starts_with("offset")
            && (i == 0 || !is_word(b[i - 1]))
            && b.get(i + 6).is_none_or(|&n| !is_word(n))
        {
            let mut j = i + 6;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let neg = b.get(j) == Some(&b'-');
            let k = if neg { skip_ws(b, j + 1) } else { j };
            if b.get(k) == Some(&b'(')
                && let Some(close) = matching_paren(b, k)
            {
                let mut secs = eval(&query[k + 1..close])?;
                check_range(&query[k + 1..close], Some(secs))?;
                if neg {
                    secs = -secs;
                }
                let ms = (secs * 1000.0).round() as i64;
                if ms < 0 {
                    out.push_str(&format!("offset -{}ms", -ms));
                } else {
                    out.push_str(&format!("offset {ms}ms"));
                }
                i = close + 1;
                changed = true;
                continue;
            }
        }
        if c == b'@' || (query[i..].starts_with("offset") && (i == 0 || !is_word(b[i - 1]))) {
            // A plain number after `@` or `offset`: the parser panics on
            // values too large for a duration or time, so they are refused
            // here first.
            let start = if c == b'@' { i + 1 } else { i + 6 };
            let mut j = skip_ws(b, start);
            if b.get(j) == Some(&b'-') || b.get(j) == Some(&b'+') {
                j += 1;
            }
            let end = (j..b.len())
                .find(|&k| !(b[k].is_ascii_alphanumeric() || b[k] == b'.'))
                .unwrap_or(b.len());
            let token = &query[j..end];
            if !token.is_empty() && token.as_bytes()[0].is_ascii_digit() {
                check_range(token, plain_secs(token).or(Some(f64::INFINITY)))?;
            }
        }
        let ch = query[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(query)
    })
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn skip_ws(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    j
}

fn skip_string(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn matching_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut last = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[last..]);
    out
}

/// Seconds of a plain number or duration.
fn plain_secs(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().or_else(|| duration_secs(s))
}

/// Durations and times beyond about 3,000 years are refused: the parser
/// cannot represent them and would panic.
fn check_range(text: &str, secs: Option<f64>) -> Result<()> {
    match secs {
        Some(v) if v.is_finite() && v.abs() <= 1e11 => Ok(()),
        None => Ok(()),
        Some(_) => Err(QueryError::bad_data(format!(
            "duration or time {text:?} is out of range"
        ))),
    }
}

/// A duration or number the parser reads itself.
fn is_plain(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && (s.parse::<f64>().is_ok() || duration_secs(s).is_some())
}

/// A duration as Prometheus's API and scripts take it: `1h30m`, `500ms`,
/// or seconds (`15`, `0.5`, `-2`); milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs.abs() < 9.2e15).then(|| (secs * 1000.0).round() as i64);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let ms = (duration_secs(body)? * 1000.0).round() as i64;
    Some(if neg { -ms } else { ms })
}

/// `1h30m`, `500ms`: seconds.
fn duration_secs(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    Some(total)
}

/// Evaluates duration arithmetic; the answer is in seconds.
fn eval(s: &str) -> Result<f64> {
    let tokens = tokenize(s)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        src: s,
    };
    let v = p.sum()?;
    if p.pos != p.tokens.len() {
        return Err(p.error());
    }
    Ok(v)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Op(char),
}

fn tokenize(s: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if "+-*/%^()".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            let word = &s[start..i];
            let v = word
                .parse::<f64>()
                .ok()
                .or_else(|| duration_secs(word))
                .ok_or_else(|| {
                    QueryError::bad_data(format!("invalid duration {word:?} in {s:?}"))
                })?;
            out.push(Tok::Num(v));
        } else {
            return Err(QueryError::bad_data(format!(
                "unexpected character {c:?} in duration expression {s:?}"
            )));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn error(&self) -> QueryError {
        QueryError::bad_data(format!("invalid duration expression {:?}", self.src))
    }

    fn peek_op(&self) -> Option<char> {
        match self.tokens.get(self.pos) {
            Some(Tok::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<f64> {
        let mut v = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64> {
        let mut v = self.unary()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek_op() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                '*' => v * r,
                '/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    /// Unary signs bind looser than `^`, as in PromQL: `-2 ^ 2` is -4.
    fn unary(&mut self) -> Result<f64> {
        match self.peek_op() {
            Some('-') => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some('+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64> {
        let base = self.atom()?;
        if self.peek_op() == Some('^') {
            self.pos += 1;
            let exp = self.unary()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64> {
        match self.tokens.get(self.pos).cloned() {
            Some(Tok::Num(v)) => {
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::Op('(')) => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek_op() != Some(')') {
                    return Err(self.error());
                }
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_steps_and_offsets_are_computed() {
        assert_eq!(rewrite("rate(x[5m])").ok().as_deref(), Some("rate(x[5m])"));
        assert_eq!(
            rewrite("changes(x[26m+4m])").ok().as_deref(),
            Some("changes(x[1800000ms])")
        );
        assert_eq!(
            rewrite("s(x[29s+1s:20*500ms] offset -(2*5s))")
                .ok()
                .as_deref(),
            Some("s(x[30000ms:10000ms] offset -10000ms)")
        );
        assert_eq!(
            rewrite("x offset (-2 ^ 2)").ok().as_deref(),
            Some("x offset -4000ms")
        );
        assert_eq!(
            rewrite(r#"x{a="[1+1]"}"#).ok().as_deref(),
            Some(r#"x{a="[1+1]"}"#)
        );
        assert!(rewrite("x[1m-2m]").is_err());
        assert!(rewrite("x[1m+]").is_err());
        assert!(rewrite(&format!("x[{}]", "7".repeat(90))).is_err());
        assert!(rewrite(&format!("x offset {}", "9".repeat(40))).is_err());
        assert!(rewrite(&format!("x @ {}", "9".repeat(40))).is_err());
        assert!(rewrite("x[99999999999y]").is_err());
        assert!(rewrite("x @ start()").is_ok());
    }
}
