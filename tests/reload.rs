//! Workload reload end to end: the real controller and the reload controllers against the fake API
//! server. A user opts a workload in, rotates a value in the store, and counts the rollouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::ResourceExt;
use kube::api::Api;
use secret_sync::reload::workload::Workload;
use secret_sync::reload::{OBSERVED_ANNOTATION, SECRETS_HASH_ANNOTATION};
use support::cluster::{TestCluster, scaled, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(scaled(LIMIT), f)
        .await
        .expect("test finished within its time limit");
}

/// A fake store holding `db` and `unrelated`, and two ExternalSecrets: `app-creds` from `db` and
/// `other-creds` from `unrelated`.
fn store_and_secrets(db: &str, unrelated: &str, refresh: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: s, namespace: default}}
spec:
  provider:
    fake:
      data:
      - {{key: db, value: '{db}'}}
      - {{key: unrelated, value: '{unrelated}'}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: app, namespace: default}}
spec:
  refreshInterval: {refresh}
  secretStoreRef: {{name: s}}
  target: {{name: app-creds}}
  data:
  - {{secretKey: password, remoteRef: {{key: db}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: other, namespace: default}}
spec:
  refreshInterval: {refresh}
  secretStoreRef: {{name: s}}
  target: {{name: other-creds}}
  data:
  - {{secretKey: token, remoteRef: {{key: unrelated}}}}
"#
    )
}

/// A workload of `kind` with `annotations` whose pods use app-creds through env, envFrom and a
/// volume (and nothing else).
fn workload(kind: &str, name: &str, annotations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  namespace: default
  annotations: {{{annotations}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: example/app:1
        env:
        - name: PASSWORD
          valueFrom: {{secretKeyRef: {{name: app-creds, key: password}}}}
        envFrom:
        - secretRef: {{name: app-creds}}
        volumeMounts:
        - {{name: creds, mountPath: /creds}}
      volumes:
      - name: creds
        secret: {{secretName: app-creds}}
"#
    )
}

async fn get<K: Workload>(c: &TestCluster, name: &str) -> K {
    Api::<K>::namespaced(c.client.clone(), "default")
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
}

/// The pod-template annotation that rolls the pods (None: never rolled by us).
async fn pod_hash<K: Workload>(c: &TestCluster, name: &str) -> Option<String> {
    let w: K = get(c, name).await;
    w.pod_template()?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(SECRETS_HASH_ANNOTATION)
        .cloned()
}

/// Wait until reload has recorded the workload's Secret hashes (its first sight of it).
async fn wait_recorded<K: Workload>(c: &TestCluster, name: &str) -> String {
    wait_for(
        &format!("{} {name} to get its observed-secrets record", K::kind(&())),
        Duration::from_secs(15),
        || async {
            let w: K = get(c, name).await;
            w.annotations().get(OBSERVED_ANNOTATION).cloned()
        },
    )
    .await
}

/// Wait until the pod-template hash is set and differs from `before`.
async fn wait_rolled<K: Workload>(c: &TestCluster, name: &str, before: Option<&str>) -> String {
    wait_for(
        &format!("{} {name} to get a new pod-template hash", K::kind(&())),
        Duration::from_secs(15),
        || async {
            pod_hash::<K>(c, name)
                .await
                .filter(|h| Some(h.as_str()) != before)
        },
    )
    .await
}

/// PATCHes to workloads since the last `clear_requests`.
fn workload_patches(c: &TestCluster) -> Vec<String> {
    c.server
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && ["/deployments/", "/statefulsets/", "/daemonsets/"]
                    .iter()
                    .any(|k| r.path.contains(k))
        })
        .map(|r| r.path)
        .collect()
}

