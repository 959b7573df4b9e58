//! Builds the tree of a template from its tokens, with the checks Go's
//! parser makes: known functions, declared variables, `break` only in
//! `range`, balanced `end`s, one definition per template name.

use std::collections::BTreeMap;
use std::fmt;

use crate::lex::{Kind, Token, lex};
use crate::{Fault, Funcs, MAX_DEPTH, exec};

pub(crate) type List = Vec<Node>;

/// What reading past the end gives (the lexer's own last token is Eof too).
static EOF: Token = Token {
    kind: Kind::Eof,
    line: 0,
};

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Template {
        line: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Clone, Debug)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    pub line: usize,
    /// `$x = ...` rather than `$x := ...`.
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub line: usize,
    pub args: Vec<Arg>,
}

#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B`
    Variable(String, Vec<String>),
    /// A function name.
    Ident(String),
    /// `( pipeline )`
    Pipe(Box<Pipe>),
    /// `( pipeline ).A.B`
    Chain(Box<Arg>, Vec<String>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot => f.write_str("."),
            Arg::Nil => f.write_str("nil"),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Int(i) => write!(f, "{i}"),
            Arg::Float(x) => f.write_str(&crate::format::format_float(*x, b'g', -1)),
            Arg::Str(s) => write!(f, "{s:?}"),
            Arg::Field(idents) => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Arg::Variable(name, idents) => {
                f.write_str(name)?;
                idents.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Arg::Ident(name) => f.write_str(name),
            Arg::Pipe(p) => write!(f, "({p})"),
            Arg::Chain(node, idents) => {
                write!(f, "{node}")?;
                idents.iter().try_for_each(|i| write!(f, ".{i}"))
            }
        }
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.is_assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            for (j, a) in c.args.iter().enumerate() {
                if j > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

/// What ends an item list.
enum Stop {
    End,
    Else,
}

/// Every template in one text: the main one under `name`, and each
/// `define` and `block`.
pub(crate) fn parse(
    name: &str,
    text: &str,
    funcs: &Funcs<'_>,
) -> Result<BTreeMap<String, List>, Fault> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        funcs,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        trees: BTreeMap::new(),
    };
    let mut root = List::new();
    while !matches!(p.peek().kind, Kind::Eof) {
        if matches!(p.peek().kind, Kind::LeftDelim) {
            let start = p.pos;
            p.next();
            if matches!(p.peek_non_space().kind, Kind::Define) {
                p.next_non_space();
                p.definition()?;
                continue;
            }
            p.pos = start;
        }
        let line = p.peek().line;
        match p.text_or_action()? {
            Item::Node(n) => root.push(n),
            Item::Stop(Stop::End) => return p.fail(line, "unexpected {{end}}"),
            Item::Stop(Stop::Else) => return p.fail(line, "unexpected {{else}}"),
        }
    }
    p.add(name, root)?;
    Ok(p.trees)
}

enum Item {
    Node(Node),
    Stop(Stop),
}

struct Parser<'f, 'a> {
    toks: Vec<Token>,
    pos: usize,
    funcs: &'f Funcs<'a>,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    trees: BTreeMap<String, List>,
}

/// Only whitespace text: Go lets such a template be redefined.
fn is_empty_tree(list: &List) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

impl Parser<'_, '_> {
    fn fail<T>(&self, line: usize, message: impl Into<String>) -> Result<T, Fault> {
        Err(Fault {
            line,
            message: message.into(),
        })
    }

