//! The `Password` generator (pure but for the random source): ESO's algorithm, which is
//! sethvargo/go-password v0.3.1's `Generate` as ESO's `generators/v1/password` calls it.
//! Must not log, keep or return a password anywhere but in its `SecretBytes`.
//!
//! The algorithm, step for step: letters first (`length - digits - symbols` of them), then digits, then
//! symbols; each character is drawn uniformly from its alphabet and inserted at a uniformly drawn byte
//! position of the password so far. Without `allowRepeat`, a character already present is drawn again.
//! Like Go's `string(s[i])`, a drawn byte of a non-ASCII `symbolCharacters` becomes the character
//! U+00XX (its UTF-8 encoding is inserted).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use rand::{Rng, SeedableRng};

use crate::api::generators::{PasswordEncoding, PasswordSpec};
use crate::provider::SecretBytes;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// ESO's default `symbolCharacters` (also go-password's).
pub const DEFAULT_SYMBOLS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";
const DEFAULT_LENGTH: i64 = 24;
/// Not in ESO: each character is inserted into the string so far (quadratic), and a Secret holds at
/// most 1 MiB; a longer "password" is a mistake, refused instead of stalling the operator.
pub const MAX_LENGTH: i64 = 16 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PasswordError {
    #[error("number of digits and symbols must be less than total length")]
    ExceedsTotalLength,
    #[error("length {length} is above the {MAX_LENGTH} characters secret-sync generates")]
    TooLong { length: i64 },
    #[error(
        "not enough distinct {what} for {wanted} of them without repeats (allowRepeat is false)"
    )]
    NotEnoughDistinct { what: &'static str, wanted: i64 },
    #[error("secretKeys must be non-empty and unique")]
    InvalidSecretKeys,
    #[error("the operating system's random source failed: {detail}")]
    RandomSource { detail: String },
}

/// The generator's settings after ESO's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub length: i64,
    pub digits: i64,
    pub symbols: i64,
    pub symbol_characters: Vec<u8>,
    pub no_upper: bool,
    pub allow_repeat: bool,
    pub encoding: PasswordEncoding,
    pub secret_keys: Vec<String>,
}

impl Settings {
    /// ESO's `extractPasswordConfig`: length 24 unless positive; digits and symbols 25% of the length,
    /// truncated, unless set; an empty `symbolCharacters` is go-password's default set.
    pub fn of(spec: &PasswordSpec) -> Result<Settings, PasswordError> {
        let length = if spec.length > 0 {
            spec.length
        } else {
            DEFAULT_LENGTH
        };
        let quarter = length / 4;
        let symbol_characters = match spec.symbol_characters.as_deref() {
            Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
            _ => DEFAULT_SYMBOLS.as_bytes().to_vec(),
        };
        let secret_keys = if spec.secret_keys.is_empty() {
            vec!["password".to_owned()]
        } else {
            spec.secret_keys.clone()
        };
        let distinct: BTreeSet<&String> = secret_keys.iter().collect();
        if distinct.len() != secret_keys.len() || secret_keys.iter().any(String::is_empty) {
            return Err(PasswordError::InvalidSecretKeys);
        }
        Ok(Settings {
            length,
            digits: spec.digits.unwrap_or(quarter),
            symbols: spec.symbols.unwrap_or(quarter),
            symbol_characters,
            no_upper: spec.no_upper,
            allow_repeat: spec.allow_repeat,
            encoding: spec.encoding.unwrap_or_default(),
            secret_keys,
        })
    }
}

/// One password per secret key, from a CSPRNG freshly seeded by the operating system (ChaCha12).
pub fn generate(spec: &PasswordSpec) -> Result<BTreeMap<String, SecretBytes>, PasswordError> {
    let settings = Settings::of(spec)?;
    let mut rng =
        rand::rngs::StdRng::try_from_os_rng().map_err(|e| PasswordError::RandomSource {
            detail: e.to_string(),
        })?;
    let mut out = BTreeMap::new();
    for key in &settings.secret_keys {
        let password = password(&settings, &mut rng)?;
        out.insert(key.clone(), encode(password, settings.encoding));
    }
    Ok(out)
}

