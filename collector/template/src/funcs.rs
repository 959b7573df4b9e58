//! Prometheus's and Alertmanager's template functions.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::builtins::query_escape;
use crate::format::{format_float, print_value, quote, type_name};
use crate::{Funcs, Value, time};

type Result<T> = std::result::Result<T, String>;

fn want(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// A string argument, refused as Go refuses other types for a string parameter.
fn string_arg(v: &Value) -> Result<&str> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Nil => Err("invalid value; expected string".into()),
        v => Err(format!(
            "wrong type for value; expected string; got {}",
            type_name(v)
        )),
    }
}

/// Go's strconv.ParseFloat, with its messages.
fn parse_float(s: &str) -> Result<f64> {
    let bad = |why: &str| format!("strconv.ParseFloat: parsing {}: {why}", quote(s, false));
    let v: f64 = s.parse().map_err(|_| bad("invalid syntax"))?;
    let spelled_inf = s.trim_start_matches(['+', '-']).starts_with(['i', 'I']);
    if v.is_infinite() && !spelled_inf {
        return Err(bad("value out of range"));
    }
    Ok(v)
}

/// Prometheus's convertToFloat: numbers, and strings that parse as one.
fn to_float(v: &Value) -> Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_float(s),
        v => Err(format!("can't convert {} to float", type_name(v))),
    }
}

fn g4(v: f64) -> String {
    format_float(v, b'g', 4)
}

fn one_float(name: &str, args: &[Value]) -> Result<f64> {
    want(name, args, 1)?;
    to_float(&args[0])
}

fn humanize(args: &[Value]) -> Result<Value> {
    let mut v = one_float("humanize", args)?;
    if v == 0.0 || !v.is_finite() {
        return Ok(Value::Str(g4(v)));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(Value::Str(format!("{}{prefix}", g4(v))))
}

fn humanize1024(args: &[Value]) -> Result<Value> {
    let mut v = one_float("humanize1024", args)?;
    if v.abs() <= 1.0 || !v.is_finite() {
        return Ok(Value::Str(g4(v)));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    Ok(Value::Str(format!("{}{prefix}", g4(v))))
}

fn humanize_duration(args: &[Value]) -> Result<Value> {
    let mut v = one_float("humanizeDuration", args)?;
    if !v.is_finite() {
        return Ok(Value::Str(g4(v)));
    }
    if v == 0.0 {
        return Ok(Value::Str(format!("{}s", g4(v))));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let total = v as i64;
        let (days, hours, minutes, seconds) = (
            total / 86_400,
            total / 3600 % 24,
            total / 60 % 60,
            total % 60,
        );
        let s = if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
        return Ok(Value::Str(s));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(Value::Str(format!("{}{prefix}s", g4(v))))
}

fn humanize_percentage(args: &[Value]) -> Result<Value> {
    let v = one_float("humanizePercentage", args)?;
    Ok(Value::Str(format!("{}%", g4(v * 100.0))))
}

/// Seconds as Prometheus turns them into a time: whole milliseconds.
fn float_to_time(v: f64) -> Result<(i64, u32)> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            print_value(&Value::Float(v))
        ));
    }
    let ms = (ns as i64) / 1_000_000;
    Ok((
        ms.div_euclid(1000),
        (ms.rem_euclid(1000) * 1_000_000) as u32,
    ))
}

fn humanize_timestamp(args: &[Value]) -> Result<Value> {
    let v = one_float("humanizeTimestamp", args)?;
    if !v.is_finite() {
        return Ok(Value::Str(g4(v)));
    }
    let (secs, nanos) = float_to_time(v)?;
    Ok(Value::Str(time::go_string(secs, nanos)))
}

/// Prometheus returns a Go time here; its methods (`.Format`, `.Unix`)
/// are not available, but it prints the same.
fn to_time(args: &[Value]) -> Result<Value> {
    let v = one_float("toTime", args)?;
    if !v.is_finite() {
        return Err("value is NaN or Inf".into());
    }
    let (secs, nanos) = float_to_time(v)?;
    Ok(Value::Str(time::go_string(secs, nanos)))
}

