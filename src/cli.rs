//! Command-line interface: one clap struct per subcommand, destructured in `run` so that a new flag
//! that is not handled fails to compile. No business logic here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::{Args, Parser, Subcommand, ValueEnum};

use std::time::{Duration, Instant};

use crate::admin::reachability::{self, ApiReachability};
use crate::admin::{self, AdminState, Health, Metrics};
use crate::controller::{self, runtime};
use crate::provider::Providers;
use crate::shutdown::Shutdown;

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
    /// One line per ExternalSecret: store, provider, Ready, reason, last sync, refresh, rotation age.
    Status {
        /// Namespace to list (default: the kubeconfig's namespace).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// List every namespace.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Why is this ExternalSecret (NAMESPACE/NAME, or NAME with -n) not synced? Walks spec, store,
    /// authentication, provider, target Secret and Events, with the fix to try for each problem.
    Why {
        /// NAMESPACE/NAME, or NAME in the namespace given by -n (default: the kubeconfig's).
        external_secret: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// The controller class secret-sync runs with (stores of another class are not ours).
        #[arg(long, default_value = "")]
        controller_class: String,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Fetch through the providers and print the Secrets that would be written (no cluster needed).
    Render {
        /// Manifest files (multi-document YAML) holding stores and ExternalSecrets.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace (Roles instead of ClusterRoles; no ClusterSecretStores and no
    /// ClusterExternalSecrets, both cluster-scoped).
    #[arg(long, env = "SECRET_SYNC_NAMESPACE")]
    pub namespace: Option<String>,
    /// Handle only stores whose spec.controller equals this class ("" = stores without a class).
    #[arg(long, default_value = "")]
    pub controller_class: String,
    /// Address of the admin server (/metrics, /livez, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Reconciles run at once. 64 lets the reads of ExternalSecrets syncing together fill
    /// BatchGetSecretValue calls of 20 (with 16, 500 new ExternalSecrets took 34 calls and 16 s; with
    /// 64, 26 calls and 5.7 s; tests/aws_coalescing.rs). Most of a reconcile waits on I/O.
    #[arg(long, default_value_t = 64)]
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
    /// Most remote secrets one `dataFrom.find` may match. A find matching more is an error in the
    /// ExternalSecret's status (reason FindLimitExceeded), no value is read and the Secret is kept.
    #[arg(long, default_value_t = controller::DEFAULT_FIND_LIMIT)]
    pub find_limit: usize,
    /// How a periodic refresh learns that nothing changed. `list`: one bulk listing per AWS identity
    /// (ListSecrets, DescribeParameters) shows which sources have a new version, and only those are
    /// fetched. A change then reaches the Secret within about two refresh intervals plus AWS's
    /// listing lag (rotation events are not delayed). `off`: fetch at every refresh, as ESO does.
    #[arg(long, value_enum, default_value = "list")]
    pub change_detection: controller::ChangeDetection,
    /// With `--change-detection=list`, fetch every source at least this often anyway (a Go duration).
    #[arg(long, default_value = "24h", value_parser = parse_go_duration)]
    pub full_resync_interval: Duration,
    /// NAMESPACE/NAME of the Secret holding the key that salts every Secret's data hash (created on
    /// first start). With it, a Secret re-created with the same data keeps its hash across restarts,
    /// so workloads are not rolled; without it, the key lives only as long as the process.
    #[arg(long, env = "SECRET_SYNC_HASH_KEY_SECRET")]
    pub hash_key_secret: Option<String>,
    /// Exit (non-zero) at the first failure to reach the Kubernetes API server, at start-up or
    /// later, instead of retrying.
    #[arg(long)]
    pub fail_fast: bool,
    /// Exit (non-zero) when the Kubernetes API server has not answered this many seconds after
    /// start; 0 keeps trying forever.
    #[arg(long, default_value_t = 60)]
    pub startup_timeout_seconds: u64,
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
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    #[error("failed to load Kubernetes configuration: {0}")]
    LoadKubeConfig(#[source] kube::config::InferConfigError),
    #[error("failed to build the Kubernetes client: {0}")]
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
    /// `url` comes from the kubeconfig, `cause` from the connection error chain.
    #[error("cannot reach the Kubernetes API at {url}: {cause}")]
    ReachApi { url: String, cause: String },
}

/// The client for the read-only commands: the current kubeconfig (or in-cluster config).
async fn inspect_client() -> Result<kube::Client, CliError> {
    kube::Client::try_default()
        .await
        .map_err(CliError::KubeConfig)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Flag(format!("cannot encode JSON: {e}")))
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
            Command::Status {
                namespace,
                all_namespaces,
                output,
            } => {
                let client = inspect_client().await?;
                let namespace = match (all_namespaces, namespace) {
                    (true, _) => None,
                    (false, Some(ns)) => Some(ns),
                    (false, None) => Some(client.default_namespace().to_owned()),
                };
                let rows = crate::inspect::status_rows(&client, namespace.as_deref()).await?;
                match output {
                    OutputFormat::Text => print!("{}", crate::inspect::render_rows(&rows)),
                    OutputFormat::Json => println!("{}", to_json(&rows)?),
                }
                Ok(())
            }
            Command::Why {
                external_secret,
                namespace,
                controller_class,
                output,
            } => {
                let client = inspect_client().await?;
                let (ns, name) = match external_secret.split_once('/') {
                    Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                        (ns.to_owned(), name.to_owned())
                    }
                    Some(_) => {
                        return Err(crate::inspect::InspectError::ParseName(external_secret).into());
                    }
                    None => (
                        namespace.unwrap_or_else(|| client.default_namespace().to_owned()),
                        external_secret,
                    ),
                };
                let facts = crate::inspect::gather(&client, &ns, &name, &controller_class).await?;
                let findings = crate::inspect::diagnose::diagnose(&facts);
                match output {
                    OutputFormat::Text => {
                        print!(
                            "{}",
                            crate::inspect::diagnose::render_text(&facts.es, &findings)
                        )
                    }
                    OutputFormat::Json => println!(
                        "{}",
                        to_json(&serde_json::json!({
                            "namespace": ns,
                            "name": name,
                            "findings": findings,
                        }))?
                    ),
                }
                Ok(())
            }
            Command::Run(args) => args.run().await,
        }
    }
}

