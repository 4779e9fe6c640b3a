//! Apply step: the only code that writes Secrets. Server-side apply with one field manager, skipping
//! writes whose result would be identical, and deleting only when the deletion policy says so.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::build::{self, DATA_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Ownership};
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
    /// creationPolicy None: nothing is written.
    NotWritten,
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

/// Owner and Orphan: create or update our Secret, unless the cached metadata shows it is already
/// exactly what we would write. Returns the change and the resourceVersion now on the server.
pub async fn apply_managed(
    ctx: &Context,
    es: &ExternalSecret,
    data: &BTreeMap<String, SecretBytes>,
    ownership: Ownership,
    last_written_rv: Option<&str>,
) -> Result<(Change, Option<String>), SyncError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    let cached = ctx.caches.secret_meta(&namespace, &name);
    // Keep the Secret's salt for its whole life, so an unchanged value keeps its hash.
    let salt = cached
        .as_ref()
        .and_then(|m| {
            m.metadata
                .annotations
                .as_ref()?
                .get(build::HASH_SALT_ANNOTATION)
                .cloned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(build::new_salt);
    let desired_hash = build::data_hash(&salt, data);
    if let Some(meta) = &cached {
        if let Some(owner) = foreign_controller(meta.metadata.owner_references.as_deref(), es) {
            return Err(SyncError::TargetOwnedByOther { name, owner });
        }
        let hash_matches = meta
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DATA_HASH_ANNOTATION))
            == Some(&desired_hash);
        let labelled = meta
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map(String::as_str)
            == Some(MANAGED_BY_VALUE);
        let owner_ok = ownership != Ownership::Owned
            || is_owned_by(meta.metadata.owner_references.as_deref(), es);
        // A resourceVersion other than the one we wrote means someone else edited the Secret. With no
        // memory of our last write (first sync since start-up), read the data once and compare it.
        let untouched = match last_written_rv {
            Some(rv) => meta.metadata.resource_version.as_deref() == Some(rv),
            None if hash_matches => data_matches(ctx, &namespace, &name, data).await?,
            None => false,
        };
        if hash_matches && labelled && owner_ok && untouched {
            return Ok((Change::Unchanged, meta.metadata.resource_version.clone()));
        }
    }
    if cached.is_none() && !owner_still_exists(ctx, es).await? {
        // The ExternalSecret was deleted while this reconcile ran: creating its Secret now would leave
        // an orphan for the garbage collector (or forever, under Orphan).
        return Err(SyncError::OwnerGone);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = server_side_apply(
        ctx,
        &api,
        &name,
        build::desired_secret(es, data, ownership, &salt),
    )
    .await?;
    let written_rv = written;
    // A no-op apply leaves the resourceVersion as it was: report it as such (no Event, no refreshTime).
    let change = match &cached {
        None => Change::Created,
        Some(meta) if meta.metadata.resource_version == written_rv => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok((change, written_rv))
}

/// Merge: add our keys to a Secret someone else created. Reads the Secret (it is not in our
/// label-selected cache) and writes only when one of our keys differs.
pub async fn apply_merge(
    ctx: &Context,
    es: &ExternalSecret,
    data: &BTreeMap<String, SecretBytes>,
) -> Result<Change, SyncError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = api.get_opt(&name).await.map_err(|source| SyncError::Read {
        name: name.clone(),
        source,
    })?;
    let Some(existing) = existing else {
        return Err(SyncError::TargetMissing { name });
    };
    // The read copy holds other owners' values too: wiped when this guard drops.
    let existing = OutgoingSecret(existing);
    let before_rv = existing.0.metadata.resource_version.clone();
    let current = existing.0.data.as_ref();
    let same = data.iter().all(|(k, v)| {
        current
            .and_then(|c| c.get(k))
            .is_some_and(|c| c.0 == v.expose())
    });
    // Keys we applied before but no longer want are removed by server-side apply itself, so a
    // shrinking key set also needs a write; the managedFields tell us which keys are ours.
    let ours_before = managed_data_keys(
        existing.0.metadata.managed_fields.as_deref(),
        &ctx.config.field_manager,
    );
    let shrinking = ours_before.iter().any(|k| !data.contains_key(k));
    if same && !shrinking {
        return Ok(Change::Unchanged);
    }
    let written = server_side_apply(
        ctx,
        &api,
        &name,
        build::desired_secret(es, data, Ownership::MergedInto, ""),
    )
    .await?;
    Ok(if written == before_rv {
        Change::Unchanged
    } else {
        Change::Updated
    })
}

