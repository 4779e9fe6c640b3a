//! ClusterExternalSecret controller: stamps one ExternalSecret into every selected namespace and keeps
//! the set right as namespaces appear, change labels or go away. Decisions are `plan.rs` (pure); this
//! file reads the caches, executes the plan (server-side apply, deletes) and writes the status. It
//! never touches Secrets: the children are ordinary ExternalSecrets, synced by the ExternalSecret
//! controller. Cluster-scoped, so it does not run with `--namespace`.

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use self::plan::{ChildView, Holder, Inputs, NamespaceView, Step};
use super::runtime::{AbortOnDrop, observe, slim_metadata, wait_ready};
use super::{Config, backoff, kube_message};
use crate::admin::{Health, Metrics};
use crate::api::{ClusterExternalSecret, ClusterExternalSecretStatus, ExternalSecret};
use crate::shutdown::{DRAIN_LIMIT, InFlight, drive};

/// Re-evaluation period without `refreshTime`: ESO's controller default (cmd/controller/root.go).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// Copied from the ClusterExternalSecret to its children, as ESO does, so one annotation edit
/// forces a sync of every child.
pub const FORCE_SYNC: &str = "external-secrets.io/force-sync";

/// Children applied at once per reconcile.
const WRITE_CONCURRENCY: usize = 8;

/// Why a ClusterExternalSecret reconcile step failed. Messages carry names, never values (an
/// ExternalSecret spec holds references, not secrets).
#[derive(Debug, thiserror::Error)]
pub enum CesError {
    #[error("failed to build ExternalSecret {name:?} for ClusterExternalSecret {ces:?}: {source}")]
    BuildChild {
        ces: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("could not create or update ExternalSecret {namespace}/{name}: {message}")]
    ApplyChild {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("could not delete ExternalSecret {namespace}/{name}: {message}")]
    DeleteChild {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("failed to write the status of ClusterExternalSecret {name:?}: {message}")]
    WriteStatus { name: String, message: String },
}

impl CesError {
    /// Bounded label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            CesError::BuildChild { .. } => "InvalidSpec",
            CesError::ApplyChild { .. } => "ApplyFailed",
            CesError::DeleteChild { .. } => "DeleteFailed",
            CesError::WriteStatus { .. } => "StatusWriteFailed",
        }
    }
}

/// (CES uid, namespace, child name).
type ChildKey = (String, String, String);

/// Everything a reconcile needs, built once by `run`. The digest of what we applied and the
/// fingerprint of the child it produced let a reconcile skip children nobody changed.
pub struct CesContext {
    client: kube::Client,
    metrics: Arc<Metrics>,
    /// Field manager of status writes (the controller's).
    status_manager: String,
    /// The one field manager of every child ExternalSecret.
    child_manager: String,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The ExternalSecret controller's cache: one watch and one copy of every ExternalSecret serve
    /// both controllers.
    children: Store<ExternalSecret>,
    /// Both caches above have listed once: before that, "no such child" may only mean "not seen yet".
    ready: Arc<AtomicBool>,
    /// What we last applied and what it produced, per child.
    applied: Mutex<HashMap<ChildKey, (u64, u64)>>,
    /// Consecutive failed reconciles per CES uid (kube-runtime keeps no per-object backoff).
    failures: Mutex<HashMap<String, u32>>,
}

impl CesContext {
    fn applied(&self) -> std::sync::MutexGuard<'_, HashMap<ChildKey, (u64, u64)>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, uid: &str) {
        self.applied().retain(|(owner, _, _), _| owner != uid);
        self.failures().remove(uid);
    }
}

/// An ExternalSecret the ExternalSecret controller's watch saw change or go: its name and, when a
/// ClusterExternalSecret controls it, that one's name. Enough to find the ClusterExternalSecrets to
/// reconcile (`child_mapper`); their reconcile reads the ExternalSecret cache itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildTouched {
    pub name: String,
    pub controller: Option<String>,
}

impl ChildTouched {
    pub fn of(es: &ExternalSecret) -> Self {
        ChildTouched {
            name: es.name_any(),
            controller: es
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "ClusterExternalSecret")
                .map(|o| o.name.clone()),
        }
    }
}

