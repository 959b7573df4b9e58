//! Splits template text into tokens the way Go's text/template lexer does:
//! text between actions, then the words of each action. Trim markers are
//! applied here, so the parser never sees the whitespace they remove.

use crate::Fault;

/// Whitespace as Go's template lexer defines it (not Unicode's).
const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Pipe,
    Declare,
    Assign,
    LeftParen,
    RightParen,
    /// Any other printable ASCII character; only `,` means anything.
    Char(char),
    Bool(bool),
    /// Number text as written; the parser converts it.
    Number(String),
    /// A quoted character, already unquoted to its code point.
    CharConst(i64),
    /// A "..." or `...` string, already unquoted.
    Str(String),
    Dot,
    /// `.Name`, without the dot.
    Field(String),
    /// `$name`, with the dollar.
    Variable(String),
    Ident(String),
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
    Eof,
}

impl Kind {
    /// How Go's errors name a token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Kind::Text(t) => format!("{t:?}"),
            Kind::LeftDelim => "\"{{\"".into(),
            Kind::RightDelim => "\"}}\"".into(),
            Kind::Space => "space".into(),
            Kind::Pipe => "\"|\"".into(),
            Kind::Declare => "\":=\"".into(),
            Kind::Assign => "\"=\"".into(),
            Kind::LeftParen => "\"(\"".into(),
            Kind::RightParen => "\")\"".into(),
            Kind::Char(c) => format!("{:?}", c.to_string()),
            Kind::Bool(b) => format!("\"{b}\""),
            Kind::Number(n) => format!("{n:?}"),
            Kind::CharConst(c) => format!("character constant {c}"),
            Kind::Str(s) => format!("{s:?}"),
            Kind::Dot => "\".\"".into(),
            Kind::Field(f) => format!("\".{f}\""),
            Kind::Variable(v) => format!("{v:?}"),
            Kind::Ident(i) => format!("{i:?}"),
            Kind::Block => "<block>".into(),
            Kind::Break => "<break>".into(),
            Kind::Continue => "<continue>".into(),
            Kind::Define => "<define>".into(),
            Kind::Else => "<else>".into(),
            Kind::End => "<end>".into(),
            Kind::If => "<if>".into(),
            Kind::Nil => "<nil>".into(),
            Kind::Range => "<range>".into(),
            Kind::Template => "<template>".into(),
            Kind::With => "<with>".into(),
            Kind::Eof => "EOF".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub kind: Kind,
    pub line: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, Fault> {
    let mut l = Lexer {
        src,
        pos: 0,
        line: 1,
        toks: Vec::new(),
        trim_next: false,
        paren_depth: 0,
        action_line: 1,
    };
    l.run()?;
    Ok(l.toks)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: usize,
    toks: Vec<Token>,
    /// The previous action ended with ` -}}`: trim the next text's start.
    trim_next: bool,
    paren_depth: usize,
    /// Where the current action opened, so "unclosed" errors point at it.
    action_line: usize,
}

fn is_space(c: char) -> bool {
    SPACE.contains(&c)
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `- ` right after `{{`.
fn has_left_trim(s: &str) -> bool {
    let mut it = s.chars();
    it.next() == Some('-') && it.next().is_some_and(is_space)
}

/// ` -` right before `}}`.
fn has_right_trim(s: &str) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(is_space) && it.next() == Some('-')
}

/// `U+00A0`, as Go's `%U` writes a code point.
fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn advance(&mut self, n: usize) {
        let end = (self.pos + n).min(self.src.len());
        let skipped = self.src.get(self.pos..end).unwrap_or("");
        self.line += skipped.bytes().filter(|&b| b == b'\n').count();
        self.pos = end;
    }

    fn push(&mut self, kind: Kind, line: usize) {
        self.toks.push(Token { kind, line });
    }

    fn err<T>(&self, line: usize, message: impl Into<String>) -> Result<T, Fault> {
        Err(Fault {
            line,
            message: message.into(),
        })
    }