/// Whether the Secret on the server holds exactly `data` (one GET, only on the first sync after start-up).
async fn data_matches(
    ctx: &Context,
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, SecretBytes>,
) -> Result<bool, SyncError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(mut current) = api.get_opt(name).await.map_err(|source| SyncError::Read {
        name: name.to_owned(),
        source,
    })?
    else {
        return Ok(false);
    };
    let on_server = current.data.take().unwrap_or_default();
    let same = on_server.len() == data.len()
        && data
            .iter()
            .all(|(k, v)| on_server.get(k).is_some_and(|c| c.0 == v.expose()));
    // The copy we read holds secret bytes too: wipe it like an outgoing body.
    drop(OutgoingSecret(Secret {
        data: Some(on_server),
        ..Secret::default()
    }));
    Ok(same)
}

/// The one Secret write: server-side apply under our field manager, forcing ownership of our fields.
/// The request body's payload is wiped once the request is done.
async fn server_side_apply(
    ctx: &Context,
    api: &Api<Secret>,
    name: &str,
    desired: Secret,
) -> Result<Option<String>, SyncError> {
    let secret = OutgoingSecret(desired);
    let written = api
        .patch(
            name,
            &PatchParams::apply(&ctx.config.field_manager).force(),
            &Patch::Apply(&secret.0),
        )
        .await
        .map_err(|source| SyncError::Apply {
            name: name.to_owned(),
            source,
        })?;
    ctx.metrics.kube_write("secrets", "apply");
    // The answer echoes the whole Secret: keep its resourceVersion, wipe the rest.
    let written = OutgoingSecret(written);
    Ok(written.0.metadata.resource_version.clone())
}

/// deletionPolicy Delete with every remote key gone: delete our Secret (if it is still ours).
pub async fn delete_managed(ctx: &Context, es: &ExternalSecret) -> Result<Change, SyncError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    let Some(meta) = ctx.caches.secret_meta(&namespace, &name) else {
        return Ok(Change::Deleted);
    };
    if !is_owned_by(meta.metadata.owner_references.as_deref(), es) {
        return Err(SyncError::TargetOwnedByOther {
            name,
            owner: "someone else".to_owned(),
        });
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => return Err(SyncError::Delete { name, source }),
    }
    ctx.metrics.kube_write("secrets", "delete");
    Ok(Change::Deleted)
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

fn is_owned_by(
    refs: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]>,
    es: &ExternalSecret,
) -> bool {
    refs.unwrap_or_default()
        .iter()
        .any(|r| r.kind == "ExternalSecret" && Some(&r.uid) == es.metadata.uid.as_ref())
}

/// The controlling ExternalSecret of the Secret, when it is not `es`.
fn foreign_controller(
    refs: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]>,
    es: &ExternalSecret,
) -> Option<String> {
    refs.unwrap_or_default()
        .iter()
        .find(|r| {
            r.controller == Some(true)
                && r.kind == "ExternalSecret"
                && Some(&r.uid) != es.metadata.uid.as_ref()
        })
        .map(|r| format!("ExternalSecret {:?}", r.name))
}

/// Data keys whose field manager entry (fieldsV1 `f:data` → `f:<key>`) belongs to `manager`.
fn managed_data_keys(
    entries: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry]>,
    manager: &str,
) -> Vec<String> {
    entries
        .unwrap_or_default()
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
