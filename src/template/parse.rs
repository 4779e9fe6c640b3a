//! Go text/template's grammar: a lexer over `{{ }}` actions and a parser into a tree. Positions are
//! byte offsets into the source, turned into line:column only for error messages.

use std::collections::HashMap;

/// Nesting deeper than this (parentheses, blocks) is refused: the parser and executor recurse.
const MAX_NESTING: usize = 100;

#[derive(Debug)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub what: String,
}

fn err<T>(pos: usize, what: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        pos,
        what: what.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(Vec<u8>),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    Keyword(&'static str),
    Eof,
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric() || c >= 0x80
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    toks: Vec<(Tok, usize)>,
}

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut l = Lexer {
            src: src.as_bytes(),
            pos: 0,
            toks: Vec::new(),
        };
        let mut trim_next_text = false;
        loop {
            let start = l.pos;
            let found = find(&l.src[l.pos..], b"{{").map(|i| i + l.pos);
            let end = found.unwrap_or(l.src.len());
            let trim_left = found.is_some_and(|i| {
                l.src.get(i + 2) == Some(&b'-') && l.src.get(i + 3).is_some_and(|&c| is_space(c))
            });
            let mut text = &l.src[start..end];
            if trim_next_text {
                let k = text
                    .iter()
                    .position(|&c| !is_space(c))
                    .unwrap_or(text.len());
                text = &text[k..];
            }
            if trim_left {
                let k = text
                    .iter()
                    .rposition(|&c| !is_space(c))
                    .map_or(0, |k| k + 1);
                text = &text[..k];
            }
            if !text.is_empty() {
                l.toks
                    .push((Tok::Text(String::from_utf8_lossy(text).into_owned()), start));
            }
            let Some(i) = found else {
                l.toks.push((Tok::Eof, l.src.len()));
                return Ok(l.toks);
            };
            l.pos = i + 2;
            if trim_left {
                l.pos += 2;
            }
            trim_next_text = l.action(i)?;
        }
    }

    /// Lexes one action after its `{{`; says whether it ended with a trim marker.
    fn action(&mut self, open: usize) -> Result<bool, ParseError> {
        if self.src[self.pos..].starts_with(b"/*") {
            let Some(close) = find(&self.src[self.pos + 2..], b"*/") else {
                return err(open, "unclosed comment");
            };
            self.pos += 2 + close + 2;
            if self.src[self.pos..].starts_with(b"}}") {
                self.pos += 2;
                return Ok(false);
            }
            if self.src[self.pos..].starts_with(b" -}}") {
                self.pos += 4;
                return Ok(true);
            }
            return err(open, "comment ends before closing delimiter");
        }
        self.toks.push((Tok::Left, open));
        let mut parens = 0usize;
        loop {
            let p = self.pos;
            let rest = &self.src[p..];
            if rest.starts_with(b"}}") {
                if parens > 0 {
                    return err(p, "unclosed left paren");
                }
                self.toks.push((Tok::Right, p));
                self.pos += 2;
                return Ok(false);
            }
            let Some(&c) = rest.first() else {
                return err(open, "unclosed action");
            };
            if is_space(c) {
                if rest.len() >= 4 && rest[1] == b'-' && rest[2..].starts_with(b"}}") {
                    if parens > 0 {
                        return err(p, "unclosed left paren");
                    }
                    self.toks.push((Tok::Right, p));
                    self.pos += 4;
                    return Ok(true);
                }
                let n = rest.iter().take_while(|&&c| is_space(c)).count();
                // The last space may begin a trim marker: `  -}}`.
                if rest[n..].starts_with(b"-}}") {
                    if parens > 0 {
                        return err(p, "unclosed left paren");
                    }
                    self.toks.push((Tok::Right, p));
                    self.pos += n + 3;
                    return Ok(true);
                }
                self.pos += n;
                self.toks.push((Tok::Space, p));
                continue;
            }
            match c {
                b'|' => self.one(Tok::Pipe),
                b'(' => {
                    parens += 1;
                    if parens > MAX_NESTING {
                        return err(p, "parentheses nested too deeply");
                    }
                    self.one(Tok::LParen)
                }
                b')' => {
                    if parens == 0 {
                        return err(p, "unexpected right paren");
                    }
                    parens -= 1;
                    self.one(Tok::RParen)
                }
                b',' => self.one(Tok::Comma),
                b'=' => self.one(Tok::Assign),
                b':' => {
                    if rest.get(1) != Some(&b'=') {
                        return err(p, "expected :=");
                    }
                    self.toks.push((Tok::Declare, p));
                    self.pos += 2;
                }
                b'"' => self.quoted(p)?,
                b'`' => {
                    let Some(end) = rest[1..].iter().position(|&c| c == b'`') else {
                        return err(p, "unterminated raw quoted string");
                    };
                    let s: Vec<u8> = rest[1..1 + end]
                        .iter()
                        .copied()
                        .filter(|&c| c != b'\r')
                        .collect();
                    self.toks.push((Tok::Str(s), p));
                    self.pos += end + 2;
                }
                b'\'' => self.char_const(p)?,
                b'$' => {
                    let n = rest[1..].iter().take_while(|&&c| is_alnum(c)).count();
                    let name = String::from_utf8_lossy(&rest[..1 + n]).into_owned();
                    self.toks.push((Tok::Var(name), p));
                    self.pos += 1 + n;
                }
                b'.' => {
                    if rest.get(1).is_some_and(|c| c.is_ascii_digit()) {
                        self.number(p)?;
                    } else {
                        let n = rest[1..].iter().take_while(|&&c| is_alnum(c)).count();
                        if n == 0 {
                            self.one(Tok::Dot);
                        } else {
                            let name = String::from_utf8_lossy(&rest[1..1 + n]).into_owned();
                            self.toks.push((Tok::Field(name), p));
                            self.pos += 1 + n;
                        }
                    }
                }
                b'0'..=b'9' => self.number(p)?,
                b'+' | b'-'
                    if rest
                        .get(1)
                        .is_some_and(|c| c.is_ascii_digit() || *c == b'.') =>
                {
                    self.number(p)?
                }
                c if is_alnum(c) => {
                    let n = rest.iter().take_while(|&&c| is_alnum(c)).count();
                    let word = String::from_utf8_lossy(&rest[..n]).into_owned();
                    let tok = match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(word),
                        },
                    };
                    self.toks.push((tok, p));
                    self.pos += n;
                }
                _ => return err(p, "unrecognized character in action"),
            }
        }
    }

    fn one(&mut self, t: Tok) {
        self.toks.push((t, self.pos));
        self.pos += 1;
    }

    fn number(&mut self, p: usize) -> Result<(), ParseError> {
        let rest = &self.src[p..];
        let mut n = 0;
        if matches!(rest.first(), Some(b'+' | b'-')) {
            n += 1;
        }
        let hex = rest[n..].len() > 1 && rest[n] == b'0' && matches!(rest[n + 1], b'x' | b'X');
        while n < rest.len() {
            let c = rest[n];
            let exp_sign = n > 0
                && matches!(c, b'+' | b'-')
                && if hex {
                    matches!(rest[n - 1], b'p' | b'P')
                } else {
                    matches!(rest[n - 1], b'e' | b'E')
                };
            if is_alnum(c) || c == b'.' || exp_sign {
                n += 1;
            } else {
                break;
            }
        }
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.toks.push((Tok::Number(text), p));
        self.pos += n;
        Ok(())
    }

    fn quoted(&mut self, p: usize) -> Result<(), ParseError> {
        let rest = &self.src[p + 1..];
        let mut i = 0;
        loop {
            match rest.get(i) {
                None | Some(b'\n') => return err(p, "unterminated quoted string"),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let Some(s) = unquote(&rest[..i]) else {
            return err(p, "bad quoted string");
        };
        self.toks.push((Tok::Str(s), p));
        self.pos = p + 1 + i + 1;
        Ok(())
    }

    fn char_const(&mut self, p: usize) -> Result<(), ParseError> {
        let rest = &self.src[p + 1..];
        let mut i = 0;
        loop {
            match rest.get(i) {
                None | Some(b'\n') => return err(p, "unterminated character constant"),
                Some(b'\\') => i += 2,
                Some(b'\'') => break,
                Some(_) => i += 1,
            }
        }
        let body = &rest[..i];
        let value = if body.first() == Some(&b'\\') {
            unquote(body).and_then(|b| {
                let s = String::from_utf8(b.clone()).ok()?;
                let mut cs = s.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => Some(c as i64),
                    _ if b.len() == 1 => Some(b[0] as i64),
                    _ => None,
                }
            })
        } else {
            std::str::from_utf8(body).ok().and_then(|s| {
                let mut cs = s.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) if c != '\'' => Some(c as i64),
                    _ => None,
                }
            })
        };
        let Some(v) = value else {
            return err(p, "malformed character constant");
        };
        self.toks.push((Tok::Char(v), p));
        self.pos = p + 1 + i + 1;
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Go's interpreted string literal escapes (strconv.Unquote), on the body between the quotes.
fn unquote(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *body.get(i + 1)?;
        i += 2;
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let o = std::str::from_utf8(body.get(i - 1..i + 2)?).ok()?;
                let v = u32::from_str_radix(o, 8).ok()?;
                out.push(u8::try_from(v).ok()?);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let h = std::str::from_utf8(body.get(i..i + n)?).ok()?;
                let c = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A number literal as Go's parser reads it: which interpretations it admits.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Go turns a constant with `.`, `e` or `p` (not hex) into float64 when it must choose.
    pub prefers_float: bool,
}

