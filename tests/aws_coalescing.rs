//! Cross-ExternalSecret batching on moto through the real controller (issue 13): ExternalSecrets
//! created at once share BatchGetSecretValue (20 IDs) and GetParameters (10 names) calls, every one
//! becomes Ready with its own bytes, and the wait that gathers them costs a new ExternalSecret little.
//!
//! The measurement tables: `cargo test --test aws_coalescing -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use secret_sync::api::ExternalSecret;
use secret_sync::controller;
use secret_sync::provider::aws::{BATCH_WAIT, BUSY_BATCH_WAIT};
use support::cluster::{TestCluster, data_of, scaled};
use support::moto::{Moto, cluster_on_moto_batching};

const N: usize = 500;
const NS: &str = "default";
/// Reconciles at once in these tests: enough for 20 concurrent reads to fill a batch (see the report
/// on `--concurrency` for what the default of 16 gets).
const CONCURRENCY: u16 = 64;
/// (quiet, busy) waits: the defaults, none at all (every fetch on its own), and the short one only.
const DEFAULT_WAIT: (Duration, Duration) = (BATCH_WAIT, BUSY_BATCH_WAIT);
const NO_WAIT: (Duration, Duration) = (Duration::ZERO, Duration::ZERO);
const SHORT_WAIT: (Duration, Duration) = (BATCH_WAIT, BATCH_WAIT);

#[derive(Clone, Copy, PartialEq)]
enum Service {
    SecretsManager,
    ParameterStore,
}

impl Service {
    fn store(self) -> String {
        let (name, service) = match self {
            Service::SecretsManager => ("sm", "SecretsManager"),
            Service::ParameterStore => ("ps", "ParameterStore"),
        };
        format!(
            "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  provider:\n    aws: {{service: {service}, region: us-east-1}}\n"
        )
    }

    fn store_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "sm",
            Service::ParameterStore => "ps",
        }
    }

    fn key(self, i: usize) -> String {
        match self {
            Service::SecretsManager => format!("burst/{i}"),
            Service::ParameterStore => format!("/burst/{i}"),
        }
    }

    /// The batch action, and the single read it falls back to.
    fn actions(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Service::SecretsManager => (
                "secretsmanager.BatchGetSecretValue",
                "secretsmanager.GetSecretValue",
                "AWS/SecretsManager",
            ),
            Service::ParameterStore => (
                "ssm.GetParameters",
                "ssm.GetParameter",
                "AWS/ParameterStore",
            ),
        }
    }

    fn limit(self) -> usize {
        match self {
            Service::SecretsManager => 20,
            Service::ParameterStore => 10,
        }
    }
}

fn value(i: usize) -> String {
    format!("value-{i}")
}

/// `n` distinct sources, `value(i)` each (Parameter Store: SecureString, so decryption is exercised).
async fn seed(moto: &Moto, service: Service, from: usize, n: usize) {
    stream::iter(from..from + n)
        .map(|i| async move {
            match service {
                Service::SecretsManager => {
                    moto.put_secret_string(&service.key(i), &value(i)).await;
                }
                Service::ParameterStore => {
                    moto.put_parameter(&service.key(i), &value(i), ParameterType::SecureString)
                        .await;
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

fn external_secret(service: Service, i: usize) -> ExternalSecret {
    let yaml = format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es-{i}, namespace: {NS}}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: {store}}}\n  target: {{name: es-{i}}}\n  data:\n  - {{secretKey: v, remoteRef: {{key: '{key}'}}}}\n",
        store = service.store_name(),
        key = service.key(i),
    );
    serde_yaml_ng::from_str(&yaml).expect("ExternalSecret")
}

fn is_ready(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && format!("{:?}", c.status) == "True")
    })
}

/// ExternalSecrets `from..from+n`, created concurrently through the API.
async fn create_all(c: &TestCluster, service: Service, from: usize, n: usize) {
    let api: Api<ExternalSecret> = Api::namespaced(c.client.clone(), NS);
    stream::iter(from..from + n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &external_secret(service, i))
                    .await
                    .unwrap_or_else(|e| panic!("create es-{i}: {e}"));
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
}

/// Wait until `n` ExternalSecrets are Ready; then every Secret must hold exactly its own value.
async fn wait_all_ready(c: &TestCluster, service: Service, n: usize) {
    let api: Api<ExternalSecret> = Api::namespaced(c.client.clone(), NS);
    let deadline = Instant::now() + scaled(Duration::from_secs(120));
    loop {
        let ready = api
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .iter()
            .filter(|es| is_ready(es))
            .count();
        if ready >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {n} ExternalSecrets became Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let secrets = secrets.list(&ListParams::default()).await.expect("list");
    let mut checked = 0;
    for secret in &secrets.items {
        let Some(i) = secret
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("es-"))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        assert_eq!(
            data_of(secret).get("v").map(String::as_str),
            Some(value(i).as_str()),
            "Secret es-{i} holds its own source's bytes ({})",
            service.key(i)
        );
        checked += 1;
    }
    assert_eq!(checked, n);
}

