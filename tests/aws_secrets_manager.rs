//! Secrets Manager through the AWS provider against moto: exact bytes for every remoteRef shape, versions,
//! rotation, batching and throttling, as a reconcile would see them (provider + controller::build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Instant;

use aws_smithy_types::Blob;
use secret_sync::provider::{FetchRequest, ProviderError};
use support::moto::{ACCOUNT, Moto, REGION, desired, es_spec, store, text, within_timeout};

const STORE: &str = r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: aws, namespace: apps}
spec:
  provider:
    aws: {service: SecretsManager, region: us-east-1}
"#;

#[tokio::test]
async fn string_binary_json_property_and_extract_arrive_byte_for_byte() {
    within_timeout(async {
        let moto = Moto::start().await;
        let sm = moto.secrets_manager().await;
        moto.put_secret_string("app/plain", "s3cr3t value\n").await;
        let binary = vec![0u8, 159, 146, 150, 255, 10];
        sm.create_secret()
            .name("app/binary")
            .secret_binary(Blob::new(binary.clone()))
            .send()
            .await
            .unwrap();
        moto.put_secret_string(
            "app/json",
            r#"{"db":{"port":5432,"user":"admin"},"conn.host":"db.internal","tls":{"ca.crt":"CA-PEM"}}"#,
        )
        .await;

        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let spec = es_spec(
            r#"
data:
  - {secretKey: plain, remoteRef: {key: app/plain}}
  - {secretKey: binary, remoteRef: {key: app/binary}}
  - {secretKey: user, remoteRef: {key: app/json, property: db.user}}
  - {secretKey: port, remoteRef: {key: app/json, property: db.port}}
  - {secretKey: host, remoteRef: {key: app/json, property: 'conn\.host'}}
  - {secretKey: ca, remoteRef: {key: app/json, property: 'tls.ca\.crt'}}
dataFrom:
  - extract: {key: app/json}
"#,
        );
        let data = desired(provider.as_ref(), &spec).await.unwrap();
        assert_eq!(data.data["plain"].expose(), b"s3cr3t value\n");
        assert_eq!(data.data["binary"].expose(), binary.as_slice());
        assert_eq!(text(&data, "user"), "admin");
        assert_eq!(text(&data, "port"), "5432");
        assert_eq!(text(&data, "host"), "db.internal");
        assert_eq!(text(&data, "ca"), "CA-PEM");
        // extract: one key per field; nested values stay JSON text (keys already in order here: see the
        // report on key ordering of nested values).
        assert_eq!(text(&data, "db"), r#"{"port":5432,"user":"admin"}"#);
        assert_eq!(text(&data, "conn.host"), "db.internal");
        assert_eq!(text(&data, "tls"), r#"{"ca.crt":"CA-PEM"}"#);
        assert!(data.missing_remote_keys.is_empty());
    })
    .await;
}

#[tokio::test]
async fn previous_stage_and_pinned_version_id_return_those_versions() {
    within_timeout(async {
        let moto = Moto::start().await;
        let first = moto.put_secret_string("app/rotating", "v1").await;
        let second = moto.put_secret_string("app/rotating", "v2").await;
        moto.put_secret_string("app/rotating", "v3").await;

        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let spec = es_spec(&format!(
            r#"
data:
  - {{secretKey: current, remoteRef: {{key: app/rotating}}}}
  - {{secretKey: explicit-current, remoteRef: {{key: app/rotating, version: AWSCURRENT}}}}
  - {{secretKey: previous, remoteRef: {{key: app/rotating, version: AWSPREVIOUS}}}}
  - {{secretKey: first, remoteRef: {{key: app/rotating, version: "uuid/{first}"}}}}
  - {{secretKey: second, remoteRef: {{key: app/rotating, version: "uuid/{second}"}}}}
"#
        ));
        let data = desired(provider.as_ref(), &spec).await.unwrap();
        assert_eq!(text(&data, "current"), "v3");
        assert_eq!(text(&data, "explicit-current"), "v3");
        assert_eq!(text(&data, "previous"), "v2");
        assert_eq!(text(&data, "first"), "v1");
        assert_eq!(text(&data, "second"), "v2");
    })
    .await;
}

#[tokio::test]
async fn arn_keys_prefix_and_tags_metadata_are_honoured() {
    within_timeout(async {
        let moto = Moto::start().await;
        let sm = moto.secrets_manager().await;
        let created = sm
            .create_secret()
            .name("team/app/db")
            .secret_string("by-arn")
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("owner")
                    .value("team-a")
                    .build(),
            )
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("env")
                    .value("prod")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let arn = created.arn.unwrap();
        assert!(arn.starts_with(&format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team/app/db-"
        )));

        let providers = moto.providers(None).await;
        let plain = providers.for_store(&store(STORE), "apps").await.unwrap();
        let by_arn = plain
            .fetch_many(&[
                FetchRequest::current(arn.clone()),
                FetchRequest::current(arn[..arn.len() - 7].to_owned()),
            ])
            .await;
        assert_eq!(by_arn[0].as_ref().unwrap().expose(), b"by-arn");
        assert_eq!(
            by_arn[1].as_ref().unwrap().expose(),
            b"by-arn",
            "a partial ARN names the same secret"
        );

        let prefixed =
            store(&STORE.replace("region: us-east-1", "region: us-east-1, prefix: team/"));
        let provider = providers.for_store(&prefixed, "apps").await.unwrap();
        let spec = es_spec(
            r#"
data:
  - {secretKey: value, remoteRef: {key: app/db}}
  - {secretKey: tags, remoteRef: {key: app/db, metadataPolicy: Fetch}}
  - {secretKey: owner, remoteRef: {key: app/db, metadataPolicy: Fetch, property: owner}}
"#,
        );
        let data = desired(provider.as_ref(), &spec).await.unwrap();
        assert_eq!(text(&data, "value"), "by-arn");
        assert_eq!(text(&data, "tags"), r#"{"env":"prod","owner":"team-a"}"#);
        assert_eq!(text(&data, "owner"), "team-a");
    })
    .await;
}

#[tokio::test]
async fn missing_secrets_are_not_found_in_batches_and_single_calls() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/here", "present").await;
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let got = provider
            .fetch_many(&[
                FetchRequest::current("app/here"),
                FetchRequest::current("app/gone"),
                FetchRequest {
                    key: "app/gone".into(),
                    version: Some("AWSPREVIOUS".into()),
                    metadata: false,
                },
            ])
            .await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"present");
        assert_eq!(
            got[1],
            Err(ProviderError::NotFound {
                key: "app/gone".into()
            })
        );
        assert_eq!(
            got[2],
            Err(ProviderError::NotFound {
                key: "app/gone".into()
            })
        );
    })
    .await;
}