/// Prometheus's sample shape: a map with `Labels` and `Value`.
fn sample_labels<'v>(name: &str, v: &'v Value) -> Result<Option<&'v BTreeMap<String, Value>>> {
    match v {
        Value::Map(m) => Ok(match m.get("Labels") {
            Some(Value::Map(l)) => Some(l),
            _ => None,
        }),
        v => Err(format!(
            "{name} expects a query result sample, got {}",
            type_name(v)
        )),
    }
}

fn label_of(labels: Option<&BTreeMap<String, Value>>, name: &str) -> String {
    match labels.and_then(|l| l.get(name)) {
        Some(Value::Str(s)) => s.clone(),
        Some(v) => print_value(v),
        None => String::new(),
    }
}

fn first(args: &[Value]) -> Result<Value> {
    want("first", args, 1)?;
    match &args[0] {
        Value::List(items, _) => items
            .first()
            .cloned()
            .ok_or_else(|| "first() called on vector with no elements".to_string()),
        v => Err(format!(
            "first expects a query result, got {}",
            type_name(v)
        )),
    }
}

fn label(args: &[Value]) -> Result<Value> {
    want("label", args, 2)?;
    let name = string_arg(&args[0])?;
    let labels = sample_labels("label", &args[1])?;
    Ok(Value::Str(label_of(labels, name)))
}

fn value(args: &[Value]) -> Result<Value> {
    want("value", args, 1)?;
    match &args[0] {
        Value::Map(m) => Ok(m.get("Value").cloned().unwrap_or(Value::Nil)),
        v => Err(format!(
            "value expects a query result sample, got {}",
            type_name(v)
        )),
    }
}

fn strvalue(args: &[Value]) -> Result<Value> {
    want("strvalue", args, 1)?;
    let labels = sample_labels("strvalue", &args[0])?;
    Ok(Value::Str(label_of(labels, "__value__")))
}

fn sort_by_label(args: &[Value]) -> Result<Value> {
    want("sortByLabel", args, 2)?;
    let name = string_arg(&args[0])?;
    let Value::List(items, named) = &args[1] else {
        return Err(format!(
            "sortByLabel expects a query result, got {}",
            type_name(&args[1])
        ));
    };
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        keyed.push((
            label_of(sample_labels("sortByLabel", item)?, name),
            item.clone(),
        ));
    }
    // Stable, as Prometheus's sort.Stable.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::List(
        keyed.into_iter().map(|(_, v)| v).collect(),
        named.clone(),
    ))
}

fn args_map(args: &[Value]) -> Result<Value> {
    Ok(Value::Map(
        args.iter()
            .enumerate()
            .map(|(i, a)| (format!("arg{i}"), a.clone()))
            .collect(),
    ))
}

/// Compiled patterns, shared by all renders: templates use a handful of
/// constant patterns, and compiling one per call would dominate a loop.
static REGEXES: Mutex<Vec<(String, regex::Regex)>> = Mutex::new(Vec::new());
const REGEX_CACHE: usize = 64;

fn compile(pattern: &str) -> Result<regex::Regex> {
    if let Ok(cache) = REGEXES.lock()
        && let Some((_, re)) = cache.iter().find(|(p, _)| p == pattern)
    {
        return Ok(re.clone());
    }
    // A smaller compiled-size cap than the crate's default bounds the time
    // a hostile pattern can take to compile.
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("error parsing regexp {}: {e}", quote(pattern, false)))?;
    if let Ok(mut cache) = REGEXES.lock() {
        if cache.len() >= REGEX_CACHE {
            cache.remove(0);
        }
        cache.push((pattern.to_string(), re.clone()));
    }
    Ok(re)
}

fn re_replace_all(args: &[Value]) -> Result<Value> {
    want("reReplaceAll", args, 3)?;
    let re = compile(string_arg(&args[0])?)?;
    let repl = string_arg(&args[1])?;
    let text = string_arg(&args[2])?;
    Ok(Value::Str(re.replace_all(text, repl).into_owned()))
}

fn matches(args: &[Value]) -> Result<Value> {
    want("match", args, 2)?;
    let re = compile(string_arg(&args[0])?)?;
    Ok(Value::Bool(re.is_match(string_arg(&args[1])?)))
}

