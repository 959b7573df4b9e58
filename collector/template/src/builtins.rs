//! Go's builtin template functions, except `and` and `or`, which the
//! executor evaluates lazily.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::Value;
use crate::exec::{V, zero_for};
use crate::format::{self, type_name};

pub(crate) const NAMES: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery",
];

fn want(name: &str, args: &[V<'_>], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_at_least(name: &str, args: &[V<'_>], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn refs<'a>(args: &'a [V<'_>]) -> Vec<&'a Value> {
    args.iter().map(|a| &**a).collect()
}

pub(crate) fn call<'d>(name: &str, mut args: Vec<V<'d>>) -> Result<V<'d>, String> {
    let owned = |v: Value| Ok(Cow::Owned(v));
    let calling = |m: String| format!("error calling {name}: {m}");
    match name {
        "not" => {
            want(name, &args, 1)?;
            owned(Value::Bool(!args[0].is_true()))
        }
        "len" => {
            want(name, &args, 1)?;
            let n = match &*args[0] {
                Value::Str(s) => s.len(),
                Value::List(items, _) => items.len(),
                Value::Map(m) => m.len(),
                Value::Nil => return Err(calling("len of nil pointer".into())),
                v => return Err(calling(format!("len of type {}", type_name(v)))),
            };
            owned(Value::Int(n as i64))
        }
        "index" => {
            want_at_least(name, &args, 1)?;
            let indexes = args.split_off(1);
            let mut item = args.pop().unwrap_or(Cow::Owned(Value::Nil));
            if matches!(*item, Value::Nil) {
                return Err(calling("index of untyped nil".into()));
            }
            for ix in &indexes {
                item = index_step(item, ix).map_err(calling)?;
            }
            Ok(item)
        }
        "slice" => {
            want_at_least(name, &args, 1)?;
            let indexes = args.split_off(1);
            let item = args.pop().unwrap_or(Cow::Owned(Value::Nil));
            slice(item, &indexes).map_err(calling)
        }
        "print" => owned(Value::Str(format::sprint(&refs(&args)))),
        "println" => owned(Value::Str(format::sprintln(&refs(&args)))),
        "printf" => {
            want_at_least(name, &args, 1)?;
            let Value::Str(f) = &*args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    type_name(&args[0])
                ));
            };
            owned(Value::Str(format::sprintf(f, &refs(&args[1..]))))
        }
        "eq" => {
            want_at_least(name, &args, 1)?;
            owned(Value::Bool(eq(&args[0], &args[1..]).map_err(calling)?))
        }
        "ne" => {
            want(name, &args, 2)?;
            owned(Value::Bool(!eq(&args[0], &args[1..]).map_err(calling)?))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(name, &args, 2)?;
            let (a, b) = (&*args[0], &*args[1]);
            let lt = less(a, b).map_err(calling)?;
            // Go derives these from lt and eq, NaN quirks included.
            let r = match name {
                "lt" => lt,
                "le" => lt || eq(&args[0], &args[1..]).map_err(calling)?,
                "gt" => !(lt || eq(&args[0], &args[1..]).map_err(calling)?),
                _ => !lt,
            };
            owned(Value::Bool(r))
        }
        "html" => owned(Value::Str(html_escape(&escaper_text(&args)))),
        "js" => owned(Value::Str(js_escape(&escaper_text(&args)))),
        "urlquery" => owned(Value::Str(query_escape(&escaper_text(&args)))),
        _ => Err(format!("{name:?} is not a defined function")),
    }
}

fn index_arg(ix: &Value, bound: usize) -> Result<usize, String> {
    match ix {
        Value::Int(x) => usize::try_from(*x)
            .ok()
            .filter(|&x| x <= bound)
            .ok_or_else(|| format!("index out of range: {x}")),
        Value::Nil => Err("cannot index slice/array with nil".into()),
        v => Err(format!(
            "cannot index slice/array with type {}",
            type_name(v)
        )),
    }
}

