//! An in-process fake Kubernetes API server for integration tests.
//!
//! It speaks real HTTP on 127.0.0.1 so that `kube::Client`, kube-runtime's watcher and Controller,
//! and the real `kubectl` work against it unchanged. It is **not** a real apiserver: there is no
//! authentication, admission, CEL, pods or controllers besides garbage collection. See README.md.
#![forbid(unsafe_code)]

mod discovery;
mod faults;
mod ops;
mod patch;
mod render;
mod resources;
mod selectors;
mod server;
mod ssa;
mod status;
mod store;
pub mod test_time;
mod token;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

pub use faults::Faults;

/// Errors starting or talking to the fake server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to bind or serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to build the kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid server url: {0}")]
    Url(#[from] http::uri::InvalidUri),
    #[error("failed to write kubeconfig: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("failed to seed the store: {0}")]
    Seed(String),
}

/// One served request, for asserting on traffic (e.g. "no PATCH to secrets").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

/// Tunables; `Config::default()` is what [`FakeApiServer::start`] uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port to bind on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// How many events the watch history keeps; older resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// How often BOOKMARK events are sent to watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(2),
        }
    }
}

/// A running fake API server; dropping it (or [`FakeApiServer::shutdown`]) stops it.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    client: kube::Client,
}

impl FakeApiServer {
    /// Starts on 127.0.0.1 with a random port, with namespaces `default` and `kube-system`.
    pub async fn start() -> Result<FakeApiServer, Error> {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Result<FakeApiServer, Error> {
        // In a workspace where another crate enables a second rustls backend (the AWS SDK brings
        // aws-lc-rs), rustls cannot choose one and kube's client panics; pick ring once. Err only means
        // one was already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(server::Shared::new(
            config.history_limit,
            config.bookmark_interval,
        ));
        seed(&shared)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        if let Ok(mut a) = shared.address.lock() {
            *a = addr.to_string();
        }
        let app = axum::Router::new()
            .fallback(server::entry)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "fake apiserver stopped");
            }
        });
        let mut kube_config = kube::Config::new(format!("http://{addr}").parse::<http::Uri>()?);
        kube_config.default_namespace = "default".into();
        let client = kube::Client::try_from(kube_config)?;
        Ok(FakeApiServer {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
            client,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A real `kube::Client` pointed at this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Writes a kubeconfig usable with `kubectl --kubeconfig PATH`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
            "preferences": {},
        });
        std::fs::write(path, serde_yaml_ng::to_string(&cfg)?)?;
        Ok(())
    }

    /// Handle for fault injection.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Every request served so far (method, path, query, status), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests_lock().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.requests_lock().clear();
    }

    /// Stops accepting connections, ends open watches and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        self.shared.faults.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shared.faults.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Creates the namespaces every cluster has.
fn seed(shared: &server::Shared) -> Result<(), Error> {
    let mut store = shared.lock();
    let def = store
        .registry
        .get("", "namespaces")
        .cloned()
        .ok_or_else(|| Error::Seed("namespaces kind missing".into()))?;
    for ns in ["default", "kube-system", "kube-public"] {
        let ctx = ops::WriteCtx {
            def: def.clone(),
            version: "v1".into(),
            namespace: String::new(),
            manager: "kube-apiserver".into(),
            dry_run: false,
        };
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ops::create(&mut store, &ctx, obj).map_err(|e| Error::Seed(e.message))?;
    }
    Ok(())
}
