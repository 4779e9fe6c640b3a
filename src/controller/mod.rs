//! The reconcile pipeline: resolve store -> fetch -> build (pure) -> apply (server-side apply) -> status.
//! Each step is its own module; this file holds the per-object decisions and wires them to kube-runtime.

pub mod apply;
pub mod backoff;
pub mod build;
pub mod caches;
pub mod cluster_external_secret;
pub mod hash_key;
pub mod plan;
pub mod recorder;
pub mod refresh;
pub mod resolve;
pub mod rewrite;
pub mod rotation;
pub mod runtime;
pub mod status;
pub mod stores;
pub mod templating;
pub mod values;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};

use self::apply::Change;
use self::build::BuildError;
use self::caches::Caches;
use self::recorder::Recorder;
use self::resolve::ResolveError;
use crate::admin::Metrics;
use crate::api::{CreationPolicy, DeletionPolicy, ExternalSecret, RefreshPolicy};
use crate::provider::{FetchRequest, ProviderError, Providers, Versions};

/// Settings fixed for the life of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server-side-apply field manager of status writes; Secret writes use `<this>/<ExternalSecret uid>`.
    pub field_manager: String,
    /// `NAMESPACE/NAME` of the Secret holding the hash key (`hash_key.rs`); None: a key for this process.
    pub hash_key_secret: Option<String>,
    /// Stores whose `spec.controller` differs are left to another controller.
    pub controller_class: String,
    /// Watch one namespace only (no ClusterSecretStores, no Namespace watch).
    pub namespace: Option<String>,
    pub concurrency: u16,
    /// Slow retry for failures that need a human to change something.
    pub permanent_retry: Duration,
    /// Export every source's rotation dates as metrics (one date lookup per source per sync), not
    /// only for ExternalSecrets with the max-age annotation.
    pub rotation_age_metrics: bool,
    /// Most remote secrets one `dataFrom.find` may match; more is an error (nothing is read).
    pub find_limit: usize,
    /// How a periodic refresh learns that nothing changed (`--change-detection`).
    pub change_detection: ChangeDetection,
    /// A periodic refresh fetches everything at least this often, whatever the listing says
    /// (`--full-resync-interval`).
    pub full_resync_interval: Duration,
}

/// `--change-detection`: `list` (default) asks the provider's bulk listing whether an ExternalSecret's
/// sources moved before fetching them; `off` fetches at every refresh, as ESO does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ChangeDetection {
    #[default]
    List,
    Off,
}

/// Default of `--full-resync-interval`.
pub const DEFAULT_FULL_RESYNC: Duration = Duration::from_secs(24 * 3600);

/// Default of `--find-limit`.
pub const DEFAULT_FIND_LIMIT: usize = 1000;

impl Default for Config {
    fn default() -> Self {
        Config {
            field_manager: "secret-sync".to_owned(),
            hash_key_secret: None,
            controller_class: String::new(),
            namespace: None,
            concurrency: 64,
            permanent_retry: Duration::from_secs(300),
            rotation_age_metrics: false,
            find_limit: DEFAULT_FIND_LIMIT,
            change_detection: ChangeDetection::List,
            full_resync_interval: DEFAULT_FULL_RESYNC,
        }
    }
}

/// Everything a reconcile needs, built once by `runtime::run`.
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub providers: Providers,
    pub caches: Caches,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Derives the salt of every Secret we create (`hash_key.rs`).
    pub hash_key: hash_key::HashKey,
    state: ObjectStates,
}

/// Per-ExternalSecret memory between reconciles, shared with the ExternalSecret watch so that an
/// object's entry goes when the object does (kube-runtime never reconciles a deleted object that has no
/// finalizer, so the reconcile alone would keep it forever).
///
/// Keyed by namespace and name (`StateKey`), each state boxed: an `ObjectRef` key with its uid and
/// resourceVersion copies, and states inline in a table sized for growth, cost twice the memory at
/// 10,000 ExternalSecrets (docs/memory.md).
#[derive(Clone, Default)]
pub struct ObjectStates {
    states: Arc<Mutex<HashMap<StateKey, Box<ObjectState>>>>,
    /// Objects seen so far in the watch's current (re-)list.
    listing: Arc<Mutex<std::collections::HashSet<StateKey>>>,
}

/// Namespace and name of an ExternalSecret.
type StateKey = (Box<str>, Box<str>);

fn state_key(key: &ObjectRef<ExternalSecret>) -> StateKey {
    (
        key.namespace.as_deref().unwrap_or_default().into(),
        key.name.as_str().into(),
    )
}

fn state_key_of(es: &ExternalSecret) -> StateKey {
    (
        es.metadata.namespace.as_deref().unwrap_or_default().into(),
        es.metadata.name.as_deref().unwrap_or_default().into(),
    )
}

/// What a change must touch to reconcile an ExternalSecret: its uid (a re-created object), generation
/// (spec), labels and annotations. Status writes touch none of them, so our own do not re-trigger.
fn trigger_hash(es: &ExternalSecret) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let meta = &es.metadata;
    (&meta.uid, meta.generation, &meta.labels, &meta.annotations).hash(&mut h);
    h.finish()
}

