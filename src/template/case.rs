//! sprig's `snakecase`, `kebabcase` and `camelcase` (huandu/xstrings): words split at case
//! changes, digits, punctuation and connectors (`-`, `_`, spaces), with Go's Unicode classes.

use std::sync::OnceLock;

use regex::Regex;

const RUNE_ERROR: char = '\u{fffd}';

/// Go's unicode.IsUpper, IsLetter, IsPunct and IsNumber: general categories Lu, L, P and N.
fn in_category(which: usize, c: char) -> bool {
    static CLASSES: OnceLock<Vec<Option<Regex>>> = OnceLock::new();
    let classes = CLASSES.get_or_init(|| {
        [r"^\p{Lu}$", r"^\p{L}$", r"^\p{P}$", r"^\p{N}$"]
            .iter()
            .map(|p| Regex::new(p).ok())
            .collect()
    });
    let mut buf = [0u8; 4];
    classes
        .get(which)
        .and_then(Option::as_ref)
        .is_some_and(|r| r.is_match(c.encode_utf8(&mut buf)))
}

fn is_upper(c: char) -> bool {
    in_category(0, c)
}

fn is_letter(c: char) -> bool {
    in_category(1, c)
}

fn is_punct(c: char) -> bool {
    in_category(2, c)
}

fn is_number(c: char) -> bool {
    in_category(3, c)
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// Letters outside the common CJK blocks (xstrings treats those as "other").
fn is_alphabet(c: char) -> bool {
    if !is_letter(c) {
        return false;
    }
    !matches!(c, '\u{4e00}'..='\u{9fcc}' | '\u{3400}'..='\u{4d85}' | '\u{20000}'..='\u{2b81d}')
}

/// Go's single-rune case mappings: unchanged when the mapping is not one character.
fn one(mut it: impl Iterator<Item = char>, c: char) -> char {
    match (it.next(), it.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn to_upper(c: char) -> char {
    one(c.to_uppercase(), c)
}

fn to_lower(c: char) -> char {
    one(c.to_lowercase(), c)
}

/// utf8.DecodeRune: a character and its length, or RuneError and 1 for a bad byte.
fn decode(b: &[u8]) -> (char, usize) {
    let n = b.len().min(4);
    for len in 1..=n {
        if let Ok(s) = std::str::from_utf8(&b[..len])
            && let Some(c) = s.chars().next()
        {
            return (c, len);
        }
    }
    (RUNE_ERROR, 1)
}

/// xstrings' nextValidRune: skips bad bytes (and U+FFFD), counting them into the size.
fn next_valid(b: &[u8], prev: char) -> (char, usize) {
    let mut size = 0;
    let mut rest = b;
    while !rest.is_empty() {
        let (c, sz) = decode(rest);
        size += sz;
        if c != RUNE_ERROR {
            return (c, size);
        }
        rest = &rest[sz..];
    }
    (prev, size)
}

#[derive(Clone, Copy, PartialEq)]
enum Word {
    Invalid,
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' nextWord: the kind and bytes of the next word, and the rest.
fn next_word(s: &[u8]) -> (Word, &[u8], &[u8]) {
    if s.is_empty() {
        return (Word::Invalid, s, s);
    }
    let (mut r, size) = next_valid(s, RUNE_ERROR);
    let mut offset = size;
    let mut rest = &s[size..];
    if r == RUNE_ERROR {
        return (Word::Invalid, &s[..offset], &s[offset..]);
    }
    // Extends the word while `keep` holds for the next valid rune.
    let run = |offset: &mut usize, rest: &mut &[u8], r: &mut char, keep: &dyn Fn(char) -> bool| {
        while !rest.is_empty() {
            let (c, sz) = next_valid(rest, *r);
            *r = c;
            if sz == 0 || !keep(c) {
                break;
            }
            *offset += sz;
            *rest = &rest[sz..];
        }
    };
    let kind = if is_connector(r) {
        run(&mut offset, &mut rest, &mut r, &is_connector);
        Word::Connector
    } else if is_punct(r) {
        run(&mut offset, &mut rest, &mut r, &is_punct);
        Word::Punct
    } else if is_upper(r) {
        if !rest.is_empty() {
            let (c, sz) = next_valid(rest, r);
            r = c;
            if is_upper(c) {
                let mut prev = sz;
                offset += sz;
                rest = &rest[sz..];
                while !rest.is_empty() {
                    let (c, sz) = next_valid(rest, r);
                    r = c;
                    if !is_upper(c) {
                        break;
                    }
                    prev = sz;
                    offset += sz;
                    rest = &rest[sz..];
                }
                // The last capital starts the next word ("HTTPServer": "HTTP", "Server").
                if !rest.is_empty() && is_alphabet(r) {
                    offset -= prev;
                    rest = &s[offset..];
                }
            } else if is_alphabet(c) {
                offset += sz;
                rest = &rest[sz..];
                run(&mut offset, &mut rest, &mut r, &|c| {
                    is_alphabet(c) && !is_upper(c)
                });
            }
        }
        Word::Upper
    } else if is_alphabet(r) {
        run(&mut offset, &mut rest, &mut r, &|c| {
            is_alphabet(c) && !is_upper(c)
        });
        Word::Alphabet
    } else if is_number(r) {
        run(&mut offset, &mut rest, &mut r, &is_number);
        Word::Number
    } else {
        run(&mut offset, &mut rest, &mut r, &|c| {
            !(is_connector(c) || is_alphabet(c) || is_number(c) || is_punct(c))
        });
        Word::Other
    };
    (kind, &s[..offset], rest)
}

fn push(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// xstrings' toLower: capital and connector words are lowered (connectors become `conn`).
fn lower(out: &mut Vec<u8>, kind: Word, w: &[u8], conn: char) {
    if kind != Word::Upper && kind != Word::Connector {
        out.extend_from_slice(w);
        return;
    }
    let mut rest = w;
    while !rest.is_empty() {
        let (c, sz) = decode(rest);
        rest = &rest[sz..];
        if is_connector(c) {
            push(out, conn);
        } else if is_upper(c) {
            push(out, to_lower(c));
        } else {
            push(out, c);
        }
    }
}

/// `snakecase` (`conn` '_') and `kebabcase` ('-').
pub(crate) fn lower_case(s: &[u8], conn: char) -> Vec<u8> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let (mut kind, mut word, mut rest) = next_word(s);
    let soft = |k: Word| k != Word::Invalid && k != Word::Punct && k != Word::Connector;
    while !rest.is_empty() {
        if kind != Word::Connector {
            lower(&mut out, kind, word, conn);
        }
        let (prev, last) = (kind, word);
        (kind, word, rest) = next_word(rest);
        match prev {
            Word::Number => {
                while kind == Word::Alphabet || kind == Word::Number {
                    lower(&mut out, kind, word, conn);
                    (kind, word, rest) = next_word(rest);
                }
                if soft(kind) {
                    push(&mut out, conn);
                }
            }
            Word::Connector => lower(&mut out, prev, last, conn),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if kind != Word::Connector && kind != Word::Punct {
                        push(&mut out, conn);
                    }
                    continue;
                }
                if rest.is_empty() {
                    continue;
                }
                let last = word;
                (kind, word, rest) = next_word(rest);
                if kind != Word::Alphabet {
                    lower(&mut out, Word::Number, last, conn);
                    if kind != Word::Connector && kind != Word::Punct {
                        push(&mut out, conn);
                    }
                    continue;
                }
                push(&mut out, conn);
                lower(&mut out, Word::Number, last, conn);
                while kind == Word::Alphabet || kind == Word::Number {
                    lower(&mut out, kind, word, conn);
                    (kind, word, rest) = next_word(rest);
                }
                if soft(kind) {
                    push(&mut out, conn);
                }
            }
        }
    }
    lower(&mut out, kind, word, conn);
    out
}

/// `camelcase`: connectors removed, the letter after one upper-cased, the rest lowered.
pub(crate) fn camel_case(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut r0 = RUNE_ERROR;
    let mut size = 0;
    while !rest.is_empty() {
        let (c, sz) = decode(rest);
        r0 = c;
        size = sz;
        rest = &rest[sz..];
        if !is_connector(r0) {
            r0 = to_upper(r0);
            break;
        }
        push(&mut out, r0);
    }
    if rest.is_empty() {
        if size != 0 {
            push(&mut out, r0);
        }
        return out;
    }
    while !rest.is_empty() {
        let r1 = r0;
        let (c, sz) = decode(rest);
        r0 = c;
        rest = &rest[sz..];
        if is_connector(r0) && is_connector(r1) {
            push(&mut out, r1);
            continue;
        }
        if is_connector(r1) {
            r0 = to_upper(r0);
        } else {
            r0 = to_lower(r0);
            push(&mut out, r1);
        }
    }
    push(&mut out, r0);
    out
}
