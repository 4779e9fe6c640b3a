//! Rotation events end to end: a value rotated in Secrets Manager (moto) plus an EventBridge-shaped
//! message on SQS reaches the Secret long before the 1h refresh, through the real SQS consumer and
//! controller. Also the webhook, duplicates, reordering and malformed messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_sync::admin::{self, AdminState, Health};
use secret_sync::controller;
use secret_sync::events::sqs::{self, MalformedPolicy, SqsConfig};
use secret_sync::events::{self, webhook};
use support::cluster::{TestCluster, wait_for};
use support::moto::Moto;

const STORE: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: aws, namespace: default}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n";

fn es(name: &str, key: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: aws}}\n  data:\n  - {{secretKey: value, remoteRef: {{key: '{key}'}}}}\n"
    )
}

/// What EventBridge delivers for a CloudTrail-recorded PutSecretValue (the `account` field included,
/// which moto's own envelope lacks).
fn put_event(secret_arn: &str) -> String {
    serde_json::json!({
        "version": "0", "id": uuid(), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager", "account": "123456789012", "region": "us-east-1",
        "time": "2026-11-22T00:00:00Z", "resources": [],
        "detail": {
            "eventSource": "secretsmanager.amazonaws.com", "eventName": "PutSecretValue",
            "requestParameters": {"secretId": secret_arn},
            "responseElements": {"arn": secret_arn}
        }
    })
    .to_string()
}

fn uuid() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    u128::from(h.finish())
}

struct Rig {
    cluster: TestCluster,
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    changes: events::ChangeSender,
    _consumer: tokio::task::JoinHandle<()>,
}

async fn rig(malformed: MalformedPolicy) -> Rig {
    let moto = Moto::start().await;
    let mut cluster = TestCluster::without_controller().await;
    let providers = moto.providers(Some(cluster.client.clone())).await;
    let (changes, rx) = events::channel();
    cluster.start_controller_with(controller::Config::default(), providers, Some(rx));
    let sqs = aws_sdk_sqs::Client::new(&moto.config().await);
    let queue_url = sqs
        .create_queue()
        .queue_name("rotations")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let config = SqsConfig {
        queue_url: queue_url.clone(),
        malformed,
        wait_seconds: 20,
    };
    let consumer = tokio::spawn(sqs::run(
        sqs.clone(),
        config,
        changes.clone(),
        cluster.metrics.clone(),
        std::future::pending(),
    ));
    cluster.apply(STORE).await;
    Rig {
        cluster,
        moto,
        sqs,
        queue_url,
        changes,
        _consumer: consumer,
    }
}

impl Rig {
    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    async fn rotate(&self, name: &str, value: &str) {
        self.moto.put_secret_string(name, value).await;
    }

    /// Secret `app/db` = "v0" in Secrets Manager, ExternalSecret `app` synced from it; its ARN.
    async fn synced_app(&self) -> String {
        self.rotate("app/db", "v0").await;
        self.cluster.apply(&es("app", "app/db")).await;
        self.cluster
            .wait_secret_value("default", "app", "value", b"v0")
            .await;
        self.arn("app/db").await
    }

    async fn arn(&self, name: &str) -> String {
        let sm = self.moto.secrets_manager().await;
        sm.describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap()
    }

