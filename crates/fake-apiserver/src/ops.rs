// Owns write semantics of the API: create, update, patch, apply, delete, finalizers and garbage
// collection, plus the metadata the server maintains (uid, resourceVersion, generation, timestamps).
// Must not parse HTTP or render responses; it works on the store under the caller's lock.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::patch;
use crate::resources::{self, CRD_GROUP, CRD_PLURAL, ResourceDef};
use crate::ssa::{self, Scope};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{ResKey, Store};
use crate::validation;

/// Who writes and how; built per request by the router.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub def: ResourceDef,
    /// The version addressed by the URL; objects are returned with this apiVersion.
    pub version: String,
    /// Namespace from the path ("" for cluster-scoped).
    pub namespace: String,
    pub manager: String,
    pub dry_run: bool,
}

impl WriteCtx {
    fn key(&self) -> ResKey {
        (self.def.group.clone(), self.def.plural.clone())
    }
    fn api_version(&self) -> String {
        self.def.api_version(&self.version)
    }
    fn scope(&self, subresource: Option<&str>) -> Scope {
        match (subresource, self.def.has_status) {
            (Some("status"), _) => Scope::Status,
            (_, true) => Scope::Main,
            _ => Scope::Whole,
        }
    }
}

/// How managedFields are maintained for a write.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Managed {
    /// A non-apply write: record an Update entry for the manager.
    Update,
    /// Server-side apply already computed managedFields.
    Precomputed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        Some(match base {
            "application/merge-patch+json" => Self::Merge,
            "application/json-patch+json" => Self::Json,
            "application/strategic-merge-patch+json" => Self::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Self::Apply,
            _ => return None,
        })
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(
        [
            &b[..6],
            &[0x40 | (b[6] & 0x0f)],
            &b[7..8],
            &[0x80 | (b[8] & 0x3f)],
            &b[9..],
        ]
        .concat(),
    );
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_suffix() -> String {
    // Same alphabet as the apiserver's generateName (no vowels, no confusable characters).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn meta_mut(v: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    obj.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

pub fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    meta(v)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    c
}

/// Comparable form for no-op detection: ignores resourceVersion and managedFields timestamps.
fn comparable(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(list)) = m.get_mut("managedFields") {
            for e in list.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    c
}

/// Sets the apiVersion an object is presented with (custom resources are stored once for all versions).
pub fn present(obj: &Value, api_version: &str) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut()
        && m.get("apiVersion").and_then(Value::as_str) != Some(api_version)
    {
        m.insert("apiVersion".into(), json!(api_version));
    }
    o
}