#[tokio::test]
async fn only_a_missing_or_deleted_secret_is_gone_never_a_missing_version() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/one-version", "v1").await;
        moto.put_secret_string("app/doomed", "d").await;
        moto.put_secret_string("app/alive", "a").await;
        let sm = moto.secrets_manager().await;
        sm.create_secret()
            .name("app/no-value")
            .send()
            .await
            .unwrap();
        sm.delete_secret()
            .secret_id("app/doomed")
            .recovery_window_in_days(7)
            .send()
            .await
            .unwrap();
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let version = |key: &str, v: &str| FetchRequest {
            key: key.into(),
            version: Some(v.into()),
            metadata: false,
        };
        let got = provider
            .fetch_many(&[
                version("app/one-version", "AWSPREVIOUS"),
                version(
                    "app/one-version",
                    "uuid/00000000-0000-0000-0000-000000000000",
                ),
                FetchRequest::current("app/no-value"),
                FetchRequest::current("app/doomed"),
                version("app/doomed", "AWSCURRENT"),
                FetchRequest::current("app/alive"),
            ])
            .await;
        let version_not_found = |key: &str, v: &str| {
            Err(ProviderError::VersionNotFound {
                key: key.into(),
                version: v.into(),
            })
        };
        assert_eq!(got[0], version_not_found("app/one-version", "AWSPREVIOUS"));
        assert_eq!(
            got[1],
            version_not_found(
                "app/one-version",
                "uuid/00000000-0000-0000-0000-000000000000"
            )
        );
        assert_eq!(
            got[2],
            version_not_found("app/no-value", "AWSCURRENT"),
            "a secret without a current value exists: not gone"
        );
        for doomed in &got[3..5] {
            assert_eq!(
                doomed,
                &Err(ProviderError::DeletionScheduled {
                    key: "app/doomed".into()
                })
            );
            assert!(doomed.as_ref().unwrap_err().is_gone());
        }
        assert_eq!(
            got[5].as_ref().unwrap().expose(),
            b"a",
            "a batch neighbour of a deleted secret still gets its value"
        );
    })
    .await;
}

