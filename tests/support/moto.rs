//! A moto server per test, started through scripts/moto_launcher.py on a random 127.0.0.1 port, with its
//! request counts, fault injection and IAM enforcement. Test-only; it never touches real AWS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use secret_sync::admin::Metrics;
use secret_sync::api::{ClusterSecretStore, ExternalSecretSpec, SecretStore, StoreObject};
use secret_sync::controller::build::{self, DesiredData};
use secret_sync::provider::aws::AwsProviders;
use secret_sync::provider::{FetchRequest, Providers, SecretProvider};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

pub const REGION: &str = "us-east-1";
/// moto's default account: data written with plain test keys lands here.
pub const ACCOUNT: &str = "123456789012";

/// Every AWS test runs inside this bound (scaled by `SECRET_SYNC_TEST_TIME_FACTOR`), so a hung call
/// fails the test instead of the CI job.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

pub async fn within_timeout<F: std::future::Future<Output = T>, T>(test: F) -> T {
    tokio::time::timeout(super::cluster::scaled(TEST_TIMEOUT), test)
        .await
        .expect("the test did not finish within its time limit")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("SECRET_SYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("build/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "moto is not installed: {} is missing. Run ./scripts/test (it creates build/venv with moto[server] \
         from scripts/requirements-test.txt) or point SECRET_SYNC_VENV at a venv that has it.",
        python.display()
    );
    python
}

pub struct Moto {
    pub url: String,
    addr: String,
    _child: Child,
    /// Closing it tells the launcher to exit, even if this process is killed.
    _stdin: ChildStdin,
}

impl Moto {
    pub async fn start() -> Moto {
        secret_sync::install_crypto_provider();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/moto_launcher.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("failed to start scripts/moto_launcher.py");
        let stdin = child.stdin.take().expect("launcher stdin");
        let stdout = child.stdout.take().expect("launcher stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(super::cluster::scaled(Duration::from_secs(60)), async {
            while let Some(line) = lines.next_line().await.expect("reading launcher output") {
                if let Some(url) = line.strip_prefix("MOTO_READY ") {
                    return url.to_owned();
                }
            }
            panic!("moto launcher exited before it was ready");
        })
        .await
        .expect("moto did not start within 60 s (scaled)");
        // Keep draining stdout so the launcher never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = ready.trim_start_matches("http://").to_owned();
        Moto {
            url: ready,
            addr,
            _child: child,
            _stdin: stdin,
        }
    }

    /// SDK configuration pointing at this moto with plain test keys (account 123456789012).
    pub async fn config(&self) -> SdkConfig {
        self.config_with(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .await
    }

    pub async fn config_with(&self, credentials: SharedCredentialsProvider) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// Providers whose AWS base configuration is this moto instead of the environment.
    pub async fn providers(&self, kube: Option<kube::Client>) -> Providers {
        let metrics = Arc::new(Metrics::new());
        let aws = Arc::new(AwsProviders::with_base_config(
            kube.clone(),
            metrics.clone(),
            self.config().await,
        ));
        Providers { kube, metrics, aws }
    }

    pub async fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config().await)
    }

    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config().await)
    }

    async fn control(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let body = body.to_string();
        let mut stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .expect("connect to moto");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write to moto");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read from moto");
        let text = String::from_utf8(response).expect("utf-8 answer");
        let (head, payload) = text.split_once("\r\n\r\n").expect("HTTP answer");
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{method} {path}: {head}"
        );
        serde_json::from_str(payload).unwrap_or(serde_json::Value::Null)
    }

    /// Requests served per `service.Action` (for example `secretsmanager.BatchGetSecretValue`).
    pub async fn counts(&self) -> BTreeMap<String, u64> {
        serde_json::from_value(
            self.control("GET", "/_counts", &serde_json::json!({}))
                .await,
        )
        .expect("counts")
    }

    pub async fn count(&self, name: &str) -> u64 {
        self.counts().await.get(name).copied().unwrap_or(0)
    }

    pub async fn reset_counts(&self) {
        self.control("POST", "/_counts/reset", &serde_json::json!({}))
            .await;
    }

    /// Answer the next `count` calls of `action` with `code` (HTTP `status`).
    pub async fn inject_fault(&self, action: &str, count: u32, status: u16, code: &str) {
        let fault =
            serde_json::json!({"action": action, "count": count, "status": status, "code": code});
        self.control("POST", "/_faults", &fault).await;
    }

    /// ECR tokens answered from now on expire `seconds` after the call (moto's own: 2015-01-01).
    pub async fn ecr_token_lifetime(&self, seconds: u64) {
        self.control(
            "POST",
            "/_ecr/token-lifetime",
            &serde_json::json!({ "seconds": seconds }),
        )
        .await;
    }

    /// Create an IAM role (trusting any principal and web identity) with one inline policy.
    pub async fn iam_role(&self, name: &str, policy: serde_json::Value) -> String {
        let answer = self
            .control(
                "POST",
                "/_iam/role",
                &serde_json::json!({"name": name, "policy": policy}),
            )
            .await;
        answer["arn"].as_str().expect("role arn").to_owned()
    }

    /// Create an IAM user with one inline policy; returns (access key id, secret access key).
    pub async fn iam_user(&self, name: &str, policy: serde_json::Value) -> (String, String) {
        let answer = self
            .control(
                "POST",
                "/_iam/user",
                &serde_json::json!({"name": name, "policy": policy}),
            )
            .await;
        (
            answer["access_key_id"].as_str().expect("akid").to_owned(),
            answer["secret_access_key"]
                .as_str()
                .expect("key")
                .to_owned(),
        )
    }

    /// From now on every call is authenticated and authorized against IAM policies.
    pub async fn enforce_iam(&self) {
        self.control("POST", "/_iam/enforce", &serde_json::json!({}))
            .await;
    }

    pub async fn put_secret_string(&self, name: &str, value: &str) -> String {
        let sm = self.secrets_manager().await;
        match sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(out) => out.version_id.expect("version id"),
            Err(_) => sm
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .expect("put secret")
                .version_id
                .expect("version id"),
        }
    }

    /// Tag parameter `name` with `key` = `value`.
    pub async fn tag_parameter(&self, name: &str, key: &str, value: &str) {
        self.ssm()
            .await
            .add_tags_to_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .expect("tag"),
            )
            .send()
            .await
            .expect("tag parameter");
    }

    pub async fn put_parameter(
        &self,
        name: &str,
        value: &str,
        kind: aws_sdk_ssm::types::ParameterType,
    ) -> i64 {
        self.ssm()
            .await
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .expect("put parameter")
            .version
    }
}

