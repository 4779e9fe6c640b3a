//! ESO's `target.template` engine v2: Go's text/template with `missingkey=error` and sprig's text
//! functions (minus `env`/`expandenv`), rendering the same bytes as ESO for the same input.
//!
//! Pure: no client, no I/O, no environment. Each render runs within [`Limits`] (a step budget, an
//! output cap, a template-call depth), so a hostile template cannot hang or exhaust the operator.
//! Parsed templates are cached by their text, so a template is parsed once per distinct source.
//!
//! Not supported yet (a template using one fails to parse with `Unsupported`): see
//! [`UNSUPPORTED_FUNCTIONS`].

mod case;
mod date;
mod eso;
mod exec;
mod fmt;
mod funcs;
mod parse;
mod value;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};

pub use exec::Limits;

use crate::provider::value::SecretBytes;
use value::{ElemTy, Value, go_str};

/// Function names sprig or ESO offer that this engine does not (yet).
pub const UNSUPPORTED_FUNCTIONS: &[&str] = funcs::UNSUPPORTED;

/// Why a template did not render. Messages name the template key and position, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name:?}: {line}:{col}: parse error: {what}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        what: String,
    },
    #[error(
        "template {name:?}: {line}:{col}: function {function:?} is not supported by secret-sync"
    )]
    Unsupported {
        name: String,
        line: usize,
        col: usize,
        function: String,
    },
    #[error("template {name:?}: {line}:{col}: execution error: {what}")]
    Execute {
        name: String,
        line: usize,
        col: usize,
        what: String,
    },
    #[error("template {name:?}: exceeded the budget of {limit} evaluation steps")]
    StepBudget { name: String, limit: u64 },
    #[error("template {name:?}: output larger than {limit} bytes")]
    OutputTooLarge { name: String, limit: usize },
    #[error("template {name:?}: {line}:{col}: template calls nested deeper than {limit}")]
    TooDeep {
        name: String,
        line: usize,
        col: usize,
        limit: usize,
    },
}

impl TemplateError {
    /// A bounded label for status reasons and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            TemplateError::Parse { .. } => "TemplateParse",
            TemplateError::Unsupported { .. } => "TemplateUnsupported",
            TemplateError::Execute { .. } => "TemplateExecute",
            TemplateError::StepBudget { .. } | TemplateError::TooDeep { .. } => "TemplateBudget",
            TemplateError::OutputTooLarge { .. } => "TemplateTooLarge",
        }
    }
}

/// A parsed template, shareable across threads (the tree holds no data).
pub struct Template {
    source: Arc<str>,
    tree: parse::Tree,
}

// The tree holds only the template text's own literals: no Rc, no data.
fn parse_template(source: &str, name: &str) -> Result<Template, TemplateError> {
    let mut unsupported: Option<String> = None;
    let check = |f: &str| {
        if funcs::is_supported(f) {
            return true;
        }
        false
    };
    match parse::parse(source, &check) {
        Ok(tree) => Ok(Template {
            source: Arc::from(source),
            tree,
        }),
        Err(e) => {
            let (line, col) = parse::line_col(source, e.pos);
            // An undefined function that sprig or ESO has is reported as unsupported here.
            if let Some(f) = e
                .what
                .strip_prefix("function \"")
                .and_then(|r| r.strip_suffix("\" not defined"))
                && funcs::is_unsupported(f)
            {
                unsupported = Some(f.to_string());
            }
            match unsupported {
                Some(function) => Err(TemplateError::Unsupported {
                    name: name.to_string(),
                    line,
                    col,
                    function,
                }),
                None => Err(TemplateError::Parse {
                    name: name.to_string(),
                    line,
                    col,
                    what: e.what,
                }),
            }
        }
    }
}

impl Template {
    /// Parses a template; `name` is the template key, used only in error messages.
    pub fn parse(source: &str, name: &str) -> Result<Template, TemplateError> {
        parse_template(source, name)
    }

    /// Renders with ESO's data: every value a Go string (ESO turns each `[]byte` into one).
    pub fn render(
        &self,
        name: &str,
        data: &BTreeMap<String, SecretBytes>,
        limits: Limits,
    ) -> Result<SecretBytes, TemplateError> {
        let map: BTreeMap<Vec<u8>, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.as_bytes().to_vec(),
                    Value::Str(go_str(v.expose().to_vec())),
                )
            })
            .collect();
        let root = Value::Map(Rc::new(std::cell::RefCell::new(map)), ElemTy::Str);
        let pos = |p: usize| parse::line_col(&self.source, p);
        match exec::Exec::run(&self.tree, root, limits) {
            Ok(mut out) => Ok(SecretBytes::new(std::mem::take(&mut *out))),
            Err(exec::Stop::At(p, what)) => {
                let (line, col) = pos(p);
                Err(TemplateError::Execute {
                    name: name.to_string(),
                    line,
                    col,
                    what,
                })
            }
            Err(exec::Stop::Steps) => Err(TemplateError::StepBudget {
                name: name.to_string(),
                limit: limits.max_steps,
            }),
            Err(exec::Stop::Output) => Err(TemplateError::OutputTooLarge {
                name: name.to_string(),
                limit: limits.max_output,
            }),
            Err(exec::Stop::Depth(p)) => {
                let (line, col) = pos(p);
                Err(TemplateError::TooDeep {
                    name: name.to_string(),
                    line,
                    col,
                    limit: limits.max_depth,
                })
            }
        }
    }
}

