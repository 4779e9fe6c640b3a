// Owns managedFields: field sets per manager (fieldsV1 at map-key granularity, lists atomic),
// Update-ownership bookkeeping and the server-side apply merge with conflict detection.
// Must not validate schemas or store anything: it transforms objects and reports conflicts.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field path of map keys; lists are atomic leaves.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Which part of the object a write addresses; field tracking is split the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Main endpoint of a kind without status subresource: everything is tracked.
    Whole,
    /// Main endpoint of a kind with status: status is not tracked (it is ignored).
    Main,
    /// The /status subresource: only status is tracked.
    Status,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

/// Leaf paths of the tracked part of `obj`.
pub fn field_set(obj: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        let tracked = match k.as_str() {
            "apiVersion" | "kind" => false,
            "metadata" => scope != Scope::Status,
            "status" => scope != Scope::Main,
            _ => scope != Scope::Status,
        };
        if !tracked {
            continue;
        }
        if k == "metadata" {
            if let Some(md) = v.as_object() {
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = md.get(key) {
                        collect(x, vec!["metadata".into(), key.into()], &mut out);
                    }
                }
            }
        } else {
            collect(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: Path, out: &mut FieldSet) {
    match v {
        // An empty map claims nothing: maps are owned key by key.
        Value::Object(m) if m.is_empty() => {}
        Value::Object(m) => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| x == y)
}

pub fn get_path<'a>(v: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Removes the value at `path`, then prunes maps emptied by the removal.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(m) = v.as_object_mut() else { return };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

/// fieldsV1 JSON (`{"f:data": {"f:key": {}}}`) of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for k in path {
            let entry = cur.entry(format!("f:{k}")).or_insert_with(|| json!({}));
            match entry.as_object_mut() {
                Some(m) => cur = m,
                None => break,
            }
        }
    }
    Value::Object(root)
}

/// Inverse of `to_fields_v1`; list element keys (`k:`, `v:`, `i:`) collapse into the atomic list.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: Path, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path);
            }
            return;
        }
        for (k, child) in children {
            let mut p = path.clone();
            p.push(k.trim_start_matches("f:").to_string());
            walk(child, p, out);
        }
    }
    let mut out = FieldSet::new();
    walk(v, Vec::new(), &mut out);
    out
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

/// Whether a client-sent managedFields list is well formed: objects with a manager, an operation
/// (Apply or Update) and fieldsV1. A malformed list is ignored, as a real server does.
pub fn valid_entries(list: &Value) -> bool {
    list.as_array().is_some_and(|a| {
        a.iter().all(|e| {
            e.get("manager").and_then(Value::as_str).is_some()
                && matches!(
                    e.get("operation").and_then(Value::as_str),
                    Some("Apply" | "Update")
                )
                && e.get("fieldsV1").is_some_and(Value::is_object)
        })
    })
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty()
                && let Some(m) = v.as_object_mut()
            {
                m.insert("subresource".into(), json!(e.subresource));
            }
            v
        })
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn subresource_name(scope: Scope) -> &'static str {
    if scope == Scope::Status { "status" } else { "" }
}