/// What of a child's metadata our apply determines, and what a user edit changes: generation (spec),
/// labels, annotations and ownerReferences. Status writes change none of these.
fn fingerprint(meta: &ObjectMeta) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    let annotations: Option<BTreeMap<&String, &String>> = meta.annotations.as_ref().map(|a| {
        a.iter()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .collect()
    });
    annotations.hash(&mut h);
    for o in meta.owner_references.iter().flatten() {
        (&o.api_version, &o.kind, &o.name, &o.uid, o.controller).hash(&mut h);
    }
    h.finish()
}

/// The child ExternalSecret as we apply it (without its namespace): `externalSecretMetadata`, the
/// force-sync annotation of the CES, a controller ownerReference to the CES (so deleting the CES
/// deletes its children) and `externalSecretSpec` as written.
pub fn child_body(
    ces: &ClusterExternalSecret,
    child_name: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let meta = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    let mut annotations = meta.annotations;
    if let Some(v) = ces.annotations().get(FORCE_SYNC) {
        annotations.insert(FORCE_SYNC.to_owned(), v.clone());
    }
    let mut metadata = serde_json::json!({
        "name": child_name,
        "ownerReferences": [{
            "apiVersion": ClusterExternalSecret::api_version(&()),
            "kind": ClusterExternalSecret::kind(&()),
            "name": ces.name_any(),
            "uid": ces.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if !meta.labels.is_empty() {
        metadata["labels"] = serde_json::to_value(&meta.labels)?;
    }
    if !annotations.is_empty() {
        metadata["annotations"] = serde_json::to_value(&annotations)?;
    }
    Ok(serde_json::json!({
        "apiVersion": ExternalSecret::api_version(&()),
        "kind": ExternalSecret::kind(&()),
        "metadata": metadata,
        "spec": serde_json::to_value(&ces.spec.external_secret_spec)?,
    }))
}

fn digest(body: &serde_json::Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    h.finish()
}

/// `refreshTime` as a period: ESO's default when unset or unreadable, None for "0" (no periodic
/// re-evaluation; changes are still followed).
pub fn refresh_period(ces: &ClusterExternalSecret) -> Option<Duration> {
    let Some(raw) = ces.spec.refresh_time.as_deref().filter(|r| !r.is_empty()) else {
        return Some(DEFAULT_REFRESH);
    };
    match go_parse_duration::parse_duration(raw) {
        Ok(nanos) if nanos > 0 => Some(Duration::from_nanos(nanos.unsigned_abs())),
        Ok(_) => None,
        Err(_) => {
            warn!(clusterexternalsecret = %ces.name_any(), refresh_time = raw, "refreshTime is not a Go duration; using 1h");
            Some(DEFAULT_REFRESH)
        }
    }
}

async fn reconcile(
    ces: Arc<ClusterExternalSecret>,
    ctx: Arc<CesContext>,
) -> Result<Action, CesError> {
    if !ctx.ready.load(Ordering::Relaxed) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if ces.metadata.deletion_timestamp.is_some() {
        // The API server's garbage collector removes the children through their ownerReferences.
        return Ok(Action::await_change());
    }
    let ces_name = ces.name_any();
    let uid = ces.uid().unwrap_or_default();
    let child_name = ces.child_name();
    let body = child_body(&ces, &child_name).map_err(|source| CesError::BuildChild {
        ces: ces_name.clone(),
        name: child_name.clone(),
        source,
    })?;
    let want = digest(&body);

    let namespaces: Vec<NamespaceView> = ctx
        .namespaces
        .state()
        .iter()
        .map(|ns| NamespaceView {
            name: ns.name_any(),
            labels: ns.labels().clone(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    let children: Vec<ChildView> = {
        let applied = ctx.applied();
        ctx.children
            .state()
            .iter()
            .filter_map(|c| {
                let holder = Holder::of(
                    c.metadata.owner_references.as_deref().unwrap_or_default(),
                    &ces_name,
                );
                let name = c.name_any();
                if name != child_name && holder != Holder::ThisCes {
                    return None;
                }
                let namespace = c.namespace().unwrap_or_default();
                let up_to_date = holder == Holder::ThisCes
                    && applied.get(&(uid.clone(), namespace.clone(), name.clone()))
                        == Some(&(want, fingerprint(&c.metadata)));
                Some(ChildView {
                    namespace,
                    name,
                    uid: c.uid().unwrap_or_default(),
                    holder,
                    up_to_date,
                })
            })
            .collect()
    };
    let selectors: Vec<_> = ces.selectors().collect();
    let plan = plan::plan(&Inputs {
        ces_name: &ces_name,
        child_name: &child_name,
        names: &ces.spec.namespaces,
        selectors: &selectors,
        namespaces: &namespaces,
        children: &children,
    });
    if let Some(e) = &plan.selection_error {
        warn!(clusterexternalsecret = %ces_name, error = %e, "cannot select namespaces");
    }

    let results: Vec<(Step, Result<(), String>)> = futures::stream::iter(plan.steps.clone())
        .map(|step| {
            let (ctx, body, uid, child_name) =
                (ctx.clone(), &body, uid.clone(), child_name.clone());
            async move {
                let result = execute(&ctx, &step, body, want, &uid, &child_name).await;
                if let Err(e) = &result {
                    warn!(category = e.category(), error = %e, "ClusterExternalSecret child write failed");
                }
                (step, result.map_err(|e| e.to_string()))
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let failed_writes = results.iter().any(|(_, r)| r.is_err());
    // A deleted namespace took its child with it: forget what we applied there, or namespace churn
    // (preview environments) would grow this map for ever.
    {
        let live: std::collections::HashSet<&str> =
            namespaces.iter().map(|n| n.name.as_str()).collect();
        ctx.applied()
            .retain(|(owner, namespace, _), _| owner != &uid || live.contains(namespace.as_str()));
    }

    let status = plan::status(&child_name, &plan, &results, ces.status.as_ref());
    ctx.metrics
        .ces_ready(&ces_name, status.failed_namespaces.is_empty());
    if ces.status.as_ref() != Some(&status) {
        write_status(&ctx, &ces_name, &status).await?;
        info!(
            clusterexternalsecret = %ces_name,
            provisioned = status.provisioned_namespaces.len(),
            failed = status.failed_namespaces.len(),
            "ClusterExternalSecret status updated"
        );
    }
    if failed_writes || plan.selection_error.is_some() {
        let failures = {
            let mut f = ctx.failures();
            let n = f.entry(uid).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        return Ok(Action::requeue(backoff::failure_delay(failures)));
    }
    ctx.failures().remove(&uid);
    Ok(match refresh_period(&ces) {
        Some(every) => Action::requeue(backoff::jittered(every)),
        None => Action::await_change(),
    })
}

/// Carries out one step of the plan; remembers what an apply produced so an unchanged child is not
/// written again.
async fn execute(
    ctx: &CesContext,
    step: &Step,
    body: &serde_json::Value,
    want: u64,
    ces_uid: &str,
    child_name: &str,
) -> Result<(), CesError> {
    match step {
        Step::Keep { .. } => Ok(()),
        Step::Apply { namespace, create } => {
            let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), namespace);
            let mut body = body.clone();
            body["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
            let failed = |e: kube::Error| CesError::ApplyChild {
                namespace: namespace.clone(),
                name: child_name.to_owned(),
                message: kube_message(&e),
            };
            // A new child is a real create (POST): one that someone else made meanwhile, unseen by
            // our cache, answers 409 and is left alone (an apply would merge into it and add our
            // ownerReference, so deleting the CES would delete it). A child we hold is applied with
            // force and takes back fields someone edited, as ESO overwrites its children.
            let applied = if *create {
                let child: ExternalSecret =
                    serde_json::from_value(body).map_err(|e| CesError::ApplyChild {
                        namespace: namespace.clone(),
                        name: child_name.to_owned(),
                        message: format!("invalid child: {e}"),
                    })?;
                let params = PostParams {
                    field_manager: Some(ctx.child_manager.clone()),
                    ..PostParams::default()
                };
                api.create(&params, &child).await.map_err(failed)?
            } else {
                let params = PatchParams::apply(&ctx.child_manager).force();
                api.patch(child_name, &params, &Patch::Apply(&body))
                    .await
                    .map_err(failed)?
            };
            ctx.applied().insert(
                (ces_uid.to_owned(), namespace.clone(), child_name.to_owned()),
                (want, fingerprint(&applied.metadata)),
            );
            debug!(namespace = %namespace, name = child_name, create, "applied ClusterExternalSecret child");
            Ok(())
        }
        Step::Delete {
            namespace,
            name,
            uid,
        } => {
            let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), namespace);
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            ctx.applied()
                .remove(&(ces_uid.to_owned(), namespace.clone(), name.clone()));
            match api.delete(name, &params).await {
                Ok(_) => {
                    info!(namespace = %namespace, name = %name, "deleted ClusterExternalSecret child that is no longer wanted");
                    Ok(())
                }
                // Already gone, or replaced by another object of that name: nothing of ours to delete.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(CesError::DeleteChild {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    message: kube_message(&e),
                }),
            }
        }
    }
}

async fn write_status(
    ctx: &CesContext,
    name: &str,
    status: &ClusterExternalSecretStatus,
) -> Result<(), CesError> {
    let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
    let body = serde_json::json!({
        "apiVersion": ClusterExternalSecret::api_version(&()),
        "kind": ClusterExternalSecret::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(&ctx.status_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| CesError::WriteStatus {
        name: name.to_owned(),
        message: kube_message(&e),
    })?;
    Ok(())
}

fn error_policy(ces: Arc<ClusterExternalSecret>, err: &CesError, ctx: Arc<CesContext>) -> Action {
    let failures = {
        let mut f = ctx.failures();
        let n = f.entry(ces.uid().unwrap_or_default()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    warn!(category = err.category(), error = %err, "ClusterExternalSecret reconcile failed");
    Action::requeue(backoff::failure_delay(failures))
}

/// The ClusterExternalSecrets to look at again when an ExternalSecret changes: its controller, if a
/// ClusterExternalSecret, and every one whose child has that name (a conflicting object appeared or
/// went away).
fn child_mapper(
    ces_reader: Store<ClusterExternalSecret>,
) -> impl Fn(ChildTouched) -> Vec<ObjectRef<ClusterExternalSecret>> + Send + Sync + Clone + 'static
{
    move |child| {
        ces_reader
            .state()
            .iter()
            .filter(|ces| {
                ces.child_name() == child.name
                    || child.controller.as_deref() == Some(ces.name_any().as_str())
            })
            .map(|ces| ObjectRef::from_obj(ces.as_ref()))
            .collect()
    }
}

/// Runs the ClusterExternalSecret controller until `shutdown`. `namespaces` is the Namespace
/// metadata cache and `namespace_events` the stream that fills it (shared with ClusterSecretStore
/// conditions, so Namespaces are watched once). `children` is the ExternalSecret controller's cache and
/// `child_events` what its watch saw change (so ExternalSecrets are watched once, too).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    config: &Config,
    metrics: Arc<Metrics>,
    health: &Health,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    namespace_events: impl Stream<Item = Result<PartialObjectMeta<Namespace>, watcher::Error>>
    + Send
    + 'static,
    children: Store<ExternalSecret>,
    child_events: impl Stream<Item = ChildTouched> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let (ces_reader, ces_writer) = reflector::store::<ClusterExternalSecret>();
    let ctx = Arc::new(CesContext {
        client: client.clone(),
        metrics,
        status_manager: config.field_manager.clone(),
        child_manager: format!("{}/clusterexternalsecret", config.field_manager),
        namespaces: namespaces.clone(),
        children: children.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        applied: Mutex::default(),
        failures: Mutex::default(),
    });
    // Status writes change neither generation nor annotations, so they do not re-trigger.
    let ces_stream = watcher(
        Api::<ClusterExternalSecret>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect(observe(health))
    .modify(slim_metadata)
    .inspect({
        let ctx = ctx.clone();
        move |event| {
            if let Ok(watcher::Event::Delete(ces)) = event {
                ctx.forget(&ces.uid().unwrap_or_default());
                ctx.metrics.forget_ces(&ces.name_any());
            }
        }
    })
    .reflect(ces_writer)
    .applied_objects()
    .predicate_filter(
        (predicates::generation as fn(&ClusterExternalSecret) -> Option<u64>)
            .combine(predicates::annotations as fn(&ClusterExternalSecret) -> Option<u64>),
        Default::default(),
    );
    let children_stream = child_events.flat_map({
        let mapper = child_mapper(ces_reader.clone());
        move |child| futures::stream::iter(mapper(child))
    });
    let _ready = {
        let (ready, namespaces) = (ctx.ready.clone(), namespaces);
        AbortOnDrop(tokio::spawn(async move {
            if wait_ready(Some(namespaces)).await && wait_ready(Some(children)).await {
                ready.store(true, Ordering::Relaxed);
            }
        }))
    };
    let all_ces = {
        let reader = ces_reader.clone();
        move |_: PartialObjectMeta<Namespace>| {
            reader
                .state()
                .iter()
                .map(|ces| ObjectRef::from_obj(ces.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let in_flight = InFlight::default();
    let stream = Controller::for_stream(ces_stream, ces_reader.clone())
        // A namespace created, relabelled or deleted may change every selection.
        .watches_stream(namespace_events, all_ces)
        // kube-runtime's `owns` would look a cluster-scoped owner up in the child's namespace.
        .reconcile_on(children_stream)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(in_flight.track(reconcile), error_policy, ctx);
    drive(stream, shutdown, &in_flight, DRAIN_LIMIT, |result| {
        if let Err(err) = result {
            debug!(error = %err, "ClusterExternalSecret reconcile request failed");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ces(yaml: &str) -> ClusterExternalSecret {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn the_child_carries_the_metadata_the_force_sync_annotation_and_a_controller_reference() {
        let c = ces(
            "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: shared, uid: u-1, annotations: {external-secrets.io/force-sync: '7', other: not-copied}}\nspec:\n  externalSecretMetadata: {labels: {team: a}, annotations: {note: hi}}\n  externalSecretSpec:\n    secretStoreRef: {name: s, kind: ClusterSecretStore}\n    data: [{secretKey: k, remoteRef: {key: r}}]",
        );
        let body = child_body(&c, "db").unwrap();
        assert_eq!(body["apiVersion"], "external-secrets.io/v1");
        assert_eq!(body["kind"], "ExternalSecret");
        assert_eq!(body["metadata"]["name"], "db");
        assert_eq!(body["metadata"]["labels"], serde_json::json!({"team": "a"}));
        assert_eq!(
            body["metadata"]["annotations"],
            serde_json::json!({"note": "hi", "external-secrets.io/force-sync": "7"})
        );
        assert_eq!(
            body["metadata"]["ownerReferences"],
            serde_json::json!([{"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "name": "shared", "uid": "u-1", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            body["spec"]["secretStoreRef"],
            serde_json::json!({"name": "s", "kind": "ClusterSecretStore"})
        );
        assert_eq!(body["spec"]["data"][0]["remoteRef"]["key"], "r");
        // No empty maps: applying `labels: {}` would claim the field for nothing.
        let bare = ces(
            "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: shared}\nspec:\n  externalSecretSpec: {secretStoreRef: {name: s}}",
        );
        let body = child_body(&bare, "shared").unwrap();
        assert!(body["metadata"].get("labels").is_none());
        assert!(body["metadata"].get("annotations").is_none());
    }

    #[test]
    fn refresh_time_defaults_to_an_hour_and_zero_turns_it_off() {
        let with = |t: &str| {
            ces(&format!(
                "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: c}}\nspec:\n  refreshTime: '{t}'\n  externalSecretSpec: {{secretStoreRef: {{name: s}}}}"
            ))
        };
        assert_eq!(refresh_period(&with("1m")), Some(Duration::from_secs(60)));
        assert_eq!(
            refresh_period(&with("1h30m")),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(refresh_period(&with("0")), None);
        assert_eq!(refresh_period(&with("soon")), Some(DEFAULT_REFRESH));
        let unset = ces(
            "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: c}\nspec:\n  externalSecretSpec: {secretStoreRef: {name: s}}",
        );
        assert_eq!(refresh_period(&unset), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn the_fingerprint_ignores_status_writes_but_not_user_edits() {
        let meta = |generation: i64, labels: &[(&str, &str)]| ObjectMeta {
            generation: Some(generation),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            resource_version: Some(format!("{generation}00")),
            ..ObjectMeta::default()
        };
        let base = meta(1, &[("a", "1")]);
        let status_write = ObjectMeta {
            resource_version: Some("999".into()),
            ..base.clone()
        };
        assert_eq!(fingerprint(&base), fingerprint(&status_write));
        assert_ne!(fingerprint(&base), fingerprint(&meta(2, &[("a", "1")])));
        assert_ne!(fingerprint(&base), fingerprint(&meta(1, &[("a", "2")])));
    }
}
