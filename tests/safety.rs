//! Safety first (issue 9): never delete or overwrite what the user did not ask us to, one owner per key.
//! Each test is an input modelled on a public bug report, run on the fake API server with the real
//! controller (and moto where AWS semantics matter), judged by the Secret's bytes and the status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use support::cluster::{TestCluster, data_of, pairs, scaled, wait_for};
use support::moto::{Moto, cluster_on_moto, within_timeout};

use support::cluster::fake_store as store;

fn external_secret(name: &str, spec: &str) -> String {
    support::cluster::external_secret_yaml("default", name, spec)
}

/// A Secret made by hand (a plain create: an Update entry for its manager, as `kubectl create` makes).
async fn hand_made(c: &TestCluster, name: &str, data: &[(&str, &str)]) {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "stringData": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.client.clone(), "default")
        .create(
            &PostParams {
                field_manager: Some("kubectl-create".into()),
                ..Default::default()
            },
            &secret,
        )
        .await
        .unwrap();
}

async fn wait_data(c: &TestCluster, name: &str, want: &BTreeMap<String, String>) -> Secret {
    wait_for(
        &format!(
            "Secret {name} to hold exactly {:?}",
            want.keys().collect::<Vec<_>>()
        ),
        Duration::from_secs(20),
        || async {
            let s = c.secret("default", name).await?;
            (&data_of(&s) == want).then_some(s)
        },
    )
    .await
}

