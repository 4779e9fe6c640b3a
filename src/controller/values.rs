//! ESO's value rules, in one place: reading `property` (gjson), splitting a document for
//! `dataFrom.extract`, converting keys (`conversionStrategy`) and decoding (`decodingStrategy`).
//! Each mirrors the Go library ESO calls, byte for byte; `tests/values_oracle.rs` compares them with
//! those libraries (tools/go-oracle) over generated inputs. Pure functions, no I/O.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use zeroize::Zeroizing;

use crate::api::{ConversionStrategy, DecodingStrategy};
use crate::provider::SecretBytes;

/// Why `property` gave no value. Never carries the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyError {
    /// The document is not JSON that gjson can read, and nothing was found.
    NotJson,
    /// The document is JSON but has nothing at that path.
    NotFound,
    /// The path uses gjson syntax we do not evaluate exactly as Go's gjson does (see
    /// `unsupported_syntax`): refused rather than answered with different bytes.
    UnsupportedSyntax,
}

/// Read `property` as ESO's AWS providers do: a property with a dot is first tried with every dot
/// escaped (so the literal key "a.b" wins), then as a plain gjson path. gjson is lenient (a trailing
/// comma is fine), so the document is not validated first. The value is what Go's
/// `gjson.Result.String()` gives: strings unescaped, `null` empty, nested JSON as written, numbers
/// as gjson prints them.
pub fn property(doc: &SecretBytes, property: &str) -> Result<SecretBytes, PropertyError> {
    if unsupported_syntax(property) {
        return Err(PropertyError::UnsupportedSyntax);
    }
    // gjson (Go) reads bytes; ours reads text. Documents that are not UTF-8 are not JSON to us.
    let text = doc.expose_str().ok_or(PropertyError::NotJson)?;
    let root = gjson::parse(text);
    let literal = property
        .contains('.')
        .then(|| lookup(&root, &property.replace('.', "\\.")))
        .flatten();
    let Some(found) = literal.or_else(|| lookup(&root, property)) else {
        // Only a diagnosis: ESO reports both as "does not exist".
        return Err(if gjson::valid(text) {
            PropertyError::NotFound
        } else {
            PropertyError::NotJson
        });
    };
    Ok(gjson_string(&gjson::parse(&found)))
}

/// Follow a gjson path (keys with `\` escapes, array indexes, `#` and `#.rest`) and return the raw
/// JSON text found (zeroed on drop: it is part of the secret). The crate only tokenizes here: its own path walk stops at the first key that
/// matches, where Go goes on to a later duplicate key when the rest of the path fails there, and it
/// reads `#` on an object as a key.
fn lookup(value: &gjson::Value, path: &str) -> Option<Zeroizing<String>> {
    let (raw_part, key, rest) = split_component(path);
    match value.kind() {
        gjson::Kind::Object => {
            let mut found = None;
            value.each(|k, v| {
                let raw = k.json();
                let inner = raw.strip_prefix('"').unwrap_or(raw);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                if go_gjson_unescape(inner) == key.as_bytes() {
                    found = match rest {
                        None => Some(Zeroizing::new(v.json().to_owned())),
                        Some(rest) => lookup(&v, rest),
                    };
                }
                found.is_none()
            });
            found
        }
        gjson::Kind::Array => {
            if raw_part == "#" {
                let mut count = 0usize;
                let mut mapped: Vec<Zeroizing<String>> = Vec::new();
                value.each(|_, v| {
                    count += 1;
                    if let Some(rest) = rest {
                        mapped.extend(lookup(&v, rest));
                    }
                    true
                });
                if rest.is_none() {
                    return Some(Zeroizing::new(count.to_string()));
                }
                let mut out = Zeroizing::new(String::from("["));
                for (i, m) in mapped.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(m);
                }
                out.push(']');
                return Some(out);
            }
            if raw_part.is_empty() || !raw_part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index: usize = raw_part.parse().ok()?;
            let mut found = None;
            let mut i = 0;
            value.each(|_, v| {
                if i == index {
                    found = match rest {
                        None => Some(Zeroizing::new(v.json().to_owned())),
                        Some(rest) => lookup(&v, rest),
                    };
                    return false;
                }
                i += 1;
                true
            });
            found
        }
        _ => None,
    }
}