/// Kind-specific normalisation done by the real registry strategies.
fn normalize(def: &ResourceDef, obj: &mut Value, name: &str) -> ApiResult<()> {
    if def.group.is_empty()
        && def.plural == "secrets"
        && let Some(m) = obj.as_object_mut()
    {
        // stringData is write-only: it is folded into data, base64-encoded.
        if let Some(Value::Object(sd)) = m.remove("stringData") {
            let data = m.entry("data").or_insert_with(|| json!({}));
            if let Some(d) = data.as_object_mut() {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    d.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
            }
        }
        if let Some(d) = m.get("data").and_then(Value::as_object) {
            for (k, v) in d {
                let s = v.as_str().unwrap_or_default();
                if base64::engine::general_purpose::STANDARD.decode(s).is_err() {
                    return Err(ApiError::bad_request(format!(
                        "illegal base64 data in Secret \"{name}\" key {k:?}"
                    )));
                }
            }
        }
        if !m.contains_key("type") {
            m.insert("type".into(), json!("Opaque"));
        }
    }
    if def.group.is_empty()
        && def.plural == "namespaces"
        && let Some(m) = obj.as_object_mut()
    {
        m.entry("spec")
            .or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
        // The real namespace strategy sets this label on every create and update (immutable name,
        // so selectors can match namespaces by name).
        let md = m.entry("metadata").or_insert_with(|| json!({}));
        if let Some(md) = md.as_object_mut() {
            let labels = md.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
    }
    Ok(())
}

/// Validates the object, pruning undeclared fields of custom resources. Returns the pruned paths.
fn validate(
    def: &ResourceDef,
    version: &str,
    obj: &mut Value,
    name: &str,
) -> ApiResult<Vec<String>> {
    let mut causes = Vec::new();
    if let Some(c) = validation::validate_name(name, def.plural == "namespaces") {
        causes.push(c);
    }
    let mut pruned = Vec::new();
    if def.custom
        && let Some(schema) = def.schemas.get(version)
    {
        validation::prune(obj, schema, "", &mut pruned);
        validation::validate(obj, schema, "", &mut causes);
    }
    if def.group == CRD_GROUP && def.plural == CRD_PLURAL {
        validate_crd(obj, name, &mut causes);
    }
    if causes.is_empty() {
        Ok(pruned)
    } else {
        Err(ApiError::invalid(&def.group, &def.kind, name, causes))
    }
}

fn validate_crd(crd: &Value, name: &str, causes: &mut Vec<Cause>) {
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (group, plural, kind) = (
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    for (field, value) in [
        ("spec.group", group),
        ("spec.names.plural", plural),
        ("spec.names.kind", kind),
    ] {
        if value.is_empty() {
            causes.push(Cause::new("FieldValueRequired", field, "Required value"));
        }
    }
    if name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let scope = s("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
}

/// The status a real apiextensions-apiserver reports once a CRD is served.
fn crd_status(crd: &Value, previous: Option<&Value>, now: &str) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if let Some(m) = accepted.as_object_mut() {
        let kind = m
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        m.entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        m.entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored = previous
        .and_then(|p| p.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let conditions = previous
        .and_then(|p| p.pointer("/status/conditions"))
        .cloned()
        .unwrap_or_else(|| {
            json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
            ])
        });
    json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored})
}

fn is_crd(def: &ResourceDef) -> bool {
    def.group == CRD_GROUP && def.plural == CRD_PLURAL
}

/// POST: creates an object (also used by server-side apply of a missing object).
pub fn create(store: &mut Store, ctx: &WriteCtx, body: Value) -> ApiResult<Arc<Value>> {
    create_inner(store, ctx, body, Managed::Update)
}

fn create_inner(
    store: &mut Store,
    ctx: &WriteCtx,
    mut obj: Value,
    managed: Managed,
) -> ApiResult<Arc<Value>> {
    let def = &ctx.def;
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({k}) does not match the resource ({})",
            def.kind
        )));
    }
    let api_version = ctx.api_version();
    let now = now();
    {
        let md = meta_mut(&mut obj)?;
        let body_ns = md
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if def.namespaced {
            if !body_ns.is_empty() && body_ns != ctx.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            md.insert("namespace".into(), json!(ctx.namespace));
        } else {
            md.remove("namespace");
        }
        let name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            && let Some(prefix) = md
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
        {
            let generated = format!("{prefix}{}", random_suffix());
            md.insert("name".into(), json!(generated));
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            md.remove(k);
        }
        if managed == Managed::Update {
            md.remove("managedFields");
        }
    }
    let name = meta_str(&obj, "name").to_string();
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(def.kind));
        if def.has_status {
            m.remove("status");
        }
    }
    if def.namespaced
        && store
            .get(&(String::new(), "namespaces".into()), "", &ctx.namespace)
            .is_none()
    {
        return Err(ApiError::not_found("", "namespaces", &ctx.namespace));
    }
    normalize(def, &mut obj, &name)?;
    validate(def, &ctx.version, &mut obj, &name)?;
    if store.get(&ctx.key(), &ctx.namespace, &name).is_some() {
        return Err(ApiError::already_exists(&def.group, &def.plural, &name));
    }
    if is_crd(def) {
        let status = crd_status(&obj, None, &now);
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), status);
        }
    }
    if managed == Managed::Update {
        ssa::record_update(
            None,
            &mut obj,
            &ctx.manager,
            &api_version,
            &now,
            ctx.scope(None),
        );
    }
    let md = meta_mut(&mut obj)?;
    md.insert("uid".into(), json!(new_uid()));
    md.insert("creationTimestamp".into(), json!(now));
    if def.generation {
        md.insert("generation".into(), json!(1));
    }
    if ctx.dry_run {
        return Ok(Arc::new(obj));
    }
    let rv = store.next_rv();
    meta_mut(&mut obj)?.insert("resourceVersion".into(), json!(rv.to_string()));
    let stored = store.put(&ctx.key(), &ctx.namespace, &name, obj, rv);
    after_write(store, def, &stored);
    Ok(stored)
}

