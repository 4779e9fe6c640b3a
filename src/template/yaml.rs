//! ESO's `toYaml` (external-secrets runtime/template/v2/yaml.go): sigs.k8s.io/yaml's Marshal, which
//! is encoding/json followed by gopkg.in/yaml.v2 (a port of libyaml). The emitter here is
//! libyaml's own (libyaml-safer), fed the events yaml.v2 would produce: yaml.v2's key order and
//! its choice of scalar style (plain unless the text would read back as another type).

use std::cmp::Ordering;

use libyaml_safer::{Emitter, Encoding, Event, MappingStyle, ScalarStyle, SequenceStyle};
use regex::Regex;
use std::sync::OnceLock;

use super::value::{Value, format_float_g};

/// Go's json.Marshal turns each byte that is not UTF-8 into U+FFFD.
fn go_json_text(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('\u{fffd}');
        }
    }
    out
}

fn re(cell: &'static OnceLock<Option<Regex>>, pat: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pat).ok()).as_ref()
}

fn matches(cell: &'static OnceLock<Option<Regex>>, pat: &str, s: &str) -> bool {
    re(cell, pat).is_some_and(|r| r.is_match(s))
}

/// yaml.v2's parseTimestamp: the four layouts it tries with Go's time.Parse.
fn is_timestamp(s: &str) -> bool {
    static TS: OnceLock<Option<Regex>> = OnceLock::new();
    let pat = r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?$";
    let Some(c) = re(&TS, pat).and_then(|r| r.captures(s)) else {
        return false;
    };
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(1), num(2), num(3)) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if d < 1 || d > days {
        return false;
    }
    let time_ok = |h: usize| match (num(h), num(h + 1), num(h + 2)) {
        (Some(hh), Some(mm), Some(ss)) => hh < 24 && mm < 60 && ss < 60,
        _ => true,
    };
    time_ok(4) && time_ok(7)
}