/// The first component of a path: as written, with `\` escapes removed, and what follows its dot.
fn split_component(path: &str) -> (&str, String, Option<&str>) {
    let mut key = String::new();
    let mut chars = path.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    key.push(escaped);
                }
            }
            '.' => return (&path[..i], key, Some(&path[i + 1..])),
            c => key.push(c),
        }
    }
    (path, key, None)
}

/// Path syntax where the Rust `gjson` crate and Go's gjson disagree (measured against Go by
/// tests/values_oracle.rs): wildcards `*` `?` (Go goes on to later keys when a match leads nowhere),
/// modifiers `@…` (Go rewrites the JSON), queries `#(…)`, pipes `|`, multipaths `[…]` `{…}` and
/// literals `!…`. Escaped with `\`, each of these characters is an ordinary key character.
fn unsupported_syntax(path: &str) -> bool {
    let mut chars = path.chars().peekable();
    let mut component_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // An escaped character is part of the key.
                chars.next();
                component_start = false;
                continue;
            }
            '*' | '?' | '|' => return true,
            '#' if chars.peek() == Some(&'(') => return true,
            '@' | '[' | '{' | '!' if component_start => return true,
            _ => {}
        }
        component_start = c == '.';
    }
    false
}

/// Go's `gjson.Result.String()`.
fn gjson_string(value: &gjson::Value) -> SecretBytes {
    match value.kind() {
        gjson::Kind::Number => SecretBytes::from(go_number_string(value.json())),
        // The crate decodes a surrogate pair wrongly (`\uD858\uDD04` is U+26104, it gives U+16104),
        // so strings are unescaped here, from their raw text.
        gjson::Kind::String => {
            let raw = value.json();
            let inner = raw.strip_prefix('"').unwrap_or(raw);
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            SecretBytes::new(go_gjson_unescape(inner))
        }
        // str(): null empty, true/false, objects and arrays as raw text.
        _ => SecretBytes::from(value.str().to_owned()),
    }
}

/// gjson's (Go) string unescaping: stops quietly at a control character or a bad escape; `\u`
/// with bad hex digits is U+0000; a surrogate takes the next `\u` escape as its pair, and an
/// invalid pair or a lone surrogate is U+FFFD.
fn go_gjson_unescape(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b < b' ' {
            break;
        }
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let simple = match bytes.get(i + 1) {
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'"') => b'"',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let Some(mut r) = hex4(bytes, i + 2) else {
                    break;
                };
                i += 6;
                // A surrogate consumes the next `\u` escape whatever it holds.
                if (0xd800..0xe000).contains(&r)
                    && bytes.get(i) == Some(&b'\\')
                    && bytes.get(i + 1) == Some(&b'u')
                    && let Some(low) = hex4(bytes, i + 2)
                {
                    r = if (0xd800..0xdc00).contains(&r) && (0xdc00..0xe000).contains(&low) {
                        0x10000 + ((r - 0xd800) << 10) + (low - 0xdc00)
                    } else {
                        0xfffd
                    };
                    i += 6;
                }
                let c = char::from_u32(r).unwrap_or('\u{fffd}');
                out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                continue;
            }
            _ => break,
        };
        out.push(simple);
        i += 2;
    }
    out
}

/// Four characters at `at` read as hex the way gjson does (`strconv.ParseUint`, error ignored): not
/// hex is 0. `None` when fewer than four characters are left.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    Some(
        digits
            .iter()
            .try_fold(0u32, |n, &d| char::from(d).to_digit(16).map(|v| n * 16 + v))
            .unwrap_or(0),
    )
}

/// gjson keeps an integer's text (any length, leading zeros and `-0` included); anything else goes
/// through float64 and back with `strconv.FormatFloat(f, 'f', -1, 64)`: `1.50` → `1.5`, `1e3` → `1000`.
fn go_number_string(raw: &str) -> String {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        return raw.to_owned();
    }
    go_format_float(go_parse_float(raw))
}