/// Parsed templates by source text. Bounded: past this many distinct sources the cache starts over.
const CACHE_CAP: usize = 4096;

type Cache = Mutex<HashMap<Arc<str>, Arc<Template>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Functions whose answer differs between two renders of the same input (the clock, randomness,
/// random salts and IVs, DNS). A template calling one must be rendered at every refresh.
const NONDETERMINISTIC: &[&str] = &[
    "now",
    "ago",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "randInt",
    "shuffle",
    "uuidv4",
    "bcrypt",
    "htpasswd",
    "encryptAES",
    "getHostByName",
];

/// Whether `source` renders the same output for the same input: it names none of
/// [`NONDETERMINISTIC`] anywhere (a word match over the whole text, so text outside actions that
/// merely contains such a word also counts: the conservative side, which only costs a fetch).
pub fn is_deterministic(source: &str) -> bool {
    !source
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| NONDETERMINISTIC.contains(&word))
}

/// The parsed form of `source`, parsed at most once per distinct text (parse errors are not
/// cached: they are cheap and the message names the key).
pub fn parsed(source: &str, name: &str) -> Result<Arc<Template>, TemplateError> {
    if let Ok(c) = cache().lock()
        && let Some(t) = c.get(source)
    {
        return Ok(t.clone());
    }
    let t = Arc::new(parse_template(source, name)?);
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        c.insert(t.source.clone(), t.clone());
    }
    Ok(t)
}

