//! The Helm chart (charts/secret-sync), linted and rendered by the real Helm v4 SDK (PyPI
//! `helm-python-sdk`, driven by scripts/helm_render.py), then applied to the fake API server.
//!
//! Needs the test venv: `./scripts/test` creates it under build/venv, or point
//! `SECRET_SYNC_VENV` at one built from scripts/requirements-test.txt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const RELEASE: &str = "secret-sync";
const NAMESPACE: &str = "secret-sync";
const IRSA_ROLE: &str = "arn:aws:iam::123456789012:role/secret-sync";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/secret-sync")
}

fn venv() -> PathBuf {
    std::env::var_os("SECRET_SYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/venv"))
}

fn venv_python() -> PathBuf {
    let python = venv().join("bin/python");
    assert!(
        python.is_file(),
        "the chart tests need the test venv with helm-python-sdk, but {} does not exist: run \
         ./scripts/test once (it builds build/venv from scripts/requirements-test.txt) or set \
         SECRET_SYNC_VENV to such a venv",
        python.display()
    );
    python
}

/// Sends one request to scripts/helm_render.py and returns its JSON answer.
async fn helm(request: Value) -> Value {
    let mut child = tokio::process::Command::new(venv_python())
        .arg(repo().join("scripts/helm_render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("failed to start the venv's python");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(
        fake_apiserver::test_time::scaled(Duration::from_secs(60)),
        child.wait_with_output(),
    )
    .await
    .expect("helm_render.py did not answer within 60s")
    .unwrap();
    assert!(
        output.status.success(),
        "helm_render.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "helm_render.py printed no JSON ({err}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The objects of one `helm template`-like render.
struct Rendered {
    objects: Vec<Value>,
    notes: String,
    crds: Vec<Value>,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "the chart rendered no {kind} {name}; it rendered {:?}",
                    self.summary()
                )
            })
    }

    /// (kind, namespace, name) of every object, for readable failures and exact inventories.
    fn summary(&self) -> BTreeSet<(String, String, String)> {
        self.objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_owned(),
                    o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.summary()
            .into_iter()
            .map(|(kind, _, _)| kind)
            .collect()
    }

    fn deployment(&self) -> &Value {
        self.find("Deployment", RELEASE)
    }

    fn pod_spec(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = self.pod_spec()["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "one container expected");
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        strings(&self.container()["args"])
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|s| {
                    s.as_str()
                        .unwrap_or_else(|| panic!("not a string: {s}"))
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn render(values: Value) -> Rendered {
    let answer = helm(json!({
        "op": "render", "chart": chart_dir(), "values": values, "name": RELEASE, "namespace": NAMESPACE,
    }))
    .await;
    assert_eq!(answer["ok"], true, "helm failed to render: {answer}");
    let objects = |key: &str| -> Vec<Value> {
        answer[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["object"].clone())
            .collect()
    };
    Rendered {
        objects: objects("objects"),
        notes: answer["notes"].as_str().unwrap_or_default().to_owned(),
        crds: objects("crds"),
    }
}

async fn render_error(values: Value) -> String {
    let answer = helm(json!({
        "op": "render", "chart": chart_dir(), "values": values, "name": RELEASE, "namespace": NAMESPACE,
    }))
    .await;
    assert_eq!(
        answer["ok"], false,
        "helm rendered values that must be refused: {answer}"
    );
    answer["message"].as_str().unwrap_or_default().to_owned()
}

fn namespaced_values() -> Value {
    json!({"scope": {"namespace": "team-a"}})
}

fn irsa_values() -> Value {
    json!({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}}})
}

fn service_monitor_values() -> Value {
    json!({"serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}}})
}

fn everything_values() -> Value {
    json!({
        "replicaCount": 2,
        "auth": {"jwt": {"enabled": true}},
        "reload": {"enabled": true},
        "serviceMonitor": {"enabled": true},
        "prometheusRule": {"enabled": true, "runbookUrl": "https://example.com/docs/alerts.md"},
        "grafanaDashboard": {"enabled": true},
        "podDisruptionBudget": {"enabled": true},
        "networkPolicy": {"enabled": true, "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}},
    })
}

// ---------------------------------------------------------------------------------------------
// RBAC: permissions as (apiGroup, resource, verb) triples, so that an exact comparison catches
// any extra or missing grant whatever the rule layout.

type Grant = (String, String, String);

fn grants(role: &Value) -> BTreeSet<Grant> {
    let name = &role["metadata"]["name"];
    let rules = role["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no rules"));
    let mut out = BTreeSet::new();
    for rule in rules {
        let fields: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            fields == BTreeSet::from(["apiGroups", "resources", "verbs"])
                || fields == BTreeSet::from(["apiGroups", "resources", "resourceNames", "verbs"]),
            "{name}: rule {rule} must only name apiGroups, resources, verbs (and resourceNames)"
        );
        // A grant limited to named objects reads "resource/name".
        let names = strings(&rule["resourceNames"]);
        let resources: Vec<String> = strings(&rule["resources"])
            .into_iter()
            .flat_map(|r| {
                if names.is_empty() {
                    vec![r]
                } else {
                    names.iter().map(|n| format!("{r}/{n}")).collect()
                }
            })
            .collect();
        for group in strings(&rule["apiGroups"]) {
            for resource in resources.clone() {
                for verb in strings(&rule["verbs"]) {
                    for part in [&group, &resource, &verb] {
                        assert!(!part.contains('*'), "{name}: wildcard in rule {rule}");
                    }
                    assert!(
                        out.insert((group.clone(), resource.clone(), verb)),
                        "{name}: duplicate grant in rule {rule}"
                    );
                }
            }
        }
    }
    out
}

fn grant_set(rules: &[(&str, &[&str], &[&str])]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in rules {
        for resource in *resources {
            for verb in *verbs {
                out.insert((
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                ));
            }
        }
    }
    out
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE_STATUS: &[&str] = &["update", "patch"];
const SECRETS: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];
const EVENTS: &[&str] = &["create", "patch"];

/// What the operator needs in cluster mode, with every optional feature off.
fn cluster_grants() -> BTreeSet<Grant> {
    grant_set(&[
        (
            "external-secrets.io",
            &["externalsecrets", "secretstores", "clustersecretstores"],
            READ,
        ),
        (
            "external-secrets.io",
            &[
                "externalsecrets/status",
                "secretstores/status",
                "clustersecretstores/status",
            ],
            WRITE_STATUS,
        ),
        ("", &["secrets"], SECRETS),
        // templateFrom ConfigMaps: read and watched (metadata only).
        ("", &["configmaps"], READ),
        ("", &["events"], EVENTS),
        ("events.k8s.io", &["events"], EVENTS),
        ("", &["namespaces"], READ),
        // ClusterExternalSecrets and the ExternalSecrets they stamp out (server-side apply, delete).
        ("external-secrets.io", &["clusterexternalsecrets"], READ),
        (
            "external-secrets.io",
            &["clusterexternalsecrets/status"],
            &["patch"],
        ),
        (
            "external-secrets.io",
            &["clusterexternalsecrets/finalizers"],
            &["update"],
        ),
        (
            "external-secrets.io",
            &["externalsecrets"],
            &["create", "patch", "delete"],
        ),
        (
            "generators.external-secrets.io",
            &["ecrauthorizationtokens", "passwords", "clustergenerators"],
            &["get"],
        ),
    ])
}

/// What the operator needs in namespaced mode: no ClusterSecretStores, no ClusterExternalSecrets
/// (and so no ExternalSecret writes), no Namespaces.
fn namespaced_grants() -> BTreeSet<Grant> {
    grant_set(&[
        (
            "external-secrets.io",
            &["externalsecrets", "secretstores"],
            READ,
        ),
        (
            "external-secrets.io",
            &["externalsecrets/status", "secretstores/status"],
            WRITE_STATUS,
        ),
        ("", &["secrets"], SECRETS),
        // templateFrom ConfigMaps: read and watched (metadata only).
        ("", &["configmaps"], READ),
        ("", &["events"], EVENTS),
        ("events.k8s.io", &["events"], EVENTS),
        // No ClusterGenerators: they are cluster-scoped.
        (
            "generators.external-secrets.io",
            &["ecrauthorizationtokens", "passwords"],
            &["get"],
        ),
    ])
}

fn jwt_grants() -> BTreeSet<Grant> {
    grant_set(&[
        ("", &["serviceaccounts/token"], &["create"]),
        ("", &["serviceaccounts"], &["get"]),
    ])
}

fn reload_grants() -> BTreeSet<Grant> {
    grant_set(&[(
        "apps",
        &["deployments", "statefulsets", "daemonsets"],
        &["get", "list", "watch", "patch"],
    )])
}

fn lease_grants() -> BTreeSet<Grant> {
    grant_set(&[(
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "update"],
    )])
}

/// The hash key Secret in the release namespace: read by name, created once.
fn hash_key_grants() -> BTreeSet<Grant> {
    union(&[
        grant_set(&[("", &["secrets/secret-sync-hash-key"], &["get"])]),
        grant_set(&[("", &["secrets"], &["create"])]),
    ])
}

fn union(sets: &[BTreeSet<Grant>]) -> BTreeSet<Grant> {
    sets.iter().flatten().cloned().collect()
}

fn assert_binds_service_account(binding: &Value, role_kind: &str, role_name: &str) {
    let name = &binding["metadata"]["name"];
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name}),
        "{name} binds the wrong role"
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]),
        "{name} must bind exactly the operator's ServiceAccount"
    );
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chart_lints_cleanly_in_every_variant() {
    let variants = [
        ("default", json!({})),
        ("namespaced", namespaced_values()),
        ("irsa", irsa_values()),
        ("service monitor", service_monitor_values()),
        ("everything on", everything_values()),
    ];
    for (variant, values) in variants {
        let answer = helm(json!({
            "op": "lint", "chart": chart_dir(), "values": values, "namespace": NAMESPACE, "strict": true,
        }))
        .await;
        assert_eq!(
            answer["ok"], true,
            "helm lint ({variant}) could not run: {answer}"
        );
        let report = &answer["report"];
        assert_eq!(report["total_charts_linted"], 1, "{variant}: {report}");
        assert_eq!(
            report["errors"],
            json!([]),
            "helm lint ({variant}) found errors: {report}"
        );
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_u64().unwrap_or(0) >= 2)
            .collect();
        assert!(
            problems.is_empty(),
            "helm lint ({variant}) warned: {problems:?}"
        );
    }
}