    fn peek(&self) -> &Token {
        self.toks.get(self.pos).or(self.toks.last()).unwrap_or(&EOF)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn backup(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if !matches!(t.kind, Kind::Space) {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<Token, Fault> {
        let t = self.next_non_space();
        if !matches!(t.kind, Kind::RightDelim) {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> Result<T, Fault> {
        if matches!(t.kind, Kind::Eof) {
            return self.fail(t.line, format!("unexpected EOF in {context}"));
        }
        self.fail(
            t.line,
            format!("unexpected {} in {context}", t.kind.describe()),
        )
    }

    fn enter(&mut self, line: usize) -> Result<(), Fault> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(
                line,
                format!("template nested more than {MAX_DEPTH} levels deep"),
            );
        }
        Ok(())
    }

    fn add(&mut self, name: &str, list: List) -> Result<(), Fault> {
        match self.trees.get(name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&list) {
                    return self.fail(
                        self.peek().line,
                        format!("multiple definition of template {name:?}"),
                    );
                }
            }
            _ => {
                self.trees.insert(name.to_string(), list);
            }
        }
        Ok(())
    }

    /// A body parsed as its own template: fresh variables, not in a range.
    fn separate_body<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let r = f(self);
        self.vars = vars;
        self.range_depth = range_depth;
        r
    }

    fn definition(&mut self) -> Result<(), Fault> {
        let context = "define clause";
        let t = self.next_non_space();
        let line = t.line;
        let Kind::Str(name) = t.kind else {
            return self.unexpected(&t, context);
        };
        self.expect_right_delim(context)?;
        self.enter(line)?;
        let list = self.separate_body(|p| p.body_to_end(line, "{{define}}"))?;
        self.depth -= 1;
        self.add(&name, list)
    }

    /// Items up to the `{{end}}` of a block that allows no `{{else}}`.
    fn body_to_end(&mut self, line: usize, what: &str) -> Result<List, Fault> {
        let (list, stop) = self.item_list(line, what)?;
        if let Stop::Else = stop {
            return self.fail(
                self.peek().line,
                format!("unexpected {{{{else}}}} in {what}"),
            );
        }
        Ok(list)
    }

