//! Command-line interface: one clap struct per subcommand, destructured in `run` so that a new flag
//! that is not handled fails to compile. No business logic here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::{self, AdminState, Health, Metrics};
use crate::controller::{self, runtime};
use crate::provider::Providers;

#[derive(Debug, Parser)]
#[command(
    name = "secret-sync",
    version,
    about = "Keeps Kubernetes Secrets in sync with external secret managers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against the cluster in the kubeconfig (or in-cluster config).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Fetch through the providers and print the Secrets that would be written (no cluster needed).
    Render {
        /// Manifest files (multi-document YAML) holding stores and ExternalSecrets.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace (Roles instead of ClusterRoles; no ClusterSecretStores).
    #[arg(long, env = "SECRET_SYNC_NAMESPACE")]
    pub namespace: Option<String>,
    /// Handle only stores whose spec.controller equals this class ("" = stores without a class).
    #[arg(long, default_value = "")]
    pub controller_class: String,
    /// Address of the admin server (/metrics, /livez, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Reconciles run at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG is used when this is not given.
    #[arg(long, env = "SECRET_SYNC_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Run only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "secret-sync-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (defaults to POD_NAMESPACE, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Lease duration in seconds; a standby takes over at most this long after the leader dies.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Consume rotation events (EventBridge -> SQS) from this queue; the controller's own AWS identity is used.
    #[arg(long)]
    pub events_sqs_queue_url: Option<String>,
    /// What to do with a message that cannot be parsed: delete it, or keep it for the dead-letter queue.
    #[arg(long, value_enum, default_value = "keep")]
    pub events_malformed: MalformedArg,
    /// Enable `POST /v1/refresh` on the admin server, authenticated with the `token` key of this
    /// Secret (NAMESPACE/NAME): as a bearer token, or as the HMAC-SHA256 key of `x-secret-sync-signature`.
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// Roll Deployments, StatefulSets and DaemonSets annotated `secret-sync.io/reload: "true"` or
    /// `secret-sync.io/reload-secrets: a,b` when the data of a Secret they use changes.
    #[arg(long)]
    pub enable_reload: bool,
    /// Export every source's last rotation/change dates as metrics (one DescribeSecret per source per
    /// sync); without it, dates are read only for ExternalSecrets annotated with secret-sync.io/max-age.
    #[arg(long)]
    pub rotation_age_metrics: bool,
    /// NAMESPACE/NAME of the Secret holding the key that salts every Secret's data hash (created on
    /// first start). With it, a Secret re-created with the same data keeps its hash across restarts,
    /// so workloads are not rolled; without it, the key lives only as long as the process.
    #[arg(long, env = "SECRET_SYNC_HASH_KEY_SECRET")]
    pub hash_key_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MalformedArg {
    Delete,
    Keep,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("failed to generate CRDs: {0}")]
    GenerateCrds(#[from] serde_yaml_ng::Error),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error("failed to load Kubernetes configuration: {0}")]
    KubeConfig(#[source] kube::Error),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error("invalid log filter: {0}")]
    LogFilter(String),
    #[error("invalid flag: {0}")]
    Flag(String),
    #[error("the controller stopped without a shutdown request")]
    ControllerStopped,
    #[error("leader election: {0}")]
    Leader(String),
}

impl Cli {
    pub async fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Crds => {
                print!("{}", crate::api::crds_yaml()?);
                Ok(())
            }
            Command::Render { files } => {
                let rendered = crate::render::render_files(&files).await?;
                // Everything that could be built goes to stdout, even when others failed.
                print!("{}", rendered.yaml);
                match rendered.error() {
                    Some(e) => Err(e.into()),
                    None => Ok(()),
                }
            }
            Command::Run(args) => args.run().await,
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), CliError> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| CliError::LogFilter(e.to_string()))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// This replica's name in the Lease: the pod name, else the host name, else a random one.
fn replica_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("secret-sync-{:016x}", rand::random::<u64>()))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl RunArgs {
    pub async fn run(self) -> Result<(), CliError> {
        let RunArgs {
            namespace,
            controller_class,
            admin_addr,
            concurrency,
            log_format,
            log_level,
            leader_elect,
            lease_name,
            lease_namespace,
            lease_duration_seconds,
            events_sqs_queue_url,
            events_malformed,
            webhook_secret,
            enable_reload,
            rotation_age_metrics,
            hash_key_secret,
        } = self;
        init_logging(log_format, log_level.as_deref())?;
        let client = kube::Client::try_default()
            .await
            .map_err(CliError::KubeConfig)?;
        let metrics = Arc::new(Metrics::new());
        let health = Health::default();
        health.leader.store(!leader_elect, Ordering::Relaxed);
        let listener = admin::bind(admin_addr).await?;
        let events_on = events_sqs_queue_url.is_some() || webhook_secret.is_some();
        let (change_tx, change_rx) = crate::events::channel();
        let webhook = match webhook_secret {
            Some(reference) => {
                let (namespace, name) = reference.split_once('/').ok_or_else(|| {
                    CliError::Flag(format!(
                        "--webhook-secret must be NAMESPACE/NAME, got {reference:?}"
                    ))
                })?;
                Some(Arc::new(crate::events::webhook::WebhookState {
                    key: crate::events::webhook::KeySource::new(
                        client.clone(),
                        namespace.to_owned(),
                        name.to_owned(),
                    ),
                    changes: change_tx.clone(),
                    metrics: metrics.clone(),
                    leader: health.leader.clone(),
                }))
            }
            None => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            let _ = stop_tx.send(true);
        });
        let admin_task = tokio::spawn(admin::serve(
            listener,
            AdminState {
                metrics: metrics.clone(),
                health: health.clone(),
                webhook,
            },
            stopped(),
        ));
        let config = controller::Config {
            namespace,
            controller_class,
            concurrency,
            rotation_age_metrics,
            hash_key_secret,
            ..controller::Config::default()
        };
        let providers = Providers::with_metrics(Some(client.clone()), metrics.clone());
        // Everything that acts runs only on the leader: the controller and the SQS consumer (a standby
        // consuming would delete events its idle controller never handles).
        let work = {
            let (client, health, metrics) = (client.clone(), health.clone(), metrics.clone());
            let (shutdown, sqs_shutdown) = (stopped(), stopped());
            let (reload_shutdown, reload_namespace) = (stopped(), config.namespace.clone());
            let malformed = match events_malformed {
                MalformedArg::Delete => crate::events::sqs::MalformedPolicy::Delete,
                MalformedArg::Keep => crate::events::sqs::MalformedPolicy::LeaveForDeadLetterQueue,
            };
            move || async move {
                let sqs = async {
                    if let Some(queue_url) = events_sqs_queue_url {
                        let sqs_client = crate::events::sqs::client_for(&queue_url).await;
                        let config = crate::events::sqs::SqsConfig {
                            queue_url,
                            malformed,
                            wait_seconds: 20,
                        };
                        crate::events::sqs::run(
                            sqs_client,
                            config,
                            change_tx,
                            metrics.clone(),
                            sqs_shutdown,
                        )
                        .await;
                    }
                };
                // Reload patches workloads, so it too runs only on the leader.
                let reload = {
                    let (client, metrics) = (client.clone(), metrics.clone());
                    async move {
                        if enable_reload {
                            crate::reload::run(client, reload_namespace, metrics, reload_shutdown)
                                .await;
                        }
                    }
                };
                let changes = events_on.then_some(change_rx);
                let controller = runtime::run(
                    client,
                    config,
                    providers,
                    metrics.clone(),
                    health,
                    changes,
                    shutdown,
                );
                futures::future::join3(controller, sqs, reload).await;
            }
        };
        let result = if leader_elect {
            let lease_duration = std::time::Duration::from_secs(lease_duration_seconds.max(2));
            let leader_config = crate::leader::LeaderConfig {
                lease_name,
                lease_namespace: lease_namespace.unwrap_or_else(|| "default".to_owned()),
                identity: replica_identity(),
                lease_duration,
                // Renew four times per lease: a leader steps down before anyone may take over.
                renew_every: lease_duration / 4,
            };
            // Set once this replica starts working as leader. `health.leader` is not enough here: it
            // turns false as soon as the work ends, while the Lease is still being released.
            let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let work = {
                let started = started.clone();
                move || {
                    started.store(true, Ordering::SeqCst);
                    work()
                }
            };
            let election = crate::leader::run_as_leader(
                client.clone(),
                leader_config,
                health.leader.clone(),
                work,
            );
            tokio::pin!(election);
            tokio::select! {
                result = &mut election => result.map_err(|e| CliError::Leader(e.to_string())),
                () = stopped() => {
                    if started.load(Ordering::SeqCst) {
                        // The work sees the same shutdown signal and finishes; then the Lease is released.
                        election.await.map_err(|e| CliError::Leader(e.to_string()))
                    } else {
                        // A standby still waiting for the Lease has nothing to finish.
                        Ok(())
                    }
                }
            }
        } else {
            work().await;
            Ok(())
        };
        if health.failed.load(Ordering::Relaxed) {
            // The reconcile loop died on its own: exit (non-zero) instead of idling with a dead controller.
            admin_task.abort();
            return Err(CliError::ControllerStopped);
        }
        let _ = admin_task.await;
        result
    }
}
