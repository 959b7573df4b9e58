//! Go's fmt (Sprint, Sprintln, Sprintf) and strconv.FormatFloat over
//! template values, so numbers print exactly as Prometheus prints them.

use std::fmt::Write as _;

use crate::Value;

/// Go caps widths and precisions at a million, printing %!(BADWIDTH)
/// beyond; the cap also keeps one verb from allocating without bound.
const MAX_WIDTH: usize = 1_000_000;

/// Go's name for the type a value would have in Prometheus or
/// Alertmanager, for `%T` and for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(..) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
    }
}

/// The decimal digits of |v| without trailing zeros, and where the point
/// goes: v = 0.d1d2d3... × 10^dp. `sig` rounds to that many significant
/// digits; None gives the shortest digits that read back as v.
fn digits(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    let a = v.abs();
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        Some(n) => format!("{:.*e}", n.saturating_sub(1), a),
        None => format!("{a:e}"),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return (Vec::new(), 0);
    }
    (d, exp + 1)
}

/// `d.ddddde±dd` with `prec` digits after the point.
fn fmt_e(out: &mut String, d: &[u8], dp: i32, prec: usize, upper: bool) {
    out.push(d.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
}

/// `ddd.ddd` with `prec` digits after the point.
fn fmt_f(out: &mut String, d: &[u8], dp: i32, prec: usize) {
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec {
            let j = i64::from(dp) + i as i64;
            let c = usize::try_from(j)
                .ok()
                .and_then(|j| d.get(j))
                .map_or('0', |&c| c as char);
            out.push(c);
        }
    }
}

/// strconv.FormatFloat(v, fmt, prec, 64) for fmt in e, E, f, g, G;
/// prec < 0 means the shortest exact representation.
pub(crate) fn format_float(v: f64, fmt: u8, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let shortest = prec < 0;
    let prec_u = prec.max(0) as usize;
    match fmt {
        b'e' | b'E' => {
            let (d, dp) = digits(v, (!shortest).then_some(prec_u + 1));
            let p = if shortest {
                d.len().saturating_sub(1)
            } else {
                prec_u
            };
            fmt_e(&mut out, &d, dp, p, fmt == b'E');
        }
        b'f' => {
            if shortest {
                let (d, dp) = digits(v, None);
                fmt_f(
                    &mut out,
                    &d,
                    dp,
                    (d.len() as i64 - i64::from(dp)).max(0) as usize,
                );
            } else {
                // Rust's fixed-point formatting rounds exactly, as Go's does.
                let _ = write!(out, "{:.*}", prec_u, v.abs());
            }
        }
        _ => {
            let upper = fmt == b'G';
            let sig = if shortest { None } else { Some(prec_u.max(1)) };
            let (d, dp) = digits(v, sig);
            let nd = d.len() as i32;
            let mut prec = if shortest { nd } else { prec.max(1) };
            let mut eprec = prec;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            // Go decides on a fixed 6 when printing the shortest form.
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                fmt_e(&mut out, &d, dp, (prec - 1).max(0) as usize, upper);
            } else {
                if prec > dp {
                    prec = nd;
                }
                fmt_f(&mut out, &d, dp, (prec - dp).max(0) as usize);
            }
        }
    }
    out
}

