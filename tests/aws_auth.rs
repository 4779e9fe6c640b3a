//! How the AWS provider authenticates, against moto (and the fake API server for Kubernetes objects):
//! the controller's own IRSA identity from the environment, `auth.jwt.serviceAccountRef` through
//! TokenRequest + AssumeRoleWithWebIdentity, `auth.secretRef` keys, role chains, and the namespace rules.
//! The STS budget is the point: one credential call per identity, however many fetches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use secret_sync::provider::{FetchRequest, Providers};
use support::moto::{ACCOUNT, Moto, store, within_timeout};

const FETCHES: usize = 50;
/// Marks the re-executed test process that runs with IRSA environment variables.
const CHILD_MARKER: &str = "SECRET_SYNC_AWS_IRSA_CHILD";

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// Fetch `key` through `store_yaml` `FETCHES` times, as that many reconciles would, and check the value.
async fn reconcile_many(
    providers: &Providers,
    store_yaml: &str,
    namespace: &str,
    key: &str,
    expected: &[u8],
) {
    let store = store(store_yaml);
    for _ in 0..FETCHES {
        let provider = providers.for_store(&store, namespace).await.unwrap();
        let got = provider.fetch_many(&[FetchRequest::current(key)]).await;
        assert_eq!(got[0].as_ref().unwrap().expose(), expected);
    }
}

// ---- the controller's own identity: IRSA environment variables read by the SDK default chain ----

/// The variables must be in the process environment before the SDK reads them, and setting them in a
/// running test is unsafe: so the test re-runs this binary with them, restricted to the child test below.
#[tokio::test]
async fn controller_irsa_from_environment_calls_sts_once_per_identity() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/irsa", "from-irsa").await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJ-projected-service-account-token").unwrap();
        moto.reset_counts().await;

        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "irsa_environment_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_MARKER, "1")
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ROLE_ARN", role("controller"))
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_SESSION_NAME", "secret-sync-controller")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(
            fake_apiserver::test_time::scaled(Duration::from_secs(60)),
            child,
        )
        .await
        .unwrap()
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child test did not run:\n{stdout}"
        );

        let counts = moto.counts().await;
        // Three identities (controller; controller -> app; controller -> hop -> app), 50 fetches each.
        assert_eq!(
            counts.get("sts.AssumeRoleWithWebIdentity"),
            Some(&1),
            "{counts:?}"
        );
        assert_eq!(counts.get("sts.AssumeRole"), Some(&3), "{counts:?}");
        assert_eq!(
            counts.get("secretsmanager.BatchGetSecretValue"),
            Some(&(3 * FETCHES as u64)),
            "{counts:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "child half of controller_irsa_from_environment_calls_sts_once_per_identity (needs IRSA env)"]
async fn irsa_environment_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        eprintln!(
            "only meaningful when run by controller_irsa_from_environment_calls_sts_once_per_identity"
        );
        return;
    }
    secret_sync::install_crypto_provider();
    // Exactly what main builds: no base configuration given, so the environment is read.
    let providers = Providers::new(None);
    let plain = "{apiVersion: external-secrets.io/v1, kind: SecretStore, metadata: {name: a, namespace: apps}, \
                 spec: {provider: {aws: {service: SecretsManager, region: us-east-1}}}}";
    reconcile_many(&providers, plain, "apps", "app/irsa", b"from-irsa").await;
    let chained = format!(
        "{{apiVersion: external-secrets.io/v1, kind: SecretStore, metadata: {{name: b, namespace: apps}}, \
         spec: {{provider: {{aws: {{service: SecretsManager, region: us-east-1, role: '{}'}}}}}}}}",
        role("app")
    );
    reconcile_many(&providers, &chained, "apps", "app/irsa", b"from-irsa").await;
    let two_hops = format!(
        "{{apiVersion: external-secrets.io/v1, kind: SecretStore, metadata: {{name: c, namespace: apps}}, \
         spec: {{provider: {{aws: {{service: SecretsManager, region: us-east-1, additionalRoles: ['{}'], role: '{}', \
         externalID: ext-1, sessionTags: [{{key: team, value: a}}], transitiveTagKeys: [team]}}}}}}}}",
        role("hop"),
        role("app")
    );
    reconcile_many(&providers, &two_hops, "apps", "app/irsa", b"from-irsa").await;
    assert_eq!(providers.aws.identity_count(), 3);
}