#[test]
fn chart_crds_are_a_copy_of_the_generated_crds() {
    let chart_copy = std::fs::read_to_string(chart_dir().join("crds/external-secrets.io.yaml"))
        .expect("charts/secret-sync/crds/external-secrets.io.yaml is missing");
    let committed = std::fs::read_to_string(repo().join("crds/external-secrets.io.yaml")).expect(
        "crds/external-secrets.io.yaml is missing: run `cargo run -- crds > crds/external-secrets.io.yaml`",
    );
    let fix = "run `cargo run -- crds > crds/external-secrets.io.yaml && cp crds/external-secrets.io.yaml \
               charts/secret-sync/crds/`";
    assert!(
        chart_copy == committed,
        "the chart's CRDs drifted from crds/external-secrets.io.yaml: {fix}"
    );
    let generated = secret_sync::api::crds_yaml().unwrap();
    assert!(
        chart_copy == generated,
        "the chart's CRDs drifted from the CRDs generated from the Rust types: {fix}"
    );
}

#[tokio::test]
async fn chart_installs_the_seven_crds() {
    let rendered = render(json!({})).await;
    let names: BTreeSet<&str> = rendered
        .crds
        .iter()
        .map(|crd| crd["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "externalsecrets.external-secrets.io",
            "secretstores.external-secrets.io",
            "clustersecretstores.external-secrets.io",
            "clusterexternalsecrets.external-secrets.io",
            "ecrauthorizationtokens.generators.external-secrets.io",
            "passwords.generators.external-secrets.io",
            "clustergenerators.generators.external-secrets.io",
        ])
    );
    assert!(
        rendered.of_kind("CustomResourceDefinition").is_empty(),
        "CRDs belong in crds/, not in templates/"
    );
}

