//! Differential tests of the template engine (src/template) against the Go oracle, which renders
//! with text/template + sprig exactly as ESO's engine v2 does. Same bytes, or both fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use rand::{Rng as _, SeedableRng as _};
use secret_sync::template;
use serde_json::json;
use support::oracle::Oracle;

use support::oracle::{Data, b64, render_ours as ours};

fn shared_data() -> Data {
    let pairs: &[(&str, &str)] = &[
        ("a", "hello"),
        ("b", "World"),
        ("n", "3"),
        ("e", ""),
        ("list", "a,b,c"),
        ("unicode", "héllo wörld ß"),
        ("spaces", "  padded  "),
        ("multi", "line1\nline2\n"),
        ("b64", "aGVsbG8="),
        ("j", r#"{"x":1,"y":[1,2.5,"s"],"z":null}"#),
        (
            "nums",
            r#"{"big":1000000,"small":0.00001,"int":42,"neg":-3.5,"frac":123456789}"#,
        ),
        ("pass", "p@ss:w/rd&<>\"'"),
        ("uri", "oci://registry/x"),
        ("username", "admin"),
        ("password", "s3cr3t"),
        ("registryHost", "registry.example.com"),
        ("host", "db"),
        ("privateKey", "-----BEGIN KEY-----\nabc\n-----END KEY-----"),
        ("value", "my-value"),
        ("proxy_endpoint", "https://123.dkr.ecr"),
        ("private_key_b64", "cHJpdmF0ZQ=="),
        ("tls.crt", "CERT"),
        ("best-pokemon-src", "pikachu"),
        ("CLOUDFLARE_ACCOUNT_TAG", "acct"),
        ("CLOUDFLARE_TUNNEL_ID", "tid"),
        ("CLOUDFLARE_TUNNEL_SECRET", "sec<&>"),
    ];
    let mut d: Data = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    // A value that is not UTF-8 (a binary secret): it must pass through untouched.
    d.insert("bin".into(), vec![0xff, 0x00, 0x80, b'a', 0xc3]);
    d
}

/// Asks the oracle about many (template, data) cases; the answer is the output bytes or the error.
fn oracle_many(oracle: &mut Oracle, cases: &[(String, Data)]) -> Vec<Result<Vec<u8>, String>> {
    let inputs = cases
        .iter()
        .map(|(t, d)| {
            let data_b64: BTreeMap<&String, String> = d.iter().map(|(k, v)| (k, b64(v))).collect();
            json!({"text": t, "data_b64": data_b64, "b64": true})
        })
        .collect();
    oracle
        .ask_many("template", inputs)
        .into_iter()
        .map(|a| {
            a.map(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v["b64"].as_str().expect("b64 answer"))
                    .expect("base64 from the oracle")
            })
        })
        .collect()
}

/// Compares; returns the number of differences, printing each.
fn compare(label: &str, oracle: &mut Oracle, cases: &[(String, Data)]) -> (usize, usize, usize) {
    let go = oracle_many(oracle, cases);
    let (mut same_ok, mut same_err, mut diff) = (0, 0, 0);
    for ((text, data), want) in cases.iter().zip(go) {
        let got = ours(text, data);
        match (&want, &got) {
            (Ok(w), Ok(g)) if w == g => same_ok += 1,
            (Err(_), Err(_)) => same_err += 1,
            _ => {
                diff += 1;
                let show = |r: &Result<Vec<u8>, String>| match r {
                    Ok(b) => format!("ok {:?}", String::from_utf8_lossy(b)),
                    Err(e) => format!("err {e}"),
                };
                eprintln!(
                    "[{label}] DIFF {text:?}\n    go:   {}\n    ours: {}",
                    show(&want),
                    show(&got)
                );
            }
        }
    }
    support::report(&format!(
        "[{label}] {} cases: {same_ok} same output, {same_err} both failed, {diff} different",
        cases.len()
    ));
    (same_ok, same_err, diff)
}