/// The Secret's resourceVersion does not move for `for_` (several 1 s refreshes): nobody is writing.
async fn assert_stable(c: &TestCluster, name: &str, for_: Duration) -> Secret {
    let before = c.secret("default", name).await.unwrap();
    tokio::time::sleep(for_).await; // asserting a negative: nothing may happen in this window
    let after = c.secret("default", name).await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "Secret {name} was written while nothing changed: {:?} -> {:?}",
        data_of(&before).keys().collect::<Vec<_>>(),
        data_of(&after).keys().collect::<Vec<_>>()
    );
    after
}

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(scaled(Duration::from_secs(90)), f)
        .await
        .expect("test finished within its time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_merge_writers_into_one_hand_made_secret_keep_each_others_keys() {
    within(async {
        let c = TestCluster::start().await;
        hand_made(&c, "shared", &[("original", "o"), ("k1", "o"), ("k2", "o")]).await;
        c.apply(&store("default", "s", &[("r1", "remote-1"), ("r2", "remote-2")])).await;
        let merge = |key: &str, remote: &str| {
            format!("  refreshInterval: 1s\n  secretStoreRef: {{name: s}}\n  target: {{name: shared, creationPolicy: Merge}}\n  data:\n  - {{secretKey: {key}, remoteRef: {{key: {remote}}}}}")
        };
        c.apply(&external_secret("a", &merge("k1", "r1"))).await;
        c.apply(&external_secret("b", &merge("k2", "r2"))).await;
        let want = pairs(&[("original", "o"), ("k1", "remote-1"), ("k2", "remote-2")]);
        wait_data(&c, "shared", &want).await;
        c.wait_ready("default", "a", "True", "SecretSynced").await;
        c.wait_ready("default", "b", "True", "SecretSynced").await;
        let s = assert_stable(&c, "shared", Duration::from_secs(4)).await;
        assert_eq!(data_of(&s), want, "stable, both keys");

        // Renaming one key removes only the old name.
        c.apply(&external_secret("a", &merge("k1b", "r1"))).await;
        let want = pairs(&[("original", "o"), ("k1b", "remote-1"), ("k2", "remote-2")]);
        wait_data(&c, "shared", &want).await;

        // Deleting one ExternalSecret (deletionPolicy Retain) keeps its keys.
        Api::<secret_sync::api::ExternalSecret>::namespaced(c.client.clone(), "default")
            .delete("b", &DeleteParams::default())
            .await
            .unwrap();
        let s = assert_stable(&c, "shared", Duration::from_secs(3)).await;
        assert_eq!(data_of(&s), want);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_orphan_own_the_whole_data_and_remove_foreign_keys() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(&store("default", "s", &[("app", r#"{"username":"u","password":"p"}"#)])).await;
        for (es, target, policy) in [("own", "owned", "Owner"), ("orph", "orphaned", "Orphan")] {
            hand_made(&c, target, &[("username", "old"), ("access-key", "ak")]).await;
            c.apply(&external_secret(
                es,
                &format!("  refreshInterval: 1s\n  secretStoreRef: {{name: s}}\n  target: {{name: {target}, creationPolicy: {policy}}}\n  dataFrom:\n  - extract: {{key: app}}"),
            ))
            .await;
        }
        let want = pairs(&[("username", "u"), ("password", "p")]);
        for target in ["owned", "orphaned"] {
            wait_data(&c, target, &want).await;
            // A key added later with kubectl goes on the next sync.
            let patch = serde_json::json!({"stringData": {"extra": "x"}});
            Api::<Secret>::namespaced(c.client.clone(), "default")
                .patch(target, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            wait_data(&c, target, &want).await;
        }
        let owned = c.secret("default", "owned").await.unwrap();
        assert_eq!(owned.metadata.owner_references.unwrap()[0].name, "own", "Owner adopted it");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_writer_into_a_secret_owned_by_another_external_secret_is_refused() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(&store("default", "s", &[("a", "va"), ("b", "vb")])).await;
        c.apply(&external_secret("owner", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: held}\n  data:\n  - {secretKey: a, remoteRef: {key: a}}")).await;
        c.wait_secret_value("default", "held", "a", b"va").await;
        c.apply(&external_secret("intruder", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: held, creationPolicy: Merge}\n  data:\n  - {secretKey: b, remoteRef: {key: b}}")).await;
        let ready = c.wait_ready("default", "intruder", "False", "SecretSyncedError").await;
        let message = ready.message.unwrap();
        assert!(message.contains("\"owner\""), "names the owner: {message}");
        assert!(message.starts_with("SecretOwnedByOther: "), "{message}");
        let s = assert_stable(&c, "held", Duration::from_secs(3)).await;
        assert_eq!(data_of(&s), pairs(&[("a", "va")]), "no write, no fight");
        c.wait_ready("default", "owner", "True", "SecretSynced").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_never_overwrites_a_hand_made_secret() {
    within(async {
        let c = TestCluster::start().await;
        hand_made(&c, "precious", &[("password", "old-value")]).await;
        c.apply(&store("default", "s", &[("pw", "new-value")])).await;
        c.apply(&external_secret("imm", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: precious, creationPolicy: Orphan, immutable: true}\n  data:\n  - {secretKey: password, remoteRef: {key: pw}}")).await;
        let ready = c.wait_ready("default", "imm", "False", "SecretSyncedError").await;
        let message = ready.message.unwrap();
        assert!(message.contains("immutable") && message.contains("\"precious\""), "{message}");
        assert!(!message.contains("new-value") && !message.contains("old-value"));
        let s = c.secret("default", "precious").await.unwrap();
        assert_eq!(data_of(&s), pairs(&[("password", "old-value")]), "existing data not overwritten");
        assert_ne!(s.immutable, Some(true), "and not made immutable");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_secret_with_a_changed_source_stays_ready_and_is_not_retried() {
    within(async {
        let c = TestCluster::start().await;
        c.apply(&store("default", "s", &[("pw", "first")])).await;
        c.apply(&external_secret("imm", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: frozen, immutable: true}\n  data:\n  - {secretKey: password, remoteRef: {key: pw}}")).await;
        let s = c.wait_secret_value("default", "frozen", "password", b"first").await;
        assert_eq!(s.immutable, Some(true));
        c.apply(&store("default", "s", &[("pw", "rotated")])).await;
        let ready = wait_for("Ready to say the Secret is immutable", Duration::from_secs(20), || async {
            let r = c.ready("default", "imm").await?;
            r.message.as_deref().is_some_and(|m| m.contains("immutable")).then_some(r)
        })
        .await;
        assert_eq!(format!("{:?}", ready.status), "True", "stays Ready: {ready:?}");
        assert_eq!(ready.reason.as_deref(), Some("SecretSynced"));
        let s = assert_stable(&c, "frozen", Duration::from_secs(4)).await;
        assert_eq!(data_of(&s), pairs(&[("password", "first")]));
        let warnings: Vec<String> = c.event_texts("default").await.into_iter().filter(|e| e.starts_with("Warning")).collect();
        assert_eq!(warnings.len(), 1, "one Warning, not one per refresh: {warnings:?}");
        assert!(warnings[0].contains("ImmutableNotUpdated"), "{warnings:?}");
        assert!(!warnings[0].contains("kube::") && !warnings[0].contains("Api("), "plain sentence: {warnings:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_written_by_the_old_shared_field_manager_are_migrated_on_first_sight() {
    within(async {
        let c = TestCluster::start().await;
        let api = Api::<Secret>::namespaced(c.client.clone(), "default");
        // What the previous version wrote: one apply by the shared manager "secret-sync".
        hand_made(&c, "merged", &[("theirs", "t")]).await;
        for body in [
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "merged", "namespace": "default"}, "stringData": {"k1": "old", "stale": "s"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "orphaned", "namespace": "default", "labels": {"app.kubernetes.io/managed-by": "secret-sync"}}, "stringData": {"a": "old", "stale": "s"}}),
        ] {
            let name = body["metadata"]["name"].as_str().unwrap().to_owned();
            api.patch(&name, &PatchParams::apply("secret-sync").force(), &Patch::Apply(&body)).await.unwrap();
        }
        c.apply(&store("default", "s", &[("r", "new")])).await;
        c.apply(&external_secret("m", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: merged, creationPolicy: Merge}\n  data:\n  - {secretKey: k1, remoteRef: {key: r}}")).await;
        c.apply(&external_secret("o", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: orphaned, creationPolicy: Orphan}\n  data:\n  - {secretKey: a, remoteRef: {key: r}}")).await;

        // Orphan owns the whole data: the stale key goes with the old manager.
        let s = wait_data(&c, "orphaned", &pairs(&[("a", "new")])).await;
        let managers = |s: &Secret| -> Vec<String> {
            s.metadata.managed_fields.clone().unwrap_or_default().into_iter().filter(|e| e.operation.as_deref() == Some("Apply")).filter_map(|e| e.manager).collect()
        };
        let m = wait_for("the old manager's entry to go", Duration::from_secs(20), || async {
            let s = c.secret("default", "merged").await?;
            let m = managers(&s);
            (!m.iter().any(|m| m == "secret-sync")).then_some(m)
        })
        .await;
        assert!(m.iter().all(|m| m.starts_with("secret-sync/")), "{m:?}");
        assert!(!managers(&s).iter().any(|m| m == "secret-sync"), "{:?}", managers(&s));
        let merged = wait_data(&c, "merged", &pairs(&[("theirs", "t"), ("k1", "new"), ("stale", "s")])).await;
        assert!(merged.metadata.owner_references.unwrap_or_default().is_empty());
        // Ownership moved to the new manager: a rename now removes the old key.
        c.apply(&external_secret("m", "  refreshInterval: 1s\n  secretStoreRef: {name: s}\n  target: {name: merged, creationPolicy: Merge}\n  data:\n  - {secretKey: k1b, remoteRef: {key: r}}")).await;
        wait_data(&c, "merged", &pairs(&[("theirs", "t"), ("k1b", "new"), ("stale", "s")])).await;
    })
    .await;
}

const AWS_STORES: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: sm, namespace: default}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: ps, namespace: default}\nspec:\n  provider:\n    aws: {service: ParameterStore, region: us-east-1}\n";

fn versioned(store: &str, key: &str, version: &str, deletion: &str) -> String {
    format!(
        "  refreshInterval: 1s\n  secretStoreRef: {{name: {store}}}\n  target: {{deletionPolicy: {deletion}}}\n  data:\n  - {{secretKey: value, remoteRef: {{key: {key}, version: \"{version}\"}}}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_that_do_not_exist_never_delete_the_secret() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter("/app/param", "p-v1", ParameterType::String)
            .await;
        moto.put_parameter("/app/param", "p-v2", ParameterType::String)
            .await;
        moto.ssm()
            .await
            .label_parameter_version()
            .name("/app/param")
            .parameter_version(1)
            .labels("stable")
            .send()
            .await
            .unwrap();
        let version_id = moto.put_secret_string("app/secret", "s-v1").await;
        let c = cluster_on_moto(&moto).await;
        c.apply(AWS_STORES).await;
        let cases = [
            (
                "by-version",
                "ps",
                "/app/param",
                "2".to_owned(),
                "9",
                "p-v2",
            ),
            (
                "by-label",
                "ps",
                "/app/param",
                "stable".to_owned(),
                "nosuchlabel",
                "p-v1",
            ),
            (
                "by-stage",
                "sm",
                "app/secret",
                "AWSCURRENT".to_owned(),
                "AWSPREVIOUS",
                "s-v1",
            ),
            (
                "by-uuid",
                "sm",
                "app/secret",
                format!("uuid/{version_id}"),
                "uuid/00000000-0000-0000-0000-000000000000",
                "s-v1",
            ),
        ];
        for (name, store, key, version, _, _) in &cases {
            c.apply(&external_secret(
                name,
                &versioned(store, key, version, "Delete"),
            ))
            .await;
        }
        for (name, _, _, _, _, value) in &cases {
            c.wait_secret_value("default", name, "value", value.as_bytes())
                .await;
            c.wait_ready("default", name, "True", "SecretSynced").await;
        }
        for (name, store, key, _, missing, _) in &cases {
            c.apply(&external_secret(
                name,
                &versioned(store, key, missing, "Delete"),
            ))
            .await;
        }
        for (name, _, key, _, missing, value) in &cases {
            let ready = c
                .wait_ready("default", name, "False", "SecretSyncedError")
                .await;
            let message = ready.message.unwrap();
            assert!(
                message.starts_with("VersionNotFound: "),
                "{name}: {message}"
            );
            assert!(
                message.contains(missing) && message.contains(key),
                "{name}: {message}"
            );
            let s = c
                .secret("default", name)
                .await
                .unwrap_or_else(|| panic!("{name}: the live Secret was deleted"));
            assert_eq!(data_of(&s), pairs(&[("value", value)]), "{name}: untouched");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_scheduled_for_deletion_is_gone_and_syncs_again_after_restore() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/doomed", "d-1").await;
        moto.put_secret_string("app/alive", "a-1").await;
        let c = cluster_on_moto(&moto).await;
        c.apply(AWS_STORES).await;
        c.apply(&external_secret("whole", &versioned("sm", "app/doomed", "AWSCURRENT", "Delete").replace(", version: \"AWSCURRENT\"", ""))).await;
        c.apply(&external_secret("partial", "  refreshInterval: 1s\n  secretStoreRef: {name: sm}\n  target: {deletionPolicy: Merge}\n  data:\n  - {secretKey: doomed, remoteRef: {key: app/doomed}}\n  - {secretKey: alive, remoteRef: {key: app/alive}}")).await;
        c.wait_secret_value("default", "whole", "value", b"d-1").await;
        c.wait_secret_value("default", "partial", "doomed", b"d-1").await;

        let sm = moto.secrets_manager().await;
        sm.delete_secret().secret_id("app/doomed").recovery_window_in_days(7).send().await.unwrap();
        wait_for("Secret whole to be deleted (deletionPolicy Delete)", Duration::from_secs(20), || async {
            c.secret("default", "whole").await.is_none().then_some(())
        })
        .await;
        c.wait_ready("default", "whole", "True", "SecretDeleted").await;
        wait_data(&c, "partial", &pairs(&[("alive", "a-1")])).await;

        sm.restore_secret().secret_id("app/doomed").send().await.unwrap();
        // Back within a few refreshes (1 s), not after a 5-minute "permanent error" backoff.
        c.wait_secret_value("default", "whole", "value", b"d-1").await;
        c.wait_secret_value("default", "partial", "doomed", b"d-1").await;
        c.wait_ready("default", "whole", "True", "SecretSynced").await;
    })
    .await;
}
