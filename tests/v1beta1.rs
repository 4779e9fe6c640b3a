//! ESO's `external-secrets.io/v1beta1`, served next to v1 with one schema and no conversion: every
//! v1beta1 manifest of the shared corpus applies unchanged with the real kubectl (which prints the
//! deprecation warning), reads back at v1, and the AWS ones sync from moto end to end; the others are
//! refused only for what they need (`dataFrom.find`, the Vault provider). v1alpha1 is not served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use aws_config::Region;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use secret_sync::api::{ClusterSecretStore, ExternalSecret, SecretStore};
use secret_sync::controller;
use serde_json::Value;
use support::cluster::{Kubectl, TestCluster, wait_for};
use support::moto::{ACCOUNT, Moto, cluster_on_moto, within_timeout};
use support::{assert_subset, corpus_dir};

/// Corpus files (by number) whose ExternalSecrets and stores are written as v1beta1.
const V1BETA1_FILES: &[&str] = &[
    "024", "037", "038", "039", "040", "047", "048", "049", "050", "051", "053", "057", "058",
    "060",
];

/// The only v1alpha1 ExternalSecret of the corpus.
const V1ALPHA1_FILE: &str = "059";

/// Region every AWS store of these files names.
const CORPUS_REGION: &str = "us-west-2";

fn corpus_file(number: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{number}-")) && n.ends_with(".yaml"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one corpus file numbered {number}");
    found.remove(0)
}

fn documents(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// One of our objects as written in a corpus file.
struct Written {
    file: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    doc: Value,
}

impl Written {
    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        let plural = match self.kind.as_str() {
            "ExternalSecret" => "externalsecrets",
            "SecretStore" => "secretstores",
            "ClusterSecretStore" => "clustersecretstores",
            other => panic!("{}: unexpected kind {other}", self.file),
        };
        let ar = ApiResource {
            group: "external-secrets.io".into(),
            version: "v1".into(),
            api_version: "external-secrets.io/v1".into(),
            kind: self.kind.clone(),
            plural: plural.into(),
        };
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        }
    }
}

/// `kubectl apply -f FILE` for every v1beta1 corpus file, unchanged: into the namespace written in
/// the file, else into a namespace of the file's own (049 and 050 both name `default/my-secret`).
/// Asserts kubectl succeeds and prints the server's deprecation warning for each kind; returns the
/// external-secrets.io objects written.
async fn apply_corpus(cluster: &TestCluster, kubectl: &Kubectl) -> Vec<Written> {
    let mut written = Vec::new();
    for number in V1BETA1_FILES {
        let path = corpus_file(number);
        let docs = documents(&path);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let namespaced = |d: &&Value| d["kind"] != "ClusterSecretStore";
        let namespace = docs
            .iter()
            .filter(namespaced)
            .find_map(|d| d["metadata"]["namespace"].as_str())
            .map_or_else(|| format!("corpus-{number}"), str::to_owned);
        cluster
            .apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"
            ))
            .await;
        let out = kubectl
            .run(&[
                "apply",
                "--validate=false",
                "-n",
                &namespace,
                "-f",
                path.to_str().unwrap(),
            ])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "kubectl apply -f {file}: {stderr}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for doc in docs {
            if doc["apiVersion"] == "v1" {
                continue;
            }
            assert_eq!(doc["apiVersion"], "external-secrets.io/v1beta1", "{file}");
            let kind = doc["kind"].as_str().unwrap().to_owned();
            assert!(
                stderr.contains(&format!(
                    "Warning: external-secrets.io/v1beta1 {kind} is deprecated; use external-secrets.io/v1 {kind}"
                )),
                "{file}: kubectl shows the deprecation warning for {kind}; stderr: {stderr}"
            );
            written.push(Written {
                file: file.clone(),
                namespace: (kind != "ClusterSecretStore").then(|| namespace.clone()),
                name: doc["metadata"]["name"].as_str().unwrap().to_owned(),
                kind,
                doc,
            });
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1beta1_corpus_manifest_applies_unchanged_and_reads_back_at_v1() {
    within_timeout(async {
        let cluster = TestCluster::without_controller().await;
        let kubectl = Kubectl::new(&cluster.server);
        let written = apply_corpus(&cluster, &kubectl).await;
        // 14 files: 11 ExternalSecrets (048 holds two) and 6 stores.
        assert_eq!(written.len(), 17);
        for w in &written {
            let at = format!("{} {} {}", w.file, w.kind, w.name);
            let stored =
                serde_json::to_value(w.api(&cluster.client).get(&w.name).await.unwrap()).unwrap();
            assert_eq!(stored["apiVersion"], "external-secrets.io/v1", "{at}");
            assert_subset(&w.doc["spec"], &stored["spec"], &format!("{at}: spec"));
            // The controller's own v1 types read what v1beta1 wrote.
            match w.kind.as_str() {
                "ExternalSecret" => drop(serde_json::from_value::<ExternalSecret>(stored).unwrap()),
                "SecretStore" => drop(serde_json::from_value::<SecretStore>(stored).unwrap()),
                _ => drop(serde_json::from_value::<ClusterSecretStore>(stored).unwrap()),
            }
        }

        // v1alpha1 is not served: kubectl finds no such kind and nothing is created.
        let path = corpus_file(V1ALPHA1_FILE);
        let out = kubectl
            .run(&["apply", "--validate=false", "-f", path.to_str().unwrap()])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(
                "no matches for kind \"ExternalSecret\" in version \"external-secrets.io/v1alpha1\""
            ),
            "{stderr}"
        );
        let es: Api<ExternalSecret> = Api::default_namespaced(cluster.client.clone());
        assert!(es.get_opt("argocd-oidc-secret").await.unwrap().is_none());
    })
    .await;
}