impl ObjectStates {
    /// Follows the ExternalSecret watch: a deletion drops the object's entry, and the end of a
    /// (re-)list drops the entries of objects that vanished while the watch was down.
    pub fn observe(&self, event: &kube::runtime::watcher::Event<ExternalSecret>) {
        use kube::runtime::watcher::Event;
        let (Ok(mut states), Ok(mut listing)) = (self.states.lock(), self.listing.lock()) else {
            return;
        };
        match event {
            Event::Delete(es) => {
                states.remove(&state_key_of(es));
            }
            Event::Init => listing.clear(),
            Event::InitApply(es) => {
                listing.insert(state_key_of(es));
            }
            Event::InitDone => {
                let listed = std::mem::take(&mut *listing);
                states.retain(|key, _| listed.contains(key));
            }
            Event::Apply(_) => {}
        }
    }

    /// Whether a watched ExternalSecret is new or changed in what `trigger_hash` covers, which the
    /// reconcile must see; it remembers the answer. The filter on the controller's trigger stream: as
    /// kube-runtime's `predicate_filter`, without a second per-object cache.
    pub fn changed(&self, es: &ExternalSecret) -> bool {
        let hash = trigger_hash(es);
        let Ok(mut states) = self.states.lock() else {
            return true;
        };
        let state = states.entry(state_key_of(es)).or_default();
        let changed = state.trigger != Some(hash);
        state.trigger = Some(hash);
        changed
    }

