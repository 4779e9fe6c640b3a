//! Go's `regexp` package as ESO uses it (`find.name.regexp`, `rewrite[].regexp`): RE2 syntax
//! compiled with the `regex` crate after translating the few places where the two disagree, plus
//! Go's `ReplaceAllString` with its `$name` / `${name}` expansion. Pure; `tests/regexp_oracle.rs`
//! compares every answer with Go's own package (tools/go-oracle, mode `regexp`).
//!
//! The pattern is parsed as Go's regexp/syntax parses it and written out again in `regex` syntax,
//! because the two differ in places that matter:
//! - `\d`, `\w`, `\s`, `\b`, `\B` are ASCII-only in Go and Unicode-aware in `regex` (and Go's `\s`
//!   has no `\v`): written out as ASCII classes.
//! - Inside a bracket class `regex` reads `[` as a nested class and `&&`, `--`, `~~` as set
//!   operations; Go reads literal characters: every class literal is written `\x{..}`.
//! - Go refuses stacked repetitions (`a**`), repeat counts above 1000 and a lone `\1`; reads a `{`
//!   that is not a repeat (`a{,2}`) as a literal; lets a flag group sit between an operand and its
//!   repetition (`a(?i)+`); allows group names starting with a digit and the same name twice;
//!   quotes literal runs with `\Q...\E`; has octal escapes.
//! - Group names may be written `(?P<n>...)` or `(?<n>...)` (Go 1.22 and later, which ESO uses).

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
    /// Go's name of each capture group by index (the `regex` pattern has them unnamed).
    names: Vec<Option<String>>,
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
        let translated = translate(pattern).map_err(error)?;
        let re = RegexBuilder::new(&translated.pattern)
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
        Ok(GoRegex {
            re,
            names: translated.names,
        })
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
            // A number names that group; a name, the first group of that name that took part.
            let span = match num {
                Some(n) => locs.get(n),
                None => self
                    .names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.as_deref() == Some(name))
                    .find_map(|(g, _)| locs.get(g)),
            };
            if let Some((s, e)) = span {
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
        .take_while(|&c| is_go_name_char(c))
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

/// Go's expansion names: `unicode.IsLetter` (category L), `unicode.IsDigit` (Nd) or `_`.
fn is_go_name_char(c: char) -> bool {
    static NAME: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]$").ok());
    c.is_ascii_alphanumeric()
        || c == '_'
        || (!c.is_ascii()
            && NAME
                .as_ref()
                .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4]))))
}

/// A Go pattern rewritten for the `regex` crate, and the name of every capture group by index (Go
/// allows names `regex` refuses: a leading digit, or one name twice; groups are emitted unnamed).
struct Translated {
    pattern: String,
    names: Vec<Option<String>>,
}

/// Go's `\s`, as members of a class.
const GO_SPACE: &str = r"\x{9}\x{a}\x{c}\x{d}\x{20}";