// ---- auth.jwt.serviceAccountRef: TokenRequest answered by the fake API server ----

async fn cluster_with(namespaces: &[&str]) -> FakeApiServer {
    let server = FakeApiServer::start().await.unwrap();
    let api: Api<Namespace> = Api::all(server.client());
    for ns in namespaces {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    server
}

async fn service_account(
    server: &FakeApiServer,
    namespace: &str,
    name: &str,
    role_arn: Option<&str>,
) {
    let mut metadata = serde_json::json!({"name": name, "namespace": namespace});
    if let Some(arn) = role_arn {
        metadata["annotations"] = serde_json::json!({"eks.amazonaws.com/role-arn": arn});
    }
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": metadata})).unwrap();
    Api::<ServiceAccount>::namespaced(server.client(), namespace)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
}

fn token_requests(server: &FakeApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/token"))
        .count()
}

fn jwt_store(
    kind: &str,
    namespace: Option<&str>,
    sa: &str,
    sa_namespace: Option<&str>,
    extra: &str,
) -> String {
    let ns = namespace
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    let sa_ns = sa_namespace
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    format!(
        "{{apiVersion: external-secrets.io/v1, kind: {kind}, metadata: {{name: jwt{ns}}}, spec: {{provider: {{aws: \
         {{service: SecretsManager, region: us-east-1{extra}, auth: {{jwt: {{serviceAccountRef: {{name: {sa}{sa_ns}}}}}}}}}}}}}}}"
    )
}

#[tokio::test]
async fn service_account_web_identity_calls_sts_once_per_service_account() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/jwt", "via-service-account")
            .await;
        let server = cluster_with(&["apps", "other"]).await;
        service_account(&server, "apps", "reader", Some(&role("reader"))).await;
        service_account(&server, "other", "reader", Some(&role("other-reader"))).await;
        let providers = moto.providers(Some(server.client())).await;
        moto.reset_counts().await;

        let apps = jwt_store("SecretStore", Some("apps"), "reader", None, "");
        reconcile_many(&providers, &apps, "apps", "app/jwt", b"via-service-account").await;
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 1);
        assert_eq!(
            token_requests(&server),
            1,
            "one TokenRequest per credential lifetime"
        );

        // A ClusterSecretStore naming the other namespace's ServiceAccount is a second identity.
        let cluster = jwt_store("ClusterSecretStore", None, "reader", Some("other"), "");
        reconcile_many(
            &providers,
            &cluster,
            "anywhere",
            "app/jwt",
            b"via-service-account",
        )
        .await;
        reconcile_many(&providers, &apps, "apps", "app/jwt", b"via-service-account").await;
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 2);
        assert_eq!(moto.count("sts.AssumeRole").await, 0);
        assert_eq!(token_requests(&server), 2);
        assert_eq!(providers.aws.identity_count(), 2);
    })
    .await;
}