    /// How many ExternalSecrets have state.
    pub fn len(&self) -> usize {
        self.states.lock().map(|s| s.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What we remember about an ExternalSecret between reconciles (lost on restart, by design:
/// a restart re-syncs everything once).
#[derive(Default, Clone)]
struct ObjectState {
    /// `trigger_hash` of the object as the watch last delivered it.
    trigger: Option<u64>,
    failures: u32,
    last_success: Option<Instant>,
    /// `synced_version` of the ExternalSecret at the last successful sync.
    synced_version: Option<String>,
    /// `store_digest` of its store at the last successful sync.
    store: Option<u64>,
    /// resourceVersion of the Secret after our last write or check.
    secret_rv: Option<String>,
    /// A rotation event asked for a fetch before the refresh timer is due.
    force_refresh: bool,
    /// Arrival of the oldest rotation event not yet followed by a successful sync.
    event_received: Option<Instant>,
    /// While backing off after a failure, events wait for this retry instead of fetching early.
    retry_at: Option<Instant>,
    /// Inputs digest of the failed attempt: a user's change ends the backoff, an event does not.
    failed_inputs: Option<u64>,
    /// When the generated credential in the Secret must be renewed (`refresh::renewal_delay`).
    renew_at: Option<Instant>,
    /// `renew_at` is known (from a sync, or read from the Secret after a restart), even if None.
    renewal_known: bool,
    /// Digest of the sources' change-detection tokens taken before the last full fetch
    /// (`versions_digest`); None when the listing could not vouch for every source.
    source_versions: Option<u64>,
    /// When the sources were last fetched (not skipped): bounds how long skips may go on.
    last_full_fetch: Option<Instant>,
}

/// Why a sync failed. Messages carry names and keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("failed to use the store's provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("spec.dataFrom[{index}].sourceRef.generatorRef: {source}")]
    Generate {
        index: usize,
        source: crate::generators::GeneratorError,
    },
    #[error("invalid target policy: {0}")]
    InvalidPolicy(&'static str),
    #[error(transparent)]
    Refused(#[from] plan::Refusal),
    #[error("failed to apply Secret {name:?}: {}", kube_message(.source))]
    Apply { name: String, source: kube::Error },
    #[error("failed to read Secret {name:?}: {}", kube_message(.source))]
    Read { name: String, source: kube::Error },
    #[error("failed to delete Secret {name:?}: {}", kube_message(.source))]
    Delete { name: String, source: kube::Error },
    #[error("the ExternalSecret was deleted during the sync")]
    OwnerGone,
}

/// A kube error as a plain sentence for status, Events and logs: the API server's own message for an
/// API error (kube's Display appends a Debug dump of the whole Status), the error's text otherwise.
pub fn kube_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

impl SyncError {
    /// Bounded label for metrics, Events and status.
    pub fn category(&self) -> &'static str {
        match self {
            SyncError::Build(e) => e.category(),
            SyncError::Resolve(e) => e.category(),
            SyncError::Provider(e) => e.category(),
            SyncError::Generate { source, .. } => source.category(),
            SyncError::InvalidPolicy(_) => "InvalidSpec",
            SyncError::Refused(r) => r.category(),
            SyncError::Apply { .. } | SyncError::Read { .. } | SyncError::Delete { .. } => {
                "KubernetesAPI"
            }
            SyncError::OwnerGone => "OwnerGone",
        }
    }

    /// Failures only a change to the ExternalSecret, its store or the remote can fix.
    pub fn is_permanent(&self) -> bool {
        match self {
            SyncError::Build(e) => e.is_permanent(),
            SyncError::Provider(e) => e.is_permanent(),
            SyncError::Generate { source, .. } => source.is_permanent(),
            SyncError::Refused(r) => r.is_permanent(),
            SyncError::Resolve(_) | SyncError::InvalidPolicy(_) => true,
            SyncError::Apply { .. }
            | SyncError::Read { .. }
            | SyncError::Delete { .. }
            | SyncError::OwnerGone => false,
        }
    }

    /// "<category>: <message>", the text shown in status and Events.
    pub fn status_message(&self) -> String {
        format!("{}: {self}", self.category())
    }
}

/// ESO-style version of the inputs a user controls: generation plus labels and annotations, so
/// editing either (e.g. a `force-sync` annotation) counts as a change.
pub fn synced_version(es: &ExternalSecret) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    es.metadata.labels.hash(&mut h);
    es.metadata.annotations.hash(&mut h);
    format!(
        "{}-{:016x}",
        es.metadata.generation.unwrap_or_default(),
        h.finish()
    )
}

/// Identity and generation of the store: an edit of it counts as a change (Periodic only). An
/// ExternalSecret made of generators alone has no store.
fn store_digest(store: Option<&crate::api::StoreObject>) -> u64 {
    let Some(store) = store else {
        return 0;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    store.uid.hash(&mut h);
    store.generation.hash(&mut h);
    h.finish()
}

/// What a user controls, for "did they change anything since the failure" (ends a backoff).
fn inputs_digest(es: &ExternalSecret, store: Option<&crate::api::StoreObject>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    synced_version(es).hash(&mut h);
    store_digest(store).hash(&mut h);
    h.finish()
}

/// One digest of every request's change-detection token, or None when any is unknown (that source
/// is fetched at every refresh, and so is the ExternalSecret).
fn versions_digest(requests: &[FetchRequest], tokens: &[Option<String>]) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (request, token) in requests.iter().zip(tokens) {
        request.hash(&mut h);
        token.as_ref()?.hash(&mut h);
    }
    (requests.len() == tokens.len()).then(|| h.finish())
}

/// What a reconcile decided, before status and timing are derived from it.
enum Decision {
    /// Nothing to fetch: inputs unchanged and the refresh is not due. Check again after `due_in`.
    UpToDate { due_in: Option<Duration> },
    /// The Secret step is done; `rotation` is the RotationOverdue condition when monitored.
    Synced(Change, Option<crate::api::Condition>),
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        providers: Providers,
        caches: Caches,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        hash_key: hash_key::HashKey,
    ) -> Self {
        Context {
            client,
            config,
            providers,
            caches,
            metrics,
            recorder,
            hash_key,
            state: ObjectStates::default(),
        }
    }

    /// Shares `states` with the ExternalSecret watch, which frees the entries of deleted objects.
    pub fn with_states(mut self, states: ObjectStates) -> Self {
        self.state = states;
        self
    }

    fn state_of(&self, key: &ObjectRef<ExternalSecret>) -> ObjectState {
        self.state
            .states
            .lock()
            .map(|s| {
                s.get(&state_key(key))
                    .map(|state| ObjectState::clone(state))
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    fn update_state(&self, key: &ObjectRef<ExternalSecret>, f: impl FnOnce(&mut ObjectState)) {
        if let Ok(mut s) = self.state.states.lock() {
            f(s.entry(state_key(key)).or_default());
        }
    }

    /// A rotation event names this ExternalSecret: fetch at its next reconcile even if the refresh
    /// timer is not due (the caller then triggers that reconcile).
    pub fn request_refresh(&self, key: &ObjectRef<ExternalSecret>, received: Instant) {
        self.update_state(key, |s| {
            s.force_refresh = true;
            s.event_received = Some(s.event_received.map_or(received, |r| r.min(received)));
        });
    }

    /// A `templateFrom` ConfigMap or Secret of this ExternalSecret changed: fetch and render at its
    /// next reconcile even if the refresh timer is not due (Periodic only, as for events).
    pub fn request_render(&self, key: &ObjectRef<ExternalSecret>) {
        self.update_state(key, |s| s.force_refresh = true);
    }

    fn forget(&self, key: &ObjectRef<ExternalSecret>) {
        if let Ok(mut s) = self.state.states.lock() {
            s.remove(&state_key(key));
        }
    }

    /// The pipeline for one ExternalSecret, up to and including the Secret write.
    async fn sync(
        &self,
        es: &ExternalSecret,
        key: &ObjectRef<ExternalSecret>,
    ) -> Result<Decision, SyncError> {
        let spec = &es.spec;
        build::check_supported(spec)?;
        let interval = build::refresh_interval(spec)?;
        let creation = spec.target.creation_policy;
        match (spec.target.deletion_policy, creation) {
            (DeletionPolicy::Delete, c) if c != CreationPolicy::Owner => {
                return Err(SyncError::InvalidPolicy(
                    "deletionPolicy Delete requires creationPolicy Owner",
                ));
            }
            (DeletionPolicy::Merge, CreationPolicy::None) => {
                return Err(SyncError::InvalidPolicy(
                    "deletionPolicy Merge cannot be used with creationPolicy None",
                ));
            }
            _ => {}
        }

        // 1. Resolve the store from the watch caches (none for generators alone, as in ESO).
        let store = build::needs_store(spec)
            .then(|| resolve::resolve_store(es, &self.caches, &self.config.controller_class))
            .transpose()?;
        let namespace = es.metadata.namespace.clone().unwrap_or_default();

        // Skip the fetch unless the refresh policy says it is due (refresh.rs holds the table).
        let state = self.state_of(key);
        let inputs = inputs_digest(es, store.as_ref());
        let version = synced_version(es);
        let cached_secret = self.caches.secret_meta(&namespace, &es.target_name());
        let managed = matches!(creation, CreationPolicy::Owner | CreationPolicy::Orphan);
        let secret_intact = !managed
            || cached_secret.as_ref().is_some_and(|s| {
                state.secret_rv.is_none() || s.resource_version() == state.secret_rv.as_deref()
            });
        let policy = spec.refresh_policy.unwrap_or(RefreshPolicy::Periodic);
        let status_version = es
            .status
            .as_ref()
            .and_then(|s| s.synced_resource_version.clone());
        let last_version = state.synced_version.clone().or(status_version);
        let since = refresh::Since {
            synced_before: last_version.is_some(),
            synced_by_us: state.last_success.is_some(),
            secret_disturbed: !secret_intact,
            retrying: state.failures > 0,
            spec_changed: last_version.as_deref() != Some(version.as_str()),
            store_changed: state
                .store
                .is_some_and(|s| s != store_digest(store.as_ref())),
            event: state.force_refresh,
            elapsed: state.last_success.map(|t| t.elapsed()),
            renew_in: self
                .renewal(es, key, &state, cached_secret.as_deref())
                .await,
            generated_age: generated_age(es),
        };
        // An event bypasses the refresh timer, not the per-object backoff.
        let backing_off = state.force_refresh && state.failed_inputs == Some(inputs);
        if let Some(retry_at) = state
            .retry_at
            .filter(|at| backing_off && *at > Instant::now())
        {
            return Ok(Decision::UpToDate {
                due_in: Some(retry_at - Instant::now()),
            });
        }
        match refresh::decide(policy, interval, since) {
            refresh::Due::Now => {}
            refresh::Due::After(wait) => return Ok(Decision::UpToDate { due_in: Some(wait) }),
            refresh::Due::Never => {
                // No refresh of any kind for this policy: a pending event is dropped, not kept.
                self.update_state(key, |s| {
                    s.force_refresh = false;
                    s.event_received = None;
                });
                return Ok(Decision::UpToDate { due_in: None });
            }
        }

        // 2. Fetch every distinct document in one batch, list every find, and run the generators.
        let provider = match &store {
            Some(store) => Some(self.providers.for_store(store, &namespace).await?),
            None => None,
        };
        let requests = build::requests(spec);
        // Change detection: a refresh due to its timer alone is skipped when the provider's listing shows
        // every source at the version of the last full fetch. Tokens are always taken before the fetch,
        // so a recorded token is never newer than what was written.
        let skippable = refresh::timer_only(&since)
            && build::change_detectable(spec)
            && state
                .last_full_fetch
                .is_some_and(|at| at.elapsed() < self.config.full_resync_interval);
        let tokens = match &provider {
            Some(provider)
                if self.config.change_detection == ChangeDetection::List
                    && !requests.is_empty() =>
            {
                // Only a refresh that may skip asks for a listing younger than its interval; any
                // other takes the last listing as it is, for the next refresh to compare with.
                let max_age = if skippable { interval } else { None };
                provider.versions(&requests, max_age).await
            }
            _ => Versions::Unknown,
        };
        let source_versions = match tokens {
            Versions::Known(tokens) => versions_digest(&requests, &tokens),
            // The listing is being made: come back when it is, without holding a reconcile slot.
            Versions::Pending(wait) => return Ok(Decision::UpToDate { due_in: Some(wait) }),
            Versions::Unknown => None,
        };
        if skippable && source_versions.is_some() && source_versions == state.source_versions {
            self.update_state(key, |s| s.last_success = Some(Instant::now()));
            self.metrics.fetch_skipped(requests.len() as u64);
            let rotation = match &provider {
                Some(provider) => self.rotation_age(es, provider.as_ref(), &requests).await,
                None => None,
            };
            return Ok(Decision::Synced(Change::Unchanged, rotation));
        }
        let (fetched, found) = match &provider {
            Some(provider) => (
                crate::provider::fetch_documents(provider.as_ref(), requests.clone()).await,
                crate::provider::find_all(
                    provider.as_ref(),
                    build::finds(spec),
                    self.config.find_limit,
                )
                .await,
            ),
            None => (HashMap::new(), HashMap::new()),
        };
        let generated = self.generate(es).await?;
        let expires_at = crate::generators::earliest_expiry(&generated);
        let generated = generated
            .into_iter()
            .map(|(index, g)| (index, g.keys))
            .collect();

        // 3. Build the desired data (pure), through the template if there is one.
        let mut desired = build::desired_data_all(spec, &fetched, &found, &generated)?;
        let sources = self.template_sources(es).await?;
        build::apply_template(spec, &mut desired, &sources)?;
        build::mark_expiry(&mut desired, expires_at);

        // 4. Plan (pure) and apply: write, keep, delete or refuse.
        let (change, secret_rv) =
            apply::sync_secret(self, es, &desired, state.secret_rv.as_deref()).await?;
        // A Merge target that does not exist yet is not a sync: the next reconcile tries again.
        if change != Change::TargetMissing {
            self.update_state(key, |s| {
                s.synced_version = Some(version);
                s.store = Some(store_digest(store.as_ref()));
                s.last_success = Some(Instant::now());
                s.secret_rv = secret_rv;
                s.renew_at = expires_at.map(renew_at);
                s.renewal_known = true;
                s.source_versions = source_versions;
                s.last_full_fetch = Some(Instant::now());
            });
        }
        let rotation = match &provider {
            Some(provider) => self.rotation_age(es, provider.as_ref(), &requests).await,
            None => None,
        };
        Ok(Decision::Synced(change, rotation))
    }

    /// Run the ExternalSecret's generators (ECR through the shared AWS identities).
    async fn generate(
        &self,
        es: &ExternalSecret,
    ) -> Result<std::collections::BTreeMap<usize, crate::generators::Generated>, SyncError> {
        crate::generators::generate_all(&self.client, &self.providers.aws, es)
            .await
            .map_err(|(index, source)| SyncError::Generate { index, source })
    }

    /// Time left until the generated credential in the Secret must be renewed: from this process's
    /// memory, or after a restart from the expiry recorded on the Secret (`build::EXPIRES_AT_ANNOTATION`),
    /// read from the cache or, for a Secret the cache does not hold (Merge), once from the API server.
    async fn renewal(
        &self,
        es: &ExternalSecret,
        key: &ObjectRef<ExternalSecret>,
        state: &ObjectState,
        cached_secret: Option<&caches::ManagedSecret>,
    ) -> Option<Duration> {
        if !build::has_generators(&es.spec) {
            return None;
        }
        if !state.renewal_known {
            let expires = match cached_secret {
                Some(cached) => {
                    build::recorded_expiry(cached.annotation(build::EXPIRES_AT_ANNOTATION))
                }
                None => {
                    let namespace = es.metadata.namespace.clone().unwrap_or_default();
                    let read = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
                        self.client.clone(),
                        &namespace,
                    )
                    .get_metadata_opt(&es.target_name())
                    .await;
                    match read {
                        Ok(found) => found.and_then(|s| {
                            build::recorded_expiry(
                                s.metadata
                                    .annotations
                                    .as_ref()?
                                    .get(build::EXPIRES_AT_ANNOTATION)
                                    .map(String::as_str),
                            )
                        }),
                        Err(e) => {
                            // Unknown for now: asked again at the next reconcile.
                            debug!(error = %kube_message(&e), "failed to read the Secret's recorded expiry");
                            return None;
                        }
                    }
                }
            };
            let at = expires.map(renew_at);
            self.update_state(key, |s| {
                s.renew_at = at;
                s.renewal_known = true;
            });
            return at.map(|at| at.saturating_duration_since(Instant::now()));
        }
        state
            .renew_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The ConfigMaps and Secrets `templateFrom` names, read from the ExternalSecret's namespace (as
    /// ESO reads them). Their values only reach the template.
    async fn template_sources(
        &self,
        es: &ExternalSecret,
    ) -> Result<templating::Sources, SyncError> {
        let mut sources = templating::Sources::new();
        let Ok(Some(tpl)) = templating::TemplateSpec::of(&es.spec) else {
            return Ok(sources);
        };
        let namespace = es.metadata.namespace.clone().unwrap_or_default();
        for (kind, name) in tpl.sources() {
            let read = |source| SyncError::Read {
                name: name.to_owned(),
                source,
            };
            let data = match kind {
                templating::SourceKind::ConfigMap => kube::Api::<
                    k8s_openapi::api::core::v1::ConfigMap,
                >::namespaced(
                    self.client.clone(), &namespace
                )
                .get_opt(name)
                .await
                .map_err(read)?
                .map(|cm| {
                    cm.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, crate::provider::SecretBytes::from(v)))
                        .collect()
                }),
                templating::SourceKind::Secret => {
                    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
                        self.client.clone(),
                        &namespace,
                    )
                    .get_opt(name)
                    .await
                    .map_err(read)?
                    .map(|secret| {
                        secret
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, crate::provider::SecretBytes::new(v.0)))
                            .collect()
                    })
                }
            };
            sources.insert((kind, name.to_owned()), data);
        }
        Ok(sources)
    }