/// go-password's `Generate(length, digits, symbols, noUpper, allowRepeat)` with `rng` as its reader.
pub fn password(settings: &Settings, rng: &mut impl Rng) -> Result<Vec<u8>, PasswordError> {
    if settings.length > MAX_LENGTH {
        return Err(PasswordError::TooLong {
            length: settings.length,
        });
    }
    let mut letters = LOWER.to_vec();
    if !settings.no_upper {
        letters.extend_from_slice(UPPER);
    }
    let chars = settings.length - settings.digits - settings.symbols;
    if chars < 0 {
        return Err(PasswordError::ExceedsTotalLength);
    }
    let symbols = &settings.symbol_characters;
    let groups: [(&[u8], i64, &'static str); 3] = [
        (&letters, chars, "letters"),
        (DIGITS, settings.digits, "digits"),
        (symbols, settings.symbols, "symbols"),
    ];
    // go-password's up-front checks compare with the alphabet's length in bytes.
    if !settings.allow_repeat {
        for (alphabet, wanted, what) in groups {
            if wanted > alphabet.len() as i64 {
                return Err(PasswordError::NotEnoughDistinct { what, wanted });
            }
        }
    }
    let mut result: Vec<u8> = Vec::new();
    for (alphabet, wanted, what) in groups {
        for _ in 0..wanted.max(0) {
            // Go draws again while the drawn character is already present; drawing among the
            // positions whose character is absent has the same distribution and cannot spin forever
            // (Go hangs when duplicates or overlapping alphabets leave too few distinct characters).
            let pick = if settings.allow_repeat {
                alphabet[rng.random_range(0..alphabet.len())]
            } else {
                let open: Vec<u8> = alphabet
                    .iter()
                    .copied()
                    .filter(|b| !contains(&result, &as_go_char(*b)))
                    .collect();
                if open.is_empty() {
                    return Err(PasswordError::NotEnoughDistinct { what, wanted });
                }
                open[rng.random_range(0..open.len())]
            };
            let piece = as_go_char(pick);
            let at = if result.is_empty() {
                0
            } else {
                rng.random_range(0..=result.len())
            };
            result.splice(at..at, piece);
        }
    }
    Ok(result)
}

/// Go's `string(b)` of a byte: the UTF-8 encoding of the character U+00XX.
fn as_go_char(b: u8) -> Vec<u8> {
    char::from(b).to_string().into_bytes()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// ESO's `encodePassword`: Go's padded standard encodings.
fn encode(password: Vec<u8>, encoding: PasswordEncoding) -> SecretBytes {
    let password = zeroize::Zeroizing::new(password);
    match encoding {
        PasswordEncoding::Raw => SecretBytes::from(password.to_vec()),
        PasswordEncoding::Base64 => {
            SecretBytes::from(base64::engine::general_purpose::STANDARD.encode(password.as_slice()))
        }
        PasswordEncoding::Base64url => {
            SecretBytes::from(base64::engine::general_purpose::URL_SAFE.encode(password.as_slice()))
        }
        PasswordEncoding::Base32 => {
            SecretBytes::from(data_encoding::BASE32.encode(password.as_slice()))
        }
        PasswordEncoding::Hex => SecretBytes::from(hex::encode(password.as_slice())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Settings {
        Settings::of(&serde_yaml_ng::from_str::<PasswordSpec>(yaml).unwrap()).unwrap()
    }

    fn seeded(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn count(p: &[u8], set: &[u8]) -> usize {
        p.iter().filter(|b| set.contains(b)).count()
    }

    #[test]
    fn defaults_are_esos() {
        let s = settings("{}");
        assert_eq!((s.length, s.digits, s.symbols), (24, 6, 6));
        assert_eq!(s.symbol_characters, DEFAULT_SYMBOLS.as_bytes());
        assert!(!s.no_upper && !s.allow_repeat);
        assert_eq!(s.secret_keys, ["password"]);
        assert_eq!(s.encoding, PasswordEncoding::Raw);
        // 25% truncated, and a non-positive length is the default.
        let s = settings("length: 30");
        assert_eq!((s.digits, s.symbols), (7, 7));
        assert_eq!(settings("length: 0").length, 24);
        assert_eq!(settings("length: -3").length, 24);
        assert_eq!(
            settings("symbolCharacters: ''").symbol_characters,
            DEFAULT_SYMBOLS.as_bytes()
        );
    }

    #[test]
    fn a_password_has_exactly_the_asked_counts_of_each_class() {
        // corpus 035: length 32, 5 digits, 5 symbols from "/-+", repeats allowed.
        let s = settings(
            "{length: 32, digits: 5, symbols: 5, symbolCharacters: '/-+', noUpper: false, allowRepeat: true}",
        );
        for seed in 0..200 {
            let p = password(&s, &mut seeded(seed)).unwrap();
            assert_eq!(p.len(), 32);
            assert_eq!(count(&p, DIGITS), 5);
            assert_eq!(count(&p, b"/-+"), 5);
            assert_eq!(count(&p, LOWER) + count(&p, UPPER), 22);
        }
    }

    #[test]
    fn without_repeats_no_character_appears_twice() {
        let s = settings("{}");
        for seed in 0..200 {
            let p = password(&s, &mut seeded(seed)).unwrap();
            let distinct: BTreeSet<u8> = p.iter().copied().collect();
            assert_eq!(distinct.len(), p.len(), "{}", String::from_utf8_lossy(&p));
            assert_eq!(count(&p, DIGITS), 6);
            assert_eq!(count(&p, DEFAULT_SYMBOLS.as_bytes()), 6);
        }
    }

    #[test]
    fn no_upper_leaves_out_upper_case() {
        let s = settings("{length: 40, noUpper: true, allowRepeat: true}");
        for seed in 0..100 {
            assert_eq!(count(&password(&s, &mut seeded(seed)).unwrap(), UPPER), 0);
        }
        // ...while with upper case allowed, some password of many has one.
        let s = settings("{length: 40, allowRepeat: true}");
        assert!((0..100).any(|seed| count(&password(&s, &mut seeded(seed)).unwrap(), UPPER) > 0));
    }

    #[test]
    fn every_position_and_character_is_reached() {
        // Insertion at random positions: a digit shows up at the first and at the last position.
        let s = settings("{length: 8, digits: 1, symbols: 0, allowRepeat: true}");
        let mut first = false;
        let mut last = false;
        let mut seen = BTreeSet::new();
        for seed in 0..2000 {
            let p = password(&s, &mut seeded(seed)).unwrap();
            first |= p[0].is_ascii_digit();
            last |= p[7].is_ascii_digit();
            seen.extend(p);
        }
        assert!(first && last);
        assert_eq!(seen.len(), 26 + 26 + 10, "all letters and digits occur");
    }

    #[test]
    fn go_passwords_errors_are_kept() {
        let err = |yaml: &str| password(&settings(yaml), &mut seeded(1)).unwrap_err();
        assert_eq!(
            err("{length: 4, digits: 3, symbols: 2}"),
            PasswordError::ExceedsTotalLength
        );
        assert!(matches!(
            err("{length: 20, digits: 11, symbols: 0}"),
            PasswordError::NotEnoughDistinct { what: "digits", .. }
        ));
        assert!(matches!(
            err("{length: 10, digits: 0, symbols: 2, symbolCharacters: '-'}"),
            PasswordError::NotEnoughDistinct {
                what: "symbols",
                ..
            }
        ));
        assert!(matches!(
            err("{length: 60, digits: 0, symbols: 0, noUpper: true}"),
            PasswordError::NotEnoughDistinct {
                what: "letters",
                ..
            }
        ));
        // Where Go would spin forever (a repeated symbol counts twice in its check), we stop.
        assert!(matches!(
            err("{length: 4, digits: 0, symbols: 2, symbolCharacters: '--'}"),
            PasswordError::NotEnoughDistinct {
                what: "symbols",
                ..
            }
        ));
        assert!(matches!(
            err("{length: 100000}"),
            PasswordError::TooLong { .. }
        ));
        // Negative counts draw nothing and lengthen the letters, as Go's loops do.
        let p = password(
            &settings("{length: 6, digits: -2, symbols: 0, allowRepeat: true}"),
            &mut seeded(3),
        )
        .unwrap();
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn a_non_ascii_symbol_byte_becomes_a_latin1_character_as_in_go() {
        // "é" is C3 A9; Go draws a byte and inserts string(rune(byte)): "Ã" (C3 83) or "©" (C2 A9).
        let s = settings(
            "{length: 1, digits: 0, symbols: 1, symbolCharacters: 'é', allowRepeat: true}",
        );
        let mut seen = BTreeSet::new();
        for seed in 0..50 {
            seen.insert(password(&s, &mut seeded(seed)).unwrap());
        }
        assert_eq!(seen, BTreeSet::from([vec![0xC3, 0x83], vec![0xC2, 0xA9]]));
    }

    #[test]
    fn secret_keys_and_encodings() {
        let out = generate(
            &serde_yaml_ng::from_str("{secretKeys: [a, b], encoding: hex, length: 10}").unwrap(),
        )
        .unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(out["a"].len(), 20);
        assert_ne!(out["a"], out["b"], "each key gets its own password");
        assert_eq!(
            encode(b"ab?".to_vec(), PasswordEncoding::Base64url).expose(),
            b"YWI_"
        );
        assert_eq!(
            encode(b"ab".to_vec(), PasswordEncoding::Base64).expose(),
            b"YWI="
        );
        assert_eq!(
            encode(b"ab".to_vec(), PasswordEncoding::Base32).expose(),
            b"MFRA===="
        );
        for bad in ["{secretKeys: [a, a]}", "{secretKeys: ['']}"] {
            let spec: PasswordSpec = serde_yaml_ng::from_str(bad).unwrap();
            assert_eq!(
                generate(&spec).unwrap_err(),
                PasswordError::InvalidSecretKeys
            );
        }
    }

    #[test]
    fn two_generations_differ() {
        let a = generate(&PasswordSpec::default()).unwrap();
        let b = generate(&PasswordSpec::default()).unwrap();
        assert_eq!(a["password"].len(), 24);
        assert_ne!(a["password"], b["password"]);
    }
}
