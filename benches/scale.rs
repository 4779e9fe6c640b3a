//! Scale: the operator binary (its own process, so its memory is measured alone) against N
//! ExternalSecrets on the fake API server. Reports time to sync all, the operator's resident memory,
//! and how fast a new ExternalSecret becomes Ready while N others exist.
//! `cargo bench --bench scale` uses N = 10,000; under `cargo test` it runs N = 200 as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use secret_sync::api::ExternalSecret;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn es(i: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": format!("es-{i:05}"), "namespace": "default"},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
                 "data": [{"secretKey": "password", "remoteRef": {"key": format!("key-{}", i % 100)}}]}
    })
}

async fn ready_count(api: &Api<ExternalSecret>) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|e| {
                    e.status.as_ref().is_some_and(|s| {
                        s.conditions.iter().any(|c| {
                            c.type_ == "Ready" && c.reason.as_deref() == Some("SecretSynced")
                        })
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SCALE_N overrides the size (docs/memory.md measures N = 1,000 too).
    let n = match std::env::var("SCALE_N").ok().and_then(|v| v.parse().ok()) {
        Some(n) => n,
        None if std::env::args().any(|a| a == "--bench") => 10_000,
        None => 200,
    };
    secret_sync::install_crypto_provider();
    let server = FakeApiServer::start_with(fake_apiserver::Config {
        history_limit: 100_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = server.client();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    for crd in secret_sync::api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let entries: Vec<serde_json::Value> = (0..100)
        .map(|k| serde_json::json!({"key": format!("key-{k}"), "value": format!("value-{k}")}))
        .collect();
    let store = serde_json::json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "fake", "namespace": "default"}, "spec": {"provider": {"fake": {"data": entries}}}});
    let stores: Api<secret_sync::api::SecretStore> = Api::default_namespaced(client.clone());
    stores
        .patch("fake", &PatchParams::apply("bench"), &Patch::Apply(&store))
        .await
        .unwrap();
    let es_api: Api<ExternalSecret> = Api::default_namespaced(client.clone());
    futures::stream::iter(0..n)
        .map(|i| {
            let api = es_api.clone();
            async move {
                api.patch(
                    &format!("es-{i:05}"),
                    &PatchParams::apply("bench"),
                    &Patch::Apply(&es(i)),
                )
                .await
                .unwrap()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let mut operator = Command::new(env!("CARGO_BIN_EXE_secret-sync"))
        .args([
            "run",
            "--admin-addr",
            &admin.to_string(),
            "--concurrency",
            "32",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = operator.id();

    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut first_sync = None;
    loop {
        if first_sync.is_none()
            && secrets
                .list(&ListParams::default().limit(1))
                .await
                .is_ok_and(|l| !l.items.is_empty())
        {
            first_sync = Some(started.elapsed());
        }
        if ready_count(&es_api).await >= n {
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
    let rss = rss_mib(pid);

    // A new ExternalSecret while N exist: time from create to Ready.
    let mut new_ready = Vec::new();
    for j in 0..20 {
        let i = n + j;
        let t = Instant::now();
        es_api
            .patch(
                &format!("es-{i:05}"),
                &PatchParams::apply("bench"),
                &Patch::Apply(&es(i)),
            )
            .await
            .unwrap();
        loop {
            let obj = es_api.get(&format!("es-{i:05}")).await.unwrap();
            if obj.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some("SecretSynced"))
            }) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "new ExternalSecret not Ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        new_ready.push(t.elapsed());
    }
    new_ready.sort();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = operator.wait();

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "scale: {n} ExternalSecrets (fake provider, 1 key each), operator as its own process, concurrency 32"
    );
    println!(
        "| start to first Secret | start to all Ready | operator RSS after sync | new ES Ready p50 | new ES Ready p99 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {} | {} | {:.1} MiB | {} | {} |",
        first_sync.map(ms).unwrap_or_default(),
        ms(all_synced),
        rss,
        ms(percentile(&new_ready, 50.0)),
        ms(percentile(&new_ready, 99.0))
    );
    println!("targets: RSS <= 64 MiB at 10,000; new ExternalSecret Ready within 1 s (p99)");
}