    /// Rotation-age monitoring, only where asked for (the annotation, or --rotation-age-metrics): one
    /// date lookup per source per sync. Never fails the sync; problems become an Unknown condition.
    async fn rotation_age(
        &self,
        es: &ExternalSecret,
        provider: &dyn crate::provider::SecretProvider,
        requests: &[FetchRequest],
    ) -> Option<crate::api::Condition> {
        let annotation = es
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(rotation::MAX_AGE_ANNOTATION));
        let namespace = es.metadata.namespace.clone().unwrap_or_default();
        let name = es.metadata.name.clone().unwrap_or_default();
        self.metrics.max_age(
            &namespace,
            &name,
            annotation.and_then(|raw| rotation::parse_max_age(raw)),
        );
        if annotation.is_none() && !self.config.rotation_age_metrics {
            return None;
        }
        let mut keys: Vec<String> = requests
            .iter()
            .filter(|r| !r.metadata)
            .map(|r| r.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        let answers = provider.rotation_times(&keys).await;
        let mut sources = Vec::new();
        let mut failure = None;
        for (key, answer) in keys.into_iter().zip(answers) {
            match answer {
                Ok(times) => {
                    self.metrics.source_times(
                        &namespace,
                        &name,
                        &key,
                        times.last_rotated,
                        times.last_changed,
                    );
                    sources.push((key, times));
                }
                Err(e) => failure = Some(e),
            }
        }
        let raw = annotation?;
        let Some(max_age) = rotation::parse_max_age(raw) else {
            return Some(rotation::invalid_max_age(raw));
        };
        if let Some(e) = failure {
            return Some(crate::api::Condition::new(
                rotation::CONDITION,
                crate::api::ConditionStatus::Unknown,
                "RotationDateUnavailable",
                format!("failed to read rotation dates: {e}"),
            ));
        }
        Some(rotation::verdict(
            max_age,
            &sources,
            std::time::SystemTime::now(),
        ))
    }
}

