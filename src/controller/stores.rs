//! Store status: validates each SecretStore and ClusterSecretStore through its provider and writes
//! the Ready condition. It never touches ExternalSecrets or Secrets.

use std::sync::Arc;
use std::time::Duration;

use futures::future;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use super::Config;
use crate::api::aws::AwsAuth;
use crate::api::condition::{self, Condition, ConditionStatus};
use crate::api::{
    ClusterSecretStore, ProviderChoice, SecretStore, SecretStoreStatus, StoreKind, StoreObject,
    store_reason,
};
use crate::provider::Providers;
use crate::shutdown::{DRAIN_LIMIT, InFlight, drive};

/// Re-validation period when the store sets none (credentials are re-checked at most this often).
const DEFAULT_REVALIDATE: Duration = Duration::from_secs(300);

struct StoreContext {
    client: kube::Client,
    config: Config,
    providers: Providers,
}

/// Ready message of a ClusterSecretStore whose AWS identity is named without a namespace.
pub const REFERENT_MESSAGE: &str = "store validated as far as it can be: its auth names no namespace, so \
     each ExternalSecret uses the ServiceAccount or Secret of its own namespace (referent \
     authentication), checked when it syncs";

/// The Ready condition a store should carry, from a real validation through its provider.
pub async fn validate(providers: &Providers, store: &StoreObject) -> Condition {
    if let ProviderChoice::Unsupported(name) = store.spec.provider.choice() {
        return Condition::new(
            "Ready",
            ConditionStatus::False,
            store_reason::INVALID_PROVIDER_CONFIG,
            format!("provider {name} is not supported by secret-sync"),
        );
    }
    if store.kind == StoreKind::ClusterSecretStore
        && let ProviderChoice::Aws(aws) = store.spec.provider.choice()
        && aws.auth.as_ref().is_some_and(AwsAuth::is_referent)
    {
        // As ESO: the identity depends on the ExternalSecret's namespace, so it is checked at sync
        // time; the store itself is Ready.
        return Condition::new(
            "Ready",
            ConditionStatus::True,
            store_reason::VALID,
            REFERENT_MESSAGE,
        );
    }
    let namespace = store.namespace.clone().unwrap_or_default();
    let provider = match providers.for_store(store, &namespace).await {
        Ok(p) => p,
        Err(e) => {
            return Condition::new(
                "Ready",
                ConditionStatus::False,
                store_reason::INVALID_PROVIDER_CONFIG,
                e.to_string(),
            );
        }
    };
    match provider.validate().await {
        Ok(()) => Condition::new(
            "Ready",
            ConditionStatus::True,
            store_reason::VALID,
            "store validated",
        ),
        Err(e) => Condition::new(
            "Ready",
            ConditionStatus::False,
            store_reason::VALIDATION_FAILED,
            e.to_string(),
        ),
    }
}

fn revalidate_after(store: &StoreObject) -> Duration {
    match store.spec.refresh_interval {
        Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs()),
        _ => DEFAULT_REVALIDATE,
    }
}

