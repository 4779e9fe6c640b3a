//! Executes a parsed template over the data, as Go's text/template does with missingkey=error,
//! within a step budget, an output cap and a call-depth limit.

use super::funcs;
use super::parse::{Arg, Cmd, Node, Pipe, Tree};
use super::value::{Value, write_value};
use zeroize::Zeroizing;

/// How far a render may go before it is stopped.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Evaluation steps (actions, commands, range iterations, function calls).
    pub max_steps: u64,
    /// Bytes of output, and of any single value a function builds.
    pub max_output: usize,
    /// Nested `{{template}}` calls.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 1_000_000,
            max_output: 1 << 20,
            max_depth: 100,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Stop {
    /// A Go-equivalent execution error at a byte offset.
    At(usize, String),
    Steps,
    Output,
    Depth(usize),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'t> {
    tree: &'t Tree,
    vars: Vec<(String, Value)>,
    pub out: Zeroizing<Vec<u8>>,
    steps: u64,
    depth: usize,
    limits: Limits,
}

type R<T> = Result<T, Stop>;

fn at<T>(pos: usize, what: impl Into<String>) -> R<T> {
    Err(Stop::At(pos, what.into()))
}

impl<'t> Exec<'t> {
    pub(crate) fn run(tree: &'t Tree, data: Value, limits: Limits) -> R<Zeroizing<Vec<u8>>> {
        let mut e = Exec {
            tree,
            vars: vec![("$".into(), data.clone())],
            out: Zeroizing::new(Vec::new()),
            steps: 0,
            depth: 0,
            limits,
        };
        e.walk_list(&tree.root, &data)?;
        Ok(std::mem::take(&mut e.out))
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(Stop::Steps);
        }
        Ok(())
    }

    fn write(&mut self, b: &[u8]) -> R<()> {
        if self.out.len() + b.len() > self.limits.max_output {
            return Err(Stop::Output);
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn walk_list(&mut self, nodes: &[Node], dot: &Value) -> R<Flow> {
        for n in nodes {
            match self.walk(n, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, node: &Node, dot: &Value) -> R<Flow> {
        self.step()?;
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Action(p) => {
                let v = self.pipeline(dot, p)?;
                if p.decl.is_empty() {
                    let mut buf = Zeroizing::new(Vec::new());
                    match v {
                        // An absent value prints as Go's "<no value>".
                        Value::Nil => buf.extend_from_slice(b"<no value>"),
                        v => write_value(&mut buf, &v),
                    }
                    self.write(&buf)?;
                }
            }
            Node::If(p, body, els) | Node::With(p, body, els) => {
                let mark = self.vars.len();
                let v = self.pipeline(dot, p)?;
                let flow = if v.truthy() {
                    if matches!(node, Node::With(..)) {
                        self.walk_list(body, &v)?
                    } else {
                        self.walk_list(body, dot)?
                    }
                } else {
                    self.walk_list(els, dot)?
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(p, body, els) => {
                let mark = self.vars.len();
                let v = self.pipeline(dot, p)?;
                let inner = self.vars.len();
                let items: Vec<(Value, Value)> = match &v {
                    Value::List(l, _) => l
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::int(i as i64), x.clone()))
                        .collect(),
                    Value::Map(m, _) => m
                        .borrow()
                        .iter()
                        .map(|(k, x)| (Value::str(k.clone()), x.clone()))
                        .collect(),
                    Value::Nil => Vec::new(),
                    _ => {
                        return at(
                            p.pos,
                            format!("range can't iterate over a {}", v.type_name()),
                        );
                    }
                };
                if items.is_empty() {
                    let flow = self.walk_list(els, dot)?;
                    self.vars.truncate(mark);
                    return Ok(flow);
                }
                for (k, x) in items {
                    self.step()?;
                    match p.decl.len() {
                        1 => self.vars[inner - 1].1 = x.clone(),
                        2 => {
                            self.vars[inner - 2].1 = k;
                            self.vars[inner - 1].1 = x.clone();
                        }
                        _ => {}
                    }
                    let flow = self.walk_list(body, &x)?;
                    self.vars.truncate(inner);
                    if let Flow::Break = flow {
                        break;
                    }
                }
                self.vars.truncate(mark);
            }
            Node::Template(pos, name, p) => {
                let Some(body) = self.tree.defines.get(name) else {
                    return at(*pos, format!("no such template {name:?}"));
                };
                let v = match p {
                    Some(p) => self.pipeline(dot, p)?,
                    None => Value::Nil,
                };
                if self.depth >= self.limits.max_depth {
                    return Err(Stop::Depth(*pos));
                }
                self.depth += 1;
                let saved = std::mem::replace(&mut self.vars, vec![("$".into(), v.clone())]);
                let r = self.walk_list(body, &v);
                self.vars = saved;
                self.depth -= 1;
                r?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn pipeline(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let mut v: Option<Value> = None;
        for c in &p.cmds {
            v = Some(self.command(dot, c, v)?);
        }
        let v = v.unwrap_or(Value::Nil);
        for name in &p.decl {
            if p.is_assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                } else {
                    return at(p.pos, format!("undefined variable: {name}"));
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, dot: &Value, cmd: &Cmd, fin: Option<Value>) -> R<Value> {
        self.step()?;
        let pos = cmd.pos;
        let extra = cmd.args.len() > 1 || fin.is_some();
        let Some(first) = cmd.args.first() else {
            return at(pos, "empty command");
        };
        match first {
            Arg::Field(names) => self.fields(pos, dot.clone(), names, extra, true),
            Arg::Var(name, names) => {
                let v = self.var(pos, name)?;
                if names.is_empty() {
                    if extra {
                        return at(pos, "can't give argument to non-function");
                    }
                    return Ok(v);
                }
                self.fields(pos, v, names, extra, false)
            }
            Arg::Chain(base, names) => {
                if matches!(**base, Arg::Nil) {
                    return at(pos, "indirection through explicit nil");
                }
                let v = self.arg(dot, pos, base)?;
                self.fields(pos, v, names, extra, false)
            }
            Arg::Func(name) => self.call(dot, pos, name, &cmd.args[1..], fin),
            Arg::Pipe(p) => {
                if extra {
                    return at(pos, "can't give argument to non-function");
                }
                self.pipeline(dot, p)
            }
            Arg::Nil => at(pos, "nil is not a command"),
            other => {
                if extra {
                    return at(pos, "can't give argument to non-function");
                }
                self.arg(dot, pos, other)
            }
        }
    }

    fn var(&self, pos: usize, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => at(pos, format!("undefined variable: {name}")),
        }
    }

    /// Follows `.a.b.c` from a receiver; only the last field may be handed arguments (an error
    /// for maps, which have no methods).
    fn fields(
        &mut self,
        pos: usize,
        mut recv: Value,
        names: &[String],
        extra: bool,
        from_dot: bool,
    ) -> R<Value> {
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            recv = match &recv {
                Value::Map(m, _) => {
                    if last && extra {
                        return at(pos, format!("{name} is not a method but has arguments"));
                    }
                    let found = m.borrow().get(name.as_bytes()).cloned();
                    match found {
                        Some(v) => v,
                        None => return at(pos, format!("map has no entry for key {name:?}")),
                    }
                }
                Value::Nil if i == 0 && from_dot => {
                    return at(pos, format!("nil data; no entry for key {name:?}"));
                }
                Value::Nil => {
                    return at(pos, format!("nil pointer evaluating interface {{}}.{name}"));
                }
                other => {
                    return at(
                        pos,
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    );
                }
            };
        }
        Ok(recv)
    }

    fn arg(&mut self, dot: &Value, pos: usize, a: &Arg) -> R<Value> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Str(s) => Ok(Value::str(s.clone())),
            Arg::Number(n) => {
                if n.prefers_float || n.int.is_none() {
                    match n.float {
                        Some(f) => Ok(Value::Float(f)),
                        None => at(pos, "number overflows"),
                    }
                } else {
                    Ok(Value::int(n.int.unwrap_or(0)))
                }
            }
            Arg::Field(names) => self.fields(pos, dot.clone(), names, false, true),
            Arg::Var(name, names) => {
                let v = self.var(pos, name)?;
                self.fields(pos, v, names, false, false)
            }
            Arg::Func(name) => self.call(dot, pos, name, &[], None),
            Arg::Pipe(p) => self.pipeline(dot, p),
            Arg::Chain(base, names) => {
                if matches!(**base, Arg::Nil) {
                    return at(pos, "indirection through explicit nil");
                }
                let v = self.arg(dot, pos, base)?;
                self.fields(pos, v, names, false, false)
            }
        }
    }

    fn call(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.step()?;
        // and/or evaluate their arguments lazily and return the deciding one (Go 1.18+).
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(fin.is_some());
            if n == 0 {
                return at(
                    pos,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                );
            }
            let mut last = Value::Nil;
            for a in args {
                last = self.arg(dot, pos, a)?;
                if last.truthy() != (name == "and") {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        let ints = funcs::int_params(name);
        for (k, a) in args.iter().enumerate() {
            match a {
                Arg::Number(n) if ints.contains(&k) => match n.int {
                    Some(i) => vals.push(Value::int(i)),
                    None => return at(pos, "expected integer; found a non-integer constant"),
                },
                _ => vals.push(self.arg(dot, pos, a)?),
            }
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        // Key derivation and bcrypt cost far more than a step: they draw on the same budget.
        for _ in 0..funcs::extra_steps(name) {
            self.step()?;
        }
        let max = self.limits.max_output;
        funcs::call(name, vals, max).map_err(|e| match e {
            funcs::FnError::TooBig => Stop::Output,
            funcs::FnError::Msg(m) => Stop::At(pos, format!("error calling {name}: {m}")),
        })
    }
}
