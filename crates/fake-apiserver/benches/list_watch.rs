//! Benchmark: 10,000 ConfigMaps and 100 concurrent watches against the fake apiserver.
//! Prints a table of medians. Run with `cargo bench -p fake-apiserver`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

const OBJECTS: usize = 10_000;
const WATCHES: usize = 100;
const RUNS: usize = 9;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let rss_start = rss_mib();

    let start = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut c = ConfigMap::default();
                c.metadata.name = Some(format!("cm-{i:05}"));
                c.metadata.labels = Some([("app".to_string(), format!("app-{}", i % 10))].into());
                c.data = Some(
                    [(
                        "config".to_string(),
                        format!("value-{i}-{}", "x".repeat(128)),
                    )]
                    .into(),
                );
                api.create(&PostParams::default(), &c).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    let load_time = start.elapsed();
    let rss_loaded = rss_mib();

    let mut raw_list = Vec::new();
    let mut typed_list = Vec::new();
    let mut selector_list = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let req = http::Request::builder()
            .uri("/api/v1/namespaces/default/configmaps")
            .body(kube::client::Body::from(Vec::new()))
            .unwrap();
        let bytes = client
            .send(req)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert!(bytes.len() > OBJECTS * 100);
        raw_list.push(t.elapsed());

        let t = Instant::now();
        let list = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), OBJECTS);
        typed_list.push(t.elapsed());

        let t = Instant::now();
        let list = api
            .list(&ListParams::default().labels("app=app-3"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), OBJECTS / 10);
        selector_list.push(t.elapsed());
    }

    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watches = Vec::new();
    for _ in 0..WATCHES {
        watches.push(
            api.watch(&WatchParams::default().timeout(290), &rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_watching = rss_mib();

    // Fan-out: one write, time until all 100 watchers have received it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    for (i, mut w) in watches.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = w.try_next().await {
                if let WatchEvent::Modified(_) = ev {
                    let _ = tx.send((i, Instant::now()));
                }
            }
        });
    }
    let mut fanout = Vec::new();
    for run in 0..RUNS {
        let t = Instant::now();
        api.patch(
            "cm-00042",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"run": run.to_string()}})),
        )
        .await
        .unwrap();
        let mut last = t;
        for _ in 0..WATCHES {
            let (_, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            last = last.max(at);
        }
        fanout.push(last - t);
    }
    let rss_end = rss_mib();

    println!(
        "fake-apiserver list/watch benchmark ({OBJECTS} ConfigMaps, {WATCHES} watches, median of {RUNS} runs)"
    );
    println!("| measurement                                   | value      |");
    println!("|-----------------------------------------------|------------|");
    println!(
        "| create {OBJECTS} objects (16 concurrent)         | {:>10} |",
        ms(load_time)
    );
    println!(
        "| full LIST, raw HTTP (server + transfer)       | {:>10} |",
        ms(median(raw_list))
    );
    println!(
        "| full LIST, kube::Api<ConfigMap> (+ decoding)  | {:>10} |",
        ms(median(typed_list))
    );
    println!(
        "| LIST with labelSelector (1,000 of {OBJECTS})    | {:>10} |",
        ms(median(selector_list))
    );
    println!(
        "| write -> all {WATCHES} watchers notified            | {:>10} |",
        ms(median(fanout))
    );
    println!(
        "| RSS at start                                  | {:>6.1} MiB |",
        rss_start
    );
    println!(
        "| RSS with {OBJECTS} objects                       | {:>6.1} MiB |",
        rss_loaded
    );
    println!(
        "| RSS with {OBJECTS} objects + {WATCHES} open watches     | {:>6.1} MiB |",
        rss_watching
    );
    println!(
        "| RSS at end                                    | {:>6.1} MiB |",
        rss_end
    );
    println!("(RSS is the whole process: server, kube client and benchmark together.)");
}
