//! Differential tests of ESO's value rules (src/controller/values.rs) against the Go libraries ESO
//! uses, through the Go oracle: generated inputs, a seeded PRNG (`VALUES_ORACLE_SEED` overrides the
//! seed), and zero differences allowed. Inputs are generated test data, never real secrets, so a
//! failure prints them with both answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::oracle::Oracle;

use secret_sync::api::{ConversionStrategy, DecodingStrategy};
use secret_sync::controller::values;
use secret_sync::provider::SecretBytes;

const CASES: usize = 3000;

fn rng(rule: u64) -> StdRng {
    let seed = std::env::var("VALUES_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ec_7e75_u64);
    StdRng::seed_from_u64(seed ^ rule)
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

use support::report;

/// Report the count, then fail with the first few differences.
fn verdict(rule: &str, cases: usize, differences: &[String]) {
    report(&format!(
        "{rule}: {cases} cases, {} differences",
        differences.len()
    ));
    assert!(
        differences.is_empty(),
        "{rule}: {} of {cases} cases differ from the Go oracle; first ones:\n{}",
        differences.len(),
        differences
            .iter()
            .take(usize::MAX)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------- generators ----------

/// A character from a mix of ASCII, Latin-1, combining marks, other scripts' letters and digits,
/// letter-like numbers, symbols, spaces and astral-plane characters, or any scalar value.
fn any_char(r: &mut StdRng) -> char {
    let pick: u32 = match r.random_range(0..60) {
        0..=24 => r.random_range(0x20..0x7f),
        25..=29 => r.random_range(0xa0..0x100),
        30..=33 => r.random_range(0x300..0x370), // combining marks (Mn)
        34..=37 => r.random_range(0x370..0x530), // Greek, Cyrillic
        38..=41 => r.random_range(0x660..0x6fa), // Arabic letters and digits
        42..=45 => r.random_range(0x2000..0x2190), // spaces, punctuation, super/subscripts, Roman numerals
        46..=49 => r.random_range(0x4e00..0x4e40), // CJK
        50..=53 => r.random_range(0x1f300..0x1f650), // emoji
        54..=57 => r.random_range(0x10000..0x10400), // Linear B, Old Italic, ...
        _ => r.random_range(0..0x11_0000),
    };
    char::from_u32(pick).unwrap_or('\u{fffd}')
}

fn any_string(r: &mut StdRng, max: usize) -> String {
    let n = r.random_range(0..=max);
    (0..n).map(|_| any_char(r)).collect()
}

/// Keys that exercise gjson paths: plain, dotted, with path syntax characters, Unicode.
fn json_key(r: &mut StdRng) -> String {
    const PLAIN: &[&str] = &[
        "a", "b", "user", "password", "API KEY", "db", "host", "port", "x1", "0", "1", "k",
    ];
    const TRICKY: &[&str] = &[
        "a.b", "db.host", "a*", "a?c", "#", "@this", "a|b", "a\\b", "x.y.z", "", " ", "é", "ключ",
        "a b", "a\"b", "1.5", "!", "a=b", "%",
    ];
    match r.random_range(0..10) {
        0..=5 => PLAIN.choose(r).unwrap().to_string(),
        6..=8 => TRICKY.choose(r).unwrap().to_string(),
        _ => any_string(r, 4),
    }
}

/// A JSON string literal's text with escapes of every kind (including a lone surrogate now and then).
fn json_string_text(r: &mut StdRng, s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if r.random_bool(0.1) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04X}", u));
                }
            }
            c => out.push(c),
        }
    }
    match r.random_range(0..40) {
        0 => out.push_str("\\n\\t\\/\\b\\f\\r"),
        1 => out.push_str("\\ud800"),
        2 => out.push_str("\\udc00x"),
        3 => out.push_str("\\ud83d\\ude00"),
        _ => {}
    }
    out.push('"');
    out
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "42",
    "-7",
    "1.50",
    "1.5",
    "1e3",
    "1E+3",
    "2.5e-3",
    "-0.0",
    "0.1",
    "3.14159265358979323846",
    "12345678901234567890",
    "123456789012345678901234567890.5",
    "1e400",
    "-1e400",
    "5e-324",
    "1e21",
    "1e-7",
    "100.000",
    "9007199254740993",
    "0.30000000000000004",
];