/// Keeps the CRD registry in step with CRD objects.
fn after_write(store: &mut Store, def: &ResourceDef, obj: &Value) {
    if is_crd(def)
        && let Some(d) = resources::from_crd(obj)
    {
        store.registry.upsert_crd(d);
    }
}

/// PUT on the main endpoint or `/status`.
pub fn update(
    store: &mut Store,
    ctx: &WriteCtx,
    name: &str,
    body: Value,
    subresource: Option<&str>,
) -> ApiResult<Arc<Value>> {
    let old = store
        .get(&ctx.key(), &ctx.namespace, name)
        .ok_or_else(|| ApiError::not_found(&ctx.def.group, &ctx.def.plural, name))?;
    let body_name = meta_str(&body, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(&body, "namespace");
    if ctx.def.namespaced && !body_ns.is_empty() && body_ns != ctx.namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let rv = meta_str(&body, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::conflict(&ctx.def.group, &ctx.def.plural, name));
    }
    commit_update(store, ctx, &old, body, subresource, Managed::Update)
}

/// Shared tail of PUT, PATCH and apply: keeps server-owned fields, validates, bumps generation,
/// records managedFields, skips no-ops and completes deletions whose finalizers are gone.
fn commit_update(
    store: &mut Store,
    ctx: &WriteCtx,
    old: &Arc<Value>,
    new: Value,
    subresource: Option<&str>,
    managed: Managed,
) -> ApiResult<Arc<Value>> {
    let def = &ctx.def;
    let name = meta_str(old, "name").to_string();
    let api_version = ctx.api_version();
    let now = now();
    let scope = ctx.scope(subresource);
    let mut result = if scope == Scope::Status {
        // Only status (and the managedFields that track it) may change through /status.
        let mut r = (**old).clone();
        if let Some(m) = r.as_object_mut() {
            match new.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        if managed == Managed::Precomputed
            && let Some(mf) = new.pointer("/metadata/managedFields")
        {
            meta_mut(&mut r)?.insert("managedFields".into(), mf.clone());
        }
        r
    } else {
        let mut r = new;
        if !r.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(m) = r.as_object_mut() {
            m.insert("apiVersion".into(), json!(api_version));
            m.insert("kind".into(), json!(def.kind));
            if def.has_status {
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
        }
        let old_md = meta(old).cloned().unwrap_or_default();
        let md = meta_mut(&mut r)?;
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old_md.get(k) {
                Some(v) => md.insert(k.into(), v.clone()),
                None => md.remove(k),
            };
        }
        md.remove("selfLink");
        if managed == Managed::Update {
            // Clients echo managedFields back; a non-empty list that differs is taken as the new
            // managedFields (how a client migrates or drops a manager's entry), an absent or empty
            // one keeps the server's, as a real API server does.
            let sent = md
                .get("managedFields")
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                .filter(|v| Some(*v) != old_md.get("managedFields"))
                .filter(|v| ssa::valid_entries(v))
                .cloned();
            match sent.or_else(|| old_md.get("managedFields").cloned()) {
                Some(v) => md.insert("managedFields".into(), v),
                None => md.remove("managedFields"),
            };
        }
        normalize(def, &mut r, &name)?;
        r
    };

    let deleting = meta(old).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if deleting {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(&result)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let list = added
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                vec![Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                    ),
                )],
            ));
        }
    }
    validate(def, &ctx.version, &mut result, &name)?;
    if is_crd(def) {
        let status = crd_status(&result, Some(old), &now);
        if let Some(m) = result.as_object_mut() {
            m.insert("status".into(), status);
        }
    }
    if def.generation && spec_part(old) != spec_part(&result) {
        let g = meta(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut result)?.insert("generation".into(), json!(g + 1));
    }
    if managed == Managed::Update {
        ssa::record_update(
            Some(old),
            &mut result,
            &ctx.manager,
            &api_version,
            &now,
            scope,
        );
    }
    meta_mut(&mut result)?.insert(
        "resourceVersion".into(),
        json!(meta_str(old, "resourceVersion")),
    );
    if comparable(&result) == comparable(old) {
        // A no-op write does not bump resourceVersion nor wake watchers.
        return Ok(old.clone());
    }
    if ctx.dry_run {
        return Ok(Arc::new(result));
    }
    let rv = store.next_rv();
    meta_mut(&mut result)?.insert("resourceVersion".into(), json!(rv.to_string()));
    if deleting && finalizers(&result).is_empty() {
        let policy = store
            .pending_policy
            .remove(meta_str(old, "uid"))
            .unwrap_or_default();
        store.put(&ctx.key(), &ctx.namespace, &name, result.clone(), rv);
        let last = remove_now(store, &ctx.key(), &ctx.namespace, &name, &policy);
        return Ok(last.unwrap_or_else(|| Arc::new(result)));
    }
    let stored = store.put(&ctx.key(), &ctx.namespace, &name, result, rv);
    after_write(store, def, &stored);
    Ok(stored)
}