fn index_step<'d>(item: V<'d>, ix: &Value) -> Result<V<'d>, String> {
    let out_of_range = |i: usize| format!("index out of range: {i}");
    match item {
        Cow::Borrowed(Value::List(items, _)) => {
            let i = index_arg(ix, items.len())?;
            items
                .get(i)
                .map(Cow::Borrowed)
                .ok_or_else(|| out_of_range(i))
        }
        Cow::Owned(Value::List(items, _)) => {
            let i = index_arg(ix, items.len())?;
            items
                .into_iter()
                .nth(i)
                .map(Cow::Owned)
                .ok_or_else(|| out_of_range(i))
        }
        Cow::Borrowed(Value::Map(m)) => match ix {
            Value::Str(k) => Ok(m
                .get(k)
                .map_or_else(|| Cow::Owned(zero_for(m)), Cow::Borrowed)),
            v => Err(format!("value has type {}; should be string", type_name(v))),
        },
        Cow::Owned(Value::Map(mut m)) => match ix {
            Value::Str(k) => Ok(Cow::Owned(m.remove(k).unwrap_or_else(|| zero_for(&m)))),
            v => Err(format!("value has type {}; should be string", type_name(v))),
        },
        item => match &*item {
            Value::Str(s) => {
                let i = index_arg(ix, s.len())?;
                s.as_bytes()
                    .get(i)
                    .map(|&b| Cow::Owned(Value::Int(i64::from(b))))
                    .ok_or_else(|| out_of_range(i))
            }
            Value::Nil => Err("index of nil pointer".into()),
            v => Err(format!("can't index item of type {}", type_name(v))),
        },
    }
}

fn slice<'d>(item: V<'d>, indexes: &[V<'d>]) -> Result<V<'d>, String> {
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &*item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(items, _) => items.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", type_name(v))),
    };
    let mut idx = [0, len, len];
    for (i, ix) in indexes.iter().enumerate() {
        idx[i] = index_arg(ix, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    let (from, to) = (idx[0], idx[1]);
    Ok(Cow::Owned(match &*item {
        // Cutting inside a character leaves bytes Rust cannot hold in a
        // String; they become U+FFFD.
        Value::Str(s) => Value::Str(String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()),
        Value::List(items, _) => Value::list(items[from..to].iter().cloned()),
        _ => Value::Nil,
    }))
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Nil,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        Value::Nil => Kind::Nil,
        _ => Kind::Other,
    }
}

/// Numeric view of an int or float, for comparing across the two.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Go's eq: arg1 equals any of the rest. Unlike Go, an int and a float
/// compare by value (Go refuses them as incompatible), so `eq $value 1`
/// works on Prometheus's float $value.
fn eq(a: &Value, rest: &[V<'_>]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = kind(a);
    for b in rest {
        let b = &**b;
        let k2 = kind(b);
        let truth = match (a, b) {
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Nil, Value::Nil) => true,
            _ if matches!((k1, k2), (Kind::Int | Kind::Float, Kind::Int | Kind::Float)) => {
                num(a) == num(b)
            }
            _ if k1 == Kind::Nil || k2 == Kind::Nil => false,
            _ if k1 == Kind::Other || k2 == Kind::Other => {
                return Err(format!(
                    "non-comparable types {}: {}, {}: {}",
                    a,
                    type_name(a),
                    type_name(b),
                    b
                ));
            }
            _ => return Err("incompatible types for comparison".into()),
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    if matches!(k1, Kind::Nil | Kind::Other) || matches!(k2, Kind::Nil | Kind::Other) {
        return Err("invalid type for comparison".into());
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Bool(_), Value::Bool(_)) => Err("invalid type for comparison".into()),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y) == Some(Ordering::Less)),
            _ => Err("incompatible types for comparison".into()),
        },
    }
}