fn string_fn(
    name: &'static str,
    f: fn(&str) -> String,
) -> impl Fn(&[Value]) -> Result<Value> + Send + Sync + 'static {
    move |args: &[Value]| {
        want(name, args, 1)?;
        Ok(Value::Str(f(string_arg(&args[0])?)))
    }
}

/// Go's per-rune case mapping: characters whose mapping is not a single
/// character (ß) stay as they are.
fn map_chars(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn to_upper(s: &str) -> String {
    map_chars(s, true)
}

fn to_lower(s: &str) -> String {
    map_chars(s, false)
}

fn to_title_char(c: char) -> String {
    let m: Vec<char> = c.to_uppercase().collect();
    if m.len() == 1 {
        m.into_iter().collect()
    } else {
        c.to_string()
    }
}

/// Characters that join the letters on either side into one word, as
/// Unicode's word breaking treats them (don't, e.g.).
fn is_mid_letter(c: char) -> bool {
    matches!(c, '\'' | '.' | ':' | '\u{2019}' | '\u{B7}' | '\u{2027}')
}

/// golang.org/x/text/cases Title: the first cased letter of each word
/// upper-cased; the rest lower-cased too unless `keep_rest` (Prometheus
/// uses cases.NoLower, Alertmanager does not).
fn title(s: &str, keep_rest: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    let mut prev_mid = false;
    for c in s.chars() {
        let mid = is_mid_letter(c);
        if prev_mid && mid {
            in_word = false;
        }
        if c.is_lowercase() || c.is_uppercase() {
            if in_word {
                if keep_rest {
                    out.push(c);
                } else {
                    out.push_str(&to_lower(&c.to_string()));
                }
            } else {
                out.push_str(&to_title_char(c));
                in_word = true;
            }
        } else {
            out.push(c);
            if !(c.is_alphanumeric() || c == '_' || mid) {
                in_word = false;
            }
        }
        prev_mid = mid;
    }
    out
}

/// Go's net.SplitHostPort.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, inner_start) = if let Some(rest) = hp.strip_prefix('[') {
        let end = rest.find(']')? + 1;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0)
    };
    let start = usize::from(hp.starts_with('['));
    if hp[start..].contains('[') || hp[inner_start..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_port(s: &str) -> String {
    split_host_port(s).map_or(s, |(h, _)| h).to_string()
}

fn strip_domain(s: &str) -> String {
    let (host, port) = split_host_port(s).unwrap_or((s, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn graph_link(expr: &str) -> String {
    format!("/graph?g0.expr={}&g0.tab=0", query_escape(expr))
}

fn table_link(expr: &str) -> String {
    format!("/graph?g0.expr={}&g0.tab=1", query_escape(expr))
}

/// Prometheus's model.ParseDuration, in seconds.
fn parse_duration(args: &[Value]) -> Result<Value> {
    want("parseDuration", args, 1)?;
    let s = string_arg(&args[0])?;
    let invalid = || format!("not a valid duration string: {}", quote(s, false));
    match s {
        "0" => return Ok(Value::Float(0.0)),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1_000_000_000),
        ("w", 7 * 24 * 3600 * 1_000_000_000),
        ("d", 24 * 3600 * 1_000_000_000),
        ("h", 3600 * 1_000_000_000),
        ("m", 60 * 1_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit = None;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(invalid());
        }
        let v: u64 = rest[..n].parse().map_err(|_| invalid())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if u == 0 {
            return Err(invalid());
        }
        let unit = &rest[..u];
        rest = &rest[u..];
        let Some(pos) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                quote(unit, false),
                quote(s, false)
            ));
        };
        // Units go from biggest to smallest, each at most once.
        if last_unit.is_some_and(|l| pos <= l) {
            return Err(invalid());
        }
        last_unit = Some(pos);
        total = v
            .checked_mul(UNITS[pos].1)
            .and_then(|x| total.checked_add(x))
            .filter(|&t| t <= i64::MAX as u64)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(Value::Float(total as f64 / 1e9))
}

pub(crate) fn add_prometheus(f: &mut Funcs<'_>) {
    f.insert("humanize", Box::new(humanize));
    f.insert("humanize1024", Box::new(humanize1024));
    f.insert("humanizeDuration", Box::new(humanize_duration));
    f.insert("humanizePercentage", Box::new(humanize_percentage));
    f.insert("humanizeTimestamp", Box::new(humanize_timestamp));
    f.insert("toTime", Box::new(to_time));
    f.insert("first", Box::new(first));
    f.insert("label", Box::new(label));
    f.insert("value", Box::new(value));
    f.insert("strvalue", Box::new(strvalue));
    f.insert("sortByLabel", Box::new(sort_by_label));
    f.insert("args", Box::new(args_map));
    f.insert("reReplaceAll", Box::new(re_replace_all));
    f.insert("match", Box::new(matches));
    f.insert("safeHtml", Box::new(string_fn("safeHtml", str::to_string)));
    f.insert("title", Box::new(string_fn("title", |s| title(s, true))));
    f.insert("toUpper", Box::new(string_fn("toUpper", to_upper)));
    f.insert("toLower", Box::new(string_fn("toLower", to_lower)));
    f.insert("stripPort", Box::new(string_fn("stripPort", strip_port)));
    f.insert(
        "stripDomain",
        Box::new(string_fn("stripDomain", strip_domain)),
    );
    f.insert("graphLink", Box::new(string_fn("graphLink", graph_link)));
    f.insert("tableLink", Box::new(string_fn("tableLink", table_link)));
    f.insert("parseDuration", Box::new(parse_duration));
}

fn join(args: &[Value]) -> Result<Value> {
    want("join", args, 2)?;
    // Alertmanager's order is (sep, list) so that `list | join sep`
    // reads naturally; the other order is taken too.
    let (sep, list) = match (&args[0], &args[1]) {
        (Value::Str(sep), Value::List(items, _)) | (Value::List(items, _), Value::Str(sep)) => {
            (sep, items)
        }
        (a, b) => {
            return Err(format!(
                "join takes a separator and a list of strings, got {} and {}",
                type_name(a),
                type_name(b)
            ));
        }
    };
    let parts: Vec<&str> = list.iter().map(string_arg).collect::<Result<_>>()?;
    Ok(Value::Str(parts.join(sep)))
}

fn string_slice(args: &[Value]) -> Result<Value> {
    let items = args
        .iter()
        .map(|a| string_arg(a).map(Value::from))
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::list(items))
}

