//! Go's template built-ins and sprig's text functions (as ESO exposes them), with Go's argument
//! type checks: a function given the wrong type or count fails as it does in Go.
//! Error messages describe types and counts, never values.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest as _;

use super::date::{self, GoTime};
use super::fmt::{quote, sprint, sprintf, sprintln};
use super::value::{ElemTy, IntTy, Value, format_float_g, go_str};

pub(crate) enum FnError {
    Msg(String),
    /// A value grew past the output cap.
    TooBig,
}

pub(crate) type R = Result<Value, FnError>;

fn fail<T>(m: impl Into<String>) -> Result<T, FnError> {
    Err(FnError::Msg(m.into()))
}

/// Functions sprig has that secret-sync does not offer (yet): a template using one fails to parse
/// with a message saying so, rather than rendering differently from ESO.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "genPrivateKey",
    "derivePassword",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "semver",
    "semverCompare",
    "urlParse",
    "urlJoin",
];

/// Every name a template may call: Go's built-ins and the supported sprig functions.
pub(crate) const SUPPORTED: &[&str] = &[
    "swapcase",
    "seq",
    "toDecimal",
    "add1f",
    "addf",
    "subf",
    "divf",
    "mulf",
    "maxf",
    "minf",
    // Go built-ins (sprig's `slice` replaces Go's, as in ESO)
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    // strings
    "abbrev",
    "trunc",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "repeat",
    "trimall",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "initials",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "shuffle",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "sha1sum",
    "sha256sum",
    "adler32sum",
    "toString",
    "atoi",
    "int64",
    "int",
    "float64",
    "split",
    "splitList",
    "splitn",
    "toStrings",
    "until",
    "untilStep",
    "add1",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "randInt",
    "biggest",
    "max",
    "min",
    "ceil",
    "floor",
    "round",
    "join",
    "sortAlpha",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "toJson",
    "toYaml",
    "snakecase",
    "camelcase",
    "kebabcase",
    "encryptAES",
    "decryptAES",
    "hello",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "wrap",
    "wrapWith",
    "abbrevboth",
    "typeIsLike",
    "ago",
    "date",
    "dateInZone",
    "dateModify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "mustDateModify",
    "mustToDate",
    "now",
    "toDate",
    "unixEpoch",
    "date_in_zone",
    "date_modify",
    "must_date_modify",
    "fromYaml",
    "bcrypt",
    "htpasswd",
    "toPrettyJson",
    "toRawJson",
    "mustFromJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "ternary",
    "deepCopy",
    "mustDeepCopy",
    "typeOf",
    "typeIs",
    "kindOf",
    "kindIs",
    "deepEqual",
    "getHostByName",
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "tuple",
    "list",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "values",
    "append",
    "mustAppend",
    "push",
    "mustPush",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "rest",
    "mustRest",
    "last",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "slice",
    "mustSlice",
    "concat",
    "dig",
    "chunk",
    "mustChunk",
    "randBytes",
    "uuidv4",
    "fail",
    "regexMatch",
    "mustRegexMatch",
    "regexFindAll",
    "mustRegexFindAll",
    "regexFind",
    "mustRegexFind",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
];

/// Evaluation steps a call costs beyond one: PKCS#12 key derivation (up to a million PBKDF
/// iterations per bag) and bcrypt (cost 10) take milliseconds to seconds, so a template can make
/// only a few dozen such calls within the default budget of 1,000,000 steps.
pub(crate) fn extra_steps(name: &str) -> u64 {
    match name {
        "bcrypt" | "htpasswd" => 20_000,
        n if n.contains("kcs12") || n.contains("KCS12") => 50_000,
        "rsaDecrypt" | "jwkPrivateKeyPem" | "jwkPublicKeyPem" => 1_000,
        _ => 0,
    }
}

pub(crate) fn is_supported(name: &str) -> bool {
    SUPPORTED.contains(&name) || super::eso::NAMES.contains(&name)
}

pub(crate) fn is_unsupported(name: &str) -> bool {
    UNSUPPORTED.contains(&name)
}

// ---- argument checks ----

fn count(args: &[Value], n: usize) -> Result<(), FnError> {
    if args.len() != n {
        return fail(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn at_least(args: &[Value], n: usize) -> Result<(), FnError> {
    if args.len() < n {
        return fail(format!(
            "wrong number of args: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn wrong(expected: &str, got: &Value) -> FnError {
    FnError::Msg(format!(
        "wrong type for value; expected {expected}; got {}",
        got.type_name()
    ))
}

/// A `string` parameter: only a Go string fits.
fn s(v: &Value) -> Result<&[u8], FnError> {
    match v {
        Value::Str(b) => Ok(b),
        other => Err(wrong("string", other)),
    }
}

/// An `int` parameter: only a Go int fits (not int64).
fn i(v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Int(n, IntTy::Int) => Ok(*n),
        other => Err(wrong("int", other)),
    }
}

fn b(v: &Value) -> Result<bool, FnError> {
    match v {
        Value::Bool(x) => Ok(*x),
        other => Err(wrong("bool", other)),
    }
}

type MapRef = Rc<RefCell<BTreeMap<Vec<u8>, Value>>>;

/// A `map[string]interface{}` parameter (not the data map, which is map[string]string).
fn m(v: &Value) -> Result<MapRef, FnError> {
    match v {
        Value::Map(m, ElemTy::Any) => Ok(m.clone()),
        Value::Nil => Ok(Rc::new(RefCell::new(BTreeMap::new()))),
        other => Err(wrong("map[string]interface {}", other)),
    }
}

fn text(v: Vec<u8>) -> R {
    Ok(Value::Str(go_str(v)))
}

fn cap(len: usize, max: usize) -> Result<(), FnError> {
    if len > max {
        return Err(FnError::TooBig);
    }
    Ok(())
}

/// sprig's strval: strings as they are, anything else as fmt's %v.
pub(crate) fn strval(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) => s.to_vec(),
        other => sprint(std::slice::from_ref(other)),
    }
}

/// The elements of a Go slice (sprig's list functions take any slice through reflection).
fn elems(v: &Value, fname: &str) -> Result<(Vec<Value>, ElemTy), FnError> {
    match v {
        Value::List(l, t) => Ok((l.to_vec(), *t)),
        other => fail(format!("cannot {fname} on type {}", other.type_name())),
    }
}

/// sprig's strslice.
fn strslice(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::List(l, _) => l
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

fn str_list(items: Vec<Vec<u8>>) -> Value {
    Value::List(
        Rc::new(items.into_iter().map(Value::str).collect()),
        ElemTy::Str,
    )
}

/// spf13/cast's ToInt64 (as sprig's arithmetic uses it): strings parse with Go's base prefixes,
/// anything unreadable is 0.
fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(n, _) => *n,
        // Go's conversion of an out-of-range float gives the minimum int64 (on amd64 and arm64).
        Value::Float(f) if !(-9.223372036854776e18..9.223372036854776e18).contains(f) => i64::MIN,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let t = String::from_utf8_lossy(s);
            let t = t.strip_suffix(".0").map_or(t.as_ref(), |x| x);
            parse_go_int(t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// strconv.ParseInt(s, 0, 64).
pub(crate) fn parse_go_int(t: &str) -> Option<i64> {
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let underscores = lower.contains('_');
    let (radix, digits) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        if underscores {
            return None;
        }
        (10, lower.clone())
    };
    let digits: String = if underscores {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let u = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        if u <= 1u64 << 63 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// cast's ToFloat64.
fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(n, _) => *n as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `empty`: zero values and empty containers.
fn is_empty(v: &Value) -> bool {
    !v.truthy()
}

fn deep_copy(v: &Value) -> Value {
    match v {
        Value::List(l, t) => Value::List(Rc::new(l.iter().map(deep_copy).collect()), *t),
        Value::Map(m, t) => Value::Map(
            Rc::new(RefCell::new(
                m.borrow()
                    .iter()
                    .map(|(k, x)| (k.clone(), deep_copy(x)))
                    .collect(),
            )),
            *t,
        ),
        other => other.clone(),
    }
}

/// reflect.DeepEqual: same types, same contents.
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x, t), Value::Int(y, u)) => x == y && t == u,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x == y,
        (Value::List(x, t), Value::List(y, u)) => {
            t == u && x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x, t), Value::Map(y, u)) => {
            let (x, y) = (x.borrow(), y.borrow());
            t == u
                && x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => false,
    }
}

fn contains_map(v: &Value, target: &MapRef, depth: usize) -> bool {
    if depth > 64 {
        return true;
    }
    match v {
        Value::Map(m, _) => {
            Rc::ptr_eq(m, target)
                || m.borrow()
                    .values()
                    .any(|x| contains_map(x, target, depth + 1))
        }
        Value::List(l, _) => l.iter().any(|x| contains_map(x, target, depth + 1)),
        _ => false,
    }
}

// ---- comparison (Go's eq/lt rules) ----

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
    Invalid,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(..) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn eq_pair(a: &Value, c: &Value) -> Result<bool, FnError> {
    // Go groups every non-basic value (maps, slices, nil) under one "invalid" kind.
    let group = |k: Kind| match k {
        Kind::Other => Kind::Invalid,
        k => k,
    };
    let (k1, k2) = (group(kind(a)), group(kind(c)));
    let (n1, n2) = (matches!(a, Value::Nil), matches!(c, Value::Nil));
    if k1 != k2 {
        if n1 || n2 {
            return Ok(false);
        }
        return fail("incompatible types for comparison");
    }
    Ok(match (a, c) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x, _), Value::Int(y, _)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        // time.Time is a comparable struct: == compares instant, zone and monotonic reading.
        (Value::Time(x), Value::Time(y)) => x == y,
        _ if n1 || n2 => n1 && n2,
        // Slices and maps are not comparable in Go.
        _ => return fail("non-comparable types"),
    })
}

