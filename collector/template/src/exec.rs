//! Runs a parsed template over data, as Go's text/template executes.
//!
//! Values borrow from the data where they can (`Cow::Borrowed`), so
//! walking `.Alerts` or `$labels` copies nothing; only function results
//! and constants are owned.

use std::borrow::Cow;

use crate::parse::{Arg, Command, Control, Node, Pipe};
use crate::{
    Fault, Funcs, MAX_DEPTH, MAX_OUTPUT_BYTES, MAX_STEPS, MissingKey, Template, Value, builtins,
    format,
};

pub(crate) type V<'d> = Cow<'d, Value>;

pub(crate) fn is_builtin(name: &str) -> bool {
    builtins::NAMES.contains(&name)
}

pub(crate) fn render(
    tmpl: &Template,
    name: &str,
    data: &Value,
    funcs: &Funcs<'_>,
) -> Result<String, Fault> {
    let Some(tree) = tmpl.trees.get(name) else {
        return Err(Fault {
            line: 0,
            message: format!(
                "no template {name:?} associated with template {:?}",
                tmpl.name
            ),
        });
    };
    let mut s = State {
        tmpl,
        funcs,
        vars: vec![("$", Cow::Borrowed(data))],
        out: String::new(),
        depth: 0,
        steps: 0,
        line: 1,
        work: 0,
    };
    let dot = Cow::Borrowed(data);
    s.walk(&dot, tree)?;
    Ok(s.out)
}

/// Whether a `range` body goes on after an iteration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'t, 'd, 'f, 'a> {
    tmpl: &'t Template,
    funcs: &'f Funcs<'a>,
    /// Variables in scope, innermost last; `$` first.
    vars: Vec<(&'t str, V<'d>)>,
    out: String,
    depth: usize,
    steps: u64,
    /// The line being executed, for errors that have no node at hand.
    line: usize,
    /// Bytes of values produced or copied so far, against [`MAX_WORK_BYTES`].
    work: u64,
}

/// Most bytes of values one render may produce or copy: the steps limit
/// alone would let a loop copy a megabyte string millions of times.
const MAX_WORK_BYTES: u64 = 256 << 20;

/// Roughly what copying a value costs, without walking into it.
fn weight(v: &Value) -> u64 {
    match v {
        Value::Str(s) => s.len() as u64,
        Value::List(items, named) => 32 * (items.len() + named.len()) as u64,
        Value::Map(m) => 32 * m.len() as u64,
        _ => 8,
    }
}

/// Whether a value nests deeper than `limit`; stops looking there, so a
/// deep value cannot exhaust the stack here either.
fn nests_deeper(v: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::List(items, named) => Box::new(items.iter().chain(named.values())),
        Value::Map(m) => Box::new(m.values()),
        _ => return false,
    };
    if limit == 0 {
        return true;
    }
    children.into_iter().any(|c| nests_deeper(c, limit - 1))
}

/// The zero value Go would give for a missing key of this map: maps
/// here are untyped, so an all-string map (a label set) is taken to be
/// `map[string]string` and anything else `map[string]interface{}`.
pub(crate) fn zero_for(m: &std::collections::BTreeMap<String, Value>) -> Value {
    if m.values().all(|v| matches!(v, Value::Str(_))) {
        Value::Str(String::new())
    } else {
        Value::Nil
    }
}

fn missing(
    m: &std::collections::BTreeMap<String, Value>,
    name: &str,
    mk: MissingKey,
) -> Result<Value, String> {
    match mk {
        MissingKey::Zero => Ok(zero_for(m)),
        MissingKey::NoValue => Ok(Value::Nil),
        MissingKey::Error => Err(format!("map has no entry for key {name:?}")),
    }
}

fn no_field(v: &Value, name: &str) -> String {
    format!(
        "can't evaluate field {name} in type {}",
        format::type_name(v)
    )
}

fn field_ref<'d>(v: &'d Value, name: &str, mk: MissingKey) -> Result<V<'d>, String> {
    match v {
        Value::Map(m) => match m.get(name) {
            Some(x) => Ok(Cow::Borrowed(x)),
            None => missing(m, name, mk).map(Cow::Owned),
        },
        Value::List(_, named) => named
            .get(name)
            .map(Cow::Borrowed)
            .ok_or_else(|| no_field(v, name)),
        // Go yields nothing, not an error, for a field of nil.
        Value::Nil if mk != MissingKey::Error => Ok(Cow::Owned(Value::Nil)),
        Value::Nil => Err(format!("nil data; no entry for key {name:?}")),
        other => Err(no_field(other, name)),
    }
}

