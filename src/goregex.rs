//! Go's `regexp` package as ESO uses it (`find.name.regexp`, `rewrite[].regexp`): RE2 syntax
//! compiled with the `regex` crate after translating the few places where the two disagree, plus
//! Go's `ReplaceAllString` with its `$name` / `${name}` expansion. Pure; `tests/regexp_oracle.rs`
//! compares every answer with Go's own package (tools/go-oracle, mode `regexp`).
//!
//! Where the two syntaxes differ, and what the translation does:
//! - `\d`, `\w`, `\s`, `\b`, `\B` are ASCII-only in Go and Unicode-aware in `regex`: written out as
//!   ASCII classes (`\s` is `[\t\n\f\r ]` in Go, without `\v`).
//! - Inside a bracket class, `regex` reads `[` as a nested class and `&&`, `--`, `~~` as set
//!   operations; Go reads them as literal characters: they are escaped.
//! - `\Q...\E` (Go quotes a literal run) is written out as escaped characters.
//! - Octal escapes (`\123`) are on, as in Go.
//!
//! Anything else the translation does not understand is passed through, and `regex` either reads it
//! as Go does or refuses it (a compile error names the pattern, never a value).

use regex::{Regex, RegexBuilder};

/// A pattern that Go's `regexp.Compile` would refuse, or that we cannot compile the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to compile regular expression {pattern:?}: {detail}")]
pub struct CompileError {
    pub pattern: String,
    pub detail: String,
}

/// A compiled Go regular expression.
#[derive(Debug, Clone)]
pub struct GoRegex {
    re: Regex,
}

/// Go's limit on a compiled program's size is not ours; this bounds memory for hostile patterns.
const SIZE_LIMIT: usize = 1 << 20;

impl GoRegex {
    /// `regexp.Compile(pattern)`. Errors: a pattern Go or `regex` refuses ([`CompileError`]).
    pub fn new(pattern: &str) -> Result<GoRegex, CompileError> {
        let error = |detail: String| CompileError {
            pattern: pattern.to_owned(),
            detail,
        };
        let translated = translate(pattern).map_err(|d| error(d.to_owned()))?;
        let re = RegexBuilder::new(&translated)
            .octal(true)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // The regex crate's message quotes the pattern over several lines; keep its last line.
                let text = e.to_string();
                error(
                    text.lines()
                        .rfind(|l| !l.trim().is_empty())
                        .unwrap_or("invalid pattern")
                        .trim()
                        .trim_start_matches("error: ")
                        .to_owned(),
                )
            })?;
        Ok(GoRegex { re })
    }

    /// `Regexp.MatchString`: whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// `Regexp.ReplaceAllString(src, template)`: every non-overlapping match replaced by `template`
    /// expanded as Go's `Regexp.Expand` does (`$1`, `${1}`, `$name`, `${name}`, `$$`). An empty match
    /// right after a previous match is not replaced, as in Go.
    pub fn replace_all(&self, src: &str, template: &str) -> String {
        let mut out = String::with_capacity(src.len());
        let mut last_match_end = 0;
        let mut search = 0;
        let mut locs = self.re.capture_locations();
        while search <= src.len() {
            let Some(m) = self.re.captures_read_at(&mut locs, src, search) else {
                break;
            };
            let (start, end) = (m.start(), m.end());
            out.push_str(&src[last_match_end..start]);
            if end > last_match_end || start == 0 {
                self.expand(&mut out, template, src, &locs);
            }
            last_match_end = end;
            // Advance past this match; always advance at least one character.
            let width = src[search..].chars().next().map_or(0, char::len_utf8);
            if search + width > end {
                search += width;
            } else if search + 1 > end {
                search += 1;
            } else {
                search = end;
            }
        }
        out.push_str(&src[last_match_end..]);
        out
    }

    /// Go's `Regexp.expand`: `$$` is `$`; `$name` takes the longest run of letters, digits and `_`;
    /// `${name}` the braced name; a name of decimal digits without a leading zero is a group number;
    /// an unknown group or a group that did not take part expands to nothing; a malformed `$` is
    /// kept as it is.
    fn expand(&self, out: &mut String, template: &str, src: &str, locs: &regex::CaptureLocations) {
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                out.push('$');
                rest = after;
                continue;
            }
            let Some((name, num, after)) = extract_name(rest) else {
                out.push('$');
                continue;
            };
            rest = after;
            let group = match num {
                Some(n) => Some(n),
                None => self.re.capture_names().position(|n| n == Some(name)),
            };
            if let Some((s, e)) = group.and_then(|g| locs.get(g)) {
                out.push_str(&src[s..e]);
            }
        }
        out.push_str(rest);
    }
}

