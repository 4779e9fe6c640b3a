//! Least privilege with IAM enforcement on (moto through scripts/moto_launcher.py): a role allowed to read
//! `app/*` reads those and gets AccessDenied, as its own category, on `other/*`, with no partial result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use secret_sync::provider::{FetchRequest, Providers};
use support::moto::{Moto, desired, es_spec, store, within_timeout};

/// The policy an ESO user writes: GetSecretValue/DescribeSecret and GetParameter(s) on their paths only.
fn app_only_policy(with_batch: bool) -> serde_json::Value {
    let mut statements = vec![
        serde_json::json!({
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": "arn:aws:secretsmanager:*:*:secret:app/*"
        }),
        serde_json::json!({
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:ListTagsForResource"],
            "Resource": "arn:aws:ssm:*:*:parameter/app/*"
        }),
    ];
    if with_batch {
        // AWS requires BatchGetSecretValue on "*" and still checks GetSecretValue per secret.
        statements.push(serde_json::json!({"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

/// What `dataFrom.find` adds to the app-only policy (README, docs/install-eks.md): ListSecrets (no
/// resource-level permission, so "*"), and GetParametersByPath on the path itself.
fn finder_policy() -> serde_json::Value {
    let mut policy = app_only_policy(true);
    let statements = policy["Statement"].as_array_mut().unwrap();
    statements.push(serde_json::json!({"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}));
    statements.push(serde_json::json!({
        "Effect": "Allow",
        "Action": "ssm:GetParametersByPath",
        "Resource": ["arn:aws:ssm:*:*:parameter/app", "arn:aws:ssm:*:*:parameter/app/*"]
    }));
    policy
}

async fn cluster_with_service_accounts(roles: &[(&str, &str)]) -> FakeApiServer {
    let server = FakeApiServer::start().await.unwrap();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "apps"}})).unwrap();
    Api::<Namespace>::all(server.client())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    for (name, arn) in roles {
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "apps", "annotations": {"eks.amazonaws.com/role-arn": arn}}
        }))
        .unwrap();
        Api::<ServiceAccount>::namespaced(server.client(), "apps")
            .create(&PostParams::default(), &sa)
            .await
            .unwrap();
    }
    server
}

fn jwt_store(service: &str, sa: &str) -> String {
    format!(
        "{{apiVersion: external-secrets.io/v1, kind: SecretStore, metadata: {{name: {sa}, namespace: apps}}, spec: \
         {{provider: {{aws: {{service: {service}, region: us-east-1, auth: {{jwt: {{serviceAccountRef: {{name: {sa}}}}}}}}}}}}}}}"
    )
}

async fn setup() -> (Moto, FakeApiServer, Providers) {
    let moto = Moto::start().await;
    moto.put_secret_string("app/db", "app-password").await;
    moto.put_secret_string("other/db", "OTHER-SECRET-CANARY")
        .await;
    moto.put_parameter(
        "/app/url",
        "https://app",
        aws_sdk_ssm::types::ParameterType::SecureString,
    )
    .await;
    moto.put_parameter(
        "/other/url",
        "OTHER-PARAM-CANARY",
        aws_sdk_ssm::types::ParameterType::SecureString,
    )
    .await;
    let narrow = moto.iam_role("app-reader", app_only_policy(false)).await;
    let finder = moto.iam_role("app-finder", finder_policy()).await;
    let batching = moto
        .iam_role("app-batch-reader", app_only_policy(true))
        .await;
    moto.enforce_iam().await;
    let server = cluster_with_service_accounts(&[
        ("narrow", &narrow),
        ("batching", &batching),
        ("finder", &finder),
    ])
    .await;
    let providers = moto.providers(Some(server.client())).await;
    (moto, server, providers)
}

#[tokio::test]
async fn a_role_limited_to_app_is_denied_other_secrets() {
    within_timeout(async {
        let (moto, _server, providers) = setup().await;
        for sa in ["narrow", "batching"] {
            let provider = providers.for_store(&store(&jwt_store("SecretsManager", sa)), "apps").await.unwrap();
            provider.validate().await.unwrap();
            let got = provider
                .fetch_many(&[FetchRequest::current("app/db"), FetchRequest::current("other/db")])
                .await;
            assert_eq!(got[0].as_ref().unwrap().expose(), b"app-password", "{sa}");
            let denied = got[1].as_ref().err().unwrap();
            assert_eq!(denied.category(), "AccessDenied", "{sa}: {denied}");
            assert!(!denied.to_string().contains("CANARY"));

            // The build step refuses the whole ExternalSecret: nothing partial reaches the Secret.
            let spec = es_spec("data: [{secretKey: a, remoteRef: {key: app/db}}, {secretKey: o, remoteRef: {key: other/db}}]");
            let err = desired(provider.as_ref(), &spec).await.unwrap_err();
            assert_eq!(err.category(), "AccessDenied", "{sa}: {err}");
            assert!(err.is_permanent());
        }
        // Without BatchGetSecretValue permission the provider falls back to GetSecretValue and stops
        // trying the batch (1 refused batch, then 2 + 2 single gets); with it, denials come back per
        // secret inside one batch call per fetch (2 batches, no single gets).
        let counts = moto.counts().await;
        assert_eq!(counts.get("secretsmanager.BatchGetSecretValue"), Some(&3), "{counts:?}");
        assert_eq!(counts.get("secretsmanager.GetSecretValue"), Some(&4), "{counts:?}");
    })
    .await;
}

/// The ECRAuthorizationToken generator needs `ecr:GetAuthorizationToken` (on "*": AWS has no
/// resource-level permission for it); a role without it gets AccessDenied, its own category.
#[tokio::test]
async fn ecr_tokens_need_ecr_get_authorization_token() {
    within_timeout(async {
        let moto = Moto::start().await;
        let without = moto.iam_role("no-ecr", app_only_policy(true)).await;
        let with = moto
            .iam_role(
                "ecr-tokens",
                serde_json::json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
                ]}),
            )
            .await;
        moto.enforce_iam().await;
        let server = cluster_with_service_accounts(&[("no-ecr", &without), ("ecr", &with)]).await;
        let providers = moto.providers(Some(server.client())).await;
        let generator = |sa: &str| {
            serde_yaml_ng::from_str::<secret_sync::api::generators::ECRAuthorizationTokenSpec>(
                &format!(
                    "{{region: us-east-1, auth: {{jwt: {{serviceAccountRef: {{name: {sa}}}}}}}}}"
                ),
            )
            .unwrap()
        };
        let token = providers
            .aws
            .ecr_token(&generator("ecr"), "apps")
            .await
            .unwrap();
        assert_eq!(token.username.expose(), b"AWS");
        let err = providers
            .aws
            .ecr_token(&generator("no-ecr"), "apps")
            .await
            .unwrap_err();
        assert_eq!(err.category(), "AccessDenied", "{err}");
        assert!(err.is_permanent());
    })
    .await;
}

#[tokio::test]
async fn a_role_limited_to_app_is_denied_other_parameters() {
    within_timeout(async {
        let (_moto, _server, providers) = setup().await;
        let provider = providers
            .for_store(&store(&jwt_store("ParameterStore", "narrow")), "apps")
            .await
            .unwrap();
        let got = provider
            .fetch_many(&[
                FetchRequest::current("/app/url"),
                FetchRequest::current("/other/url"),
            ])
            .await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"https://app");
        let denied = got[1].as_ref().err().unwrap();
        assert_eq!(denied.category(), "AccessDenied", "{denied}");
        assert!(!denied.to_string().contains("CANARY"));
    })
    .await;
}

#[tokio::test]
async fn unknown_keys_are_rejected_by_iam() {
    within_timeout(async {
        let (moto, _server, providers) = setup().await;
        let (akid, secret) = ("AKIAUNKNOWNKEY000000", "not-a-real-key");
        let config = moto
            .config_with(aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(akid, secret, None, None, "test"),
            ))
            .await;
        let strangers = secret_sync::provider::aws::AwsProviders::with_base_config(None, providers.metrics.clone(), config);
        let plain = "{apiVersion: external-secrets.io/v1, kind: SecretStore, metadata: {name: s, namespace: apps}, \
                     spec: {provider: {aws: {service: SecretsManager, region: us-east-1}}}}";
        let store_object = store(plain);
        let spec = match &store_object.spec.provider.aws {
            Some(aws) => aws.clone(),
            None => unreachable!(),
        };
        let provider = strangers.for_store(&store_object, &spec, "apps").await.unwrap();
        let got = provider.fetch_many(&[FetchRequest::current("app/db")]).await;
        let err = got[0].as_ref().err().unwrap();
        assert_eq!(err.category(), "AuthenticationFailed", "{err}");
    })
    .await;
}

#[tokio::test]
async fn access_denied_leaves_the_existing_secret_untouched_and_says_why() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/db", "app-password").await;
        moto.put_secret_string("other/db", "OTHER-SECRET-CANARY").await;
        let narrow = moto.iam_role("app-reader", app_only_policy(true)).await;
        moto.enforce_iam().await;

        let cluster = support::cluster::TestCluster::without_controller().await;
        cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n").await;
        cluster
            .apply(&format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: narrow, namespace: apps, annotations: \
                 {{eks.amazonaws.com/role-arn: '{narrow}'}}}}\n---\n{}",
                jwt_store("SecretsManager", "narrow")
            ))
            .await;
        let es = |keys: &[&str]| {
            let data: Vec<String> =
                keys.iter().map(|k| format!("{{secretKey: {}, remoteRef: {{key: {k}}}}}", k.replace('/', "-"))).collect();
            format!(
                "{{apiVersion: external-secrets.io/v1, kind: ExternalSecret, metadata: {{name: db, namespace: apps}}, \
                 spec: {{refreshInterval: 1h, secretStoreRef: {{name: narrow}}, data: [{}]}}}}",
                data.join(", ")
            )
        };
        cluster.apply(&es(&["app/db"])).await;

        let metrics = cluster.metrics.clone();
        let aws = secret_sync::provider::aws::AwsProviders::with_base_config(
            Some(cluster.client.clone()),
            metrics.clone(),
            moto.config().await,
        );
        let providers = Providers { kube: Some(cluster.client.clone()), metrics: metrics.clone(), aws: std::sync::Arc::new(aws) };
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let controller = tokio::spawn(secret_sync::controller::runtime::run(
            cluster.client.clone(),
            secret_sync::controller::Config::default(),
            providers,
            metrics,
            secret_sync::admin::Health::default(),
            None,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        let before = cluster.wait_secret_value("apps", "db", "app-db", b"app-password").await;

        // The ExternalSecret now also asks for a secret the role may not read.
        cluster.apply(&es(&["app/db", "other/db"])).await;
        let condition = cluster.wait_ready("apps", "db", "False", "SecretSyncedError").await;
        let message = condition.message.unwrap_or_default();
        assert!(message.starts_with("AccessDenied"), "{message}");
        assert!(message.contains("other/db"), "{message}");
        assert!(!message.contains("CANARY"), "{message}");
        let after = cluster.secret("apps", "db").await.unwrap();
        assert_eq!(after.data, before.data, "the existing Secret keeps its data");
        assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "and is not written at all");

        let _ = stop.send(true);
        let _ = tokio::time::timeout(fake_apiserver::test_time::scaled(std::time::Duration::from_secs(10)), controller).await;
    })
    .await;
}

#[tokio::test]
async fn find_needs_the_documented_permissions_and_is_denied_as_a_whole_outside_them() {
    within_timeout(async {
        let (_moto, _server, providers) = setup().await;
        let found = |service: &str, sa: &str, spec: &str| {
            let providers = &providers;
            let (service, sa, spec) = (service.to_owned(), sa.to_owned(), spec.to_owned());
            async move {
                let provider = providers
                    .for_store(&store(&jwt_store(&service, &sa)), "apps")
                    .await
                    .unwrap();
                let spec = es_spec(&spec);
                let found = secret_sync::provider::find_all(
                    provider.as_ref(),
                    secret_sync::controller::build::finds(&spec),
                    100,
                )
                .await;
                let fetched = std::collections::HashMap::new();
                secret_sync::controller::build::desired_data_found(&spec, &fetched, &found)
            }
        };
        let app = "dataFrom: [{find: {path: app/, name: {regexp: '.'}}}]";
        let ok = found("SecretsManager", "finder", app).await.unwrap();
        assert_eq!(ok.data["app_db"].expose(), b"app-password");
        let err = found("SecretsManager", "narrow", app).await.unwrap_err();
        assert_eq!(err.category(), "AccessDenied", "without ListSecrets: {err}");
        // Matching a secret the role may not read fails the whole find: no partial Secret.
        let all = "dataFrom: [{find: {name: {regexp: 'db$'}}}]";
        let err = found("SecretsManager", "finder", all).await.unwrap_err();
        assert_eq!(err.category(), "AccessDenied", "{err}");
        assert!(!err.to_string().contains("CANARY"));

        let app = "dataFrom: [{find: {path: /app, name: {regexp: '.'}}}]";
        let ok = found("ParameterStore", "finder", app).await.unwrap();
        assert_eq!(ok.data["_app_url"].expose(), b"https://app");
        let err = found(
            "ParameterStore",
            "finder",
            "dataFrom: [{find: {path: /, name: {regexp: '.'}}}]",
        )
        .await
        .unwrap_err();
        assert_eq!(err.category(), "AccessDenied", "outside the path: {err}");
        assert!(!err.to_string().contains("CANARY"));
    })
    .await;
}
