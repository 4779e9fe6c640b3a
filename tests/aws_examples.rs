//! examples/aws/ as a user would apply them: every document parses with our types, is accepted by the
//! API server (fake, with our CRDs), and the running controller, talking to moto seeded with matching
//! data, writes Secrets holding exactly the expected bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_ssm::types::ParameterType;
use secret_sync::admin::Health;
use secret_sync::api::{ExternalSecret, SecretStore};
use secret_sync::controller::{self, runtime};
use secret_sync::provider::Providers;
use secret_sync::provider::aws::AwsProviders;
use support::cluster::TestCluster;
use support::moto::{Moto, within_timeout};

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/aws");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        4,
        "examples/aws holds the four documented files"
    );
    files
}

#[test]
fn every_example_document_parses_with_our_types() {
    let mut kinds = Vec::new();
    for (file, text) in examples() {
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a document without kind"))
                .to_owned();
            match kind.as_str() {
                "SecretStore" => {
                    let store: SecretStore =
                        serde_yaml_ng::from_value(value).unwrap_or_else(|e| panic!("{file}: {e}"));
                    assert!(store.spec.provider.aws.is_some(), "{file}: an aws store");
                }
                "ExternalSecret" => {
                    let es: ExternalSecret =
                        serde_yaml_ng::from_value(value).unwrap_or_else(|e| panic!("{file}: {e}"));
                    controller::build::check_supported(&es.spec)
                        .unwrap_or_else(|e| panic!("{file}: {e}"));
                }
                "ServiceAccount" => {}
                other => panic!("{file}: unexpected kind {other}"),
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ExternalSecret",
            "ExternalSecret",
            "ExternalSecret",
            "SecretStore",
            "SecretStore",
            "SecretStore",
            "ServiceAccount"
        ]
    );
}

/// The remote data the examples refer to.
async fn seed(moto: &Moto) {
    moto.put_secret_string(
        "app/db",
        r#"{"credentials":{"username":"app","password":"pa55-current"},"endpoint.host":"db.apps.internal"}"#,
    )
    .await;
    moto.put_secret_string("app/db-password", "pa55-old").await;
    moto.put_secret_string("app/db-password", "pa55-current")
        .await;
    moto.put_secret_string(
        "app/settings",
        r#"{"LOG_LEVEL":"info","FEATURES":{"beta":true}}"#,
    )
    .await;
    moto.put_secret_string("app/api-key", "ak-0123456789").await;
    moto.put_parameter("/app/url", "https://v1.apps.example", ParameterType::String)
        .await;
    moto.put_parameter("/app/url", "https://v2.apps.example", ParameterType::String)
        .await;
    moto.ssm()
        .await
        .label_parameter_version()
        .name("/app/url")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();
    moto.put_parameter("/app/token", "tok-first", ParameterType::SecureString)
        .await;
    moto.put_parameter("/app/token", "tok-second", ParameterType::SecureString)
        .await;
    moto.put_parameter(
        "/app/hosts",
        "a.internal,b.internal",
        ParameterType::StringList,
    )
    .await;
}

#[tokio::test]
async fn applied_examples_sync_exact_values_from_moto() {
    within_timeout(async {
        let moto = Moto::start().await;
        seed(&moto).await;
        let cluster = TestCluster::without_controller().await;
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n")
            .await;
        for (_, text) in examples() {
            cluster.apply(&text).await;
        }
        moto.reset_counts().await;

        // The controller as main runs it, with the AWS base configuration pointing at moto.
        let metrics = cluster.metrics.clone();
        let aws = AwsProviders::with_base_config(
            Some(cluster.client.clone()),
            metrics.clone(),
            moto.config().await,
        );
        let providers = Providers {
            kube: Some(cluster.client.clone()),
            metrics: metrics.clone(),
            aws: Arc::new(aws),
        };
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let controller = tokio::spawn(runtime::run(
            cluster.client.clone(),
            controller::Config::default(),
            providers,
            metrics,
            Health::default(),
            None,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));

        cluster
            .wait_secret_value("apps", "app-db", "username", b"app")
            .await;
        cluster
            .wait_secret_value("apps", "app-db", "password", b"pa55-current")
            .await;
        cluster
            .wait_secret_value("apps", "app-db", "host", b"db.apps.internal")
            .await;
        cluster
            .wait_secret_value("apps", "app-db", "previous-password", b"pa55-old")
            .await;
        cluster
            .wait_secret_value("apps", "app-db", "LOG_LEVEL", b"info")
            .await;
        cluster
            .wait_secret_value("apps", "app-db", "FEATURES", br#"{"beta":true}"#)
            .await;
        cluster
            .wait_secret_value("apps", "app-api-key", "api-key", b"ak-0123456789")
            .await;
        cluster
            .wait_secret_value("apps", "app-config", "url", b"https://v2.apps.example")
            .await;
        cluster
            .wait_secret_value(
                "apps",
                "app-config",
                "stable-url",
                b"https://v1.apps.example",
            )
            .await;
        cluster
            .wait_secret_value("apps", "app-config", "token", b"tok-second")
            .await;
        cluster
            .wait_secret_value("apps", "app-config", "first-token", b"tok-first")
            .await;
        cluster
            .wait_secret_value("apps", "app-config", "hosts", b"a.internal,b.internal")
            .await;
        for name in ["app-db", "app-api-key", "app-config"] {
            cluster
                .wait_ready("apps", name, "True", "SecretSynced")
                .await;
        }
        // The ServiceAccount store exchanged one token for credentials; the others used the base identity.
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 1);

        let _ = stop.send(true);
        let _ = tokio::time::timeout(
            fake_apiserver::test_time::scaled(std::time::Duration::from_secs(10)),
            controller,
        )
        .await;
    })
    .await;
}