/// Parse `pattern` as Go's regexp/syntax does (Perl flags, as `regexp.Compile`) and emit the same
/// expression in `regex` syntax: literals as `\x{..}`, classes item by item, Go's own errors (nested
/// repetition, repeat counts above 1000, bad escapes, bad group names) reported here.
fn translate(pattern: &str) -> Result<Translated, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut names: Vec<Option<String>> = vec![None];
    let mut i = 0;
    // The previous token was a repetition (Go refuses `a**`, `a+?*`, `a{2}*`).
    let mut last_repeat = false;
    // Where a run of flag-only groups `(?i)` started in `out`, right before this point: Go's flag
    // groups are not operands, so `a(?i)*` repeats `a`; `regex` would refuse it.
    let mut flags_at: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        let mut repeat: Option<String> = None;
        let mut flag_group = false;
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("trailing backslash at end of expression".into());
                };
                match next {
                    'Q' => {
                        i += 2;
                        while i < chars.len() {
                            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                                i += 2;
                                break;
                            }
                            push_char(&mut out, chars[i]);
                            i += 1;
                        }
                        last_repeat = false;
                        flags_at = None;
                        continue;
                    }
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                        out.push_str(&perl_class(next));
                        i += 2;
                    }
                    'b' => {
                        out.push_str(r"(?-u:\b)");
                        i += 2;
                    }
                    'B' => {
                        out.push_str(r"(?-u:\B)");
                        i += 2;
                    }
                    'A' | 'z' => {
                        out.push('\\');
                        out.push(next);
                        i += 2;
                    }
                    'p' | 'P' => i = unicode_class(&chars, i, &mut out)?,
                    _ => {
                        let (ch, used) = escape(&chars, i)?;
                        push_char(&mut out, ch);
                        i += used;
                    }
                }
            }
            '[' => i = class(&chars, i, &mut out)?,
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    let rest: String = chars[i + 2..].iter().collect();
                    let named = rest
                        .strip_prefix("P<")
                        .map(|r| (r, 4))
                        .or_else(|| rest.strip_prefix('<').map(|r| (r, 3)));
                    if let Some((r, skip)) = named {
                        let Some(end) = r.find('>') else {
                            return Err("invalid named capture".into());
                        };
                        let name = &r[..end];
                        if name.is_empty()
                            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        {
                            return Err(format!("invalid named capture: {name:?}"));
                        }
                        names.push(Some(name.to_owned()));
                        out.push('(');
                        i += skip + name.chars().count() + 1;
                    } else {
                        // Flags: (?flags) or (?flags:...), flags from "imsU", at most one '-'.
                        let flags: String =
                            rest.chars().take_while(|c| "imsU-".contains(*c)).collect();
                        let close = rest[flags.len()..].chars().next();
                        let dashes = flags.matches('-').count();
                        let valid = matches!(close, Some(')' | ':'))
                            && dashes <= 1
                            && !flags.ends_with('-')
                            && !(flags.is_empty() && close == Some(')'));
                        if !valid {
                            return Err("invalid or unsupported Perl syntax".into());
                        }
                        let Some(close) = close else {
                            return Err("missing closing )".into());
                        };
                        let group = format!("(?{flags}{close}");
                        if close == ')' {
                            flag_group = true;
                            flags_at.get_or_insert(out.len());
                        }
                        out.push_str(&group);
                        i += 2 + flags.chars().count() + 1;
                    }
                } else {
                    names.push(None);
                    out.push('(');
                    i += 1;
                }
            }
            '*' | '+' | '?' => {
                repeat = Some(c.to_string());
                i += 1;
            }
            '{' => match go_repeat(&chars[i..]) {
                Some(Ok((text, used))) => {
                    repeat = Some(text);
                    i += used;
                }
                Some(Err(e)) => return Err(e),
                // Not a repeat: a literal `{`, as in Go.
                None => {
                    push_char(&mut out, '{');
                    i += 1;
                }
            },
            '.' | '^' | '$' | '|' | ')' => {
                out.push(c);
                i += 1;
            }
            _ => {
                push_char(&mut out, c);
                i += 1;
            }
        }
        if let Some(mut op) = repeat {
            if last_repeat {
                return Err("invalid nested repetition operator".into());
            }
            if chars.get(i) == Some(&'?') {
                op.push('?');
                i += 1;
            }
            match flags_at {
                Some(at) => {
                    out.insert_str(at, &op);
                    flags_at = Some(at + op.len());
                }
                None => out.push_str(&op),
            }
            last_repeat = true;
        } else if flag_group {
            // A flag group changes nothing about what a following repetition applies to.
        } else {
            last_repeat = false;
            flags_at = None;
        }
    }
    Ok(Translated {
        pattern: out,
        names,
    })
}