/// Unix milliseconds, the form times take in notification data.
fn time_arg(v: &Value) -> Result<(i64, u32)> {
    match v {
        Value::Int(ms) => Ok((
            ms.div_euclid(1000),
            (ms.rem_euclid(1000) * 1_000_000) as u32,
        )),
        v => Err(format!(
            "expected a time in Unix milliseconds, got {}",
            type_name(v)
        )),
    }
}

fn date(args: &[Value]) -> Result<Value> {
    want("date", args, 2)?;
    let layout = string_arg(&args[0])?;
    let (secs, nanos) = time_arg(&args[1])?;
    Ok(Value::Str(time::format(secs, nanos, layout)))
}

/// Only UTC: there is no time zone database here.
fn tz(args: &[Value]) -> Result<Value> {
    want("tz", args, 2)?;
    let name = string_arg(&args[0])?;
    time_arg(&args[1])?;
    if name != "UTC" && !name.is_empty() {
        return Err(format!("unknown time zone {name} (only UTC is supported)"));
    }
    Ok(args[1].clone())
}

/// Go's url.QueryUnescape.
fn url_unescape(args: &[Value]) -> Result<Value> {
    want("urlUnescape", args, 1)?;
    let s = string_arg(&args[0])?;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let Some(v) = hex.and_then(|h| {
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| !h.starts_with('+'))
                }) else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {}", quote(&bad, false)));
                };
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()))
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go escapes these so JSON can sit inside HTML and JavaScript.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's encoding/json number form: fixed unless tiny or huge.
fn json_float(v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(format!(
            "json: unsupported value: {}",
            format_float(v, b'g', -1)
        ));
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_float(v, b'e', -1);
        // e-07 → e-7, as Go's encoder writes it.
        return Ok(match s.find("e-0").or_else(|| s.find("e+0")) {
            Some(i) => format!("{}{}", &s[..i + 2], &s[i + 3..]),
            None => s,
        });
    }
    Ok(format_float(v, b'f', -1))
}