struct Burst {
    batch_calls: u64,
    single_calls: u64,
    metric: u64,
    all_ready: Duration,
}

/// `N` ExternalSecrets created at once on a fresh moto and cluster; AWS calls of their first sync.
async fn burst(
    service: Service,
    concurrency: u16,
    wait: (Duration, Duration),
) -> (Moto, TestCluster, Burst) {
    let moto = Moto::start().await;
    seed(&moto, service, 0, N).await;
    let config = controller::Config {
        concurrency,
        ..controller::Config::default()
    };
    let c = cluster_on_moto_batching(&moto, config, wait).await;
    c.apply(&service.store()).await;
    moto.reset_counts().await;
    let start = Instant::now();
    create_all(&c, service, 0, N).await;
    let created = start.elapsed();
    wait_all_ready(&c, service, N).await;
    println!("{N} ExternalSecrets created through the API in {created:.2?}");
    let all_ready = start.elapsed();
    let (batch, single, provider) = service.actions();
    let call = batch.split_once('.').map(|(_, a)| a).unwrap_or(batch);
    let burst = Burst {
        batch_calls: moto.count(batch).await,
        single_calls: moto.count(single).await,
        metric: c.metrics.provider_calls(provider, call, "success"),
        all_ready,
    };
    (moto, c, burst)
}

async fn assert_batched(service: Service) {
    let (_moto, _c, b) = burst(service, CONCURRENCY, DEFAULT_WAIT).await;
    let bound = (N / service.limit() + 5) as u64;
    println!(
        "{N} created at once: {} batch calls (bound {bound}), {} single reads, all Ready in {:?}",
        b.batch_calls, b.single_calls, b.all_ready
    );
    assert!(
        b.batch_calls <= bound,
        "{} batch calls for {N} ExternalSecrets, bound {bound}",
        b.batch_calls
    );
    assert_eq!(b.single_calls, 0, "nothing falls back to single reads");
    assert_eq!(
        b.metric, b.batch_calls,
        "the metric counts every call AWS saw"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_external_secrets_created_at_once_share_batch_get_secret_value_calls() {
    assert_batched(Service::SecretsManager).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_external_secrets_created_at_once_share_get_parameters_calls() {
    assert_batched(Service::ParameterStore).await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Ready latency of `samples` ExternalSecrets created one after the other next to `N` existing ones.
async fn new_ready_latency(wait: (Duration, Duration), samples: usize) -> (Duration, Duration) {
    let service = Service::SecretsManager;
    let (moto, c, _) = burst(service, CONCURRENCY, wait).await;
    seed(&moto, service, N, samples).await;
    let api: Api<ExternalSecret> = Api::namespaced(c.client.clone(), NS);
    let mut took = Vec::new();
    for i in N..N + samples {
        let start = Instant::now();
        api.create(&PostParams::default(), &external_secret(service, i))
            .await
            .expect("create");
        loop {
            if api
                .get(&format!("es-{i}"))
                .await
                .is_ok_and(|es| is_ready(&es))
            {
                break;
            }
            assert!(
                start.elapsed() < scaled(Duration::from_secs(30)),
                "es-{i} never became Ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push(start.elapsed());
    }
    took.sort();
    (percentile(&took, 50.0), percentile(&took, 99.0))
}

/// The numbers behind BATCH_WAIT and the `--concurrency` default (printed, not asserted).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn batching_table() {
    println!(
        "| service | concurrency | wait (quiet, busy) | batch calls | single reads | all Ready |"
    );
    for service in [Service::SecretsManager, Service::ParameterStore] {
        for concurrency in [16, 64] {
            for wait in [NO_WAIT, SHORT_WAIT, DEFAULT_WAIT] {
                let (_m, _c, b) = burst(service, concurrency, wait).await;
                println!(
                    "| {} | {concurrency} | {wait:?} | {} | {} | {:.2?} |",
                    service.store_name(),
                    b.batch_calls,
                    b.single_calls,
                    b.all_ready
                );
            }
        }
    }
    println!("| wait | new ExternalSecret Ready p50 | p99 (20 sequential, {N} existing) |");
    for wait in [NO_WAIT, DEFAULT_WAIT] {
        let (p50, p99) = new_ready_latency(wait, 20).await;
        println!("| {wait:?} | {p50:.2?} | {p99:.2?} |");
    }
}
