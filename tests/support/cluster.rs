//! A real secret-sync controller (kube-runtime, real HTTP) running against the fake API server,
//! plus helpers that wait for outcomes a user would observe.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
pub use fake_apiserver::test_time::scaled;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use secret_sync::admin::{Health, Metrics};
use secret_sync::api::{Condition, ExternalSecret};
use secret_sync::controller::{self, runtime};
use secret_sync::provider::Providers;

pub struct TestCluster {
    pub server: FakeApiServer,
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Install our CRDs, as `kubectl apply -f crds/` would.
pub async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in secret_sync::api::crds() {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
}

impl TestCluster {
    /// Fake API server with our CRDs installed, and no controller yet.
    pub async fn without_controller() -> TestCluster {
        secret_sync::install_crypto_provider();
        let server = FakeApiServer::start().await.expect("start fake apiserver");
        let client = server.client();
        install_crds(&client).await;
        TestCluster {
            server,
            client,
            metrics: Arc::new(Metrics::new()),
            health: Health::default(),
            stop: None,
            task: None,
        }
    }

    /// Fake API server, CRDs, and a running controller with default settings.
    pub async fn start() -> TestCluster {
        Self::start_with(controller::Config::default()).await
    }

    pub async fn start_with(config: controller::Config) -> TestCluster {
        let mut cluster = Self::without_controller().await;
        cluster.start_controller(config, None);
        cluster
    }

    pub fn start_controller(
        &mut self,
        config: controller::Config,
        changes: Option<secret_sync::events::ChangeReceiver>,
    ) {
        let providers = Providers::with_metrics(Some(self.client.clone()), self.metrics.clone());
        self.start_controller_with(config, providers, changes);
    }

    /// Start the controller with given providers (e.g. AWS pointed at moto).
    pub fn start_controller_with(
        &mut self,
        config: controller::Config,
        providers: Providers,
        changes: Option<secret_sync::events::ChangeReceiver>,
    ) {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let task = tokio::spawn(runtime::run(
            self.client.clone(),
            config,
            providers,
            self.metrics.clone(),
            self.health.clone(),
            changes,
            shutdown,
        ));
        self.stop = Some(tx);
        self.task = Some(task);
    }

    /// Graceful stop of the controller (as on SIGTERM); the fake API server keeps running.
    pub async fn stop_controller(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(scaled(Duration::from_secs(10)), task)
                .await
                .expect("controller stops within 10s (scaled)")
                .expect("controller task");
        }
    }

    /// Server-side apply every document of `yaml` (namespaced kinds default to "default").
    pub async fn apply(&self, yaml: &str) {
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value.clone()).expect("object");
            let types = obj.types.clone().expect("apiVersion and kind");
            let (group, version) = match types.api_version.split_once('/') {
                Some((g, v)) => (g.to_owned(), v.to_owned()),
                None => (String::new(), types.api_version.clone()),
            };
            let plural = plural_of(&types.kind);
            let ar = ApiResource {
                group,
                version,
                api_version: types.api_version.clone(),
                kind: types.kind.clone(),
                plural,
            };
            let name = obj.metadata.name.clone().expect("name");
            let api: Api<DynamicObject> = if is_cluster_scoped(&types.kind) {
                Api::all_with(self.client.clone(), &ar)
            } else {
                Api::namespaced_with(
                    self.client.clone(),
                    obj.metadata.namespace.as_deref().unwrap_or("default"),
                    &ar,
                )
            };
            api.patch(
                &name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
        }
    }

    /// Timer refreshes so far with the fake provider: each either read its values or was skipped by
    /// change detection.
    pub fn refreshes(&self) -> u64 {
        self.metrics.provider_calls("fake", "GetSecret", "success") + self.metrics.fetches_skipped()
    }

    pub async fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .expect("get secret")
    }

    pub async fn external_secret(&self, namespace: &str, name: &str) -> ExternalSecret {
        Api::<ExternalSecret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .expect("get es")
    }

    pub async fn ready(&self, namespace: &str, name: &str) -> Option<Condition> {
        let es = self.external_secret(namespace, name).await;
        es.status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
    }

    /// Wait until the Secret holds exactly `key = value`, or fail saying what was there instead.
    pub async fn wait_secret_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &[u8],
    ) -> Secret {
        let desc = format!("Secret {namespace}/{name} to hold key {key:?}");
        wait_for(&desc, Duration::from_secs(15), || async {
            let s = self.secret(namespace, name).await?;
            let got = s.data.as_ref()?.get(key)?;
            (got.0 == value).then_some(s)
        })
        .await
    }

    /// Wait until the Ready condition has this status and reason.
    pub async fn wait_ready(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Condition {
        let desc = format!("ExternalSecret {namespace}/{name} Ready={status} reason {reason}");
        wait_for(&desc, Duration::from_secs(15), || async {
            let c = self.ready(namespace, name).await?;
            (format!("{:?}", c.status) == status && c.reason.as_deref() == Some(reason))
                .then_some(c)
        })
        .await
    }

    /// Event notes recorded for an object (core/v1 or events.k8s.io/v1, whichever the recorder used).
    pub async fn event_texts(&self, namespace: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        let list = api.list(&Default::default()).await.expect("list events");
        list.items
            .into_iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }
}

