//! Apply step: the only code that writes Secrets. It reads the Secret, asks the pure planner
//! (`plan.rs`) what to do and executes exactly that: server-side apply with one field manager per
//! ExternalSecret, a guarded JSON patch for what apply cannot remove, and deletion only when planned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};

use super::build::{
    self, DATA_HASH_ANNOTATION, DesiredData, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Ownership,
    TemplateMeta,
};
use super::plan::{self, Current, Holder, Plan, Policy};
use super::{Context, SyncError};
use crate::api::ExternalSecret;
use crate::provider::SecretBytes;

/// What the apply step did to the Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Every source is gone and so is the Secret (or our keys): nothing left to do, nothing to report.
    AlreadyDeleted,
    /// The source changed but the Secret is immutable: kept as it is, reported, never retried.
    ImmutableKept,
    /// creationPolicy None: nothing is written.
    NotWritten,
    /// creationPolicy Merge and the Secret does not exist (yet): nothing written, Ready (as ESO).
    TargetMissing,
    /// A `dataFrom.find` matched nothing and nothing else is left to write: the Secret (if any) is
    /// kept as it is, whatever the deletion policy; Ready.
    NothingFound,
}

/// A Secret body whose payload is wiped once the request is done.
struct OutgoingSecret(Secret);

impl Drop for OutgoingSecret {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for value in self.0.data.iter_mut().flat_map(|d| d.values_mut()) {
            value.0.zeroize();
        }
    }
}

/// The Secret step for one ExternalSecret: read what is on the server, let the pure planner decide,
/// and execute the plan. Returns the change and the resourceVersion now on the server (Owner/Orphan).
///
/// One shortcut skips the read: the cached metadata shows the data hash we would write and the
/// resourceVersion we wrote last, so nobody has touched the Secret since (the steady state: no GET).
pub async fn sync_secret(
    ctx: &Context,
    es: &ExternalSecret,
    desired: &DesiredData,
    last_written_rv: Option<&str>,
) -> Result<(Change, Option<String>), SyncError> {
    let policy = Policy::of(es);
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    let Some(ownership) = Ownership::of(policy.creation) else {
        let decided = plan::plan(policy, &name, desired, None);
        return execute(ctx, es, decided, &desired.meta, None, "").await;
    };
    let cached = ctx.caches.secret_meta(&namespace, &name);
    let cached_salt = cached
        .as_ref()
        .and_then(|m| m.annotation(build::HASH_SALT_ANNOTATION))
        .filter(|s| !s.is_empty());
    if let (Some(meta), Some(salt), Some(rv), Ownership::Owned | Ownership::Orphaned) =
        (&cached, &cached_salt, last_written_rv, ownership)
    {
        // The template's labels and annotations are metadata the cache holds: they must be there too
        // (the data hash covers data only, as it travels to workloads for reload).
        if desired.missing_remote_keys.is_empty()
            && meta.annotation(DATA_HASH_ANNOTATION)
                == Some(build::data_hash(salt, &desired.data).as_str())
            && meta.resource_version() == Some(rv)
            && desired
                .meta
                .labels
                .iter()
                .all(|(k, v)| meta.label(k) == Some(v))
            && desired
                .meta
                .annotations
                .iter()
                .all(|(k, v)| meta.annotation(k) == Some(v))
        {
            return Ok((Change::Unchanged, Some(rv.to_owned())));
        }
    }

    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = api.get_opt(&name).await.map_err(|source| SyncError::Read {
        name: name.clone(),
        source,
    })?;
    // The read copy holds values (other writers' too): wiped when this guard drops.
    let existing = existing.map(OutgoingSecret);
    let manager = field_manager(ctx, es);
    let salt = existing
        .as_ref()
        .and_then(|s| salt_of(&s.0.metadata))
        .unwrap_or_else(|| ctx.hash_key.salt_for(&namespace, &name));
    let observed = existing
        .as_ref()
        .map(|s| Observed::of(&s.0, es, &ctx.config.field_manager, &manager));
    let empty = BTreeMap::new();
    let current = existing
        .as_ref()
        .zip(observed.as_ref())
        .map(|(s, o)| Current {
            data: s.0.data.as_ref().unwrap_or(&empty),
            holder: &o.holder,
            immutable: s.0.immutable == Some(true),
            metadata_matches: metadata_matches(
                &s.0,
                &OutgoingSecret(build::desired_secret(
                    es,
                    &desired.data,
                    &desired.meta,
                    ownership,
                    &salt,
                ))
                .0,
            ),
            our_keys: &o.our_keys,
            legacy_manager: o.legacy_index.is_some(),
        });
    let decided = plan::plan(policy, &name, desired, current);
    let before_rv = existing
        .as_ref()
        .and_then(|s| s.0.metadata.resource_version.clone());
    let uid = existing.as_ref().and_then(|s| s.0.metadata.uid.clone());
    drop(existing);
    match decided {
        Plan::Delete => {
            delete_secret(ctx, &api, &name, uid).await?;
            Ok((Change::Deleted, None))
        }
        other => {
            let (change, rv) = execute(ctx, es, other, &desired.meta, before_rv, &salt).await?;
            Ok((change, rv))
        }
    }
}

