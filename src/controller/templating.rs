//! Templating step (pure): ESO's `target.template` (engine v2) applied to the fetched data, as ESO's
//! controller applies it (ExternalSecret API reference, "ExternalSecretTemplate"; guide "Advanced
//! Templating v2"): `type`, `metadata.labels`/`annotations` (templated), `data`, `mergePolicy`, and
//! `templateFrom` (`configMap`/`secret` items with `templateAs` Values or KeysAndValues, `literal`,
//! `target` Data/Annotations/Labels). The order and precedence follow ESO: with mergePolicy Merge the
//! fetched data first, then every `templateFrom` entry in order, then `template.data`, then labels and
//! annotations. Without `template.data` and `templateFrom`, the data is the fetched data.
//!
//! The templates themselves run in `crate::template` (Go text/template + sprig). ConfigMaps and
//! Secrets named by `templateFrom` are read by the caller and handed in as `Sources`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::provider::SecretBytes;
use crate::template::{self, TemplateError};

/// `spec.target.template`, typed. The CRD keeps the field open so every ESO manifest applies; it is
/// read here, and a shape that does not parse is an error in status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    #[serde(default)]
    pub engine_version: Option<String>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub metadata: TemplateMetadata,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub merge_policy: Option<MergePolicy>,
    #[serde(default)]
    pub template_from: Vec<TemplateFrom>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TemplateMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum MergePolicy {
    Replace,
    Merge,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    #[serde(default)]
    pub config_map: Option<TemplateRef>,
    #[serde(default)]
    pub secret: Option<TemplateRef>,
    #[serde(default)]
    pub literal: Option<String>,
    #[serde(default)]
    pub target: Option<Target>,
    /// Decodes each value this entry renders (ESO's `valuesDecodingStrategy`, applied after rendering).
    #[serde(default)]
    pub values_decoding_strategy: Option<crate::api::DecodingStrategy>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    pub items: Vec<TemplateRefItem>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    pub key: String,
    #[serde(default)]
    pub template_as: Option<TemplateScope>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum TemplateScope {
    Values,
    KeysAndValues,
}

/// Where a `templateFrom` entry writes (ESO spells the values capitalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Target {
    Data,
    Annotations,
    Labels,
}