/// A JSON value's text. `lenient` allows what gjson reads and encoding/json refuses.
fn json_value(r: &mut StdRng, depth: u32, lenient: bool) -> String {
    let pick = if depth == 0 {
        r.random_range(0..6)
    } else {
        r.random_range(0..9)
    };
    match pick {
        0 | 1 => {
            let s = any_string(r, 8);
            json_string_text(r, &s)
        }
        2 => NUMBERS.choose(r).unwrap().to_string(),
        3 => ["true", "false", "null"].choose(r).unwrap().to_string(),
        4 => json_string_text(r, "{\"inner\":1}"),
        5 => ["\"\"", "\"abc123\"", "\"aGVsbG8=\""]
            .choose(r)
            .unwrap()
            .to_string(),
        6 | 7 => json_object(r, depth - 1, lenient),
        _ => {
            let n = r.random_range(0..4);
            let items: Vec<String> = (0..n).map(|_| json_value(r, depth - 1, lenient)).collect();
            let comma = if lenient && n > 0 && r.random_bool(0.2) {
                ","
            } else {
                ""
            };
            format!("[{}{comma}]", items.join(", "))
        }
    }
}

fn json_object(r: &mut StdRng, depth: u32, lenient: bool) -> String {
    let n = r.random_range(0..6);
    let mut parts = Vec::new();
    for _ in 0..n {
        let key = json_key(r);
        let key = json_string_text(r, &key);
        let value = json_value(r, depth, lenient);
        let ws = [":", ": ", " :\n\t"].choose(r).unwrap();
        parts.push(format!("{key}{ws}{value}"));
    }
    let comma = if lenient && n > 0 && r.random_bool(0.3) {
        ","
    } else {
        ""
    };
    let sep = [",", ", ", ",\n  "].choose(r).unwrap();
    format!("{{{}{comma}}}", parts.join(sep))
}

fn document(r: &mut StdRng, lenient: bool) -> String {
    match r.random_range(0..30) {
        0 => "null".into(),
        1 => "[1,2]".into(),
        2 => "plain text".into(),
        3 => "".into(),
        4 => "{\"unterminated\": \"x\"".into(),
        5 => "\"a string\"".into(),
        _ => {
            let doc = json_object(r, 3, lenient);
            if r.random_bool(0.1) {
                format!("  \n{doc}\n ")
            } else {
                doc
            }
        }
    }
}

/// A gjson path: mostly real paths into the document (so values are found), with escapes, array
/// indexes, `#`, wildcards, queries and modifiers mixed in.
fn gjson_path(r: &mut StdRng, doc: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut here: Option<Value> = serde_json::from_str(doc).ok();
    for _ in 0..r.random_range(1..4) {
        let step = match &here {
            Some(Value::Object(map)) if !map.is_empty() && r.random_bool(0.8) => {
                let keys: Vec<&String> = map.keys().collect();
                let key = (*keys.choose(r).unwrap()).clone();
                here = map.get(&key).cloned();
                if r.random_bool(0.5) {
                    escape_path(&key)
                } else {
                    key
                }
            }
            Some(Value::Array(items)) if !items.is_empty() && r.random_bool(0.8) => {
                let i = r.random_range(0..items.len() + 1);
                here = items.get(i).cloned();
                match r.random_range(0..4) {
                    0 => {
                        here = None;
                        "#".into()
                    }
                    _ => i.to_string(),
                }
            }
            _ => {
                here = None;
                let syntax: &[&str] = if r.random_bool(0.1) {
                    // Syntax we refuse: kept rare, to prove the refusal happens.
                    &["*", "a*", "?", "@reverse", "@this", "#(a==1)", "a|b"]
                } else {
                    &[
                        "a", "b", "a.b", "a\\.b", "#", "0", "nope", "#.a", "k", "1", "a\\*",
                    ]
                };
                syntax.choose(r).unwrap().to_string()
            }
        };
        parts.push(step);
    }
    let path = parts.join(".");
    if r.random_bool(0.01) {
        format!("{path}|@this")
    } else {
        path
    }
}