#[tokio::test]
async fn service_account_role_rules_follow_eso() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/jwt", "v").await;
        let server = cluster_with(&["apps", "other"]).await;
        service_account(&server, "apps", "annotated", Some(&role("irsa"))).await;
        service_account(&server, "apps", "bare", None).await;
        service_account(&server, "other", "foreign", Some(&role("irsa"))).await;
        let providers = moto.providers(Some(server.client())).await;
        moto.reset_counts().await;

        // Annotation plus `role`: web identity into the annotated role, then AssumeRole into `role`.
        let with_role = format!(", role: '{}'", role("app"));
        let store_yaml = jwt_store("SecretStore", Some("apps"), "annotated", None, &with_role);
        reconcile_many(&providers, &store_yaml, "apps", "app/jwt", b"v").await;
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 1);
        assert_eq!(moto.count("sts.AssumeRole").await, 1);

        // No annotation: the store's `role` is the web identity role.
        let store_yaml = jwt_store("SecretStore", Some("apps"), "bare", None, &with_role);
        reconcile_many(&providers, &store_yaml, "apps", "app/jwt", b"v").await;
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 2);
        assert_eq!(moto.count("sts.AssumeRole").await, 1);

        // No annotation and no role: a configuration error naming what is missing.
        let store_yaml = jwt_store("SecretStore", Some("apps"), "bare", None, "");
        let err = providers
            .for_store(&store(&store_yaml), "apps")
            .await
            .err()
            .unwrap();
        assert_eq!(err.category(), "InvalidProviderConfig");
        assert!(
            err.to_string().contains("eks.amazonaws.com/role-arn"),
            "{err}"
        );

        // A SecretStore may not borrow another namespace's ServiceAccount.
        let store_yaml = jwt_store("SecretStore", Some("apps"), "foreign", Some("other"), "");
        let err = providers
            .for_store(&store(&store_yaml), "apps")
            .await
            .err()
            .unwrap();
        assert_eq!(err.category(), "InvalidProviderConfig");
        assert!(err.to_string().contains("own namespace"), "{err}");

        // A missing ServiceAccount is reported as such.
        let store_yaml = jwt_store("SecretStore", Some("apps"), "nobody", None, "");
        let err = providers
            .for_store(&store(&store_yaml), "apps")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not exist"), "{err}");
    })
    .await;
}

// ---- auth.secretRef: static keys from a Kubernetes Secret ----

fn keys_store(kind: &str, namespace: Option<&str>, secret_namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    let sns = secret_namespace
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    format!(
        "{{apiVersion: external-secrets.io/v1, kind: {kind}, metadata: {{name: keys{ns}}}, spec: {{provider: {{aws: \
         {{service: ParameterStore, region: us-east-1, auth: {{secretRef: {{\
         accessKeyIDSecretRef: {{name: aws-keys, key: id{sns}}}, \
         secretAccessKeySecretRef: {{name: aws-keys, key: secret{sns}}}}}}}}}}}}}}}"
    )
}

#[tokio::test]
async fn secret_ref_keys_are_read_from_the_store_namespace_only() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter(
            "/app/keys",
            "via-keys",
            aws_sdk_ssm::types::ParameterType::SecureString,
        )
        .await;
        let server = cluster_with(&["apps", "other"]).await;
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "aws-keys", "namespace": "apps"},
            "stringData": {"id": "AKIDEXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG\n"}
        }))
        .unwrap();
        Api::<Secret>::namespaced(server.client(), "apps")
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let providers = moto.providers(Some(server.client())).await;

        let own = keys_store("SecretStore", Some("apps"), None);
        let provider = providers.for_store(&store(&own), "apps").await.unwrap();
        let got = provider
            .fetch_many(&[FetchRequest::current("/app/keys")])
            .await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"via-keys");
        provider.validate().await.unwrap();

        let foreign = keys_store("SecretStore", Some("other"), Some("apps"));
        let err = providers
            .for_store(&store(&foreign), "other")
            .await
            .err()
            .unwrap();
        assert_eq!(err.category(), "InvalidProviderConfig");

        // A ClusterSecretStore without a namespace reads the ExternalSecret's namespace: none there.
        let cluster = keys_store("ClusterSecretStore", None, None);
        let provider = providers
            .for_store(&store(&cluster), "other")
            .await
            .unwrap();
        let got = provider
            .fetch_many(&[FetchRequest::current("/app/keys")])
            .await;
        let err = got[0].as_ref().err().unwrap();
        assert_eq!(err.category(), "AuthenticationFailed", "{err}");
        assert!(err.to_string().contains("aws-keys"), "{err}");
        assert!(
            !err.to_string().contains("wJalr"),
            "no key material in errors: {err}"
        );
        let provider = providers.for_store(&store(&cluster), "apps").await.unwrap();
        let got = provider
            .fetch_many(&[FetchRequest::current("/app/keys")])
            .await;
        assert_eq!(got[0].as_ref().unwrap().expose(), b"via-keys");
    })
    .await;
}

// ---- the controller's own identity: EKS Pod Identity (container credentials provider) ----

