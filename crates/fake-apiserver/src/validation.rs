// Owns object validation: DNS names, and custom resources against the CRD's openAPIV3Schema
// (types, required, enum, bounds, int-or-string) plus pruning of undeclared fields.
// Must not evaluate CEL (`x-kubernetes-validations`) and must not touch the store.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::status::Cause;

static DNS_SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});
static DNS_LABEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").ok());

/// Validates metadata.name: namespaces are DNS labels, everything else DNS subdomains.
pub fn validate_name(name: &str, label: bool) -> Option<Cause> {
    if name.is_empty() {
        return Some(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    let (re, max, what) = if label {
        (
            &*DNS_LABEL,
            63,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            &*DNS_SUBDOMAIN,
            253,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    let ok = name.len() <= max && re.as_ref().is_some_and(|r| r.is_match(name));
    (!ok).then(|| {
        Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {what}"),
        )
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Validates `value` against a structural schema, collecting causes with real-apiserver wording.
pub fn validate(value: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let bool_of = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
    if value.is_null() {
        if !bool_of("nullable") && schema.get("type").is_some() {
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if bool_of("x-kubernetes-int-or-string") {
        if !matches!(type_name(value), "integer" | "string") {
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer-or-string: {:?}",
                    short(value),
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(value);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(short).collect();
        out.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                short(value),
                list.join(", ")
            ),
        ));
    }
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(x) = value.as_f64() {
        if let Some(min) = num("minimum").filter(|m| x < *m) {
            out.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {x}: {path} in body should be greater than or equal to {min}"
                ),
            ));
        }
        if let Some(max) = num("maximum").filter(|m| x > *m) {
            out.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {x}: {path} in body should be less than or equal to {max}"),
            ));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as f64;
        if let Some(min) = num("minLength").filter(|m| len < *m) {
            out.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: \"{s}\": {path} in body should be at least {min} chars long"
                ),
            ));
        }
        if let Some(max) = num("maxLength").filter(|m| len > *m) {
            out.push(Cause::new(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = Regex::new(p)
            && !re.is_match(s)
        {
            out.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: \"{s}\": {path} in body should match '{p}'"),
            ));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as f64;
        if let Some(min) = num("minItems").filter(|m| len < *m) {
            out.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {len}: {path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = num("maxItems").filter(|m| len > *m) {
            out.push(Cause::new(
                "FieldValueTooMany",
                path,
                format!("Too many: {len}: must have at most {max} items"),
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item, item_schema, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Some(obj) = value.as_object() {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    out.push(Cause::new(
                        "FieldValueRequired",
                        join(path, r),
                        "Required value",
                    ));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (k, v) in obj {
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                validate(v, s, &join(path, k), out);
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes fields the schema does not declare (unless preserved); returns the pruned paths.
pub fn prune(value: &mut Value, schema: &Value, path: &str, pruned: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    match value {
        Value::Object(obj) => prune_object(obj, schema, path, pruned),
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, s, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    obj: &mut Map<String, Value>,
    schema: &Value,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema
        .get("additionalProperties")
        .filter(|a| a.is_object() || a.as_bool() == Some(true));
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child = props.and_then(|p| p.get(&k)).or(additional);
        match child {
            Some(s) => {
                if let Some(v) = obj.get_mut(&k)
                    && s.is_object()
                {
                    prune(v, s, &join(path, &k), pruned);
                }
            }
            None if preserve => {}
            None => {
                obj.remove(&k);
                pruned.push(join(path, &k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prune_keeps_declared_and_preserved_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}, "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
        }});
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": "1", "b": 2, "free": {"z": 1}}, "extra": 1});
        let mut pruned = Vec::new();
        prune(&mut v, &schema, "", &mut pruned);
        assert_eq!(
            v,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": "1", "free": {"z": 1}}})
        );
        assert_eq!(pruned, vec!["extra".to_string(), "spec.b".to_string()]);
    }
}