#[tokio::test]
async fn default_values_render_a_cluster_wide_operator() {
    let rendered = render(json!({})).await;
    let inventory: BTreeSet<(String, String, String)> = [
        ("ClusterRole", "", RELEASE),
        ("ClusterRoleBinding", "", RELEASE),
        ("Deployment", NAMESPACE, RELEASE),
        ("Role", NAMESPACE, "secret-sync-hash-key"),
        ("RoleBinding", NAMESPACE, "secret-sync-hash-key"),
        ("Service", NAMESPACE, "secret-sync-metrics"),
        ("ServiceAccount", NAMESPACE, RELEASE),
    ]
    .iter()
    .map(|(k, ns, n)| ((*k).to_owned(), (*ns).to_owned(), (*n).to_owned()))
    .collect();
    assert_eq!(rendered.summary(), inventory);
    assert_eq!(
        rendered.args(),
        [
            "run",
            "--admin-addr=0.0.0.0:8080",
            "--log-format=json",
            "--hash-key-secret=$(POD_NAMESPACE)/secret-sync-hash-key",
            "--change-detection=list",
            "--full-resync-interval=24h"
        ],
        "one replica without leaderElection.enabled runs without leader election, cluster-wide"
    );
    assert_eq!(rendered.deployment()["spec"]["replicas"], 1);
    assert!(
        rendered.notes.contains("the whole cluster"),
        "NOTES: {}",
        rendered.notes
    );
}