/// Go's `json.Marshal` (`escape_html: true`) or `json.Encoder` with `SetEscapeHTML(false)` of a value
/// `json.Unmarshal` decoded into `any`: object keys sorted by bytes, numbers as float64. None for a
/// value Go cannot encode (a non-finite number) or nesting deeper than 200.
pub fn go_json_marshal(v: &serde_json::Value, escape_html: bool) -> Option<Vec<u8>> {
    funcs::go_json_marshal(v, escape_html)
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as `f`, never
/// with an exponent.
pub fn go_format_float(f: f64) -> String {
    value::format_float_f_shortest(f)
}

/// Renders `template_text` (the template key `name_for_errors`) over `data` with the default
/// limits, as ESO's engine v2 does.
pub fn render(
    template_text: &str,
    name_for_errors: &str,
    data: &BTreeMap<String, SecretBytes>,
) -> Result<SecretBytes, TemplateError> {
    parsed(template_text, name_for_errors)?.render(name_for_errors, data, Limits::default())
}

/// Like [`render`], with explicit limits.
pub fn render_with_limits(
    template_text: &str,
    name_for_errors: &str,
    data: &BTreeMap<String, SecretBytes>,
    limits: Limits,
) -> Result<SecretBytes, TemplateError> {
    parsed(template_text, name_for_errors)?.render(name_for_errors, data, limits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec())))
            .collect()
    }

    fn out(t: &str, d: &BTreeMap<String, SecretBytes>) -> Result<Vec<u8>, TemplateError> {
        render(t, "key", d).map(|s| s.expose().to_vec())
    }

    #[test]
    fn templates_naming_the_clock_or_randomness_are_not_deterministic() {
        assert!(is_deterministic("{{ .user }}:{{ .password | b64enc }}"));
        assert!(is_deterministic("{{ .nowhere }} {{ .random }}"));
        for source in [
            "{{ now | date \"2006\" }}",
            "{{ randAlphaNum 8 }}",
            "{{ htpasswd .user .password \"bcrypt\" }}",
            "{{ uuidv4 }}",
            "{{ .x | encryptAES .key }}",
            "{{ (now).Year }}",
        ] {
            assert!(!is_deterministic(source), "{source}");
        }
    }

    #[test]
    fn renders_a_connection_string_and_binary_values_untouched() {
        let d = data(&[
            ("user", b"admin"),
            ("pass", b"p@ss"),
            ("bin", &[0xff, 0, 0x80]),
        ]);
        assert_eq!(
            out("postgres://{{ .user }}:{{ .pass | urlquery }}@db", &d).unwrap(),
            b"postgres://admin:p%40ss@db"
        );
        assert_eq!(out("{{ .bin }}", &d).unwrap(), [0xff, 0, 0x80]);
        assert_eq!(out("{{ .bin | b64enc }}", &d).unwrap(), b"/wCA");
    }

    #[test]
    fn a_hostile_loop_runs_out_of_steps_quickly() {
        let start = std::time::Instant::now();
        let e = out(
            "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}",
            &data(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::StepBudget { .. }), "{e}");
        assert_eq!(e.category(), "TemplateBudget");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn giant_output_and_giant_values_are_refused() {
        let e = out(
            "{{ range until 100000 }}{{ repeat 100 \"x\" }}{{ end }}",
            &data(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::OutputTooLarge { .. }), "{e}");
        for t in [
            "{{ repeat 1000000000 \"x\" }}",
            "{{ printf \"%999999999s\" \"x\" }}{{ printf \"%999999999s\" \"x\" }}",
            "{{ until 1000000000 }}",
            "{{ indent 1000000000 \"x\" }}",
            "{{ $s := \"xxxxxxxxxxxxxxxx\" }}{{ range until 20 }}{{ $s = print $s $s }}{{ end }}{{ $s }}",
        ] {
            let e = out(t, &data(&[])).unwrap_err();
            assert_eq!(e.category(), "TemplateTooLarge", "{t}: {e}");
        }
    }

    #[test]
    fn recursion_and_deep_nesting_are_bounded() {
        let e = out(
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            &data(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::TooDeep { .. }), "{e}");
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(
            out(&deep, &data(&[])).unwrap_err().category(),
            "TemplateParse"
        );
        let nested = "{{ if true }}".repeat(5000);
        assert_eq!(
            out(&nested, &data(&[])).unwrap_err().category(),
            "TemplateParse"
        );
    }

    #[test]
    fn errors_name_the_key_and_position_never_the_data() {
        let canary: &[u8] = b"CANARY-7f3a-do-not-print";
        let d = data(&[
            ("a", canary),
            ("j", b"{\"k\":\"CANARY-7f3a-do-not-print\"}"),
        ]);
        for t in [
            "{{ .a.b }}",
            "{{ range .a }}{{ end }}",
            "{{ eq .a 1 }}",
            "{{ index .a 99 }}",
            "{{ fail .a }}",
            "{{ mustFromJson .a }}",
            "{{ mustRegexMatch (printf \"%s(\" .a) \"x\" }}",
            "{{ .a | upper 1 }}",
            "{{ (fromJson .j).k.x }}",
            "{{ eq (fromJson .j) (fromJson .j) }}",
            "{{ template \"x\" .a }}",
            "line one\n  {{ .missing }}",
        ] {
            let e = out(t, &d).unwrap_err();
            let msg = e.to_string();
            assert!(!msg.contains("CANARY"), "{t}: {msg}");
            assert!(msg.starts_with("template \"key\": "), "{t}: {msg}");
        }
        let e = out("line one\n  {{ .missing }}", &d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template \"key\": 2:5: execution error: map has no entry for key \"missing\""
        );
    }

    #[test]
    fn unsupported_and_unknown_functions_are_parse_errors() {
        let e = out("{{ semver \"1.2.3\" }}", &data(&[])).unwrap_err();
        assert!(
            matches!(&e, TemplateError::Unsupported { function, .. } if function == "semver"),
            "{e}"
        );
        assert_eq!(e.category(), "TemplateUnsupported");
        let e = out("{{ env \"HOME\" }}", &data(&[])).unwrap_err();
        assert_eq!(e.category(), "TemplateParse", "env is removed, as in ESO");
        let e = out("{{ getHostByName \"localhost\" }}", &data(&[])).unwrap_err();
        assert_eq!(e.category(), "TemplateExecute", "never reaches the network");
    }

    #[test]
    fn costly_functions_draw_on_the_step_budget() {
        let call = "{{ rsaDecrypt \"None\" \"\" \"x\" \"\" }}";
        let few = format!("{{{{ range until 5 }}}}{call}{{{{ end }}}}");
        assert_eq!(out(&few, &data(&[])).unwrap(), b"xxxxx");
        // 5,000 calls at 1,001 steps each exceed the 1,000,000-step budget.
        let many = format!("{{{{ range until 5000 }}}}{call}{{{{ end }}}}");
        assert_eq!(
            out(&many, &data(&[])).unwrap_err().category(),
            "TemplateBudget"
        );
    }

    #[test]
    fn a_template_is_parsed_once_per_distinct_text() {
        let t = "{{ .a }} parsed once {{ 42 }}";
        let first = parsed(t, "x").unwrap();
        let second = parsed(t, "y").unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &parsed("{{ .b }}", "x").unwrap()));
    }

    #[test]
    fn set_on_a_map_is_seen_by_every_holder_but_a_map_cannot_hold_itself() {
        let d = data(&[]);
        assert_eq!(
            out("{{ $d := dict }}{{ $_ := set $d \"a\" 1 }}{{ $d }}", &d).unwrap(),
            b"map[a:1]"
        );
        assert!(out("{{ $d := dict }}{{ $_ := set $d \"a\" $d }}{{ $d }}", &d).is_err());
    }
}