/// A SecretStore or ClusterSecretStore (by its `kind`) as the reconcile pipeline sees it.
pub fn store(yaml: &str) -> StoreObject {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("store YAML");
    if value["kind"].as_str() == Some("ClusterSecretStore") {
        let store: ClusterSecretStore =
            serde_yaml_ng::from_value(value).expect("ClusterSecretStore YAML");
        return StoreObject::from(&store);
    }
    let store: SecretStore = serde_yaml_ng::from_value(value).expect("SecretStore YAML");
    StoreObject::from(&store)
}

pub fn es_spec(yaml: &str) -> ExternalSecretSpec {
    serde_yaml_ng::from_str(yaml).expect("ExternalSecret spec YAML")
}

/// What one reconcile computes: the requests of `spec`, fetched in one call, then the generic build step.
pub async fn desired(
    provider: &dyn SecretProvider,
    spec: &ExternalSecretSpec,
) -> Result<DesiredData, build::BuildError> {
    let requests: Vec<FetchRequest> = build::requests(spec);
    let answers = provider.fetch_many(&requests).await;
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    build::desired_data(spec, &requests.into_iter().zip(answers).collect())
}

pub fn text(data: &DesiredData, key: &str) -> String {
    String::from_utf8(
        data.data
            .get(key)
            .unwrap_or_else(|| panic!("no key {key:?} in the desired data"))
            .expose()
            .to_vec(),
    )
    .expect("utf-8")
}

/// Fake API server with our CRDs and a running controller whose AWS providers point at `moto`.
pub async fn cluster_on_moto(moto: &Moto) -> super::cluster::TestCluster {
    cluster_on_moto_with(moto, secret_sync::controller::Config::default()).await
}

/// `cluster_on_moto` with a controller configured by `config`.
pub async fn cluster_on_moto_with(
    moto: &Moto,
    config: secret_sync::controller::Config,
) -> super::cluster::TestCluster {
    use secret_sync::provider::aws::{BATCH_WAIT, BUSY_BATCH_WAIT};
    cluster_on_moto_batching(moto, config, (BATCH_WAIT, BUSY_BATCH_WAIT)).await
}

/// `cluster_on_moto_with`, reads of concurrent reconciles gathered for at most `batch_wait` (quiet,
/// busy): see `AwsProviders::with_batch_wait`.
pub async fn cluster_on_moto_batching(
    moto: &Moto,
    config: secret_sync::controller::Config,
    batch_wait: (Duration, Duration),
) -> super::cluster::TestCluster {
    let mut c = super::cluster::TestCluster::without_controller().await;
    let aws = AwsProviders::with_base_config(
        Some(c.client.clone()),
        c.metrics.clone(),
        moto.config().await,
    )
    .with_batch_wait(batch_wait.0, batch_wait.1);
    let providers = Providers {
        kube: Some(c.client.clone()),
        metrics: c.metrics.clone(),
        aws: Arc::new(aws),
    };
    c.start_controller_with(config, providers, None);
    c
}