fn parse_number(text: &str, pos: usize) -> Result<Number, ParseError> {
    let bad = || ParseError {
        pos,
        what: format!("bad number syntax: {text:?}"),
    };
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.ends_with('i') {
        return err(pos, "complex numbers are not supported");
    }
    if body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return Err(bad());
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let (radix, digits) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let int = u64::from_str_radix(digits, radix).ok().and_then(|u| {
        if neg {
            if u <= 1u64 << 63 {
                Some((u as i128).wrapping_neg() as i64)
            } else {
                None
            }
        } else {
            i64::try_from(u).ok()
        }
    });
    if radix == 16 && (lower.contains('p') || lower.contains('.')) {
        return err(pos, "hexadecimal floats are not supported");
    }
    let float = if radix == 10 {
        lower.parse::<f64>().ok().filter(|f| f.is_finite())
    } else {
        int.map(|i| i as f64)
    }
    .map(|f| if neg { -f } else { f });
    if int.is_none() && float.is_none() {
        return Err(bad());
    }
    if int.is_none() && !lower.contains(['.', 'e']) {
        return err(pos, format!("integer overflow: {text:?}"));
    }
    if radix == 10
        && !lower
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
    {
        return Err(bad());
    }
    let prefers_float = radix == 10 && lower.contains(['.', 'e']);
    // Go's parser also marks an integral float constant (1.0, 1e3) usable as an integer.
    let int = int.or_else(|| {
        float.and_then(|f| {
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                Some(f as i64)
            } else {
                None
            }
        })
    });
    Ok(Number {
        int,
        float,
        prefers_float,
    })
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(Vec<u8>),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Template(usize, String, Option<Pipe>),
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(Vec<u8>),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Pipe(Box<Pipe>),
    Chain(Box<Arg>, Vec<String>),
}