/// The workload stays as it is for `secs`: same pod-template hash, same generation. A negative, so
/// the window is fixed, not scaled.
async fn assert_stable<K: Workload>(c: &TestCluster, name: &str, secs: u64) {
    let before: K = get(c, name).await;
    let hash = pod_hash::<K>(c, name).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after: K = get(c, name).await;
    assert_eq!(
        pod_hash::<K>(c, name).await,
        hash,
        "{name}: pod-template hash moved"
    );
    assert_eq!(
        after.meta().generation,
        before.meta().generation,
        "{name}: pod template changed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_change_rolls_an_opted_in_deployment_exactly_once_and_then_stays_put() {
    within(async {
        let c = TestCluster::start().await;
        let _reload = c.start_reload();
        c.apply(&store_and_secrets("v1", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;
        let recorded = wait_recorded::<Deployment>(&c, "web").await;
        assert!(recorded.starts_with("app-creds="), "{recorded}");
        assert_eq!(
            pod_hash::<Deployment>(&c, "web").await,
            None,
            "opting in must not restart"
        );

        c.apply(&store_and_secrets("v2", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v2")
            .await;
        let hash = wait_rolled::<Deployment>(&c, "web", None).await;
        let deployment: Deployment = get(&c, "web").await;
        assert_ne!(deployment.annotations()[OBSERVED_ANNOTATION], recorded);
        // Only annotations were written: the spec the user applied is intact.
        let container = &deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(container.image.as_deref(), Some("example/app:1"));
        assert_eq!(container.env_from.as_ref().unwrap().len(), 1);

        // No loop: our own write does not trigger another one.
        assert_stable::<Deployment>(&c, "web", 3).await;
        assert_eq!(
            pod_hash::<Deployment>(&c, "web").await.as_deref(),
            Some(hash.as_str())
        );
        assert_eq!(c.metrics.workload_restarts("Deployment"), 1);
        assert!(
            c.metrics
                .encode()
                .contains(r#"secret_sync_workload_restarts_total{kind="Deployment"} 1"#)
        );

        // A second real change is a second rollout, to another hash.
        c.apply(&store_and_secrets("v3", "u1", "1h")).await;
        let second = wait_rolled::<Deployment>(&c, "web", Some(&hash)).await;
        assert_ne!(second, hash);
        assert_stable::<Deployment>(&c, "web", 2).await;
        assert_eq!(c.metrics.workload_restarts("Deployment"), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_op_refreshes_and_changes_to_unused_secrets_do_not_restart() {
    within(async {
        let c = TestCluster::start().await;
        let _reload = c.start_reload();
        c.apply(&store_and_secrets("v1", "u1", "1s")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.wait_secret_value("default", "other-creds", "token", b"u1")
            .await;
        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;
        let recorded = wait_recorded::<Deployment>(&c, "web").await;
        assert!(!recorded.contains("other-creds"), "{recorded}");

        // Several 1s refreshes with the same data, then a change to a Secret web does not use.
        c.server.clear_requests();
        let refreshes = c.refreshes();
        wait_for("two no-op refreshes", Duration::from_secs(5), || async {
            (c.refreshes() >= refreshes + 2).then_some(())
        })
        .await;
        c.apply(&store_and_secrets("v1", "u2", "1s")).await;
        c.wait_secret_value("default", "other-creds", "token", b"u2")
            .await;
        // A negative (web is not restarted): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(2)).await;

        assert_eq!(pod_hash::<Deployment>(&c, "web").await, None);
        assert_eq!(
            workload_patches(&c),
            Vec::<String>::new(),
            "nothing to write to the Deployment"
        );
        assert_eq!(c.metrics.workload_restarts("Deployment"), 0);
        let deployment: Deployment = get(&c, "web").await;
        assert_eq!(deployment.annotations()[OBSERVED_ANNOTATION], recorded);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_secrets_names_the_secrets_for_statefulsets_and_daemonsets() {
    within(async {
        let c = TestCluster::start().await;
        let _reload = c.start_reload();
        c.apply(&store_and_secrets("v1", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.wait_secret_value("default", "other-creds", "token", b"u1")
            .await;
        // The StatefulSet names the Secret its pods use; the DaemonSet's pods use app-creds too,
        // but it names only other-creds (which its pods read some other way).
        c.apply(&workload(
            "StatefulSet",
            "db",
            "secret-sync.io/reload-secrets: app-creds",
        ))
        .await;
        c.apply(&workload(
            "DaemonSet",
            "agent",
            "secret-sync.io/reload-secrets: 'other-creds, not-ours'",
        ))
        .await;
        wait_recorded::<StatefulSet>(&c, "db").await;
        assert_eq!(
            wait_recorded::<DaemonSet>(&c, "agent").await,
            format!(
                "other-creds={}",
                c.secret("default", "other-creds")
                    .await
                    .unwrap()
                    .annotations()["secret-sync.io/data-hash"]
            )
        );

        c.apply(&store_and_secrets("v2", "u1", "1h")).await;
        let sts_hash = wait_rolled::<StatefulSet>(&c, "db", None).await;
        assert_stable::<DaemonSet>(&c, "agent", 2).await;
        assert_eq!(pod_hash::<DaemonSet>(&c, "agent").await, None);

        c.apply(&store_and_secrets("v2", "u2", "1h")).await;
        wait_rolled::<DaemonSet>(&c, "agent", None).await;
        assert_stable::<StatefulSet>(&c, "db", 2).await;
        assert_eq!(pod_hash::<StatefulSet>(&c, "db").await, Some(sts_hash));
        assert_eq!(c.metrics.workload_restarts("StatefulSet"), 1);
        assert_eq!(c.metrics.workload_restarts("DaemonSet"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_start_up_records_without_restarting_and_catches_up_on_missed_changes() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(&store_and_secrets("v1", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;

        // First start with everything already synced: record only.
        let reload = c.start_reload();
        wait_recorded::<Deployment>(&c, "web").await;
        assert_stable::<Deployment>(&c, "web", 2).await;
        assert_eq!(pod_hash::<Deployment>(&c, "web").await, None);
        reload.stop().await;

        // A restart with nothing changed writes nothing at all.
        c.server.clear_requests();
        let reload = c.start_reload();
        // A negative (no write at start-up): a fixed window, not scaled.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(workload_patches(&c), Vec::<String>::new());
        reload.stop().await;

        // A change while reload was down is caught up once at the next start.
        c.apply(&store_and_secrets("v2", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v2")
            .await;
        assert_eq!(pod_hash::<Deployment>(&c, "web").await, None);
        let _reload = c.start_reload();
        wait_rolled::<Deployment>(&c, "web", None).await;
        assert_stable::<Deployment>(&c, "web", 2).await;
        assert_eq!(c.metrics.workload_restarts("Deployment"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opting_out_forgets_the_record_and_opting_in_again_does_not_restart() {
    within(async {
        let c = TestCluster::start().await;
        let _reload = c.start_reload();
        c.apply(&store_and_secrets("v1", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;
        wait_recorded::<Deployment>(&c, "web").await;

        c.apply(&workload("Deployment", "web", "")).await;
        wait_for(
            "the record to be removed",
            Duration::from_secs(15),
            || async {
                let d: Deployment = get(&c, "web").await;
                (!d.annotations().contains_key(OBSERVED_ANNOTATION)).then_some(())
            },
        )
        .await;
        c.apply(&store_and_secrets("v2", "u1", "1h")).await;
        c.wait_secret_value("default", "app-creds", "password", b"v2")
            .await;

        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;
        wait_recorded::<Deployment>(&c, "web").await;
        assert_stable::<Deployment>(&c, "web", 2).await;
        assert_eq!(pod_hash::<Deployment>(&c, "web").await, None);
        assert_eq!(c.metrics.workload_restarts("Deployment"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_recreated_with_the_same_data_restarts_nothing_even_after_an_operator_restart() {
    within(async {
        let config = secret_sync::controller::Config {
            hash_key_secret: Some("default/secret-sync-hash-key".into()),
            ..Default::default()
        };
        let mut c = TestCluster::start_with(config.clone()).await;
        let _reload = c.start_reload();
        c.apply(&store_and_secrets("v1", "u1", "1h")).await;
        let first = c
            .wait_secret_value("default", "app-creds", "password", b"v1")
            .await;
        c.apply(&workload(
            "Deployment",
            "web",
            "secret-sync.io/reload: 'true'",
        ))
        .await;
        let recorded = wait_recorded::<Deployment>(&c, "web").await;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(c.client.clone(), "default");
        let hash = |s: &k8s_openapi::api::core::v1::Secret| {
            s.annotations()
                .get("secret-sync.io/data-hash")
                .cloned()
                .unwrap()
        };

        for restart in [false, true] {
            if restart {
                // The hash key lives in a Secret: a new process derives the same salt.
                c.stop_controller().await;
                c.start_controller(config.clone(), None);
            }
            let before = c.secret("default", "app-creds").await.unwrap();
            secrets
                .delete("app-creds", &Default::default())
                .await
                .unwrap();
            let again = wait_for(
                "app-creds to be re-created",
                Duration::from_secs(15),
                || async {
                    let s = c.secret("default", "app-creds").await?;
                    (s.metadata.uid != before.metadata.uid && s.data.is_some()).then_some(s)
                },
            )
            .await;
            assert_eq!(
                hash(&again),
                hash(&first),
                "restart={restart}: same data, same hash"
            );
            assert_stable::<Deployment>(&c, "web", 3).await;
            assert_eq!(
                pod_hash::<Deployment>(&c, "web").await,
                None,
                "restart={restart}"
            );
            assert_eq!(
                get::<Deployment>(&c, "web").await.annotations()[OBSERVED_ANNOTATION],
                recorded
            );
        }

        // A real change still rolls, once.
        c.apply(&store_and_secrets("v2", "u1", "1h")).await;
        wait_rolled::<Deployment>(&c, "web", None).await;
        assert_stable::<Deployment>(&c, "web", 2).await;
    })
    .await;
}
