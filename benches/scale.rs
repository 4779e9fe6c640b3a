//! Scale: the operator binary (its own process, so its memory is measured alone) against N
//! ExternalSecrets on the fake API server, in up to four modes chosen by `SCALE_MODE` (comma list):
//! - `fake`: N = 10,000 on the fake provider (1 key each): time to sync all, RSS, new-ExternalSecret
//!   Ready latency. The default of `cargo bench --bench scale`.
//! - `moto`: N = `SCALE_N` (default `1000,10000`) ExternalSecrets, one distinct Secrets Manager secret each
//!   on moto through the real AWS provider, `refreshInterval: 10s`, nothing changes. Per N and per
//!   `--change-detection` value (`SCALE_DETECTION`, default `list,off` when the binary has the flag):
//!   AWS calls per ExternalSecret refresh, calls by action, STS calls, RSS (median of 1 s samples in the
//!   window), start to all Ready, new-ExternalSecret Ready p50/p99, and the time to pick up a change to
//!   1% of the values.
//! - `batch`: 500 ExternalSecrets created at once; BatchGetSecretValue calls for their first sync.
//! - `soak`: `SCALE_SOAK_N` ExternalSecrets for `SCALE_SOAK_SECS` seconds, 1% of the values changing every
//!   minute, RSS sampled every 10 s. Setting `SCALE_SOAK_SECS` alone selects it.
//!
//! Under `cargo test` (no `--bench`) it runs `fake` at N = 200 and a 2-minute `soak` at N = 1,000, and
//! fails if a change is not picked up or RSS grows more than 5% after the warm-up.
//!
//! AWS calls are counted by moto (`GET /_counts` of scripts/moto_launcher.py, per `service.Action`):
//! the delta over a window (`SCALE_WINDOW_SECS`, 60 s) after all Ready plus two refresh intervals, divided
//! by the refreshes the window implies (N × window / 10 s); the operator's own reconcile count
//! (`externalsecret_sync_calls`) is printed next to it. Other knobs: `SCALE_FAKE_N`, `SCALE_BATCH_N`,
//! `SCALE_READY_LIMIT_SECS` (600: a run moto cannot bring to all Ready is reported, not hidden), and
//! `SCALE_OPERATOR_BIN` (measure a copied or other binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use secret_sync::api::ExternalSecret;
use support::http::{free_port, http_get};
use support::moto::Moto;

fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A `/proc/PID/status` field in MiB (`VmRSS:`, `RssAnon:`, `RssFile:`), 0 if absent.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The median of `v` (the mean of the middle two for an even count), 0 if empty.
fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// The moto launcher this process started (a child running moto_launcher.py).
fn moto_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = stat
            .rsplit_once(") ")?
            .1
            .split_whitespace()
            .nth(1)?
            .to_owned();
        (cmdline.contains("moto_launcher.py") && ppid == me).then_some(pid)
    })
}

/// CPU seconds of (operator, moto, this process: fake API server and bench client).
fn cpu_split(operator: u32, moto: Option<u32>) -> [f64; 3] {
    [
        cpu_secs(operator),
        moto.map_or(0.0, cpu_secs),
        cpu_secs(std::process::id()),
    ]
}

fn es(i: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": format!("es-{i:05}"), "namespace": "default"},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
                 "data": [{"secretKey": "password", "remoteRef": {"key": format!("key-{}", i % 100)}}]}
    })
}

fn is_ready(e: &ExternalSecret) -> bool {
    e.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some("SecretSynced"))
    })
}

async fn ready_count(api: &Api<ExternalSecret>) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.iter().filter(|e| is_ready(e)).count())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().replace('_', "").parse().expect(name))
}