/// PATCH in any of the four formats, on the main endpoint or `/status`.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &mut Store,
    ctx: &WriteCtx,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    subresource: Option<&str>,
    force: bool,
) -> ApiResult<Arc<Value>> {
    let def = &ctx.def;
    if ptype == PatchType::Apply {
        return apply(store, ctx, name, body, subresource, force);
    }
    let patch_doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let old = store
        .get(&ctx.key(), &ctx.namespace, name)
        .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
    let current = present(&old, &ctx.api_version());
    let patched = match ptype {
        PatchType::Merge => patch::merge_patch(&current, &patch_doc),
        PatchType::Json => patch::json_patch(&current, &patch_doc).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?,
        PatchType::Strategic => {
            if def.custom {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            patch::strategic_merge(&current, &patch_doc).map_err(ApiError::bad_request)?
        }
        PatchType::Apply => return Err(ApiError::internal("unreachable patch type")),
    };
    let rv = meta_str(&patched, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::conflict(&def.group, &def.plural, name));
    }
    let patched_name = meta_str(&patched, "name");
    if !patched_name.is_empty() && patched_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({patched_name}) does not match the name on the URL ({name})"
        )));
    }
    commit_update(store, ctx, &old, patched, subresource, Managed::Update)
}

fn apply(
    store: &mut Store,
    ctx: &WriteCtx,
    name: &str,
    body: &[u8],
    subresource: Option<&str>,
    force: bool,
) -> ApiResult<Arc<Value>> {
    let def = &ctx.def;
    let mut config: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "apply patch must be a YAML or JSON object",
        ));
    }
    for (field, want) in [
        ("apiVersion", ctx.api_version()),
        ("kind", def.kind.clone()),
    ] {
        match config.get(field).and_then(Value::as_str) {
            None | Some("") => {
                return Err(ApiError::bad_request(format!(
                    "{field} must be set in an apply patch"
                )));
            }
            Some(got) if got != want => {
                return Err(ApiError::bad_request(format!(
                    "the {field} of the applied object ({got}) does not match the request ({want})"
                )));
            }
            Some(_) => {}
        }
    }
    let cfg_name = meta_str(&config, "name");
    if !cfg_name.is_empty() && cfg_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
        )));
    }
    if def.custom
        && let Some(schema) = def.schemas.get(&ctx.version)
    {
        // Unlike other writes, apply refuses undeclared fields instead of pruning them.
        let mut probe = config.clone();
        let mut pruned = Vec::new();
        validation::prune(&mut probe, schema, "", &mut pruned);
        if let Some(first) = pruned.first() {
            return Err(ApiError::bad_request(format!(
                "failed to create typed patch object ({}, Kind={}): .{first}: field not declared in schema",
                ctx.api_version(),
                def.kind
            )));
        }
    }
    let scope = ctx.scope(subresource);
    let api_version = ctx.api_version();
    let now = now();
    let conflict_err = |conflicts: Vec<ssa::Conflict>| {
        let n = conflicts.len();
        let message = if n == 1 {
            format!(
                "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
                conflicts[0].manager,
                conflicts[0].api_version,
                conflicts[0].field()
            )
        } else {
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| {
                    format!(
                        "conflict with \"{}\" using {}: {}",
                        c.manager,
                        c.api_version,
                        c.field()
                    )
                })
                .collect();
            format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": c.field()}))
            .collect();
        ApiError::new(409, "Conflict", message).with_details(
            json!({"name": name, "group": def.group, "kind": def.plural, "causes": causes}),
        )
    };
    match store.get(&ctx.key(), &ctx.namespace, name) {
        Some(old) => {
            let rv = meta_str(&config, "resourceVersion");
            if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(&def.group, &def.plural, name));
            }
            let current = present(&old, &api_version);
            let run = |force: bool| {
                ssa::apply(
                    &current,
                    &config,
                    &ctx.manager,
                    force,
                    &api_version,
                    &now,
                    scope,
                )
            };
            let merged = match run(force) {
                Ok(m) => m,
                // Like the real lastAppliedManager: `kubectl apply --server-side` upgrading an object
                // managed by client-side apply may take over the fields of the last-applied annotation.
                Err(c)
                    if ctx.manager == "kubectl"
                        && conflicts_allowed_by_last_applied(&current, &c, scope) =>
                {
                    run(true).map_err(conflict_err)?
                }
                Err(c) => return Err(conflict_err(c)),
            };
            commit_update(store, ctx, &old, merged, subresource, Managed::Precomputed)
        }
        None if subresource.is_some() => Err(ApiError::not_found(&def.group, &def.plural, name)),
        None => {
            if let Some(md) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                md.remove("resourceVersion");
            }
            let base = json!({"apiVersion": api_version, "kind": def.kind, "metadata": {"name": name, "namespace": ctx.namespace}});
            let mut merged = ssa::apply(
                &base,
                &config,
                &ctx.manager,
                force,
                &api_version,
                &now,
                scope,
            )
            .map_err(conflict_err)?;
            if !def.namespaced
                && let Some(md) = merged.get_mut("metadata").and_then(Value::as_object_mut)
            {
                md.remove("namespace");
            }
            create_inner(store, ctx, merged, Managed::Precomputed)
        }
    }
}