    fn run(&mut self) -> Result<(), Fault> {
        loop {
            let rest = self.rest();
            let found = rest.find("{{");
            let end = found.map_or(rest.len(), |i| i);
            let left_trim = found.is_some_and(|i| has_left_trim(&rest[i + 2..]));
            let mut text = &rest[..end];
            if self.trim_next {
                text = text.trim_start_matches(SPACE);
            }
            if left_trim {
                text = text.trim_end_matches(SPACE);
            }
            self.trim_next = false;
            if !text.is_empty() {
                let text = text.to_string();
                let line = self.line;
                self.push(Kind::Text(text), line);
            }
            self.advance(end);
            if found.is_none() {
                let line = self.line;
                self.push(Kind::Eof, line);
                return Ok(());
            }
            self.action_line = self.line;
            self.advance(2);
            if left_trim {
                self.advance(2);
            }
            if self.rest().starts_with("/*") {
                self.lex_comment()?;
                continue;
            }
            let line = self.line;
            self.push(Kind::LeftDelim, line);
            self.lex_action()?;
        }
    }

    fn lex_comment(&mut self) -> Result<(), Fault> {
        let Some(close) = self.rest().get(2..).and_then(|r| r.find("*/")) else {
            return self.err(self.action_line, "unclosed comment");
        };
        self.advance(2 + close + 2);
        let rest = self.rest();
        if rest.starts_with("}}") {
            self.advance(2);
        } else if has_right_trim(rest) && rest[2..].starts_with("}}") {
            self.advance(4);
            self.trim_next = true;
        } else {
            return self.err(self.line, "comment ends before closing delimiter");
        }
        Ok(())
    }

    fn lex_action(&mut self) -> Result<(), Fault> {
        loop {
            let rest = self.rest();
            let trimmed_close = has_right_trim(rest) && rest[2..].starts_with("}}");
            if trimmed_close || rest.starts_with("}}") {
                if self.paren_depth > 0 {
                    return self.err(self.line, "unclosed left paren");
                }
                let line = self.line;
                self.advance(if trimmed_close { 4 } else { 2 });
                self.push(Kind::RightDelim, line);
                self.trim_next = trimmed_close;
                return Ok(());
            }
            let Some(c) = rest.chars().next() else {
                return self.err(self.action_line, "unclosed action");
            };
            let line = self.line;
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut n = rest.len() - rest.trim_start_matches(SPACE).len();
                    // The last space of ` -}}` belongs to the closing marker.
                    if rest[n..].starts_with("-}}") {
                        n -= 1;
                    }
                    if n > 0 {
                        self.advance(n);
                        self.push(Kind::Space, line);
                    } else {
                        // Only the marker's own space: let the check above take it.
                        continue;
                    }
                }
                '=' => {
                    self.advance(1);
                    self.push(Kind::Assign, line);
                }
                ':' => {
                    if !rest[1..].starts_with('=') {
                        return self.err(line, "expected :=");
                    }
                    self.advance(2);
                    self.push(Kind::Declare, line);
                }
                '|' => {
                    self.advance(1);
                    self.push(Kind::Pipe, line);
                }
                '"' => self.lex_quote()?,
                '`' => self.lex_raw_quote()?,
                '\'' => self.lex_char()?,
                '$' => self.lex_field_or_variable(true)?,
                '.' => {
                    if rest[1..].starts_with(|d: char| d.is_ascii_digit()) {
                        self.lex_number()?;
                    } else {
                        self.lex_field_or_variable(false)?;
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number()?,
                c if is_alnum(c) => self.lex_identifier()?,
                '(' => {
                    self.advance(1);
                    self.paren_depth += 1;
                    self.push(Kind::LeftParen, line);
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return self.err(line, "unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.advance(1);
                    self.push(Kind::RightParen, line);
                }
                c if c.is_ascii_graphic() => {
                    self.advance(1);
                    self.push(Kind::Char(c), line);
                }
                c => {
                    return self.err(
                        line,
                        format!("unrecognized character in action: {}", code_point(c)),
                    );
                }
            }
        }
    }

    /// After a word, only these may follow directly.
    fn at_terminator(&self, s: &str) -> bool {
        match s.chars().next() {
            None => true,
            Some(c) => is_space(c) || ".,|:()".contains(c) || s.starts_with("}}"),
        }
    }

    fn bad_character(&self, s: &str) -> Result<(), Fault> {
        let c = s.chars().next().unwrap_or('\u{FFFD}');
        self.err(self.line, format!("bad character {}", code_point(c)))
    }

    fn lex_field_or_variable(&mut self, variable: bool) -> Result<(), Fault> {
        let line = self.line;
        let rest = self.rest();
        let name_len = rest[1..]
            .char_indices()
            .find(|&(_, c)| !is_alnum(c))
            .map_or(rest.len() - 1, |(i, _)| i);
        let after = &rest[1 + name_len..];
        if !self.at_terminator(after) {
            return self.bad_character(after);
        }
        let name = rest[1..1 + name_len].to_string();
        self.advance(1 + name_len);
        let kind = match (variable, name.is_empty()) {
            (true, _) => Kind::Variable(format!("${name}")),
            (false, true) => Kind::Dot,
            (false, false) => Kind::Field(name),
        };
        self.push(kind, line);
        Ok(())
    }

    fn lex_identifier(&mut self) -> Result<(), Fault> {
        let line = self.line;
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(_, c)| !is_alnum(c))
            .map_or(rest.len(), |(i, _)| i);
        let after = &rest[len..];
        if !self.at_terminator(after) {
            return self.bad_character(after);
        }
        let word = &rest[..len];
        let kind = match word {
            "block" => Kind::Block,
            "break" => Kind::Break,
            "continue" => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "nil" => Kind::Nil,
            "range" => Kind::Range,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" => Kind::Bool(true),
            "false" => Kind::Bool(false),
            w => Kind::Ident(w.to_string()),
        };
        self.advance(len);
        self.push(kind, line);
        Ok(())
    }

