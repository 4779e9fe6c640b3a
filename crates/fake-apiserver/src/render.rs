// Owns response shapes negotiated through Accept: plain JSON, meta.k8s.io Table (kubectl get) and
// PartialObjectMetadata (metadata-only clients such as kube-runtime's `.owns()`), single and list.
// Must not read the store or decide which objects are returned.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ops::meta_str;
use crate::resources::ResourceDef;

#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    /// `as=Table`, with the meta.k8s.io version asked for and the `includeObject` policy.
    Table {
        api_version: &'static str,
        include: String,
    },
    PartialMetadata,
}

/// Picks the first representation of the Accept header that this server can produce.
pub fn negotiate(accept: &str, include_object: Option<&str>) -> Format {
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let mut r#as = "";
        let mut g = "";
        let mut v = "";
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => r#as = val.trim(),
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    _ => {}
                }
            }
        }
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        match (r#as, g) {
            ("", _) => return Format::Json,
            ("Table", "meta.k8s.io") => {
                let api_version = if v == "v1beta1" {
                    "meta.k8s.io/v1beta1"
                } else {
                    "meta.k8s.io/v1"
                };
                return Format::Table {
                    api_version,
                    include: include_object
                        .unwrap_or("PartialObjectMetadata")
                        .to_string(),
                };
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io") => {
                return Format::PartialMetadata;
            }
            // Aggregated discovery and anything else unknown: fall through to the next choice.
            _ => continue,
        }
    }
    Format::Json
}

fn partial(obj: &Value, api_version: &str) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

/// Human age as kubectl prints it ("45s", "3m", "5h", "2d").
pub fn age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Evaluates the simple JSONPaths used by additionalPrinterColumns (`.status.conditions[?(@.type=="Ready")].status`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path.trim().trim_start_matches('.');
    while !rest.is_empty() {
        let (seg, tail) = match rest.find(['.', '[']) {
            Some(0) => ("", rest),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !seg.is_empty() {
            cur = cur.get(seg)?;
        }
        rest = tail;
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = &after[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|e| e.get(field.trim()).and_then(Value::as_str) == Some(want))?;
            } else {
                cur = cur.get(inner.parse::<usize>().ok()?)?;
            }
        }
        rest = rest.trim_start_matches('.');
    }
    Some(cur)
}

fn columns(def: &ResourceDef, version: &str) -> (Vec<Value>, Vec<(String, String)>) {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let mut paths = Vec::new();
    match def.printer_columns.get(version) {
        Some(cols) if !cols.is_empty() => {
            for c in cols {
                let s = |k: &str| {
                    c.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                defs.push(json!({"name": s("name"), "type": s("type"), "format": s("format"), "description": s("description"), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
                paths.push((s("jsonPath"), s("type")));
            }
        }
        _ => {
            defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
            paths.push((".metadata.creationTimestamp".into(), "date".into()));
        }
    }
    (defs, paths)
}

fn row(obj: &Value, paths: &[(String, String)], include: &str) -> Value {
    let mut cells = vec![json!(meta_str(obj, "name"))];
    for (path, ty) in paths {
        let v = json_path(obj, path);
        cells.push(match (v, ty.as_str()) {
            (Some(Value::String(s)), "date") => json!(age(s)),
            (Some(v), _) => v.clone(),
            (None, _) => json!("<none>"),
        });
    }
    let mut r = json!({"cells": cells});
    let object = match include {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(partial(obj, "meta.k8s.io/v1")),
    };
    if let (Some(o), Some(m)) = (object, r.as_object_mut()) {
        m.insert("object".into(), o);
    }
    r
}

/// A Table of `objects` (one row each).
pub fn table(
    def: &ResourceDef,
    version: &str,
    objects: &[Arc<Value>],
    rv: &str,
    format_api_version: &str,
    include: &str,
) -> Value {
    let (defs, paths) = columns(def, version);
    let rows: Vec<Value> = objects.iter().map(|o| row(o, &paths, include)).collect();
    json!({"kind": "Table", "apiVersion": format_api_version, "metadata": {"resourceVersion": rv}, "columnDefinitions": defs, "rows": rows})
}

/// One object in the negotiated format (GET, write responses, watch events).
pub fn object(format: &Format, def: &ResourceDef, version: &str, obj: &Arc<Value>) -> Value {
    match format {
        Format::Json => (**obj).clone(),
        Format::PartialMetadata => partial(obj, "meta.k8s.io/v1"),
        Format::Table {
            api_version,
            include,
        } => table(
            def,
            version,
            std::slice::from_ref(obj),
            meta_str(obj, "resourceVersion"),
            api_version,
            include,
        ),
    }
}

/// Serialises a list response directly into bytes, item by item, so large lists stay cheap.
pub fn list(
    format: &Format,
    def: &ResourceDef,
    version: &str,
    items: &[Arc<Value>],
    metadata: Value,
) -> Vec<u8> {
    let api_version = def.api_version(version);
    if let Format::Table {
        api_version: tav,
        include,
    } = format
    {
        let rv = metadata
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut t = table(def, version, items, &rv, tav, include);
        if let Some(m) = t.as_object_mut() {
            m.insert("metadata".into(), metadata);
        }
        return serde_json::to_vec(&t).unwrap_or_default();
    }
    let (kind, av) = match format {
        Format::PartialMetadata => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
        _ => (def.list_kind.clone(), api_version.clone()),
    };
    let mut out = Vec::with_capacity(64 + items.len() * 512);
    out.extend_from_slice(br#"{"kind":"#);
    out.extend_from_slice(json!(kind).to_string().as_bytes());
    out.extend_from_slice(br#","apiVersion":"#);
    out.extend_from_slice(json!(av).to_string().as_bytes());
    out.extend_from_slice(br#","metadata":"#);
    out.extend_from_slice(metadata.to_string().as_bytes());
    out.extend_from_slice(br#","items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match format {
            Format::PartialMetadata => {
                serde_json::to_writer(&mut out, &partial(item, "meta.k8s.io/v1"))
            }
            _ => serde_json::to_writer(&mut out, &**item),
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_header_negotiates_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(matches!(
            negotiate(accept, None),
            Format::Table {
                api_version: "meta.k8s.io/v1",
                ..
            }
        ));
        let discovery =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(discovery, None), Format::Json);
    }

    #[test]
    fn json_path_supports_condition_filters() {
        let obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&obj, ".status.conditions[0].type"),
            Some(&json!("A"))
        );
    }
}