/// Carry out every plan but Delete. `before_rv` is the Secret's resourceVersion as read.
async fn execute(
    ctx: &Context,
    es: &ExternalSecret,
    decided: Plan,
    meta: &TemplateMeta,
    before_rv: Option<String>,
    salt: &str,
) -> Result<(Change, Option<String>), SyncError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    let ownership = Ownership::of(es.spec.target.creation_policy);
    let (data, create, prune, migrate_legacy, change) = match decided {
        Plan::Keep(change) => return Ok((change, before_rv)),
        Plan::Refuse(refusal) => return Err(SyncError::Refused(refusal)),
        Plan::Delete => {
            return Err(SyncError::InvalidPolicy(
                "delete is executed by sync_secret",
            ));
        }
        Plan::Write {
            data,
            create,
            prune,
            migrate_legacy,
            change,
        } => (data, create, prune, migrate_legacy, change),
    };
    let Some(ownership) = ownership else {
        return Ok((Change::NotWritten, before_rv));
    };
    if create && !owner_still_exists(ctx, es).await? {
        // The ExternalSecret was deleted while this reconcile ran: creating its Secret now would leave
        // an orphan for the garbage collector (or forever, under Orphan).
        return Err(SyncError::OwnerGone);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let manager = field_manager(ctx, es);
    let written = server_side_apply(
        ctx,
        &api,
        &name,
        &manager,
        build::desired_secret(es, &data, meta, ownership, salt),
    )
    .await?;
    // Whatever server-side apply cannot remove (keys other managers hold, the old shared manager's
    // entry), one JSON patch removes, guarded by the resourceVersion we just wrote.
    let ops = cleanup_ops(
        &written.0,
        &data,
        prune,
        migrate_legacy.then_some(ctx.config.field_manager.as_str()),
    );
    let mut rv = written.0.metadata.resource_version.clone();
    drop(written);
    if !ops.is_empty() {
        rv = json_patch(ctx, &api, &name, &manager, rv.as_deref(), ops).await?;
    }
    let change = match (&before_rv, &rv) {
        (None, _) => Change::Created,
        (Some(before), Some(after)) if before == after => Change::Unchanged,
        _ => change,
    };
    Ok((change, rv))
}