/// kube-runtime entry point for one ExternalSecret.
pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let started = Instant::now();
    let key = ObjectRef::from_obj(es.as_ref());
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.metadata.name.clone().unwrap_or_default();
    if es.metadata.deletion_timestamp.is_some() {
        // Owned Secrets go with their owner through garbage collection; nothing to clean up here.
        ctx.forget(&key);
        ctx.metrics.forget(&namespace, &name);
        return Ok(Action::await_change());
    }

    if !ctx.caches.is_ready() {
        // Stores may exist but not be listed yet: judging now would report a bogus StoreNotFound.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let outcome = ctx.sync(&es, &key).await;
    let mut rotation = None;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let version = synced_version(&es);
    let (change, action) = match outcome {
        Ok(Decision::UpToDate { due_in }) => {
            debug!(%namespace, %name, "up to date; no fetch");
            // `due_in` is what is left of an already-jittered interval or backoff: no new jitter.
            let action = due_in.map_or_else(Action::await_change, Action::requeue);
            return Ok(action);
        }
        Ok(Decision::Synced(change, rotation_condition)) => {
            rotation = rotation_condition;
            let mut event_received = None;
            ctx.update_state(&key, |s| {
                s.failures = 0;
                s.force_refresh = false;
                s.retry_at = None;
                s.failed_inputs = None;
                event_received = s.event_received.take();
            });
            if let Some(received) = event_received {
                ctx.metrics.event_synced(received.elapsed().as_secs_f64());
            }
            let renew_in = ctx
                .state_of(&key)
                .renew_at
                .map(|at| at.saturating_duration_since(Instant::now()));
            (Ok(change), next_refresh(&es, renew_in))
        }
        // Another controller class owns this ExternalSecret's store: leave its status and Events alone.
        Err(SyncError::Resolve(ResolveError::OtherControllerClass { .. })) => {
            ctx.forget(&key);
            return Ok(Action::await_change());
        }
        Err(SyncError::OwnerGone) => {
            ctx.forget(&key);
            return Ok(Action::await_change());
        }
        Err(err) => {
            let mut failures = 0;
            ctx.update_state(&key, |s| {
                s.failures = s.failures.saturating_add(1);
                failures = s.failures;
            });
            let delay = if err.is_permanent() {
                backoff::jittered_below(ctx.config.permanent_retry)
            } else {
                backoff::failure_delay(failures)
            };
            // Never wait longer than the refresh the user asked for: a failure is retried at the
            // next refresh at the latest (ESO's requeue after refreshInterval).
            let delay = match (es.spec.refresh_policy, build::refresh_interval(&es.spec)) {
                (None | Some(RefreshPolicy::Periodic), Ok(Some(every))) => delay.min(every),
                _ => delay,
            };
            let failed_inputs = ctx
                .caches
                .is_ready()
                .then(|| {
                    resolve::resolve_store(&es, &ctx.caches, &ctx.config.controller_class).ok()
                })
                .flatten()
                .map(|store| inputs_digest(&es, Some(&store)));
            ctx.update_state(&key, |s| {
                s.retry_at = Some(Instant::now() + delay);
                s.failed_inputs = failed_inputs;
            });
            warn!(%namespace, %name, category = err.category(), error = %err, retry_in = ?delay, "sync failed");
            (Err(err), Action::requeue(delay))
        }
    };

    let mut desired = status::desired_status(&es, &change, &version, &now);
    if change.is_ok() {
        rotation_status(&ctx, &es, &mut desired, rotation, &now).await;
    }
    let previous_message = es
        .status
        .as_ref()
        .and_then(|s| crate::api::condition::find(&s.conditions, "Ready"))
        .and_then(|c| c.message.clone());
    publish_event(&ctx, &es, &change, previous_message.as_deref()).await;
    let ready = matches!(
        change,
        Ok(Change::Created
            | Change::Updated
            | Change::Unchanged
            | Change::NotWritten
            | Change::ImmutableKept
            | Change::Deleted
            | Change::AlreadyDeleted
            | Change::TargetMissing
            | Change::NothingFound)
    );
    ctx.metrics.ready(&namespace, &name, ready);
    ctx.metrics.reconciled(
        &namespace,
        &name,
        started.elapsed().as_secs_f64(),
        change.as_ref().err().map(SyncError::category),
    );
    ctx.metrics
        .refresh_interval(&namespace, &name, periodic_interval(&es));
    if ready {
        ctx.metrics
            .synced_ok(&namespace, &name, std::time::SystemTime::now());
    }
    // A steady state logs nothing at info: only a change to the Secret does, once.
    match &change {
        Ok(c @ (Change::Created | Change::Updated | Change::Deleted)) => {
            info!(%namespace, %name, change = ?c, "synced")
        }
        Ok(c) => debug!(%namespace, %name, change = ?c, "synced"),
        Err(_) => {}
    }
    status::write_if_changed(&ctx, &es, desired).await?;
    Ok(action)
}