/// The remote values the AWS manifests (037-040) read, in their region and moto's default account.
async fn seed(moto: &Moto) {
    let base = moto.config().await;
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&base)
            .region(Region::new(CORPUS_REGION))
            .build(),
    );
    for (name, value) in [
        (
            "eks-workshop-catalog-secret",
            r#"{"username":"catalog_user","password":"catalog-pa55"}"#,
        ),
        (
            "external-secrets-sm-secret",
            r#"{"username":"sm-user","password":"sm-pa55"}"#,
        ),
    ] {
        sm.create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    // Read through 053's ClusterSecretStore (eu-central-1) by an ExternalSecret of the test's own.
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&base)
            .region(Region::new("eu-central-1"))
            .build(),
    )
    .create_secret()
    .name("referent/db")
    .secret_string("referent-pa55")
    .send()
    .await
    .unwrap();
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&base)
            .region(Region::new(CORPUS_REGION))
            .build(),
    );
    ssm.put_parameter()
        .name("/external-secrets/secret")
        .value(r#"{"username":"ps-user","password":"ps-pa55"}"#)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

/// What the corpus files refer to but do not contain: the IRSA ServiceAccounts of 037, 039 and 040,
/// and the static keys Secret of 051.
fn companions() -> String {
    let sa = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: external-secrets\n  \
             annotations: {{eks.amazonaws.com/role-arn: 'arn:aws:iam::{ACCOUNT}:role/{name}'}}\n---\n"
        )
    };
    let keys = "apiVersion: v1\nkind: Secret\nmetadata: {name: aws-ssm, namespace: external-secrets}\n\
                stringData: {accessKeyId: testing, secretAccessKey: testing, sessionToken: testing}\n";
    format!(
        "{}{}{}{keys}",
        sa("external-secrets-sa"),
        sa("cluster-secretstore-sa"),
        sa("secretstore-sa")
    )
}

/// What a `dataFrom.find` manifest is refused for. `find` and `rewrite` are being built in another
/// change: while this build refuses them (`check_supported`), that refusal, and only for find or
/// rewrite; once it accepts them, the missing store, as the corpus does not hold these files' stores.
fn find_refusal(w: &Written) -> String {
    let es: ExternalSecret = serde_json::from_value(w.doc.clone()).unwrap();
    match controller::build::check_supported(&es.spec) {
        Err(e @ controller::build::BuildError::Unsupported { field }) => {
            assert!(
                ["spec.dataFrom[].find", "spec.dataFrom[].rewrite"].contains(&field),
                "{}: refused for {field}",
                w.file
            );
            format!("{}: {e}", e.category())
        }
        Err(other) => panic!("{}: refused for {other}", w.file),
        Ok(()) => format!(
            "StoreNotFound: {} {:?} not found",
            es.store_kind().as_str(),
            es.spec.secret_store_ref.name
        ),
    }
}