#[tokio::test]
async fn default_rbac_is_exactly_the_least_privilege_set() {
    let rendered = render(json!({})).await;
    let role = rendered.find("ClusterRole", RELEASE);
    assert_eq!(grants(role), cluster_grants());
    assert_binds_service_account(
        rendered.find("ClusterRoleBinding", RELEASE),
        "ClusterRole",
        RELEASE,
    );
    let roles = rendered.of_kind("Role");
    assert_eq!(
        roles.len(),
        1,
        "only the hash key Role: {:?}",
        rendered.summary()
    );
    let hash_key = rendered.find("Role", "secret-sync-hash-key");
    assert_eq!(hash_key["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(hash_key), hash_key_grants());
    assert_binds_service_account(
        rendered.find("RoleBinding", "secret-sync-hash-key"),
        "Role",
        "secret-sync-hash-key",
    );
}

#[tokio::test]
async fn namespaced_mode_grants_roles_in_the_watched_namespace_only() {
    let rendered = render(namespaced_values()).await;
    assert!(
        !rendered.kinds().contains("ClusterRole")
            && !rendered.kinds().contains("ClusterRoleBinding"),
        "namespaced mode must not grant anything cluster-wide: {:?}",
        rendered.summary()
    );
    let roles = rendered.of_kind("Role");
    assert_eq!(roles.len(), 2, "{:?}", rendered.summary());
    let role = rendered.find("Role", RELEASE);
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(
        rendered.find("Role", "secret-sync-hash-key")["metadata"]["namespace"],
        NAMESPACE,
        "the hash key lives in the release namespace"
    );
    assert_eq!(grants(role), namespaced_grants());
    let binding = rendered.find("RoleBinding", RELEASE);
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_binds_service_account(binding, "Role", RELEASE);
    assert_eq!(
        rendered.args(),
        [
            "run",
            "--admin-addr=0.0.0.0:8080",
            "--log-format=json",
            "--hash-key-secret=$(POD_NAMESPACE)/secret-sync-hash-key",
            "--change-detection=list",
            "--full-resync-interval=24h",
            "--namespace=team-a"
        ]
    );
    assert!(
        rendered.notes.contains("namespace \"team-a\" only"),
        "NOTES: {}",
        rendered.notes
    );
}

#[tokio::test]
async fn jwt_toggle_adds_exactly_token_requests() {
    let cluster = render(json!({"auth": {"jwt": {"enabled": true}}})).await;
    assert_eq!(
        grants(cluster.find("ClusterRole", RELEASE)),
        union(&[cluster_grants(), jwt_grants()])
    );
    let namespaced =
        render(json!({"scope": {"namespace": "team-a"}, "auth": {"jwt": {"enabled": true}}})).await;
    assert_eq!(
        grants(namespaced.find("Role", RELEASE)),
        union(&[namespaced_grants(), jwt_grants()])
    );
}

#[tokio::test]
async fn reload_toggle_adds_exactly_workload_patches() {
    let cluster = render(json!({"reload": {"enabled": true}})).await;
    assert_eq!(
        grants(cluster.find("ClusterRole", RELEASE)),
        union(&[cluster_grants(), reload_grants()])
    );
    let namespaced =
        render(json!({"scope": {"namespace": "team-a"}, "reload": {"enabled": true}})).await;
    assert_eq!(
        grants(namespaced.find("Role", RELEASE)),
        union(&[namespaced_grants(), reload_grants()])
    );
}

#[tokio::test]
async fn reload_and_event_values_become_operator_flags() {
    let off = render(json!({})).await.args();
    assert!(
        !off.iter()
            .any(|a| a.contains("reload") || a.contains("events") || a.contains("webhook")),
        "{off:?}"
    );
    let on = render(json!({
        "reload": {"enabled": true},
        "events": {"sqsQueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q", "webhookSecret": "hook"}
    }))
    .await
    .args();
    for expected in [
        "--enable-reload",
        "--events-sqs-queue-url=https://sqs.eu-west-1.amazonaws.com/1/q",
        "--events-malformed=keep",
        &format!("--webhook-secret={NAMESPACE}/hook"),
    ] {
        assert!(
            on.contains(&expected.to_owned()),
            "{expected} missing from {on:?}"
        );
    }
}

#[tokio::test]
async fn change_detection_values_become_operator_flags() {
    let default = render(json!({})).await.args();
    for expected in ["--change-detection=list", "--full-resync-interval=24h"] {
        assert!(
            default.contains(&expected.to_owned()),
            "{expected} missing from {default:?}"
        );
    }
    let off = render(json!({"changeDetection": {"mode": "off", "fullResyncInterval": "6h"}}))
        .await
        .args();
    for expected in ["--change-detection=off", "--full-resync-interval=6h"] {
        assert!(
            off.contains(&expected.to_owned()),
            "{expected} missing from {off:?}"
        );
    }
    // `mode: off` written unquoted in a values file is YAML 1.1's false.
    let unquoted = render(json!({"changeDetection": {"mode": false}}))
        .await
        .args();
    assert!(
        unquoted.contains(&"--change-detection=off".to_owned()),
        "{unquoted:?}"
    );
}

#[tokio::test]
async fn several_replicas_elect_a_leader_through_a_lease_in_the_release_namespace() {
    for values in [
        json!({"replicaCount": 2}),
        json!({"leaderElection": {"enabled": true}}),
    ] {
        let rendered = render(values.clone()).await;
        let args = rendered.args();
        assert!(
            args.contains(&"--leader-elect".to_owned()),
            "{values}: {args:?}"
        );
        assert!(
            args.contains(&"--lease-namespace=$(POD_NAMESPACE)".to_owned()),
            "{values}: {args:?}"
        );
        let lease_role = rendered.find("Role", "secret-sync-leader-election");
        assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
        assert_eq!(grants(lease_role), lease_grants());
        assert_binds_service_account(
            rendered.find("RoleBinding", "secret-sync-leader-election"),
            "Role",
            "secret-sync-leader-election",
        );
        // Leader election adds the Lease and nothing else.
        assert_eq!(
            grants(rendered.find("ClusterRole", RELEASE)),
            cluster_grants()
        );
    }
    let namespaced = render(json!({"replicaCount": 3, "scope": {"namespace": "team-a"}})).await;
    assert_eq!(
        namespaced.find("Role", "secret-sync-leader-election")["metadata"]["namespace"],
        NAMESPACE,
        "the Lease lives in the release namespace, not the watched one"
    );
}

#[tokio::test]
async fn no_rbac_rule_anywhere_holds_a_wildcard() {
    for values in [json!({}), namespaced_values(), everything_values()] {
        let rendered = render(values).await;
        for kind in ["ClusterRole", "Role"] {
            for role in rendered.of_kind(kind) {
                grants(role); // asserts no wildcard, no resourceNames/nonResourceURLs
                assert!(!role["rules"].to_string().contains('*'));
            }
        }
    }
}

#[tokio::test]
async fn irsa_annotation_lands_on_the_service_account() {
    let rendered = render(irsa_values()).await;
    let account = rendered.find("ServiceAccount", RELEASE);
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        IRSA_ROLE
    );
    assert_eq!(account["automountServiceAccountToken"], true);
    assert_eq!(rendered.pod_spec()["serviceAccountName"], RELEASE);
    assert!(
        rendered.notes.contains(IRSA_ROLE),
        "NOTES: {}",
        rendered.notes
    );
}

#[tokio::test]
async fn an_existing_service_account_can_be_used_by_name() {
    let rendered =
        render(json!({"serviceAccount": {"create": false, "name": "platform-secrets"}})).await;
    assert!(rendered.of_kind("ServiceAccount").is_empty());
    assert_eq!(
        rendered.pod_spec()["serviceAccountName"],
        "platform-secrets"
    );
    let binding = rendered.find("ClusterRoleBinding", RELEASE);
    assert_eq!(binding["subjects"][0]["name"], "platform-secrets");

    let message = render_error(json!({"serviceAccount": {"create": false}})).await;
    assert!(
        message.contains("serviceAccount.name is required"),
        "{message}"
    );
}

#[tokio::test]
async fn pod_is_hardened() {
    let rendered = render(json!({})).await;
    let pod = rendered.pod_spec();
    assert_eq!(pod["automountServiceAccountToken"], true);
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(pod_security["runAsUser"], 65532);
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let security = &rendered.container()["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(security["capabilities"].get("add").is_none());
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(security.get("privileged").is_none_or(|p| p == false));
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod.get(host).is_none(), "{host} must not be set");
    }
}