/// Why the template could not be applied. Names keys and sources, never values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplatingError {
    #[error("spec.target.template is not a valid template: {0}")]
    ParseSpec(String),
    #[error(
        "template engineVersion {0:?} is not supported; secret-sync implements engine v2 (the default)"
    )]
    EngineVersion(String),
    #[error(transparent)]
    Render(#[from] TemplateError),
    #[error("templateFrom {kind} {name:?} does not exist")]
    SourceMissing { kind: &'static str, name: String },
    #[error("templateFrom {kind} {name:?} has no key {key:?}")]
    SourceKeyMissing {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error(
        "template {name:?} must render a YAML map of strings (templateAs KeysAndValues / literal): {detail}"
    )]
    NotAMap { name: String, detail: String },
    #[error("the rendered {target} key {key:?} is not valid")]
    InvalidKey { target: &'static str, key: String },
    #[error("the rendered value of key {key:?} is not valid {strategy} (valuesDecodingStrategy)")]
    DecodeValue { key: String, strategy: &'static str },
}

impl TemplatingError {
    pub fn category(&self) -> &'static str {
        match self {
            TemplatingError::ParseSpec(_) | TemplatingError::EngineVersion(_) => "InvalidSpec",
            TemplatingError::Render(e) => e.category(),
            TemplatingError::SourceMissing { .. } | TemplatingError::SourceKeyMissing { .. } => {
                "TemplateSourceMissing"
            }
            TemplatingError::NotAMap { .. } | TemplatingError::InvalidKey { .. } => {
                "TemplateExecute"
            }
            TemplatingError::DecodeValue { .. } => "DecodeFailed",
        }
    }
}

impl TemplateSpec {
    /// The typed template of a spec, None without one.
    pub fn of(
        spec: &crate::api::ExternalSecretSpec,
    ) -> Result<Option<TemplateSpec>, TemplatingError> {
        let Some(raw) = &spec.target.template else {
            return Ok(None);
        };
        let parsed: TemplateSpec = serde_json::from_value(raw.clone())
            .map_err(|e| TemplatingError::ParseSpec(e.to_string()))?;
        match parsed.engine_version.as_deref() {
            None | Some("") | Some("v2") => Ok(Some(parsed)),
            Some(other) => Err(TemplatingError::EngineVersion(other.to_owned())),
        }
    }

    /// The ConfigMaps and Secrets this template reads, in `templateFrom` order.
    pub fn sources(&self) -> impl Iterator<Item = (SourceKind, &str)> {
        self.template_from.iter().flat_map(|t| {
            t.config_map
                .iter()
                .map(|r| (SourceKind::ConfigMap, r.name.as_str()))
                .chain(
                    t.secret
                        .iter()
                        .map(|r| (SourceKind::Secret, r.name.as_str())),
                )
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

/// The data of the ConfigMaps and Secrets named by `templateFrom` (None: it does not exist).
pub type Sources = BTreeMap<(SourceKind, String), Option<BTreeMap<String, SecretBytes>>>;

/// What the template produced.
#[derive(Debug, Default, PartialEq)]
pub struct Rendered {
    pub data: BTreeMap<String, SecretBytes>,
    pub type_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Apply `tpl` to the fetched `data` (keys as ESO keys them: `data[].secretKey` and `dataFrom` keys).
pub fn apply(
    tpl: &TemplateSpec,
    data: &BTreeMap<String, SecretBytes>,
    sources: &Sources,
) -> Result<Rendered, TemplatingError> {
    let mut out = Rendered {
        type_: tpl.type_.clone().filter(|t| !t.is_empty()),
        // Untemplated first (ESO merges the raw maps, then overwrites them with rendered values).
        ..Rendered::default()
    };
    if tpl.merge_policy == Some(MergePolicy::Merge) {
        out.data = data.clone();
    }
    for from in &tpl.template_from {
        let target = from.target.unwrap_or(Target::Data);
        let decoding = from.values_decoding_strategy.unwrap_or_default();
        for (kind, reference) in [
            (SourceKind::ConfigMap, from.config_map.as_ref()),
            (SourceKind::Secret, from.secret.as_ref()),
        ] {
            let Some(reference) = reference else { continue };
            let source = sources
                .get(&(kind, reference.name.clone()))
                .and_then(Option::as_ref)
                .ok_or_else(|| TemplatingError::SourceMissing {
                    kind: kind.as_str(),
                    name: reference.name.clone(),
                })?;
            for item in &reference.items {
                let text =
                    source
                        .get(&item.key)
                        .ok_or_else(|| TemplatingError::SourceKeyMissing {
                            kind: kind.as_str(),
                            name: reference.name.clone(),
                            key: item.key.clone(),
                        })?;
                let text = String::from_utf8_lossy(text.expose()).into_owned();
                match item.template_as.unwrap_or(TemplateScope::Values) {
                    TemplateScope::Values => {
                        let value = template::render(&text, &item.key, data)?;
                        let value = decode_value(decoding, &item.key, value)?;
                        set(&mut out, target, item.key.clone(), value)?;
                    }
                    TemplateScope::KeysAndValues => {
                        keys_and_values(&mut out, target, &text, &item.key, data, decoding)?
                    }
                }
            }
        }
        if let Some(literal) = &from.literal {
            keys_and_values(&mut out, target, literal, literal, data, decoding)?;
        }
    }
    for (key, text) in &tpl.data {
        let value = template::render(text, key, data)?;
        set(&mut out, Target::Data, key.clone(), value)?;
    }
    for (target, map) in [
        (Target::Labels, &tpl.metadata.labels),
        (Target::Annotations, &tpl.metadata.annotations),
    ] {
        for (key, text) in map {
            let value = template::render(text, key, data)?;
            set(&mut out, target, key.clone(), value)?;
        }
    }
    if tpl.data.is_empty() && tpl.template_from.is_empty() {
        out.data = data.clone();
    }
    Ok(out)
}

/// Render `text` and read it as a YAML map of strings, each pair going to `target` (ESO's
/// KeysAndValues scope and `literal`).
fn keys_and_values(
    out: &mut Rendered,
    target: Target,
    text: &str,
    name: &str,
    data: &BTreeMap<String, SecretBytes>,
    decoding: crate::api::DecodingStrategy,
) -> Result<(), TemplatingError> {
    let rendered = template::render(text, name, data)?;
    let not_a_map = |detail: String| TemplatingError::NotAMap {
        name: short(name),
        detail,
    };
    let parsed: BTreeMap<String, String> = match std::str::from_utf8(rendered.expose()) {
        // An empty document is an empty map (Go's yaml.Unmarshal leaves the map empty).
        Ok(t) if t.trim().is_empty() => BTreeMap::new(),
        // The YAML error names a line and column, never the content.
        Ok(t) => serde_yaml_ng::from_str(t).map_err(|e| {
            not_a_map(e.location().map_or("not a map of strings".to_owned(), |l| {
                format!("line {} column {}", l.line(), l.column())
            }))
        })?,
        Err(_) => return Err(not_a_map("not UTF-8".to_owned())),
    };
    for (k, v) in parsed {
        let value = decode_value(decoding, &k, SecretBytes::from(v))?;
        set(out, target, k, value)?;
    }
    Ok(())
}

/// ESO's `templateFrom[].valuesDecodingStrategy`: the rendered value decoded as the strategy says.
fn decode_value(
    strategy: crate::api::DecodingStrategy,
    key: &str,
    value: SecretBytes,
) -> Result<SecretBytes, TemplatingError> {
    super::values::decode(strategy, value).map_err(|_| TemplatingError::DecodeValue {
        key: key.to_owned(),
        strategy: match strategy {
            crate::api::DecodingStrategy::Base64Url => "Base64URL",
            _ => "Base64",
        },
    })
}

fn set(
    out: &mut Rendered,
    target: Target,
    key: String,
    value: SecretBytes,
) -> Result<(), TemplatingError> {
    match target {
        Target::Data => {
            out.data.insert(key, value);
        }
        // Labels and annotations are metadata, visible to anyone who can list Secrets: only what the
        // template author chose to put there, as text.
        Target::Labels => {
            out.labels
                .insert(key, String::from_utf8_lossy(value.expose()).into_owned());
        }
        Target::Annotations => {
            out.annotations
                .insert(key, String::from_utf8_lossy(value.expose()).into_owned());
        }
    }
    Ok(())
}

/// A literal template is its own name in ESO; keep error messages short.
fn short(name: &str) -> String {
    let first_line = name.lines().next().unwrap_or_default();
    let mut s: String = first_line.chars().take(40).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from_str_value(v)))
            .collect()
    }

    fn tpl(yaml: &str) -> TemplateSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn text(m: &BTreeMap<String, SecretBytes>) -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn template_data_replaces_the_fetched_data_by_default() {
        let t = tpl(
            "type: kubernetes.io/basic-auth\ndata:\n  url: 'postgres://{{ .user }}:{{ .password }}@db'\n",
        );
        let out = apply(
            &t,
            &data(&[("user", "u"), ("password", "p")]),
            &Sources::new(),
        )
        .unwrap();
        assert_eq!(
            text(&out.data),
            BTreeMap::from([("url".into(), "postgres://u:p@db".into())])
        );
        assert_eq!(out.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    }

    #[test]
    fn values_decoding_strategy_decodes_each_rendered_value_of_its_entry() {
        let t = tpl(
            "templateFrom:\n- valuesDecodingStrategy: Base64\n  literal: 'a: {{ (.a | fromJson).cert }}'\n- literal: 'raw: {{ .b }}'\n",
        );
        let out = apply(
            &t,
            &data(&[("a", r#"{"cert":"Q0VSVA=="}"#), ("b", "Q0VSVA==")]),
            &Sources::new(),
        )
        .unwrap();
        assert_eq!(
            text(&out.data),
            BTreeMap::from([
                ("a".into(), "CERT".into()),
                ("raw".into(), "Q0VSVA==".into())
            ])
        );
        let bad = tpl("templateFrom:\n- valuesDecodingStrategy: Base64\n  literal: 'k: \"%%\"'\n");
        let err = apply(&bad, &data(&[]), &Sources::new()).unwrap_err();
        assert_eq!(err.category(), "DecodeFailed");
    }

    #[test]
    fn merge_policy_merge_keeps_the_fetched_keys_and_template_keys_win() {
        let t = tpl("mergePolicy: Merge\ndata:\n  user: '{{ .user | upper }}'\n");
        let out = apply(
            &t,
            &data(&[("user", "u"), ("password", "p")]),
            &Sources::new(),
        )
        .unwrap();
        assert_eq!(
            text(&out.data),
            BTreeMap::from([("user".into(), "U".into()), ("password".into(), "p".into())])
        );
    }

    #[test]
    fn metadata_only_templates_keep_the_fetched_data_and_template_labels() {
        let t =
            tpl("metadata:\n  labels: {team: '{{ .team }}', fixed: x}\n  annotations: {a: b}\n");
        let out = apply(&t, &data(&[("team", "blue")]), &Sources::new()).unwrap();
        assert_eq!(
            text(&out.data),
            BTreeMap::from([("team".into(), "blue".into())])
        );
        assert_eq!(
            out.labels,
            BTreeMap::from([("team".into(), "blue".into()), ("fixed".into(), "x".into())])
        );
        assert_eq!(out.annotations, BTreeMap::from([("a".into(), "b".into())]));
    }

    #[test]
    fn template_from_literal_and_config_map_fill_their_targets_in_order() {
        let t = tpl(
            "templateFrom:\n- literal: \"a: '{{ .x }}'\\nb: two\"\n- target: Labels\n  literal: \"team: '{{ .x }}'\"\n- configMap:\n    name: cm\n    items:\n    - {key: config.yaml, templateAs: Values}\n    - {key: pairs, templateAs: KeysAndValues}\ndata:\n  b: 'from data'\n",
        );
        let mut sources = Sources::new();
        sources.insert(
            (SourceKind::ConfigMap, "cm".into()),
            Some(data(&[
                ("config.yaml", "x={{ .x }}"),
                ("pairs", "c: '{{ .x }}{{ .x }}'"),
            ])),
        );
        let out = apply(&t, &data(&[("x", "1")]), &sources).unwrap();
        assert_eq!(
            text(&out.data),
            BTreeMap::from([
                ("a".into(), "1".into()),
                ("b".into(), "from data".into()),
                ("c".into(), "11".into()),
                ("config.yaml".into(), "x=1".into()),
            ]),
            "template.data wins over templateFrom"
        );
        assert_eq!(out.labels, BTreeMap::from([("team".into(), "1".into())]));
    }

    #[test]
    fn missing_sources_keys_and_unknown_engines_are_clear_errors() {
        let t = tpl("templateFrom:\n- configMap: {name: cm, items: [{key: k}]}\n");
        assert_eq!(
            apply(&t, &data(&[]), &Sources::new())
                .unwrap_err()
                .to_string(),
            "templateFrom ConfigMap \"cm\" does not exist"
        );
        let mut sources = Sources::new();
        sources.insert((SourceKind::ConfigMap, "cm".into()), Some(data(&[])));
        assert_eq!(
            apply(&t, &data(&[]), &sources).unwrap_err().to_string(),
            "templateFrom ConfigMap \"cm\" has no key \"k\""
        );
        let spec: crate::api::ExternalSecretSpec =
            serde_yaml_ng::from_str("target: {template: {engineVersion: v1}}").unwrap();
        assert!(
            matches!(TemplateSpec::of(&spec), Err(TemplatingError::EngineVersion(v)) if v == "v1")
        );
    }

    #[test]
    fn a_missing_key_fails_naming_the_template_key_not_the_data() {
        let t = tpl("data:\n  url: '{{ .nope }}'\n");
        let err = apply(&t, &data(&[("user", "SECRET-VALUE")]), &Sources::new()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"url\""), "{message}");
        assert!(!message.contains("SECRET-VALUE"), "{message}");
    }
}
