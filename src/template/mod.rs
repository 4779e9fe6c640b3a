//! ESO's `target.template` engine v2: Go's text/template with `missingkey=error` and sprig's text
//! functions (minus `env`/`expandenv`), rendering the same bytes as ESO for the same input.
//!
//! Pure: no client, no I/O, no environment. Each render runs within [`Limits`] (a step budget, an
//! output cap, a template-call depth), so a hostile template cannot hang or exhaust the operator.
//! Parsed templates are cached by their text, so a template is parsed once per distinct source.
//!
//! Not supported yet (a template using one fails to parse with `Unsupported`): see
//! [`UNSUPPORTED_FUNCTIONS`].

mod exec;
mod fmt;
mod funcs;
mod parse;
mod value;

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