/// strconv.ParseUint(s, 0, 64).
fn parse_go_uint(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(h) = l.strip_prefix("0x") {
        (16, h)
    } else if let Some(b) = l.strip_prefix("0b") {
        (2, b)
    } else if let Some(o) = l.strip_prefix("0o") {
        (8, o)
    } else if l.len() > 1 && l.starts_with('0') {
        (8, &l[1..])
    } else {
        (10, l.as_str())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// What yaml.v2's resolve makes of a plain scalar.
#[derive(PartialEq)]
pub(crate) enum Resolved {
    Str,
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A timestamp-looking value: yaml.v2 keeps it a string for an interface{} target.
    Timestamp,
    Merge,
}

/// yaml.v2's resolve("", s): YAML 1.1's booleans (`yes`, `on`, `n` ...), nulls, numbers with
/// Go's base prefixes and underscores, timestamps.
pub(crate) fn resolve(s: &str) -> Resolved {
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return Resolved::Str,
    };
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    match hint {
        b'.' => match go_parse_float(s) {
            Some(f) => Resolved::Float(f),
            None => Resolved::Str,
        },
        b'D' | b'S' => {
            if is_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain = s.replace('_', "");
            if let Some(i) = super::funcs::parse_go_int(&plain) {
                return Resolved::Int(i);
            }
            if let Some(u) = parse_go_uint(&plain) {
                return Resolved::Uint(u);
            }
            static FLOAT: OnceLock<Option<Regex>> = OnceLock::new();
            if matches(
                &FLOAT,
                r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$",
                &plain,
            ) && let Some(f) = go_parse_float(&plain)
            {
                return Resolved::Float(f);
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// strconv.ParseFloat for the decimal forms YAML allows: out of range is an error, not ±Inf.
fn go_parse_float(s: &str) -> Option<f64> {
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn is_base60_float(s: &str) -> bool {
    static B60: OnceLock<Option<Regex>> = OnceLock::new();
    matches(
        &B60,
        r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$",
        s,
    )
}

/// yaml.v2's map key order: numbers inside keys compare by value, letters before other runes.
fn natural_less(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let digits = |r: &[char], n: &mut i64| {
            let mut k = i;
            while k < r.len() && r[k].is_ascii_digit() {
                *n = n
                    .wrapping_mul(10)
                    .wrapping_add(i64::from(r[k] as u8 - b'0'));
                k += 1;
            }
            k
        };
        let (ai, bi) = (digits(&ar, &mut an), digits(&br, &mut bn));
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// A value after Go's JSON round trip, as yaml.v2 holds it.
enum Node {
    Scalar(String, ScalarStyle),
    /// A string yaml.v2 writes differently from libyaml (see [`v2_quoted`]).
    Quirk(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

fn plain(s: impl Into<String>) -> Node {
    Node::Scalar(s.into(), ScalarStyle::Plain)
}

/// Strings on which yaml.v2's emitter departs from libyaml's: characters beyond U+FFFF (yaml.v2
/// counts them unprintable) and a leading byte-order mark (yaml.v2 then escapes every character).
/// Both are always double-quoted there.
fn is_quirk(s: &str) -> bool {
    s.starts_with('\u{feff}') || s.chars().any(|c| c > '\u{ffff}')
}

/// yaml.v2's double-quoted scalar for a quirk string (short strings: no folding at 80 columns).
fn v2_quoted(s: &str) -> String {
    let bom = s.starts_with('\u{feff}');
    let mut out = String::from("\"");
    for c in s.chars() {
        let printable = matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}')
            || (('\u{e000}'..='\u{fffd}').contains(&c) && c != '\u{feff}');
        let brk = matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if printable && !bom && !brk && c != '"' && c != '\\' {
            out.push(c);
            continue;
        }
        out.push('\\');
        let short = match c {
            '\0' => Some('0'),
            '\u{7}' => Some('a'),
            '\u{8}' => Some('b'),
            '\t' => Some('t'),
            '\n' => Some('n'),
            '\u{b}' => Some('v'),
            '\u{c}' => Some('f'),
            '\r' => Some('r'),
            '\u{1b}' => Some('e'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\u{85}' => Some('N'),
            '\u{a0}' => Some('_'),
            '\u{2028}' => Some('L'),
            '\u{2029}' => Some('P'),
            _ => None,
        };
        let v = u32::from(c);
        match short {
            Some(e) => out.push(e),
            None if v <= 0xff => out.push_str(&format!("x{v:02X}")),
            None if v <= 0xffff => out.push_str(&format!("u{v:04X}")),
            None => out.push_str(&format!("U{v:08X}")),
        }
    }
    out.push('"');
    out
}

/// yaml.v2's stringv: literal if multi-line, plain if it reads back as a string, else quoted.
fn string_node(s: String) -> Node {
    if is_quirk(&s) {
        return Node::Quirk(s);
    }
    let style = if s.contains('\n') {
        ScalarStyle::Literal
    } else if resolve(&s) == Resolved::Str && !is_base60_float(&s) {
        ScalarStyle::Plain
    } else {
        ScalarStyle::DoubleQuoted
    };
    Node::Scalar(s, style)
}

/// Go's JSON number text read back by yaml.v2 and printed by it.
fn number_node(json: &str) -> Node {
    match resolve(json) {
        Resolved::Int(i) => plain(i.to_string()),
        Resolved::Uint(u) => plain(u.to_string()),
        _ => plain(format_float_g(json.parse::<f64>().unwrap_or(0.0), -1)),
    }
}

/// Characters that Go's JSON leaves raw but libyaml's reader refuses (non-printable): yaml.v2
/// then fails to read the JSON back, and toYaml is "".
fn unreadable(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}'))
}

/// U+0085 is the one line break Go's JSON leaves raw: yaml.v2 reads the JSON string back with
/// YAML's line folding (a break and the blanks around it become a space; each further break a
/// newline).
fn fold_nel(s: String) -> String {
    if !s.contains('\u{85}') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{85}' {
            out.push(c);
            continue;
        }
        while out.ends_with([' ', '\t']) {
            out.pop();
        }
        let mut breaks = 1;
        while let Some(&n) = chars.peek() {
            match n {
                ' ' | '\t' => {}
                '\u{85}' => breaks += 1,
                _ => break,
            }
            chars.next();
        }
        if breaks == 1 {
            out.push(' ');
        } else {
            out.extend(std::iter::repeat_n('\n', breaks - 1));
        }
    }
    out
}

/// None when Go's json.Marshal fails (NaN or infinite floats): toYaml is then "".
fn to_node(v: &Value, depth: usize) -> Option<Node> {
    if depth > 200 {
        return None;
    }
    Some(match v {
        Value::Nil => plain("null"),
        Value::Bool(b) => plain(if *b { "true" } else { "false" }),
        Value::Int(n, _) => plain(n.to_string()),
        Value::Float(f) => number_node(&super::funcs::json_float(*f).ok()?),
        Value::Time(t) => string_node(t.json().trim_matches('"').to_string()),
        Value::Str(s) => {
            let t = go_json_text(s);
            if unreadable(&t) {
                return None;
            }
            string_node(fold_nel(t))
        }
        Value::List(items, _) => Node::Seq(
            items
                .iter()
                .map(|x| to_node(x, depth + 1))
                .collect::<Option<_>>()?,
        ),
        Value::Map(m, _) => {
            let mut pairs: Vec<(String, Node)> = m
                .borrow()
                .iter()
                .map(|(k, x)| Some((go_json_text(k), to_node(x, depth + 1)?)))
                .collect::<Option<_>>()?;
            // A key that spans lines does not read back: yaml.v2 fails, toYaml is "".
            if pairs
                .iter()
                .any(|(k, _)| unreadable(k) || k.contains('\u{85}'))
            {
                return None;
            }
            pairs.sort_by(|a, b| natural_less(&a.0, &b.0));
            Node::Map(
                pairs
                    .into_iter()
                    .map(|(k, x)| (string_node(k), x))
                    .collect(),
            )
        }
    })
}

/// Placeholders for quirk strings: emitted plain, replaced by yaml.v2's form afterwards.
struct Quirks {
    nonce: u64,
    texts: Vec<String>,
}

impl Quirks {
    fn token(&self, i: usize) -> String {
        format!("\u{f8ff}{:016x}q{i}\u{f8ff}", self.nonce)
    }
}

fn emit(e: &mut Emitter<'_>, n: Node, q: &mut Quirks) -> Result<(), libyaml_safer::Error> {
    match n {
        Node::Scalar(s, style) => e.emit(Event::scalar(None, None, &s, true, true, style)),
        Node::Quirk(s) => {
            let token = q.token(q.texts.len());
            q.texts.push(v2_quoted(&s));
            e.emit(Event::scalar(
                None,
                None,
                &token,
                true,
                true,
                ScalarStyle::Plain,
            ))
        }
        Node::Seq(items) => {
            e.emit(Event::sequence_start(
                None,
                None,
                true,
                SequenceStyle::Block,
            ))?;
            for x in items {
                emit(e, x, q)?;
            }
            e.emit(Event::sequence_end())
        }
        Node::Map(pairs) => {
            e.emit(Event::mapping_start(None, None, true, MappingStyle::Block))?;
            for (k, x) in pairs {
                emit(e, k, q)?;
                emit(e, x, q)?;
            }
            e.emit(Event::mapping_end())
        }
    }
}

/// `toYaml VALUE`: the YAML ESO writes for a value, without the final newline; "" when Go could
/// not marshal it (as ESO swallows the error).
pub(crate) fn to_yaml(v: &Value) -> Vec<u8> {
    let Some(node) = to_node(v, 0) else {
        return Vec::new();
    };
    let mut quirks = Quirks {
        nonce: rand::random(),
        texts: Vec::new(),
    };
    let mut out = Vec::new();
    let ok = {
        let mut e = Emitter::new();
        e.set_output_string(&mut out);
        e.set_unicode(true);
        e.emit(Event::stream_start(Encoding::Utf8))
            .and_then(|()| e.emit(Event::document_start(None, &[], true)))
            .and_then(|()| emit(&mut e, node, &mut quirks))
            .and_then(|()| e.emit(Event::document_end(true)))
            .and_then(|()| e.emit(Event::stream_end()))
            .and_then(|()| e.flush())
            .is_ok()
    };
    if !ok {
        return Vec::new();
    }
    if !quirks.texts.is_empty() {
        let mut text = String::from_utf8_lossy(&out).into_owned();
        for (i, q) in quirks.texts.iter().enumerate() {
            text = text.replacen(&quirks.token(i), q, 1);
        }
        out = text.into_bytes();
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_with_numbers_by_value() {
        let mut keys = vec!["c10", "c2", "b", "a1", "a01", "A", "_x"];
        keys.sort_by(|a, b| natural_less(a, b));
        assert_eq!(keys, vec!["_x", "A", "a1", "a01", "b", "c2", "c10"]);
    }

    #[test]
    fn yaml_11_words_and_numbers_resolve_as_yaml_v2_does() {
        assert!(resolve("yes") == Resolved::Bool(true));
        assert!(resolve("0x1F") == Resolved::Int(31));
        assert!(resolve("1_000") == Resolved::Int(1000));
        assert!(resolve("2001-12-14") == Resolved::Timestamp);
        assert!(resolve("2001-02-30") == Resolved::Str);
        assert!(resolve("1e400") == Resolved::Str);
        assert!(resolve("hello") == Resolved::Str);
    }
}

// ---- fromYaml ----

/// A YAML node as yaml.v2 composes it (aliases point at the anchored node).
enum YNode {
    Scalar {
        value: String,
        tag: Option<String>,
        plain: bool,
    },
    Seq(Vec<usize>),
    Map(Vec<(usize, usize)>),
    Alias(usize),
}

/// A value as yaml.v2 decodes it into `interface{}`.
#[derive(Clone)]
enum YVal {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<YVal>),
    /// Keys in first-seen order, a repeated key replacing the value.
    Map(Vec<(YVal, YVal)>),
}

/// yaml.v2's reader error for the first byte sequence it refuses (its texts, not libyaml's).
fn reader_problem(input: &[u8]) -> &'static str {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let width = match b {
            _ if b & 0x80 == 0 => 1,
            _ if b & 0xe0 == 0xc0 => 2,
            _ if b & 0xf0 == 0xe0 => 3,
            _ if b & 0xf8 == 0xf0 => 4,
            _ => return "invalid leading UTF-8 octet",
        };
        if i + width > input.len() {
            return "incomplete UTF-8 octet sequence";
        }
        let mut v = u32::from(match width {
            1 => b & 0x7f,
            2 => b & 0x1f,
            3 => b & 0x0f,
            _ => b & 0x07,
        });
        for k in 1..width {
            let t = input[i + k];
            if t & 0xc0 != 0x80 {
                return "invalid trailing UTF-8 octet";
            }
            v = (v << 6) + u32::from(t & 0x3f);
        }
        let ok_len = matches!((width, v), (1, _))
            || (width == 2 && v >= 0x80)
            || (width == 3 && v >= 0x800)
            || (width == 4 && v >= 0x10000);
        if !ok_len {
            return "invalid length of a UTF-8 sequence";
        }
        if (0xd800..=0xdfff).contains(&v) || v > 0x10ffff {
            return "invalid Unicode character";
        }
        let printable = matches!(v, 0x09 | 0x0a | 0x0d | 0x20..=0x7e | 0x85 | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..=0x10ffff)
            // A byte-order mark is allowed at the very start.
            || (v == 0xfeff && i == 0);
        if !printable {
            return "control characters are not allowed";
        }
        i += width;
    }
    "invalid input"
}

/// yaml.v2's parser error text: "yaml: line N: problem" with its own line rule (0-based
/// problem line, +1 for scanner errors; else the context line; none for 0).
fn parse_error(e: &libyaml_safer::Error, input: &[u8]) -> String {
    if e.kind() == libyaml_safer::ErrorKind::Reader {
        return format!("yaml: {}", reader_problem(input));
    }
    let scanner = e.kind() == libyaml_safer::ErrorKind::Scanner;
    let pl = e.problem_mark().map_or(0, |m| m.line);
    let cl = e.context_mark().map_or(0, |m| m.line);
    let line = if pl != 0 { pl + u64::from(scanner) } else { cl };
    let problem = e.problem();
    let problem = if problem.is_empty() {
        "unknown problem parsing YAML content"
    } else {
        problem
    };
    if line != 0 {
        format!("yaml: line {line}: {problem}")
    } else {
        format!("yaml: {problem}")
    }
}

struct Composer<'i> {
    input: &'i [u8],
    nodes: Vec<YNode>,
    anchors: std::collections::HashMap<String, usize>,
}

impl Composer<'_> {
    fn push(&mut self, n: YNode, anchor: Option<String>) -> usize {
        self.nodes.push(n);
        let id = self.nodes.len() - 1;
        if let Some(a) = anchor {
            self.anchors.insert(a, id);
        }
        id
    }

    /// The node starting with `ev`; None at the end of the document.
    fn node(
        &mut self,
        ev: libyaml_safer::EventData,
        events: &mut dyn Iterator<Item = Result<Event, libyaml_safer::Error>>,
    ) -> Result<Option<usize>, String> {
        use libyaml_safer::EventData as E;
        let input = self.input;
        let next =
            |events: &mut dyn Iterator<Item = Result<Event, libyaml_safer::Error>>| match events
                .next()
            {
                Some(Ok(e)) => Ok(e.data),
                Some(Err(e)) => Err(parse_error(&e, input)),
                None => Err("yaml: unexpected end of stream".to_string()),
            };
        Ok(Some(match ev {
            E::Scalar {
                anchor,
                tag,
                value,
                plain_implicit,
                ..
            } => self.push(
                YNode::Scalar {
                    value,
                    tag,
                    plain: plain_implicit,
                },
                anchor,
            ),
            E::Alias { anchor } => match self.anchors.get(&anchor) {
                Some(&id) => self.push(YNode::Alias(id), None),
                None => return Err(format!("yaml: unknown anchor '{anchor}' referenced")),
            },
            E::SequenceStart { anchor, .. } => {
                let id = self.push(YNode::Seq(Vec::new()), anchor);
                let mut items = Vec::new();
                loop {
                    let ev = next(events)?;
                    if matches!(ev, E::SequenceEnd) {
                        break;
                    }
                    if let Some(c) = self.node(ev, events)? {
                        items.push(c);
                    }
                }
                self.nodes[id] = YNode::Seq(items);
                id
            }
            E::MappingStart { anchor, .. } => {
                let id = self.push(YNode::Map(Vec::new()), anchor);
                let mut pairs = Vec::new();
                loop {
                    let ev = next(events)?;
                    if matches!(ev, E::MappingEnd) {
                        break;
                    }
                    let k = self.node(ev, events)?;
                    let ev = next(events)?;
                    let v = self.node(ev, events)?;
                    if let (Some(k), Some(v)) = (k, v) {
                        pairs.push((k, v));
                    }
                }
                self.nodes[id] = YNode::Map(pairs);
                id
            }
            _ => return Ok(None),
        }))
    }
}

struct Decoder<'a> {
    nodes: &'a [YNode],
    /// Nodes decoded so far: a bound on alias expansion ("billion laughs").
    budget: usize,
    active: Vec<usize>,
}