fn field_owned(v: Value, name: &str, mk: MissingKey) -> Result<Value, String> {
    match v {
        Value::Map(mut m) => match m.remove(name) {
            Some(x) => Ok(x),
            None => missing(&m, name, mk),
        },
        Value::List(items, mut named) => match named.remove(name) {
            Some(x) => Ok(x),
            None => Err(no_field(&Value::List(items, named), name)),
        },
        other => field_ref(&other, name, mk).map(Cow::into_owned),
    }
}

fn field_of<'d>(recv: V<'d>, name: &str, mk: MissingKey) -> Result<V<'d>, String> {
    match recv {
        Cow::Borrowed(v) => field_ref(v, name, mk),
        Cow::Owned(v) => field_owned(v, name, mk).map(Cow::Owned),
    }
}

/// `.A.B` on a value that stays in place (the dot, a variable).
fn fields_from_ref<'d>(
    recv: &V<'d>,
    idents: &[String],
    has_args: bool,
    mk: MissingKey,
) -> Result<V<'d>, String> {
    let Some((first, rest)) = idents.split_first() else {
        return Ok(recv.clone());
    };
    if has_args && rest.is_empty() {
        return Err(format!("{first} is not a method but has arguments"));
    }
    let v = match recv {
        Cow::Borrowed(v) => field_ref(v, first, mk)?,
        Cow::Owned(v) => Cow::Owned(field_ref(v, first, mk)?.into_owned()),
    };
    fields(v, rest, has_args, mk)
}

fn fields<'d>(
    mut v: V<'d>,
    idents: &[String],
    has_args: bool,
    mk: MissingKey,
) -> Result<V<'d>, String> {
    for (i, name) in idents.iter().enumerate() {
        if has_args && i + 1 == idents.len() {
            return Err(format!("{name} is not a method but has arguments"));
        }
        v = field_of(v, name, mk)?;
    }
    Ok(v)
}

impl<'t, 'd> State<'t, 'd, '_, '_> {
    fn fault(&self, line: usize, message: impl Into<String>) -> Fault {
        Fault {
            line,
            message: message.into(),
        }
    }