/// `strconv.ParseFloat(s, 64)` as gjson uses it (error ignored): out of range is ±Inf, a syntax
/// error is 0.
fn go_parse_float(raw: &str) -> f64 {
    // Rust accepts a few spellings Go does not ("infinity" is shared, but not e.g. "inF" with a
    // trailing letter); gjson only hands us tokens starting with '-' or a digit, where both agree.
    raw.parse::<f64>().unwrap_or(0.0)
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: shortest digits that round-trip, never an exponent.
/// Rust's `Display` for f64 is exactly that, except for the spelling of the infinities.
fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        f.to_string()
    }
}

/// Split a document into Secret entries as ESO's `GetSecretMap` does with Go's strict
/// `encoding/json`: the document must be a JSON object (or `null`, which is no entries); a value that
/// is a JSON string (or `null`) becomes its text, anything else keeps its source text (`1.50` stays
/// `1.50`). A repeated key keeps its last value, as Go's map does. `None`: not a JSON object.
pub fn extract(doc: &SecretBytes) -> Option<BTreeMap<String, SecretBytes>> {
    let text = doc.expose_str()?;
    // Strict syntax first (gjson would accept a trailing comma, Go's encoding/json does not).
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let parsed = gjson::parse(text);
    let mut out = BTreeMap::new();
    match parsed.kind() {
        gjson::Kind::Null => return Some(out),
        gjson::Kind::Object => {}
        _ => return None,
    }
    parsed.each(|k, v| {
        let value = match v.kind() {
            gjson::Kind::String => SecretBytes::from(go_json_unquote(v.json())),
            // Go unmarshals `null` into a string without error and leaves it empty.
            gjson::Kind::Null => SecretBytes::new(Vec::new()),
            _ => SecretBytes::from(v.json().to_owned()),
        };
        out.insert(go_json_unquote(k.json()), value);
        true
    });
    Some(out)
}

/// Go's `encoding/json` string decoding, for a literal already validated (quotes included). Unlike
/// serde_json it accepts a lone surrogate escape and writes U+FFFD for it; the escape after it is
/// read on its own.
fn go_json_unquote(raw: &str) -> String {
    let inner = raw.strip_prefix('"').unwrap_or(raw);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        let (c, used) = match escape.as_bytes().get(1) {
            Some(b'u') => {
                let high = u_escape(escape).unwrap_or(0xfffd);
                let low = escape.get(6..).and_then(u_escape);
                match (high, low) {
                    (0xd800..0xdc00, Some(low @ 0xdc00..0xe000)) => (
                        char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)),
                        12,
                    ),
                    (0xd800..0xe000, _) => (None, 6),
                    _ => (char::from_u32(high), 6),
                }
            }
            Some(b'b') => (Some('\u{8}'), 2),
            Some(b'f') => (Some('\u{c}'), 2),
            Some(b'n') => (Some('\n'), 2),
            Some(b'r') => (Some('\r'), 2),
            Some(b't') => (Some('\t'), 2),
            Some(&other) => (Some(char::from(other)), 2),
            None => (None, 1),
        };
        out.push(c.unwrap_or('\u{fffd}'));
        rest = escape.get(used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The code unit of a `\uXXXX` escape at the start of `s`.
fn u_escape(s: &str) -> Option<u32> {
    let hex = s.strip_prefix("\\u")?.get(..4)?;
    u32::from_str_radix(hex, 16)
        .ok()
        .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A Unicode letter or number as Go's `unicode.IsLetter` / `unicode.IsNumber` see it (general
/// categories L and N; not Rust's `is_alphabetic`, which also takes combining marks).
static LETTER_OR_NUMBER: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{N}]$").ok());

fn is_letter_or_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    let mut buf = [0u8; 4];
    // The pattern is a constant (a unit test compiles it); were it ever missing, every non-ASCII
    // character would be converted, which still yields a valid key.
    LETTER_OR_NUMBER
        .as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut buf)))
}

