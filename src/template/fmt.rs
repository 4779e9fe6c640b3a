//! Go's fmt for templates: Sprint, Sprintln and Sprintf over template values, with Go's error
//! markers (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`) instead of failures.

use super::value::{Value, format_float_e, format_float_f, format_float_g_case, write_value};

/// fmt.Sprint: a space between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(b' ');
        }
        write_value(&mut out, a);
    }
    out
}

/// fmt.Sprintln: always spaces between operands, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_value(&mut out, a);
    }
    out.push(b'\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// The largest width or precision honoured; larger ones are capped so a template cannot ask for
/// gigabytes of padding (the output cap would refuse it anyway).
const MAX_PAD: usize = 1 << 20;

pub(crate) fn sprintf(format: &[u8], args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut argn = 0usize;
    let mut reordered = false;
    let mut i = 0;
    let end = format.len();
    while i < end {
        let c = format[i];
        if c != b'%' {
            let next = format[i..]
                .iter()
                .position(|&c| c == b'%')
                .map_or(end, |k| k + i);
            out.extend_from_slice(&format[i..next]);
            i = next;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < end {
            match format[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = !spec.minus,
                b'+' => spec.plus = true,
                b'-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good_arg = true;
        // [n] argument index
        let arg_index = |i: &mut usize, argn: &mut usize, reordered: &mut bool| -> bool {
            if *i < end && format[*i] == b'[' {
                *reordered = true;
                let close = format[*i..].iter().position(|&c| c == b']');
                let Some(close) = close else {
                    *i = end;
                    return false;
                };
                let n = std::str::from_utf8(&format[*i + 1..*i + close])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok());
                *i += close + 1;
                match n {
                    Some(n) if n >= 1 && n <= args.len() => {
                        *argn = n - 1;
                        true
                    }
                    _ => false,
                }
            } else {
                true
            }
        };
        good_arg &= arg_index(&mut i, &mut argn, &mut reordered);
        // width
        if i < end && format[i] == b'*' {
            i += 1;
            match args.get(argn) {
                Some(Value::Int(n, _)) => {
                    let n = *n;
                    if n < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some((n.unsigned_abs() as usize).min(MAX_PAD));
                }
                _ => out.extend_from_slice(b"%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let (n, k) = digits(&format[i..]);
            if k > 0 {
                spec.width = Some(n.min(MAX_PAD));
                i += k;
            }
        }
        if i < end && format[i] == b'.' {
            i += 1;
            good_arg &= arg_index(&mut i, &mut argn, &mut reordered);
            if i < end && format[i] == b'*' {
                i += 1;
                match args.get(argn) {
                    Some(Value::Int(n, _)) if *n >= 0 => {
                        spec.prec = Some((*n as usize).min(MAX_PAD))
                    }
                    _ => out.extend_from_slice(b"%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let (n, k) = digits(&format[i..]);
                spec.prec = Some(n.min(MAX_PAD));
                i += k;
            }
        }
        good_arg &= arg_index(&mut i, &mut argn, &mut reordered);
        if i >= end {
            out.extend_from_slice(b"%!(NOVERB)");
            break;
        }
        let (verb, vlen) = decode_rune(&format[i..]);
        i += vlen;
        if verb == '%' {
            out.push(b'%');
            continue;
        }
        if !good_arg {
            push_marker(&mut out, verb, "BADINDEX");
            continue;
        }
        let Some(arg) = args.get(argn) else {
            push_marker(&mut out, verb, "MISSING");
            continue;
        };
        argn += 1;
        format_arg(&mut out, arg, verb, spec);
    }
    if !reordered && argn < args.len() {
        out.extend_from_slice(b"%!(EXTRA ");
        for (k, a) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.extend_from_slice(b", ");
            }
            if matches!(a, Value::Nil) {
                out.extend_from_slice(b"<nil>");
            } else {
                out.extend_from_slice(a.type_name().as_bytes());
                out.push(b'=');
                format_arg(&mut out, a, 'v', Spec::default());
            }
        }
        out.push(b')');
    }
    out
}

fn push_marker(out: &mut Vec<u8>, verb: char, what: &str) {
    out.extend_from_slice(b"%!");
    push_char(out, verb);
    out.push(b'(');
    out.extend_from_slice(what.as_bytes());
    out.push(b')');
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn digits(s: &[u8]) -> (usize, usize) {
    let k = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = std::str::from_utf8(&s[..k])
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .unwrap_or(if k > 0 { MAX_PAD } else { 0 });
    (n, k)
}

fn decode_rune(s: &[u8]) -> (char, usize) {
    let len = match s.first() {
        Some(b) if *b < 0x80 => 1,
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        Some(b) if *b >= 0xC0 => 2,
        _ => 1,
    };
    match s.get(..len).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(st) => (st.chars().next().unwrap_or('\u{FFFD}'), len),
        None => ('\u{FFFD}', 1),
    }
}

fn bad_verb(out: &mut Vec<u8>, arg: &Value, verb: char, spec: Spec) {
    out.extend_from_slice(b"%!");
    push_char(out, verb);
    out.push(b'(');
    if matches!(arg, Value::Nil) {
        out.extend_from_slice(b"<nil>");
    } else {
        out.extend_from_slice(arg.type_name().as_bytes());
        out.push(b'=');
        // Go prints the value with the same flags, width and precision.
        format_arg(out, arg, 'v', spec);
    }
    out.push(b')');
}

/// Pads to the width (in runes), with spaces, or zeros when asked (after the sign of a number).
fn pad(out: &mut Vec<u8>, s: &[u8], spec: Spec, number: bool) {
    let w = spec.width.unwrap_or(0);
    let n = String::from_utf8_lossy(s).chars().count();
    if n >= w {
        out.extend_from_slice(s);
        return;
    }
    let fill = w - n;
    if spec.minus {
        out.extend_from_slice(s);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if spec.zero {
        let sign = number && matches!(s.first(), Some(b'-' | b'+' | b' '));
        if sign {
            out.push(s[0]);
        }
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(if sign { &s[1..] } else { s });
    } else {
        out.extend(std::iter::repeat_n(b' ', fill));
        out.extend_from_slice(s);
    }
}

fn format_arg(out: &mut Vec<u8>, arg: &Value, verb: char, spec: Spec) {
    if verb == 'T' {
        pad(out, arg.type_name().as_bytes(), spec, false);
        return;
    }
    match arg {
        Value::Nil => {
            if verb == 'v' {
                pad(out, b"<nil>", spec, false);
            } else {
                bad_verb(out, arg, verb, spec);
            }
        }
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { b"true" } else { b"false" }, spec, false),
            _ => bad_verb(out, arg, verb, spec),
        },
        Value::Int(n, _) => fmt_int(out, *n, verb, spec, arg),
        Value::Float(f) => fmt_float(out, *f, verb, spec, arg),
        Value::Str(s) => fmt_str(out, s, verb, spec, arg),
        // time.Time is a Stringer: its String() for the string verbs.
        Value::Time(t) => match verb {
            'v' | 's' | 'q' => fmt_str(out, t.go_string().as_bytes(), verb, spec, arg),
            _ => bad_verb(out, arg, verb, spec),
        },
        Value::List(items, _) => {
            out.push(b'[');
            for (k, x) in items.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                format_elem(out, x, verb, spec);
            }
            out.push(b']');
        }
        Value::Map(m, _) => {
            out.extend_from_slice(b"map[");
            for (k, (key, x)) in m.borrow().iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                format_arg(out, &Value::str(key.clone()), verb, spec);
                out.push(b':');
                format_elem(out, x, verb, spec);
            }
            out.push(b']');
        }
    }
}

/// An element inside a slice or map: a nil one prints as `<nil>` whatever the verb.
fn format_elem(out: &mut Vec<u8>, x: &Value, verb: char, spec: Spec) {
    if matches!(x, Value::Nil) {
        pad(out, b"<nil>", spec, false);
    } else {
        format_arg(out, x, verb, spec);
    }
}

fn fmt_int(out: &mut Vec<u8>, n: i64, verb: char, spec: Spec, arg: &Value) {
    let neg = n < 0;
    let u = n.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (u.to_string(), ""),
        'b' => (format!("{u:b}"), ""),
        'o' => (format!("{u:o}"), if spec.sharp { "0" } else { "" }),
        'O' => (format!("{u:o}"), "0o"),
        'x' => (format!("{u:x}"), if spec.sharp { "0x" } else { "" }),
        'X' => (format!("{u:X}"), if spec.sharp { "0X" } else { "" }),
        'c' => {
            let c = char::from_u32(n as u32).filter(|_| (0..=0x10FFFF).contains(&n));
            let mut b = Vec::new();
            push_char(&mut b, c.unwrap_or('\u{FFFD}'));
            pad(out, &b, spec, false);
            return;
        }
        'q' => {
            let c = char::from_u32(n as u32).filter(|_| (0..=0x10FFFF).contains(&n));
            let q = quote_rune(c.unwrap_or('\u{FFFD}'));
            pad(out, q.as_bytes(), spec, false);
            return;
        }
        'U' => {
            let s = format!("U+{u:04X}");
            pad(out, s.as_bytes(), spec, false);
            return;
        }
        _ => {
            bad_verb(out, arg, verb, spec);
            return;
        }
    };
    let mut digits = digits;
    if let Some(p) = spec.prec {
        if p == 0 && u == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    } else if spec.plus {
        s.push('+');
    } else if spec.space {
        s.push(' ');
    }
    // A zero flag pads between the sign and the digits, before the base prefix goes on.
    let zero_fill = spec.zero && spec.prec.is_none() && !spec.minus;
    if zero_fill {
        let w = spec.width.unwrap_or(0);
        let used = s.len() + prefix.len() + digits.len();
        s.push_str(prefix);
        for _ in used..w {
            s.push('0');
        }
        s.push_str(&digits);
        out.extend_from_slice(s.as_bytes());
        return;
    }
    s.push_str(prefix);
    s.push_str(&digits);
    pad(
        out,
        s.as_bytes(),
        Spec {
            zero: false,
            ..spec
        },
        false,
    );
}

fn fmt_float(out: &mut Vec<u8>, f: f64, verb: char, spec: Spec, arg: &Value) {
    let prec = spec.prec.map(|p| p as i32);
    let mut s = match verb {
        'v' | 'g' => format_float_g_case(f, prec.unwrap_or(-1), false),
        'G' => format_float_g_case(f, prec.unwrap_or(-1), true),
        'e' | 'E' => format_float_e(f, spec.prec.unwrap_or(6), verb == 'E'),
        'f' | 'F' => format_float_f(f, spec.prec.unwrap_or(6)),
        'x' | 'X' if spec.prec.is_none() => format_float_x(f, verb == 'X'),
        _ => {
            bad_verb(out, arg, verb, spec);
            return;
        }
    };
    if spec.plus && !s.starts_with('-') {
        s.insert(0, '+');
    } else if spec.space && !s.starts_with('-') {
        s.insert(0, ' ');
    }
    if s == "+Inf" && !spec.plus {
        s = if spec.space {
            " Inf".into()
        } else {
            "+Inf".into()
        };
    }
    pad(
        out,
        s.as_bytes(),
        Spec {
            zero: spec.zero && f.is_finite(),
            ..spec
        },
        true,
    );
}

fn fmt_str(out: &mut Vec<u8>, s: &[u8], verb: char, spec: Spec, arg: &Value) {
    let truncated: Vec<u8>;
    let s = match spec.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'q' | 'x' | 'X') => {
            let text = String::from_utf8_lossy(s);
            if text.chars().count() > p && std::str::from_utf8(s).is_ok() {
                truncated = text.chars().take(p).collect::<String>().into_bytes();
                &truncated[..]
            } else if std::str::from_utf8(s).is_err() && s.len() > p {
                &s[..p]
            } else {
                s
            }
        }
        _ => s,
    };
    match verb {
        's' | 'v' => pad(out, s, spec, false),
        'q' => pad(out, quote(s).as_bytes(), spec, false),
        'x' | 'X' => {
            let mut h = String::new();
            for (k, b) in s.iter().enumerate() {
                if spec.space && k > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || k == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, h.as_bytes(), spec, false);
        }
        _ => bad_verb(out, arg, verb, spec),
    }
}