fn hand_written() -> Vec<String> {
    let text = include_str!("fixtures/template/cases.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.replace('⏎', "\n"))
        .collect()
}

#[test]
fn hand_written_cases_render_as_go_does() {
    let mut oracle = Oracle::start();
    let data = shared_data();
    let cases: Vec<(String, Data)> = hand_written()
        .into_iter()
        .map(|t| (t, data.clone()))
        .collect();
    assert!(cases.len() >= 300, "{} hand-written cases", cases.len());
    let (_, _, diff) = compare("hand-written", &mut oracle, &cases);
    assert_eq!(diff, 0, "differences from Go (see stderr)");
}

/// Prints what both engines refused, to check by eye that they refuse for the same reason.
#[test]
#[ignore]
fn show_both_failed() {
    let mut oracle = Oracle::start();
    let data = shared_data();
    let cases: Vec<(String, Data)> = hand_written()
        .into_iter()
        .map(|t| (t, data.clone()))
        .collect();
    for ((t, d), want) in cases.iter().zip(oracle_many(&mut oracle, &cases)) {
        if let (Err(w), Err(g)) = (want, ours(t, d)) {
            println!("{t:?}\n   go:   {w}\n   ours: {g}");
        }
    }
}

/// Every string under a manifest's spec that holds a template action.
fn templates_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if s.contains("{{") => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| templates_in(x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            if k.contains("{{") {
                out.push(k.clone());
            }
            templates_in(x, out)
        }),
        _ => {}
    }
}