/// `{n}`, `{n,}` or `{n,m}` as Go's parseRepeat reads it (no leading zeros), checked against Go's
/// limit of 1000. None: not a repeat, so the `{` is a literal. Some(Ok((operator, chars used))).
fn go_repeat(chars: &[char]) -> Option<Result<(String, usize), String>> {
    let text: String = chars.iter().take(24).collect();
    let body = text.strip_prefix('{')?;
    let end = body.find('}')?;
    let inner = &body[..end];
    let number = |s: &str| -> Option<Option<u64>> {
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        Some(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let (min, max) = match inner.split_once(',') {
        Some((a, b)) => (number(a)??, number(b)?),
        None => {
            let n = number(inner)??;
            (n, Some(n))
        }
    };
    if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
        return Some(Err("invalid repeat count".into()));
    }
    let op = match max {
        Some(m) if m == min => format!("{{{min}}}"),
        Some(m) => format!("{{{min},{m}}}"),
        None => format!("{{{min},}}"),
    };
    Some(Ok((op, inner.chars().count() + 2)))
}

/// `\d \D \w \W \s \S` are ASCII-only in Go.
fn perl_class(c: char) -> String {
    let (set, negated) = match c {
        'd' => ("0-9", false),
        'D' => ("0-9", true),
        'w' => ("0-9A-Za-z_", false),
        'W' => ("0-9A-Za-z_", true),
        's' => (GO_SPACE, false),
        _ => (GO_SPACE, true),
    };
    format!("[{}{set}]", if negated { "^" } else { "" })
}

/// `\pX`, `\p{Name}`, `\PX`, `\P{^Name}` copied as they are (the same in both); returns the next index.
fn unicode_class(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let Some(&first) = chars.get(i + 2) else {
        return Err("invalid character class range".into());
    };
    let end = if first == '{' {
        let close = chars[i + 2..]
            .iter()
            .position(|&c| c == '}')
            .ok_or("invalid character class range")?;
        i + 2 + close + 1
    } else {
        i + 3
    };
    out.extend(&chars[i..end]);
    Ok(end)
}

/// One escape Go's parseEscape accepts, as a character: octal (`\0`, `\12`, `\123`; a lone `\1`
/// is a backreference Go refuses), `\xHH`, `\x{H..}`, `\a \f \n \r \t \v`, and ASCII punctuation.
/// Returns the character and how many chars it used.
fn escape(chars: &[char], i: usize) -> Result<(char, usize), String> {
    let invalid = || {
        format!(
            "invalid escape sequence: \\{}",
            chars.get(i + 1).unwrap_or(&' ')
        )
    };
    let Some(&c) = chars.get(i + 1) else {
        return Err("trailing backslash at end of expression".into());
    };
    let octal = |k: usize| chars.get(k).and_then(|c| c.to_digit(8));
    match c {
        '1'..='7' if octal(i + 2).is_none() => Err(invalid()),
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0);
            let mut used = 2;
            while used < 4 {
                let Some(d) = octal(i + used) else { break };
                value = value * 8 + d;
                used += 1;
            }
            char::from_u32(value)
                .map(|ch| (ch, used))
                .ok_or_else(invalid)
        }
        'x' => {
            if chars.get(i + 2) == Some(&'{') {
                let close = chars[i + 3..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or_else(invalid)?;
                let hex: String = chars[i + 3..i + 3 + close].iter().collect();
                let value = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
                char::from_u32(value)
                    .map(|ch| (ch, close + 4))
                    .ok_or_else(invalid)
            } else {
                let hex: String = chars.iter().skip(i + 2).take(2).collect();
                if hex.chars().count() != 2 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid());
                }
                let value = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
                char::from_u32(value).map(|ch| (ch, 4)).ok_or_else(invalid)
            }
        }
        'a' => Ok(('\u{7}', 2)),
        'f' => Ok(('\u{c}', 2)),
        'n' => Ok(('\n', 2)),
        'r' => Ok(('\r', 2)),
        't' => Ok(('\t', 2)),
        'v' => Ok(('\u{b}', 2)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, 2)),
        _ => Err(invalid()),
    }
}

/// POSIX class names Go knows inside `[...]` (`[:alpha:]`, `[:^alpha:]`); `regex` knows the same.
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A bracket class starting at `i`, item by item as Go's parseClass reads it: `]` first is a
/// literal, `a-z` a range (an inverted range is an error), `-` elsewhere a literal; every literal
/// is written `\x{..}`, so `regex`'s nested classes and set operators never come into play.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    let missing = || "missing closing ]".to_owned();
    out.push('[');
    i += 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or_else(missing)?;
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i..].iter().take(16).collect();
            if let Some(end) = rest[2..].find(":]") {
                let name = &rest[2..2 + end];
                if !POSIX.contains(&name.trim_start_matches('^')) {
                    return Err(format!("invalid character class range: [:{name}:]"));
                }
                out.push_str(&format!("[:{name}:]"));
                i += name.chars().count() + 4;
                continue;
            }
        }
        if c == '\\' {
            match chars.get(i + 1) {
                Some(&('p' | 'P')) => {
                    i = unicode_class(chars, i, out)?;
                    continue;
                }
                Some(&k @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                    out.push_str(&perl_class(k));
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        let (lo, used) = class_char(chars, i)?;
        i += used;
        let range_follows =
            chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&next| next != ']');
        if range_follows {
            let (hi, used) = class_char(chars, i + 1)?;
            if hi < lo {
                return Err("invalid character class range".into());
            }
            i += 1 + used;
            out.push_str(&format!("\\x{{{:x}}}-\\x{{{:x}}}", lo as u32, hi as u32));
        } else {
            out.push_str(&format!("\\x{{{:x}}}", lo as u32));
        }
    }
}

fn class_char(chars: &[char], i: usize) -> Result<(char, usize), String> {
    match chars.get(i) {
        None => Err("missing closing ]".into()),
        Some('\\') => escape(chars, i),
        Some(&c) => Ok((c, 1)),
    }
}

/// A literal character, written so that `regex` reads it as that character only.
fn push_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '_' || c == '/' || !c.is_ascii() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
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
        // Go 1.22+ (what ESO is built with) reads `(?<name>`; the oracle's Go 1.19 does not.
        assert_eq!(replace("(?<n>a)", "a", "<$n>"), "<a>");
    }
}