fn conflicts_allowed_by_last_applied(
    current: &Value,
    conflicts: &[ssa::Conflict],
    scope: Scope,
) -> bool {
    let Some(last) = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return false;
    };
    let allowed = ssa::field_set(&last, scope);
    conflicts.iter().all(|c| {
        allowed
            .iter()
            .any(|a| a.starts_with(&c.path) || c.path.starts_with(a))
    })
}

/// DELETE: honours finalizers (sets deletionTimestamp and waits) and propagation policy.
/// Returns the object and whether it is gone (200) or only marked for deletion (202).
pub fn delete(
    store: &mut Store,
    ctx: &WriteCtx,
    name: &str,
    policy: &str,
) -> ApiResult<(Arc<Value>, bool)> {
    let def = &ctx.def;
    let old = store
        .get(&ctx.key(), &ctx.namespace, name)
        .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
    if ctx.dry_run {
        let gone = finalizers(&old).is_empty();
        return Ok((old, gone));
    }
    Ok(delete_object(
        store,
        &ctx.key(),
        &ctx.namespace,
        name,
        policy,
    ))
}

fn delete_object(
    store: &mut Store,
    key: &ResKey,
    ns: &str,
    name: &str,
    policy: &str,
) -> (Arc<Value>, bool) {
    let Some(old) = store.get(key, ns, name) else {
        return (Arc::new(Value::Null), true);
    };
    if !finalizers(&old).is_empty() {
        if meta(&old).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return (old, false);
        }
        let mut marked = (*old).clone();
        let rv = store.next_rv();
        if let Some(md) = marked.get_mut("metadata").and_then(Value::as_object_mut) {
            md.insert("deletionTimestamp".into(), json!(now()));
            md.insert("deletionGracePeriodSeconds".into(), json!(0));
            md.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        store
            .pending_policy
            .insert(meta_str(&old, "uid").to_string(), policy.to_string());
        return (store.put(key, ns, name, marked, rv), false);
    }
    let last = remove_now(store, key, ns, name, policy);
    (last.unwrap_or(old), true)
}