/// Put (or drop) the RotationOverdue condition; warn once when a source becomes overdue.
async fn rotation_status(
    ctx: &Context,
    es: &ExternalSecret,
    status: &mut crate::api::ExternalSecretStatus,
    rotation: Option<crate::api::Condition>,
    now: &Time,
) {
    let Some(condition) = rotation else {
        status.conditions.retain(|c| c.type_ != rotation::CONDITION);
        return;
    };
    let was_overdue = crate::api::condition::find(&status.conditions, rotation::CONDITION)
        .is_some_and(|c| c.status == crate::api::ConditionStatus::True);
    if condition.status == crate::api::ConditionStatus::True && !was_overdue {
        let event = Event {
            type_: EventType::Warning,
            reason: rotation::CONDITION.into(),
            note: condition.message.clone(),
            action: "CheckRotationAge".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &es.object_ref(&())).await {
            debug!(error = %e, "failed to publish event");
        }
    }
    crate::api::condition::upsert(&mut status.conditions, condition, now);
}

/// When to fetch again after a successful sync: the refresh interval, or sooner when a generated
/// credential must be renewed first (CreatedOnce keeps what it created).
fn next_refresh(es: &ExternalSecret, renew_in: Option<Duration>) -> Action {
    let renew_in = renew_in.filter(|_| es.spec.refresh_policy != Some(RefreshPolicy::CreatedOnce));
    match (periodic_interval(es).map(backoff::jittered), renew_in) {
        (Some(every), Some(renew)) => Action::requeue(every.min(renew)),
        (Some(wait), None) | (None, Some(wait)) => Action::requeue(wait),
        (None, None) => Action::await_change(),
    }
}

