//! Go's dynamic values as a template sees them, and Go's default printing of them (fmt's %v).
//! Strings are byte strings, as in Go: a secret need not be UTF-8.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use zeroize::Zeroizing;

/// A Go string: bytes, shared, wiped on drop (it may hold a secret).
pub(crate) type GoStr = Rc<Zeroizing<Vec<u8>>>;

pub(crate) fn go_str(bytes: Vec<u8>) -> GoStr {
    Rc::new(Zeroizing::new(bytes))
}

/// Go integer types that a template can meet: they print alike but type checks tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntTy {
    Int,
    Int64,
    Uint8,
}

/// Element types of slices and maps, which Go's type checks and `typeOf` see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElemTy {
    Any,
    Str,
    Int,
}

#[derive(Clone)]
pub(crate) enum Value {
    /// A nil interface (a JSON null, an absent `index` result, `nil`).
    Nil,
    Bool(bool),
    Int(i64, IntTy),
    Float(f64),
    Str(GoStr),
    List(Rc<Vec<Value>>, ElemTy),
    /// A Go time.Time (sprig's date functions).
    Time(super::date::GoTime),
    /// Go maps are references: sprig's `set`/`unset` change a map every holder sees.
    Map(Rc<RefCell<BTreeMap<Vec<u8>, Value>>>, ElemTy),
}

impl Value {
    pub(crate) fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(go_str(s.into()))
    }

    pub(crate) fn int(n: i64) -> Value {
        Value::Int(n, IntTy::Int)
    }

    pub(crate) fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items), ElemTy::Any)
    }

    pub(crate) fn map(m: BTreeMap<Vec<u8>, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(m)), ElemTy::Any)
    }

    /// Go's type name, as `%T` and fmt's bad-verb markers print it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_, IntTy::Int) => "int",
            Value::Int(_, IntTy::Int64) => "int64",
            Value::Int(_, IntTy::Uint8) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_, ElemTy::Any) => "[]interface {}",
            Value::List(_, ElemTy::Str) => "[]string",
            Value::List(_, ElemTy::Int) => "[]int",
            Value::Map(_, ElemTy::Str) => "map[string]string",
            Value::Time(_) => "time.Time",
            Value::Map(_, _) => "map[string]interface {}",
        }
    }

    /// Go's reflect kind name (sprig's `kindOf`).
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_, IntTy::Int) => "int",
            Value::Int(_, IntTy::Int64) => "int64",
            Value::Int(_, IntTy::Uint8) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(..) => "slice",
            Value::Map(..) => "map",
            Value::Time(_) => "struct",
        }
    }

    /// Go's truth for if/with/and/or/not: empty and zero values are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(n, _) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Map(m, _) => !m.borrow().is_empty(),
            // Go's truth of a struct is always true.
            Value::Time(_) => true,
        }
    }
}

/// fmt's %v of a value (as print and `{{ }}` show nested values: nil is `<nil>`).
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.extend_from_slice(b"<nil>"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n, _) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(format_float_g(*f, -1).as_bytes()),
        Value::Str(s) => out.extend_from_slice(s),
        Value::Time(t) => out.extend_from_slice(t.go_string().as_bytes()),
        Value::List(items, _) => {
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Map(m, _) => {
            out.extend_from_slice(b"map[");
            for (i, (k, x)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(k);
                out.push(b':');
                write_value(out, x);
            }
            out.push(b']');
        }
    }
}

/// Shortest (or `prec` significant) decimal digits of |f| and the decimal point position:
/// f = 0.DIGITS × 10^dp.
pub(crate) fn decimal_digits(f: f64, prec: i32) -> (Vec<u8>, i32) {
    let s = if prec < 0 {
        format!("{:e}", f.abs())
    } else {
        format!("{:.*e}", (prec.max(1) - 1) as usize, f.abs())
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(|c| c.is_ascii_digit()).collect();
    // Go's decimal trims trailing zeros after rounding.
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == b"0" {
        return (digits, 0);
    }
    (digits, exp + 1)
}

fn special_float(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

fn exp_suffix(out: &mut String, upper: bool, exp: i32) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

/// strconv.FormatFloat(f, 'g', prec, 64); prec -1 is the shortest representation (fmt's %v).
pub(crate) fn format_float_g(f: f64, prec: i32) -> String {
    format_float_g_case(f, prec, false)
}

pub(crate) fn format_float_g_case(f: f64, prec: i32, upper: bool) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    let neg = f.is_sign_negative();
    let (digits, dp) = decimal_digits(f, if prec == 0 { 1 } else { prec });
    let nd = digits.len() as i32;
    let mut eprec = if prec < 0 { 6 } else { prec.max(1) };
    if prec >= 0 && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec < 0 {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let is_zero = digits == b"0";
    if !is_zero && (exp < -4 || exp >= eprec) {
        out.push(digits[0] as char);
        if nd > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&c| c as char));
        }
        exp_suffix(&mut out, upper, exp);
        return out;
    }
    // %f with no trailing zeros
    if is_zero {
        out.push('0');
        return out;
    }
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.extend(digits.iter().map(|&c| c as char));
    } else if dp >= nd {
        out.extend(digits.iter().map(|&c| c as char));
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        out.extend(digits[..dp as usize].iter().map(|&c| c as char));
        out.push('.');
        out.extend(digits[dp as usize..].iter().map(|&c| c as char));
    }
    out
}

/// strconv.FormatFloat(f, 'e', prec, 64).
pub(crate) fn format_float_e(f: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    let s = format!("{:.*e}", prec, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    out.push_str(mant);
    exp_suffix(&mut out, upper, exp);
    out
}

/// strconv.FormatFloat(f, 'f', prec, 64).
pub(crate) fn format_float_f(f: f64, prec: usize) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    let s = format!("{:.*}", prec, f.abs());
    if f.is_sign_negative() {
        format!("-{s}")
    } else {
        s
    }
}

/// strconv.FormatFloat(f, 'e', -1, 64): shortest digits in exponent form.
pub(crate) fn format_float_e_shortest(f: f64) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    let (digits, dp) = decimal_digits(f, -1);
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    out.push(digits[0] as char);
    if digits.len() > 1 {
        out.push('.');
        out.extend(digits[1..].iter().map(|&c| c as char));
    }
    exp_suffix(&mut out, false, if digits == b"0" { 0 } else { dp - 1 });
    out
}

/// strconv.FormatFloat(f, 'f', -1, 64): shortest digits, no exponent.
pub(crate) fn format_float_f_shortest(f: f64) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    let (digits, dp) = decimal_digits(f, -1);
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    let nd = digits.len() as i32;
    if digits == b"0" {
        out.push('0');
    } else if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.extend(digits.iter().map(|&c| c as char));
    } else if dp >= nd {
        out.extend(digits.iter().map(|&c| c as char));
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        out.extend(digits[..dp as usize].iter().map(|&c| c as char));
        out.push('.');
        out.extend(digits[dp as usize..].iter().map(|&c| c as char));
    }
    out
}