/// Go's `extract`: the group name after a `$`, its number (None when it is not a plain decimal
/// without leading zero), and what follows. None when malformed (empty name, missing `}`).
fn extract_name(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    // Go: unicode.IsLetter, unicode.IsDigit (Nd) or '_'.
    let len: usize = body
        .chars()
        .take_while(|&c| c == '_' || is_go_letter(c) || is_go_digit(c))
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let mut rest = &body[len..];
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    let mut num: Option<usize> = Some(0);
    for b in name.bytes() {
        num = match num {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(b - b'0'))
            }
            _ => None,
        };
    }
    if name.starts_with('0') && name.len() > 1 {
        num = None;
    }
    Some((name, num, rest))
}

fn is_go_letter(c: char) -> bool {
    // Go's unicode.IsLetter is category L; `regex`'s \p{L} agrees on the category.
    static LETTER: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| Regex::new(r"^\p{L}$").ok());
    c.is_ascii_alphabetic()
        || (!c.is_ascii()
            && LETTER
                .as_ref()
                .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4]))))
}

fn is_go_digit(c: char) -> bool {
    // Go's unicode.IsDigit is category Nd.
    static DIGIT: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| Regex::new(r"^\p{Nd}$").ok());
    c.is_ascii_digit()
        || (!c.is_ascii()
            && DIGIT
                .as_ref()
                .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4]))))
}

const ASCII_DIGIT: &str = "0-9";
const ASCII_WORD: &str = "0-9A-Za-z_";
const GO_SPACE: &str = r"\t\n\f\r ";