    async fn queue_depth(&self) -> usize {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let count = |n: aws_sdk_sqs::types::QueueAttributeName| {
            attrs
                .get(&n)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    fn secret_patches(&self) -> usize {
        self.cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/secrets/app"))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_event_on_sqs_reaches_the_secret_without_waiting_for_the_refresh() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        let arn = rig.synced_app().await;
        let mut latencies = Vec::new();
        for i in 1..=5 {
            let value = format!("v{i}");
            rig.rotate("app/db", &value).await;
            let sent = Instant::now();
            rig.send(&put_event(&arn)).await;
            rig.cluster
                .wait_secret_value("default", "app", "value", value.as_bytes())
                .await;
            latencies.push(sent.elapsed());
        }
        println!("event-to-Secret latencies: {latencies:?}");
        assert_eq!(rig.cluster.metrics.events("sqs", "matched"), 5);
        wait_for(
            "the handled messages to be deleted",
            Duration::from_secs(10),
            || async { (rig.queue_depth().await == 0).then_some(()) },
        )
        .await;
    })
    .await;
}

/// AWS's native `Secret Label Updated` (sent without CloudTrail): the documented sample in
/// examples/events/, pointed at this test's secret.
fn label_updated_event(name: &str, secret_arn: &str) -> String {
    let path = format!(
        "{}/examples/events/samples/secret-label-updated.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["id"] = uuid().into();
    event["account"] = "123456789012".into();
    event["region"] = "us-east-1".into();
    event["resources"] = serde_json::json!([secret_arn]);
    event["detail"]["name"] = name.into();
    event.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_secret_label_updated_event_refreshes_every_external_secret_reading_it() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        let arn = rig.synced_app().await;
        // A second reader of the same secret, by ARN, and a bystander reading another one.
        rig.cluster.apply(&es("by-arn", &arn)).await;
        rig.rotate("other/db", "o0").await;
        rig.cluster.apply(&es("bystander", "other/db")).await;
        rig.cluster
            .wait_secret_value("default", "by-arn", "value", b"v0")
            .await;
        rig.cluster
            .wait_secret_value("default", "bystander", "value", b"o0")
            .await;

        rig.rotate("app/db", "v1").await;
        rig.rotate("other/db", "o1").await;
        rig.send(&label_updated_event("app/db", &arn)).await;
        rig.cluster
            .wait_secret_value("default", "app", "value", b"v1")
            .await;
        rig.cluster
            .wait_secret_value("default", "by-arn", "value", b"v1")
            .await;
        assert_eq!(rig.cluster.metrics.events("sqs", "matched"), 1);
        // A negative (the bystander keeps its value until its 1h refresh): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            rig.cluster
                .secret("default", "bystander")
                .await
                .unwrap()
                .data
                .unwrap()["value"]
                .0,
            b"o0"
        );

        // An event of a kind the table does not know is counted by detail-type and deleted.
        rig.send(
            &label_updated_event("app/db", &arn)
                .replace("Secret Label Updated", "Secret Label Archived"),
        )
        .await;
        wait_for(
            "the unknown event to be counted",
            Duration::from_secs(15),
            || async {
                (rig.cluster
                    .metrics
                    .unrecognised_events("Secret Label Archived")
                    == 1)
                    .then_some(())
            },
        )
        .await;
        assert_eq!(rig.cluster.metrics.events("sqs", "unrecognised"), 1);
        wait_for("the queue to drain", Duration::from_secs(10), || async {
            (rig.queue_depth().await == 0).then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_reordered_unmatched_and_malformed_messages_are_harmless() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        let arn = rig.synced_app().await;

        // Malformed and unknown messages: logged, deleted, nothing crashes.
        rig.send("this is not json").await;
        rig.send(r#"{"hello":"world"}"#).await;
        rig.send(&put_event(&arn).replace("PutSecretValue", "GetSecretValue"))
            .await;
        rig.send(&put_event(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:unrelated-AbCdEf",
        ))
        .await;
        wait_for(
            "malformed, ignored and unmatched messages to be counted",
            Duration::from_secs(15),
            || async {
                let m = &rig.cluster.metrics;
                (m.events("sqs", "malformed") == 2
                    && m.events("sqs", "ignored") == 1
                    && m.events("sqs", "unmatched") == 1)
                    .then_some(())
            },
        )
        .await;
        wait_for("the queue to drain", Duration::from_secs(10), || async {
            (rig.queue_depth().await == 0).then_some(())
        })
        .await;

        // Two rotations whose events arrive twice and out of order: the Secret ends at the newest value.
        rig.cluster.server.clear_requests();
        rig.rotate("app/db", "v1").await;
        rig.rotate("app/db", "v2").await;
        let event = put_event(&arn);
        for _ in 0..3 {
            rig.send(&event).await;
        }
        rig.cluster
            .wait_secret_value("default", "app", "value", b"v2")
            .await;
        // A negative (duplicates cause no further write): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            rig.cluster
                .secret("default", "app")
                .await
                .unwrap()
                .data
                .unwrap()["value"]
                .0,
            b"v2"
        );
        assert_eq!(
            rig.secret_patches(),
            1,
            "one real change, one Secret write, however many duplicate events"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_can_be_left_for_the_dead_letter_queue() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::LeaveForDeadLetterQueue).await;
        rig.send("not json at all").await;
        wait_for(
            "the malformed message to be seen",
            Duration::from_secs(15),
            || async { (rig.cluster.metrics.events("sqs", "malformed") >= 1).then_some(()) },
        )
        .await;
        assert_eq!(
            rig.queue_depth().await,
            1,
            "kept for redelivery and, after maxReceiveCount, the DLQ"
        );
    })
    .await;
}

async fn post(addr: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /v1/refresh HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refreshes_only_with_valid_authentication() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        rig.cluster
            .apply("apiVersion: v1\nkind: Secret\nmetadata: {name: webhook-key, namespace: default}\nstringData: {token: s3cret-webhook-key}\n")
            .await;
        rig.synced_app().await;

        let health = Health::default();
        health.leader.store(true, std::sync::atomic::Ordering::Relaxed);
        let state = AdminState {
            metrics: rig.cluster.metrics.clone(),
            health: health.clone(),
            webhook: Some(Arc::new(webhook::WebhookState {
                key: webhook::KeySource::new(rig.cluster.client.clone(), "default".into(), "webhook-key".into()),
                changes: rig.changes.clone(),
                metrics: rig.cluster.metrics.clone(),
                leader: health.leader.clone(),
            })),
        };
        let listener = admin::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(admin::serve(listener, state, std::future::pending()));

        let body = br#"{"provider":"aws-secretsmanager","key":"app/db"}"#;
        rig.rotate("app/db", "v1").await;
        assert_eq!(post(&addr, &[], body).await, 401, "no credentials");
        assert_eq!(post(&addr, &[("Authorization", "Bearer wrong".into())], body).await, 401, "wrong token");
        assert_eq!(post(&addr, &[("x-secret-sync-signature", "sha256=00".into())], body).await, 401, "bad signature");
        // A negative (rejected requests change nothing): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rig.cluster.secret("default", "app").await.unwrap().data.unwrap()["value"].0, b"v0", "rejected requests change nothing");

        assert_eq!(post(&addr, &[("Authorization", "Bearer s3cret-webhook-key".into())], body).await, 202);
        rig.cluster.wait_secret_value("default", "app", "value", b"v1").await;

        use hmac::Mac;
        rig.rotate("app/db", "v2").await;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-webhook-key").unwrap();
        mac.update(body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(post(&addr, &[("x-secret-sync-signature", signature)], body).await, 202);
        rig.cluster.wait_secret_value("default", "app", "value", b"v2").await;

        let huge = vec![b' '; webhook::MAX_BODY + 1];
        assert_eq!(post(&addr, &[("Authorization", "Bearer s3cret-webhook-key".into())], &huge).await, 413);
        assert_eq!(post(&addr, &[("Authorization", "Bearer s3cret-webhook-key".into())], b"nope").await, 400);
        health.leader.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(post(&addr, &[("Authorization", "Bearer s3cret-webhook-key".into())], body).await, 503, "a standby asks the sender to retry");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_annotation_marks_a_stale_source_overdue_with_a_warning() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        rig.rotate("old/db", "v0").await;
        rig.rotate("new/db", "v0").await;
        let annotated = |name: &str, key: &str, max_age: &str| {
            es(name, key).replace(
                &format!("metadata: {{name: {name}, namespace: default}}"),
                &format!("metadata: {{name: {name}, namespace: default, annotations: {{secret-sync.io/max-age: '{max_age}'}}}}"),
            )
        };
        // The first source is older than 1s by the time it is checked; the second is allowed 90 days.
        // A lower bound on the source's age, so not scaled.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        rig.cluster.apply(&annotated("stale", "old/db", "1s")).await;
        rig.cluster.apply(&annotated("fresh", "new/db", "90d")).await;
        let overdue = wait_for("RotationOverdue=True on the stale ExternalSecret", Duration::from_secs(15), || async {
            let es = rig.cluster.external_secret("default", "stale").await;
            es.status?.conditions.into_iter().find(|c| c.type_ == "RotationOverdue" && format!("{:?}", c.status) == "True")
        })
        .await;
        assert!(overdue.message.unwrap().contains("\"old/db\""));
        let fresh = wait_for("RotationOverdue=False on the fresh one", Duration::from_secs(15), || async {
            let es = rig.cluster.external_secret("default", "fresh").await;
            es.status?.conditions.into_iter().find(|c| c.type_ == "RotationOverdue")
        })
        .await;
        assert_eq!(format!("{:?}", fresh.status), "False");
        let events = wait_for("a RotationOverdue warning", Duration::from_secs(10), || async {
            let ev = rig.cluster.event_texts("default").await;
            ev.iter().any(|e| e.starts_with("Warning RotationOverdue")).then_some(ev)
        })
        .await;
        assert_eq!(events.iter().filter(|e| e.starts_with("Warning RotationOverdue")).count(), 1, "{events:?}");
        assert!(rig.cluster.metrics.encode().contains("secret_sync_source_last_changed_timestamp_seconds{namespace=\"default\",name=\"stale\",key=\"old/db\"}"));
        // Rotation is ready: still one Ready=True Secret.
        rig.cluster.wait_ready("default", "stale", "True", "SecretSynced").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_survives_sqs_errors_and_keeps_delivering() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        let arn = rig.synced_app().await;
        // SQS fails: more than the SDK's three attempts, so the consumer itself has to back off and retry.
        rig.moto
            .inject_fault("ReceiveMessage", 8, 500, "InternalError")
            .await;
        rig.rotate("app/db", "v1").await;
        rig.send(&put_event(&arn)).await;
        wait_for(
            "receive failures to be counted",
            Duration::from_secs(20),
            || async { (rig.cluster.metrics.events("sqs", "receive_failed") >= 1).then_some(()) },
        )
        .await;
        rig.cluster
            .wait_secret_value("default", "app", "value", b"v1")
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_does_not_cut_short_the_backoff_of_a_failing_external_secret() {
    support::moto::within_timeout(async {
        let rig = rig(MalformedPolicy::Delete).await;
        // The key does not exist yet: the first sync fails and backs off (2.5–5 s for a first failure).
        rig.cluster.apply(&es("app", "late/db")).await;
        rig.cluster
            .wait_ready("default", "app", "False", "SecretSyncedError")
            .await;
        let failed_at = Instant::now();
        rig.rotate("late/db", "v1").await;
        let arn = rig.arn("late/db").await;
        rig.send(&put_event(&arn)).await;
        wait_for(
            "the event to be matched",
            Duration::from_secs(10),
            || async { (rig.cluster.metrics.events("sqs", "matched") >= 1).then_some(()) },
        )
        .await;
        let matched_after = failed_at.elapsed();
        // A negative, asserted only while the backoff (at least 2.5 s) surely still runs; not scaled.
        if matched_after < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                rig.cluster.secret("default", "app").await.is_none(),
                "the event must wait for the backoff retry"
            );
        }
        // The backoff retry itself then syncs.
        rig.cluster
            .wait_secret_value("default", "app", "value", b"v1")
            .await;
    })
    .await;
}