async fn write_status<K>(
    api: Api<K>,
    name: &str,
    kind: &str,
    current: Option<&SecretStoreStatus>,
    ready: Condition,
    manager: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut status = current.cloned().unwrap_or_default();
    condition::upsert(
        &mut status.conditions,
        ready,
        &Time(k8s_openapi::jiff::Timestamp::now()),
    );
    status.capabilities = Some("ReadOnly".to_owned());
    if current == Some(&status) {
        return Ok(());
    }
    let body = serde_json::json!({ "apiVersion": "external-secrets.io/v1", "kind": kind, "status": status });
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

fn ours(config: &Config, store: &StoreObject) -> bool {
    store.spec.controller.clone().unwrap_or_default() == config.controller_class
}

async fn reconcile_namespaced(
    store: Arc<SecretStore>,
    ctx: Arc<StoreContext>,
) -> Result<Action, kube::Error> {
    let obj = StoreObject::from(store.as_ref());
    let api: Api<SecretStore> = Api::namespaced(
        ctx.client.clone(),
        obj.namespace.as_deref().unwrap_or("default"),
    );
    reconcile_store(&ctx, obj, api, "SecretStore", store.status.as_ref()).await
}

async fn reconcile_cluster(
    store: Arc<ClusterSecretStore>,
    ctx: Arc<StoreContext>,
) -> Result<Action, kube::Error> {
    let obj = StoreObject::from(store.as_ref());
    let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
    reconcile_store(&ctx, obj, api, "ClusterSecretStore", store.status.as_ref()).await
}

/// Either kind: validate through the provider, write Ready, come back after the re-validation period.
async fn reconcile_store<K>(
    ctx: &StoreContext,
    obj: StoreObject,
    api: Api<K>,
    kind: &str,
    status: Option<&SecretStoreStatus>,
) -> Result<Action, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !ours(&ctx.config, &obj) {
        return Ok(Action::await_change());
    }
    let ready = validate(&ctx.providers, &obj).await;
    write_status(
        api,
        &obj.name,
        kind,
        status,
        ready,
        &ctx.config.field_manager,
    )
    .await?;
    Ok(Action::requeue(revalidate_after(&obj)))
}

fn retry<K>(_: Arc<K>, _: &kube::Error, _: Arc<StoreContext>) -> Action {
    Action::requeue(Duration::from_secs(10))
}

/// Runs the store-status controllers until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: Config,
    providers: Providers,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ctx = Arc::new(StoreContext {
        client: client.clone(),
        config: config.clone(),
        providers,
    });
    let ss_api: Api<SecretStore> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let namespaced = {
        let in_flight = InFlight::default();
        let stream = Controller::new(ss_api, watcher::Config::default())
            .graceful_shutdown_on(shutdown.clone())
            .run(in_flight.track(reconcile_namespaced), retry, ctx.clone());
        let shutdown = shutdown.clone();
        async move { drive(stream, shutdown, &in_flight, DRAIN_LIMIT, |_| {}).await }
    };
    if config.namespace.is_some() {
        namespaced.await;
        return;
    }
    let cluster = {
        let in_flight = InFlight::default();
        let stream = Controller::new(
            Api::<ClusterSecretStore>::all(client),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(in_flight.track(reconcile_cluster), retry, ctx);
        async move { drive(stream, shutdown, &in_flight, DRAIN_LIMIT, |_| {}).await }
    };
    future::join(namespaced, cluster).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store(kind: StoreKind, auth: &str) -> StoreObject {
        let spec = serde_yaml_ng::from_str(&format!(
            "provider: {{aws: {{service: SecretsManager, region: us-west-2, auth: {auth}}}}}"
        ))
        .unwrap();
        StoreObject {
            kind,
            name: "s".into(),
            namespace: (kind == StoreKind::SecretStore).then(|| "team".into()),
            uid: None,
            generation: None,
            spec,
        }
    }

    #[tokio::test]
    async fn a_cluster_store_naming_a_service_account_without_namespace_is_ready_as_in_eso() {
        let providers = Providers::new(None);
        let auth = "{jwt: {serviceAccountRef: {name: reader}}}";
        let ready = validate(&providers, &store(StoreKind::ClusterSecretStore, auth)).await;
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (ConditionStatus::True, Some(store_reason::VALID))
        );
        assert_eq!(ready.message.as_deref(), Some(REFERENT_MESSAGE));
        // A SecretStore's ServiceAccount is always in its own namespace: really validated (and here,
        // without an API server to read it from, refused).
        let ready = validate(&providers, &store(StoreKind::SecretStore, auth)).await;
        assert_eq!(ready.status, ConditionStatus::False);
        // A ClusterSecretStore naming the namespace is validated too.
        let named = "{jwt: {serviceAccountRef: {name: reader, namespace: ops}}}";
        let ready = validate(&providers, &store(StoreKind::ClusterSecretStore, named)).await;
        assert_eq!(ready.status, ConditionStatus::False);
    }
}