/// The API client's HTTP layer (ours in `kube_client`, kube's where a proxy is configured) logs
/// every failed request at ERROR (five lines a second while the API server is unreachable);
/// connection failures are reported by `ApiReachability` instead, once and then slowly. A filter
/// that names kube_client itself is left as given.
const QUIET_KUBE_CLIENT: &str = "kube_client::client::builder=off,secret_sync::kube_client=off";

fn log_filter(given: Option<&str>) -> Result<tracing_subscriber::EnvFilter, CliError> {
    use tracing_subscriber::EnvFilter;
    let with_quiet_client = |filter: &str| {
        if filter.contains("kube_client") {
            filter.to_owned()
        } else {
            format!("{filter},{QUIET_KUBE_CLIENT}")
        }
    };
    if let Some(l) = given {
        return EnvFilter::try_new(with_quiet_client(l))
            .map_err(|e| CliError::LogFilter(e.to_string()));
    }
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .and_then(|f| EnvFilter::try_new(with_quiet_client(&f)).ok());
    Ok(from_env.unwrap_or_else(|| EnvFilter::new(with_quiet_client("info"))))
}

fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), CliError> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level)?)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// How long one start-up probe of the API server may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between start-up probes.
const PROBE_MAX_DELAY: Duration = Duration::from_secs(5);
/// How long the admin server may take to finish its requests after the work has stopped.
const ADMIN_DRAIN: Duration = Duration::from_secs(2);