impl Decoder<'_> {
    fn scalar(&self, value: &str, tag: Option<&str>, plain: bool) -> Result<YVal, String> {
        let tag = tag.filter(|t| *t != "!");
        let Some(tag) = tag else {
            if !plain {
                return Ok(YVal::Str(value.to_string()));
            }
            return Ok(match resolve(value) {
                Resolved::Null => YVal::Null,
                Resolved::Bool(b) => YVal::Bool(b),
                Resolved::Int(i) => YVal::Int(i),
                Resolved::Uint(u) => YVal::Uint(u),
                Resolved::Float(f) => YVal::Float(f),
                Resolved::Str | Resolved::Timestamp | Resolved::Merge => {
                    YVal::Str(value.to_string())
                }
            });
        };
        let short = tag.strip_prefix("tag:yaml.org,2002:");
        match short {
            Some("str") => Ok(YVal::Str(value.to_string())),
            Some("binary") => {
                let clean: Vec<u8> = value
                    .bytes()
                    .filter(|c| !matches!(c, b'\r' | b'\n'))
                    .collect();
                match super::funcs::b64_decode(&clean) {
                    Ok(b) => Ok(YVal::Str(go_json_text(&b))),
                    Err(_) => Err("yaml: !!binary value contains invalid base64 data".into()),
                }
            }
            Some(kind @ ("int" | "float" | "bool" | "null" | "timestamp")) => {
                let r = resolve(value);
                let ok = match (&r, kind) {
                    (Resolved::Int(i), "float") => return Ok(YVal::Float(*i as f64)),
                    (Resolved::Uint(u), "float") => return Ok(YVal::Float(*u as f64)),
                    (Resolved::Int(_) | Resolved::Uint(_), "int") => true,
                    (Resolved::Float(_), "float") => true,
                    (Resolved::Bool(_), "bool") => true,
                    (Resolved::Null, "null") => true,
                    (Resolved::Timestamp, "timestamp") => true,
                    _ => false,
                };
                if !ok {
                    let rtag = match r {
                        Resolved::Str | Resolved::Merge => "!!str",
                        Resolved::Null => "!!null",
                        Resolved::Bool(_) => "!!bool",
                        Resolved::Int(_) | Resolved::Uint(_) => "!!int",
                        Resolved::Float(_) => "!!float",
                        Resolved::Timestamp => "!!timestamp",
                    };
                    // yaml.v2 quotes the scalar; fromYaml hands the text to the template.
                    return Err(format!(
                        "yaml: cannot decode {rtag} `{value}` as a !!{kind}"
                    ));
                }
                self.scalar(value, None, true)
            }
            // Other tags (`!foo`, `!!map` on a scalar ...) do not resolve: the text as it is.
            _ => Ok(YVal::Str(value.to_string())),
        }
    }

    fn decode(&mut self, id: usize) -> Result<YVal, String> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or("yaml: document contains excessive aliasing")?;
        match &self.nodes[id] {
            YNode::Scalar { value, tag, plain } => self.scalar(value, tag.as_deref(), *plain),
            YNode::Alias(target) => {
                let target = *target;
                if self.active.contains(&target) {
                    return Err("yaml: anchor value contains itself".into());
                }
                self.active.push(target);
                let v = self.decode(target);
                self.active.pop();
                v
            }
            YNode::Seq(items) => {
                let items = items.clone();
                let mut out = Vec::new();
                for c in items {
                    out.push(self.decode(c)?);
                }
                Ok(YVal::Seq(out))
            }
            YNode::Map(pairs) => {
                let pairs = pairs.clone();
                let mut out: Vec<(YVal, YVal)> = Vec::new();
                for (k, v) in pairs {
                    if self.is_merge(k) {
                        self.merge(v, &mut out)?;
                        continue;
                    }
                    let key = self.decode(k)?;
                    if matches!(key, YVal::Seq(_) | YVal::Map(_)) {
                        return Err(format!("yaml: invalid map key: {}", go_syntax(&key, true)));
                    }
                    let val = self.decode(v)?;
                    set(&mut out, key, val);
                }
                Ok(YVal::Map(out))
            }
        }
    }

    fn is_merge(&self, id: usize) -> bool {
        matches!(&self.nodes[id], YNode::Scalar { value, tag, plain }
            if value == "<<" && (*plain || tag.as_deref() == Some("tag:yaml.org,2002:merge")))
    }

    /// yaml.v2's merge key: a map, or a list of maps where earlier ones win; later keys of the
    /// mapping itself override.
    fn merge(&mut self, id: usize, out: &mut Vec<(YVal, YVal)>) -> Result<(), String> {
        const WANT: &str = "yaml: map merge requires map or sequence of maps as the value";
        let resolved = |d: &Self, i: usize| match &d.nodes[i] {
            YNode::Alias(t) => *t,
            _ => i,
        };
        let target = resolved(self, id);
        let sources: Vec<usize> = match &self.nodes[target] {
            YNode::Map(_) => vec![id],
            YNode::Seq(items) if !matches!(self.nodes[id], YNode::Alias(_)) => {
                items.iter().rev().copied().collect()
            }
            _ => return Err(WANT.into()),
        };
        for s in sources {
            if !matches!(self.nodes[resolved(self, s)], YNode::Map(_)) {
                return Err(WANT.into());
            }
            if let YVal::Map(pairs) = self.decode(s)? {
                for (k, v) in pairs {
                    set(out, k, v);
                }
            }
        }
        Ok(())
    }
}

