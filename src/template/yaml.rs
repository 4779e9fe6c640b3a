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