/// `{{ x }}` and print's rendering of one value (fmt's %v).
pub(crate) fn print_value(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

/// fmt.Sprint: spaces only between operands when neither is a string.
pub(crate) fn sprint(args: &[&Value]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// fmt.Sprintln: spaces between all operands, then a newline.
pub(crate) fn sprintln(args: &[&Value]) -> String {
    let mut p = Printer::default();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

#[derive(Clone, Copy, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

/// A width or precision written in the format, if any, and where it ends.
/// Past the cap, Go gives up on the rest of the format.
fn parse_num(b: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let mut n: usize = 0;
    let mut any = false;
    while i < b.len() && b[i].is_ascii_digit() {
        if n > MAX_WIDTH {
            return (None, b.len());
        }
        n = n * 10 + usize::from(b[i] - b'0');
        any = true;
        i += 1;
    }
    (any.then_some(n), i)
}

/// fmt.Sprintf.
pub(crate) fn sprintf(format: &str, args: &[&Value]) -> String {
    let mut p = Printer::default();
    let b = format.as_bytes();
    let end = b.len();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0usize;
    while i < end {
        let start = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > start {
            p.buf.push_str(&format[start..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < end {
            match b[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good_arg_num = true;
        let mut after_index;
        (arg_num, i, after_index) =
            arg_number(arg_num, b, i, args.len(), &mut good_arg_num, &mut reordered);
        if i < end && b[i] == b'*' {
            i += 1;
            let (w, ok, next) = int_from_arg(args, arg_num);
            arg_num = next;
            if !ok {
                p.buf.push_str("%!(BADWIDTH)");
            } else if w < 0 {
                p.f.minus = true;
                p.f.zero = false;
                p.f.wid = Some(w.unsigned_abs() as usize);
            } else {
                p.f.wid = Some(w as usize);
            }
            after_index = false;
        } else {
            let (w, next) = parse_num(b, i);
            p.f.wid = w;
            i = next;
            if after_index && w.is_some() {
                good_arg_num = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg_num = false;
            }
            (arg_num, i, after_index) =
                arg_number(arg_num, b, i, args.len(), &mut good_arg_num, &mut reordered);
            if i < end && b[i] == b'*' {
                i += 1;
                let (pr, ok, next) = int_from_arg(args, arg_num);
                arg_num = next;
                p.f.prec = (ok && pr >= 0).then_some(pr as usize);
                if p.f.prec.is_none() {
                    p.buf.push_str("%!(BADPREC)");
                }
                after_index = false;
            } else {
                let (pr, next) = parse_num(b, i);
                i = next;
                p.f.prec = Some(pr.unwrap_or(0));
            }
        }
        if !after_index {
            (arg_num, i, _) =
                arg_number(arg_num, b, i, args.len(), &mut good_arg_num, &mut reordered);
        }
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let Some(verb) = format[i..].chars().next() else {
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            p.buf.push('%');
        } else if !good_arg_num {
            let _ = write!(p.buf, "%!{verb}(BADINDEX)");
        } else if arg_num >= args.len() {
            let _ = write!(p.buf, "%!{verb}(MISSING)");
        } else {
            if verb == 'v' {
                // %+v and %#v mean struct fields and Go syntax, not flags.
                p.f.plus = false;
                p.f.sharp = false;
            }
            p.print_arg(args[arg_num], verb);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, a) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            if matches!(a, Value::Nil) {
                p.buf.push_str("<nil>");
            } else {
                p.buf.push_str(type_name(a));
                p.buf.push('=');
                p.print_arg(a, 'v');
            }
        }
        p.buf.push(')');
    }
    p.buf
}

/// `%[n]`: a one-based explicit argument index.
fn arg_number(
    arg_num: usize,
    b: &[u8],
    i: usize,
    num_args: usize,
    good: &mut bool,
    reordered: &mut bool,
) -> (usize, usize, bool) {
    if i >= b.len() || b[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    let Some(close) = b[i..].iter().position(|&c| c == b']') else {
        *good = false;
        return (arg_num, i + 1, false);
    };
    let (n, next) = parse_num(b, i + 1);
    match n {
        Some(n) if next == i + close && n >= 1 && n - 1 < num_args => (n - 1, i + close + 1, true),
        Some(_) if next == i + close => {
            *good = false;
            (arg_num, i + close + 1, true)
        }
        _ => {
            *good = false;
            (arg_num, i + close + 1, false)
        }
    }
}

/// A `*` width or precision taken from the arguments.
fn int_from_arg(args: &[&Value], arg_num: usize) -> (i64, bool, usize) {
    match args.get(arg_num) {
        Some(Value::Int(n)) if n.unsigned_abs() <= MAX_WIDTH as u64 => (*n, true, arg_num + 1),
        Some(_) => (0, false, arg_num + 1),
        None => (0, false, arg_num),
    }
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero && !self.f.minus {
            '0'
        } else {
            ' '
        };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// Pads to the width, on the left unless `-`.
    fn pad(&mut self, s: &str) {
        let Some(wid) = self.f.wid else {
            self.buf.push_str(s);
            return;
        };
        let n = wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            let zero = self.f.zero;
            self.f.zero = false;
            self.write_padding(n);
            self.f.zero = zero;
        } else {
            self.write_padding(n);
            self.buf.push_str(s);
        }
    }

    fn bad_verb(&mut self, verb: char, v: &Value) {
        let _ = write!(self.buf, "%!{verb}(");
        if matches!(v, Value::Nil) {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(type_name(v));
            self.buf.push('=');
            self.print_arg(v, 'v');
        }
        self.buf.push(')');
    }

    fn print_arg(&mut self, v: &Value, verb: char) {
        if verb == 'T' {
            self.pad(type_name(v));
            return;
        }
        match v {
            Value::Nil => {
                if verb == 'v' {
                    self.pad("<nil>");
                } else {
                    self.bad_verb(verb, v);
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(verb, v),
            },
            Value::Int(n) => self.fmt_int(*n, verb, v),
            Value::Float(x) => match verb {
                'v' => self.fmt_float(*x, 'g', -1),
                'g' | 'G' => self.fmt_float(*x, verb, -1),
                'e' | 'E' | 'f' => self.fmt_float(*x, verb, 6),
                'F' => self.fmt_float(*x, 'f', 6),
                _ => self.bad_verb(verb, v),
            },
            Value::Str(s) => match verb {
                'v' | 's' => self.fmt_s(s),
                'q' => self.fmt_q(s),
                'x' => self.fmt_sx(s, false),
                'X' => self.fmt_sx(s, true),
                _ => self.bad_verb(verb, v),
            },
            Value::List(items, _) => {
                self.buf.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print_elem(item, verb);
                }
                self.buf.push(']');
            }
            Value::Map(m) => {
                self.buf.push_str("map[");
                for (i, (k, item)) in m.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print_arg(&Value::Str(k.clone()), verb);
                    self.buf.push(':');
                    self.print_elem(item, verb);
                }
                self.buf.push(']');
            }
        }
    }

    /// Inside a list or map a nil prints as <nil> whatever the verb.
    fn print_elem(&mut self, v: &Value, verb: char) {
        if matches!(v, Value::Nil) {
            self.pad("<nil>");
        } else {
            self.print_arg(v, verb);
        }
    }

    fn fmt_int(&mut self, n: i64, verb: char, v: &Value) {
        match verb {
            'v' | 'd' => self.fmt_integer(n, 10, verb, false),
            'b' => self.fmt_integer(n, 2, verb, false),
            'o' | 'O' => self.fmt_integer(n, 8, verb, false),
            'x' => self.fmt_integer(n, 16, verb, false),
            'X' => self.fmt_integer(n, 16, verb, true),
            'c' => {
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                let q = quote_rune(c, self.f.plus);
                self.pad(&q);
            }
            'U' => {
                let mut s = format!("U+{:04X}", n.max(0));
                if self.f.sharp
                    && let Some(c) = u32::try_from(n).ok().and_then(char::from_u32)
                    && is_print(c)
                {
                    let _ = write!(s, " '{c}'");
                }
                let zero = self.f.zero;
                self.f.zero = false;
                self.pad(&s);
                self.f.zero = zero;
            }
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_integer(&mut self, n: i64, base: u32, verb: char, upper: bool) {
        let negative = n < 0;
        let u = n.unsigned_abs();
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid.unwrap_or(0);
                self.write_padding(w);
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero
            && !self.f.minus
            && let Some(w) = self.f.wid
        {
            prec = w;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits = match (base, upper) {
            (2, _) => format!("{u:b}"),
            (8, _) => format!("{u:o}"),
            (16, false) => format!("{u:x}"),
            (16, true) => format!("{u:X}"),
            _ => u.to_string(),
        };
        let mut s = String::with_capacity(prec.max(digits.len()) + 3);
        if self.f.sharp {
            match base {
                2 => s.push_str("0b"),
                16 if upper => s.push_str("0X"),
                16 => s.push_str("0x"),
                _ => {}
            }
        }
        if verb == 'O' {
            s.push_str("0o");
        }
        let zeros = prec.saturating_sub(digits.len());
        let octal_zero = self.f.sharp && base == 8 && zeros == 0 && !digits.starts_with('0');
        s.extend(std::iter::repeat_n('0', zeros));
        if octal_zero {
            s.push('0');
        }
        s.push_str(&digits);
        let sign = if negative {
            "-"
        } else if self.f.plus {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        s.insert_str(0, sign);
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = zero;
    }

    fn fmt_float(&mut self, x: f64, verb: char, default_prec: i32) {
        let prec = self
            .f
            .prec
            .map_or(default_prec, |p| p.min(MAX_WIDTH) as i32);
        let fmt = match verb {
            'e' => b'e',
            'E' => b'E',
            'f' => b'f',
            'G' => b'G',
            _ => b'g',
        };
        let num = format_float(x, fmt, prec);
        let (mut sign, body) = match num.as_bytes().first() {
            Some(b'-') => ('-', &num[1..]),
            Some(b'+') => ('+', &num[1..]),
            _ => ('+', num.as_str()),
        };
        if self.f.space && sign == '+' && !self.f.plus {
            sign = ' ';
        }
        if body == "Inf" || body == "NaN" {
            let zero = self.f.zero;
            self.f.zero = false;
            let s = if body == "NaN" && !self.f.space && !self.f.plus {
                body.to_string()
            } else {
                format!("{sign}{body}")
            };
            self.pad(&s);
            self.f.zero = zero;
            return;
        }
        let mut body = body.to_string();
        if self.f.sharp {
            let mut digits = if matches!(fmt, b'g' | b'G') {
                if prec < 0 { 6 } else { prec }
            } else {
                0
            };
            let split = body.find(['e', 'E']).unwrap_or(body.len());
            let tail = body.split_off(split);
            let mut has_point = false;
            let mut seen_nonzero = false;
            for c in body.chars() {
                if c == '.' {
                    has_point = true;
                } else {
                    seen_nonzero |= c != '0';
                    if seen_nonzero {
                        digits -= 1;
                    }
                }
            }
            if !has_point {
                if body == "0" {
                    digits -= 1;
                }
                body.push('.');
            }
            while digits > 0 {
                body.push('0');
                digits -= 1;
            }
            body.push_str(&tail);
        }
        if self.f.plus || sign != '+' {
            let len = body.chars().count() + 1;
            if self.f.zero
                && !self.f.minus
                && let Some(w) = self.f.wid
                && w > len
            {
                self.buf.push(sign);
                self.write_padding(w - len);
                self.buf.push_str(&body);
                return;
            }
            self.pad(&format!("{sign}{body}"));
            return;
        }
        self.pad(&body);
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
            None => s,
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad(s);
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            self.pad(&format!("`{s}`"));
        } else {
            let q = quote(s, self.f.plus);
            self.pad(&q);
        }
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let bytes = s.as_bytes();
        let n = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
        if n == 0 {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        let prefix = if upper { "0X" } else { "0x" };
        let mut out = String::with_capacity(n * 5);
        if self.f.sharp {
            out.push_str(prefix);
        }
        for (i, byte) in bytes[..n].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push_str(prefix);
                }
            }
            if upper {
                let _ = write!(out, "{byte:02X}");
            } else {
                let _ = write!(out, "{byte:02x}");
            }
        }
        self.pad(&out);
    }
}

/// Approximates Go's unicode.IsPrint: graphic characters and ASCII space.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
        || ('\u{E000}'..='\u{F8FF}').contains(&c))
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

fn escape_into(out: &mut String, c: char, quote: char, ascii: bool) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x80 && is_print(c) => out.push(c),
        c if !ascii && is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// strconv.Quote, or QuoteToASCII when `ascii`.
pub(crate) fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_into(&mut out, c, '"', ascii);
    }
    out.push('"');
    out
}

fn quote_rune(c: char, ascii: bool) -> String {
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'', ascii);
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn f(x: f64) -> Value {
        Value::Float(x)
    }

    #[test]
    fn float_v_matches_go() {
        for (x, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "1e+20"),
            (123456789.0, "1.23456789e+08"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-9.223372036854776e18, "-9.223372036854776e+18"),
            (100.0, "100"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(print_value(&f(x)), want, "{x}");
        }
    }

    #[test]
    fn printf_floats() {
        let cases: &[(&str, f64, &str)] = &[
            ("%.2f", 1.0 / 3.0, "0.33"),
            ("%.0f", 2.5, "2"),
            ("%.0f", 3.5, "4"),
            ("%0.0f", 99.6, "100"),
            ("%.1f", 0.05, "0.1"),
            ("%.4g", 1234567.0, "1.235e+06"),
            ("%.4g", 0.0001234, "0.0001234"),
            ("%.4g", 123.0, "123"),
            ("%.4g", 1.2345, "1.234"),
            ("%.4g", 12.345, "12.35"),
            ("%.4g", 0.0, "0"),
            ("%.4g", 100000.0, "1e+05"),
            ("%g", 100000.0, "100000"),
            ("%g", 1e21, "1e+21"),
            ("%e", 1234.5678, "1.234568e+03"),
            ("%E", 0.0, "0.000000E+00"),
            ("%f", 1e6, "1000000.000000"),
            ("%8.3f", -3.14259, "  -3.143"),
            ("%-8.2f|", 3.14259, "3.14    |"),
            ("%08.2f", -3.14259, "-0003.14"),
            ("%+.1f", 2.0, "+2.0"),
            ("% .1f", 2.0, " 2.0"),
            ("%#g", 1.0, "1.00000"),
            ("%#.3g", 2.0, "2.00"),
            ("%5.1f", f64::NAN, "  NaN"),
            ("%05.1f", f64::INFINITY, " +Inf"),
            ("%v", 1e6, "1e+06"),
            ("%.3v", 3.14259, "3.14"),
            ("%.2f", f64::NEG_INFINITY, "-Inf"),
        ];
        for (fmt, x, want) in cases {
            assert_eq!(sprintf(fmt, &[&f(*x)]), *want, "{fmt} {x}");
        }
    }

    #[test]
    fn printf_other_verbs() {
        let s = Value::Str("héllo".into());
        let i = Value::Int(255);
        let cases: &[(&str, &[&Value], &str)] = &[
            (
                "%s|%5s|%-5s|%.2s",
                &[&s, &s, &s, &s],
                "héllo|héllo|héllo|hé",
            ),
            ("%7s|", &[&s], "  héllo|"),
            ("%q", &[&Value::Str("a\"b\n".into())], "\"a\\\"b\\n\""),
            ("%#q", &[&Value::Str("ab".into())], "`ab`"),
            (
                "%x %X % x %#x",
                &[
                    &Value::Str("hi".into()),
                    &Value::Str("hi".into()),
                    &Value::Str("hi".into()),
                    &Value::Str("hi".into()),
                ],
                "6869 6869 68 69 0x6869",
            ),
            (
                "%d %x %X %o %b %#x %#o",
                &[&i, &i, &i, &i, &i, &i, &i],
                "255 ff FF 377 11111111 0xff 0377",
            ),
            (
                "%5d|%-5d|%05d|%+d|% d",
                &[&i, &i, &i, &i, &i],
                "  255|255  |00255|+255| 255",
            ),
            ("%05d", &[&Value::Int(-42)], "-0042"),
            ("%.5d", &[&Value::Int(-42)], "-00042"),
            (
                "%c %q %U",
                &[&Value::Int(65), &Value::Int(65), &Value::Int(65)],
                "A 'A' U+0041",
            ),
            (
                "%t %v",
                &[&Value::Bool(true), &Value::Bool(false)],
                "true false",
            ),
            ("%d", &[&Value::Str("x".into())], "%!d(string=x)"),
            ("%s", &[&Value::Int(3)], "%!s(int=3)"),
            ("%d", &[&Value::Float(3.0)], "%!d(float64=3)"),
            ("%f", &[&Value::Int(3)], "%!f(int=3)"),
            ("%d", &[&Value::Nil], "%!d(<nil>)"),
            ("%v %s", &[&Value::Nil, &Value::Nil], "<nil> %!s(<nil>)"),
            ("%d %d", &[&i], "255 %!d(MISSING)"),
            ("%d", &[&i, &s], "255%!(EXTRA string=héllo)"),
            ("%!", &[], "%!!(MISSING)"),
            ("%", &[], "%!(NOVERB)"),
            ("100%%", &[], "100%"),
            ("%[2]d %[1]d", &[&Value::Int(1), &Value::Int(2)], "2 1"),
            ("%[3]d", &[&Value::Int(1)], "%!d(BADINDEX)"),
            (
                "%*d|%-*d",
                &[
                    &Value::Int(4),
                    &Value::Int(7),
                    &Value::Int(3),
                    &Value::Int(1),
                ],
                "   7|1  ",
            ),
            ("%.*f", &[&Value::Int(1), &Value::Float(2.25)], "2.2"),
            ("%T %T %T", &[&s, &i, &Value::Nil], "string int <nil>"),
            ("%z", &[&i], "%!z(int=255)"),
        ];
        for (fmt, args, want) in cases {
            assert_eq!(sprintf(fmt, args), *want, "{fmt}");
        }
    }

    #[test]
    fn composite_values() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), Value::Int(2));
        m.insert("a".to_string(), Value::Str("x".into()));
        m.insert("c".to_string(), Value::Nil);
        let map = Value::Map(m);
        assert_eq!(print_value(&map), "map[a:x b:2 c:<nil>]");
        let list = Value::List(
            vec![Value::Int(1), Value::Float(2.5), Value::Str("s".into())],
            BTreeMap::new(),
        );
        assert_eq!(print_value(&list), "[1 2.5 s]");
        assert_eq!(
            sprintf(
                "%d",
                &[&Value::List(
                    vec![Value::Int(1), Value::Int(2)],
                    BTreeMap::new()
                )]
            ),
            "[1 2]"
        );
        assert_eq!(
            sprintf(
                "%q",
                &[&Value::List(vec![Value::Str("a".into())], BTreeMap::new())]
            ),
            "[\"a\"]"
        );
    }

    #[test]
    fn sprint_spacing() {
        let a = Value::Str("a".into());
        let one = Value::Int(1);
        let two = Value::Float(2.0);
        assert_eq!(sprint(&[&a, &one, &two, &a, &a]), "a1 2aa");
        assert_eq!(sprintln(&[&a, &one]), "a 1\n");
        assert_eq!(sprint(&[]), "");
    }

    #[test]
    fn huge_width_is_refused() {
        assert_eq!(
            sprintf("%99999999999d", &[&Value::Int(1)]),
            "%!(NOVERB)%!(EXTRA int=1)"
        );
        let out = sprintf("%1000000d", &[&Value::Int(1)]);
        assert_eq!(out.len(), 1_000_000);
    }
}