/// The real `kubectl` binary with a kubeconfig (and discovery cache) of its own for one fake API server.
pub struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(server: &FakeApiServer) -> Kubectl {
        let dir = tempfile::tempdir().expect("tempdir");
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("write kubeconfig");
        Kubectl { dir }
    }

    /// Runs kubectl to completion (asynchronously, so the in-process server keeps serving).
    pub async fn run(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl is installed on every machine of this kind")
    }
}

/// The workload reload controllers, running next to the main controller; stopped on drop.
pub struct Reload {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Reload {
    /// Graceful stop (as on SIGTERM), waiting for in-flight patches.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(scaled(Duration::from_secs(10)), task)
                .await
                .expect("reload stops within 10s (scaled)")
                .expect("reload task");
        }
    }
}

impl Drop for Reload {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl TestCluster {
    /// Start `secret_sync::reload::run` against this cluster, as `run --enable-reload` does.
    pub fn start_reload(&self) -> Reload {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let task = tokio::spawn(secret_sync::reload::run(
            self.client.clone(),
            None,
            self.metrics.clone(),
            shutdown,
        ));
        Reload {
            stop,
            task: Some(task),
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
    }
}

/// Poll `check` every 50 ms until it yields a value, failing with `what` after `timeout` (a bound for
/// a quiet machine, stretched here by `SECRET_SYNC_TEST_TIME_FACTOR`; see `fake_apiserver::test_time`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn plural_of(kind: &str) -> String {
    match kind {
        "SecretStore" => "secretstores".into(),
        "ClusterSecretStore" => "clustersecretstores".into(),
        "ExternalSecret" => "externalsecrets".into(),
        "Namespace" => "namespaces".into(),
        "Secret" => "secrets".into(),
        "ServiceAccount" => "serviceaccounts".into(),
        "ConfigMap" => "configmaps".into(),
        "Deployment" => "deployments".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "ClusterSecretStore"
            | "ClusterExternalSecret"
            | "ClusterGenerator"
            | "Namespace"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
    )
}

/// A SecretStore of the fake provider holding `entries` (key, value), as a user writes it.
pub fn fake_store(ns: &str, name: &str, entries: &[(&str, &str)]) -> String {
    let data: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("        - key: {k}\n          value: '{v}'"))
        .collect();
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  provider:\n    fake:\n      data:\n{}\n",
        data.join("\n")
    )
}

/// An ExternalSecret named `name` in `ns` with `spec` (YAML indented by two spaces).
pub fn external_secret_yaml(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n"
    )
}

/// A Secret's data as text (test values are UTF-8).
pub fn data_of(secret: &Secret) -> std::collections::BTreeMap<String, String> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8 test value")))
        .collect()
}

/// Expected Secret data from (key, text) pairs.
pub fn pairs(p: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