/// Removes an object for good (a DELETED event), then does what its removal implies:
/// dependents are collected or orphaned, a namespace takes its contents, a CRD its custom objects.
fn remove_now(
    store: &mut Store,
    key: &ResKey,
    ns: &str,
    name: &str,
    policy: &str,
) -> Option<Arc<Value>> {
    let current = store.get(key, ns, name)?;
    let mut last = (*current).clone();
    let rv = store.next_rv();
    if let Some(md) = last.get_mut("metadata").and_then(Value::as_object_mut) {
        md.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    let removed = store.remove(key, ns, name, last, rv)?;
    let uid = meta_str(&removed, "uid").to_string();
    store.pending_policy.remove(&uid);
    if key.0 == CRD_GROUP && key.1 == CRD_PLURAL {
        let group = removed
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let plural = removed
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let crkey = (group.clone(), plural.clone());
        for obj in store.list(&crkey, None) {
            let (ons, oname) = (
                meta_str(&obj, "namespace").to_string(),
                meta_str(&obj, "name").to_string(),
            );
            let mut last = (*obj).clone();
            let rv = store.next_rv();
            if let Some(md) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                md.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            store.remove(&crkey, &ons, &oname, last, rv);
        }
        store.registry.remove_crd(&group, &plural);
    }
    if key.0.is_empty() && key.1 == "namespaces" {
        let namespaced: Vec<ResKey> = store
            .registry
            .all()
            .filter(|d| d.namespaced)
            .map(|d| (d.group.clone(), d.plural.clone()))
            .collect();
        for k in namespaced {
            for obj in store.list(&k, Some(name)) {
                let oname = meta_str(&obj, "name").to_string();
                delete_object(store, &k, name, &oname, "Background");
            }
        }
    }
    collect_garbage(store, &uid, policy);
    Some(removed)
}

/// Garbage collection through ownerReferences, done synchronously so tests are deterministic.
fn collect_garbage(store: &mut Store, owner_uid: &str, policy: &str) {
    if owner_uid.is_empty() {
        return;
    }
    let all = store.all_objects();
    let live: HashSet<String> = all
        .iter()
        .map(|(_, o)| meta_str(o, "uid").to_string())
        .collect();
    for (key, obj) in all {
        let refs = meta(&obj)
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !refs
            .iter()
            .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        {
            continue;
        }
        let (ns, name) = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        let other_owner_alive = refs.iter().any(|r| {
            let u = r.get("uid").and_then(Value::as_str).unwrap_or_default();
            u != owner_uid && live.contains(u)
        });
        if policy == "Orphan" || other_owner_alive {
            let remaining: Vec<Value> = refs
                .into_iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                .collect();
            let mut updated = (*obj).clone();
            let rv = store.next_rv();
            if let Some(md) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
                if remaining.is_empty() {
                    md.remove("ownerReferences");
                } else {
                    md.insert("ownerReferences".into(), Value::Array(remaining));
                }
                md.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            store.put(&key, &ns, &name, updated, rv);
        } else {
            delete_object(store, &key, &ns, &name, "Background");
        }
    }
}

/// DELETE on a collection: deletes every selected object.
pub fn delete_collection(
    store: &mut Store,
    ctx: &WriteCtx,
    objects: Vec<Arc<Value>>,
    policy: &str,
) -> Vec<Arc<Value>> {
    let mut out = Vec::new();
    for obj in objects {
        let name = meta_str(&obj, "name").to_string();
        let ns = meta_str(&obj, "namespace").to_string();
        if ctx.dry_run {
            out.push(obj);
            continue;
        }
        out.push(delete_object(store, &ctx.key(), &ns, &name, policy).0);
    }
    out
}