/// Records a non-apply write by `manager`: changed leaves become its Update-owned fields and are
/// taken away from everyone else; removed leaves are forgotten.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
    scope: Scope,
) {
    // The base is the new object's managedFields: the old ones, or what the client set in their place.
    let mut entries = match new.pointer("/metadata/managedFields") {
        Some(_) => read_entries(new),
        None => old.map(read_entries).unwrap_or_default(),
    };
    let new_set = field_set(new, scope);
    let old_set = old.map(|o| field_set(o, scope)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    for e in &mut entries {
        e.fields
            .retain(|f| !changed.iter().any(|c| overlaps(c, f)) && !removed.contains(f));
    }
    let sub = subresource_name(scope);
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: sub.to_string(),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// One field owned by another manager with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

impl Conflict {
    pub fn field(&self) -> String {
        format!(".{}", self.path.join("."))
    }
}

/// Server-side apply of `config` by `manager` onto `current` (an empty object when creating).
/// Returns the merged object with managedFields, or the conflicts when `force` is false.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
    scope: Scope,
) -> Result<Value, Vec<Conflict>> {
    let sub = subresource_name(scope);
    let mut entries = read_entries(current);
    let applied = field_set(config, scope);
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == sub;

    let mut conflicts = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !is_mine(e) && e.manager != manager)
    {
        for owned in &e.fields {
            for p in applied.iter().filter(|p| overlaps(p, owned)) {
                let at = if p.len() <= owned.len() { p } else { owned };
                if get_path(current, at) != get_path(config, at) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        path: owned.clone(),
                    });
                    break;
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        // Forced fields change owner: everyone else loses them.
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            e.fields.retain(|f| {
                !applied.iter().any(|p| overlaps(p, f))
                    || get_path(current, f) == get_path(config, f)
            });
        }
    }

    let previously: FieldSet = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = current.clone();
    deep_merge(&mut merged, config, scope, true);
    for gone in previously
        .iter()
        .filter(|p| !applied.iter().any(|a| overlaps(a, p)))
    {
        let shared = entries
            .iter()
            .any(|e| !is_mine(e) && e.fields.iter().any(|f| overlaps(f, gone)));
        if !shared {
            remove_path(&mut merged, gone);
        }
    }

    entries.retain(|e| !is_mine(e));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: sub.to_string(),
        fields: applied,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Merges the applied configuration into the live object: maps merge by key, everything else replaces.
fn deep_merge(target: &mut Value, config: &Value, scope: Scope, top: bool) {
    let (Some(t), Some(c)) = (target.as_object_mut(), config.as_object()) else {
        *target = config.clone();
        return;
    };
    for (k, v) in c {
        if top {
            let skip = match k.as_str() {
                "status" => scope == Scope::Main,
                "metadata" | "apiVersion" | "kind" => false,
                _ => scope == Scope::Status,
            };
            if skip {
                continue;
            }
        }
        if top && k == "metadata" {
            // Only the tracked metadata fields are applied; identity fields are the server's.
            if let (Some(tm), Some(cm)) = (
                t.entry("metadata")
                    .or_insert_with(|| json!({}))
                    .as_object_mut(),
                v.as_object(),
            ) {
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = cm.get(key) {
                        let slot = tm.entry(key.to_string()).or_insert(Value::Null);
                        if x.is_object() && slot.is_object() {
                            deep_merge(slot, x, scope, false);
                        } else {
                            *slot = x.clone();
                        }
                    }
                }
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match t.get_mut(k) {
            Some(existing) if existing.is_object() && v.is_object() => {
                deep_merge(existing, v, scope, false)
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_v1_round_trips_map_keys() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "1"}}, "data": {"k": "dg=="}});
        let set = field_set(&obj, Scope::Whole);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_conflicts_then_force_takes_ownership_and_dropped_fields_are_removed() {
        let cfg_a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1", "y": "1"}});
        let obj = apply(
            &json!({"metadata": {"name": "c"}}),
            &cfg_a,
            "a",
            false,
            "v1",
            "t",
            Scope::Whole,
        )
        .unwrap();
        let cfg_b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "2"}});
        let err = apply(&obj, &cfg_b, "b", false, "v1", "t", Scope::Whole).unwrap_err();
        assert_eq!(err[0].manager, "a");
        assert_eq!(err[0].field(), ".data.x");
        let obj = apply(&obj, &cfg_b, "b", true, "v1", "t", Scope::Whole).unwrap();
        assert_eq!(obj["data"], json!({"x": "2", "y": "1"}));
        // a stops applying y (and no longer owns x): y is removed, x stays (b owns it).
        let cfg_a2 =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let obj = apply(&obj, &cfg_a2, "a", false, "v1", "t", Scope::Whole).unwrap();
        assert_eq!(obj["data"], json!({"x": "2"}));
    }
}