/// Go's unicode.IsPrint, approximately: what strconv.Quote leaves unescaped.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}')
        || (c as u32) >= 0xF0000
        || matches!(c as u32, 0xFFFE | 0xFFFF))
}

fn escape_char(out: &mut String, c: char, quote: char) {
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
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// strconv.Quote: a double-quoted Go string literal.
pub(crate) fn quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            escape_char(&mut out, c, '"');
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'');
    out.push('\'');
    out
}

/// strconv.FormatFloat(f, 'x', -1, 64): hexadecimal mantissa and binary exponent.
fn format_float_x(f: f64, upper: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let mut exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    let mut out = String::from(if neg { "-" } else { "" });
    if exp == 0 && mant == 0 {
        out.push_str("0x0p+00");
    } else {
        if exp == 0 {
            // Subnormal: shift until the implicit bit appears.
            exp = 1;
            while mant & (1u64 << 52) == 0 {
                mant <<= 1;
                exp -= 1;
            }
            mant &= (1u64 << 52) - 1;
        }
        let e = exp - 1023;
        let mut frac = format!("{mant:013x}");
        while frac.ends_with('0') {
            frac.pop();
        }
        out.push_str("0x1");
        if !frac.is_empty() {
            out.push('.');
            out.push_str(&frac);
        }
        out.push('p');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.unsigned_abs()));
    }
    if upper { out.to_uppercase() } else { out }
}