/// A parsed template: its body and the templates it defines.
#[derive(Debug)]
pub(crate) struct Tree {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

pub(crate) fn parse(src: &str, is_func: &dyn Fn(&str) -> bool) -> Result<Tree, ParseError> {
    let toks = Lexer::run(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        vars: vec!["$".into()],
        defines: HashMap::new(),
        is_func,
        depth: 0,
        range_depth: 0,
    };
    let (root, end) = p.list(true)?;
    if let Some((what, pos)) = end {
        return err(pos, format!("unexpected {{{{{what}}}}}"));
    }
    Ok(Tree {
        root,
        defines: p.defines,
    })
}

struct Parser<'f> {
    toks: Vec<(Tok, usize)>,
    i: usize,
    vars: Vec<String>,
    defines: HashMap<String, Vec<Node>>,
    is_func: &'f dyn Fn(&str) -> bool,
    depth: usize,
    range_depth: usize,
}

type ListEnd = Option<(&'static str, usize)>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.0)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(0, |t| t.1)
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks.get(self.i).cloned().unwrap_or((Tok::Eof, 0));
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while *self.peek() == Tok::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> (Tok, usize) {
        self.skip_space();
        self.next()
    }

    fn expect_right(&mut self, ctx: &str) -> Result<(), ParseError> {
        let (t, pos) = self.next_non_space();
        if t != Tok::Right {
            return err(pos, format!("unexpected token in {ctx}"));
        }
        Ok(())
    }

    /// Parses nodes until `{{end}}`/`{{else}}` (returned, consumed up to the keyword) or EOF.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, ListEnd), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let (t, pos) = self.next();
            match t {
                Tok::Eof => {
                    if top {
                        return Ok((nodes, None));
                    }
                    return err(pos, "unexpected EOF");
                }
                Tok::Text(s) => nodes.push(Node::Text(s.into_bytes())),
                Tok::Left => {
                    self.skip_space();
                    let (t, kpos) = (self.peek().clone(), self.pos());
                    match t {
                        Tok::Keyword("end") => {
                            self.i += 1;
                            self.expect_right("end")?;
                            return Ok((nodes, Some(("end", kpos))));
                        }
                        Tok::Keyword("else") => {
                            self.i += 1;
                            return Ok((nodes, Some(("else", kpos))));
                        }
                        Tok::Keyword("define") if top => {
                            self.i += 1;
                            self.define(kpos)?;
                        }
                        Tok::Keyword(_) => {
                            self.i += 1;
                            nodes.push(self.keyword(&t, kpos)?);
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return err(pos, "unexpected token"),
            }
        }
    }

    fn define(&mut self, pos: usize) -> Result<(), ParseError> {
        let (t, npos) = self.next_non_space();
        let Tok::Str(name) = t else {
            return err(npos, "define name must be a string");
        };
        self.expect_right("define")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (body, end) = self.nested_list(pos)?;
        self.vars = saved;
        if !matches!(end, Some(("end", _))) {
            return err(pos, "unexpected {{else}} in define");
        }
        self.add_define(String::from_utf8_lossy(&name).into_owned(), body, pos)
    }

    fn add_define(&mut self, name: String, body: Vec<Node>, pos: usize) -> Result<(), ParseError> {
        let empty = body
            .iter()
            .all(|n| matches!(n, Node::Text(t) if t.iter().all(|&c| is_space(c))));
        if let Some(old) = self.defines.get(&name) {
            let old_empty = old
                .iter()
                .all(|n| matches!(n, Node::Text(t) if t.iter().all(|&c| is_space(c))));
            // Go lets an empty definition coexist with another; two non-empty ones clash.
            if !old_empty && !empty {
                return err(
                    pos,
                    format!("template: multiple definition of template {name:?}"),
                );
            }
            if empty {
                return Ok(());
            }
        }
        self.defines.insert(name, body);
        Ok(())
    }

    fn nested_list(&mut self, pos: usize) -> Result<(Vec<Node>, ListEnd), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(pos, "actions nested too deeply");
        }
        let r = self.list(false);
        self.depth -= 1;
        r
    }

    fn keyword(&mut self, kw: &Tok, pos: usize) -> Result<Node, ParseError> {
        let Tok::Keyword(k) = kw else {
            return err(pos, "unexpected token");
        };
        match *k {
            "if" | "with" | "range" => self.control(k, pos),
            "block" => {
                let (t, npos) = self.next_non_space();
                let Tok::Str(name) = t else {
                    return err(npos, "block name must be a string");
                };
                let name = String::from_utf8_lossy(&name).into_owned();
                let pipe = self.pipeline("block", true)?;
                let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let (body, end) = self.nested_list(pos)?;
                self.vars = saved;
                if !matches!(end, Some(("end", _))) {
                    return err(pos, "unexpected {{else}} in block");
                }
                self.add_define(name.clone(), body, pos)?;
                Ok(Node::Template(pos, name, Some(pipe)))
            }
            "template" => {
                let (t, npos) = self.next_non_space();
                let Tok::Str(name) = t else {
                    return err(npos, "template name must be a string");
                };
                let name = String::from_utf8_lossy(&name).into_owned();
                self.skip_space();
                if *self.peek() == Tok::Right {
                    self.i += 1;
                    return Ok(Node::Template(pos, name, None));
                }
                let pipe = self.pipeline("template", false)?;
                Ok(Node::Template(pos, name, Some(pipe)))
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return err(pos, format!("{{{{{k}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(k)?;
                Ok(if *k == "break" {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            _ => err(pos, format!("unexpected <{k}>")),
        }
    }

    fn control(&mut self, k: &str, pos: usize) -> Result<Node, ParseError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(k, k == "range")?;
        if k == "range" {
            self.range_depth += 1;
        }
        let body = self.nested_list(pos);
        if k == "range" {
            self.range_depth -= 1;
        }
        let (body, end) = body?;
        let mut els = Vec::new();
        if let Some(("else", epos)) = end {
            self.skip_space();
            if k == "if" && *self.peek() == Tok::Keyword("if") {
                // `else if` is an `if` nested in the else branch sharing its `end`.
                let ipos = self.pos();
                self.i += 1;
                els.push(self.control("if", ipos)?);
            } else {
                self.expect_right("else")?;
                let (e, end2) = self.nested_list(epos)?;
                if !matches!(end2, Some(("end", _))) {
                    return err(epos, "expected end; found {{else}}");
                }
                els = e;
            }
        }
        self.vars.truncate(mark);
        Ok(match k {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }

    fn pipeline(&mut self, ctx: &str, allow_two: bool) -> Result<Pipe, ParseError> {
        self.skip_space();
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Look ahead for `$x :=`, `$x =` or (range) `$i, $v :=`.
        if let Tok::Var(_) = self.peek() {
            let save = self.i;
            let mut names = Vec::new();
            loop {
                let (t, _) = self.next();
                let Tok::Var(v) = t else { break };
                self.skip_space();
                let (op, opos) = self.next();
                match op {
                    Tok::Declare | Tok::Assign => {
                        names.push(v);
                        is_assign = op == Tok::Assign;
                        decl = names;
                        break;
                    }
                    Tok::Comma if allow_two && names.is_empty() => {
                        names.push(v);
                        self.skip_space();
                    }
                    Tok::Comma => return err(opos, format!("too many declarations in {ctx}")),
                    _ => break,
                }
            }
            if decl.is_empty() {
                self.i = save;
            } else {
                for v in &decl {
                    if is_assign {
                        if !self.vars.contains(v) {
                            return err(pos, format!("undefined variable {v:?}"));
                        }
                    } else {
                        self.vars.push(v.clone());
                    }
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Tok::Right | Tok::RParen => {
                    let end = self.peek().clone();
                    if end == Tok::RParen && ctx != "parenthesized pipeline" {
                        return err(self.pos(), "unexpected right paren");
                    }
                    if end == Tok::Right && ctx == "parenthesized pipeline" {
                        return err(self.pos(), "unclosed left paren");
                    }
                    self.i += 1;
                    if cmds.is_empty() {
                        return err(pos, format!("missing value for {ctx}"));
                    }
                    break;
                }
                _ => cmds.push(self.command()?),
            }
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_))
            ) {
                return err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(Pipe {
            pos,
            decl,
            is_assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Cmd, ParseError> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Tok::Right | Tok::RParen => break,
                Tok::Pipe => {
                    if args.is_empty() {
                        return err(self.pos(), "missing command");
                    }
                    self.i += 1;
                    break;
                }
                _ => {
                    let a = self.operand()?;
                    args.push(a);
                    match self.peek() {
                        Tok::Space | Tok::Right | Tok::RParen | Tok::Pipe => {}
                        _ => return err(self.pos(), "unexpected token in operand"),
                    }
                }
            }
        }
        if args.is_empty() {
            return err(pos, "empty command");
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Arg, ParseError> {
        let (t, pos) = self.next();
        let term = match t {
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Number(Number {
                int: Some(c),
                float: Some(c as f64),
                prefers_float: false,
            }),
            Tok::Number(n) => Arg::Number(parse_number(&n, pos)?),
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return err(pos, format!("undefined variable {v:?}"));
                }
                Arg::Var(v, Vec::new())
            }
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return err(pos, format!("function {name:?} not defined"));
                }
                Arg::Func(name)
            }
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return err(pos, "parentheses nested too deeply");
                }
                let p = self.pipeline("parenthesized pipeline", false);
                self.depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            Tok::Keyword(k) => return err(pos, format!("unexpected <{k}> in operand")),
            _ => return err(pos, "unexpected token in operand"),
        };
        let mut fields = Vec::new();
        while let Tok::Field(f) = self.peek() {
            fields.push(f.clone());
            self.i += 1;
        }
        if fields.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                return err(pos, "unexpected . after term");
            }
            other => Arg::Chain(Box::new(other), fields),
        })
    }
}

/// 1-based line and column (in bytes, as Go counts) of a byte offset.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..pos.min(src.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&c| c != b'\n').count();
    (line, col)
}