#[tokio::test]
async fn container_serves_health_and_metrics_on_the_admin_port() {
    let rendered = render(json!({})).await;
    let container = rendered.container();
    assert_eq!(
        container["ports"],
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        json!({"path": "/livez", "port": 8080})
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": 8080})
    );
    let env = container["env"].as_array().unwrap();
    assert_eq!(
        env,
        &[
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        ]
    );
    let service = rendered.find("Service", "secret-sync-metrics");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        service["spec"]["selector"],
        rendered.deployment()["spec"]["selector"]["matchLabels"]
    );
}

#[tokio::test]
async fn user_values_reach_the_pod() {
    let rendered = render(json!({
        "image": {"repository": "registry.example.com/secret-sync", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "logLevel": "info,secret_sync=debug",
        "extraArgs": ["--concurrency=4"],
        "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}
        ]}}},
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"example.com/tier": "system"},
    }))
    .await;
    let container = rendered.container();
    assert_eq!(container["image"], "registry.example.com/secret-sync:1.2.3");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(
        rendered.args(),
        [
            "run",
            "--admin-addr=0.0.0.0:8080",
            "--log-format=json",
            "--hash-key-secret=$(POD_NAMESPACE)/secret-sync-hash-key",
            "--change-detection=list",
            "--full-resync-interval=24h",
            "--log-level=info,secret_sync=debug",
            "--concurrency=4"
        ]
    );
    assert_eq!(
        container["env"].as_array().unwrap().last(),
        Some(&json!({"name": "AWS_REGION", "value": "eu-west-1"}))
    );
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    let pod = rendered.pod_spec();
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"],
        json!(["arm64"])
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    let template = &rendered.deployment()["spec"]["template"]["metadata"];
    assert_eq!(template["annotations"]["example.com/team"], "platform");
    assert_eq!(template["labels"]["example.com/tier"], "system");

    let defaults = render(json!({})).await;
    assert_eq!(
        defaults.container()["image"],
        "ghcr.io/secret-sync/secret-sync:0.1.0",
        "the image tag defaults to the chart's appVersion"
    );
}