/// The fake API server with our CRDs, a kubeconfig for the operator, and typed APIs for the bench.
struct Cluster {
    _server: FakeApiServer,
    client: kube::Client,
    es: Api<ExternalSecret>,
    secrets: Api<Secret>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        secret_sync::install_crypto_provider();
        // A large history: N objects written before the operator's first list+watch must not expire.
        let server = FakeApiServer::start_with(fake_apiserver::Config {
            history_limit: 300_000,
            ..Default::default()
        })
        .await
        .unwrap();
        let client = server.client();
        support::cluster::install_crds(&client).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            es: Api::default_namespaced(client.clone()),
            secrets: Api::default_namespaced(client.clone()),
            _server: server,
            client,
            dir,
            kubeconfig,
        }
    }

    async fn apply_store(&self, store: serde_json::Value) {
        let stores: Api<secret_sync::api::SecretStore> =
            Api::default_namespaced(self.client.clone());
        let name = store["metadata"]["name"].as_str().unwrap().to_owned();
        stores
            .patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&store))
            .await
            .unwrap();
    }

    /// Server-side apply of ExternalSecrets, `concurrency` at a time.
    async fn apply_all(&self, objects: Vec<serde_json::Value>, concurrency: usize) {
        futures::stream::iter(objects)
            .map(|obj| {
                let api = self.es.clone();
                async move {
                    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
                    api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&obj))
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
    }

    /// Waits until `n` ExternalSecrets are Ready (SecretSynced); lists every `poll` (listing N objects
    /// costs the fake server, which shares the machine with the operator).
    async fn wait_ready(&self, n: usize, poll: Duration, limit: Duration) -> Duration {
        self.try_wait_ready(n, poll, limit)
            .await
            .unwrap_or_else(|ready| panic!("{ready} of {n} ExternalSecrets Ready after {limit:?}"))
    }

    /// As `wait_ready`, but a timeout is a result: Err(how many were Ready).
    async fn try_wait_ready(
        &self,
        n: usize,
        poll: Duration,
        limit: Duration,
    ) -> Result<Duration, usize> {
        let started = Instant::now();
        loop {
            let ready = ready_count(&self.es).await;
            if ready >= n {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= limit {
                return Err(ready);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Time from create to Ready of `count` new ExternalSecrets, one after the other, sorted.
    async fn new_es_latencies(&self, objects: Vec<serde_json::Value>) -> Vec<Duration> {
        let mut out = Vec::new();
        for obj in objects {
            let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
            let t = Instant::now();
            self.es
                .patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&obj))
                .await
                .unwrap();
            loop {
                if self.es.get(&name).await.is_ok_and(|o| is_ready(&o)) {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(120),
                    "new ExternalSecret {name} not Ready within 120 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            out.push(t.elapsed());
        }
        out.sort();
        out
    }
}

/// The operator binary: this build's, or `SCALE_OPERATOR_BIN` (a copy, so a shared target directory
/// rebuilt by someone else mid-run cannot swap it, or another branch's build to compare).
fn operator_bin() -> PathBuf {
    std::env::var_os("SCALE_OPERATOR_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_secret-sync")),
        PathBuf::from,
    )
}

/// The operator binary as its own process; stopped with SIGTERM on drop. Its log goes to a file that
/// is printed if a wait fails.
struct Operator {
    child: std::process::Child,
    admin: String,
    log: PathBuf,
}

impl Operator {
    fn spawn(
        kubeconfig: &Path,
        log: PathBuf,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Operator {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(operator_bin());
        cmd.args(["run", "--admin-addr", &admin])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in envs {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        Operator {
            child: cmd.spawn().unwrap(),
            admin,
            log,
        }
    }

    fn rss(&self) -> f64 {
        rss_mib(self.child.id())
    }

    async fn wait_readyz(&self) {
        let started = Instant::now();
        while http_get(&self.admin, "/readyz").is_none_or(|(s, _)| s != 200) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "operator not ready within 60 s; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reconciles so far, summed over `externalsecret_sync_calls` (ESO's per-object counter); None if
    /// the operator does not export it.
    fn reconciles(&self) -> Option<f64> {
        let (_, body) = http_get(&self.admin, "/metrics")?;
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with("externalsecret_sync_calls_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------------
// fake: the fake provider (no AWS), the original table.

async fn fake_mode(n: usize) {
    let cluster = Cluster::start().await;
    let entries: Vec<serde_json::Value> = (0..100)
        .map(|k| serde_json::json!({"key": format!("key-{k}"), "value": format!("value-{k}")}))
        .collect();
    cluster
        .apply_store(serde_json::json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "fake", "namespace": "default"}, "spec": {"provider": {"fake": {"data": entries}}}}))
        .await;
    cluster.apply_all((0..n).map(es).collect(), 32).await;

    let started = Instant::now();
    let operator = Operator::spawn(
        &cluster.kubeconfig,
        cluster.dir.path().join("operator.log"),
        &["--concurrency".into(), "32".into()],
        &[],
    );
    let mut first_sync = None;
    loop {
        if first_sync.is_none()
            && cluster
                .secrets
                .list(&ListParams::default().limit(1))
                .await
                .is_ok_and(|l| !l.items.is_empty())
        {
            first_sync = Some(started.elapsed());
        }
        if ready_count(&cluster.es).await >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1200),
            "not all {n} ExternalSecrets became Ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_synced = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = operator.rss();
    let pid = operator.child.id();
    // Anonymous memory (heap, stacks) and file-backed pages (the binary's own code and data).
    let (anon, file) = (status_mib(pid, "RssAnon:"), status_mib(pid, "RssFile:"));

    // A new ExternalSecret while N exist: time from create to Ready.
    let new_ready = cluster
        .new_es_latencies((n..n + 20).map(es).collect())
        .await;
    drop(operator);

    println!(
        "scale: {n} ExternalSecrets (fake provider, 1 key each), operator as its own process, concurrency 32"
    );
    println!(
        "| start to first Secret | start to all Ready | operator RSS after sync | of which anonymous / file | new ES Ready p50 | new ES Ready p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {} | {:.1} MiB | {:.1} / {:.1} MiB | {} | {} |",
        first_sync.map(ms).unwrap_or_default(),
        ms(all_synced),
        rss,
        anon,
        file,
        ms(percentile(&new_ready, 50.0)),
        ms(percentile(&new_ready, 99.0))
    );
    println!("targets: RSS <= 64 MiB at 10,000; new ExternalSecret Ready within 1 s (p99)");
}

// ---------------------------------------------------------------------------------------------------
// moto: the real AWS provider against moto.

/// Seconds between refreshes of every ExternalSecret on moto.
const REFRESH_SECS: u64 = 10;

fn secret_name(prefix: &str, i: usize) -> String {
    format!("bench/{prefix}/{i:06}")
}

fn value(i: usize, generation: u32) -> String {
    format!("value-{i}-gen-{generation}")
}

fn aws_es(name: &str, key: &str, refresh: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"refreshInterval": refresh, "secretStoreRef": {"name": "aws"},
                 "data": [{"secretKey": "value", "remoteRef": {"key": key}}]}
    })
}

fn es_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// moto with the operator's identity: web identity (IRSA), so STS traffic is the real flow's.
struct Aws {
    moto: Moto,
    sm: aws_sdk_secretsmanager::Client,
    token: tempfile::TempDir,
}

impl Aws {
    async fn start() -> Aws {
        let moto = Moto::start().await;
        let sm = moto.secrets_manager().await;
        let token = tempfile::tempdir().unwrap();
        std::fs::write(
            token.path().join("token"),
            "eyJ-bench-service-account-token",
        )
        .unwrap();
        Aws { moto, sm, token }
    }

    fn operator_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto.url.clone()),
            ("AWS_REGION", support::moto::REGION.into()),
            (
                "AWS_ROLE_ARN",
                format!("arn:aws:iam::{}:role/secret-sync", support::moto::ACCOUNT),
            ),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                self.token.path().join("token").display().to_string(),
            ),
            ("AWS_ROLE_SESSION_NAME", "secret-sync".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            // Empty: removed, so the chain reaches web identity.
            ("AWS_ACCESS_KEY_ID", String::new()),
            ("AWS_SECRET_ACCESS_KEY", String::new()),
            ("AWS_SESSION_TOKEN", String::new()),
            ("AWS_PROFILE", String::new()),
        ]
    }

    /// Creates `prefix`'s secrets 0..n (64 calls in flight); returns how long it took.
    async fn create(&self, prefix: &str, range: std::ops::Range<usize>) -> Duration {
        let t = Instant::now();
        futures::stream::iter(range)
            .map(|i| {
                let sm = self.sm.clone();
                let name = secret_name(prefix, i);
                async move {
                    // moto's threaded server now and then answers a burst with HTTP 500 (after the SDK's
                    // own retries); a few more tries, and "already exists" from an earlier try is fine.
                    for attempt in 1.. {
                        match sm
                            .create_secret()
                            .name(&name)
                            .secret_string(value(i, 0))
                            .send()
                            .await
                        {
                            Ok(_) => break,
                            Err(e)
                                if e.as_service_error()
                                    .is_some_and(|e| e.is_resource_exists_exception()) =>
                            {
                                break;
                            }
                            Err(e) if attempt < 5 => {
                                eprintln!("create {name}, attempt {attempt}: {e}");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(e) => panic!("create {name}: {e:?}"),
                        }
                    }
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        t.elapsed()
    }

    /// Puts `generation`'s value into `prefix`'s secrets `ids`, 32 calls in flight.
    async fn change(&self, prefix: &str, ids: &[usize], generation: u32) {
        futures::stream::iter(ids.iter().copied())
            .map(|i| {
                let sm = self.sm.clone();
                let name = secret_name(prefix, i);
                async move {
                    sm.put_secret_value()
                        .secret_id(&name)
                        .secret_string(value(i, generation))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    }

    async fn counts(&self) -> BTreeMap<String, u64> {
        self.moto.counts().await
    }
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn by_action(calls: &BTreeMap<String, u64>) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sts(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(k, _)| k.starts_with("sts."))
        .map(|(_, v)| v)
        .sum()
}

/// How long until every ExternalSecret `es_prefix-i` (i in `ids`) has `generation`'s value in its
/// Secret; None if not within `limit`. Polls only the Secrets still pending.
async fn wait_values(
    cluster: &Cluster,
    es_prefix: &str,
    ids: &[usize],
    generation: u32,
    limit: Duration,
) -> Result<Duration, usize> {
    let started = Instant::now();
    let mut pending: Vec<usize> = ids.to_vec();
    while !pending.is_empty() {
        if started.elapsed() > limit {
            return Err(pending.len());
        }
        let done: Vec<usize> = futures::stream::iter(pending.clone())
            .map(|i| {
                let api = cluster.secrets.clone();
                let name = es_name(es_prefix, i);
                async move {
                    let ok = api.get(&name).await.is_ok_and(|s| {
                        s.data
                            .and_then(|d| d.get("value").cloned())
                            .is_some_and(|v| v.0 == value(i, generation).into_bytes())
                    });
                    ok.then_some(i)
                }
            })
            .buffer_unordered(16)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        pending.retain(|i| !done.contains(i));
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(started.elapsed())
}

/// Whether the operator binary has `--change-detection` (the bulk change detection of issue 13).
fn has_change_detection() -> bool {
    Command::new(operator_bin())
        .args(["run", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--change-detection"))
}

fn detection_args(detection: &str) -> Vec<String> {
    if detection == "default" {
        Vec::new()
    } else {
        vec![format!("--change-detection={detection}")]
    }
}

fn aws_store() -> serde_json::Value {
    serde_json::json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "default"},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": support::moto::REGION}}}})
}

struct Steady {
    n: usize,
    detection: String,
    seed: Duration,
    all_ready: Duration,
    /// Some(Ready count) when not all became Ready within the limit.
    ready_at_limit: Option<usize>,
    window: Duration,
    calls: BTreeMap<String, u64>,
    reconciles: Option<f64>,
    /// Cores used in the window by the operator, moto, and the fake API server with the bench.
    cpu: [f64; 3],
    rss: f64,
    /// Anonymous and file-backed parts of `rss` (medians of the window's samples), MiB.
    rss_split: (f64, f64),
    /// The largest RSS sample of the window, MiB.
    rss_max: f64,
    new_ready: Vec<Duration>,
    change: Result<Duration, usize>,
    change_count: usize,
}

impl Steady {
    fn per_refresh(&self) -> f64 {
        let total: u64 = self.calls.values().sum();
        let refreshes = self.n as f64 * self.window.as_secs_f64() / REFRESH_SECS as f64;
        total as f64 / refreshes
    }
}

/// One operator against N unchanged secrets; `detection` is a `--change-detection` value or
/// "default" (no flag).
async fn steady_state(
    aws: &Aws,
    n: usize,
    detection: &str,
    window: Duration,
    samples: usize,
) -> Steady {
    // A prefix per run: runs share moto, and each run's secrets are its own.
    let prefix = format!("n{n}-{detection}");
    let seed = aws.create(&prefix, 0..n + samples).await;
    let cluster = Cluster::with_aws_external_secrets(&prefix, n).await;

    let started = Instant::now();
    let operator = Operator::spawn(
        &cluster.kubeconfig,
        cluster.dir.path().join("operator.log"),
        &detection_args(detection),
        &aws.operator_env(),
    );
    let poll = if n >= 5000 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(500)
    };
    let limit = Duration::from_secs(env_usize("SCALE_READY_LIMIT_SECS").unwrap_or(600) as u64);
    let ready = cluster.try_wait_ready(n, poll, limit).await;
    let all_ready = started.elapsed();
    eprintln!(
        "moto N={n} {detection}: seeded in {}, Ready: {ready:?}",
        secs(seed)
    );
    if let Err(count) = ready {
        // moto (one Python process) cannot serve the load: say so instead of measuring a backlog.
        let rss = operator.rss();
        drop(operator);
        return Steady {
            n,
            detection: detection.into(),
            seed,
            all_ready,
            ready_at_limit: Some(count),
            window: Duration::ZERO,
            calls: BTreeMap::new(),
            reconciles: None,
            cpu: [0.0; 3],
            rss,
            rss_split: (0.0, 0.0),
            rss_max: rss,
            new_ready: Vec::new(),
            change: Err(0),
            change_count: 0,
        };
    }

    // Two refresh intervals of warm-up, so start-up's full fetch is over, then the window.
    tokio::time::sleep(Duration::from_secs(2 * REFRESH_SECS)).await;
    let before = aws.counts().await;
    let reconciles_before = operator.reconciles();
    let moto = moto_pid();
    let cpu_before = cpu_split(operator.child.id(), moto);
    // RSS sampled every second through the window, the median reported: one instant lands anywhere in
    // the 10 s listing cycle (a new snapshot is built while the old one is held) and swings by a few MiB.
    let pid = operator.child.id();
    let window_end = Instant::now() + window;
    let mut samples_mib: Vec<[f64; 3]> = Vec::new();
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_secs(1).min(window_end - Instant::now())).await;
        samples_mib.push(["VmRSS:", "RssAnon:", "RssFile:"].map(|f| status_mib(pid, f)));
    }
    let calls = delta(&aws.counts().await, &before);
    let cpu_after = cpu_split(operator.child.id(), moto);
    let cpu = [0, 1, 2].map(|k| (cpu_after[k] - cpu_before[k]) / window.as_secs_f64());
    // Medians of the window's samples, taken before the /metrics scrape below (at 10,000 its text is
    // ~8 MB for about a second: the scrape's cost, not the steady state).
    let median_of = |k: usize| median_f64(samples_mib.iter().map(|s| s[k]).collect());
    let rss = median_of(0);
    let rss_max = samples_mib.iter().map(|s| s[0]).fold(0.0, f64::max);
    let rss_split = (median_of(1), median_of(2));
    let reconciles = operator
        .reconciles()
        .zip(reconciles_before)
        .map(|(a, b)| a - b);

    let new_ready = cluster
        .new_es_latencies(
            (n..n + samples)
                .map(|i| aws_es(&es_name("es", i), &secret_name(&prefix, i), "10s"))
                .collect(),
        )
        .await;

    // 1% of the values change (at least one); time from the last write to every Secret updated.
    let changed: Vec<usize> = (0..n).step_by(100).collect();
    aws.change(&prefix, &changed, 1).await;
    let change = wait_values(&cluster, "es", &changed, 1, Duration::from_secs(600)).await;
    drop(operator);
    Steady {
        n,
        detection: detection.into(),
        seed,
        all_ready,
        ready_at_limit: None,
        window,
        calls,
        reconciles,
        cpu,
        rss,
        rss_split,
        rss_max,
        new_ready,
        change,
        change_count: changed.len(),
    }
}

fn print_steady(rows: &[Steady]) {
    println!(
        "scale on moto: one Secrets Manager secret per ExternalSecret, refreshInterval {REFRESH_SECS}s, \
         nothing changes; operator binary as its own process (web identity via moto's STS)"
    );
    println!(
        "| N | change detection | AWS calls / ES refresh | AWS calls / reconcile counted | STS calls in window | operator RSS (window median) | start to all Ready | new ES Ready p50 | p99 | 1% changed → all Secrets updated |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows.iter().filter(|r| r.ready_at_limit.is_some()) {
        println!(
            "| {} | {} | – | – | – | {:.1} MiB | only {} of {} Ready after {} | – | – | – |",
            r.n,
            r.detection,
            r.rss,
            r.ready_at_limit.unwrap_or(0),
            r.n,
            secs(r.all_ready)
        );
    }
    let rows: Vec<&Steady> = rows.iter().filter(|r| r.ready_at_limit.is_none()).collect();
    for r in &rows {
        let change = match r.change {
            Ok(d) => format!("{} ({} secrets)", secs(d), r.change_count),
            Err(left) => format!("not done in 600 s ({left} of {} left)", r.change_count),
        };
        println!(
            "| {} | {} | {:.4} | {} | {} | {:.1} MiB | {} | {} | {} | {} |",
            r.n,
            r.detection,
            r.per_refresh(),
            r.reconciles
                .filter(|c| *c > 0.0)
                .map_or("n/a".into(), |c| format!(
                    "{:.4}",
                    r.calls.values().sum::<u64>() as f64 / c
                )),
            sts(&r.calls),
            r.rss,
            secs(r.all_ready),
            ms(percentile(&r.new_ready, 50.0)),
            ms(percentile(&r.new_ready, 99.0)),
            change
        );
    }
    for r in &rows {
        println!(
            "N={} {}: calls in a {:.0} s window after all Ready + {} s warm-up: {}; ES refreshes implied \
             (N x window / {REFRESH_SECS} s): {:.0}, reconciles counted by the operator: {}; cores used: operator {:.2}, moto {:.2}, fake API server + bench {:.2}; operator RSS \
             (median of 1 s samples) {:.1} MiB anonymous + {:.1} MiB file-backed, largest sample {:.1} MiB; moto seeding {} secrets took {}",
            r.n,
            r.detection,
            r.window.as_secs_f64(),
            2 * REFRESH_SECS,
            by_action(&r.calls),
            r.n as f64 * r.window.as_secs_f64() / REFRESH_SECS as f64,
            r.reconciles.map_or("n/a".into(), |c| format!("{c:.0}")),
            r.cpu[0],
            r.cpu[1],
            r.cpu[2],
            r.rss_split.0,
            r.rss_split.1,
            r.rss_max,
            r.n + r.new_ready.len(),
            secs(r.seed)
        );
    }
    println!(
        "AWS calls / ES refresh = every AWS call moto served in the window (all services, STS included) \
         divided by the refreshes the window implies. Goals: <= 0.02 (ESO and --change-detection=off: 1.0), \
         STS 0, RSS <= 64 MiB at 10,000, new ES p99 <= 1 s"
    );
}

/// 500 ExternalSecrets created at once: how many BatchGetSecretValue calls their first sync takes.
async fn batch_mode(aws: &Aws, count: usize) {
    aws.create("batch", 0..count).await;
    let cluster = Cluster::start().await;
    cluster.apply_store(aws_store()).await;
    let operator = Operator::spawn(
        &cluster.kubeconfig,
        cluster.dir.path().join("operator.log"),
        &[],
        &aws.operator_env(),
    );
    operator.wait_readyz().await;
    let before = aws.counts().await;
    let t = Instant::now();
    // refreshInterval 1h: no refresh adds calls during the measurement.
    cluster
        .apply_all(
            (0..count)
                .map(|i| aws_es(&es_name("batch", i), &secret_name("batch", i), "1h"))
                .collect(),
            64,
        )
        .await;
    let created = t.elapsed();
    cluster
        .wait_ready(count, Duration::from_millis(200), Duration::from_secs(600))
        .await;
    let all_ready = t.elapsed();
    let calls = delta(&aws.counts().await, &before);
    drop(operator);
    let batch = calls
        .get("secretsmanager.BatchGetSecretValue")
        .copied()
        .unwrap_or(0);
    let goal = count / 20 + 5;
    println!(
        "cross-ExternalSecret batching: {count} ExternalSecrets created at once (64 in flight)"
    );
    println!(
        "| ExternalSecrets | created in | all Ready after | BatchGetSecretValue calls | goal | all calls |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {count} | {} | {} | {batch} | <= {goal} {} | {} |",
        ms(created),
        ms(all_ready),
        if batch <= goal as u64 {
            "(met)"
        } else {
            "(missed)"
        },
        by_action(&calls)
    );
}

impl Cluster {
    /// A cluster with the moto store and `n` ExternalSecrets, `es-<i>` reading `<prefix>` secret i
    /// every 10 s.
    async fn with_aws_external_secrets(prefix: &str, n: usize) -> Cluster {
        let cluster = Cluster::start().await;
        cluster.apply_store(aws_store()).await;
        cluster
            .apply_all(
                (0..n)
                    .map(|i| aws_es(&es_name("es", i), &secret_name(prefix, i), "10s"))
                    .collect(),
                32,
            )
            .await;
        cluster
    }
}

/// N ExternalSecrets, 1% of the values changing every minute, RSS sampled every 10 s. Returns
/// (growth % of the last sample over the baseline, every change picked up).
async fn soak_mode(aws: &Aws, n: usize, duration: Duration, detection: &str) -> (f64, bool) {
    let prefix = format!("soak-{n}");
    aws.create(&prefix, 0..n).await;
    let cluster = Cluster::with_aws_external_secrets(&prefix, n).await;
    let operator = Operator::spawn(
        &cluster.kubeconfig,
        cluster.dir.path().join("operator.log"),
        &detection_args(detection),
        &aws.operator_env(),
    );
    let all_ready = cluster
        .wait_ready(n, Duration::from_secs(1), Duration::from_secs(1800))
        .await;

    // The baseline: after 10 minutes in a long soak (the rule); in a short one after 60 s, by
    // when six refresh rounds and one change round have run, so the caches, connection pools and
    // allocator arenas have reached their working size.
    let baseline_at = if duration >= Duration::from_secs(1200) {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    };
    let started = Instant::now();
    let calls_before = aws.counts().await;
    let mut samples: Vec<(Duration, f64)> = Vec::new();
    let mut pickups: Vec<Result<Duration, usize>> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut round = 0u32;
    let mut change_task: Option<tokio::task::JoinHandle<Result<Duration, usize>>> = None;
    let changes_per_round = n.div_ceil(100);
    // Shared across the spawned change tasks.
    let cluster = std::sync::Arc::new(cluster);
    let aws_sm = aws.sm.clone();
    loop {
        tick.tick().await;
        let at = started.elapsed();
        samples.push((at, operator.rss()));
        if at >= duration {
            break;
        }
        // Changes at 30 s, 90 s, 150 s...: each baseline/end pair of samples sits between two of them.
        let due = (at + Duration::from_secs(30)).as_secs() / 60;
        if due > u64::from(round) && at >= Duration::from_secs(30) {
            if let Some(task) = change_task.take() {
                pickups.push(task.await.unwrap());
            }
            round += 1;
            let ids: Vec<usize> = (0..changes_per_round)
                .map(|k| (k * 100 + round as usize) % n)
                .collect();
            let cluster = cluster.clone();
            let sm = aws_sm.clone();
            let prefix = prefix.clone();
            let generation = round;
            change_task = Some(tokio::spawn(async move {
                futures::stream::iter(ids.clone())
                    .map(|i| {
                        let sm = sm.clone();
                        let name = secret_name(&prefix, i);
                        async move {
                            sm.put_secret_value()
                                .secret_id(&name)
                                .secret_string(value(i, generation))
                                .send()
                                .await
                                .unwrap();
                        }
                    })
                    .buffer_unordered(32)
                    .collect::<Vec<_>>()
                    .await;
                wait_values(
                    &cluster,
                    "es",
                    &ids,
                    generation,
                    support::cluster::scaled(Duration::from_secs(55)),
                )
                .await
            }));
        }
    }
    if let Some(task) = change_task.take() {
        pickups.push(task.await.unwrap());
    }
    // The bench's own writes are not the operator's calls.
    let calls: BTreeMap<String, u64> = delta(&aws.counts().await, &calls_before)
        .into_iter()
        .filter(|(k, _)| k != "secretsmanager.PutSecretValue")
        .collect();
    drop(operator);

    let baseline = samples
        .iter()
        .find(|(at, _)| *at >= baseline_at)
        .map_or(0.0, |s| s.1);
    let last = samples.last().map_or(0.0, |s| s.1);
    let max_after = samples
        .iter()
        .filter(|(at, _)| *at >= baseline_at)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    let growth = (last - baseline) / baseline * 100.0;
    let all_picked = pickups.iter().all(Result::is_ok);
    let worst = pickups
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();
    let refreshes = n as f64 * duration.as_secs_f64() / REFRESH_SECS as f64;
    println!(
        "soak on moto: {n} ExternalSecrets, refreshInterval {REFRESH_SECS}s, 1% ({changes_per_round}) of the values \
         changed every minute, {} ({detection}), all Ready {} after start",
        secs(duration),
        secs(all_ready)
    );
    println!(
        "| RSS at baseline ({} s) | RSS at end | max RSS after baseline | growth after baseline (end) | change rounds picked up | slowest pickup | AWS calls / ES refresh |",
        baseline_at.as_secs()
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {baseline:.1} MiB | {last:.1} MiB | {max_after:.1} MiB | {growth:+.1}% | {}/{} | {} | {:.4} |",
        pickups.iter().filter(|p| p.is_ok()).count(),
        pickups.len(),
        secs(worst),
        calls.values().sum::<u64>() as f64 / refreshes
    );
    println!(
        "RSS samples (s: MiB): {}",
        samples
            .iter()
            .map(|(at, r)| format!("{}: {r:.1}", at.as_secs()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "operator's AWS calls during the soak (the bench's PutSecretValue left out): {}",
        by_action(&calls)
    );
    (growth, all_picked && !pickups.is_empty())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let soak_secs = env_usize("SCALE_SOAK_SECS");
    let modes = env_list("SCALE_MODE").unwrap_or_else(|| {
        let mut m = vec!["fake".to_owned()];
        // The CI soak (2 minutes at 1,000) runs under `cargo test`, or wherever a soak is asked for.
        if !full || soak_secs.is_some() {
            m.push("soak".into());
        }
        m
    });
    let detections = env_list("SCALE_DETECTION").unwrap_or_else(|| {
        if has_change_detection() {
            vec!["list".into(), "off".into()]
        } else {
            vec!["default".into()]
        }
    });
    let wants = |m: &str| modes.iter().any(|x| x == m || x == "all");

    if wants("fake") {
        let n = env_usize("SCALE_FAKE_N").unwrap_or(if full { 10_000 } else { 200 });
        fake_mode(n).await;
    }
    if !(wants("moto") || wants("batch") || wants("soak")) {
        return;
    }
    // A fresh moto per run: ListSecrets pages over the whole account, so one run's secrets must not
    // count against the next.
    if wants("moto") {
        let ns: Vec<usize> = env_list("SCALE_N")
            .map(|v| {
                v.iter()
                    .map(|s| s.replace('_', "").parse().unwrap())
                    .collect()
            })
            .unwrap_or_else(|| if full { vec![1_000, 10_000] } else { vec![200] });
        let window =
            Duration::from_secs(
                env_usize("SCALE_WINDOW_SECS").unwrap_or(if full { 60 } else { 20 }) as u64,
            );
        let samples = if full { 100 } else { 20 };
        let mut rows = Vec::new();
        for &n in &ns {
            for d in &detections {
                let t = Instant::now();
                let aws = Aws::start().await;
                rows.push(steady_state(&aws, n, d, window, samples).await);
                eprintln!("moto N={n} {d}: {}", secs(t.elapsed()));
            }
        }
        print_steady(&rows);
    }
    if wants("batch") {
        batch_mode(
            &Aws::start().await,
            env_usize("SCALE_BATCH_N").unwrap_or(500),
        )
        .await;
    }
    if wants("soak") {
        let n = env_usize("SCALE_SOAK_N").unwrap_or(if full { 10_000 } else { 1_000 });
        let secs = soak_secs.unwrap_or(if full { 3600 } else { 120 });
        let detection = detections
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into());
        let (growth, picked) = soak_mode(
            &Aws::start().await,
            n,
            Duration::from_secs(secs as u64),
            &detection,
        )
        .await;
        assert!(
            picked,
            "a change round was not picked up within 55 s (times SECRET_SYNC_TEST_TIME_FACTOR)"
        );
        assert!(
            growth <= 5.0,
            "operator RSS grew {growth:.1}% after the baseline (goal <= 5%)"
        );
    }
}