#[tokio::test]
async fn a_put_secret_value_rotation_is_seen_on_the_next_fetch() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/rotated", "before").await;
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let spec = es_spec("data: [{secretKey: v, remoteRef: {key: app/rotated}}]");
        assert_eq!(
            text(&desired(provider.as_ref(), &spec).await.unwrap(), "v"),
            "before"
        );

        moto.put_secret_string("app/rotated", "after").await;
        // A fresh provider from the same store is what the next reconcile gets.
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        assert_eq!(
            text(&desired(provider.as_ref(), &spec).await.unwrap(), "v"),
            "after"
        );
    })
    .await;
}

#[tokio::test]
async fn twenty_five_keys_cost_two_batch_calls_and_no_single_gets() {
    within_timeout(async {
        let moto = Moto::start().await;
        for i in 0..25 {
            moto.put_secret_string(&format!("app/key-{i:02}"), &format!("value-{i:02}"))
                .await;
        }
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let entries: Vec<String> = (0..25)
            .map(|i| format!("  - {{secretKey: k{i:02}, remoteRef: {{key: app/key-{i:02}}}}}"))
            .collect();
        let spec = es_spec(&format!("data:\n{}", entries.join("\n")));
        moto.reset_counts().await;

        let data = desired(provider.as_ref(), &spec).await.unwrap();
        for i in 0..25 {
            assert_eq!(text(&data, &format!("k{i:02}")), format!("value-{i:02}"));
        }
        assert_eq!(moto.count("secretsmanager.BatchGetSecretValue").await, 2);
        assert_eq!(moto.count("secretsmanager.GetSecretValue").await, 0);
        assert_eq!(
            providers.metrics.provider_calls(
                "AWS/SecretsManager",
                "BatchGetSecretValue",
                "success"
            ),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_a_bounded_number_of_times() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/busy", "finally").await;
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let request = [FetchRequest::current("app/busy")];
        moto.reset_counts().await;

        // Two throttles: the SDK's third attempt succeeds within the same fetch.
        moto.inject_fault("BatchGetSecretValue", 2, 400, "ThrottlingException")
            .await;
        let started = Instant::now();
        let got = provider.fetch_many(&request).await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"finally");
        assert_eq!(moto.count("secretsmanager.BatchGetSecretValue").await, 3);
        assert!(
            started.elapsed().as_secs() < 20,
            "backoff stays bounded: {:?}",
            started.elapsed()
        );

        // Five throttles: the fetch gives up after 3 attempts with a Throttled error (the controller then
        // backs off per object), and the next fetch succeeds once the throttling stops.
        moto.reset_counts().await;
        moto.inject_fault("BatchGetSecretValue", 5, 400, "ThrottlingException")
            .await;
        let got = provider.fetch_many(&request).await;
        assert_eq!(
            got[0].as_ref().map_err(ProviderError::category),
            Err("Throttled")
        );
        assert_eq!(
            moto.count("secretsmanager.BatchGetSecretValue").await,
            3,
            "attempts are bounded"
        );
        let mut attempts = 1;
        let value = loop {
            let got = provider.fetch_many(&request).await;
            match &got[0] {
                Ok(v) => break v.clone(),
                Err(e) => assert_eq!(e.category(), "Throttled"),
            }
            attempts += 1;
            assert!(attempts <= 3, "still throttled after {attempts} fetches");
        };
        assert_eq!(value.expose(), b"finally");
        assert_eq!(moto.count("_faults_served").await, 5);

        // HTTP 429 and 5xx are retried the same way, and classified distinctly when they persist.
        moto.inject_fault("BatchGetSecretValue", 3, 429, "TooManyRequestsException")
            .await;
        let got = provider.fetch_many(&request).await;
        assert_eq!(
            got[0].as_ref().map_err(ProviderError::category),
            Err("Throttled")
        );
        moto.inject_fault("BatchGetSecretValue", 3, 503, "ServiceUnavailable")
            .await;
        let got = provider.fetch_many(&request).await;
        assert_eq!(
            got[0].as_ref().map_err(ProviderError::category),
            Err("Unavailable")
        );
        assert_eq!(
            provider.fetch_many(&request).await[0]
                .as_ref()
                .unwrap()
                .expose(),
            b"finally"
        );
    })
    .await;
}

#[tokio::test]
async fn validate_checks_credentials_once_per_five_minutes() {
    within_timeout(async {
        let moto = Moto::start().await;
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        moto.reset_counts().await;
        for _ in 0..5 {
            provider.validate().await.unwrap();
            providers
                .for_store(&store(STORE), "apps")
                .await
                .unwrap()
                .validate()
                .await
                .unwrap();
        }
        assert_eq!(moto.count("sts.GetCallerIdentity").await, 1);
    })
    .await;
}
