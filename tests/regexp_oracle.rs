//! Differential test of Go regexp semantics (src/goregex.rs, used by `find.name.regexp` and
//! `rewrite[].regexp`) against Go's own `regexp` package (tools/go-oracle, mode `regexp`): the same
//! compile verdict, the same `MatchString` and the same `ReplaceAllString` output, including Go's
//! `$1x` / `${1}` / `$name` / `$$` expansion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rand::{Rng as _, SeedableRng as _};
use secret_sync::goregex::GoRegex;
use serde_json::json;
use support::oracle::Oracle;

/// (pattern, text, template)
type Case = (String, String, String);

fn hand_written() -> Vec<Case> {
    let c = |p: &str, t: &str, r: &str| (p.to_owned(), t.to_owned(), r.to_owned());
    vec![
        c("(a)(b)", "xaby", "$1x"),
        c("(a)(b)", "xaby", "${1}x"),
        c("(a)(b)", "xaby", "$2$1"),
        c("(a)", "a", "$$1"),
        c("(a)", "a", "$"),
        c("(a)", "a", "${1"),
        c("(a)", "a", "${}"),
        c("(a)", "a", "$01"),
        c("(a)", "a", "$0"),
        c("(a)", "a", "${0}!"),
        c("(?P<key>\\w+)=(?P<v>\\w*)", "a=b c=", "${v}:$key;"),
        c("(?P<key>a)", "a", "$keyx"),
        c("(?P<1x>a)", "a", "$1x"),
        c("(?P<é>a)", "a", "$é"),
        c("(a)(b)?", "a", "[$2]"),
        c("a*", "baaac", "x"),
        c("", "héllo", "-"),
        c("x*", "héllo", "."),
        c("b*", "abc", "<$0>"),
        c("^", "abc", ">"),
        c("$", "abc", "<"),
        c("(?m)^", "a\nb", ">"),
        c("\\b", "ab cd", "|"),
        c("\\B", "ab cd", "|"),
        c("\\bé", "é é", "x"),
        c("\\d+", "a1١2", "#"),
        c("\\w+", "é_a1", "#"),
        c("\\s", "a\u{b}b\tc", "_"),
        c("[\\d_]+", "1_2-3", "#"),
        c("[\\D]", "1a", "#"),
        c("[\\s-]", "a b-c", "_"),
        c("[[]", "a[b", "_"),
        c("[a&&b]", "a&b", "_"),
        c("[a--b]", "a-b", "_"),
        c("[a~~b]", "a~b", "_"),
        c("[-a]", "-a", "_"),
        c("[a-]", "-a", "_"),
        c("[]a]", "]a", "_"),
        c("[^]a]", "]ab", "_"),
        c("[[:alpha:]]+", "ab1", "#"),
        c("[[:^alpha:]]", "ab1", "#"),
        c("\\Qa.b\\E+", "a.bb a.b", "#"),
        c("\\Qa.b", "a.b", "#"),
        c("(?i)straße", "STRASSE straße STRAßE", "#"),
        c("(?i)k", "K k \u{212a}", "#"),
        c("\\pL+", "héllo wörld", "#"),
        c("\\p{Greek}", "αβ", "#"),
        c("\\x{e9}", "é", "e"),
        c("\\101", "A", "a"),
        c("\\8", "8", "x"),
        c("(?=a)", "a", "x"),
        c("a{2,}", "aaaa", "x"),
        c("a{1001}", "a", "x"),
        c("a{,2}", "a{,2}", "x"),
        c("(?U)a+", "aaa", "x"),
        c("(?s).", "\n", "x"),
        c(".", "\n", "x"),
        c("\\z", "ab", "!"),
        c("\\Z", "ab", "!"),
        c("\\A", "ab", "!"),
        c("(?P<n>a)|(?P<n>b)", "ab", "$n"),
        c("\\C", "a", "x"),
        c("[\\pL]", "é1", "x"),
        c("[^\\pL]", "é1", "x"),
        c("\\v", "\u{b}", "x"),
        c(
            "path/to/my/secrets/(.*)",
            "path/to/my/secrets/username",
            "$1",
        ),
        c("^productA/nginx/(.*)", "productA/nginx/cert-a", "$1"),
        c("(.*)", "password", "dev-$1"),
        c("(.*)", "password", "dev_$1_x"),
        c("(.*)", "password", "dev-${1}_x"),
        c("/", "/a/b", "_"),
        c("^/", "/a/b", ""),
        c("secrets", "path/to/my/secrets/x", "$0"),
    ]
}

const PATTERN_PIECES: &[&str] = &[
    "a",
    "b",
    "é",
    ".",
    "\\d",
    "\\w",
    "\\s",
    "\\b",
    "\\B",
    "\\D",
    "\\W",
    "\\S",
    "[a-c]",
    "[^a]",
    "[\\d_]",
    "[\\w-]",
    "(",
    ")",
    "(?P<n>",
    "(?:",
    "*",
    "+",
    "?",
    "*?",
    "{1,2}",
    "|",
    "^",
    "$",
    "-",
    "/",
    "(?i)",
    "\\.",
    "[[:digit:]]",
    "\\pL",
    "[é-ü]",
    "_",
    "\\Qa*\\E",
    "[-/]",
    "\\/",
    "1",
];
const TEXT_CHARS: &[char] = &[
    'a', 'b', 'c', 'A', '_', '-', '/', '.', ' ', '1', '9', 'é', 'ü', '١', '\t', '\n', '\u{b}', '[',
    '&', '*',
];
const TEMPLATE_PIECES: &[&str] = &[
    "$1", "${1}", "$1x", "$$", "$", "${n}", "$n", "$nx", "x", "-", "${", "$01", "$2", "$0",
    "${0}x", "é", "_", "${2}", "}",
];