/// The field manager of one ExternalSecret's Secret writes: the base name plus its uid, so writers of
/// one Secret never prune each other's fields (ESO's Merge semantics with server-side apply).
pub fn field_manager(ctx: &Context, es: &ExternalSecret) -> String {
    format!(
        "{}/{}",
        ctx.config.field_manager,
        es.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// What the managedFields and ownerReferences of a Secret say about its writers.
struct Observed {
    holder: Holder,
    our_keys: Vec<String>,
    /// Index of the old shared manager's Apply entry, to remove once.
    legacy_index: Option<usize>,
}

impl Observed {
    fn of(secret: &Secret, es: &ExternalSecret, base: &str, ours: &str) -> Observed {
        let entries = secret
            .metadata
            .managed_fields
            .as_deref()
            .unwrap_or_default();
        let legacy_index = entries.iter().position(|e| {
            e.manager.as_deref() == Some(base) && e.operation.as_deref() == Some("Apply")
        });
        Observed {
            holder: holder(secret, es, base, ours),
            our_keys: managed_data_keys(entries, ours),
            legacy_index,
        }
    }
}

/// Who holds the whole data: the controlling ExternalSecret (Owner), else the ExternalSecret whose field
/// manager applied our managed-by label (Orphan). Merge writers never set the label.
fn holder(secret: &Secret, es: &ExternalSecret, base: &str, ours: &str) -> Holder {
    let refs = secret
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default();
    if let Some(r) = refs
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == "ExternalSecret")
    {
        return if Some(&r.uid) == es.metadata.uid.as_ref() {
            Holder::Us
        } else {
            Holder::Other(format!("ExternalSecret {:?}", r.name))
        };
    }
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE);
    if !labelled {
        return Holder::Nobody;
    }
    let label_path = format!("f:{MANAGED_BY_LABEL}");
    let owns_label = |e: &&ManagedFieldsEntry| {
        e.operation.as_deref() == Some("Apply")
            && e.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:metadata")
                    .and_then(|m| m.get("f:labels"))
                    .and_then(|l| l.get(&label_path))
                    .is_some()
            })
    };
    let entries = secret
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    let prefix = format!("{base}/");
    let mut holder = Holder::Nobody;
    for e in entries.iter().filter(owns_label) {
        match e.manager.as_deref() {
            Some(m) if m == ours || m == base => holder = Holder::Us,
            Some(m) if m.starts_with(&prefix) => {
                return Holder::Other(format!(
                    "the ExternalSecret with uid {}",
                    &m[prefix.len()..]
                ));
            }
            _ => {}
        }
    }
    holder
}

/// Our labels, annotations and ownerReference, and `immutable`, are already on the Secret.
fn metadata_matches(current: &Secret, desired: &Secret) -> bool {
    fn contains(
        have: Option<&BTreeMap<String, String>>,
        want: Option<&BTreeMap<String, String>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    let owners = current
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default();
    contains(
        current.metadata.labels.as_ref(),
        desired.metadata.labels.as_ref(),
    ) && contains(
        current.metadata.annotations.as_ref(),
        desired.metadata.annotations.as_ref(),
    ) && desired
        .metadata
        .owner_references
        .iter()
        .flatten()
        .all(|want| {
            owners
                .iter()
                .any(|r| r.uid == want.uid && r.controller == want.controller)
        })
        && (desired.immutable != Some(true) || current.immutable == Some(true))
        && (desired.type_.is_none() || current.type_ == desired.type_)
}

fn salt_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()?
        .get(build::HASH_SALT_ANNOTATION)
        .filter(|s| !s.is_empty())
        .cloned()
}

/// JSON-patch operations that finish a write: remove data keys we do not produce (with `prune`) and the
/// old shared manager's managedFields entry (`legacy`). Empty when nothing is left to do.
fn cleanup_ops(
    written: &Secret,
    data: &BTreeMap<String, SecretBytes>,
    prune: bool,
    legacy: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut ops = Vec::new();
    if let Some(base) = legacy {
        let entries = written
            .metadata
            .managed_fields
            .as_deref()
            .unwrap_or_default();
        // Removing the last entry would read as "clear managedFields", which a server ignores.
        let legacy_entry = entries.iter().position(|e| {
            e.manager.as_deref() == Some(base) && e.operation.as_deref() == Some("Apply")
        });
        if let Some(i) = legacy_entry.filter(|_| entries.len() > 1) {
            ops.push(
                serde_json::json!({"op": "remove", "path": format!("/metadata/managedFields/{i}")}),
            );
        }
    }
    if prune {
        for key in written.data.iter().flatten().map(|(k, _)| k) {
            if !data.contains_key(key) {
                // Secret keys never contain '/' or '~', so the key is a valid JSON pointer token.
                ops.push(serde_json::json!({"op": "remove", "path": format!("/data/{key}")}));
            }
        }
    }
    ops
}

