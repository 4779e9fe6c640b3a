//! `dataFrom[].rewrite[]` (pure): ESO's key rewrites — `regexp` (Go's `ReplaceAllString`), `transform`
//! (a template over `.value`, the key) and `merge` (JSON values merged) — applied in order to the keys
//! of one dataFrom entry. Source: ESO's "Rewriting Keys in DataFrom" guide and its `RewriteMap`.
//! Must not convert, decode or validate keys (build.rs does that after), nor put a value in an error.
//!
//! Where we differ from ESO on purpose: two keys rewritten to one name, and a key rewritten to an
//! empty name, are errors here (ESO keeps one of the colliding values at random, and silently drops
//! empty keys).

use std::collections::BTreeMap;

use crate::api::{
    ExternalSecretRewrite, MergeConflictPolicy, MergePriorityPolicy, MergeStrategy, RewriteMerge,
};
use crate::goregex::{CompileError, GoRegex};
use crate::provider::SecretBytes;
use crate::template::TemplateError;

/// Why the rewrites of a dataFrom entry failed. Names operations and keys, never values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RewriteError {
    #[error("rewrite[{index}].regexp: {source}")]
    CompileRegexp { index: usize, source: CompileError },
    #[error("rewrite[{index}] turns key {key:?} into an empty key")]
    EmptyKey { index: usize, key: String },
    #[error("rewrite[{index}] turns two keys into the same key {key:?}")]
    Collision { index: usize, key: String },
    #[error("rewrite[{index}].transform failed for key {key:?}: {source}")]
    Transform {
        index: usize,
        key: String,
        source: TemplateError,
    },
    #[error("rewrite[{index}].transform turns key {key:?} into bytes that are not UTF-8")]
    TransformNotText { index: usize, key: String },
    #[error("rewrite[{index}].merge: the value of key {key:?} is not a JSON object")]
    MergeNotJson { index: usize, key: String },
    #[error("rewrite[{index}].merge: priority key {key:?} is not among the keys")]
    MergePriorityNotFound { index: usize, key: String },
    #[error("rewrite[{index}].merge: keys conflict: {keys} (conflictPolicy Error)")]
    MergeConflict { index: usize, keys: String },
    #[error("rewrite[{index}].merge: strategy JSON needs `into`")]
    MergeWithoutInto { index: usize },
    #[error("rewrite[{index}].merge: a merged value cannot be encoded as Go encodes it")]
    MergeEncode { index: usize },
}

impl RewriteError {
    /// Bounded label for metrics, Events and status.
    pub fn category(&self) -> &'static str {
        match self {
            RewriteError::CompileRegexp { .. } => "InvalidSpec",
            RewriteError::EmptyKey { .. }
            | RewriteError::Collision { .. }
            | RewriteError::TransformNotText { .. } => "InvalidSecretKey",
            RewriteError::Transform { source, .. } => source.category(),
            RewriteError::MergeNotJson { .. } | RewriteError::MergeEncode { .. } => "InvalidJSON",
            RewriteError::MergePriorityNotFound { .. }
            | RewriteError::MergeConflict { .. }
            | RewriteError::MergeWithoutInto { .. } => "RewriteFailed",
        }
    }
}

pub type Keys = BTreeMap<String, SecretBytes>;