fn eq(args: &[Value]) -> R {
    at_least(args, 1)?;
    let a = &args[0];
    if args.len() == 1 {
        return fail("missing argument for comparison");
    }
    for c in &args[1..] {
        if eq_pair(a, c)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn lt(a: &Value, c: &Value) -> Result<bool, FnError> {
    let (k1, k2) = (kind(a), kind(c));
    if matches!(k1, Kind::Bool | Kind::Other | Kind::Invalid)
        || matches!(k2, Kind::Bool | Kind::Other | Kind::Invalid)
    {
        return fail("invalid type for comparison");
    }
    if k1 != k2 {
        return fail("incompatible types for comparison");
    }
    Ok(match (a, c) {
        (Value::Int(x, _), Value::Int(y, _)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x[..] < y[..],
        _ => false,
    })
}

// ---- escaping built-ins ----

/// The text an escaping built-in works on: one string as is, anything else as fmt.Sprint (an
/// absent value reads "<no value>").
fn eval_args(args: &[Value]) -> Vec<u8> {
    if let [Value::Str(s)] = args {
        return s.to_vec();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::str(b"<no value>".to_vec()),
            other => other.clone(),
        })
        .collect();
    sprint(&printable)
}

/// Positions of `int` parameters: an untyped number constant there is an int even when written
/// as a float (`1e6`, `2.0`), as Go's evalArg does.
pub(crate) fn int_params(name: &str) -> &'static [usize] {
    match name {
        "trunc" | "repeat" | "indent" | "nindent" | "until" | "abbrev" | "chunk" | "mustChunk"
        | "randAlphaNum" | "randAlpha" | "randAscii" | "randNumeric" | "randBytes" => &[0],
        "substr" | "randInt" => &[0, 1],
        "untilStep" => &[0, 1, 2],
        "plural" | "regexFindAll" | "mustRegexFindAll" | "regexSplit" | "mustRegexSplit" => &[2],
        "splitn" | "round" => &[1],
        _ => &[],
    }
}

fn html_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"&#34;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            0 => out.extend_from_slice("\u{FFFD}".as_bytes()),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\'' => out.extend_from_slice(b"\\'"),
                '"' => out.extend_from_slice(b"\\\""),
                '<' => out.extend_from_slice(b"\\u003C"),
                '>' => out.extend_from_slice(b"\\u003E"),
                '&' => out.extend_from_slice(b"\\u0026"),
                '=' => out.extend_from_slice(b"\\u003D"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04X}", c as u32).as_bytes())
                }
                c if (c as u32) < 0x80 => out.push(c as u8),
                c if c.is_control()
                    || c.is_whitespace()
                    || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}') =>
                {
                    out.extend_from_slice(format!("\\u{:04X}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        // Invalid bytes are copied as they are.
        out.extend_from_slice(chunk.invalid());
    }
    out
}

fn query_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c);
        } else if c == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(format!("%{c:02X}").as_bytes());
        }
    }
    out
}

// ---- JSON as Go's encoding/json writes it ----

fn json_str(out: &mut Vec<u8>, s: &[u8], escape_html: bool) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' if escape_html => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                '\u{2028}' | '\u{2029}' => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

pub(crate) fn json_float(f: f64) -> Result<String, FnError> {
    if !f.is_finite() {
        return fail("json: unsupported value");
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Go writes exponents without padding: 1e-07 becomes 1e-7.
        let s = super::value::format_float_e_shortest(f);
        return Ok(s.replace("e-0", "e-").replace("e+0", "e+"));
    }
    Ok(super::value::format_float_f_shortest(f))
}

fn json(
    out: &mut Vec<u8>,
    v: &Value,
    escape_html: bool,
    indent: Option<usize>,
    depth: usize,
) -> Result<(), FnError> {
    if depth > 200 {
        return fail("json: nested too deeply");
    }
    let nl = |out: &mut Vec<u8>, d: usize| {
        if indent.is_some() {
            out.push(b'\n');
            out.extend(std::iter::repeat_n(b' ', 2 * d));
        }
    };
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(x) => out.extend_from_slice(if *x { b"true" } else { b"false" }),
        Value::Int(n, _) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(json_float(*f)?.as_bytes()),
        Value::Str(s) => json_str(out, s, escape_html),
        Value::Time(t) => out.extend_from_slice(t.json().as_bytes()),
        Value::List(l, _) => {
            out.push(b'[');
            for (k, x) in l.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                nl(out, depth + 1);
                json(out, x, escape_html, indent, depth + 1)?;
            }
            if !l.is_empty() {
                nl(out, depth);
            }
            out.push(b']');
        }
        Value::Map(m, _) => {
            let m = m.borrow();
            out.push(b'{');
            for (k, (key, x)) in m.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                nl(out, depth + 1);
                json_str(out, key, escape_html);
                out.push(b':');
                if indent.is_some() {
                    out.push(b' ');
                }
                json(out, x, escape_html, indent, depth + 1)?;
            }
            if !m.is_empty() {
                nl(out, depth);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Go's `json.Marshal` (`escape_html`) or an Encoder with `SetEscapeHTML(false)` (trailing newline
/// trimmed) of what `json.Unmarshal` into `any` made of `v`: keys sorted, numbers as float64.
pub(crate) fn go_json_marshal(v: &serde_json::Value, escape_html: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    json(&mut out, &json_to_value(v), escape_html, None, 0).ok()?;
    Some(out)
}

fn from_json(s: &[u8]) -> Result<Value, FnError> {
    let v: serde_json::Value =
        serde_json::from_slice(s).map_err(|_| FnError::Msg("invalid JSON".into()))?;
    Ok(json_to_value(&v))
}

fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s.as_bytes().to_vec()),
        serde_json::Value::Array(a) => Value::list(a.iter().map(json_to_value).collect()),
        serde_json::Value::Object(o) => Value::map(
            o.iter()
                .map(|(k, x)| (k.as_bytes().to_vec(), json_to_value(x)))
                .collect(),
        ),
    }
}

// ---- base64 / base32 as Go's StdEncoding ----