/// The data keys a template refers to (`.key`, `index . "key"`), plus the manifest's secretKeys.
fn keys_of(text: &str, doc: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let field = regex::Regex::new(r"\.([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let index = regex::Regex::new(r#"index \. \\?"([^"\\]+)\\?""#).unwrap();
    keys.extend(field.captures_iter(text).map(|c| c[1].to_string()));
    keys.extend(index.captures_iter(text).map(|c| c[1].to_string()));
    if let Some(data) = doc.pointer("/spec/data").and_then(|d| d.as_array()) {
        keys.extend(
            data.iter()
                .filter_map(|d| d["secretKey"].as_str().map(str::to_owned)),
        );
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Data variants for a corpus template: plain words, JSON objects (for `fromJson`), base64 (for
/// `b64dec`) and values full of characters that need escaping.
fn corpus_data(keys: &[String]) -> Vec<Data> {
    let mk =
        |f: &dyn Fn(&str) -> Vec<u8>| -> Data { keys.iter().map(|k| (k.clone(), f(k))).collect() };
    vec![
        mk(&|k| format!("v-{k}").into_bytes()),
        mk(&|k| {
            format!(r#"{{"cert":"C-{k}","secret_key":"S-{k}","user":{{"n":1}},"data":"d"}}"#)
                .into_bytes()
        }),
        mk(&|k| b64(format!("secret-{k}").as_bytes()).into_bytes()),
        mk(&|k| format!("p@ss\"<&>'\n\t{k} é").into_bytes()),
        mk(&|_| Vec::new()),
        mk(&|k| [b"\xff\x00".as_slice(), k.as_bytes()].concat()),
    ]
}

#[test]
fn corpus_templates_render_as_go_does() {
    let files = support::corpus_files();
    let (mut cases, mut templates, mut manifests, mut unsupported) = (Vec::new(), 0, 0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut found = false;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(doc) = serde_json::Value::deserialize(doc) else {
                continue;
            };
            let Some(spec) = doc.get("spec") else {
                continue;
            };
            let mut ts = Vec::new();
            templates_in(spec, &mut ts);
            for t in ts {
                found = true;
                templates += 1;
                if let Some(u) = template::UNSUPPORTED_FUNCTIONS.iter().find(|u| {
                    regex::Regex::new(&format!(r"\b{u}\b"))
                        .unwrap()
                        .is_match(&t)
                }) {
                    unsupported.push(format!(
                        "{} uses {u}",
                        f.file_name().unwrap().to_string_lossy()
                    ));
                    assert!(
                        ours(&t, &Data::new()).is_err(),
                        "an unsupported function fails: {t:?}"
                    );
                    continue;
                }
                for d in corpus_data(&keys_of(&t, &doc)) {
                    cases.push((t.clone(), d));
                }
            }
        }
        manifests += usize::from(found);
    }
    support::report(&format!(
        "[corpus] {manifests} manifests with templates, {templates} templates"
    ));
    support::report(&format!(
        "[corpus] not compared (unsupported function, refused clearly): {unsupported:?}"
    ));
    let mut oracle = Oracle::start();
    let (ok, _, diff) = compare("corpus", &mut oracle, &cases);
    assert!(ok > 100, "most corpus cases render");
    assert_eq!(diff, 0, "differences from Go (see stderr)");
}

use serde::Deserialize as _;

/// A seeded generator of random templates over the shared data's keys.
struct Gen {
    rng: rand::rngs::StdRng,
    depth: usize,
}

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn string_lit(&mut self) -> String {
        let s = self.pick(&[
            "",
            "a",
            "x-y",
            "Hello World",
            "  sp  ",
            "a,b,,c",
            "é",
            "<&>",
            "l",
            "0",
            "12",
            "-3",
            "1.5",
            "true",
            "aGk=",
            "%s",
            "%d-%v",
            "\\n",
            "\\\"q\\\"",
        ]);
        format!("\"{s}\"")
    }

    fn number(&mut self) -> String {
        self.pick(&[
            "0",
            "1",
            "2",
            "3",
            "-1",
            "7",
            "10",
            "255",
            "1.5",
            "0.1",
            "-2.5",
            "1e6",
            "1e21",
            "123456789.0",
            "0x1f",
            "'a'",
            "1e-7",
        ])
        .to_string()
    }

    fn field(&mut self) -> String {
        self.pick(&[
            ".a",
            ".b",
            ".n",
            ".e",
            ".list",
            ".unicode",
            ".spaces",
            ".multi",
            ".b64",
            ".j",
            ".nums",
            ".pass",
            "(index . \"tls.crt\")",
            ".bin",
        ])
        .to_string()
    }

    /// A string-valued operand most of the time, so string functions mostly type-check.
    fn str_operand(&mut self) -> String {
        if self.depth > 3 {
            return if self.chance(0.5) {
                self.field()
            } else {
                self.string_lit()
            };
        }
        match self.rng.random_range(0..10) {
            0..=3 => self.field(),
            4..=5 => self.string_lit(),
            _ => format!("({})", self.pipeline()),
        }
    }

    fn operand(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0..=1 => self.number(),
            2 => self.pick(&["true", "false", "nil", ".", "$"]).to_string(),
            3 if self.depth <= 3 => {
                let l = self.pick(&[
                    "list 1 \"a\" 2.5",
                    "list",
                    "list \"b\" \"a\"",
                    "until 4",
                    "splitList \",\" .list",
                    "dict \"k\" \"v\" \"n\" 1",
                    "dict",
                    "fromJson .j",
                    "fromJson .nums",
                ]);
                format!("({l})")
            }
            _ => self.str_operand(),
        }
    }

    fn call(&mut self) -> String {
        self.depth += 1;
        let c = match self.rng.random_range(0..44) {
            40 => format!("addf {} {}", self.operand(), self.operand()),
            41 => format!(
                "divf {} {}",
                self.number(),
                self.pick(&["3", "7", "0.3", "2.5", "-4"])
            ),
            42 => format!("mulf {} {}", self.number(), self.operand()),
            43 => format!("swapcase {}", self.str_operand()),
            0 => format!("upper {}", self.str_operand()),
            1 => format!("lower {}", self.str_operand()),
            2 => format!("title {}", self.str_operand()),
            3 => format!("trim {}", self.str_operand()),
            4 => format!("quote {}", self.operand()),
            5 => format!("squote {}", self.operand()),
            6 => format!("b64enc {}", self.str_operand()),
            7 => format!("b64dec {}", self.str_operand()),
            8 => format!("sha256sum {}", self.str_operand()),
            9 => format!("toString {}", self.operand()),
            10 => format!("len {}", self.operand()),
            11 => format!("toJson {}", self.operand()),
            12 => format!("trunc {} {}", self.number(), self.str_operand()),
            13 => format!(
                "repeat {} {}",
                self.pick(&["0", "1", "2", "3"]),
                self.str_operand()
            ),
            14 => format!(
                "substr {} {} {}",
                self.pick(&["0", "1", "-1", "2"]),
                self.pick(&["0", "2", "-1", "5", "40"]),
                self.str_operand()
            ),
            15 => format!(
                "indent {} {}",
                self.pick(&["0", "2", "4"]),
                self.str_operand()
            ),
            16 => format!("nindent {} {}", self.pick(&["0", "2"]), self.str_operand()),
            17 => format!(
                "replace {} {} {}",
                self.string_lit(),
                self.string_lit(),
                self.str_operand()
            ),
            18 => format!("default {} {}", self.operand(), self.operand()),
            19 => {
                let f = self.pick(&[
                    "%s", "%v", "%d", "%q", "%x", "%5s|%-4v", "%s:%s", "%v %v %v", "%.2f", "%t",
                    "%T", "%08.3f", "%+d",
                ]);
                let n = self.rng.random_range(0..4);
                let args: Vec<String> = (0..n).map(|_| self.operand()).collect();
                format!("printf \"{f}\" {}", args.join(" "))
            }
            20 => format!("print {} {}", self.operand(), self.operand()),
            21 => format!("join {} {}", self.string_lit(), self.operand()),
            22 => format!("splitList {} {}", self.string_lit(), self.str_operand()),
            23 => format!("first {}", self.operand()),
            24 => format!("add {} {}", self.operand(), self.operand()),
            25 => format!("max {} {}", self.number(), self.operand()),
            26 => format!("eq {} {}", self.operand(), self.operand()),
            27 => format!("ne {} {}", self.operand(), self.operand()),
            28 => format!("lt {} {}", self.operand(), self.operand()),
            29 => format!("and {} {}", self.operand(), self.operand()),
            30 => format!("or {} {}", self.operand(), self.operand()),
            31 => format!("not {}", self.operand()),
            32 => format!("contains {} {}", self.string_lit(), self.str_operand()),
            33 => format!("hasPrefix {} {}", self.string_lit(), self.str_operand()),
            34 => format!("cat {} {}", self.operand(), self.operand()),
            35 => format!("list {} {}", self.operand(), self.operand()),
            36 => format!("dict {} {}", self.string_lit(), self.operand()),
            37 => format!(
                "index {} {}",
                self.operand(),
                self.pick(&["0", "1", "\"a\"", "\"k\"", "\"x\""])
            ),
            38 => format!("html {}", self.operand()),
            _ => format!("urlquery {}", self.operand()),
        };
        self.depth -= 1;
        c
    }

    fn pipeline(&mut self) -> String {
        let mut p = if self.chance(0.7) {
            self.call()
        } else {
            self.operand()
        };
        while self.depth < 3 && self.chance(0.35) {
            let stage = self.pick(&[
                "upper",
                "lower",
                "quote",
                "b64enc",
                "toString",
                "len",
                "toJson",
                "trim",
                "default \"d\"",
                "printf \"%v|\"",
                "print",
                "squote",
                "nindent 2",
                "replace \"l\" \"L\"",
                "first",
                "join \",\"",
            ]);
            p = format!("{p} | {stage}");
        }
        p
    }

    fn action(&mut self) -> String {
        let (l, r) = (
            if self.chance(0.2) { "{{- " } else { "{{ " },
            if self.chance(0.2) { " -}}" } else { " }}" },
        );
        format!("{l}{}{r}", self.pipeline())
    }

    fn text(&mut self) -> String {
        self.pick(&["", " ", "x", "\n", "  \n  ", "a=", "; ", "\t", "é"])
            .to_string()
    }

    fn body(&mut self, n: usize) -> String {
        (0..n).map(|_| self.node()).collect()
    }

    fn node(&mut self) -> String {
        if self.depth > 2 {
            return format!("{}{}", self.text(), self.action());
        }
        self.depth += 1;
        let n = match self.rng.random_range(0..12) {
            0 => format!(
                "{{{{ if {} }}}}{}{{{{ else }}}}{}{{{{ end }}}}",
                self.pipeline(),
                self.body(2),
                self.body(1)
            ),
            1 => format!(
                "{{{{ with {} }}}}{}{{{{ end }}}}",
                self.pipeline(),
                self.body(2)
            ),
            2 => {
                let over = self.pick(&[
                    ".",
                    "(list 1 \"a\" 2.5)",
                    "(until 3)",
                    "(splitList \",\" .list)",
                    "(dict \"b\" 1 \"a\" 2)",
                    "(fromJson .j)",
                    "(list)",
                ]);
                format!(
                    "{{{{ range $k, $v := {over} }}}}{{{{ $k }}}}={}{{{{ if eq (toString $k) \"b\" }}}}{{{{ break }}}}{{{{ end }}}};{{{{ else }}}}none{{{{ end }}}}",
                    self.body(1)
                )
            }
            3 => format!(
                "{{{{ $x := {} }}}}{}{{{{ $x }}}}",
                self.pipeline(),
                self.text()
            ),
            4 => format!("{{{{/* c */}}}}{}", self.text()),
            _ => format!("{}{}", self.text(), self.action()),
        };
        self.depth -= 1;
        n
    }
}

#[test]
fn generated_templates_render_as_go_does() {
    let seed: u64 = std::env::var("TEMPLATE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261130);
    let n: usize = std::env::var("TEMPLATE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let mut g = Gen {
        rng: rand::rngs::StdRng::seed_from_u64(seed),
        depth: 0,
    };
    let data = shared_data();
    let cases: Vec<(String, Data)> = (0..n)
        .map(|_| {
            let k = g.rng.random_range(1..4);
            (g.body(k), data.clone())
        })
        .collect();
    let mut oracle = Oracle::start();
    support::report(&format!("[generated] seed {seed}"));
    let (ok, _, diff) = compare("generated", &mut oracle, &cases);
    assert!(ok > n / 3, "most generated cases render ({ok} of {n})");
    assert_eq!(diff, 0, "differences from Go (see stderr)");
}