/// A JSON patch guarded by `rv` (a `test` on the resourceVersion): a concurrent edit makes it fail
/// instead of removing something we have not seen. Returns the new resourceVersion.
async fn json_patch(
    ctx: &Context,
    api: &Api<Secret>,
    name: &str,
    manager: &str,
    rv: Option<&str>,
    ops: Vec<serde_json::Value>,
) -> Result<Option<String>, SyncError> {
    let mut all =
        vec![serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
    all.extend(ops);
    // Built from our own well-formed operations above; a failure here is a bug, reported, not a panic.
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(all))
        .map_err(|_| SyncError::InvalidPolicy("internal error: malformed cleanup patch"))?;
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    let written = api
        .patch(name, &params, &Patch::<()>::Json(patch))
        .await
        .map_err(|source| SyncError::Apply {
            name: name.to_owned(),
            source,
        })?;
    ctx.metrics.kube_write("secrets", "patch");
    let written = OutgoingSecret(written);
    Ok(written.0.metadata.resource_version.clone())
}

/// The one Secret write: server-side apply under our field manager, forcing ownership of our fields.
/// The request body's payload is wiped once the request is done.
async fn server_side_apply(
    ctx: &Context,
    api: &Api<Secret>,
    name: &str,
    manager: &str,
    desired: Secret,
) -> Result<OutgoingSecret, SyncError> {
    let secret = OutgoingSecret(desired);
    let written = api
        .patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&secret.0),
        )
        .await
        .map_err(|source| SyncError::Apply {
            name: name.to_owned(),
            source,
        })?;
    ctx.metrics.kube_write("secrets", "apply");
    // The answer echoes the whole Secret: wiped when the caller drops it.
    Ok(OutgoingSecret(written))
}

/// deletionPolicy Delete with every remote key gone, on a Secret the planner found to be ours. The uid
/// precondition makes sure the very Secret that was judged is the one deleted.
async fn delete_secret(
    ctx: &Context,
    api: &Api<Secret>,
    name: &str,
    uid: Option<String>,
) -> Result<(), SyncError> {
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(source) => {
            return Err(SyncError::Delete {
                name: name.to_owned(),
                source,
            });
        }
    }
    ctx.metrics.kube_write("secrets", "delete");
    Ok(())
}

/// One GET, only on the rare create path: is this very ExternalSecret (same uid) still alive?
async fn owner_still_exists(ctx: &Context, es: &ExternalSecret) -> Result<bool, SyncError> {
    let api: Api<ExternalSecret> = Api::namespaced(
        ctx.client.clone(),
        es.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = es.metadata.name.clone().unwrap_or_default();
    let current = api.get_opt(&name).await.map_err(|source| SyncError::Read {
        name: name.clone(),
        source,
    })?;
    Ok(current.is_some_and(|c| {
        c.metadata.uid == es.metadata.uid && c.metadata.deletion_timestamp.is_none()
    }))
}

/// Data keys whose field manager entry (fieldsV1 `f:data` → `f:<key>`) belongs to `manager`.
fn managed_data_keys(entries: &[ManagedFieldsEntry], manager: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
        })
        .filter_map(|e| e.fields_v1.as_ref())
        .filter_map(|f| f.0.get("f:data").and_then(|d| d.as_object()))
        .flat_map(|d| {
            d.keys()
                .filter_map(|k| k.strip_prefix("f:").map(str::to_owned))
        })
        .collect()
}