async fn store_ready(cluster: &TestCluster, w: &Written) -> Option<(String, String, String)> {
    let obj = w.api(&cluster.client).get(&w.name).await.ok()?;
    let ready = obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let s = |k: &str| ready[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_corpus_syncs_from_moto_or_is_refused_only_for_find_or_vault() {
    within_timeout(async {
        let moto = Moto::start().await;
        seed(&moto).await;
        // The controller runs from the start, as in a cluster where the operator is installed first.
        let mut cluster = cluster_on_moto(&moto).await;
        let kubectl = Kubectl::new(&cluster.server);
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: external-secrets}\n")
            .await;
        cluster.apply(&companions()).await;
        let written = apply_corpus(&cluster, &kubectl).await;

        // 037+038, 039 and 040: the exact bytes from moto, Ready at v1 and at v1beta1 alike.
        for (ns, secret, user, password) in [
            (
                "catalog",
                "catalog-external-secret",
                "catalog_user",
                "catalog-pa55",
            ),
            (
                "external-secrets",
                "external-secrets-sm",
                "sm-user",
                "sm-pa55",
            ),
            (
                "external-secrets",
                "external-secrets-ps",
                "ps-user",
                "ps-pa55",
            ),
        ] {
            let s = cluster
                .wait_secret_value(ns, secret, "password", password.as_bytes())
                .await;
            let data = s.data.unwrap();
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            assert_eq!(keys, ["password", "username"], "{ns}/{secret}");
            assert_eq!(data["username"].0, user.as_bytes(), "{ns}/{secret}");
            cluster.wait_ready(ns, secret, "True", "SecretSynced").await;
            let out = kubectl
                .run(&[
                    "get",
                    "externalsecrets.v1beta1.external-secrets.io",
                    "-n",
                    ns,
                    secret,
                    "-o",
                    "jsonpath={.apiVersion} {.status.conditions[?(@.type==\"Ready\")].reason}",
                ])
                .await;
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "external-secrets.io/v1beta1 SecretSynced",
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // 053 names its ServiceAccount without a namespace: an ExternalSecret in external-secrets
        // (where 053's ServiceAccount lives) reads through it with that namespace's ServiceAccount.
        cluster
            .apply(
                "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {name: referent, namespace: external-secrets}\n\
                 spec:\n  secretStoreRef: {kind: ClusterSecretStore, name: aws-secretsmanager-store}\n  \
                 data: [{secretKey: password, remoteRef: {key: referent/db}}]\n",
            )
            .await;
        cluster
            .wait_secret_value("external-secrets", "referent", "password", b"referent-pa55")
            .await;

        // The AWS stores validate against moto with the identity they name.
        for w in written.iter().filter(|w| w.kind != "ExternalSecret") {
            let expected = match w.file.get(..3).unwrap() {
                "037" | "039" | "040" | "051" => ("True", "Valid", "store validated".to_owned()),
                // A ServiceAccount named without namespace: resolved per ExternalSecret, as in ESO.
                "053" => (
                    "True",
                    "Valid",
                    controller::stores::REFERENT_MESSAGE.to_owned(),
                ),
                "057" => (
                    "False",
                    "InvalidProviderConfig",
                    "provider vault is not supported by secret-sync".to_owned(),
                ),
                other => panic!("no expectation for store of {other}"),
            };
            let what = format!("{} {} {} Ready", w.file, w.kind, w.name);
            let got = wait_for(&what, std::time::Duration::from_secs(15), || async {
                store_ready(&cluster, w).await
            })
            .await;
            assert_eq!(
                (got.0.as_str(), got.1.as_str()),
                (expected.0, expected.1),
                "{what}: {got:?}"
            );
            assert!(got.2.contains(&expected.2), "{what}: {got:?}");
        }

        // The others are refused for what they need, never for their version.
        for w in written.iter().filter(|w| w.kind == "ExternalSecret") {
            let ns = w.namespace.as_deref().unwrap();
            let expected = match w.file.get(..3).unwrap() {
                "038" | "039" | "040" => continue,
                "024" | "047" | "048" | "049" | "050" => find_refusal(w),
                "058" | "060" => "provider vault is not supported".to_owned(),
                other => panic!("no expectation for ExternalSecret of {other}"),
            };
            let c = cluster
                .wait_ready(ns, &w.name, "False", "SecretSyncedError")
                .await;
            let message = c.message.unwrap_or_default();
            assert!(
                message.contains(&expected),
                "{} {ns}/{}: {message}",
                w.file,
                w.name
            );
        }
        cluster.stop_controller().await;
    })
    .await;
}
