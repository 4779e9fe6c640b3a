//! Wiring: the watches (reflector caches), the ExternalSecret controller and the store-status
//! controllers, with graceful shutdown. No reconcile logic lives here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use tracing::{info, warn};

use super::build::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::caches::{Caches, ManagedSecret};
use super::recorder::Recorder;
use super::templating::SourceKind;
use super::{Config, Context, cluster_external_secret, error_policy, reconcile, stores};
use crate::admin::{Health, Metrics};
use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore, StoreKind};
use crate::events::ChangeReceiver;
use crate::events::index::ReferenceIndex;
use crate::provider::Providers;
use crate::shutdown::{DRAIN_LIMIT, InFlight, drive};

/// Runs until `shutdown` resolves (then in-flight reconciles finish) or a watch fails for good.
pub async fn run(
    client: kube::Client,
    config: Config,
    providers: Providers,
    metrics: Arc<Metrics>,
    health: Health,
    changes: Option<ChangeReceiver>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.clone();
    let es_api: Api<ExternalSecret> = scoped(&client, ns.as_deref());
    let ss_api: Api<SecretStore> = scoped(&client, ns.as_deref());
    let secret_api: Api<PartialObjectMeta<Secret>> = scoped(&client, ns.as_deref());

    // Caches the reconcile reads from.
    let (es_reader, es_writer) = reflector::store::<ExternalSecret>();
    let (ss_reader, ss_writer) = reflector::store::<SecretStore>();
    let (secret_reader, secret_writer) = reflector::store::<ManagedSecret>();
    let ss_stream = watcher(ss_api.clone(), watcher::Config::default())
        .default_backoff()
        .inspect(observe(&health))
        .reflect(ss_writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    let secret_stream = reflector::reflector(
        secret_writer,
        watcher(
            secret_api,
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        )
        .default_backoff()
        .inspect(observe(&health))
        .map_ok(|event| {
            map_event(event, |s: PartialObjectMeta<Secret>| {
                ManagedSecret::from_meta(s.metadata)
            })
        }),
    )
    // kube-runtime's `owns` needs the full metadata type; the cache keeps the owners' names instead.
    .flat_map(|event| {
        futures::stream::iter(
            touched_ref(&event)
                .map(|s| s.owners().collect::<Vec<_>>())
                .unwrap_or_default(),
        )
    });
    // Status writes change neither generation, labels nor annotations, so they never re-trigger.
    // The reference index (remote name -> ExternalSecrets) follows the same watch as the cache.
    // Only rotation events look names up; without them the index would hold every remote name for nothing.
    let index = changes
        .is_some()
        .then(|| Arc::new(ReferenceIndex::default()));
    let states = super::ObjectStates::default();
    // What the ExternalSecret watch sees, for the ClusterExternalSecret controller (cluster-wide only).
    let (child_tx, child_rx) = match ns {
        None => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        Some(_) => (None, None),
    };
    let es_stream = watcher(es_api.clone(), watcher::Config::default())
        .default_backoff()
        .inspect(observe(&health))
        .modify(slim_metadata)
        .inspect({
            let (index, metrics, states) = (index.clone(), metrics.clone(), states.clone());
            move |event| {
                if let Ok(event) = event {
                    if let Some(index) = &index {
                        index.observe(event);
                    }
                    states.observe(event);
                    // Deleted ExternalSecrets leave no metric series behind.
                    if let watcher::Event::Delete(es) = event {
                        let namespace = es.metadata.namespace.as_deref().unwrap_or_default();
                        metrics.forget(namespace, es.metadata.name.as_deref().unwrap_or_default());
                    }
                }
            }
        })
        .reflect(es_writer)
        // After the cache took the event: the ClusterExternalSecret controller reads that cache.
        .inspect({
            let tx = child_tx.clone();
            move |event| {
                if let (Some(tx), Some(es)) = (&tx, touched_ref(event)) {
                    let _ = tx.send(cluster_external_secret::ChildTouched::of(es));
                }
            }
        })
        .applied_objects()
        // Status writes change neither generation, labels nor annotations, so they never re-trigger.
        .try_filter({
            let states = states.clone();
            move |es| future::ready(states.changed(es))
        })
        // The controller keys its queue and its scheduled requeues by the trigger's ObjectRef and
        // reconciles the cached object; without these two the refs hold no copy of them.
        .map_ok(|mut es| {
            es.metadata.uid = None;
            es.metadata.resource_version = None;
            es
        });

    let (cluster_stores, namespaces, ns_stream) = if ns.is_none() {
        let (css_reader, css_writer) = reflector::store::<ClusterSecretStore>();
        let (ns_reader, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
        let css_stream = watcher(
            Api::<ClusterSecretStore>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .inspect(observe(&health))
        .reflect(css_writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
        // Namespace labels feed ClusterSecretStore conditions (through the cache) and
        // ClusterExternalSecret selections (through the cache and as triggers).
        let ns_stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .inspect(observe(&health))
        .modify(slim_metadata)
        .reflect(ns_writer)
        .touched_objects();
        (
            Some((css_reader, css_stream)),
            Some(ns_reader),
            Some(ns_stream),
        )
    } else {
        (None, None, None)
    };

    // Readiness belongs to this run's caches. A flag left true by an earlier run in the same process
    // (a restart, a new leadership term) would let reconciles judge against caches that have not
    // listed yet: a bogus StoreNotFound, or a rewrite of an untouched Secret missing from the cache.
    let caches_ready = Arc::new(AtomicBool::new(false));
    health.watches_ready.store(false, Ordering::Relaxed);
    let _not_ready_after = NotReadyOnDrop(health.watches_ready.clone());
    let caches = Caches {
        secret_stores: ss_reader.clone(),
        cluster_stores: cluster_stores.as_ref().map(|(r, _)| r.clone()),
        namespaces: namespaces.clone(),
        secrets: secret_reader.clone(),
        ready: caches_ready.clone(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: config.field_manager.clone(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let hash_key = match config.hash_key_secret.as_deref() {
        None => super::hash_key::HashKey::default(),
        Some(secret) => {
            match super::hash_key::HashKey::load_or_create(client.clone(), secret).await {
                Ok(key) => key,
                Err(e) => {
                    // Still correct, only less stable: a Secret re-created after a restart gets a new hash.
                    tracing::warn!(error = %e, "using a hash key for this process only");
                    super::hash_key::HashKey::default()
                }
            }
        }
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            config.clone(),
            providers.clone(),
            caches.clone(),
            metrics.clone(),
            recorder,
            hash_key,
        )
        .with_states(states),
    );

    // Readiness: every cache has listed once.
    let _readiness = {
        let health = health.clone();
        let (es_r, ss_r, sec_r) = (es_reader.clone(), ss_reader.clone(), secret_reader.clone());
        let css_r = caches.cluster_stores.clone();
        let ns_r = namespaces.clone();
        AbortOnDrop(tokio::spawn(async move {
            let ok = wait_ready(Some(es_r)).await
                && wait_ready(Some(ss_r)).await
                && wait_ready(Some(sec_r)).await
                && wait_ready(css_r).await
                && wait_ready(ns_r).await;
            if ok {
                info!("watches ready");
                caches_ready.store(true, Ordering::Relaxed);
                health.watches_ready.store(true, Ordering::Relaxed);
            }
        }))
    };

    let shutdown = shutdown.shared();
    let mut controller = Controller::for_stream(es_stream, es_reader.clone())
        .reconcile_on(secret_stream)
        .watches_stream(
            ss_stream,
            store_mapper(es_reader.clone(), StoreKind::SecretStore),
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency));
    // templateFrom sources: metadata-only watches of ConfigMaps and Secrets, with no cache (each event
    // is mapped and dropped), so a change re-renders the ExternalSecrets that name it.
    let cm_stream = watcher(
        scoped::<PartialObjectMeta<ConfigMap>>(&client, ns.as_deref()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let source_secret_stream = watcher(
        scoped::<PartialObjectMeta<Secret>>(&client, ns.as_deref()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}!={MANAGED_BY_VALUE}")),
    )
    .default_backoff()
    .touched_objects();
    controller = controller
        .watches_stream(
            cm_stream,
            template_source_mapper(es_reader.clone(), ctx.clone(), SourceKind::ConfigMap),
        )
        .watches_stream(
            source_secret_stream,
            template_source_mapper(es_reader.clone(), ctx.clone(), SourceKind::Secret),
        );
    if let Some((_, css_stream)) = cluster_stores {
        controller = controller.watches_stream(
            css_stream,
            store_mapper(es_reader.clone(), StoreKind::ClusterSecretStore),
        );
    }
    let _router = match changes.zip(index) {
        Some((changes, index)) => {
            let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel();
            controller = controller
                .reconcile_on(futures::stream::unfold(trigger_rx, |mut rx| async move {
                    rx.recv().await.map(|r| (r, rx))
                }));
            let route = route_changes(changes, index, caches.clone(), ctx.clone(), trigger_tx);
            Some(AbortOnDrop(tokio::spawn(route)))
        }
        None => None,
    };
    let in_flight = InFlight::default();
    let es_controller = drive(
        controller.graceful_shutdown_on(shutdown.clone()).run(
            in_flight.track(reconcile),
            error_policy,
            ctx.clone(),
        ),
        shutdown.clone(),
        &in_flight,
        DRAIN_LIMIT,
        |result| {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile request failed");
            }
        },
    );

    let store_status = stores::run(client.clone(), config.clone(), providers, shutdown.clone());
    // ClusterExternalSecrets are cluster-scoped: with --namespace they are not served.
    let ces_controller = match (namespaces, ns_stream, child_rx) {
        (Some(namespaces), Some(ns_stream), Some(child_rx)) => cluster_external_secret::run(
            client.clone(),
            &config,
            metrics.clone(),
            &health,
            namespaces,
            ns_stream,
            es_reader.clone(),
            futures::stream::unfold(child_rx, |mut rx| async move {
                rx.recv().await.map(|c| (c, rx))
            }),
            shutdown.clone(),
        )
        .left_future(),
        _ => {
            info!("single-namespace mode: ClusterExternalSecrets (cluster-scoped) are not served");
            future::ready(()).right_future()
        }
    };
    future::join3(es_controller, store_status, ces_controller).await;
    if shutdown.now_or_never().is_some() {
        info!("controller stopped");
    } else {
        // Nobody asked us to stop: /livez turns 503 so the kubelet restarts the pod.
        health.failed.store(true, Ordering::Relaxed);
        warn!("controller stopped without a shutdown request");
    }
}

/// A watch event with its object converted, for caches that keep a compact form of what they watch.
fn map_event<A, B>(event: watcher::Event<A>, f: impl FnOnce(A) -> B) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(obj) => watcher::Event::Apply(f(obj)),
        watcher::Event::Delete(obj) => watcher::Event::Delete(f(obj)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(f(obj)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The object a watch event applied, deleted or listed (as `WatchStreamExt::touched_objects` gives
/// them).
fn touched_ref<K>(event: &watcher::Result<watcher::Event<K>>) -> Option<&K> {
    match event {
        Ok(
            watcher::Event::Apply(obj)
            | watcher::Event::Delete(obj)
            | watcher::Event::InitApply(obj),
        ) => Some(obj),
        Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => None,
    }
}

/// Feeds a watch's outcomes to the API reachability report (logged slowly, shown on /readyz).
pub(super) fn observe<K>(
    health: &Health,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let api = health.api.clone();
    move |result| match result {
        Ok(_) => api.reached(),
        Err(
            watcher::Error::InitialListFailed(err)
            | watcher::Error::WatchStartFailed(err)
            | watcher::Error::WatchFailed(err),
        ) => {
            api.failed(err);
        }
        Err(watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion) => api.reached(),
    }
}

/// What the caches do not need and would hold 10,000 times over: managedFields, and kubectl's
/// last-applied copy of the whole object. Nothing in the reconcile reads either.
pub(super) fn slim_metadata<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Turns remote changes into reconciles of the ExternalSecrets that read the changed names.
async fn route_changes(
    mut changes: ChangeReceiver,
    index: Arc<ReferenceIndex>,
    caches: Caches,
    ctx: Arc<Context>,
    triggers: tokio::sync::mpsc::UnboundedSender<ObjectRef<ExternalSecret>>,
) {
    while let Some(change) = changes.recv().await {
        let prefixes = store_prefixes(&caches);
        let mut matched = std::collections::HashSet::new();
        for name in &change.names {
            matched.extend(index.lookup(name, &prefixes));
        }
        if matched.is_empty() {
            ctx.metrics.event(change.source, "unmatched");
            tracing::debug!(source = change.source, names = ?change.names, "event matches no ExternalSecret");
            continue;
        }
        ctx.metrics.event(change.source, "matched");
        for es in matched {
            info!(source = change.source, namespace = ?es.namespace, name = %es.name, "rotation event: syncing now");
            ctx.request_refresh(&es, change.received);
            if triggers.send(es).is_err() {
                return;
            }
        }
    }
}

/// Key prefixes of AWS stores: events name the full remote name, ExternalSecrets the unprefixed key.
fn store_prefixes(caches: &Caches) -> Vec<String> {
    let namespaced = caches
        .secret_stores
        .state()
        .into_iter()
        .map(|s| s.spec.clone());
    let cluster = caches
        .cluster_stores
        .iter()
        .flat_map(|c| c.state())
        .map(|s| s.spec.0.clone());
    let mut prefixes: Vec<String> = namespaced
        .chain(cluster)
        .filter_map(|spec| spec.provider.aws.and_then(|aws| aws.prefix))
        .filter(|p| !p.is_empty())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Tasks started by `run` end with it, also when `run` is dropped (lost leadership): nothing it
/// started may keep running, let alone writing.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When `run` ends or is dropped its caches are gone: /readyz must not keep reporting them ready.
struct NotReadyOnDrop(Arc<AtomicBool>);

impl Drop for NotReadyOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Wait until a cache has listed once (true), or its writer is gone (false).
/// `Store::wait_until_ready` keeps only the last waiter's waker, and the Controller waits on the same
/// store, so a lone long wait here could sleep forever; short, repeated waits re-register each time.
pub(super) async fn wait_ready<K: reflector::Lookup + Clone + 'static>(
    store: Option<Store<K>>,
) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let Some(store) = store else { return true };
    loop {
        match tokio::time::timeout(
            std::time::Duration::from_millis(100),
            store.wait_until_ready(),
        )
        .await
        {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A changed store re-reconciles the ExternalSecrets that reference it.
/// The ExternalSecrets whose `templateFrom` names this ConfigMap or Secret (same namespace), each
/// asked to fetch and render again (a source change is a change, like a rotation event). Reads the raw
/// template without parsing it: this runs for every ConfigMap event.
fn template_source_mapper<S: kube::Resource>(
    es_reader: Store<ExternalSecret>,
    ctx: Arc<Context>,
    kind: SourceKind,
) -> impl Fn(S) -> Vec<ObjectRef<ExternalSecret>> + Send + Sync + Clone + 'static {
    let field = match kind {
        SourceKind::ConfigMap => "configMap",
        SourceKind::Secret => "secret",
    };
    move |source: S| {
        let name = source.meta().name.clone().unwrap_or_default();
        let namespace = source.meta().namespace.clone();
        es_reader
            .state()
            .iter()
            .filter(|es| es.metadata.namespace == namespace)
            .filter(|es| {
                es.spec
                    .target
                    .template
                    .as_ref()
                    .and_then(|t| t.get("templateFrom"))
                    .and_then(|t| t.as_array())
                    .is_some_and(|from| {
                        from.iter().any(|f| {
                            f.get(field)
                                .and_then(|r| r.get("name"))
                                .and_then(|n| n.as_str())
                                == Some(name.as_str())
                        })
                    })
            })
            .map(|es| {
                let key = ObjectRef::from_obj(es.as_ref());
                ctx.request_render(&key);
                key
            })
            .collect()
    }
}

fn store_mapper<S: kube::Resource>(
    es_reader: Store<ExternalSecret>,
    kind: StoreKind,
) -> impl Fn(S) -> Vec<ObjectRef<ExternalSecret>> + Send + Sync + Clone + 'static {
    move |store: S| {
        let name = store.meta().name.clone().unwrap_or_default();
        let namespace = store.meta().namespace.clone();
        es_reader
            .state()
            .iter()
            .filter(|es| {
                es.spec.secret_store_ref.name == name
                    && es.store_kind() == kind
                    && (kind == StoreKind::ClusterSecretStore || es.metadata.namespace == namespace)
            })
            .map(|es| ObjectRef::from_obj(es.as_ref()))
            .collect()
    }
}