    /// Go's scanNumber: accepts more than is valid; the parser decides.
    fn lex_number(&mut self) -> Result<(), Fault> {
        let line = self.line;
        let b = self.rest().as_bytes();
        let mut i = 0;
        let accept = |i: &mut usize, set: &[u8]| {
            if *i < b.len() && set.contains(&b[*i]) {
                *i += 1;
                true
            } else {
                false
            }
        };
        let accept_run = |i: &mut usize, set: &[u8]| {
            while *i < b.len() && set.contains(&b[*i]) {
                *i += 1;
            }
        };
        accept(&mut i, b"+-");
        let mut digits: &[u8] = b"0123456789_";
        if accept(&mut i, b"0") {
            if accept(&mut i, b"xX") {
                digits = b"0123456789abcdefABCDEF_";
            } else if accept(&mut i, b"oO") {
                digits = b"01234567_";
            } else if accept(&mut i, b"bB") {
                digits = b"01_";
            }
        }
        accept_run(&mut i, digits);
        if accept(&mut i, b".") {
            accept_run(&mut i, digits);
        }
        if digits.len() == 11 && accept(&mut i, b"eE") {
            accept(&mut i, b"+-");
            accept_run(&mut i, b"0123456789_");
        }
        if digits.len() == 23 && accept(&mut i, b"pP") {
            accept(&mut i, b"+-");
            accept_run(&mut i, b"0123456789_");
        }
        accept(&mut i, b"i");
        let rest = self.rest();
        let text = &rest[..i];
        if let Some(next) = rest[i..].chars().next()
            && (is_alnum(next) || next == '+' || next == '-')
        {
            let shown = &rest[..i + next.len_utf8()];
            return self.err(line, format!("bad number syntax: {shown:?}"));
        }
        let text = text.to_string();
        self.advance(i);
        self.push(Kind::Number(text), line);
        Ok(())
    }

    /// Finds the closing quote of a "..." or '...' literal, honouring
    /// backslashes; returns the length including both quotes.
    fn scan_quoted(&self, quote: char, what: &str) -> Result<usize, Fault> {
        let rest = self.rest();
        let mut it = rest.char_indices().skip(1);
        while let Some((i, c)) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some((_, '\n')) | None => break,
                    Some(_) => {}
                },
                '\n' => break,
                c if c == quote => return Ok(i + 1),
                _ => {}
            }
        }
        self.err(self.line, format!("unterminated {what}"))
    }

    fn lex_quote(&mut self) -> Result<(), Fault> {
        let line = self.line;
        let len = self.scan_quoted('"', "quoted string")?;
        let raw = &self.rest()[..len];
        let value = unquote(&raw[1..len - 1], '"').map_err(|m| Fault {
            line,
            message: format!("{m} in string {raw}"),
        })?;
        self.advance(len);
        self.push(Kind::Str(value), line);
        Ok(())
    }

    fn lex_char(&mut self) -> Result<(), Fault> {
        let line = self.line;
        let len = self.scan_quoted('\'', "character constant")?;
        let raw = &self.rest()[..len];
        let bad = || Fault {
            line,
            message: format!("malformed character constant: {raw}"),
        };
        let code = unquote_char(&raw[1..len - 1]).ok_or_else(bad)?;
        self.advance(len);
        self.push(Kind::CharConst(code), line);
        Ok(())
    }

    fn lex_raw_quote(&mut self) -> Result<(), Fault> {
        let line = self.line;
        let rest = self.rest();
        let Some(close) = rest[1..].find('`') else {
            return self.err(line, "unterminated raw quoted string");
        };
        // Go drops carriage returns from raw strings.
        let value: String = rest[1..1 + close].chars().filter(|&c| c != '\r').collect();
        self.advance(close + 2);
        self.push(Kind::Str(value), line);
        Ok(())
    }
}