/// How long ago the generated values of `es` were written (`status.refreshTime`, which moves with every
/// write of new content); None without generator entries or before the first sync.
fn generated_age(es: &ExternalSecret) -> Option<Duration> {
    if !build::has_generators(&es.spec) {
        return None;
    }
    let written = es.status.as_ref()?.refresh_time.as_ref()?;
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(written.0);
    Some(Duration::try_from(age).unwrap_or_default())
}

/// When a credential expiring at `expires` is renewed (`refresh::renewal_delay`), as an Instant.
fn renew_at(expires: std::time::SystemTime) -> Instant {
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Instant::now() + refresh::renewal_delay(left)
}

/// The interval of a periodic refresh; `None` when the ExternalSecret is not refreshed periodically.
fn periodic_interval(es: &ExternalSecret) -> Option<Duration> {
    match (
        es.spec.refresh_policy.unwrap_or(RefreshPolicy::Periodic),
        build::refresh_interval(&es.spec),
    ) {
        (RefreshPolicy::Periodic, Ok(Some(every))) => Some(every),
        _ => None,
    }
}

async fn publish_event(
    ctx: &Context,
    es: &ExternalSecret,
    change: &Result<Change, SyncError>,
    previous_message: Option<&str>,
) {
    let target = es.target_name();
    let event = match change {
        Ok(Change::Created) => Event {
            type_: EventType::Normal,
            reason: "Created".into(),
            note: Some(format!("Created Secret {target:?}")),
            action: "Sync".into(),
            secondary: None,
        },
        Ok(Change::Updated) => Event {
            type_: EventType::Normal,
            reason: "Updated".into(),
            note: Some(format!("Updated Secret {target:?}")),
            action: "Sync".into(),
            secondary: None,
        },
        Ok(Change::Deleted) => {
            let note = status::deleted_message(es);
            // Once deleted, every refresh finds nothing again: one Event, not one per refresh.
            if previous_message == Some(note.as_str()) {
                return;
            }
            Event {
                type_: EventType::Normal,
                reason: "Deleted".into(),
                note: Some(note),
                action: "Sync".into(),
                secondary: None,
            }
        }
        Ok(Change::ImmutableKept) => {
            let note = status::immutable_kept_message(es);
            // Reported once, when it starts; every later refresh finds the same and stays quiet.
            if previous_message == Some(note.as_str()) {
                return;
            }
            Event {
                type_: EventType::Warning,
                reason: "ImmutableNotUpdated".into(),
                note: Some(note),
                action: "Sync".into(),
                secondary: None,
            }
        }
        Ok(
            Change::Unchanged
            | Change::NotWritten
            | Change::AlreadyDeleted
            | Change::TargetMissing
            | Change::NothingFound,
        ) => return,
        Err(err) => {
            let message = err.status_message();
            // Repeated identical failures are already visible in status; one Event per new failure.
            if previous_message == Some(message.as_str()) {
                return;
            }
            Event {
                type_: EventType::Warning,
                reason: "UpdateFailed".into(),
                note: Some(message),
                action: "Sync".into(),
                secondary: None,
            }
        }
    };
    if let Err(e) = ctx.recorder.publish(&event, &es.object_ref(&())).await {
        debug!(error = %e, "failed to publish event");
    }
}

