//! Parameter Store through the AWS provider against moto: String, SecureString (always decrypted),
//! StringList, versions and labels, JSON properties and extract, tags, and batching by request count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use aws_sdk_ssm::types::ParameterType;
use secret_sync::provider::{FetchRequest, ProviderError};
use support::moto::{Moto, desired, es_spec, store, text, within_timeout};

const STORE: &str = r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: ssm, namespace: apps}
spec:
  provider:
    aws: {service: ParameterStore, region: us-east-1}
"#;

#[tokio::test]
async fn string_secure_string_and_string_list_arrive_byte_for_byte() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter("/app/plain", "hello world", ParameterType::String)
            .await;
        moto.put_parameter("/app/secure", "p@ss:w0rd", ParameterType::SecureString)
            .await;
        moto.put_parameter("/app/list", "a,b,c", ParameterType::StringList)
            .await;
        moto.put_parameter(
            "/app/json",
            r#"{"db":{"user":"admin"},"conn.host":"h1"}"#,
            ParameterType::SecureString,
        )
        .await;

        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let spec = es_spec(
            r#"
data:
  - {secretKey: plain, remoteRef: {key: /app/plain}}
  - {secretKey: secure, remoteRef: {key: /app/secure}}
  - {secretKey: list, remoteRef: {key: /app/list}}
  - {secretKey: user, remoteRef: {key: /app/json, property: db.user}}
  - {secretKey: host, remoteRef: {key: /app/json, property: 'conn\.host'}}
dataFrom:
  - extract: {key: /app/json}
"#,
        );
        let data = desired(provider.as_ref(), &spec).await.unwrap();
        assert_eq!(text(&data, "plain"), "hello world");
        // WithDecryption is always set: moto would answer "kms:alias/aws/ssm:p@ss:w0rd" otherwise.
        assert_eq!(text(&data, "secure"), "p@ss:w0rd");
        assert_eq!(text(&data, "list"), "a,b,c");
        assert_eq!(text(&data, "user"), "admin");
        assert_eq!(text(&data, "host"), "h1");
        assert_eq!(text(&data, "db"), r#"{"user":"admin"}"#);
        assert_eq!(text(&data, "conn.host"), "h1");
    })
    .await;
}

#[tokio::test]
async fn versions_and_labels_select_those_values() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter("/app/versioned", "one", ParameterType::String)
            .await;
        moto.put_parameter("/app/versioned", "two", ParameterType::String)
            .await;
        moto.put_parameter("/app/versioned", "three", ParameterType::String)
            .await;
        moto.ssm()
            .await
            .label_parameter_version()
            .name("/app/versioned")
            .parameter_version(2)
            .labels("stable")
            .send()
            .await
            .unwrap();

        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let spec = es_spec(
            r#"
data:
  - {secretKey: latest, remoteRef: {key: /app/versioned}}
  - {secretKey: first, remoteRef: {key: /app/versioned, version: "1"}}
  - {secretKey: stable, remoteRef: {key: /app/versioned, version: stable}}
"#,
        );
        let data = desired(provider.as_ref(), &spec).await.unwrap();
        assert_eq!(text(&data, "latest"), "three");
        assert_eq!(text(&data, "first"), "one");
        assert_eq!(text(&data, "stable"), "two");
    })
    .await;
}

#[tokio::test]
async fn prefix_tags_and_missing_parameters() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter("/team/app/db", "value", ParameterType::String)
            .await;
        moto.tag_parameter("/team/app/db", "owner", "team-a").await;

        let providers = moto.providers(None).await;
        let prefixed =
            store(&STORE.replace("region: us-east-1", "region: us-east-1, prefix: /team"));
        let provider = providers.for_store(&prefixed, "apps").await.unwrap();
        let got = provider
            .fetch_many(&[
                FetchRequest::current("/app/db"),
                FetchRequest {
                    key: "/app/db".into(),
                    version: None,
                    metadata: true,
                },
                FetchRequest::current("/app/gone"),
                FetchRequest {
                    key: "/app/db".into(),
                    version: Some("9".into()),
                    metadata: false,
                },
                FetchRequest {
                    key: "/app/db".into(),
                    version: Some("nosuchlabel".into()),
                    metadata: false,
                },
                FetchRequest {
                    key: "/app/gone".into(),
                    version: Some("2".into()),
                    metadata: false,
                },
            ])
            .await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"value");
        assert_eq!(got[1].as_ref().unwrap().expose(), br#"{"owner":"team-a"}"#);
        assert_eq!(
            got[2],
            Err(ProviderError::NotFound {
                key: "/app/gone".into()
            })
        );
        // A missing version or label of an existing parameter is an error, never "gone" (confirmed
        // with DescribeParameters under the store's prefix); a missing parameter is gone at any version.
        assert_eq!(
            got[3],
            Err(ProviderError::VersionNotFound {
                key: "/app/db".into(),
                version: "9".into()
            })
        );
        assert_eq!(
            got[4],
            Err(ProviderError::VersionNotFound {
                key: "/app/db".into(),
                version: "nosuchlabel".into()
            })
        );
        assert_eq!(
            got[5],
            Err(ProviderError::NotFound {
                key: "/app/gone".into()
            })
        );
    })
    .await;
}

#[tokio::test]
async fn twenty_five_parameters_cost_three_get_parameters_calls() {
    within_timeout(async {
        let moto = Moto::start().await;
        for i in 0..25 {
            moto.put_parameter(
                &format!("/app/p{i:02}"),
                &format!("v{i:02}"),
                ParameterType::SecureString,
            )
            .await;
        }
        let providers = moto.providers(None).await;
        let provider = providers.for_store(&store(STORE), "apps").await.unwrap();
        let entries: Vec<String> = (0..25)
            .map(|i| format!("  - {{secretKey: k{i:02}, remoteRef: {{key: /app/p{i:02}}}}}"))
            .collect();
        let spec = es_spec(&format!("data:\n{}", entries.join("\n")));
        moto.reset_counts().await;

        let data = desired(provider.as_ref(), &spec).await.unwrap();
        for i in 0..25 {
            assert_eq!(text(&data, &format!("k{i:02}")), format!("v{i:02}"));
        }
        assert_eq!(moto.count("ssm.GetParameters").await, 3);
        assert_eq!(moto.count("ssm.GetParameter").await, 0);
        assert_eq!(
            providers
                .metrics
                .provider_calls("AWS/ParameterStore", "GetParameters", "success"),
            3
        );
    })
    .await;
}
