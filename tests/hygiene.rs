//! Secret hygiene: canary values pass through every path (success, update, failure) and must never
//! show up in logs captured at trace level, in Events, in status or in metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::logs::Capture;

use std::time::Duration;

use base64::Engine as _;
use kube::api::Api;
use support::cluster::{TestCluster, wait_for};

const CANARY: &str = "CANARY-9f1c7e-never-print-me";
const CANARY_ROTATED: &str = "CANARY-2b8d44-rotated-value";

fn forms(value: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        value.to_owned(),
        b64.encode(value),
        b64.encode(format!("{{\"pw\":\"{value}\"}}")),
    ]
}

/// Passwords the Password generator wrote during the test.
static GENERATED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn assert_clean(place: &str, text: &str) {
    for password in GENERATED.lock().unwrap().iter() {
        assert!(
            !text.contains(password.as_str()),
            "a generated password leaked into {place}"
        );
    }
    for canary in [CANARY, CANARY_ROTATED] {
        for form in forms(canary) {
            assert!(
                !text.contains(&form),
                "secret value (form {form:?}) leaked into {place}"
            );
        }
        // Even a fragment is too much.
        assert!(
            !text.contains(&canary[..16]),
            "secret value fragment leaked into {place}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_values_never_reach_logs_events_status_or_metrics() {
    let capture = Capture::install(tracing::Level::TRACE);

    tokio::time::timeout(fake_apiserver::test_time::scaled(Duration::from_secs(60)), async {
        let c = TestCluster::start().await;
        let store = |value: &str| {
            format!(
                "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: s, namespace: default}}\nspec:\n  provider:\n    fake:\n      data:\n      - {{key: plain, value: '{value}'}}\n      - {{key: json, value: '{{\"pw\":\"{value}\"}}'}}\n"
            )
        };
        c.apply(&store(CANARY)).await;
        let es = |extra: &str| {
            format!(
                "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app, namespace: default}}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {{name: s}}\n  data:\n  - {{secretKey: a, remoteRef: {{key: plain}}}}\n  - {{secretKey: b, remoteRef: {{key: json, property: pw}}}}\n{extra}"
            )
        };
        c.apply(&es("")).await;
        c.wait_secret_value("default", "app", "a", CANARY.as_bytes()).await;
        // Update path.
        c.apply(&store(CANARY_ROTATED)).await;
        c.wait_secret_value("default", "app", "b", CANARY_ROTATED.as_bytes()).await;
        // Failure paths that handle the value: property of a non-JSON value, bad base64.
        c.apply(&es("  - {secretKey: c, remoteRef: {key: plain, property: x}}")).await;
        c.wait_ready("default", "app", "False", "SecretSyncedError").await;
        c.apply(&es("  - {secretKey: c, remoteRef: {key: plain, decodingStrategy: Base64}}")).await;
        wait_for("decode failure in status", Duration::from_secs(15), || async {
            c.ready("default", "app").await?.message?.starts_with("DecodeFailed").then_some(())
        })
        .await;
        // Generated passwords, regenerated at every refresh (ESO): each one seen must stay as secret.
        c.apply("apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: pw, namespace: default}\nspec: {length: 32}\n").await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: gen, namespace: default}\nspec:\n  refreshInterval: 1s\n  dataFrom:\n  - sourceRef: {generatorRef: {kind: Password, name: pw}}\n").await;
        wait_for("three generated passwords", Duration::from_secs(15), || async {
            let s = c.secret("default", "gen").await?;
            let value = s.data?.get("password")?.0.clone();
            let mut generated = GENERATED.lock().unwrap();
            generated.insert(String::from_utf8(value).ok()?);
            (generated.len() >= 3).then_some(())
        })
        .await;
        // A negative (no value leaks while refreshes keep handling it): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let es_obj = c.external_secret("default", "app").await;
        assert_clean("ExternalSecret status", &serde_json::to_string(&es_obj.status).unwrap());
        let stores: Api<secret_sync::api::SecretStore> = Api::namespaced(c.client.clone(), "default");
        assert_clean("SecretStore status", &serde_json::to_string(&stores.get("s").await.unwrap().status).unwrap());
        assert_clean("Events", &c.event_texts("default").await.join("\n"));
        assert_clean("metrics", &c.metrics.encode());
    })
    .await
    .expect("within time limit");

    let logs = capture.text();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was captured"
    );
    assert!(logs.contains("synced"), "controller logs were captured");
    assert_clean("logs", &logs);
}