#[tokio::test]
async fn service_monitor_scrapes_the_metrics_service() {
    let rendered = render(service_monitor_values()).await;
    let monitor = rendered.find("ServiceMonitor", RELEASE);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let service = rendered.find("Service", "secret-sync-metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the monitor must select the Service"
        );
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"],
        json!({"matchNames": [NAMESPACE]})
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "http-metrics");
    assert_eq!(endpoint["path"], "/metrics");

    let defaults = render(json!({})).await;
    assert!(
        defaults.of_kind("ServiceMonitor").is_empty(),
        "ServiceMonitor is opt-in"
    );
}

#[tokio::test]
async fn disruption_budget_and_network_policy_are_opt_in() {
    let defaults = render(json!({})).await;
    assert!(defaults.of_kind("PodDisruptionBudget").is_empty());
    assert!(defaults.of_kind("NetworkPolicy").is_empty());

    let rendered = render(everything_values()).await;
    let selector = &rendered.deployment()["spec"]["selector"]["matchLabels"];
    let budget = rendered.find("PodDisruptionBudget", RELEASE);
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(budget["spec"]["minAvailable"], 1);
    let policy = rendered.find("NetworkPolicy", RELEASE);
    assert_eq!(&policy["spec"]["podSelector"]["matchLabels"], selector);
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "http-metrics", "protocol": "TCP"}]}])
    );
    assert_eq!(policy["spec"]["egress"][0]["ports"][0]["port"], 443);

    let max_unavailable =
        render(json!({"podDisruptionBudget": {"enabled": true, "maxUnavailable": 1}})).await;
    let budget = max_unavailable.find("PodDisruptionBudget", RELEASE);
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert!(budget["spec"].get("minAvailable").is_none());
}