/// Rewrite Go syntax into `regex` syntax with the same meaning (see the module comment).
fn translate(pattern: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // Inside a bracket class: Some(index of the first character after `[` or `[^`).
    let mut class_start: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        match (c, class_start) {
            ('\\', _) => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("trailing backslash at end of expression");
                };
                if next == 'Q' {
                    // \Q...\E: literal text up to \E or the end.
                    i += 2;
                    while i < chars.len() {
                        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                            i += 2;
                            break;
                        }
                        push_literal(&mut out, chars[i]);
                        i += 1;
                    }
                    continue;
                }
                let inside = class_start.is_some();
                match (next, inside) {
                    ('d', false) => out.push_str("[0-9]"),
                    ('D', false) => out.push_str("[^0-9]"),
                    ('w', false) => out.push_str("[0-9A-Za-z_]"),
                    ('W', false) => out.push_str("[^0-9A-Za-z_]"),
                    ('s', false) => out.push_str(r"[\t\n\f\r ]"),
                    ('S', false) => out.push_str(r"[^\t\n\f\r ]"),
                    ('b', false) => out.push_str(r"(?-u:\b)"),
                    ('B', false) => out.push_str(r"(?-u:\B)"),
                    ('d', true) => out.push_str(ASCII_DIGIT),
                    ('w', true) => out.push_str(ASCII_WORD),
                    ('s', true) => out.push_str(GO_SPACE),
                    ('D', true) => out.push_str("[^0-9]"),
                    ('W', true) => out.push_str("[^0-9A-Za-z_]"),
                    ('S', true) => out.push_str(r"[^\t\n\f\r ]"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
                i += 2;
            }
            ('[', None) => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = Some(i);
                // Go: a `]` first in the class is a literal.
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            (']', Some(_)) => {
                out.push(']');
                class_start = None;
                i += 1;
            }
            ('[', Some(_)) => {
                // A POSIX class `[:name:]` is the same in both; any other `[` is a literal in Go.
                let rest: String = chars[i..].iter().take(16).collect();
                if let Some(end) = rest.strip_prefix("[:").and_then(|r| r.find(":]")) {
                    let len = end + 4;
                    out.extend(&chars[i..i + len]);
                    i += len;
                } else {
                    out.push_str(r"\[");
                    i += 1;
                }
            }
            ('&' | '~', Some(_)) => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            ('-', Some(start)) => {
                // `--` would be set difference in `regex`; a `-` in Go is a range or a literal.
                if chars.get(i + 1) == Some(&'-') || i == start {
                    out.push_str(r"\-");
                } else {
                    out.push('-');
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if regex_syntax_meta(c) {
        out.push('\\');
    }
    out.push(c);
}

fn regex_syntax_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn replace(pattern: &str, src: &str, template: &str) -> String {
        GoRegex::new(pattern).unwrap().replace_all(src, template)
    }

    #[test]
    fn expansion_follows_go_names_and_numbers() {
        assert_eq!(replace("(a)(b)", "ab", "$1x"), "", "$1x names group 1x");
        assert_eq!(replace("(a)(b)", "ab", "${1}x"), "ax");
        assert_eq!(replace("(a)(b)", "ab", "$2$1"), "ba");
        assert_eq!(replace("(a)", "a", "$$1"), "$1");
        assert_eq!(replace("(a)", "a", "$"), "$", "a lone $ is kept");
        assert_eq!(replace("(a)", "a", "${1"), "${1", "missing brace is kept");
        assert_eq!(replace("(a)", "a", "$-"), "$-");
        assert_eq!(replace("(?P<k>a)", "a", "<$k>"), "<a>");
        assert_eq!(replace("(?P<k>a)", "a", "${k}s"), "as");
        assert_eq!(
            replace("(a)", "a", "$01"),
            "",
            "a leading zero is a name, not 1"
        );
        assert_eq!(
            replace("(a)(b)?", "a", "[$2]"),
            "[]",
            "a group that did not match"
        );
        assert_eq!(replace("(a)", "a", "$9"), "");
    }

    #[test]
    fn empty_matches_next_to_a_match_are_not_replaced() {
        assert_eq!(replace("a*", "baaac", "x"), "xbxcx");
        assert_eq!(replace("", "ab", "-"), "-a-b-");
        assert_eq!(replace("x*", "héllo", "."), ".h.é.l.l.o.");
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let d = GoRegex::new(r"^\d+$").unwrap();
        assert!(d.is_match("123"));
        assert!(!d.is_match("١٢٣"), "Arabic-Indic digits are not \\d in Go");
        let w = GoRegex::new(r"^\w+$").unwrap();
        assert!(!w.is_match("é"));
        let s = GoRegex::new(r"^\s$").unwrap();
        assert!(!s.is_match("\u{b}"), "\\v is not \\s in Go");
        assert!(GoRegex::new(r"^[\d_]+$").unwrap().is_match("1_2"));
        assert!(!GoRegex::new(r"^[\D]$").unwrap().is_match("1"));
        assert!(GoRegex::new(r"^[[]$").unwrap().is_match("["));
        assert!(GoRegex::new(r"^[a&&b]+$").unwrap().is_match("a&b"));
        assert!(GoRegex::new(r"^[[:alpha:]]+$").unwrap().is_match("ab"));
        assert!(GoRegex::new(r"^\Qa.b\E$").unwrap().is_match("a.b"));
        assert!(!GoRegex::new(r"^\Qa.b\E$").unwrap().is_match("axb"));
        assert!(GoRegex::new(r"\bfoo\b").unwrap().is_match("a foo b"));
    }

    #[test]
    fn bad_patterns_are_compile_errors_naming_the_pattern() {
        let err = GoRegex::new("(").unwrap_err();
        assert_eq!(err.pattern, "(");
        assert!(GoRegex::new(r"a\").is_err());
        assert!(GoRegex::new("(?=x)").is_err(), "no lookahead in RE2");
    }
}
