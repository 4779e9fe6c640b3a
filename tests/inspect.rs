//! `secret-sync why` and `status` (issue 14): one test per cause, each on the fake API server with the
//! objects a user would have, judged by the finding a person would read. The statuses the controller
//! would write are written here directly, so each cause is set up exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use kube::api::{Api, Patch, PatchParams};
use secret_sync::api::ExternalSecret;
use secret_sync::inspect::diagnose::{Finding, Step, Verdict, diagnose};
use support::cluster::TestCluster;

const FAKE_STORE: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: k, value: v}\n";

fn es(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}\n"
    )
}

const PLAIN: &str = "  secretStoreRef: {name: s}\n  data:\n  - {secretKey: k, remoteRef: {key: k}}";

/// Write the Ready condition the controller would have written.
async fn ready(c: &TestCluster, name: &str, status: &str, reason: &str, message: &str) {
    let patch = serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]}
    });
    Api::<ExternalSecret>::namespaced(c.client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::apply("secret-sync").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
}

async fn why(c: &TestCluster, name: &str) -> Vec<Finding> {
    let facts = secret_sync::inspect::gather(&c.client, "default", name, "")
        .await
        .unwrap();
    diagnose(&facts)
}

/// The one problem of `step`, failing with every finding when there is none.
fn problem(findings: &[Finding], step: Step) -> Finding {
    findings
        .iter()
        .find(|f| f.step == step && f.verdict == Verdict::Problem)
        .cloned()
        .unwrap_or_else(|| panic!("no {step:?} problem in {findings:#?}"))
}

fn problems(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.verdict == Verdict::Problem)
        .collect()
}

#[tokio::test]
async fn a_healthy_external_secret_reads_as_a_list_of_oks() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    c.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: default, labels: {app.kubernetes.io/managed-by: secret-sync}}\nstringData: {k: TOP-SECRET-VALUE}\n").await;
    ready(
        &c,
        "app",
        "True",
        "SecretSynced",
        "Secret \"app\" is synced",
    )
    .await;
    let findings = why(&c, "app").await;
    assert!(problems(&findings).is_empty(), "{findings:#?}");
    for step in [
        Step::ExternalSecret,
        Step::Store,
        Step::Authentication,
        Step::Provider,
        Step::Target,
    ] {
        assert!(
            findings
                .iter()
                .any(|f| f.step == step && f.verdict == Verdict::Ok),
            "{step:?}: {findings:#?}"
        );
    }
    let text = serde_json::to_string(&findings).unwrap();
    assert!(!text.contains("TOP-SECRET-VALUE"), "never a value");
}

#[tokio::test]
async fn a_missing_store_is_named_with_the_command_to_list_stores() {
    let c = TestCluster::without_controller().await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Store);
    assert!(p.what.contains("SecretStore \"s\" not found"), "{p:?}");
    assert!(
        p.fix
            .unwrap()
            .contains("kubectl get secretstores -n default")
    );
}

#[tokio::test]
async fn a_store_of_another_controller_class_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply(&FAKE_STORE.replace("spec:\n", "spec:\n  controller: team-b\n"))
        .await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Store);
    assert!(p.what.contains("controller class \"team-b\""), "{p:?}");
    assert!(p.fix.unwrap().contains("--controller-class"));
}

#[tokio::test]
async fn a_cluster_store_that_does_not_admit_the_namespace_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply("apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: shared}\nspec:\n  conditions:\n  - namespaces: [team-a]\n  provider:\n    fake: {data: []}\n").await;
    c.apply(&es("app", "  secretStoreRef: {name: shared, kind: ClusterSecretStore}\n  data:\n  - {secretKey: k, remoteRef: {key: k}}")).await;
    let p = problem(&why(&c, "app").await, Step::Store);
    assert!(
        p.what.contains("does not admit namespace \"default\""),
        "{p:?}"
    );
    assert!(p.fix.unwrap().contains("spec.conditions"));
}

#[tokio::test]
async fn an_invalid_spec_is_reported_before_anything_else() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", &format!("  refreshInterval: soon\n{PLAIN}")))
        .await;
    let findings = why(&c, "app").await;
    let p = problem(&findings, Step::ExternalSecret);
    assert!(p.what.contains("invalid refreshInterval \"soon\""), "{p:?}");
    assert_eq!(
        findings[0].step,
        Step::ExternalSecret,
        "the chain starts at the spec"
    );
}