/// Check what can be checked before any fetch: every regexp compiles, every transform parses.
pub fn validate(ops: &[ExternalSecretRewrite]) -> Result<(), RewriteError> {
    for (index, op) in ops.iter().enumerate() {
        if let Some(re) = &op.regexp {
            GoRegex::new(&re.source)
                .map_err(|source| RewriteError::CompileRegexp { index, source })?;
        }
        if let Some(t) = &op.transform {
            crate::template::parsed(&t.template, "rewrite.transform").map_err(|source| {
                RewriteError::Transform {
                    index,
                    key: String::new(),
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// Apply `ops` in order; each one's output is the next one's input (ESO's `RewriteMap`). An
/// operation with none of merge, regexp and transform changes nothing, as in ESO.
pub fn apply(ops: &[ExternalSecretRewrite], mut keys: Keys) -> Result<Keys, RewriteError> {
    for (index, op) in ops.iter().enumerate() {
        keys = if let Some(merge) = &op.merge {
            apply_merge(index, merge, keys)?
        } else if let Some(re) = &op.regexp {
            let compiled = GoRegex::new(&re.source)
                .map_err(|source| RewriteError::CompileRegexp { index, source })?;
            rename(index, keys, |key| Ok(compiled.replace_all(key, &re.target)))?
        } else if let Some(t) = &op.transform {
            rename(index, keys, |key| {
                let data: BTreeMap<String, SecretBytes> =
                    [("value".to_owned(), SecretBytes::from_str_value(key))].into();
                let out = crate::template::render(&t.template, "rewrite.transform", &data)
                    .map_err(|source| RewriteError::Transform {
                        index,
                        key: key.to_owned(),
                        source,
                    })?;
                out.expose_str()
                    .map(str::to_owned)
                    .ok_or_else(|| RewriteError::TransformNotText {
                        index,
                        key: key.to_owned(),
                    })
            })?
        } else {
            keys
        };
    }
    Ok(keys)
}

fn rename(
    index: usize,
    keys: Keys,
    mut f: impl FnMut(&str) -> Result<String, RewriteError>,
) -> Result<Keys, RewriteError> {
    let mut out = Keys::new();
    for (key, value) in keys {
        let new = f(&key)?;
        if new.is_empty() {
            return Err(RewriteError::EmptyKey { index, key });
        }
        if out.contains_key(&new) {
            return Err(RewriteError::Collision { index, key: new });
        }
        out.insert(new, value);
    }
    Ok(out)
}

/// ESO's `RewriteMerge`: every value read as a JSON object, merged in key byte order with the
/// `priority` keys last (in their order, so later wins); a key seen twice is a conflict (an error
/// unless `conflictPolicy: Ignore`). Strategy Extract makes each merged entry a key (strings as they
/// are, numbers as Go's `FormatFloat(f, 'f', -1)`, objects and arrays as `json.Marshal`, `null`
/// empty); strategy JSON keeps the keys and puts the merged object, as JSON, in `into`.
fn apply_merge(index: usize, merge: &RewriteMerge, keys: Keys) -> Result<Keys, RewriteError> {
    let mut order: Vec<&String> = keys
        .keys()
        .filter(|k| !merge.priority.contains(k))
        .collect();
    order.extend(merge.priority.iter());
    let mut merged = serde_json::Map::new();
    let mut conflicts = Vec::new();
    for key in order {
        let Some(value) = keys.get(key) else {
            if merge.priority_policy == Some(MergePriorityPolicy::IgnoreNotFound) {
                continue;
            }
            return Err(RewriteError::MergePriorityNotFound {
                index,
                key: key.clone(),
            });
        };
        let not_json = || RewriteError::MergeNotJson {
            index,
            key: key.clone(),
        };
        // Go's json.Unmarshal into a map accepts `null` as an empty map.
        let object: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(value.expose()).map_err(|_| not_json())?;
        for (k, v) in object.unwrap_or_default() {
            if merged.contains_key(&k) {
                conflicts.push(k.clone());
            }
            merged.insert(k, v);
        }
    }
    if merge.conflict_policy != Some(MergeConflictPolicy::Ignore) && !conflicts.is_empty() {
        return Err(RewriteError::MergeConflict {
            index,
            keys: conflicts.join(", "),
        });
    }
    let encode_error = || RewriteError::MergeEncode { index };
    match merge.strategy.unwrap_or_default() {
        MergeStrategy::Extract => {
            let mut out = Keys::new();
            for (k, v) in merged {
                let bytes = match v {
                    serde_json::Value::String(s) => s.into_bytes(),
                    serde_json::Value::Null => Vec::new(),
                    serde_json::Value::Bool(b) => b.to_string().into_bytes(),
                    serde_json::Value::Number(n) => {
                        crate::template::go_format_float(n.as_f64().unwrap_or(0.0)).into_bytes()
                    }
                    other => {
                        crate::template::go_json_marshal(&other, true).ok_or_else(encode_error)?
                    }
                };
                out.insert(k, SecretBytes::new(bytes));
            }
            Ok(out)
        }
        MergeStrategy::Json => {
            if merge.into.is_empty() {
                return Err(RewriteError::MergeWithoutInto { index });
            }
            let json = crate::template::go_json_marshal(&serde_json::Value::Object(merged), false)
                .ok_or_else(encode_error)?;
            let mut out = keys;
            out.insert(merge.into.clone(), SecretBytes::new(json));
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ops(yaml: &str) -> Vec<ExternalSecretRewrite> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn keys(pairs: &[(&str, &str)]) -> Keys {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from_str_value(v)))
            .collect()
    }

    fn text(k: &Keys) -> Vec<(String, String)> {
        k.iter()
            .map(|(k, v)| (k.clone(), v.expose_str().unwrap().to_owned()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn operations_apply_in_order_each_on_the_previous_output() {
        let got = apply(
            &ops(r#"
- regexp: {source: "path/to/my/secrets/(.*)", target: "$1"}
- transform: {template: 'ENV_{{ .value | upper | replace "-" "_" }}'}
"#),
            keys(&[
                ("path/to/my/secrets/db-user", "u"),
                ("path/to/my/secrets/db-pass", "p"),
            ]),
        )
        .unwrap();
        assert_eq!(
            text(&got),
            pairs(&[("ENV_DB_PASS", "p"), ("ENV_DB_USER", "u")])
        );
    }

    #[test]
    fn keys_that_do_not_match_are_kept_and_empty_or_colliding_results_are_errors() {
        let rule = ops(r#"[{regexp: {source: "^dev-", target: ""}}]"#);
        let got = apply(&rule, keys(&[("dev-a", "1"), ("b", "2")])).unwrap();
        assert_eq!(text(&got), pairs(&[("a", "1"), ("b", "2")]));
        let err = apply(&rule, keys(&[("dev-", "1")])).unwrap_err();
        assert_eq!(
            err,
            RewriteError::EmptyKey {
                index: 0,
                key: "dev-".into()
            }
        );
        let err = apply(&rule, keys(&[("dev-a", "1"), ("a", "2")])).unwrap_err();
        assert_eq!(err.category(), "InvalidSecretKey");
        assert!(!err.to_string().contains('1') && !err.to_string().contains('2'));
    }

    #[test]
    fn merge_extract_hoists_every_value_in_key_order_with_priority_last() {
        let got = apply(
            &ops("[{merge: {conflictPolicy: Ignore, priority: [a]}}]"),
            keys(&[
                ("a", r#"{"x":"from-a","n":1e21}"#),
                (
                    "b",
                    r#"{"x":"from-b","obj":{"z":1,"a":"<&>"},"t":true,"nil":null,"f":0.0000001}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            text(&got),
            pairs(&[
                ("f", "0.0000001"),
                ("n", "1000000000000000000000"),
                ("nil", ""),
                ("obj", r#"{"a":"\u003c\u0026\u003e","z":1}"#),
                ("t", "true"),
                ("x", "from-a"),
            ])
        );
    }

    #[test]
    fn merge_conflicts_missing_priorities_and_non_json_are_errors() {
        let two = keys(&[("a", r#"{"x":1}"#), ("b", r#"{"x":2}"#)]);
        let err = apply(&ops("[{merge: {}}]"), two.clone()).unwrap_err();
        assert_eq!(
            err,
            RewriteError::MergeConflict {
                index: 0,
                keys: "x".into()
            }
        );
        let err = apply(
            &ops("[{merge: {priority: [zz], conflictPolicy: Ignore}}]"),
            two.clone(),
        )
        .unwrap_err();
        assert_eq!(err.category(), "RewriteFailed");
        let ok = apply(
            &ops("[{merge: {priority: [zz], priorityPolicy: IgnoreNotFound, conflictPolicy: Ignore}}]"),
            two,
        )
        .unwrap();
        assert_eq!(text(&ok), pairs(&[("x", "2")]));
        let err = apply(&ops("[{merge: {}}]"), keys(&[("a", "not json")])).unwrap_err();
        assert_eq!(err.category(), "InvalidJSON");
        let null = apply(&ops("[{merge: {}}]"), keys(&[("a", "null")])).unwrap();
        assert!(null.is_empty(), "null is an empty object to Go");
    }

    #[test]
    fn merge_json_keeps_the_keys_and_adds_the_merged_object_without_html_escaping() {
        let got = apply(
            &ops("[{merge: {strategy: JSON, into: all}}]"),
            keys(&[("a", r#"{"u":"<x>","n":1.50}"#), ("b", r#"{"p":[1,"y"]}"#)]),
        )
        .unwrap();
        assert_eq!(
            text(&got)[1],
            (
                "all".to_string(),
                r#"{"n":1.5,"p":[1,"y"],"u":"<x>"}"#.to_string()
            )
        );
        assert_eq!(got.len(), 3);
        let err = apply(&ops("[{merge: {strategy: JSON}}]"), keys(&[("a", "{}")])).unwrap_err();
        assert_eq!(err, RewriteError::MergeWithoutInto { index: 0 });
    }

    #[test]
    fn bad_regexps_and_templates_fail_validation_before_any_fetch() {
        assert_eq!(
            validate(&ops(r#"[{regexp: {source: "(", target: x}}]"#))
                .unwrap_err()
                .category(),
            "InvalidSpec"
        );
        assert!(validate(&ops(r#"[{transform: {template: "{{ .value "}}]"#)).is_err());
        assert!(
            validate(&ops(
                r#"[{transform: {template: "{{ .value }}"}}, {regexp: {source: a, target: b}}]"#
            ))
            .is_ok()
        );
    }
}