    fn item_list(&mut self, open_line: usize, what: &str) -> Result<(List, Stop), Fault> {
        let mut list = List::new();
        while !matches!(self.peek_non_space().kind, Kind::Eof) {
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::Stop(s) => return Ok((list, s)),
            }
        }
        self.fail(
            open_line,
            format!("unexpected EOF: {what} on line {open_line} has no matching {{{{end}}}}"),
        )
    }

    fn text_or_action(&mut self) -> Result<Item, Fault> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Text(s) => Ok(Item::Node(Node::Text(s))),
            Kind::LeftDelim => self.action(),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> Result<Item, Fault> {
        let t = self.next_non_space();
        let line = t.line;
        match t.kind {
            Kind::Block => self.block(line).map(Item::Node),
            Kind::Break | Kind::Continue => {
                let is_break = matches!(t.kind, Kind::Break);
                let word = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let next = self.next_non_space();
                if !matches!(next.kind, Kind::RightDelim) {
                    return self.unexpected(&next, word);
                }
                if self.range_depth == 0 {
                    return self.fail(line, format!("{word} outside {{{{range}}}}"));
                }
                Ok(Item::Node(if is_break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Kind::Else => {
                // `{{else if` / `{{else with`: the caller takes the keyword.
                let peek = self.peek_non_space();
                if !matches!(peek.kind, Kind::If | Kind::With) {
                    self.expect_right_delim("else")?;
                }
                Ok(Item::Stop(Stop::Else))
            }
            Kind::End => {
                self.expect_right_delim("end")?;
                Ok(Item::Stop(Stop::End))
            }
            Kind::If => self.control("if", line).map(|c| Item::Node(Node::If(c))),
            Kind::With => self
                .control("with", line)
                .map(|c| Item::Node(Node::With(c))),
            Kind::Range => self
                .control("range", line)
                .map(|c| Item::Node(Node::Range(c))),
            Kind::Template => self.template(line).map(Item::Node),
            _ => {
                self.backup();
                // Declared variables stay in scope up to the enclosing end.
                let pipe = self.pipeline("command", false)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn control(&mut self, context: &str, line: usize) -> Result<Control, Fault> {
        self.enter(line)?;
        let vars = self.vars.len();
        let pipe = self.pipeline(context, false)?;
        let what = format!("{{{{{context}}}}}");
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list(line, &what);
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, stop) = listed?;
        let mut else_list = None;
        if let Stop::Else = stop {
            let chained = match (context, &self.peek().kind) {
                ("if", Kind::If) => Some(true),
                ("with", Kind::With) => Some(false),
                _ => None,
            };
            if let Some(is_if) = chained {
                // `{{else if x}}...{{end}}` is `{{else}}{{if x}}...{{end}}{{end}}`.
                let t = self.next();
                let inner = self.control(context, t.line)?;
                else_list = Some(vec![if is_if {
                    Node::If(inner)
                } else {
                    Node::With(inner)
                }]);
            } else {
                let (list, stop) = self.item_list(line, &what)?;
                if let Stop::Else = stop {
                    return self.fail(
                        self.peek().line,
                        format!("expected end; found {{{{else}}}} in {what}"),
                    );
                }
                else_list = Some(list);
            }
        }
        self.vars.truncate(vars);
        self.depth -= 1;
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, context: &str) -> Result<String, Fault> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Str(s) => Ok(s),
            _ => self.unexpected(&t, context),
        }
    }

    fn template(&mut self, line: usize) -> Result<Node, Fault> {
        let context = "template clause";
        let name = self.template_name(context)?;
        let pipe = if matches!(self.next_non_space().kind, Kind::RightDelim) {
            None
        } else {
            self.backup();
            Some(self.pipeline(context, false)?)
        };
        Ok(Node::Template { line, name, pipe })
    }

    fn block(&mut self, line: usize) -> Result<Node, Fault> {
        let context = "block clause";
        let name = self.template_name(context)?;
        let pipe = self.pipeline(context, false)?;
        self.enter(line)?;
        let list = self.separate_body(|p| p.body_to_end(line, "{{block}}"))?;
        self.depth -= 1;
        self.add(&name, list)?;
        Ok(Node::Template {
            line,
            name,
            pipe: Some(pipe),
        })
    }

    /// A pipeline up to `}}`, or up to `)` when `paren`.
    fn pipeline(&mut self, context: &str, paren: bool) -> Result<Pipe, Fault> {
        let line = self.peek_non_space().line;
        let mut pipe = Pipe {
            line,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        self.declarations(&mut pipe, context)?;
        loop {
            let t = self.next_non_space();
            match t.kind {
                Kind::RightDelim if !paren => break,
                Kind::RightParen if paren => break,
                Kind::Bool(_)
                | Kind::CharConst(_)
                | Kind::Dot
                | Kind::Field(_)
                | Kind::Ident(_)
                | Kind::Number(_)
                | Kind::Nil
                | Kind::Str(_)
                | Kind::Variable(_)
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&t, context),
            }
        }
        if pipe.cmds.is_empty() {
            return self.fail(line, format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Int(_) | Arg::Float(_) | Arg::Str(_)
                )
            ) {
                return self.fail(
                    c.line,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(pipe)
    }

    /// `$x :=`, `$x =`, and range's `$i, $e :=`.
    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> Result<(), Fault> {
        loop {
            let start = self.pos;
            let v = self.peek_non_space();
            let Kind::Variable(name) = v.kind else {
                return Ok(());
            };
            self.next_non_space();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    self.next_non_space();
                    pipe.is_assign = matches!(next.kind, Kind::Assign);
                    pipe.decl.push(name.clone());
                    if pipe.is_assign {
                        if !self.vars.contains(&name) {
                            return self.fail(v.line, format!("undefined variable {name:?}"));
                        }
                    } else {
                        self.vars.push(name);
                    }
                    return Ok(());
                }
                Kind::Char(',') => {
                    self.next_non_space();
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable(_) => continue,
                            _ => return self.fail(v.line, "range can only initialize variables"),
                        }
                    }
                    return self.fail(v.line, format!("too many declarations in {context}"));
                }
                _ => {
                    // Not a declaration: the variable is the first operand.
                    self.pos = start;
                    return Ok(());
                }
            }
        }
    }

    fn command(&mut self) -> Result<Command, Fault> {
        let line = self.peek_non_space().line;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.fail(line, "empty command");
        }
        Ok(Command { line, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, Fault> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Kind::Field(f) = &self.peek().kind {
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut idents) => {
                idents.extend(fields);
                Arg::Field(idents)
            }
            Arg::Variable(name, mut idents) => {
                idents.extend(fields);
                Arg::Variable(name, idents)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Int(_) | Arg::Float(_) | Arg::Nil | Arg::Dot => {
                return self.fail(
                    self.peek().line,
                    format!("unexpected . after term \"{term}\""),
                );
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, Fault> {
        let t = self.next_non_space();
        let arg = match t.kind {
            Kind::Ident(name) => {
                if !self.funcs.contains(&name) && !exec::is_builtin(&name) {
                    return self.fail(t.line, format!("function {name:?} not defined"));
                }
                Arg::Ident(name)
            }
            Kind::Dot => Arg::Dot,
            Kind::Nil => Arg::Nil,
            Kind::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.fail(t.line, format!("undefined variable {name:?}"));
                }
                Arg::Variable(name, Vec::new())
            }
            Kind::Field(f) => Arg::Field(vec![f]),
            Kind::Bool(b) => Arg::Bool(b),
            Kind::CharConst(c) => Arg::Int(c),
            Kind::Number(text) => number(&text).map_err(|message| Fault {
                line: t.line,
                message,
            })?,
            Kind::LeftParen => {
                self.enter(t.line)?;
                let pipe = self.pipeline("parenthesized pipeline", true)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::Str(s) => Arg::Str(s),
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(arg))
    }
}

/// A number literal: an int unless it is written as a float, as Go
/// treats untyped constants passed to templates' functions.
fn number(text: &str) -> Result<Arg, String> {
    let illegal = || format!("illegal number syntax: {text:?}");
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let radix = if lower.starts_with("0x") {
        Some(16)
    } else if lower.starts_with("0o") {
        Some(8)
    } else if lower.starts_with("0b") {
        Some(2)
    } else {
        None
    };
    if let Some(radix) = radix {
        let digits: String = body[2..].chars().filter(|&c| c != '_').collect();
        if digits.contains(['.', 'p', 'P']) {
            return Err(format!("hexadecimal floats are not supported: {text:?}"));
        }
        let v = i64::from_str_radix(&digits, radix).map_err(|_| illegal())?;
        return Ok(Arg::Int(if neg { -v } else { v }));
    }
    // Underscores may only separate digits, as in Go literals.
    let digits_around = |w: &[u8]| w[0].is_ascii_digit() && w[2].is_ascii_digit();
    if body.contains('_') {
        let padded = format!(" {body} ");
        let ok = padded
            .as_bytes()
            .windows(3)
            .filter(|w| w[1] == b'_')
            .all(digits_around);
        if !ok {
            return Err(illegal());
        }
    }
    let cleaned = body.replace('_', "");
    let body = cleaned.as_str();
    if body.contains(['.', 'e', 'E']) {
        let v: f64 = body.parse().map_err(|_| illegal())?;
        if v.is_infinite() {
            return Err(format!("number out of range: {text:?}"));
        }
        return Ok(Arg::Float(if neg { -v } else { v }));
    }
    if body.is_empty() {
        return Err(illegal());
    }
    // A leading 0 means octal, as in Go.
    let (digits, radix) = if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    let signed = if neg {
        format!("-{digits}")
    } else {
        digits.to_string()
    };
    match i64::from_str_radix(&signed, radix) {
        Ok(v) => Ok(Arg::Int(v)),
        Err(e)
            if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) =>
        {
            Err(format!("integer overflow: {text:?}"))
        }
        Err(_) => Err(illegal()),
    }
}