fn json_value(out: &mut String, v: &Value) -> Result<()> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)?),
        Value::Str(s) => json_string(out, s),
        Value::List(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(out, item)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_value(out, item)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn to_json(args: &[Value]) -> Result<Value> {
    want("toJson", args, 1)?;
    let mut out = String::new();
    json_value(&mut out, &args[0])?;
    Ok(Value::Str(out))
}

pub(crate) fn add_alertmanager(f: &mut Funcs<'_>) {
    f.insert("toUpper", Box::new(string_fn("toUpper", to_upper)));
    f.insert("toLower", Box::new(string_fn("toLower", to_lower)));
    f.insert("title", Box::new(string_fn("title", |s| title(s, false))));
    f.insert(
        "trimSpace",
        Box::new(string_fn("trimSpace", |s| s.trim().to_string())),
    );
    f.insert("join", Box::new(join));
    f.insert("match", Box::new(matches));
    f.insert("safeHtml", Box::new(string_fn("safeHtml", str::to_string)));
    f.insert("safeUrl", Box::new(string_fn("safeUrl", str::to_string)));
    f.insert("urlUnescape", Box::new(url_unescape));
    f.insert("reReplaceAll", Box::new(re_replace_all));
    f.insert("stringSlice", Box::new(string_slice));
    f.insert("date", Box::new(date));
    f.insert("tz", Box::new(tz));
    f.insert("humanizeDuration", Box::new(humanize_duration));
    f.insert("toJson", Box::new(to_json));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    fn one(f: fn(&[Value]) -> Result<Value>, v: Value) -> String {
        match f(&[v]) {
            Ok(Value::Str(s)) => s,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn humanize_like_prometheus() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (1234567.0, "1.235M"),
            (0.12, "120m"),
            (0.001234, "1.234m"),
            (-1.0, "-1"),
            (i64::MAX as f64, "9.223E"),
            (u64::MAX as f64, "18.45E"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(one(humanize, Value::Float(*v)), *want, "{v}");
        }
        assert_eq!(one(humanize, s("1234567.0")), "1.235M");
        assert_eq!(one(humanize, s(".12")), "120m");
        assert_eq!(
            humanize(&[s("one")]),
            Err("strconv.ParseFloat: parsing \"one\": invalid syntax".to_string())
        );
        assert_eq!(one(humanize, s("+Inf")), "+Inf");
    }

    #[test]
    fn humanize1024_like_prometheus() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (1048576.0, "1Mi"),
            (0.12, "0.12"),
            (1234567.0, "1.177Mi"),
        ] {
            assert_eq!(one(humanize1024, Value::Float(v)), want, "{v}");
        }
        assert_eq!(one(humanize1024, Value::Int(i64::MAX)), "8Ei");
    }

    #[test]
    fn humanize_duration_like_prometheus() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0s"),
            (1.0, "1s"),
            (60.0, "1m 0s"),
            (3600.0, "1h 0m 0s"),
            (86400.0, "1d 0h 0m 0s"),
            (86400.0 + 3600.0, "1d 1h 0m 0s"),
            (
                -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
                "-2d 3h 4m 5s",
            ),
            (899.99, "14m 59s"),
            (3725.0, "1h 2m 5s"),
            (0.1, "100ms"),
            (0.5, "500ms"),
            (0.0001, "100us"),
            (0.12345, "123.5ms"),
            (60.1, "1m 0s"),
            (1.2345, "1.234s"),
            (12.345, "12.35s"),
            (1234567.0, "14d 6h 56m 7s"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(one(humanize_duration, Value::Float(*v)), *want, "{v}");
        }
        assert_eq!(one(humanize_duration, s("43200")), "12h 0m 0s");
        assert_eq!(one(humanize_duration, Value::Int(-1)), "-1s");
    }

    #[test]
    fn percentage_and_timestamps() {
        for (v, want) in [
            (-0.22222, "-22.22%"),
            (0.0, "0%"),
            (0.1234567, "12.35%"),
            (1.23456, "123.5%"),
            (0.01562, "1.562%"),
        ] {
            assert_eq!(one(humanize_percentage, Value::Float(v)), want);
        }
        assert_eq!(one(humanize_percentage, Value::Int(1234567)), "1.235e+08%");
        assert_eq!(
            one(humanize_timestamp, Value::Float(1435065584.128)),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            one(humanize_timestamp, s("1435065584.128")),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            one(humanize_timestamp, Value::Int(-1)),
            "1969-12-31 23:59:59 +0000 UTC"
        );
        assert_eq!(
            one(humanize_timestamp, Value::Int(9223372036)),
            "2262-04-11 23:47:16 +0000 UTC"
        );
        assert_eq!(
            humanize_timestamp(&[Value::Int(i64::MIN)]),
            Err("-9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64".into())
        );
        assert_eq!(one(humanize_timestamp, Value::Float(f64::NAN)), "NaN");
    }

    #[test]
    fn strings() {
        assert_eq!(title("aa bb CC", true), "Aa Bb CC");
        assert_eq!(title("aa bb CC", false), "Aa Bb Cc");
        assert_eq!(title("foo-bar don't 3am", true), "Foo-Bar Don't 3Am");
        assert_eq!(to_upper("straße"), "STRAßE");
        for (input, port, domain) in [
            ("foo.example.com", "foo.example.com", "foo"),
            ("foo.example.com:12345", "foo.example.com", "foo:12345"),
            ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
            ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
            (
                "[2001:0DB8::1]:12345",
                "2001:0DB8::1",
                "[2001:0DB8::1]:12345",
            ),
            (
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
            ),
        ] {
            assert_eq!(strip_port(input), port, "{input}");
            assert_eq!(strip_domain(input), domain, "{input}");
        }
        assert_eq!(graph_link("up"), "/graph?g0.expr=up&g0.tab=0");
        assert_eq!(re_replace_all(&[s("(a)b"), s("x$1"), s("ab")]), Ok(s("xa")));
        assert!(
            re_replace_all(&[s("("), s(""), s("")])
                .is_err_and(|e| e.contains("error parsing regexp"))
        );
        assert_eq!(matches(&[s("a+"), s("baa")]), Ok(Value::Bool(true)));
        assert!(to_upper_fn_rejects_numbers());
    }

    fn to_upper_fn_rejects_numbers() -> bool {
        let f = string_fn("toUpper", to_upper);
        f(&[Value::Float(1.0)]) == Err("wrong type for value; expected string; got float64".into())
    }

    #[test]
    fn durations() {
        let d = |x: &str| parse_duration(&[s(x)]);
        assert_eq!(d("1h2m10ms"), Ok(Value::Float(3720.01)));
        assert_eq!(d("0"), Ok(Value::Float(0.0)));
        assert_eq!(d("1w1d"), Ok(Value::Float(8.0 * 86400.0)));
        assert!(d("").is_err());
        assert!(d("1m1h").is_err_and(|e| e.contains("not a valid duration")));
        assert!(d("5x").is_err_and(|e| e.contains("unknown unit")));
        assert!(d("99999999999y").is_err_and(|e| e.contains("out of range")));
    }

    #[test]
    fn alertmanager_helpers() {
        let list = Value::list([s("a"), s("b")]);
        assert_eq!(join(&[s(", "), list.clone()]), Ok(s("a, b")));
        assert_eq!(join(&[list, s("-")]), Ok(s("a-b")));
        assert_eq!(
            string_slice(&[s("x"), s("y")]),
            Ok(Value::list([s("x"), s("y")]))
        );
        assert_eq!(
            date(&[s("2006-01-02 15:04:05"), Value::Int(1_435_065_584_128)]),
            Ok(s("2015-06-23 13:19:44"))
        );
        assert!(tz(&[s("Europe/Paris"), Value::Int(0)]).is_err());
        assert_eq!(url_unescape(&[s("a+b%2Fc")]), Ok(s("a b/c")));
        assert!(url_unescape(&[s("%zz")]).is_err());
        let data = Value::map([
            ("b", Value::Float(1.5)),
            ("a", s("<x>")),
            ("c", Value::Float(1e-7)),
        ]);
        assert_eq!(
            to_json(&[data]),
            Ok(s(r#"{"a":"\u003cx\u003e","b":1.5,"c":1e-7}"#))
        );
    }
}