/// A key written so gjson reads it literally.
fn escape_path(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if matches!(
            c,
            '.' | '*' | '?' | '|' | '#' | '@' | '\\' | '!' | '=' | '<' | '>' | '%'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------- rules ----------

#[test]
fn gjson_property_matches_go() {
    let mut r = rng(1);
    let mut oracle = Oracle::start();
    let cases: Vec<(String, String)> = (0..CASES)
        .map(|_| {
            let lenient = r.random_bool(0.4);
            let doc = document(&mut r, lenient);
            let path = gjson_path(&mut r, &doc);
            (doc, path)
        })
        .collect();
    let answers = oracle.ask_many(
        "property",
        cases
            .iter()
            .map(|(doc, path)| json!({"doc": doc, "property": path}))
            .collect(),
    );
    let mut differences = Vec::new();
    let (mut compared, mut refused) = (0, 0);
    for ((doc, path), answer) in cases.iter().zip(answers) {
        let answer = answer.unwrap_or_else(|e| panic!("oracle failed on {doc:?} / {path:?}: {e}"));
        let go = answer["exists"]
            .as_bool()
            .unwrap()
            .then(|| STANDARD.decode(answer["value"].as_str().unwrap()).unwrap());
        let ours = match values::property(&SecretBytes::from(doc.clone()), path) {
            Ok(v) => Some(v.expose().to_vec()),
            Err(values::PropertyError::UnsupportedSyntax) => {
                refused += 1;
                continue;
            }
            Err(_) => None,
        };
        compared += 1;
        if go != ours {
            differences.push(format!(
                "doc {doc:?} property {path:?}: go {:?}, ours {:?}",
                go.map(|v| String::from_utf8_lossy(&v).into_owned()),
                ours.map(|v| String::from_utf8_lossy(&v).into_owned())
            ));
        }
    }
    // Syntax we refuse (wildcards, modifiers, queries, pipes, multipaths) is never a value that
    // differs: the ExternalSecret fails with a clear error instead.
    report(&format!(
        "gjson property: {refused} more cases refused as unsupported syntax"
    ));
    assert!(compared > CASES * 3 / 4, "too few compared: {compared}");
    verdict("gjson property", compared, &differences);
}

#[derive(Debug, PartialEq)]
enum Extracted {
    Map(BTreeMap<String, Vec<u8>>),
    NotAnObject,
    Collision,
    InvalidKey,
}

fn strategy_name(s: ConversionStrategy) -> &'static str {
    match s {
        ConversionStrategy::Default => "Default",
        ConversionStrategy::Unicode => "Unicode",
    }
}

fn our_extract(doc: &[u8], property: &str, strategy: ConversionStrategy) -> Extracted {
    let mut doc = SecretBytes::new(doc.to_vec());
    if !property.is_empty() {
        match values::property(&doc, property) {
            Ok(v) => doc = v,
            Err(_) => return Extracted::NotAnObject,
        }
    }
    let Some(entries) = values::extract(&doc) else {
        return Extracted::NotAnObject;
    };
    match values::convert_keys(entries, strategy) {
        Ok(map) => Extracted::Map(
            map.into_iter()
                .map(|(k, v)| (k, v.expose().to_vec()))
                .collect(),
        ),
        Err(values::KeyError::Collision { .. }) => Extracted::Collision,
        Err(values::KeyError::Invalid { .. }) => Extracted::InvalidKey,
    }
}

/// What ESO's answer means for us: a key Kubernetes refuses (ESO keeps non-ASCII letters) must be
/// our error before any write.
fn go_extract(answer: Result<Value, String>) -> Extracted {
    match answer {
        Err(e) if e.contains("collision") => Extracted::Collision,
        Err(_) => Extracted::NotAnObject,
        Ok(Value::Object(mut answer)) => {
            let Some(Value::Object(map)) = answer.remove("entries") else {
                panic!("oracle answered no entries");
            };
            if map.keys().any(|k| !values::is_valid_secret_key(k)) {
                return Extracted::InvalidKey;
            }
            Extracted::Map(
                map.into_iter()
                    .map(|(k, v)| (k, STANDARD.decode(v.as_str().unwrap()).unwrap()))
                    .collect(),
            )
        }
        Ok(other) => panic!("oracle answered {other}"),
    }
}

#[test]
fn extract_and_key_conversion_match_go() {
    let mut r = rng(2);
    let mut oracle = Oracle::start();
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let strategy = *[ConversionStrategy::Default, ConversionStrategy::Unicode]
            .choose(&mut r)
            .unwrap();
        let (doc, property) = if r.random_bool(0.15) {
            // extract with a property: the selected value (often a JSON string holding JSON) is split.
            let inner = json_object(&mut r, 1, false);
            let quoted = json_string_text(&mut r, &inner);
            let doc = format!("{{\"cfg\": {quoted}, \"obj\": {inner}, \"n\": null}}");
            let property = ["cfg", "obj", "n", "nope"]
                .choose(&mut r)
                .unwrap()
                .to_string();
            (doc, property)
        } else {
            let lenient = r.random_bool(0.2);
            (document(&mut r, lenient), String::new())
        };
        cases.push((doc, property, strategy));
    }
    let answers = oracle.ask_many(
        "extract",
        cases
            .iter()
            .map(|(doc, property, s)| {
                json!({"doc": b64(doc.as_bytes()), "property": property, "strategy": strategy_name(*s)})
            })
            .collect(),
    );
    let mut differences = Vec::new();
    let (mut maps, mut collisions, mut invalid, mut refused) = (0, 0, 0, 0);
    let mut newer = 0;
    for ((doc, property, strategy), answer) in cases.iter().zip(answers) {
        // As in key_conversion_matches_go: a key with a character the oracle's older Unicode
        // tables do not know is a version difference, counted and not compared.
        if answer
            .as_ref()
            .is_ok_and(|a| a["unassigned"].as_bool() == Some(true))
        {
            newer += 1;
            continue;
        }
        let go = go_extract(answer);
        let ours = our_extract(doc.as_bytes(), property, *strategy);
        match go {
            Extracted::Map(_) => maps += 1,
            Extracted::Collision => collisions += 1,
            Extracted::InvalidKey => invalid += 1,
            Extracted::NotAnObject => refused += 1,
        }
        if go != ours {
            differences.push(format!(
                "doc {doc:?} property {property:?} {strategy:?}: go {go:?}, ours {ours:?}"
            ));
        }
    }
    report(&format!(
        "extract: {maps} split, {collisions} key collisions, {invalid} keys Kubernetes refuses, \
         {refused} not an object; {newer} more skipped (characters newer than the oracle's Unicode)"
    ));
    assert!(maps > CASES / 3, "too few generated objects: {maps}");
    verdict("extract", cases.len() - newer, &differences);
}

