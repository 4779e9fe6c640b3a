// Owns the three non-apply patch formats: JSON merge patch, JSON patch and strategic merge patch.
// Must not know about resourceVersions, status or storage: it maps (object, patch) to a new object.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// RFC 6902 JSON patch.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| e.to_string())?;
    Ok(doc)
}

/// Merge key of a list field in built-in kinds (the `patchMergeKey` tags of k8s.io/api).
/// Lists without one are replaced atomically, as the real strategic merge does.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge on containerPort, Service ports on port.
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Primitive lists whose patch strategy is "merge" (union) instead of replace.
fn is_merge_primitive_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for built-in kinds, including the `$patch`, `$retainKeys`,
/// `$setElementOrder/` and `$deleteFromPrimitiveList/` directives that `kubectl apply` sends.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, String> {
    let (Some(orig), Some(p)) = (original.as_object(), patch.as_object()) else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    Ok(match merge_map(orig.clone(), p)? {
        Some(m) => Value::Object(m),
        None => Value::Object(Map::new()),
    })
}

/// Returns None when the patch says `$patch: delete` for this map.
fn merge_map(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut replaced = strip(&Value::Object(patch.clone()));
            if let Some(m) = replaced.as_object_mut() {
                m.remove("$patch");
                return Ok(Some(std::mem::take(m)));
            }
        }
        Some(other) if other != "merge" => return Err(format!("unknown patch type: {other}")),
        _ => {}
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((
                field.to_string(),
                pv.as_array().cloned().unwrap_or_default(),
            ));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        match pv {
            Value::Null => {
                orig.remove(key);
            }
            Value::Object(pm) => match orig.remove(key) {
                Some(Value::Object(om)) => {
                    if let Some(merged) = merge_map(om, pm)? {
                        orig.insert(key.clone(), Value::Object(merged));
                    }
                }
                _ => {
                    if pm.get("$patch").and_then(Value::as_str) != Some("delete") {
                        let mut v = strip(pv);
                        if let Some(m) = v.as_object_mut() {
                            m.remove("$patch");
                        }
                        orig.insert(key.clone(), v);
                    }
                }
            },
            Value::Array(items) => {
                let merged = merge_list(key, orig.remove(key), items)?;
                orig.insert(key.clone(), merged);
            }
            other => {
                orig.insert(key.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = orig.get_mut(&field) {
            reorder(&field, list, &order);
        }
    }
    Ok(Some(orig))
}

fn merge_list(field: &str, orig: Option<Value>, patch: &[Value]) -> Result<Value, String> {
    let orig_items = match orig {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    if patch.iter().all(Value::is_object)
        && !patch.is_empty()
        && let Some(key) = merge_key(field, patch)
    {
        if patch
            .iter()
            .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
        {
            return Ok(Value::Array(
                patch
                    .iter()
                    .filter(|p| p.get("$patch").is_none())
                    .map(strip)
                    .collect(),
            ));
        }
        let mut out = orig_items;
        for p in patch {
            let Some(pm) = p.as_object() else { continue };
            let id = pm.get(key);
            let pos = out.iter().position(|o| id.is_some() && o.get(key) == id);
            if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                if let Some(i) = pos {
                    out.remove(i);
                }
                continue;
            }
            match pos {
                Some(i) => {
                    let current = out[i].as_object().cloned().unwrap_or_default();
                    match merge_map(current, pm)? {
                        Some(m) => out[i] = Value::Object(m),
                        None => {
                            out.remove(i);
                        }
                    }
                }
                None => out.push(strip(p)),
            }
        }
        return Ok(Value::Array(out));
    }
    if is_merge_primitive_list(field) {
        let mut out = orig_items;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    Ok(Value::Array(patch.iter().map(strip).collect()))
}

/// Orders `list` as `$setElementOrder` says; elements it does not mention keep their relative order at the end.
fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let key = merge_key(field, order);
    let same = |a: &Value, b: &Value| match key {
        Some(k) if a.is_object() => a.get(k) == b.get(k),
        _ => a == b,
    };
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(i) = rest.iter().position(|x| same(o, x)) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

/// Removes directive keys (`$...`) from a value that is inserted as-is.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let orig = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "finalizers": ["x"]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"}
            ],
            "finalizers": ["y"]
        }});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
            ], "finalizers": ["x", "y"]}})
        );
    }

    #[test]
    fn strategic_merge_retain_keys_and_delete_from_primitive_list() {
        let orig = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "finalizers": ["a", "b"]});
        let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "$deleteFromPrimitiveList/finalizers": ["a"]});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(
            out,
            json!({"strategy": {"type": "Recreate"}, "finalizers": ["b"]})
        );
    }
}