#[tokio::test]
async fn an_unsupported_provider_is_reported_on_the_store() {
    let c = TestCluster::without_controller().await;
    c.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    vault: {server: 'https://vault.example.com'}\n").await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Store);
    assert!(
        p.what.contains("provider \"vault\" is not supported"),
        "{p:?}"
    );
}

const JWT_STORE: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      auth: {jwt: {serviceAccountRef: {name: reader}}}\n";

#[tokio::test]
async fn a_missing_service_account_for_jwt_auth_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply(JWT_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Authentication);
    assert!(
        p.what.contains("ServiceAccount default/reader") && p.what.contains("does not exist"),
        "{p:?}"
    );
}

#[tokio::test]
async fn a_service_account_without_a_role_annotation_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply(JWT_STORE).await;
    c.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reader, namespace: default}\n")
        .await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Authentication);
    assert!(
        p.what.contains("no eks.amazonaws.com/role-arn annotation"),
        "{p:?}"
    );
    assert!(
        p.fix
            .unwrap()
            .starts_with("kubectl annotate serviceaccount -n default reader")
    );
    // With the annotation, the identity is spelled out.
    c.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reader, namespace: default, annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/reader'}}\n").await;
    let findings = why(&c, "app").await;
    let auth = findings
        .iter()
        .find(|f| f.step == Step::Authentication)
        .unwrap();
    assert_eq!(auth.verdict, Verdict::Ok);
    assert!(
        auth.what
            .contains("AssumeRoleWithWebIdentity into arn:aws:iam::123456789012:role/reader"),
        "{auth:?}"
    );
}

#[tokio::test]
async fn a_static_credentials_secret_without_its_keys_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    aws:\n      service: ParameterStore\n      region: eu-west-1\n      auth:\n        secretRef:\n          accessKeyIDSecretRef: {name: awssm, key: access-key}\n          secretAccessKeySecretRef: {name: awssm, key: secret-access-key}\n").await;
    c.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: awssm, namespace: default}\nstringData: {access-key: AKIA-CANARY-VALUE}\n").await;
    c.apply(&es("app", PLAIN)).await;
    let findings = why(&c, "app").await;
    let p = problem(&findings, Step::Authentication);
    assert!(p.what.contains("lacks key(s) secret-access-key"), "{p:?}");
    assert!(
        !serde_json::to_string(&findings)
            .unwrap()
            .contains("AKIA-CANARY")
    );
}

#[tokio::test]
async fn a_provider_error_is_explained_by_its_category() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    ready(
        &c,
        "app",
        "False",
        "SecretSyncedError",
        "AccessDenied: access denied reading \"prod/db\": AccessDeniedException",
    )
    .await;
    let p = problem(&why(&c, "app").await, Step::Provider);
    assert!(
        p.what.contains("\"prod/db\""),
        "names the remote key: {p:?}"
    );
    assert!(p.fix.unwrap().contains("secretsmanager:GetSecretValue"));
}

#[tokio::test]
async fn no_status_at_all_points_at_the_operator() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    let p = problem(&why(&c, "app").await, Step::Provider);
    assert!(p.what.contains("no sync has been reported yet"), "{p:?}");
}

#[tokio::test]
async fn a_target_controlled_by_another_external_secret_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    c.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: default\n  ownerReferences:\n  - {apiVersion: external-secrets.io/v1, kind: ExternalSecret, name: first, uid: 00000000-0000-0000-0000-000000000001, controller: true}\n").await;
    let p = problem(&why(&c, "app").await, Step::Target);
    assert!(
        p.what.contains("controlled by ExternalSecret \"first\""),
        "{p:?}"
    );
}

#[tokio::test]
async fn an_immutable_target_is_explained() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    c.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: default}\nimmutable: true\nstringData: {k: old}\n").await;
    let p = problem(&why(&c, "app").await, Step::Target);
    assert!(p.what.contains("is immutable"), "{p:?}");
}