/// base64.StdEncoding.DecodeString: CR/LF ignored, padding required, Go's error offsets.
pub(crate) fn b64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0usize;
    loop {
        let mut q = [0u8; 4];
        let mut j = 0usize;
        let mut dlen = 4;
        let mut done = false;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = val(c) {
                q[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(si - 1);
            }
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                return Err(si);
            }
            dlen = j;
            done = true;
            break;
        }
        let n = (u32::from(q[0]) << 18)
            | (u32::from(q[1]) << 12)
            | (u32::from(q[2]) << 6)
            | u32::from(q[3]);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if done {
            return Ok(out);
        }
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32_encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in src.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for k in 0..8 {
            if k < chars {
                out.push(B32[((n >> (35 - 5 * k)) & 31) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// base32.StdEncoding.DecodeString, for the strict common case; anything odd is an error.
fn b32_decode(src: &[u8]) -> Option<Vec<u8>> {
    let src: Vec<u8> = src
        .iter()
        .copied()
        .filter(|&c| c != b'\n' && c != b'\r')
        .collect();
    if !src.len().is_multiple_of(8) {
        return None;
    }
    let mut out = Vec::new();
    for chunk in src.chunks(8) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let bytes = match pad {
            0 => 5,
            1 => 4,
            3 => 3,
            4 => 2,
            6 => 1,
            _ => return None,
        };
        let mut n = 0u64;
        for &c in &chunk[..8 - pad] {
            let v = B32.iter().position(|&x| x == c)? as u64;
            n = (n << 5) | v;
        }
        n <<= 5 * pad as u64;
        for k in 0..bytes {
            out.push((n >> (32 - 8 * k)) as u8);
        }
        if pad > 0 && chunk.as_ptr() != src[src.len() - 8..].as_ptr() {
            return None;
        }
    }
    Some(out)
}

fn adler32(s: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &c in s {
        a = (a + u32::from(c)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

// ---- strings ----

/// Go's simple case mapping: a rune maps to one rune or stays as it is.
fn map_case(s: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut it: Box<dyn Iterator<Item = char>> = if upper {
                Box::new(c.to_uppercase())
            } else {
                Box::new(c.to_lowercase())
            };
            let first = it.next();
            let mapped = match (first, it.next()) {
                (Some(x), None) => x,
                _ => c,
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(mapped.encode_utf8(&mut buf).as_bytes());
        }
        // strings.Map turns invalid bytes into U+FFFD.
        for _ in chunk.invalid() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out
}

fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c as u32 > 0xff && c.is_whitespace())
}

fn trim_space(s: &[u8]) -> &[u8] {
    let st = String::from_utf8_lossy(s);
    if std::str::from_utf8(s).is_err() {
        // Only ASCII whitespace can be trimmed safely from bytes that are not UTF-8.
        let a = s
            .iter()
            .position(|c| !c.is_ascii_whitespace() && *c != 0x0b)
            .unwrap_or(s.len());
        let b = s
            .iter()
            .rposition(|c| !c.is_ascii_whitespace() && *c != 0x0b)
            .map_or(a, |k| k + 1);
        return &s[a..b.max(a)];
    }
    let t = st.trim_start_matches(is_go_space);
    let start = s.len() - t.len();
    let t2 = t.trim_end_matches(is_go_space);
    &s[start..start + t2.len()]
}

fn trim_set(s: &[u8], set: &[u8], left: bool, right: bool) -> Vec<u8> {
    let (Ok(st), Ok(cs)) = (std::str::from_utf8(s), std::str::from_utf8(set)) else {
        return s.to_vec();
    };
    let f = |c: char| cs.contains(c);
    let mut t = st;
    if left {
        t = t.trim_start_matches(f);
    }
    if right {
        t = t.trim_end_matches(f);
    }
    t.as_bytes().to_vec()
}

fn replace_all(src: &[u8], old: &[u8], new: &[u8], max: usize) -> Result<Vec<u8>, FnError> {
    let mut out = Vec::new();
    if old.is_empty() {
        // Go inserts `new` before every rune and at the end.
        let st = String::from_utf8_lossy(src);
        for c in st.chars() {
            out.extend_from_slice(new);
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            cap(out.len(), max)?;
        }
        out.extend_from_slice(new);
        return Ok(out);
    }
    let mut i = 0;
    while i < src.len() {
        if src[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
            cap(out.len(), max)?;
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn split_bytes<'a>(s: &'a [u8], sep: &[u8], n: i64) -> Vec<&'a [u8]> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        // Go splits into UTF-8 sequences.
        let mut parts = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if n > 0 && parts.len() as i64 == n - 1 {
                parts.push(&s[i..]);
                return parts;
            }
            let l = utf8_len(&s[i..]);
            parts.push(&s[i..i + l]);
            i += l;
        }
        return parts;
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= s.len() {
        if n > 0 && parts.len() as i64 == n - 1 {
            break;
        }
        if &s[i..i + sep.len()] == sep {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

fn utf8_len(s: &[u8]) -> usize {
    for l in 1..=4.min(s.len()) {
        if std::str::from_utf8(&s[..l]).is_ok() {
            return l;
        }
    }
    1
}

fn split_map(parts: Vec<&[u8]>) -> Value {
    let mut m = BTreeMap::new();
    for (k, p) in parts.into_iter().enumerate() {
        m.insert(format!("_{k}").into_bytes(), Value::str(p.to_vec()));
    }
    Value::Map(Rc::new(RefCell::new(m)), ElemTy::Str)
}

/// Go's strings.Title: the first letter of each word in title case.
fn title(s: &[u8]) -> Vec<u8> {
    let st = String::from_utf8_lossy(s);
    let mut out = String::new();
    let mut prev_sep = true;
    for c in st.chars() {
        if prev_sep {
            let mut t = c.to_uppercase();
            match (t.next(), t.next()) {
                (Some(x), None) => out.push(x),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphanumeric()) && c.is_whitespace()
        };
    }
    out.into_bytes()
}

fn untitle(s: &[u8]) -> Vec<u8> {
    let st = String::from_utf8_lossy(s);
    let mut out = String::new();
    let mut at_start = true;
    for c in st.chars() {
        if is_go_space(c) {
            at_start = true;
            out.push(c);
        } else if at_start {
            at_start = false;
            let mut t = c.to_lowercase();
            match (t.next(), t.next()) {
                (Some(x), None) => out.push(x),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out.into_bytes()
}

fn initials(s: &[u8]) -> Vec<u8> {
    let st = String::from_utf8_lossy(s);
    let mut out = String::new();
    for w in st.split(is_go_space).filter(|w| !w.is_empty()) {
        if let Some(c) = w.chars().next() {
            out.push(c);
        }
    }
    out.into_bytes()
}

fn rand_string(n: i64, charset: &[u8]) -> Vec<u8> {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..n.max(0))
        .map(|_| charset[rng.random_range(0..charset.len())])
        .collect()
}

fn regex(pat: &[u8]) -> Result<regex::bytes::Regex, FnError> {
    let p =
        std::str::from_utf8(pat).map_err(|_| FnError::Msg("invalid regular expression".into()))?;
    regex::bytes::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|_| FnError::Msg("invalid regular expression".into()))
}

fn list_fn(name: &str, args: &[Value], max: usize) -> R {
    let base = name.strip_prefix("must").map_or(name.to_string(), |n| {
        let mut c = n.chars();
        c.next()
            .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    });
    match base.as_str() {
        "first" | "last" | "rest" | "initial" | "reverse" | "uniq" | "compact" => {
            count(args, 1)?;
            let (l, t) = elems(&args[0], &base)?;
            Ok(match base.as_str() {
                "first" => l.first().cloned().unwrap_or(Value::Nil),
                "last" => l.last().cloned().unwrap_or(Value::Nil),
                "rest" => Value::list(l.get(1..).unwrap_or_default().to_vec()),
                "initial" => Value::list(l[..l.len().saturating_sub(1)].to_vec()),
                "reverse" => Value::list(l.into_iter().rev().collect()),
                "uniq" => {
                    let mut out: Vec<Value> = Vec::new();
                    for x in l {
                        if !out.iter().any(|y| deep_equal(y, &x)) {
                            out.push(x);
                        }
                    }
                    Value::list(out)
                }
                _ => {
                    let _ = t;
                    Value::list(l.into_iter().filter(|x| !is_empty(x)).collect())
                }
            })
        }
        "append" | "push" | "prepend" => {
            count(args, 2)?;
            let (mut l, _) = elems(&args[0], &base)?;
            cap(l.len() + 1, max)?;
            if base == "prepend" {
                l.insert(0, args[1].clone());
            } else {
                l.push(args[1].clone());
            }
            Ok(Value::list(l))
        }
        "without" => {
            at_least(args, 1)?;
            let (l, _) = elems(&args[0], &base)?;
            Ok(Value::list(
                l.into_iter()
                    .filter(|x| !args[1..].iter().any(|o| deep_equal(o, x)))
                    .collect(),
            ))
        }
        "has" => {
            count(args, 2)?;
            match &args[1] {
                Value::Nil => Ok(Value::Bool(false)),
                h => {
                    let (l, _) = elems(h, &base)?;
                    Ok(Value::Bool(l.iter().any(|x| deep_equal(x, &args[0]))))
                }
            }
        }
        "slice" => {
            at_least(args, 1)?;
            let (l, t) = elems(&args[0], &base)?;
            let start = args.get(1).map_or(0, to_i64);
            let end = args.get(2).map_or(l.len() as i64, to_i64);
            if start < 0 || end < start || end as usize > l.len() {
                return fail("slice index out of range");
            }
            let part = l[start as usize..end as usize].to_vec();
            Ok(Value::List(Rc::new(part), t))
        }
        "chunk" => {
            count(args, 2)?;
            let size = i(&args[0])?;
            let (l, t) = elems(&args[1], &base)?;
            if size <= 0 {
                return fail("chunk size must be positive");
            }
            Ok(Value::list(
                l.chunks(size as usize)
                    .map(|c| Value::List(Rc::new(c.to_vec()), t))
                    .collect(),
            ))
        }
        _ => fail("unknown list function"),
    }
}

/// Calls a built-in or sprig function by name with evaluated arguments.
pub(crate) fn call(name: &str, args: Vec<Value>, max: usize) -> R {
    let a = &args[..];
    match name {
        // -- Go built-ins --
        "not" => {
            count(a, 1)?;
            Ok(Value::Bool(!a[0].truthy()))
        }
        "len" => {
            count(a, 1)?;
            let n = match &a[0] {
                Value::Str(x) => x.len(),
                Value::List(l, _) => l.len(),
                Value::Map(m, _) => m.borrow().len(),
                Value::Nil => return fail("len of nil pointer"),
                other => return fail(format!("len of type {}", other.type_name())),
            };
            Ok(Value::int(n as i64))
        }
        "index" => {
            at_least(a, 1)?;
            let mut item = a[0].clone();
            for idx in &a[1..] {
                item = match (&item, idx) {
                    (Value::Nil, _) => return fail("index of untyped nil"),
                    (Value::Map(m, t), Value::Str(k)) => match m.borrow().get(&k[..]) {
                        Some(v) => v.clone(),
                        None if *t == ElemTy::Str => Value::str(Vec::new()),
                        None if *t == ElemTy::Int => Value::int(0),
                        None => Value::Nil,
                    },
                    (Value::Map(..), other) => {
                        return fail(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ));
                    }
                    (Value::List(l, _), Value::Int(n, _)) => {
                        match usize::try_from(*n).ok().and_then(|n| l.get(n)) {
                            Some(v) => v.clone(),
                            None => return fail(format!("index out of range: {n}")),
                        }
                    }
                    (Value::Str(s), Value::Int(n, _)) => {
                        match usize::try_from(*n).ok().and_then(|n| s.get(n)) {
                            Some(v) => Value::Int(*v as i64, IntTy::Uint8),
                            None => return fail(format!("index out of range: {n}")),
                        }
                    }
                    (Value::List(..) | Value::Str(_), _) => {
                        return fail("cannot index slice/array with non-integer type");
                    }
                    (other, _) => {
                        return fail(format!("can't index item of type {}", other.type_name()));
                    }
                };
            }
            Ok(item)
        }
        "eq" => eq(a),
        "ne" => {
            count(a, 2)?;
            Ok(Value::Bool(!matches!(eq(a)?, Value::Bool(true))))
        }
        "lt" | "le" | "gt" | "ge" => {
            count(a, 2)?;
            let less = lt(&a[0], &a[1])?;
            let equal = !less && matches!(eq(a)?, Value::Bool(true));
            Ok(Value::Bool(match name {
                "lt" => less,
                "le" => less || equal,
                "gt" => !less && !equal,
                _ => !less,
            }))
        }
        "print" => text(sprint(a)),
        "println" => text(sprintln(a)),
        "printf" => {
            at_least(a, 1)?;
            let out = sprintf(s(&a[0])?, &a[1..]);
            cap(out.len(), max)?;
            text(out)
        }
        "html" => text(html_escape(&eval_args(a))),
        "js" => text(js_escape(&eval_args(a))),
        "urlquery" => text(query_escape(&eval_args(a))),
        "call" => {
            at_least(a, 1)?;
            fail(format!("non-function of type {}", a[0].type_name()))
        }
        // -- sprig: strings --
        "upper" | "lower" => {
            count(a, 1)?;
            text(map_case(s(&a[0])?, name == "upper"))
        }
        "title" => {
            count(a, 1)?;
            text(title(s(&a[0])?))
        }
        "untitle" => {
            count(a, 1)?;
            text(untitle(s(&a[0])?))
        }
        "trim" => {
            count(a, 1)?;
            text(trim_space(s(&a[0])?).to_vec())
        }
        "trimAll" | "trimall" => {
            count(a, 2)?;
            text(trim_set(s(&a[1])?, s(&a[0])?, true, true))
        }
        "trimPrefix" => {
            count(a, 2)?;
            let (p, x) = (s(&a[0])?, s(&a[1])?);
            text(x.strip_prefix(p).unwrap_or(x).to_vec())
        }
        "trimSuffix" => {
            count(a, 2)?;
            let (p, x) = (s(&a[0])?, s(&a[1])?);
            text(x.strip_suffix(p).unwrap_or(x).to_vec())
        }
        "nospace" => {
            count(a, 1)?;
            let st = String::from_utf8_lossy(s(&a[0])?).into_owned();
            text(
                st.chars()
                    .filter(|c| !is_go_space(*c))
                    .collect::<String>()
                    .into_bytes(),
            )
        }
        "initials" => {
            count(a, 1)?;
            text(initials(s(&a[0])?))
        }
        "abbrev" => {
            count(a, 2)?;
            let (w, x) = (i(&a[0])?, s(&a[1])?);
            if w < 4 {
                return text(x.to_vec());
            }
            if x.len() as i64 <= w {
                return text(x.to_vec());
            }
            let mut out = x[..(w - 3) as usize].to_vec();
            out.extend_from_slice(b"...");
            text(out)
        }
        "abbrevboth" => {
            count(a, 3)?;
            let (left, right, x) = (i(&a[0])?, i(&a[1])?, s(&a[2])?);
            if right < 4 || (left > 0 && right < 7) {
                return text(x.to_vec());
            }
            text(abbreviate_full(x, left, right))
        }
        "wrap" => {
            count(a, 2)?;
            let out = wrap_custom(s(&a[1])?, i(&a[0])?, b"", false);
            cap(out.len(), max)?;
            text(out)
        }
        "wrapWith" => {
            count(a, 3)?;
            let out = wrap_custom(s(&a[2])?, i(&a[0])?, s(&a[1])?, true);
            cap(out.len(), max)?;
            text(out)
        }
        "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite" => {
            at_least(a, 1)?;
            let overwrite = name.ends_with("Overwrite");
            let dst = m(&a[0])?;
            for src in &a[1..] {
                merge_maps(&dst, &m(src)?, overwrite, 0);
            }
            Ok(Value::Map(dst, ElemTy::Any))
        }
        "encryptAES" => {
            count(a, 2)?;
            let (pw, plain) = (s(&a[0])?, s(&a[1])?);
            if plain.is_empty() {
                return text(Vec::new());
            }
            let out = base64::engine::general_purpose::STANDARD.encode(aes_cbc(pw, plain, None)?);
            cap(out.len(), max)?;
            text(out.into_bytes())
        }
        "decryptAES" => {
            count(a, 2)?;
            let (pw, crypt) = (s(&a[0])?, s(&a[1])?);
            if crypt.is_empty() {
                return text(Vec::new());
            }
            let raw = b64_decode(crypt).map_err(|_| FnError::Msg("illegal base64 data".into()))?;
            if raw.len() < 16 {
                return fail("ciphertext shorter than one block");
            }
            let (iv, body) = raw.split_at(16);
            aes_cbc(pw, body, Some(iv)).map(|v| Value::Str(go_str(v)))
        }
        "snakecase" | "kebabcase" => {
            count(a, 1)?;
            let conn = if name == "snakecase" { '_' } else { '-' };
            text(super::case::lower_case(s(&a[0])?, conn))
        }
        "camelcase" => {
            count(a, 1)?;
            text(super::case::camel_case(s(&a[0])?))
        }
        "hello" => {
            count(a, 0)?;
            text(b"Hello!".to_vec())
        }
        "typeIsLike" => {
            count(a, 2)?;
            let (target, t) = (s(&a[0])?, a[1].type_name().as_bytes());
            Ok(Value::Bool(target == t || [b"*", target].concat() == t))
        }
        "trunc" => {
            count(a, 2)?;
            let (c, x) = (i(&a[0])?, s(&a[1])?);
            let l = x.len() as i64;
            if c < 0 && l + c > 0 {
                return text(x[(l + c) as usize..].to_vec());
            }
            if c >= 0 && l > c {
                return text(x[..c as usize].to_vec());
            }
            text(x.to_vec())
        }
        "substr" => {
            count(a, 3)?;
            let (st, en, x) = (i(&a[0])?, i(&a[1])?, s(&a[2])?);
            let l = x.len() as i64;
            let (from, to) = if st < 0 {
                (0, en)
            } else if en < 0 || en > l {
                (st, l)
            } else {
                (st, en)
            };
            if from < 0 || to < from || to > l {
                return fail("slice bounds out of range");
            }
            text(x[from as usize..to as usize].to_vec())
        }
        "repeat" => {
            count(a, 2)?;
            let (n, x) = (i(&a[0])?, s(&a[1])?);
            if n < 0 {
                return fail("negative repeat count");
            }
            cap((n as usize).saturating_mul(x.len()), max)?;
            text(x.repeat(n as usize))
        }
        "randAlphaNum" | "randAlpha" | "randAscii" | "randNumeric" => {
            count(a, 1)?;
            let n = i(&a[0])?;
            cap(n.max(0) as usize, max)?;
            let set: Vec<u8> = match name {
                "randAlphaNum" => (b'0'..=b'9')
                    .chain(b'a'..=b'z')
                    .chain(b'A'..=b'Z')
                    .collect(),
                "randAlpha" => (b'a'..=b'z').chain(b'A'..=b'Z').collect(),
                "randNumeric" => (b'0'..=b'9').collect(),
                _ => (32u8..=126).collect(),
            };
            text(rand_string(n, &set))
        }
        "shuffle" => {
            use rand::seq::SliceRandom as _;
            count(a, 1)?;
            let mut cs: Vec<char> = String::from_utf8_lossy(s(&a[0])?).chars().collect();
            cs.shuffle(&mut rand::rng());
            text(cs.into_iter().collect::<String>().into_bytes())
        }
        "contains" => {
            count(a, 2)?;
            let (sub, x) = (s(&a[0])?, s(&a[1])?);
            Ok(Value::Bool(
                sub.is_empty() || x.windows(sub.len()).any(|w| w == sub),
            ))
        }
        "hasPrefix" => {
            count(a, 2)?;
            Ok(Value::Bool(s(&a[1])?.starts_with(s(&a[0])?)))
        }
        "hasSuffix" => {
            count(a, 2)?;
            Ok(Value::Bool(s(&a[1])?.ends_with(s(&a[0])?)))
        }
        "quote" | "squote" => {
            let mut out = Vec::new();
            let mut first = true;
            for x in a.iter().filter(|x| !matches!(x, Value::Nil)) {
                if !first {
                    out.push(b' ');
                }
                first = false;
                if name == "quote" {
                    out.extend_from_slice(quote(&strval(x)).as_bytes());
                } else {
                    out.push(b'\'');
                    out.extend_from_slice(&strval(x));
                    out.push(b'\'');
                }
            }
            text(out)
        }
        "cat" => {
            let vals: Vec<Value> = a
                .iter()
                .filter(|x| !matches!(x, Value::Nil))
                .cloned()
                .collect();
            let mut out = Vec::new();
            for (k, x) in vals.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                super::value::write_value(&mut out, x);
            }
            text(out)
        }
        "indent" | "nindent" => {
            count(a, 2)?;
            let (n, x) = (i(&a[0])?, s(&a[1])?);
            if n < 0 {
                return fail("negative indent");
            }
            cap(n as usize, max)?;
            let pad = vec![b' '; n as usize];
            cap(
                pad.len()
                    .saturating_mul(x.iter().filter(|&&c| c == b'\n').count() + 1)
                    + x.len(),
                max,
            )?;
            let mut out = Vec::new();
            if name == "nindent" {
                out.push(b'\n');
            }
            out.extend_from_slice(&pad);
            let mut nl = b"\n".to_vec();
            nl.extend_from_slice(&pad);
            out.extend(replace_all(x, b"\n", &nl, max)?);
            text(out)
        }
        "replace" => {
            count(a, 3)?;
            text(replace_all(s(&a[2])?, s(&a[0])?, s(&a[1])?, max)?)
        }
        "plural" => {
            count(a, 3)?;
            let (one, many, n) = (s(&a[0])?, s(&a[1])?, i(&a[2])?);
            text(if n == 1 { one.to_vec() } else { many.to_vec() })
        }
        "sha1sum" => {
            count(a, 1)?;
            text(hex(&sha1::Sha1::digest(s(&a[0])?)))
        }
        "sha256sum" => {
            count(a, 1)?;
            text(hex(&sha2::Sha256::digest(s(&a[0])?)))
        }
        "adler32sum" => {
            count(a, 1)?;
            text(adler32(s(&a[0])?).to_string().into_bytes())
        }
        "toString" => {
            count(a, 1)?;
            text(strval(&a[0]))
        }
        "atoi" => {
            count(a, 1)?;
            let st = std::str::from_utf8(s(&a[0])?).unwrap_or("");
            let n = st
                .strip_prefix('+')
                .unwrap_or(st)
                .parse::<i64>()
                .ok()
                .filter(|_| !st.starts_with("+-") && !st.starts_with("++"))
                .unwrap_or(0);
            Ok(Value::int(n))
        }
        "int64" => {
            count(a, 1)?;
            Ok(Value::Int(to_i64(&a[0]), IntTy::Int64))
        }
        "int" => {
            count(a, 1)?;
            Ok(Value::int(to_i64(&a[0])))
        }
        "float64" => {
            count(a, 1)?;
            Ok(Value::Float(to_f64(&a[0])))
        }
        "split" => {
            count(a, 2)?;
            Ok(split_map(split_bytes(s(&a[1])?, s(&a[0])?, -1)))
        }
        "splitn" => {
            count(a, 3)?;
            Ok(split_map(split_bytes(s(&a[2])?, s(&a[0])?, i(&a[1])?)))
        }
        "splitList" => {
            count(a, 2)?;
            let parts = split_bytes(s(&a[1])?, s(&a[0])?, -1);
            Ok(str_list(parts.into_iter().map(<[u8]>::to_vec).collect()))
        }
        "toStrings" => {
            count(a, 1)?;
            Ok(str_list(strslice(&a[0])))
        }
        "sortAlpha" => {
            count(a, 1)?;
            let mut l = match &a[0] {
                Value::List(..) => strslice(&a[0]),
                other => vec![strval(other)],
            };
            l.sort();
            Ok(str_list(l))
        }
        "join" => {
            count(a, 2)?;
            let sep = s(&a[0])?;
            let parts = strslice(&a[1]);
            let out = parts.join(sep);
            cap(out.len(), max)?;
            text(out)
        }
        "until" | "untilStep" => {
            let (start, stop, step) = if name == "until" {
                count(a, 1)?;
                let n = i(&a[0])?;
                (0, n, if n < 0 { -1 } else { 1 })
            } else {
                count(a, 3)?;
                (i(&a[0])?, i(&a[1])?, i(&a[2])?)
            };
            let mut v = Vec::new();
            if step == 0 || (step > 0 && start >= stop) || (step < 0 && start <= stop) {
                return Ok(Value::List(Rc::new(v), ElemTy::Int));
            }
            let n = (i128::from(stop) - i128::from(start)).unsigned_abs()
                / i128::from(step).unsigned_abs();
            cap(usize::try_from(n).unwrap_or(usize::MAX), max / 8)?;
            let mut x = start;
            while (step > 0 && x < stop) || (step < 0 && x > stop) {
                v.push(Value::int(x));
                x += step;
            }
            Ok(Value::List(Rc::new(v), ElemTy::Int))
        }
        // -- sprig: numbers --
        "add1" => {
            count(a, 1)?;
            Ok(Value::Int(to_i64(&a[0]).wrapping_add(1), IntTy::Int64))
        }
        "add" => Ok(Value::Int(
            a.iter().map(to_i64).fold(0i64, i64::wrapping_add),
            IntTy::Int64,
        )),
        "mul" => {
            at_least(a, 1)?;
            Ok(Value::Int(
                a.iter().map(to_i64).fold(1i64, i64::wrapping_mul),
                IntTy::Int64,
            ))
        }
        "sub" | "div" | "mod" => {
            count(a, 2)?;
            let (x, y) = (to_i64(&a[0]), to_i64(&a[1]));
            let r = match name {
                "sub" => x.wrapping_sub(y),
                _ if y == 0 => return fail("integer divide by zero"),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            };
            Ok(Value::Int(r, IntTy::Int64))
        }
        "max" | "biggest" | "min" => {
            at_least(a, 1)?;
            let it = a.iter().map(to_i64);
            let r = if name == "min" { it.min() } else { it.max() };
            Ok(Value::Int(r.unwrap_or(0), IntTy::Int64))
        }
        "add1f" | "addf" | "subf" | "mulf" | "divf" => {
            let (first, rest): (Value, &[Value]) = match name {
                "addf" => (Value::Float(0.0), a),
                "add1f" => {
                    count(a, 1)?;
                    (a[0].clone(), &[Value::Float(1.0)][..])
                }
                _ => {
                    at_least(a, 1)?;
                    (a[0].clone(), &a[1..])
                }
            };
            let op = if name == "add1f" { "addf" } else { name };
            let mut acc = Decimal::from_f64(to_f64(&first));
            for x in rest {
                acc = acc.op(op, &Decimal::from_f64(to_f64(x)))?;
            }
            Ok(Value::Float(acc.to_f64()))
        }
        "maxf" | "minf" => {
            at_least(a, 1)?;
            let mut r = to_f64(&a[0]);
            for x in &a[1..] {
                let f = to_f64(x);
                r = if name == "maxf" {
                    go_max(r, f)
                } else {
                    go_min(r, f)
                };
            }
            Ok(Value::Float(r))
        }
        "seq" => {
            let mut p = Vec::new();
            for x in a {
                p.push(i(x)?);
            }
            let (start, end, step) = match p[..] {
                [end] => (1, end, if end < 1 { -1 } else { 1 }),
                [start, end] => (start, end, if end < start { -1 } else { 1 }),
                [start, step, end] => {
                    if end < start && step > 0 {
                        return text(Vec::new());
                    }
                    (start, end, step)
                }
                _ => return text(Vec::new()),
            };
            let dir = if end < start { -1 } else { 1 };
            let stop = end + dir;
            if step == 0 || (step > 0 && start >= stop) || (step < 0 && start <= stop) {
                return text(Vec::new());
            }
            let n = (i128::from(stop) - i128::from(start)).unsigned_abs()
                / i128::from(step).unsigned_abs();
            cap(usize::try_from(n).unwrap_or(usize::MAX), max / 8)?;
            let mut out = Vec::new();
            let mut x = start;
            while (step > 0 && x < stop) || (step < 0 && x > stop) {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend_from_slice(x.to_string().as_bytes());
                x += step;
            }
            text(out)
        }
        "toDecimal" => {
            count(a, 1)?;
            let t = String::from_utf8_lossy(&strval(&a[0])).into_owned();
            Ok(Value::Int(
                i64::from_str_radix(&t, 8).unwrap_or(0),
                IntTy::Int64,
            ))
        }
        "swapcase" => {
            count(a, 1)?;
            let st = String::from_utf8_lossy(s(&a[0])?).into_owned();
            let out: String = st
                .chars()
                .map(|c| {
                    let one = |it: &mut dyn Iterator<Item = char>| match (it.next(), it.next()) {
                        (Some(x), None) => x,
                        _ => c,
                    };
                    if c.is_uppercase() {
                        one(&mut c.to_lowercase())
                    } else if c.is_lowercase() {
                        one(&mut c.to_uppercase())
                    } else {
                        c
                    }
                })
                .collect();
            text(out.into_bytes())
        }
        "randInt" => {
            use rand::Rng as _;
            count(a, 2)?;
            let (lo, hi) = (i(&a[0])?, i(&a[1])?);
            if hi <= lo {
                return fail("invalid argument to randInt");
            }
            Ok(Value::int(rand::rng().random_range(lo..hi)))
        }
        "ceil" | "floor" => {
            count(a, 1)?;
            let f = to_f64(&a[0]);
            Ok(Value::Float(if name == "ceil" {
                f.ceil()
            } else {
                f.floor()
            }))
        }
        "round" => {
            at_least(a, 2)?;
            if a.len() > 3 {
                return fail("wrong number of args");
            }
            let p = i(&a[1])?;
            let half = match a.get(2) {
                Some(Value::Float(f)) => *f,
                Some(other) => return Err(wrong("float64", other)),
                None => 0.5,
            };
            let x = to_f64(&a[0]);
            let pow = 10f64.powi(p as i32);
            let digit = pow * x;
            let (int, frac) = (digit.trunc(), digit.fract());
            let r = if frac.abs() >= half {
                int + frac.signum()
            } else {
                int
            };
            let _ = format_float_g;
            Ok(Value::Float(r / pow))
        }
        // -- sprig: defaults and flow --
        "default" => {
            at_least(a, 1)?;
            if a.len() > 2 {
                return fail("wrong number of args");
            }
            Ok(match a.get(1) {
                Some(g) if !is_empty(g) => g.clone(),
                _ => a[0].clone(),
            })
        }
        "empty" => {
            count(a, 1)?;
            Ok(Value::Bool(is_empty(&a[0])))
        }
        "coalesce" => Ok(a
            .iter()
            .find(|x| !is_empty(x))
            .cloned()
            .unwrap_or(Value::Nil)),
        "all" => Ok(Value::Bool(a.iter().all(|x| !is_empty(x)))),
        "any" => Ok(Value::Bool(a.iter().any(|x| !is_empty(x)))),
        "ternary" => {
            count(a, 3)?;
            Ok(if b(&a[2])? {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        "fail" => {
            count(a, 1)?;
            s(&a[0])?;
            // The message is the template's, and may hold data: it is not repeated.
            fail("fail was called")
        }
        "getHostByName" => {
            count(a, 1)?;
            fail("getHostByName is disabled: templates never reach the network")
        }
        // -- sprig: JSON --
        "fromJson" | "mustFromJson" => {
            count(a, 1)?;
            match from_json(s(&a[0])?) {
                Ok(v) => Ok(v),
                Err(e) if name == "mustFromJson" => Err(e),
                Err(_) => Ok(Value::Nil),
            }
        }
        "bcrypt" => {
            count(a, 1)?;
            text(bcrypt(s(&a[0])?))
        }
        "htpasswd" => {
            // ESO's sprig (3.3) takes the hash algorithm as a third argument: "sha" or bcrypt.
            count(a, 3)?;
            let (user, pw, alg) = (s(&a[0])?, s(&a[1])?, s(&a[2])?);
            let mut out = Vec::new();
            if user.contains(&b':') {
                out.extend_from_slice(b"invalid username: ");
                out.extend_from_slice(user);
                return text(out);
            }
            out.extend_from_slice(user);
            out.push(b':');
            if alg == b"sha" {
                let sum = <sha1::Sha1 as sha1::Digest>::digest(pw);
                out.extend_from_slice(b"{SHA}");
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(sum)
                        .as_bytes(),
                );
            } else {
                out.extend(bcrypt(pw));
            }
            text(out)
        }
        "fromYaml" => {
            count(a, 1)?;
            // Each decoded node counts against the output cap (aliases can multiply a document).
            Ok(super::yaml::from_yaml(s(&a[0])?, max / 16))
        }
        "now" => {
            count(a, 0)?;
            Ok(Value::Time(GoTime::now()))
        }
        "date" | "htmlDate" | "htmlDateInZone" | "dateInZone" | "date_in_zone" => {
            let (layout, date, zone): (&[u8], &Value, &[u8]) = match name {
                "date" => {
                    count(a, 2)?;
                    (s(&a[0])?, &a[1], b"Local")
                }
                "htmlDate" => {
                    count(a, 1)?;
                    (b"2006-01-02", &a[0], b"Local")
                }
                "htmlDateInZone" => {
                    count(a, 2)?;
                    (b"2006-01-02", &a[0], s(&a[1])?)
                }
                _ => {
                    count(a, 3)?;
                    (s(&a[0])?, &a[1], s(&a[2])?)
                }
            };
            // sprig: a time, or Unix seconds as int/int64; anything else is now.
            let t = match date {
                Value::Time(t) => t.clone(),
                Value::Int(n, IntTy::Int | IntTy::Int64) => GoTime::utc(*n, 0),
                _ => GoTime::now(),
            };
            let layout = String::from_utf8_lossy(layout);
            let out = t.in_zone(&String::from_utf8_lossy(zone)).format(&layout);
            cap(out.len(), max)?;
            text(out.into_bytes())
        }
        "dateModify" | "date_modify" | "mustDateModify" | "must_date_modify" => {
            count(a, 2)?;
            let d = s(&a[0])?;
            let Value::Time(t) = &a[1] else {
                return Err(wrong("time.Time", &a[1]));
            };
            match go_parse_duration::parse_duration(&String::from_utf8_lossy(d)) {
                Ok(ns) => Ok(Value::Time(t.add_nanos(ns))),
                Err(_) if name.starts_with("must") => fail("time: invalid duration"),
                Err(_) => Ok(Value::Time(t.clone())),
            }
        }
        "duration" => {
            count(a, 1)?;
            let secs = match &a[0] {
                Value::Str(x) => std::str::from_utf8(x)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0),
                Value::Int(n, IntTy::Int64) => *n,
                _ => 0,
            };
            text(date::duration_string(secs.wrapping_mul(1_000_000_000)).into_bytes())
        }
        "durationRound" => {
            count(a, 1)?;
            let d: i64 = match &a[0] {
                Value::Str(x) => {
                    go_parse_duration::parse_duration(&String::from_utf8_lossy(x)).unwrap_or(0)
                }
                Value::Int(n, IntTy::Int64) => *n,
                Value::Time(t) => GoTime::now().since(t),
                _ => 0,
            };
            text(date::duration_round(d).into_bytes())
        }
        "toDate" | "mustToDate" => {
            count(a, 2)?;
            let (layout, v) = (s(&a[0])?, s(&a[1])?);
            match date::parse(
                &String::from_utf8_lossy(layout),
                &String::from_utf8_lossy(v),
            ) {
                Some(t) => Ok(Value::Time(t)),
                None if name == "mustToDate" => {
                    fail("parsing time: the value does not match the layout")
                }
                None => Ok(Value::Time(GoTime::zero())),
            }
        }
        "unixEpoch" => {
            count(a, 1)?;
            let Value::Time(t) = &a[0] else {
                return Err(wrong("time.Time", &a[0]));
            };
            text(t.unix().to_string().into_bytes())
        }
        "ago" => {
            count(a, 1)?;
            let t = match &a[0] {
                Value::Time(t) => t.clone(),
                Value::Int(n, IntTy::Int | IntTy::Int64) => GoTime::utc(*n, 0),
                _ => GoTime::now(),
            };
            text(date::duration_string(date::round_second(GoTime::now().since(&t))).into_bytes())
        }
        "toYaml" => {
            count(a, 1)?;
            let out = super::yaml::to_yaml(&a[0]);
            cap(out.len(), max)?;
            text(out)
        }
        "toJson" | "toPrettyJson" | "toRawJson" | "mustToJson" | "mustToPrettyJson"
        | "mustToRawJson" => {
            count(a, 1)?;
            let pretty = name.ends_with("PrettyJson");
            let raw = name.ends_with("RawJson");
            let mut out = Vec::new();
            match json(&mut out, &a[0], !raw, pretty.then_some(2), 0) {
                Ok(()) => {
                    cap(out.len(), max)?;
                    text(out)
                }
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => text(Vec::new()),
            }
        }
        // -- sprig: reflection --
        "deepCopy" | "mustDeepCopy" => {
            count(a, 1)?;
            if matches!(a[0], Value::Nil) {
                return fail("deepCopy of nil");
            }
            Ok(deep_copy(&a[0]))
        }
        "typeOf" => {
            count(a, 1)?;
            text(a[0].type_name().as_bytes().to_vec())
        }
        "typeIs" => {
            count(a, 2)?;
            Ok(Value::Bool(s(&a[0])? == a[1].type_name().as_bytes()))
        }
        "kindOf" => {
            count(a, 1)?;
            text(a[0].kind_name().as_bytes().to_vec())
        }
        "kindIs" => {
            count(a, 2)?;
            Ok(Value::Bool(s(&a[0])? == a[1].kind_name().as_bytes()))
        }
        "deepEqual" => {
            count(a, 2)?;
            Ok(Value::Bool(deep_equal(&a[0], &a[1])))
        }
        // -- sprig: paths --
        "base" | "dir" | "clean" | "ext" | "isAbs" | "osBase" | "osDir" | "osClean" | "osExt"
        | "osIsAbs" => {
            count(a, 1)?;
            let p = s(&a[0])?;
            let which = name
                .strip_prefix("os")
                .map_or(name.to_string(), |n| n.to_lowercase());
            Ok(match which.as_str() {
                "base" => Value::str(path_base(p)),
                "dir" => Value::str(path_dir(p)),
                "clean" => Value::str(path_clean(p)),
                "ext" => Value::str(path_ext(p)),
                _ => Value::Bool(p.first() == Some(&b'/')),
            })
        }
        // -- sprig: encodings --
        "b64enc" => {
            count(a, 1)?;
            text(
                base64::engine::general_purpose::STANDARD
                    .encode(s(&a[0])?)
                    .into_bytes(),
            )
        }
        "b64dec" => {
            count(a, 1)?;
            match b64_decode(s(&a[0])?) {
                Ok(v) => text(v),
                // sprig returns Go's error text as the result.
                Err(at) => text(format!("illegal base64 data at input byte {at}").into_bytes()),
            }
        }
        "b32enc" => {
            count(a, 1)?;
            text(b32_encode(s(&a[0])?))
        }
        "b32dec" => {
            count(a, 1)?;
            match b32_decode(s(&a[0])?) {
                Some(v) => text(v),
                None => fail("b32dec of malformed input is not supported"),
            }
        }
        // -- sprig: lists --
        "list" | "tuple" => Ok(Value::list(a.to_vec())),
        "first" | "mustFirst" | "last" | "mustLast" | "rest" | "mustRest" | "initial"
        | "mustInitial" | "reverse" | "mustReverse" | "uniq" | "mustUniq" | "compact"
        | "mustCompact" | "append" | "mustAppend" | "push" | "mustPush" | "prepend"
        | "mustPrepend" | "without" | "mustWithout" | "has" | "mustHas" | "slice" | "mustSlice"
        | "chunk" | "mustChunk" => list_fn(name, a, max),
        "concat" => {
            let mut out = Vec::new();
            for x in a {
                let (l, _) = elems(x, "concat")?;
                out.extend(l);
                cap(out.len(), max)?;
            }
            Ok(Value::list(out))
        }
        // -- sprig: dicts --
        "dict" => {
            let mut mm = BTreeMap::new();
            for pair in a.chunks(2) {
                let k = strval(&pair[0]);
                let v = pair
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| Value::str(Vec::new()));
                mm.insert(k, v);
            }
            Ok(Value::map(mm))
        }
        "get" => {
            count(a, 2)?;
            let (d, k) = (m(&a[0])?, s(&a[1])?);
            let v = d.borrow().get(k).cloned();
            Ok(v.unwrap_or_else(|| Value::str(Vec::new())))
        }
        "set" => {
            count(a, 3)?;
            let (d, k) = (m(&a[0])?, s(&a[1])?.to_vec());
            if contains_map(&a[2], &d, 0) {
                return fail("a map may not contain itself");
            }
            d.borrow_mut().insert(k, a[2].clone());
            Ok(Value::Map(d, ElemTy::Any))
        }
        "unset" => {
            count(a, 2)?;
            let (d, k) = (m(&a[0])?, s(&a[1])?);
            d.borrow_mut().remove(k);
            Ok(Value::Map(d, ElemTy::Any))
        }
        "hasKey" => {
            count(a, 2)?;
            let (d, k) = (m(&a[0])?, s(&a[1])?);
            let has = d.borrow().contains_key(k);
            Ok(Value::Bool(has))
        }
        "pluck" => {
            at_least(a, 1)?;
            let k = s(&a[0])?;
            let mut out = Vec::new();
            for d in &a[1..] {
                if let Some(v) = m(d)?.borrow().get(k) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        }
        "keys" => {
            let mut out = Vec::new();
            for d in a {
                out.extend(m(d)?.borrow().keys().cloned());
            }
            Ok(str_list(out))
        }
        "values" => {
            count(a, 1)?;
            let vals: Vec<Value> = m(&a[0])?.borrow().values().cloned().collect();
            Ok(Value::list(vals))
        }
        "pick" | "omit" => {
            at_least(a, 1)?;
            let d = m(&a[0])?;
            let mut names = Vec::new();
            for k in &a[1..] {
                names.push(s(k)?.to_vec());
            }
            let out = d
                .borrow()
                .iter()
                .filter(|(k, _)| names.contains(k) == (name == "pick"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(Value::map(out))
        }
        "dig" => {
            at_least(a, 3)?;
            let d = m(&a[a.len() - 1])?;
            let default = a[a.len() - 2].clone();
            let mut keys = Vec::new();
            for k in &a[..a.len() - 2] {
                keys.push(s(k)?.to_vec());
            }
            let mut cur = Value::Map(d, ElemTy::Any);
            for k in &keys {
                let next = match &cur {
                    Value::Map(mm, ElemTy::Any) => mm.borrow().get(k).cloned(),
                    _ => return fail("dig: a step is not a map[string]interface {}"),
                };
                match next {
                    Some(v) => cur = v,
                    None => return Ok(default),
                }
            }
            Ok(cur)
        }
        // -- sprig: random and ids --
        "randBytes" => {
            use rand::RngCore as _;
            count(a, 1)?;
            let n = i(&a[0])?;
            cap(n.max(0) as usize, max)?;
            let mut buf = vec![0u8; n.max(0) as usize];
            rand::rng().fill_bytes(&mut buf);
            text(
                base64::engine::general_purpose::STANDARD
                    .encode(&buf)
                    .into_bytes(),
            )
        }
        "uuidv4" => {
            use rand::RngCore as _;
            count(a, 0)?;
            let mut u = [0u8; 16];
            rand::rng().fill_bytes(&mut u);
            u[6] = (u[6] & 0x0f) | 0x40;
            u[8] = (u[8] & 0x3f) | 0x80;
            let h = String::from_utf8(hex(&u)).unwrap_or_default();
            text(
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
                .into_bytes(),
            )
        }
        // -- sprig: regular expressions --
        "regexMatch" | "mustRegexMatch" => {
            count(a, 2)?;
            let (re, x) = (s(&a[0])?, s(&a[1])?);
            match regex(re) {
                Ok(r) => Ok(Value::Bool(r.is_match(x))),
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => Ok(Value::Bool(false)),
            }
        }
        "regexFindAll" | "mustRegexFindAll" => {
            count(a, 3)?;
            let (re, x, n) = (s(&a[0])?, s(&a[1])?, i(&a[2])?);
            match regex(re) {
                Ok(r) => {
                    let it = r.find_iter(x).map(|mm| mm.as_bytes().to_vec());
                    let found: Vec<Vec<u8>> = if n < 0 {
                        it.collect()
                    } else {
                        it.take(n as usize).collect()
                    };
                    Ok(str_list(found))
                }
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => Ok(str_list(Vec::new())),
            }
        }
        "regexFind" | "mustRegexFind" => {
            count(a, 2)?;
            let (re, x) = (s(&a[0])?, s(&a[1])?);
            match regex(re) {
                Ok(r) => text(
                    r.find(x)
                        .map(|mm| mm.as_bytes().to_vec())
                        .unwrap_or_default(),
                ),
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => text(Vec::new()),
            }
        }
        "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral" => {
            count(a, 3)?;
            let (re, x, rep) = (s(&a[0])?, s(&a[1])?, s(&a[2])?);
            match regex(re) {
                Ok(r) => {
                    let out = if name.ends_with("Literal") {
                        r.replace_all(x, regex::bytes::NoExpand(rep)).into_owned()
                    } else {
                        r.replace_all(x, rep).into_owned()
                    };
                    cap(out.len(), max)?;
                    text(out)
                }
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => text(Vec::new()),
            }
        }
        "regexSplit" | "mustRegexSplit" => {
            count(a, 3)?;
            let (re, x, n) = (s(&a[0])?, s(&a[1])?, i(&a[2])?);
            match regex(re) {
                Ok(r) => {
                    if n == 0 {
                        return Ok(str_list(Vec::new()));
                    }
                    let parts: Vec<Vec<u8>> = if n < 0 {
                        r.split(x).map(<[u8]>::to_vec).collect()
                    } else {
                        r.splitn(x, n as usize).map(<[u8]>::to_vec).collect()
                    };
                    Ok(str_list(parts))
                }
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => Ok(str_list(Vec::new())),
            }
        }
        "regexQuoteMeta" => {
            count(a, 1)?;
            let x = s(&a[0])?;
            let mut out = Vec::new();
            for &c in x {
                if b"\\.+*?()|[]{}^$".contains(&c) {
                    out.push(b'\\');
                }
                out.push(c);
            }
            text(out)
        }
        _ => super::eso::call(name, a).unwrap_or_else(|| fail("function is not supported")),
    }
}

/// sprig's `bcrypt`: Go's x/crypto/bcrypt at its default cost 10, version `$2a$`, a fresh salt.
/// Go refuses passwords longer than 72 bytes (and sprig returns the error as the text).
fn bcrypt(pw: &[u8]) -> Vec<u8> {
    if pw.len() > 72 {
        return b"failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
            .to_vec();
    }
    match bcrypt::hash_with_result(pw, 10) {
        Ok(h) => h.format_for_version(bcrypt::Version::TwoA).into_bytes(),
        Err(_) => b"failed to encrypt string with bcrypt".to_vec(),
    }
}

/// mergo's map merge as sprig 3.2.3 uses it (`merge`: fill what dst lacks or has empty;
/// `mergeOverwrite`: src wins), in place: Go maps are references, so `merge $a $b` changes $a.
/// Nested maps merge recursively; a non-empty dst value is never replaced by a map or a list.
fn merge_maps(dst: &MapRef, src: &MapRef, overwrite: bool, depth: usize) {
    if depth > 64 {
        return;
    }
    // Snapshot src first: dst and src may be the same map.
    let entries: Vec<(Vec<u8>, Value)> = src
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let src_empty = entries.is_empty();
    for (key, sv) in entries {
        let dv = dst.borrow().get(&key).cloned();
        if matches!(sv, Value::Nil) {
            if overwrite {
                dst.borrow_mut().insert(key, Value::Nil);
            }
            continue;
        }
        match (&sv, &dv) {
            (Value::Map(sm, _), Some(Value::Map(dm, ElemTy::Any))) => {
                merge_maps(dm, sm, overwrite, depth + 1);
            }
            (Value::List(..), _) => {
                // mergo stores a slice for the key whatever else happens below.
                let dst_empty = dst.borrow().is_empty();
                let slice = match &dv {
                    _ if !src_empty && (overwrite || dst_empty) => sv.clone(),
                    None | Some(Value::Nil) => Value::list(Vec::new()),
                    Some(other) => other.clone(),
                };
                dst.borrow_mut().insert(key.clone(), slice);
            }
            _ => {}
        }
        let dst_set = dv.as_ref().is_some_and(|d| !is_empty(d));
        if dst_set && matches!(sv, Value::Map(..) | Value::List(..)) {
            continue;
        }
        if overwrite || !dst_set {
            dst.borrow_mut().insert(key, sv);
        }
    }
}

/// sprig's AES-256-CBC: the key is the password's first 32 bytes (zero-filled). Encrypting
/// (`iv` None) pads PKCS#7 and prepends a fresh IV; decrypting strips as many bytes as the last
/// byte says, unchecked, as sprig does (a count past the length is an error, as Go's panic is).
fn aes_cbc(pw: &[u8], data: &[u8], iv: Option<&[u8]>) -> Result<Vec<u8>, FnError> {
    use cbc::cipher::block_padding::{NoPadding, Pkcs7};
    use cbc::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, KeyIvInit as _};
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let n = pw.len().min(32);
    key[..n].copy_from_slice(&pw[..n]);
    let bad = |_| FnError::Msg("crypto/cipher: input not full blocks".into());
    match iv {
        None => {
            let iv: [u8; 16] = rand::random();
            let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key[..], &iv)
                .map_err(|_| FnError::Msg("crypto/aes: invalid key size".into()))?;
            let mut out = iv.to_vec();
            out.extend(enc.encrypt_padded_vec::<Pkcs7>(data));
            Ok(out)
        }
        Some(iv) => {
            if data.is_empty() || !data.len().is_multiple_of(16) {
                return fail("crypto/cipher: input not full blocks");
            }
            let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key[..], iv)
                .map_err(|_| FnError::Msg("crypto/aes: invalid key size".into()))?;
            let mut out = dec.decrypt_padded_vec::<NoPadding>(data).map_err(bad)?;
            let pad = usize::from(out.last().copied().unwrap_or(0));
            if pad > out.len() {
                return fail("slice bounds out of range");
            }
            out.truncate(out.len() - pad);
            Ok(out)
        }
    }
}

/// goutils' AbbreviateFull (sprig's `abbrevboth`), on bytes as Go slices strings; the width is at
/// least 4 here (sprig checks first).
fn abbreviate_full(x: &[u8], offset: i64, width: i64) -> Vec<u8> {
    let len = x.len() as i64;
    if x.is_empty() || len <= width {
        return x.to_vec();
    }
    let mut offset = offset.min(len);
    if len - offset < width - 3 {
        offset = len - (width - 3);
    }
    let dots = b"...";
    if offset <= 4 {
        return [&x[..(width - 3) as usize], dots].concat();
    }
    if width < 7 {
        return Vec::new();
    }
    if offset + width - 3 < len {
        return [
            dots,
            &abbreviate_full(&x[offset as usize..], 0, width - 3)[..],
        ]
        .concat();
    }
    [dots, &x[(len - (width - 3)) as usize..]].concat()
}

/// goutils' WrapCustom (sprig's `wrap` and `wrapWith`): break at the last space within the
/// width; a longer word is cut (`long_words`) or kept whole. Byte columns, as in Go.
fn wrap_custom(x: &[u8], width: i64, newline: &[u8], long_words: bool) -> Vec<u8> {
    if x.is_empty() {
        return Vec::new();
    }
    let newline: &[u8] = if newline.is_empty() { b"\n" } else { newline };
    let width = width.max(1) as usize;
    let len = x.len();
    let mut offset = 0;
    let mut out = Vec::new();
    while len - offset > width {
        if x[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = width + offset + 1;
        if let Some(sp) = x[offset..end].iter().rposition(|&c| c == b' ') {
            out.extend_from_slice(&x[offset..offset + sp]);
            out.extend_from_slice(newline);
            offset += sp + 1;
        } else if long_words {
            out.extend_from_slice(&x[offset..offset + width]);
            out.extend_from_slice(newline);
            offset += width;
        } else {
            let end = width + offset;
            match x[end..].iter().position(|&c| c == b' ') {
                None => {
                    out.extend_from_slice(&x[offset..]);
                    offset = len;
                }
                Some(k) => {
                    out.extend_from_slice(&x[offset..end + k]);
                    out.extend_from_slice(newline);
                    offset = end + k + 1;
                }
            }
        }
    }
    out.extend_from_slice(&x[offset..]);
    out
}

// ---- Go's path package ----

fn path_clean(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let rooted = p[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|l| *l != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(seg);
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::new();
    if rooted {
        out.push(b'/');
    }
    out.extend(parts.join(&b'/'));
    if out.is_empty() {
        return b".".to_vec();
    }
    out
}

fn path_base(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let t: &[u8] = {
        let mut e = p.len();
        while e > 0 && p[e - 1] == b'/' {
            e -= 1;
        }
        &p[..e]
    };
    if t.is_empty() {
        return b"/".to_vec();
    }
    match t.iter().rposition(|&c| c == b'/') {
        Some(k) => t[k + 1..].to_vec(),
        None => t.to_vec(),
    }
}

fn path_dir(p: &[u8]) -> Vec<u8> {
    let k = p.iter().rposition(|&c| c == b'/').map_or(0, |k| k + 1);
    path_clean(&p[..k])
}

fn path_ext(p: &[u8]) -> Vec<u8> {
    for k in (0..p.len()).rev() {
        if p[k] == b'/' {
            break;
        }
        if p[k] == b'.' {
            return p[k..].to_vec();
        }
    }
    Vec::new()
}

/// Go's math.Max/Min: NaN wins, and +0 beats -0 for max.
fn go_max(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    x.max(y)
}

fn go_min(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    x.min(y)
}

/// A decimal number (mantissa × 10^exp), as sprig's float functions compute through
/// shopspring/decimal: floats enter by their shortest decimal form, so 0.1 + 0.2 is 0.3.
#[derive(Clone, Copy)]
struct Decimal {
    mant: i128,
    exp: i32,
}

impl Decimal {
    fn from_f64(f: f64) -> Decimal {
        if !f.is_finite() || f == 0.0 {
            return Decimal { mant: 0, exp: 0 };
        }
        let (digits, dp) = super::value::decimal_digits(f, -1);
        let mut mant: i128 = 0;
        for d in &digits {
            mant = mant * 10 + i128::from(d - b'0');
        }
        if f < 0.0 {
            mant = -mant;
        }
        Decimal {
            mant,
            exp: dp - digits.len() as i32,
        }
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.mant, self.exp).parse().unwrap_or(0.0)
    }

    fn align(self, other: Decimal) -> Option<(i128, i128, i32)> {
        let exp = self.exp.min(other.exp);
        let scale = |d: Decimal| -> Option<i128> {
            let shift = u32::try_from(d.exp - exp).ok()?;
            d.mant.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((scale(self)?, scale(other)?, exp))
    }

    fn op(self, name: &str, other: &Decimal) -> Result<Decimal, FnError> {
        let too_big = || FnError::Msg("number too large for decimal arithmetic".into());
        Ok(match name {
            "addf" | "subf" => {
                let exact = self.align(*other).and_then(|(x, y, exp)| {
                    let mant = if name == "addf" {
                        x.checked_add(y)
                    } else {
                        x.checked_sub(y)
                    };
                    mant.map(|mant| Decimal { mant, exp })
                });
                // Operands more than ~38 digits apart: the smaller one is far below a float's
                // precision, so float arithmetic rounds the same way.
                exact.unwrap_or_else(|| {
                    let (x, y) = (self.to_f64(), other.to_f64());
                    Decimal::from_f64(if name == "addf" { x + y } else { x - y })
                })
            }
            "mulf" => Decimal {
                mant: self.mant.checked_mul(other.mant).ok_or_else(too_big)?,
                exp: self.exp + other.exp,
            },
            _ => {
                if other.mant == 0 {
                    return fail("decimal division by 0");
                }
                // shopspring's Div rounds the quotient to 16 decimal places, half away from zero.
                let places = 16i32;
                let shift = places + self.exp - other.exp;
                let (num, den) = if shift >= 0 {
                    let p = 10i128.checked_pow(shift as u32).ok_or_else(too_big)?;
                    (self.mant.checked_mul(p).ok_or_else(too_big)?, other.mant)
                } else {
                    let p = 10i128.checked_pow((-shift) as u32).ok_or_else(too_big)?;
                    (self.mant, other.mant.checked_mul(p).ok_or_else(too_big)?)
                };
                let (q, r) = (num / den, num % den);
                let round_up = r.unsigned_abs() * 2 >= den.unsigned_abs();
                let neg = (num < 0) != (den < 0);
                let q = if round_up {
                    if neg { q - 1 } else { q + 1 }
                } else {
                    q
                };
                Decimal {
                    mant: q,
                    exp: -places,
                }
            }
        })
    }
}