fn generated(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pick = |pieces: &[&str], n: usize| -> String {
        (0..n)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect()
    };
    let mut cases = Vec::new();
    for _ in 0..count {
        let pattern = pick(PATTERN_PIECES, 1 + (cases.len() % 5));
        let template = pick(TEMPLATE_PIECES, 1 + (cases.len() % 3));
        cases.push((pattern, String::new(), template));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    for case in &mut cases {
        case.1 = random_text(&mut rng);
    }
    cases
}

/// Up to 11 characters: ASCII, non-ASCII letters and digits, whitespace Go's `\s` does and does not
/// know, and class punctuation.
fn random_text(rng: &mut rand::rngs::StdRng) -> String {
    (0..rng.random_range(0..12))
        .map(|_| TEXT_CHARS[rng.random_range(0..TEXT_CHARS.len())])
        .collect()
}

const ATOMS: &[&str] = &[
    "a",
    "b",
    "é",
    ".",
    "\\d",
    "\\w",
    "\\s",
    "\\W",
    "[a-c]",
    "[^a/]",
    "[\\d_]",
    "[\\w-]",
    "-",
    "/",
    "\\.",
    "[[:digit:]]",
    "\\pL",
    "[é-ü]",
    "_",
    "1",
    "\\b",
    "^",
    "$",
    "(?i)A",
];
const QUANTIFIERS: &[&str] = &["", "", "*", "+", "?", "{1,2}", "*?", "{2}"];

/// Patterns that compile: atoms with optional quantifiers, some grouped (named or numbered) and
/// alternated, so most cases exercise matching and expansion rather than refusal.
fn well_formed(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cases = Vec::new();
    for n in 0..count {
        let part = |rng: &mut rand::rngs::StdRng| -> String {
            (0..rng.random_range(1..4))
                .map(|_| {
                    let atom = ATOMS[rng.random_range(0..ATOMS.len())];
                    let q = QUANTIFIERS[rng.random_range(0..QUANTIFIERS.len())];
                    format!("{atom}{q}")
                })
                .collect()
        };
        let a = part(&mut rng);
        let b = part(&mut rng);
        let pattern = match n % 4 {
            0 => format!("({a}){b}"),
            1 => format!("(?P<n>{a})|({b})"),
            2 => format!("{a}({b})?"),
            _ => format!("{a}{b}"),
        };
        let template: String = (0..rng.random_range(1..4))
            .map(|_| TEMPLATE_PIECES[rng.random_range(0..TEMPLATE_PIECES.len())])
            .collect();
        let text = random_text(&mut rng);
        cases.push((pattern, text, template));
    }
    cases
}

/// (match, replaced) or a compile error.
fn ours(case: &Case) -> Result<(bool, String), String> {
    let re = GoRegex::new(&case.0).map_err(|e| e.to_string())?;
    Ok((re.is_match(&case.1), re.replace_all(&case.1, &case.2)))
}

fn compare(label: &str, oracle: &mut Oracle, cases: &[Case]) -> usize {
    let inputs = cases
        .iter()
        .map(|(p, t, r)| json!({"pattern": p, "text": t, "template": r}))
        .collect();
    let answers = oracle.ask_many("regexp", inputs);
    let (mut same, mut both_refused, mut diff) = (0, 0, 0);
    for (case, want) in cases.iter().zip(answers) {
        let want = want.map(|v| {
            (
                v["match"].as_bool().unwrap(),
                v["replaced"].as_str().unwrap().to_owned(),
            )
        });
        match (&want, ours(case)) {
            (Ok(w), Ok(g)) if *w == g => same += 1,
            (Err(_), Err(_)) => both_refused += 1,
            (w, g) => {
                diff += 1;
                eprintln!("[{label}] DIFF {case:?}\n    go:   {w:?}\n    ours: {g:?}");
            }
        }
    }
    support::report(&format!(
        "[regexp {label}] {} cases: {same} same answer, {both_refused} both refused, {diff} different",
        cases.len()
    ));
    diff
}

#[test]
fn hand_written_regexps_match_and_expand_as_go_does() {
    let mut oracle = Oracle::start();
    let cases = hand_written();
    assert!(cases.len() >= 70);
    assert_eq!(
        compare("hand-written", &mut oracle, &cases),
        0,
        "see stderr"
    );
}

#[test]
fn generated_regexps_match_and_expand_as_go_does() {
    let mut oracle = Oracle::start();
    let cases = generated(12, 1000);
    assert_eq!(compare("generated", &mut oracle, &cases), 0, "see stderr");
    let cases = well_formed(7, 2000);
    assert_eq!(compare("well-formed", &mut oracle, &cases), 0, "see stderr");
}