#[tokio::test]
async fn a_missing_merge_target_is_explained_and_recent_events_are_listed() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", "  secretStoreRef: {name: s}\n  target: {name: shared, creationPolicy: Merge}\n  data:\n  - {secretKey: k, remoteRef: {key: k}}")).await;
    let uid = Api::<ExternalSecret>::namespaced(c.client.clone(), "default")
        .get("app")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    c.apply(&format!("apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: app.1, namespace: default}}\neventTime: '2026-11-30T10:00:00.000000Z'\nreportingController: secret-sync\nreportingInstance: x\naction: Sync\nreason: UpdateFailed\ntype: Warning\nnote: 'Provider: something went wrong'\nregarding: {{apiVersion: external-secrets.io/v1, kind: ExternalSecret, name: app, namespace: default, uid: {uid}}}\n")).await;
    let findings = why(&c, "app").await;
    let p = problem(&findings, Step::Target);
    assert!(
        p.what
            .contains("Secret \"shared\" does not exist; creationPolicy Merge"),
        "{p:?}"
    );
    let events: Vec<&Finding> = findings.iter().filter(|f| f.step == Step::Events).collect();
    assert_eq!(events.len(), 1, "{findings:#?}");
    assert_eq!(
        events[0].what,
        "Warning UpdateFailed: Provider: something went wrong"
    );
}

/// The real binary as a kubectl plugin: `kubectl secret-sync status` and `why`, text and JSON.
/// Multi-threaded: the fake API server must keep serving while this thread waits for kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_secret_sync_runs_the_binary_as_a_plugin() {
    let c = TestCluster::without_controller().await;
    c.apply(FAKE_STORE).await;
    c.apply(&es("app", PLAIN)).await;
    c.apply(&es("other", "  refreshPolicy: OnChange\n  secretStoreRef: {name: missing}\n  data:\n  - {secretKey: k, remoteRef: {key: k}}")).await;
    ready(
        &c,
        "app",
        "True",
        "SecretSynced",
        "Secret \"app\" is synced",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.server.write_kubeconfig(&kubeconfig).unwrap();
    // kubectl finds plugins on PATH by name: kubectl-secret_sync serves `kubectl secret-sync`.
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_secret-sync"),
        dir.path().join("kubectl-secret_sync"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let kubectl = |args: &[&str]| {
        // kubectl takes no flags before a plugin's name: the plugin reads $KUBECONFIG.
        let out = Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = kubectl(&["secret-sync", "status", "-A"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE  NAME") && lines[0].contains("REFRESH"),
        "{table}"
    );
    assert!(
        lines[1].contains("app")
            && lines[1].contains("fake")
            && lines[1].contains("True")
            && lines[1].contains("every 1h"),
        "{table}"
    );
    assert!(
        lines[2].contains("other") && lines[2].contains("on change"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&kubectl(&[
        "secret-sync",
        "status",
        "-n",
        "default",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["reason"], "SecretSynced");
    let text = kubectl(&["secret-sync", "why", "default/other"]);
    assert!(
        text.starts_with("ExternalSecret default/other: no status yet\n"),
        "{text}"
    );
    assert!(
        text.contains("[FAIL] Store: SecretStore \"missing\" not found"),
        "{text}"
    );
    assert!(text.contains("fix: create it"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&kubectl(&[
        "secret-sync",
        "why",
        "other",
        "-n",
        "default",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["findings"][1]["step"], "store");
    assert_eq!(json["findings"][1]["verdict"], "problem");
}

#[tokio::test]
async fn a_generator_only_external_secret_needs_no_store_and_a_missing_generator_is_named() {
    let c = TestCluster::without_controller().await;
    c.apply(&es(
        "pull",
        "  dataFrom:\n  - sourceRef: {generatorRef: {kind: ECRAuthorizationToken, name: ecr}}",
    ))
    .await;
    ready(
        &c,
        "pull",
        "False",
        "SecretSyncedError",
        "GeneratorNotFound: spec.dataFrom[0].sourceRef.generatorRef: ECRAuthorizationToken \"ecr\" not found in namespace \"default\"",
    )
    .await;
    let findings = why(&c, "pull").await;
    assert!(
        findings
            .iter()
            .any(|f| f.step == Step::Store && f.verdict == Verdict::Ok),
        "{findings:#?}"
    );
    let p = problem(&findings, Step::Provider);
    assert!(
        p.what.contains("ECRAuthorizationToken \"ecr\" not found"),
        "{p:?}"
    );
    assert!(p.fix.unwrap().contains("create the generator"));
    let rows = secret_sync::inspect::status_rows(&c.client, Some("default"))
        .await
        .unwrap();
    assert_eq!(
        (rows[0].store.as_str(), rows[0].provider.as_str()),
        ("-", "generators")
    );
}
