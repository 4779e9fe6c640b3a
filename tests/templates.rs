//! `target.template` end to end (issue 11): the real controller on the fake API server writes the
//! Secret a template describes — data, type, labels, annotations — with templateFrom ConfigMaps and
//! literals, follows a ConfigMap change, and refuses a broken template without touching the Secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::cluster::{TestCluster, scaled, wait_for};

const STORE: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: db, value: '{\"user\":\"app\",\"password\":\"p@ss w0rd\",\"host\":\"db.internal\"}'}\n      - {key: registry, value: '{\"user\":\"robot\",\"token\":\"t0k\"}'}\n";

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(scaled(Duration::from_secs(60)), f)
        .await
        .expect("within the time limit");
}

fn text(s: &k8s_openapi::api::core::v1::Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_writes_data_type_labels_and_annotations() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(STORE).await;
        let es = r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app, namespace: default}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: s}
  target:
    name: registry-creds
    template:
      type: kubernetes.io/dockerconfigjson
      metadata:
        labels: {team: '{{ .user }}'}
        annotations: {note: fixed}
      data:
        .dockerconfigjson: '{"auths":{"registry.example.com":{"auth":"{{ printf "%s:%s" .user .token | b64enc }}"}}}'
  dataFrom:
  - extract: {key: registry}
"#;
        c.apply(es).await;
        let s = c.wait_secret_value("default", "registry-creds", ".dockerconfigjson", br#"{"auths":{"registry.example.com":{"auth":"cm9ib3Q6dDBr"}}}"#).await;
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert_eq!(s.data.as_ref().unwrap().len(), 1, "only the templated key (mergePolicy Replace)");
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels["team"], "robot");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "secret-sync");
        assert_eq!(s.metadata.annotations.unwrap()["note"], "fixed");
        c.wait_ready("default", "app", "True", "SecretSynced").await;
        // A metadata-only template edit (same data) still reaches the Secret.
        c.apply(&es.replace("note: fixed", "note: edited")).await;
        wait_for("the edited annotation", Duration::from_secs(15), || async {
            let s = c.secret("default", "registry-creds").await?;
            (s.metadata.annotations?.get("note")? == "edited").then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_from_a_config_map_follows_the_config_map() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(STORE).await;
        let config_map = |tpl: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: conn, namespace: default}}\ndata:\n  url: '{tpl}'\n");
        c.apply(&config_map("postgres://{{ .user }}@{{ .host }}/app")).await;
        c.apply(r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app, namespace: default}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: s}
  target:
    template:
      mergePolicy: Merge
      templateFrom:
      - configMap: {name: conn, items: [{key: url, templateAs: Values}]}
      - target: Annotations
        literal: "rendered-for: '{{ .user }}'"
  dataFrom:
  - extract: {key: db}
"#).await;
        let s = c.wait_secret_value("default", "app", "url", b"postgres://app@db.internal/app").await;
        assert_eq!(text(&s, "password"), "p@ss w0rd", "mergePolicy Merge keeps the fetched keys");
        assert_eq!(s.metadata.annotations.unwrap()["rendered-for"], "app");
        // With a 1h refresh, only the watch of the ConfigMap can bring this change.
        c.apply(&config_map("postgresql://{{ .user }}:{{ .password | urlquery }}@{{ .host }}")).await;
        c.wait_secret_value("default", "app", "url", b"postgresql://app:p%40ss+w0rd@db.internal").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_template_is_reported_and_leaves_the_secret_untouched() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(STORE).await;
        let es = |tpl: &str| format!("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app, namespace: default}}\nspec:\n  secretStoreRef: {{name: s}}\n  target:\n    template:\n      data:\n        dsn: '{tpl}'\n  dataFrom:\n  - extract: {{key: db}}\n");
        c.apply(&es("{{ .user }}@{{ .host }}")).await;
        let before = c.wait_secret_value("default", "app", "dsn", b"app@db.internal").await;
        c.apply(&es("{{ .nosuchkey }}")).await;
        let ready = wait_for("a template error in status", Duration::from_secs(15), || async {
            let r = c.ready("default", "app").await?;
            (format!("{:?}", r.status) == "False").then_some(r)
        })
        .await;
        let message = ready.message.unwrap();
        assert!(message.starts_with("TemplateExecute: ") && message.contains("\"dsn\""), "{message}");
        assert!(!message.contains("p@ss"), "{message}");
        let after = c.secret("default", "app").await.unwrap();
        assert_eq!(after.data, before.data, "untouched");
    })
    .await;
}