/// ESO's key conversion (`conversionStrategy`), for every key that `extract` or `find` produces: a
/// character that is not a letter, a number, `-`, `.` or `_` becomes `_` (Default) or `_U` + at
/// least four lowercase hex digits + `_` (Unicode). Letters and numbers outside ASCII are kept, as
/// ESO keeps them; `convert_keys` then refuses them, because Kubernetes does.
pub fn convert_key(key: &str, strategy: ConversionStrategy) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if is_letter_or_number(c) || matches!(c, '-' | '.' | '_') {
            out.push(c);
        } else {
            match strategy {
                ConversionStrategy::Default => out.push('_'),
                ConversionStrategy::Unicode => out.push_str(&format!("_U{:04x}_", c as u32)),
            }
        }
    }
    out
}

/// Why a set of keys cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Two source keys convert to this one key.
    Collision { key: String },
    /// Kubernetes refuses this key (see `is_valid_secret_key`).
    Invalid { key: String },
}

/// Convert every key (see `convert_key`), then drop empty keys as ESO does. Two keys converting to
/// one name are an error, as in ESO; a key Kubernetes would refuse is an error here, before any write.
pub fn convert_keys<V>(
    entries: BTreeMap<String, V>,
    strategy: ConversionStrategy,
) -> Result<BTreeMap<String, V>, KeyError> {
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let key = convert_key(&key, strategy);
        if out.contains_key(&key) {
            return Err(KeyError::Collision { key });
        }
        out.insert(key, value);
    }
    out.remove("");
    if let Some(key) = out.keys().find(|k| !is_valid_secret_key(k)) {
        return Err(KeyError::Invalid { key: key.clone() });
    }
    Ok(out)
}

/// Kubernetes' rule for Secret data keys: 1 to 253 of ASCII letters, digits, `-`, `_`, `.`; not
/// `.` or `..`, and not starting with `..`.
pub fn is_valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && !key.starts_with("..")
}

/// Go's `base64.StdEncoding` / `URLEncoding`: padding required, non-canonical trailing bits
/// accepted (`YR==`). CR and LF are skipped by Go anywhere in the input (`strip_newlines`).
const GO_PADDED: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
    .with_decode_allow_trailing_bits(true);
const GO_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, GO_PADDED);
const GO_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, GO_PADDED);

/// The value could not be decoded with the strategy's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// ESO's `decodingStrategy`: Base64 is Go's `StdEncoding`, Base64URL its `URLEncoding`, Auto tries
/// both in that order and otherwise keeps the value (never an error), None keeps the value.
pub fn decode(strategy: DecodingStrategy, value: SecretBytes) -> Result<SecretBytes, DecodeError> {
    let engine = match strategy {
        DecodingStrategy::None => return Ok(value),
        DecodingStrategy::Base64 => &GO_STD,
        DecodingStrategy::Base64Url => &GO_URL,
        DecodingStrategy::Auto => {
            let input = strip_newlines(value.expose());
            return Ok(GO_STD
                .decode(input.expose())
                .or_else(|_| GO_URL.decode(input.expose()))
                .map(SecretBytes::new)
                .unwrap_or(value));
        }
    };
    engine
        .decode(strip_newlines(value.expose()).expose())
        .map(SecretBytes::new)
        .map_err(|_| DecodeError)
}

/// The input without CR and LF (Go's decoder skips them wherever they are). Zeroed on drop: it is
/// the secret in encoded form.
fn strip_newlines(input: &[u8]) -> SecretBytes {
    SecretBytes::new(
        input
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_and_number_pattern_compiles() {
        assert!(LETTER_OR_NUMBER.is_some());
        assert!(is_letter_or_number('é') && is_letter_or_number('٣') && is_letter_or_number('Ⅻ'));
        assert!(!is_letter_or_number('\u{301}') && !is_letter_or_number('😀'));
    }

    #[test]
    fn numbers_print_as_gjson_prints_them() {
        for (raw, want) in [
            ("1.50", "1.5"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("-0.0", "-0"),
            ("007", "007"),
            ("1e400", "+Inf"),
            ("-1e400", "-Inf"),
            ("5e-324", &format!("0.{}5", "0".repeat(323))),
        ] {
            assert_eq!(go_number_string(raw), want, "{raw}");
        }
    }
}