/// Failures of the status write itself (the sync outcome is handled inside `reconcile`).
pub fn error_policy(es: Arc<ExternalSecret>, err: &kube::Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(es.as_ref());
    let mut failures = 1;
    ctx.update_state(&key, |s| {
        // The status never reached the server: as a failure, the next reconcile syncs again.
        s.failures = s.failures.saturating_add(1);
        failures = s.failures;
    });
    warn!(error = %err, "status write failed");
    Action::requeue(backoff::failure_delay(failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_api_errors_read_as_plain_sentences() {
        let status = kube::core::Status::failure(
            "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
            "Invalid",
        )
        .with_code(422);
        let err = SyncError::Apply {
            name: "s".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(
            err.status_message(),
            "KubernetesAPI: failed to apply Secret \"s\": Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set (422)"
        );
    }

    fn es(name: &str) -> ExternalSecret {
        let mut es = ExternalSecret::new(name, Default::default());
        es.metadata.namespace = Some("ns".into());
        es
    }

    #[test]
    fn the_trigger_filter_passes_new_and_changed_objects_only() {
        use kube::runtime::watcher::Event;
        let states = ObjectStates::default();
        let mut a = es("a");
        a.metadata.uid = Some("u1".into());
        a.metadata.generation = Some(1);
        assert!(states.changed(&a), "first sight");
        assert!(!states.changed(&a), "the same object again");
        a.status = Some(crate::api::ExternalSecretStatus {
            synced_resource_version: Some("x".into()),
            ..Default::default()
        });
        a.metadata.resource_version = Some("9".into());
        assert!(!states.changed(&a), "a status write");
        a.metadata.generation = Some(2);
        assert!(states.changed(&a), "a spec edit");
        a.metadata.labels = Some([("k".to_owned(), "v".to_owned())].into());
        assert!(states.changed(&a), "a label");
        a.metadata.annotations = Some([("force-sync".to_owned(), "1".to_owned())].into());
        assert!(states.changed(&a), "an annotation");
        assert!(!states.changed(&a));
        a.metadata.uid = Some("u2".into());
        assert!(states.changed(&a), "re-created under the same name");
        states.observe(&Event::Delete(a.clone()));
        assert!(states.changed(&a), "after a deletion it is new again");
        assert!(states.changed(&es("b")), "another object");
    }

    #[test]
    fn deleted_external_secrets_leave_no_state_behind() {
        use kube::runtime::watcher::Event;
        let states = ObjectStates::default();
        let touch = |name: &str| {
            if let Ok(mut s) = states.states.lock() {
                s.entry(state_key_of(&es(name))).or_default().failures = 1;
            }
        };
        for name in ["a", "b", "c"] {
            touch(name);
        }
        states.observe(&Event::Apply(es("a")));
        assert_eq!(states.len(), 3, "an update keeps state");
        states.observe(&Event::Delete(es("a")));
        assert_eq!(states.len(), 2, "a deletion frees it");
        // A re-list after a watch gap: `c` was deleted meanwhile and gets no Delete event.
        states.observe(&Event::Init);
        states.observe(&Event::InitApply(es("b")));
        assert_eq!(
            states.len(),
            2,
            "nothing is dropped before the listing is complete"
        );
        states.observe(&Event::InitDone);
        assert_eq!(
            states.len(),
            1,
            "objects missing from the listing are freed"
        );
        touch("d");
        states.observe(&Event::Init);
        states.observe(&Event::InitDone);
        assert!(states.is_empty(), "an empty listing frees everything");
    }
}