#[test]
fn key_conversion_matches_go() {
    let mut r = rng(3);
    let mut oracle = Oracle::start();
    let cases: Vec<(String, ConversionStrategy)> = (0..CASES)
        .map(|_| {
            let key = if r.random_bool(0.2) {
                json_key(&mut r)
            } else {
                any_string(&mut r, 10)
            };
            let strategy = *[ConversionStrategy::Default, ConversionStrategy::Unicode]
                .choose(&mut r)
                .unwrap();
            (key, strategy)
        })
        .collect();
    let answers = oracle.ask_many(
        "keys",
        cases
            .iter()
            .map(|(key, s)| json!({"key": key, "strategy": strategy_name(*s)}))
            .collect(),
    );
    let mut differences = Vec::new();
    let mut newer = 0;
    let mut compared = 0;
    for ((key, strategy), answer) in cases.iter().zip(answers) {
        let answer = answer.unwrap();
        // The oracle's Go has older Unicode tables than ours: a character it does not know yet is
        // a version difference, not a rule; those cases are counted, not compared.
        if answer["unassigned"].as_bool().unwrap() {
            newer += 1;
            continue;
        }
        compared += 1;
        let go = answer["key"].as_str().unwrap();
        let ours = values::convert_key(key, *strategy);
        if go != ours {
            differences.push(format!(
                "key {key:?} {strategy:?}: go {go:?}, ours {ours:?}"
            ));
        }
    }
    report(&format!(
        "key conversion: {newer} more cases skipped (characters newer than the oracle's Unicode tables)"
    ));
    verdict("key conversion", compared, &differences);
}