/// The code point of a character constant's inside; `\xNN` and octal
/// escapes give byte values, as in Go.
fn unquote_char(inner: &str) -> Option<i64> {
    if let Some(hex) = inner.strip_prefix("\\x") {
        return (hex.len() == 2).then(|| i64::from_str_radix(hex, 16).ok())?;
    }
    if let Some(oct) = inner.strip_prefix('\\')
        && oct.starts_with(|d: char| d.is_ascii_digit())
    {
        let v = (oct.len() == 3).then(|| i64::from_str_radix(oct, 8).ok())??;
        return (v <= 255).then_some(v);
    }
    let value = unquote(inner, '\'').ok()?;
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c as i64),
        _ => None,
    }
}

/// Go's escape rules for quoted strings and characters. `\x` and octal
/// escapes are bytes; byte sequences that are not UTF-8 become U+FFFD.
pub(crate) fn unquote(s: &str, quote: char) -> Result<String, String> {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut it = s.chars().peekable();
    let invalid = || "invalid syntax".to_string();
    let hex =
        |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Result<u32, String> {
            let mut v: u32 = 0;
            for _ in 0..n {
                let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(invalid)?;
                v = v * 16 + d;
            }
            Ok(v)
        };
    while let Some(c) = it.next() {
        if c == quote && quote == '"' {
            return Err(invalid());
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = it.next() else {
            return Err(invalid());
        };
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '\'' | '"' if e == quote => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        match e {
            'x' => {
                let v = hex(&mut it, 2)?;
                out.push(v as u8);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(invalid)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(invalid());
                }
                out.push(v as u8);
            }
            'u' | 'U' => {
                let v = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v).ok_or_else(invalid)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(invalid()),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Kind> {
        lex(s)
            .map(|t| t.into_iter().map(|t| t.kind).collect())
            .unwrap_or_default()
    }

    #[test]
    fn trims_and_comments() {
        assert_eq!(
            kinds("a  {{- 3 -}}  b{{/* c */}}d"),
            vec![
                Kind::Text("a".into()),
                Kind::LeftDelim,
                Kind::Number("3".into()),
                Kind::RightDelim,
                Kind::Text("b".into()),
                Kind::Text("d".into()),
                Kind::Eof
            ]
        );
        assert_eq!(
            kinds("{{-3}}"),
            vec![
                Kind::LeftDelim,
                Kind::Number("-3".into()),
                Kind::RightDelim,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn strings_and_chars() {
        assert_eq!(
            unquote(r"a\tb\x41\u00e9\101", '"').as_deref(),
            Ok("a\tbAéA")
        );
        assert!(unquote(r"\q", '"').is_err());
        assert_eq!(
            kinds("{{'a' '\\n'}}"),
            vec![
                Kind::LeftDelim,
                Kind::CharConst(97),
                Kind::Space,
                Kind::CharConst(10),
                Kind::RightDelim,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        for (src, msg) in [
            ("{{", "unclosed action"),
            ("{{ \"abc }}", "unterminated quoted string"),
            ("{{/* x */ x}}", "comment ends before closing delimiter"),
            ("{{/* x ", "unclosed comment"),
            ("{{ 3x }}", "bad number syntax"),
            ("{{ a\u{a0} }}", "bad character U+00A0"),
            ("{{ \u{a0} }}", "unrecognized character in action: U+00A0"),
            ("{{ ) }}", "unexpected right paren"),
            ("{{ ( }}", "unclosed left paren"),
            ("{{ 'ab' }}", "malformed character constant"),
        ] {
            match lex(src) {
                Err(e) => assert!(e.message.contains(msg), "{src}: {e:?}"),
                Ok(t) => panic!("{src}: lexed {t:?}"),
            }
        }
        // A comment must open right after the delimiter; otherwise the
        // slash is an ordinary character, which the parser refuses.
        assert!(lex("{{ /* x */ }}").is_ok());
    }
}