/// Waits until the API server answers (any HTTP response, `GET /version`). Fails at the first
/// connection failure with `fail_fast`, else when `startup_timeout` has passed without an answer.
async fn wait_for_api(
    client: &kube::Client,
    api: &ApiReachability,
    fail_fast: bool,
    startup_timeout: Option<Duration>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut last_cause: Option<String> = None;
    loop {
        let left = startup_timeout.map(|t| t.saturating_sub(started.elapsed()));
        if let (Some(Duration::ZERO), Some(cause)) = (left, last_cause.take()) {
            return Err(CliError::ReachApi {
                url: api.url().to_owned(),
                cause,
            });
        }
        let probe_limit = left.map_or(PROBE_TIMEOUT, |l| l.min(PROBE_TIMEOUT));
        let cause = match tokio::time::timeout(probe_limit, client.apiserver_version()).await {
            Ok(Ok(_)) => None,
            // An answer, even an error status, means the server is there; the watches report the rest.
            Ok(Err(err)) if !reachability::is_connection_error(&err) => None,
            Ok(Err(err)) => {
                api.failed(&err);
                Some(reachability::cause_of(&err))
            }
            Err(_elapsed) => {
                let cause = format!("no answer within {probe_limit:?}");
                api.unanswered(&cause);
                Some(cause)
            }
        };
        let Some(cause) = cause else {
            api.reached();
            return Ok(());
        };
        if fail_fast {
            return Err(CliError::ReachApi {
                url: api.url().to_owned(),
                cause,
            });
        }
        last_cause = Some(cause);
        let left = startup_timeout.map(|t| t.saturating_sub(started.elapsed()));
        tokio::time::sleep(left.map_or(delay, |l| l.min(delay))).await;
        delay = (delay * 2).min(PROBE_MAX_DELAY);
    }
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
            find_limit,
            change_detection,
            full_resync_interval,
            hash_key_secret,
            fail_fast,
            startup_timeout_seconds,
        } = self;
        init_logging(log_format, log_level.as_deref())?;
        // The one stop signal: every start-up wait and every long-running task below observes it.
        let shutdown = Shutdown::new();
        {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutdown requested");
                shutdown.request();
            });
        }
        let Some(kube_config) = shutdown.unless_requested(kube::Config::infer()).await else {
            return Ok(());
        };
        let kube_config = kube_config.map_err(CliError::LoadKubeConfig)?;
        let api_url = kube_config.cluster_url.to_string();
        let client = crate::kube_client::client(kube_config).map_err(CliError::KubeConfig)?;
        let metrics = Arc::new(Metrics::new());
        let health = Health {
            api: Arc::new(ApiReachability::new(api_url.trim_end_matches('/'))),
            ..Health::default()
        };
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
        // Started before the API server is reached, so that /readyz can tell why it is not ready.
        let admin_task = tokio::spawn(admin::serve(
            listener,
            AdminState {
                metrics: metrics.clone(),
                health: health.clone(),
                webhook,
            },
            shutdown.requested(),
        ));
        let stop_admin = |admin_task: tokio::task::JoinHandle<_>| async move {
            if tokio::time::timeout(ADMIN_DRAIN, admin_task).await.is_err() {
                tracing::warn!("admin server requests still open at exit");
            }
        };

        let startup_timeout =
            (startup_timeout_seconds > 0).then(|| Duration::from_secs(startup_timeout_seconds));
        let reached = shutdown
            .unless_requested(wait_for_api(
                &client,
                &health.api,
                fail_fast,
                startup_timeout,
            ))
            .await;
        match reached {
            None => {
                stop_admin(admin_task).await;
                return Ok(());
            }
            Some(Err(err)) => {
                shutdown.request();
                stop_admin(admin_task).await;
                return Err(err);
            }
            Some(Ok(())) => {}
        }

        // --fail-fast after start-up: the first connection failure stops everything, through the
        // same signal as SIGTERM, and the process exits non-zero.
        let fatal: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        if fail_fast {
            let (shutdown, fatal, mut outage) =
                (shutdown.clone(), fatal.clone(), health.api.subscribe());
            tokio::spawn(async move {
                let stop = shutdown.requested();
                tokio::select! {
                    cause = outage.wait_for(Option::is_some) => {
                        if let Ok(cause) = cause
                            && let Ok(mut fatal) = fatal.lock()
                        {
                            *fatal = cause.clone();
                        }
                        shutdown.request();
                    }
                    () = stop => {}
                }
            });
        }

        let config = controller::Config {
            namespace,
            controller_class,
            concurrency,
            rotation_age_metrics,
            hash_key_secret,
            find_limit,
            change_detection,
            full_resync_interval,
            ..controller::Config::default()
        };
        let providers = Providers::with_metrics(Some(client.clone()), metrics.clone());
        // Everything that acts runs only on the leader: the controller and the SQS consumer (a standby
        // consuming would delete events its idle controller never handles).
        let work = {
            let (client, health, metrics, shutdown) = (
                client.clone(),
                health.clone(),
                metrics.clone(),
                shutdown.clone(),
            );
            let reload_namespace = config.namespace.clone();
            let malformed = match events_malformed {
                MalformedArg::Delete => crate::events::sqs::MalformedPolicy::Delete,
                MalformedArg::Keep => crate::events::sqs::MalformedPolicy::LeaveForDeadLetterQueue,
            };
            move || async move {
                let sqs = async {
                    let Some(queue_url) = events_sqs_queue_url else {
                        return;
                    };
                    // Loading the AWS configuration can wait on IMDS or a profile process.
                    let Some(sqs_client) = shutdown
                        .unless_requested(crate::events::sqs::client_for(&queue_url))
                        .await
                    else {
                        return;
                    };
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
                        shutdown.requested(),
                    )
                    .await;
                };
                // Reload patches workloads, so it too runs only on the leader.
                let reload = {
                    let (client, metrics, shutdown) =
                        (client.clone(), metrics.clone(), shutdown.requested());
                    async move {
                        if enable_reload {
                            crate::reload::run(client, reload_namespace, metrics, shutdown).await;
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
                    shutdown.requested(),
                );
                futures::future::join3(controller, sqs, reload).await;
            }
        };
        let result = if leader_elect {
            let lease_duration = Duration::from_secs(lease_duration_seconds.max(2));
            let leader_config = crate::leader::LeaderConfig {
                lease_name,
                lease_namespace: lease_namespace.unwrap_or_else(|| "default".to_owned()),
                identity: replica_identity(),
                lease_duration,
                // Renew four times per lease: a leader steps down before anyone may take over.
                renew_every: lease_duration / 4,
            };
            crate::leader::run_as_leader(
                client.clone(),
                leader_config,
                health.leader.clone(),
                shutdown.requested(),
                work,
            )
            .await
            .map_err(|e| CliError::Leader(e.to_string()))
        } else {
            work().await;
            Ok(())
        };
        if health.failed.load(Ordering::Relaxed) {
            // The reconcile loop died on its own: exit (non-zero) instead of idling with a dead controller.
            admin_task.abort();
            return Err(CliError::ControllerStopped);
        }
        shutdown.request();
        stop_admin(admin_task).await;
        let fatal = fatal.lock().ok().and_then(|mut f| f.take());
        if let Some(cause) = fatal {
            return Err(CliError::ReachApi {
                url: health.api.url().to_owned(),
                cause,
            });
        }
        result
    }
}

/// A positive Go duration (`90s`, `24h`, `1h30m`), as ESO's refreshInterval is written.
fn parse_go_duration(raw: &str) -> Result<Duration, String> {
    let nanos =
        go_parse_duration::parse_duration(raw).map_err(|_| format!("invalid duration {raw:?}"))?;
    match u64::try_from(nanos) {
        Ok(n) if n > 0 => Ok(Duration::from_nanos(n)),
        _ => Err(format!("duration {raw:?} must be positive")),
    }
}
