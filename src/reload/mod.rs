//! Workload reload: rolls Deployments, StatefulSets and DaemonSets that opted in when the data of a
//! Secret they use changed. It patches only our annotations, and never restarts on first sight.
//!
//! Opt-in (workload metadata annotations):
//! - `secret-sync.io/reload: "true"`: every Secret the pod template references (env `secretKeyRef`,
//!   `envFrom.secretRef`, `secret` and projected volumes; containers and initContainers).
//! - `secret-sync.io/reload-secrets: "a,b"`: these Secrets, referenced by the template or not.
//!
//! Either way only Secrets that secret-sync manages count (managed-by label and data-hash
//! annotation): we watch only their metadata, so we know when their data changes and never hold
//! data. Other Secrets named in `reload-secrets` are ignored.
//!
//! The workload's metadata annotation `secret-sync.io/observed-secrets` records `name=data-hash`
//! pairs as last seen; recording never rolls pods. When a recorded Secret's hash changes, the
//! pod-template annotation `secret-sync.io/secrets-hash` is set to a hash over the current pairs,
//! which rolls the pods once; both are written in one merge patch guarded by resourceVersion.

pub mod plan;
pub mod refs;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use tracing::{debug, info};

use self::workload::{Context, Workload};
use crate::admin::Metrics;
use crate::controller::build::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::shutdown::{DRAIN_LIMIT, InFlight, drive};

pub use self::plan::{OBSERVED_ANNOTATION, SECRETS_HASH_ANNOTATION};
pub use self::refs::{RELOAD_ANNOTATION, RELOAD_SECRETS_ANNOTATION};

/// The field manager of every reload write, the same as the Secret writes.
pub const FIELD_MANAGER: &str = "secret-sync";

/// Requests for one Secret change within this window become one reconcile per workload, so that
/// several Secrets rotated together roll the pods once.
const DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("failed to patch the reload annotations of {kind} {namespace}/{name}: {source}")]
    Patch {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Runs the three workload controllers until `shutdown` resolves (in-flight patches finish).
/// `namespace` limits every watch to one namespace, as the operator's `--namespace` does.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = shutdown.shared();
    let ns = namespace.as_deref();

    let (secret_reader, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_stream = watcher(
        scoped::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
    )
    .default_backoff()
    .reflect(secret_writer)
    .touched_objects();

    let (deploy_reader, deploy_writer) = reflector::store::<Deployment>();
    let (sts_reader, sts_writer) = reflector::store::<StatefulSet>();
    let (ds_reader, ds_writer) = reflector::store::<DaemonSet>();
    let (deploy_tx, deploy_rx) = mpsc::unbounded();
    let (sts_tx, sts_rx) = mpsc::unbounded();
    let (ds_tx, ds_rx) = mpsc::unbounded();

    // Secret changes become reconcile requests for the workloads that use them.
    let router = {
        let (d, s, ds) = (deploy_reader.clone(), sts_reader.clone(), ds_reader.clone());
        AbortOnDrop(tokio::spawn(secret_stream.for_each(move |event| {
            match event {
                Ok(secret) => {
                    let namespace = secret.namespace().unwrap_or_default();
                    let name = secret.name_any();
                    route(&d, &deploy_tx, &namespace, &name);
                    route(&s, &sts_tx, &namespace, &name);
                    route(&ds, &ds_tx, &namespace, &name);
                }
                Err(err) => debug!(error = %err, "reload Secret watch error; retrying"),
            }
            future::ready(())
        })))
    };

    // Planning against a half-listed Secret cache would record too few hashes and then restart
    // when the rest arrive; nothing is reconciled before the first full list.
    if !wait_ready(&secret_reader, shutdown.clone()).await {
        drop(router);
        return;
    }
    info!("reload: Secret cache ready; watching workloads");

    let ctx = Arc::new(Context::new(
        client.clone(),
        FIELD_MANAGER.to_owned(),
        secret_reader,
        metrics,
    ));
    future::join3(
        controller(
            scoped(&client, ns),
            deploy_reader,
            deploy_writer,
            deploy_rx,
            ctx.clone(),
            shutdown.clone(),
        ),
        controller(
            scoped(&client, ns),
            sts_reader,
            sts_writer,
            sts_rx,
            ctx.clone(),
            shutdown.clone(),
        ),
        controller(
            scoped(&client, ns),
            ds_reader,
            ds_writer,
            ds_rx,
            ctx,
            shutdown,
        ),
    )
    .await;
    drop(router);
    info!("reload stopped");
}

fn route<K: Workload>(
    store: &Store<K>,
    tx: &mpsc::UnboundedSender<ObjectRef<K>>,
    namespace: &str,
    name: &str,
) {
    for workload in workload::users_of(store, namespace, name) {
        // A closed channel means that controller is shutting down; nothing left to tell it.
        let _ = tx.unbounded_send(workload);
    }
}

async fn controller<K: Workload>(
    api: Api<K>,
    reader: Store<K>,
    writer: reflector::store::Writer<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Opt-in lives in annotations, which no server-side selector can filter on: every workload is
    // cached (without status and managedFields), and only relevant ones are reconciled. Status
    // updates change neither generation nor annotations, so they trigger nothing.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|w: &mut K| {
            w.meta_mut().managed_fields = None;
            w.clear_status();
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            (predicates::generation as fn(&K) -> Option<u64>)
                .combine(predicates::annotations as fn(&K) -> Option<u64>),
            Default::default(),
        )
        .try_filter(|w| future::ready(workload::is_relevant(w)));
    let kind = K::kind(&()).to_string();
    let shutdown = shutdown.shared();
    let in_flight = InFlight::default();
    let results = Controller::for_stream(stream, reader)
        .reconcile_on(triggers)
        .with_config(
            controller::Config::default()
                .debounce(DEBOUNCE)
                .concurrency(4),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            in_flight.track(workload::reconcile::<K>),
            workload::error_policy::<K>,
            ctx,
        );
    drive(results, shutdown, &in_flight, DRAIN_LIMIT, |result| {
        if let Err(err) = result {
            debug!(kind = %kind, error = %err, "reload request failed");
        }
    })
    .await;
}

/// Wait until `store` has listed once (true), or shutdown or its writer is gone (false).
/// Short repeated waits: `Store::wait_until_ready` keeps only the last waiter's waker.
async fn wait_ready<K: Resource + Clone>(
    store: &Store<K>,
    shutdown: impl Future<Output = ()> + Unpin,
) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let ready = async {
        loop {
            match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
                Ok(result) => return result.is_ok(),
                Err(_elapsed) => continue,
            }
        }
    };
    tokio::pin!(ready);
    match future::select(ready, shutdown).await {
        future::Either::Left((ok, _)) => ok,
        future::Either::Right(((), _)) => false,
    }
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Secret router ends with `run`, also when `run` is dropped (lost leadership).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