fn noisy_base64(r: &mut StdRng) -> Vec<u8> {
    let len = r.random_range(0..40);
    let raw: Vec<u8> = (0..len).map(|_| r.random()).collect();
    let url = r.random_bool(0.4);
    let mut text = if url {
        base64::engine::general_purpose::URL_SAFE.encode(&raw)
    } else {
        STANDARD.encode(&raw)
    }
    .into_bytes();
    // Noise, each with its own chance: a dropped pad, CR/LF anywhere, a bad character, other
    // trailing bits, a truncation, spaces.
    if r.random_bool(0.2) {
        while text.last() == Some(&b'=') {
            text.pop();
        }
    }
    if r.random_bool(0.1) && text.len() >= 2 && text.ends_with(b"=") {
        // Other bits in the last character before the padding: canonical or not.
        let i = text.iter().position(|&b| b == b'=').unwrap() - 1;
        text[i] = *b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef".choose(r).unwrap();
    }
    if r.random_bool(0.3) {
        for _ in 0..r.random_range(1..4) {
            let at = r.random_range(0..=text.len());
            let noise: &[u8] = [&b"\n"[..], b"\r\n", b"\r", b"\n\n"].choose(r).unwrap();
            text.splice(at..at, noise.iter().copied());
        }
    }
    if r.random_bool(0.1) {
        let at = r.random_range(0..=text.len());
        let bad = *b" \t*%-_+/=.\x00\xff".choose(r).unwrap();
        text.insert(at, bad);
    }
    if r.random_bool(0.05) && !text.is_empty() {
        let cut = r.random_range(0..text.len());
        text.truncate(cut);
    }
    if r.random_bool(0.05) {
        text = any_string(r, 12).into_bytes();
    }
    text
}

#[test]
fn decoding_strategies_match_go() {
    let mut r = rng(4);
    let mut oracle = Oracle::start();
    let strategies = [
        (DecodingStrategy::None, "None"),
        (DecodingStrategy::Base64, "Base64"),
        (DecodingStrategy::Base64Url, "Base64URL"),
        (DecodingStrategy::Auto, "Auto"),
    ];
    let cases: Vec<(Vec<u8>, (DecodingStrategy, &str))> = (0..CASES)
        .map(|_| (noisy_base64(&mut r), *strategies.choose(&mut r).unwrap()))
        .collect();
    let answers = oracle.ask_many(
        "base64",
        cases
            .iter()
            .map(|(value, (_, name))| json!({"value": b64(value), "strategy": name}))
            .collect(),
    );
    let mut differences = Vec::new();
    let mut decoded = 0;
    for ((value, (strategy, name)), answer) in cases.iter().zip(answers) {
        let go = answer
            .map(|v| STANDARD.decode(v.as_str().unwrap()).unwrap())
            .ok();
        let ours = values::decode(*strategy, SecretBytes::new(value.clone()))
            .ok()
            .map(|v| v.expose().to_vec());
        if go.is_some() && go.as_deref() != Some(value.as_slice()) {
            decoded += 1;
        }
        if go != ours {
            differences.push(format!(
                "value {:?} {name}: go {go:?}, ours {ours:?}",
                String::from_utf8_lossy(value)
            ));
        }
    }
    assert!(decoded > CASES / 4, "too few values decoded: {decoded}");
    verdict("decodingStrategy", cases.len(), &differences);
}
