//! The reconcile of one workload kind: read its Secrets' hashes from the cache, plan, patch the
//! annotations. It writes nothing but our annotations, and only when the plan asks for it.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::ReloadError;
use super::plan::{self, Hashes, Plan};
use super::refs::OptIn;
use crate::admin::Metrics;
use crate::controller::backoff::failure_delay;
use crate::controller::build::{DATA_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// A workload kind whose pods roll when its pod template changes.
pub trait Workload:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    fn pod_template(&self) -> Option<&PodTemplateSpec>;
    /// Status churns during every rollout and is never read here; not caching it saves memory.
    fn clear_status(&mut self);
}

macro_rules! workload {
    ($kind:ty) => {
        impl Workload for $kind {
            fn pod_template(&self) -> Option<&PodTemplateSpec> {
                self.spec.as_ref().map(|s| &s.template)
            }
            fn clear_status(&mut self) {
                self.status = None;
            }
        }
    };
}
workload!(Deployment);
workload!(StatefulSet);
workload!(DaemonSet);

/// Shared by the three workload controllers.
pub struct Context {
    pub client: kube::Client,
    pub field_manager: String,
    /// Our Secrets' metadata (label-selected): the data hashes, never the data.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per workload, for the backoff kube-runtime does not keep per object.
    failures: Mutex<HashMap<(&'static str, String, String), u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        field_manager: String,
        secrets: Store<PartialObjectMeta<Secret>>,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            client,
            field_manager,
            secrets,
            metrics,
            failures: Mutex::default(),
        }
    }

    fn record_failure(&self, key: (&'static str, String, String)) -> u32 {
        let Ok(mut failures) = self.failures.lock() else {
            return 1;
        };
        let n = failures.entry(key).or_default();
        *n = n.saturating_add(1);
        *n
    }

    fn clear_failures(&self, key: &(&'static str, String, String)) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

fn kind_of<K: Workload>() -> &'static str {
    // Deployment, StatefulSet, DaemonSet: static strings from k8s-openapi, a bounded metric label.
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "Workload",
    }
}

fn key_of<K: Workload>(obj: &K) -> (&'static str, String, String) {
    (
        kind_of::<K>(),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    )
}

/// Data hashes of the covered Secrets that secret-sync manages in `namespace`. A Secret without our
/// label or hash is not ours: we would not know when its data changes, so it never counts.
pub fn managed_hashes(
    secrets: &Store<PartialObjectMeta<Secret>>,
    namespace: &str,
    names: &BTreeSet<String>,
) -> Hashes {
    names
        .iter()
        .filter_map(|name| {
            let secret = secrets.get(&ObjectRef::new(name).within(namespace))?;
            let managed = secret
                .labels()
                .get(MANAGED_BY_LABEL)
                .is_some_and(|v| v == MANAGED_BY_VALUE);
            let hash = secret.annotations().get(DATA_HASH_ANNOTATION)?;
            managed.then(|| (name.clone(), hash.clone()))
        })
        .collect()
}

/// Whether a workload needs our attention at all: opted in, or carrying a record to forget.
pub fn is_relevant<K: Workload>(obj: &K) -> bool {
    let annotations = obj.annotations();
    OptIn::from_annotations(annotations).is_some()
        || annotations.contains_key(plan::OBSERVED_ANNOTATION)
}

/// The opted-in workloads of `namespace` in `store` that cover the Secret `name`.
pub fn users_of<K: Workload>(store: &Store<K>, namespace: &str, name: &str) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .filter(|w| w.namespace().as_deref() == Some(namespace))
        .filter(|w| {
            OptIn::from_annotations(w.annotations())
                .is_some_and(|opt| opt.covered(w.pod_template()).contains(name))
        })
        .map(|w| ObjectRef::from_obj(w.as_ref()))
        .collect()
}

pub async fn reconcile<K: Workload>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, ReloadError> {
    let kind = kind_of::<K>();
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let annotations = obj.annotations();
    let template = obj.pod_template();
    let covered = OptIn::from_annotations(annotations)
        .map(|opt| opt.covered(template))
        .unwrap_or_default();
    let hashes = managed_hashes(&ctx.secrets, &namespace, &covered);
    let plan = plan::plan(annotations, template, &hashes);
    let Some(mut body) = plan::patch_body(&plan) else {
        ctx.clear_failures(&key_of(obj.as_ref()));
        return Ok(Action::await_change());
    };
    // Precondition on what we planned from: if the cache is behind (our previous write not seen
    // yet), the server refuses, and we plan again from the newer object instead of restarting twice.
    if let Some(rv) = obj.resource_version()
        && let Some(metadata) = body.get_mut("metadata").and_then(|m| m.as_object_mut())
    {
        metadata.insert("resourceVersion".to_owned(), rv.into());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PatchParams {
        field_manager: Some(ctx.field_manager.clone()),
        ..PatchParams::default()
    };
    match api.patch(&name, &params, &Patch::Merge(&body)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // The watch brings the newer version; a status-only change would be filtered out
            // there, so ask again shortly rather than wait for it.
            debug!(kind, %namespace, %name, "workload changed since it was read; planning again");
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Err(source) => {
            return Err(ReloadError::Patch {
                kind,
                namespace,
                name,
                source: Box::new(source),
            });
        }
    }
    ctx.metrics
        .kube_write(&K::plural(&()).to_lowercase(), "patch");
    ctx.clear_failures(&key_of(obj.as_ref()));
    match &plan {
        Plan::Rollout { template_hash, .. } => {
            ctx.metrics.workload_restart(kind);
            info!(kind, %namespace, %name, secrets = ?hashes.keys().collect::<Vec<_>>(), %template_hash,
                "data of a Secret the workload uses changed; rolling restart");
        }
        Plan::Record { .. } => debug!(kind, %namespace, %name, "recorded Secret hashes"),
        Plan::Forget => debug!(kind, %namespace, %name, "workload opted out of reload"),
        Plan::Unchanged => {}
    }
    Ok(Action::await_change())
}

pub fn error_policy<K: Workload>(obj: Arc<K>, err: &ReloadError, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(key_of(obj.as_ref()));
    let delay = failure_delay(failures);
    warn!(error = %err, failures, retry_in = ?delay, "workload reload failed");
    Action::requeue(delay)
}