/// What the EKS Pod Identity agent does, on 127.0.0.1 (the SDK accepts a plain-HTTP full URI only for
/// loopback and the agent's own link-local addresses): a GET whose `Authorization` header is the
/// projected token's content gets temporary credentials as JSON; anything else gets 401.
struct PodIdentityAgent {
    url: String,
    authorized: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PodIdentityAgent {
    fn start(token: String) -> PodIdentityAgent {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/v1/credentials",
            listener.local_addr().unwrap().port()
        );
        let authorized = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ok, bad) = (authorized.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let mut header = None;
                let mut line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                while reader.read_line(&mut line).unwrap_or_default() > 2 {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        header = Some(value.trim().to_owned());
                    }
                    line.clear();
                }
                let (status, body) = if request_line.starts_with("GET /v1/credentials ")
                    && header.as_deref() == Some(token.as_str())
                {
                    ok.fetch_add(1, Ordering::SeqCst);
                    let expires = k8s_openapi::jiff::Timestamp::from_second(
                        k8s_openapi::jiff::Timestamp::now().as_second() + 3600,
                    )
                    .unwrap();
                    let body = serde_json::json!({
                        "AccessKeyId": "ASIAPODIDENTITYTEST",
                        "SecretAccessKey": "pod-identity-secret-key",
                        "Token": "pod-identity-session-token",
                        "AccountId": ACCOUNT,
                        "Expiration": expires.to_string(),
                    });
                    ("200 OK", body.to_string())
                } else {
                    bad.fetch_add(1, Ordering::SeqCst);
                    (
                        "401 Unauthorized",
                        r#"{"message":"invalid token"}"#.to_owned(),
                    )
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        PodIdentityAgent {
            url,
            authorized,
            refused,
        }
    }
}

/// The operator binary with only Pod Identity's two variables as AWS identity (no keys, no web
/// identity, no profile, no instance metadata) syncs a secret from moto; a wrong token syncs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_pod_identity_from_container_credentials_syncs_a_secret() {
    use std::sync::atomic::Ordering;
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("app/pod-identity", "from-pod-identity")
            .await;
        let cluster = support::cluster::TestCluster::without_controller().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.server.write_kubeconfig(&kubeconfig).unwrap();
        // The agent's token, as EKS projects it (eks-pod-identity-token), and a stale one.
        let token = dir.path().join("eks-pod-identity-token");
        std::fs::write(&token, "eyJ-pod-identity-token").unwrap();
        let wrong_token = dir.path().join("wrong-token");
        std::fs::write(&wrong_token, "eyJ-some-other-token").unwrap();
        let agent = PodIdentityAgent::start("eyJ-pod-identity-token".to_owned());

        let operator = |token_file: &std::path::Path| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_secret-sync"))
                .args(["run", "--admin-addr", "127.0.0.1:0"])
                .env("KUBECONFIG", &kubeconfig)
                .env("AWS_ENDPOINT_URL", &moto.url)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent.url)
                .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ROLE_ARN")
                .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
                .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        };
        let objects = |name: &str| {
            format!(
                "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: {name}, namespace: default}}\n\
                 spec: {{provider: {{aws: {{service: SecretsManager, region: us-east-1}}}}}}\n---\n\
                 apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\n\
                 spec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: {name}, kind: SecretStore}}\n  \
                 target: {{name: {name}}}\n  data: [{{secretKey: value, remoteRef: {{key: app/pod-identity}}}}]\n"
            )
        };

        // A token the agent does not accept: no credentials, so no sync.
        let mut refused = operator(&wrong_token);
        cluster.apply(&objects("refused")).await;
        let condition = cluster
            .wait_ready("default", "refused", "False", "SecretSyncedError")
            .await;
        assert!(cluster.secret("default", "refused").await.is_none());
        assert!(agent.refused.load(Ordering::SeqCst) > 0, "{condition:?}");
        assert_eq!(agent.authorized.load(Ordering::SeqCst), 0);
        refused.kill().await.unwrap();

        // The projected token: the agent's credentials fetch the secret from moto.
        let _operator = operator(&token);
        cluster.apply(&objects("pod-identity")).await;
        cluster
            .wait_secret_value("default", "pod-identity", "value", b"from-pod-identity")
            .await;
        cluster
            .wait_ready("default", "pod-identity", "True", "SecretSynced")
            .await;
        assert!(agent.authorized.load(Ordering::SeqCst) >= 1);
    })
    .await;
}
