//! Logs at info: a steady state logs nothing, a change logs once (issue 9). Its own test binary, because
//! the log capture is the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::logs::Capture;

use std::time::Duration;

use support::cluster::{TestCluster, scaled, wait_for};

fn lines_with(logs: &str, parts: &[&str]) -> usize {
    logs.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_logs_nothing_at_info_and_each_change_logs_once() {
    let capture = Capture::install(tracing::Level::INFO);

    tokio::time::timeout(scaled(Duration::from_secs(60)), async {
        let c = TestCluster::start().await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: here, value: v}\n      - {key: going, value: g}\n").await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: steady, namespace: default}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  data:\n  - {secretKey: k, remoteRef: {key: here}}\n").await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: gone, namespace: default}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {deletionPolicy: Delete}\n  data:\n  - {secretKey: k, remoteRef: {key: going}}\n").await;
        c.wait_secret_value("default", "gone", "k", b"g").await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: here, value: v}\n").await;
        wait_for("Secret gone to be deleted", Duration::from_secs(15), || async {
            c.secret("default", "gone").await.is_none().then_some(())
        })
        .await;
        // Several 1 s refreshes of both: one unchanged, one already deleted.
        let refreshes = c.refreshes();
        tokio::time::sleep(Duration::from_secs(4)).await; // asserting a negative: no new log lines
        assert!(c.refreshes() >= refreshes + 3, "refreshes happened");
    })
    .await
    .expect("within time limit");

    let logs = capture.text();
    assert_eq!(
        lines_with(&logs, &["name=steady", "synced"]),
        1,
        "one line for the creation:\n{logs}"
    );
    assert_eq!(
        lines_with(&logs, &["name=gone", "Created", "synced"]),
        1,
        "{logs}"
    );
    assert_eq!(
        lines_with(&logs, &["name=gone", "Deleted", "synced"]),
        1,
        "deleted once, not per refresh:\n{logs}"
    );
    assert_eq!(lines_with(&logs, &["name=gone", "synced"]), 2, "{logs}");
}
