//! Rotation latency: from an EventBridge-shaped message landing on SQS to the Secret holding the new
//! value, through the real SQS consumer and controller, with refreshInterval 1h so the timer cannot help.
//! `cargo bench --bench rotation_latency` runs 100 rotations; under `cargo test` it runs 5 as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use secret_sync::controller;
use secret_sync::events;
use secret_sync::events::sqs::{self, MalformedPolicy, SqsConfig};
use support::cluster::TestCluster;
use support::moto::Moto;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rotations = if full { 100 } else { 5 };
    let moto = Moto::start().await;
    let mut cluster = TestCluster::without_controller().await;
    let providers = moto.providers(Some(cluster.client.clone())).await;
    let (changes, rx) = events::channel();
    cluster.start_controller_with(controller::Config::default(), providers, Some(rx));
    let sqs_client = aws_sdk_sqs::Client::new(&moto.config().await);
    let queue_url = sqs_client
        .create_queue()
        .queue_name("bench")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let config = SqsConfig {
        queue_url: queue_url.clone(),
        malformed: MalformedPolicy::Delete,
        wait_seconds: 20,
    };
    tokio::spawn(sqs::run(
        sqs_client.clone(),
        config,
        changes,
        cluster.metrics.clone(),
        std::future::pending(),
    ));

    cluster.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: aws, namespace: default}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n").await;
    moto.put_secret_string("bench/db", "v0").await;
    cluster.apply("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app, namespace: default}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {name: aws}\n  data:\n  - {secretKey: value, remoteRef: {key: bench/db}}\n").await;
    cluster
        .wait_secret_value("default", "app", "value", b"v0")
        .await;
    let sm = moto.secrets_manager().await;
    let arn = sm
        .describe_secret()
        .secret_id("bench/db")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();

    let mut latencies = Vec::with_capacity(rotations);
    for i in 1..=rotations {
        let value = format!("v{i}");
        moto.put_secret_string("bench/db", &value).await;
        let event = serde_json::json!({
            "version": "0", "id": format!("bench-{i}"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager", "account": "123456789012", "region": "us-east-1", "resources": [],
            "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": arn}}
        });
        let sent = Instant::now();
        sqs_client
            .send_message()
            .queue_url(&queue_url)
            .message_body(event.to_string())
            .send()
            .await
            .unwrap();
        // Poll the API server as a pod's kubelet would see it.
        loop {
            let secret = cluster.secret("default", "app").await;
            if secret
                .and_then(|s| s.data)
                .is_some_and(|d| d.get("value").is_some_and(|v| v.0 == value.as_bytes()))
            {
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "rotation {i} did not arrive within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "rotation latency, SQS message sent -> Secret updated ({rotations} rotations, refreshInterval 1h)"
    );
    println!("| p50 | p90 | p99 | max |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {} | {} | {} | {} |",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "goal: p99 <= 2000 ms; ESO without events: up to the refresh interval (1 h by default)"
    );
}