// ---------------------------------------------------------------------------------------------
// Applying the rendered manifests to the fake API server.

/// The Prometheus Operator's CRDs are not ours; the fake server needs them to accept a ServiceMonitor
/// and a PrometheusRule.
fn service_monitor_crd() -> Value {
    prometheus_operator_crd("ServiceMonitor")
}

fn prometheus_operator_crd(kind: &str) -> Value {
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": singular},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

async fn dynamic_api(client: &kube::Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|err| panic!("the API server does not serve {api_version} {kind}: {err}"));
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    let api = match capabilities.scope {
        kube::discovery::Scope::Namespaced => {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(NAMESPACE);
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    (api, name)
}

/// Server-side applies `object` (as `helm` would create it) and returns what the server stored.
async fn apply(client: &kube::Client, object: &Value) -> DynamicObject {
    let (api, name) = dynamic_api(client, object).await;
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    api.patch(
        &name,
        &PatchParams::apply("helm").force(),
        &Patch::Apply(&dynamic),
    )
    .await
    .unwrap_or_else(|err| panic!("the API server refused {} {name}: {err}", object["kind"]))
}

async fn create(client: &kube::Client, object: &Value) {
    let (api, name) = dynamic_api(client, object).await;
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    match api.create(&PostParams::default(), &dynamic).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("failed to create {} {name}: {err}", object["kind"]),
    }
}

#[tokio::test]
async fn rendered_manifests_are_accepted_by_the_api_server() {
    let limit = fake_apiserver::test_time::scaled(Duration::from_secs(120));
    tokio::time::timeout(limit, async {
        secret_sync::install_crypto_provider();
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        for ns in [NAMESPACE, "team-a"] {
            create(&client, &namespace(ns)).await;
        }
        let variants = [
            ("default", json!({})),
            ("namespaced", namespaced_values()),
            ("irsa", irsa_values()),
            ("service monitor", service_monitor_values()),
            ("everything on", everything_values()),
        ];
        let mut crds_installed = false;
        for (variant, values) in variants {
            let rendered = render(values).await;
            if !crds_installed {
                // Helm installs crds/ first, as they are, before any template.
                let monitoring = [
                    service_monitor_crd(),
                    prometheus_operator_crd("PrometheusRule"),
                ];
                for crd in rendered.crds.iter().chain(&monitoring) {
                    apply(&client, crd).await;
                }
                crds_installed = true;
            }
            for object in &rendered.objects {
                let stored = apply(&client, object).await;
                let stored = serde_json::to_value(&stored).unwrap();
                assert_eq!(
                    stored["metadata"]["labels"], object["metadata"]["labels"],
                    "{variant}: {} {} was not stored as rendered",
                    object["kind"], object["metadata"]["name"]
                );
                if object["kind"] == "Deployment" {
                    assert_eq!(
                        stored["spec"]["template"]["spec"]["containers"][0]["securityContext"],
                        object["spec"]["template"]["spec"]["containers"][0]["securityContext"],
                        "{variant}: the hardened securityContext must survive the round trip"
                    );
                }
            }
        }
        // The CRDs are served once installed: the operator's kinds are usable.
        for kind in ["ExternalSecret", "SecretStore", "ClusterSecretStore"] {
            let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", kind);
            kube::discovery::pinned_kind(&client, &gvk)
                .await
                .unwrap_or_else(|err| {
                    panic!("{kind} is not served after installing the chart's CRDs: {err}")
                });
        }
        server.shutdown().await;
    })
    .await
    .expect("applying the chart to the fake API server took more than 120s");
}

#[tokio::test]
async fn kubectl_applies_the_default_install() {
    let limit = fake_apiserver::test_time::scaled(Duration::from_secs(120));
    tokio::time::timeout(limit, async {
        secret_sync::install_crypto_provider();
        let server = FakeApiServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let rendered = render(irsa_values()).await;
        // One file per phase, as Helm does it: CRDs first, then the release namespace, then templates.
        let to_yaml = |objects: &[Value]| -> String {
            objects
                .iter()
                .map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap()))
                .collect()
        };
        let phases = [
            ("crds.yaml", to_yaml(&rendered.crds)),
            ("namespace.yaml", to_yaml(&[namespace(NAMESPACE)])),
            ("templates.yaml", to_yaml(&rendered.objects)),
        ];
        for (file, yaml) in phases {
            let path = dir.path().join(file);
            std::fs::write(&path, yaml).unwrap();
            let output = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args([
                    "apply",
                    "--server-side",
                    "--field-manager=helm",
                    "--validate=false",
                    "-f",
                ])
                .arg(&path)
                .kill_on_drop(true)
                .output()
                .await
                .expect("kubectl is required for this test");
            assert!(
                output.status.success(),
                "kubectl apply -f {file} failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(server.client(), NAMESPACE);
        let account = accounts.get(RELEASE).await.unwrap();
        assert_eq!(
            account
                .metadata
                .annotations
                .unwrap_or_default()
                .get("eks.amazonaws.com/role-arn")
                .map(String::as_str),
            Some(IRSA_ROLE)
        );
        server.shutdown().await;
    })
    .await
    .expect("kubectl apply against the fake API server took more than 120s");
}

#[tokio::test]
async fn rendered_arguments_are_accepted_by_the_operator_command_line() {
    use clap::Parser;
    let variants = [
        json!({}),
        json!({"scope": {"namespace": "team-a"}, "replicaCount": 2, "logLevel": "debug"}),
        json!({"leaderElection": {"enabled": true}, "extraArgs": ["--concurrency=4"]}),
        json!({"reload": {"enabled": true}, "events": {"sqsQueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q", "malformed": "delete", "webhookSecret": "hook"}}),
    ];
    for values in variants {
        let rendered = render(values.clone()).await;
        let argv = std::iter::once("secret-sync".to_owned()).chain(rendered.args());
        if let Err(err) = secret_sync::cli::Cli::try_parse_from(argv) {
            panic!("secret-sync refuses the chart's arguments for {values}: {err}");
        }
    }
}

#[tokio::test]
async fn alert_rules_and_dashboard_are_opt_in_and_configurable() {
    let kinds = |r: &Rendered| -> Vec<String> {
        r.objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let default = render(json!({})).await;
    assert!(
        !kinds(&default)
            .iter()
            .any(|k| k.starts_with("PrometheusRule/") || k.ends_with("-dashboard"))
    );

    let on = render(json!({
        "prometheusRule": {"enabled": true, "labels": {"release": "kube-prometheus-stack"},
                           "runbookUrl": "https://example.com/alerts.md", "severity": "critical",
                           "additionalAlertLabels": {"team": "platform"},
                           "disabled": ["SecretSyncEventsLagging"]},
        "grafanaDashboard": {"enabled": true, "labels": {"grafana_dashboard": "yes", "team": "platform"},
                             "annotations": {"grafana_folder": "Secrets"}},
    }))
    .await;
    let rule = on
        .objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "SecretSyncRotationOverdue",
            "SecretSyncErrors",
            "SecretSyncStale",
            "SecretSyncProviderThrottled"
        ],
        "a disabled alert is left out"
    );
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert_eq!(alert["labels"]["severity"], "critical", "{name}");
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
        assert!(
            alert["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{name}"
        );
        assert_eq!(
            alert["annotations"]["runbook_url"],
            format!("https://example.com/alerts.md#{}", name.to_lowercase())
        );
        // Prometheus templates reach Prometheus unrendered by Helm.
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("{{ $"),
            "{name}"
        );
    }
    let errors = alerts
        .iter()
        .find(|a| a["alert"] == "SecretSyncErrors")
        .unwrap();
    assert_eq!(errors["for"], "10m");

    let dashboard = on
        .objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "secret-sync-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "yes");
    assert_eq!(dashboard["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Secrets"
    );
    let json: Value = serde_json::from_str(dashboard["data"]["secret-sync.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    assert_eq!(json["uid"], "secret-sync");
    let titles: Vec<&str> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Syncs per second",
        "Errors by category",
        "Provider calls",
        "Rotation latency (event to Secret)",
        "Overdue sources",
        "Oldest SQS message age",
    ] {
        assert!(titles.contains(&wanted), "{wanted} missing from {titles:?}");
    }

    let sidecar_default = render(json!({"grafanaDashboard": {"enabled": true}})).await;
    let cm = sidecar_default
        .objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "secret-sync-dashboard")
        .unwrap();
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"], "1",
        "Grafana's sidecar label by default"
    );
}