    fn step(&mut self, line: usize) -> Result<(), Fault> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.fault(
                line,
                format!("template execution took more than {MAX_STEPS} steps"),
            ));
        }
        Ok(())
    }

    fn charge(&mut self, v: &Value, line: usize) -> Result<(), Fault> {
        self.work += weight(v);
        self.check_work(line)
    }

    fn check_work(&self, line: usize) -> Result<(), Fault> {
        if self.work > MAX_WORK_BYTES {
            return Err(self.fault(
                line,
                format!("template execution copied more than {MAX_WORK_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// A copy of a value held by the state; copies of owned values are charged.
    fn copy(&mut self, v: &V<'d>, line: usize) -> Result<V<'d>, Fault> {
        if let Cow::Owned(o) = v {
            self.charge(o, line)?;
        }
        Ok(v.clone())
    }

    fn copy_var(&mut self, i: usize, line: usize) -> Result<V<'d>, Fault> {
        if let Some((_, Cow::Owned(o))) = self.vars.get(i) {
            self.work += weight(o);
            self.check_work(line)?;
        }
        Ok(self.vars[i].1.clone())
    }

    fn enter(&mut self, line: usize) -> Result<(), Fault> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fault(
                line,
                format!("template nesting (control structures, parentheses and template calls) exceeds {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> Result<(), Fault> {
        if self.out.len() + s.len() > MAX_OUTPUT_BYTES {
            return Err(self.fault(
                self.line,
                format!("template output exceeds {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk_body(&mut self, dot: &V<'d>, list: &'t [Node], line: usize) -> Result<Flow, Fault> {
        self.enter(line)?;
        let r = self.walk(dot, list);
        self.depth -= 1;
        r
    }

    fn walk(&mut self, dot: &V<'d>, list: &'t [Node]) -> Result<Flow, Fault> {
        for node in list {
            self.step(self.line)?;
            match node {
                Node::Text(s) => self.write(s)?,
                Node::Action(pipe) => {
                    self.line = pipe.line;
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        match &*v {
                            Value::Str(s) => self.write(s)?,
                            other => self.write(&other.to_string())?,
                        }
                    }
                }
                Node::If(c) | Node::With(c) => {
                    self.line = c.pipe.line;
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &c.pipe)?;
                    let flow = if v.is_true() {
                        let new_dot = if matches!(node, Node::With(_)) {
                            &v
                        } else {
                            dot
                        };
                        self.walk_body(new_dot, &c.list, c.pipe.line)?
                    } else if let Some(e) = &c.else_list {
                        self.walk_body(dot, e, c.pipe.line)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Range(c) => {
                    self.line = c.pipe.line;
                    let flow = self.walk_range(dot, c)?;
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Template { line, name, pipe } => {
                    self.line = *line;
                    self.call_template(dot, *line, name, pipe.as_ref())?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn call_template(
        &mut self,
        dot: &V<'d>,
        line: usize,
        name: &str,
        pipe: Option<&'t Pipe>,
    ) -> Result<(), Fault> {
        let tmpl: &'t Template = self.tmpl;
        let Some(tree) = tmpl.trees.get(name) else {
            return Err(self.fault(line, format!("template {name:?} not defined")));
        };
        let v = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Cow::Owned(Value::Nil),
        };
        self.enter(line)?;
        // A called template sees none of the caller's variables.
        let saved = std::mem::replace(&mut self.vars, vec![("$", v.clone())]);
        let r = self.walk(&v, tree);
        self.vars = saved;
        self.depth -= 1;
        self.line = line;
        r.map(|_| ())
    }

    fn walk_range(&mut self, dot: &V<'d>, c: &'t Control) -> Result<Flow, Fault> {
        let line = c.pipe.line;
        let mark = self.vars.len();
        let v = self.eval_commands(dot, &c.pipe)?;
        if !c.pipe.is_assign {
            for name in &c.pipe.decl {
                self.vars.push((name.as_str(), Cow::Owned(Value::Nil)));
            }
        }
        let body = self.vars.len();
        self.enter(line)?;
        let mut ran = false;
        let r = (|| -> Result<(), Fault> {
            macro_rules! each {
                ($key:expr, $elem:expr) => {{
                    ran = true;
                    if self.iterate(c, $key, $elem, body)? == Flow::Break {
                        break;
                    }
                }};
            }
            match v {
                Cow::Borrowed(Value::List(items, _)) => {
                    for (i, e) in items.iter().enumerate() {
                        each!(Value::Int(i as i64), Cow::Borrowed(e));
                    }
                }
                Cow::Owned(Value::List(items, _)) => {
                    for (i, e) in items.into_iter().enumerate() {
                        each!(Value::Int(i as i64), Cow::Owned(e));
                    }
                }
                Cow::Borrowed(Value::Map(m)) => {
                    for (k, e) in m {
                        each!(Value::Str(k.clone()), Cow::Borrowed(e));
                    }
                }
                Cow::Owned(Value::Map(m)) => {
                    for (k, e) in m {
                        each!(Value::Str(k), Cow::Owned(e));
                    }
                }
                other => match *other {
                    Value::Int(n) => {
                        if c.pipe.decl.len() > 1 {
                            return Err(self.fault(
                                line,
                                format!("can't use {n} to iterate over more than one variable"),
                            ));
                        }
                        for i in 0..n.max(0) {
                            each!(Value::Int(i), Cow::Owned(Value::Int(i)));
                        }
                    }
                    // Go skips a nil collection silently.
                    Value::Nil => {}
                    ref v => return Err(self.fault(line, format!("range can't iterate over {v}"))),
                },
            }
            Ok(())
        })();
        self.depth -= 1;
        self.vars.truncate(mark);
        r?;
        if !ran && let Some(e) = &c.else_list {
            return self.walk_body(dot, e, line);
        }
        Ok(Flow::Normal)
    }

    fn iterate(
        &mut self,
        c: &'t Control,
        key: Value,
        elem: V<'d>,
        body: usize,
    ) -> Result<Flow, Fault> {
        let line = c.pipe.line;
        self.step(line)?;
        let decl = &c.pipe.decl;
        if !decl.is_empty()
            && let Cow::Owned(o) = &elem
        {
            self.charge(o, line)?;
        }
        if c.pipe.is_assign {
            // With two variables the key comes first.
            match decl.as_slice() {
                [e] => self.set_var(e, elem.clone(), line)?,
                [k, e] => {
                    self.set_var(k, Cow::Owned(key), line)?;
                    self.set_var(e, elem.clone(), line)?;
                }
                _ => {}
            }
        } else {
            match decl.len() {
                1 => {
                    if let Some(slot) = self.vars.get_mut(body.wrapping_sub(1)) {
                        slot.1 = elem.clone();
                    }
                }
                2 => {
                    if let Some(slot) = self.vars.get_mut(body.wrapping_sub(2)) {
                        slot.1 = Cow::Owned(key);
                    }
                    if let Some(slot) = self.vars.get_mut(body.wrapping_sub(1)) {
                        slot.1 = elem.clone();
                    }
                }
                _ => {}
            }
        }
        let flow = self.walk(&elem, &c.list);
        self.vars.truncate(body);
        self.line = line;
        flow
    }

    fn set_var(&mut self, name: &str, v: V<'d>, line: usize) -> Result<(), Fault> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.fault(line, format!("undefined variable: {name}"))),
        }
    }

    fn var_index(&self, name: &str, line: usize) -> Result<usize, Fault> {
        self.vars
            .iter()
            .rposition(|(n, _)| *n == name)
            .ok_or_else(|| self.fault(line, format!("undefined variable: {name}")))
    }

    /// The pipeline's value, without binding its variables.
    fn eval_commands(&mut self, dot: &V<'d>, pipe: &'t Pipe) -> Result<V<'d>, Fault> {
        let mut v: Option<V<'d>> = None;
        for cmd in &pipe.cmds {
            v = Some(self.eval_command(dot, cmd, v.take())?);
        }
        Ok(v.unwrap_or(Cow::Owned(Value::Nil)))
    }

    fn eval_pipeline(&mut self, dot: &V<'d>, pipe: &'t Pipe) -> Result<V<'d>, Fault> {
        let v = self.eval_commands(dot, pipe)?;
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone(), pipe.line)?;
            } else {
                self.vars.push((name.as_str(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_nested(&mut self, dot: &V<'d>, pipe: &'t Pipe) -> Result<V<'d>, Fault> {
        self.enter(pipe.line)?;
        let r = self.eval_pipeline(dot, pipe);
        self.depth -= 1;
        r
    }

    fn eval_command(
        &mut self,
        dot: &V<'d>,
        cmd: &'t Command,
        last: Option<V<'d>>,
    ) -> Result<V<'d>, Fault> {
        let line = cmd.line;
        self.line = line;
        let mk = self.tmpl.missing_key;
        let has_args = cmd.args.len() > 1 || last.is_some();
        let Some(first) = cmd.args.first() else {
            return Err(self.fault(line, "empty command"));
        };
        let not_a_function = |s: &Self| -> Result<(), Fault> {
            if has_args {
                return Err(s.fault(line, format!("can't give argument to non-function {first}")));
            }
            Ok(())
        };
        match first {
            Arg::Field(idents) => {
                fields_from_ref(dot, idents, has_args, mk).map_err(|m| self.fault(line, m))
            }
            Arg::Chain(node, idents) => {
                if matches!(**node, Arg::Nil) {
                    return Err(
                        self.fault(line, format!("indirection through explicit nil in {first}"))
                    );
                }
                let recv = self.eval_arg(dot, node, line)?;
                fields(recv, idents, has_args, mk).map_err(|m| self.fault(line, m))
            }
            Arg::Ident(name) => self.call(dot, name, &cmd.args[1..], last, line),
            Arg::Pipe(p) => {
                not_a_function(self)?;
                self.eval_nested(dot, p)
            }
            Arg::Variable(name, idents) => {
                let i = self.var_index(name, line)?;
                if idents.is_empty() {
                    not_a_function(self)?;
                    return self.copy_var(i, line);
                }
                fields_from_ref(&self.vars[i].1, idents, has_args, mk)
                    .map_err(|m| self.fault(line, m))
            }
            Arg::Nil => Err(self.fault(line, "nil is not a command")),
            _ => {
                not_a_function(self)?;
                self.eval_arg(dot, first, line)
            }
        }
    }

    /// An argument to a function; an identifier here is a call without
    /// arguments.
    fn eval_arg(&mut self, dot: &V<'d>, arg: &'t Arg, line: usize) -> Result<V<'d>, Fault> {
        let mk = self.tmpl.missing_key;
        match arg {
            Arg::Dot => self.copy(dot, line),
            Arg::Nil => Ok(Cow::Owned(Value::Nil)),
            Arg::Bool(b) => Ok(Cow::Owned(Value::Bool(*b))),
            Arg::Int(i) => Ok(Cow::Owned(Value::Int(*i))),
            Arg::Float(f) => Ok(Cow::Owned(Value::Float(*f))),
            Arg::Str(s) => Ok(Cow::Owned(Value::Str(s.clone()))),
            Arg::Field(idents) => {
                fields_from_ref(dot, idents, false, mk).map_err(|m| self.fault(line, m))
            }
            Arg::Variable(name, idents) => {
                let i = self.var_index(name, line)?;
                if idents.is_empty() {
                    return self.copy_var(i, line);
                }
                fields_from_ref(&self.vars[i].1, idents, false, mk).map_err(|m| self.fault(line, m))
            }
            Arg::Pipe(p) => self.eval_nested(dot, p),
            Arg::Ident(name) => self.call(dot, name, &[], None, line),
            Arg::Chain(node, idents) => {
                if matches!(**node, Arg::Nil) {
                    return Err(
                        self.fault(line, format!("indirection through explicit nil in {arg}"))
                    );
                }
                let recv = self.eval_arg(dot, node, line)?;
                fields(recv, idents, false, mk).map_err(|m| self.fault(line, m))
            }
        }
    }

    /// Function results are charged, and refused when too big or, since
    /// dropping and printing recurse, nested too deep.
    fn check_result(&mut self, v: &Value, line: usize) -> Result<(), Fault> {
        if let Value::Str(s) = v
            && s.len() > MAX_OUTPUT_BYTES
        {
            return Err(self.fault(
                line,
                format!(
                    "string of {} bytes is over the {MAX_OUTPUT_BYTES}-byte limit",
                    s.len()
                ),
            ));
        }
        if nests_deeper(v, MAX_DEPTH) {
            return Err(self.fault(
                line,
                format!("value nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.charge(v, line)
    }

    fn call(
        &mut self,
        dot: &V<'d>,
        name: &str,
        args: &'t [Arg],
        last: Option<V<'d>>,
        line: usize,
    ) -> Result<V<'d>, Fault> {
        self.step(line)?;
        let funcs: &Funcs<'_> = self.funcs;
        if let Some(f) = funcs.get(name) {
            let mut vals = Vec::with_capacity(args.len() + 1);
            for a in args {
                vals.push(self.eval_arg(dot, a, line)?.into_owned());
            }
            if let Some(v) = last {
                vals.push(v.into_owned());
            }
            for v in &vals {
                self.charge(v, line)?;
            }
            let v = f(&vals).map_err(|m| self.fault(line, format!("error calling {name}: {m}")))?;
            self.check_result(&v, line)?;
            return Ok(Cow::Owned(v));
        }
        if name == "and" || name == "or" {
            // Go stops at the first argument that decides the answer.
            let is_and = name == "and";
            if args.is_empty() && last.is_none() {
                return Err(self.fault(
                    line,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut result = Cow::Owned(Value::Nil);
            for a in args {
                result = self.eval_arg(dot, a, line)?;
                if result.is_true() != is_and {
                    return Ok(result);
                }
            }
            return Ok(last.unwrap_or(result));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.eval_arg(dot, a, line)?);
        }
        if let Some(v) = last {
            vals.push(v);
        }
        let v = builtins::call(name, vals).map_err(|m| self.fault(line, m))?;
        if let Cow::Owned(o) = &v {
            self.check_result(o, line)?;
        }
        Ok(v)
    }
}