fn set(out: &mut Vec<(YVal, YVal)>, key: YVal, val: YVal) {
    match out.iter_mut().find(|(k, _)| same_key(k, &key)) {
        Some(slot) => slot.1 = val,
        None => out.push((key, val)),
    }
}

/// Go's map key equality for decoded scalars (interface values: type and value).
fn same_key(a: &YVal, b: &YVal) -> bool {
    match (a, b) {
        (YVal::Null, YVal::Null) => true,
        (YVal::Bool(x), YVal::Bool(y)) => x == y,
        (YVal::Int(x), YVal::Int(y)) => x == y,
        (YVal::Uint(x), YVal::Uint(y)) => x == y,
        (YVal::Float(x), YVal::Float(y)) => x == y,
        (YVal::Str(x), YVal::Str(y)) => x == y,
        _ => false,
    }
}

/// fmt's `%#v` of a decoded value (yaml.v2 and sigs.k8s.io/yaml print keys and values so in
/// their messages); `top`: a nil interface prints `<nil>` at the top, `interface {}(nil)` inside.
fn go_syntax(v: &YVal, top: bool) -> String {
    match v {
        YVal::Null if top => "<nil>".into(),
        YVal::Null => "interface {}(nil)".into(),
        YVal::Bool(b) => b.to_string(),
        YVal::Int(i) => i.to_string(),
        YVal::Uint(u) => format!("0x{u:x}"),
        YVal::Float(f) => format_float_g(*f, -1),
        YVal::Str(s) => super::fmt::quote(s.as_bytes()),
        YVal::Seq(items) => format!(
            "[]interface {{}}{{{}}}",
            items
                .iter()
                .map(|x| go_syntax(x, false))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        YVal::Map(pairs) => {
            let mut parts: Vec<String> = pairs
                .iter()
                .map(|(k, x)| format!("{}:{}", go_syntax(k, false), go_syntax(x, false)))
                .collect();
            parts.sort();
            format!("map[interface {{}}]interface {{}}{{{}}}", parts.join(", "))
        }
    }
}

/// sigs.k8s.io/yaml's JSON conversion then encoding/json into `map[string]interface{}`:
/// keys become strings, numbers float64.
fn to_json_value(v: YVal) -> Result<Value, String> {
    Ok(match v {
        YVal::Null => Value::Nil,
        YVal::Bool(b) => Value::Bool(b),
        YVal::Int(i) => Value::Float(i as f64),
        YVal::Uint(u) => Value::Float(u as f64),
        YVal::Float(f) if !f.is_finite() => {
            return Err(format!(
                "json: unsupported value: {}",
                format_float_g(f, -1)
            ));
        }
        YVal::Float(f) => Value::Float(f),
        YVal::Str(s) => Value::str(s.into_bytes()),
        YVal::Seq(items) => Value::list(
            items
                .into_iter()
                .map(to_json_value)
                .collect::<Result<_, _>>()?,
        ),
        YVal::Map(pairs) => {
            let mut m = std::collections::BTreeMap::new();
            for (k, v) in pairs {
                let key = match k {
                    YVal::Str(s) => s,
                    YVal::Int(i) => i.to_string(),
                    YVal::Bool(b) => b.to_string(),
                    YVal::Float(f) => {
                        let s = format_float_g(f64::from(f as f32), -1);
                        match s.as_str() {
                            "+Inf" => ".inf".into(),
                            "-Inf" => "-.inf".into(),
                            "NaN" => ".nan".into(),
                            _ => float32_text(f as f32),
                        }
                    }
                    other => {
                        let ty = match other {
                            YVal::Uint(_) => "uint64",
                            _ => "%!s(<nil>)",
                        };
                        return Err(format!(
                            "Unsupported map key of type: {ty}, key: {}, value: {}",
                            go_syntax(&other, true),
                            go_syntax(&v, true)
                        ));
                    }
                };
                // encoding/json: a repeated key (after conversion) keeps the last value.
                m.insert(key.into_bytes(), to_json_value(v)?);
            }
            Value::map(m)
        }
    })
}

/// strconv.FormatFloat(f, 'g', -1, 32): the shortest digits that read back as the same float32.
fn float32_text(f: f32) -> String {
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let v: f64 = format!("{mant}e{exp}").parse().unwrap_or(0.0);
    format_float_g(v, -1)
}

/// `fromYaml TEXT`: the first YAML document as a `map[string]interface{}` (numbers float64), as
/// sigs.k8s.io/yaml reads it; on failure a map whose "Error" holds the message, as in ESO.
pub(crate) fn from_yaml(text: &[u8], budget: usize) -> Value {
    match from_yaml_inner(text, budget) {
        Ok(v) => v,
        Err(msg) => {
            let mut m = std::collections::BTreeMap::new();
            m.insert(b"Error".to_vec(), Value::str(msg.into_bytes()));
            Value::map(m)
        }
    }
}

fn from_yaml_inner(text: &[u8], budget: usize) -> Result<Value, String> {
    use libyaml_safer::EventData as E;
    let wrap_yaml = |e: String| format!("error converting YAML to JSON: {e}");
    let input: &[u8] = if text.is_empty() { b"\n" } else { text };
    let mut reader = input;
    let mut parser = libyaml_safer::Parser::new();
    parser.set_input_string(&mut reader);
    let mut events = parser;
    let mut composer = Composer {
        input,
        nodes: Vec::new(),
        anchors: std::collections::HashMap::new(),
    };
    let mut root = None;
    // Up to the first document's root node; later documents are not read.
    while let Some(ev) = events.next() {
        let ev = ev.map_err(|e| wrap_yaml(parse_error(&e, input)))?;
        match ev.data {
            E::StreamStart { .. } | E::DocumentStart { .. } => {}
            E::StreamEnd | E::DocumentEnd { .. } => break,
            other => {
                root = composer.node(other, &mut events).map_err(wrap_yaml)?;
                break;
            }
        }
    }
    let Some(root) = root else {
        return Ok(Value::map(std::collections::BTreeMap::new()));
    };
    let mut d = Decoder {
        nodes: &composer.nodes,
        budget,
        active: Vec::new(),
    };
    let v = d.decode(root).map_err(wrap_yaml)?;
    let v = to_json_value(v).map_err(wrap_yaml)?;
    match v {
        Value::Map(..) => Ok(v),
        Value::Nil => Ok(Value::map(std::collections::BTreeMap::new())),
        other => Err(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                Value::List(..) => "array",
                Value::Str(_) => "string",
                Value::Bool(_) => "bool",
                _ => "number",
            }
        )),
    }
}