/// The text html, js and urlquery escape: a lone string as it is,
/// anything else as print would show it, nil as `<no value>`.
fn escaper_text(args: &[V<'_>]) -> String {
    if let [one] = args
        && let Value::Str(s) = &**one
    {
        return s.clone();
    }
    let no_value = Value::Str("<no value>".into());
    let shown: Vec<&Value> = args
        .iter()
        .map(|a| {
            if matches!(**a, Value::Nil) {
                &no_value
            } else {
                &**a
            }
        })
        .collect();
    format::sprint(&shown)
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) < 0x80 || format::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's url.QueryEscape.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, args: Vec<Value>) -> Result<Value, String> {
        call(name, args.into_iter().map(Cow::Owned).collect()).map(Cow::into_owned)
    }

    #[test]
    fn comparisons() {
        let i = Value::Int;
        let f = Value::Float;
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(run("eq", vec![i(1), i(2), i(1)]), Ok(Value::Bool(true)));
        assert_eq!(run("eq", vec![f(1.0), i(1)]), Ok(Value::Bool(true)));
        assert_eq!(run("eq", vec![s("a"), Value::Nil]), Ok(Value::Bool(false)));
        assert_eq!(run("ne", vec![s("a"), s("b")]), Ok(Value::Bool(true)));
        assert!(run("eq", vec![s("1"), i(1)]).is_err_and(|e| e.contains("incompatible types")));
        assert!(run("eq", vec![i(1)]).is_err_and(|e| e.contains("missing argument")));
        assert_eq!(run("lt", vec![i(1), f(1.5)]), Ok(Value::Bool(true)));
        assert_eq!(run("le", vec![s("a"), s("a")]), Ok(Value::Bool(true)));
        assert_eq!(run("gt", vec![f(2.0), i(1)]), Ok(Value::Bool(true)));
        assert_eq!(run("ge", vec![i(1), i(2)]), Ok(Value::Bool(false)));
        // Go's gt is "not le", so NaN is greater than anything.
        assert_eq!(run("gt", vec![f(f64::NAN), i(1)]), Ok(Value::Bool(true)));
        assert!(run("lt", vec![Value::Bool(true), Value::Bool(false)]).is_err());
        assert!(run("lt", vec![Value::Nil, i(1)]).is_err());
        assert!(run("lt", vec![i(1)]).is_err_and(|e| e.contains("want 2 got 1")));
    }

    #[test]
    fn index_and_slice() {
        let l = Value::list([Value::Int(10), Value::Int(20), Value::Int(30)]);
        assert_eq!(
            run("index", vec![l.clone(), Value::Int(1)]),
            Ok(Value::Int(20))
        );
        assert!(
            run("index", vec![l.clone(), Value::Int(3)])
                .is_err_and(|e| e.contains("index out of range: 3"))
        );
        assert!(run("index", vec![l.clone(), Value::Int(-1)]).is_err());
        assert_eq!(
            run("index", vec![Value::Str("abc".into()), Value::Int(1)]),
            Ok(Value::Int(98))
        );
        let m = Value::map([("a", "x")]);
        assert_eq!(
            run("index", vec![m.clone(), Value::Str("a".into())]),
            Ok(Value::Str("x".into()))
        );
        assert_eq!(
            run("index", vec![m, Value::Str("zz".into())]),
            Ok(Value::Str(String::new()))
        );
        assert_eq!(
            run("slice", vec![l.clone(), Value::Int(1)]),
            Ok(Value::list([Value::Int(20), Value::Int(30)]))
        );
        assert_eq!(
            run(
                "slice",
                vec![Value::Str("hello".into()), Value::Int(1), Value::Int(3)]
            ),
            Ok(Value::Str("el".into()))
        );
        assert!(
            run("slice", vec![l, Value::Int(2), Value::Int(1)]).is_err_and(|e| e.contains("2 > 1"))
        );
        assert!(run("slice", vec![Value::Str("é".into()), Value::Int(1)]).is_ok());
    }

    #[test]
    fn escapers() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"<=>\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            run("html", vec![Value::Nil]),
            Ok(Value::Str("&lt;no value&gt;".into()))
        );
        assert_eq!(
            run("urlquery", vec![Value::Int(1), Value::Int(2)]),
            Ok(Value::Str("1+2".into()))
        );
    }
}
