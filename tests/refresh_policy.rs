//! Refresh policies exactly as ESO (issue 10): four ExternalSecrets, one per policy column of
//! src/controller/refresh.rs, driven through every trigger a user causes, judged by the Secret's bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use support::cluster::{TestCluster, scaled, wait_for};

/// name, refreshPolicy line, refreshInterval
const POLICIES: [(&str, &str, &str); 4] = [
    ("zero", "", "\"0\""),
    ("on-change", "  refreshPolicy: OnChange\n", "5s"),
    ("created-once", "  refreshPolicy: CreatedOnce\n", "5s"),
    ("periodic", "  refreshPolicy: Periodic\n", "5s"),
];

fn store(v1: &str, v2: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: s, namespace: default}}\nspec:\n  provider:\n    fake:\n      data:\n      - {{key: db, version: v1, value: '{v1}'}}\n      - {{key: db, version: v2, value: '{v2}'}}\n"
    )
}

fn external_secret(
    name: &str,
    policy: &str,
    interval: &str,
    version: &str,
    annotation: &str,
) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default, annotations: {{note: '{annotation}'}}}}\nspec:\n{policy}  refreshInterval: {interval}\n  secretStoreRef: {{name: s}}\n  data:\n  - {{secretKey: value, remoteRef: {{key: db, version: {version}}}}}\n"
    )
}

async fn apply_all(c: &TestCluster, version: &str, annotation: &str) {
    for (name, policy, interval) in POLICIES {
        c.apply(&external_secret(
            name, policy, interval, version, annotation,
        ))
        .await;
    }
}

async fn value(c: &TestCluster, name: &str) -> Option<String> {
    let s = c.secret("default", name).await?;
    Some(String::from_utf8(s.data?.get("value")?.0.clone()).unwrap())
}

/// After the changing columns have the new value, the others still hold the old one.
async fn expect(c: &TestCluster, want: [&str; 4]) {
    for ((name, _, _), value_wanted) in POLICIES.iter().zip(want) {
        wait_for(
            &format!("{name} to hold {value_wanted:?}"),
            Duration::from_secs(15),
            || async { (value(c, name).await.as_deref() == Some(value_wanted)).then_some(()) },
        )
        .await;
    }
    // Asserting a negative: the columns that must not change stay as they are for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for ((name, _, _), value_wanted) in POLICIES.iter().zip(want) {
        assert_eq!(
            value(c, name).await.as_deref(),
            Some(value_wanted),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_syncs_on_exactly_its_triggers() {
    tokio::time::timeout(scaled(Duration::from_secs(120)), async {
        let c = TestCluster::start().await;
        c.apply(&store("a1", "a2")).await;
        apply_all(&c, "v1", "first").await;
        expect(&c, ["a1", "a1", "a1", "a1"]).await;

        // Spec change: only OnChange and Periodic follow.
        apply_all(&c, "v2", "first").await;
        expect(&c, ["a1", "a2", "a1", "a2"]).await;

        // Store edit: only Periodic follows (ESO's other policies ignore store edits).
        c.apply(&store("b1", "b2")).await;
        expect(&c, ["a1", "a2", "a1", "b2"]).await;

        // Annotation change: OnChange (and Periodic) re-sync; "0" and CreatedOnce do not.
        apply_all(&c, "v2", "second").await;
        expect(&c, ["a1", "b2", "a1", "b2"]).await;

        // A deleted Secret is re-created under every policy, from the current spec and value.
        let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
        for (name, _, _) in POLICIES {
            secrets
                .delete(name, &DeleteParams::default())
                .await
                .unwrap();
        }
        expect(&c, ["b2", "b2", "b2", "b2"]).await;
    })
    .await
    .expect("within the time limit");
}
