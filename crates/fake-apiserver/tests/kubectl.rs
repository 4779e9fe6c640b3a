//! The real `/usr/bin/kubectl` (v1.32) against the fake apiserver. If kubectl is missing these
//! tests fail on purpose: every machine of this kind has it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use fake_apiserver::FakeApiServer;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";

/// A server plus a kubeconfig and discovery cache private to one test.
struct Kubectl {
    server: FakeApiServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn start() -> Self {
        assert!(
            std::path::Path::new(KUBECTL).exists(),
            "{KUBECTL} is required for kubectl tests"
        );
        let server = FakeApiServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Self { server, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"));
        cmd.arg("--cache-dir").arg(self.dir.path().join("cache"));
        cmd.args(args);
        cmd.kill_on_drop(true);
        cmd
    }

    /// `kubectl apply` of WIDGET written at `example.com/VERSION`, whatever its exit status.
    async fn apply_widget_at(&self, version: &str) -> std::process::Output {
        let text = WIDGET.replace("example.com/v1", &format!("example.com/{version}"));
        let file = self.write(&format!("w-{version}.yaml"), &text);
        let args = ["apply", "--validate=false", "-f", file.to_str().unwrap()];
        self.command(&args).output().await.unwrap()
    }

    /// Runs kubectl to completion and returns stdout, failing the test on a non-zero exit.
    async fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn widgets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.server.client(), "default", &widget_resource())
    }

    async fn install_crd(&self) {
        let crd = self.write(
            "crd.yaml",
            &serde_yaml_ng::to_string(&widget_crd()).unwrap(),
        );
        let out = self
            .run(&["apply", "--validate=false", "-f", crd.to_str().unwrap()])
            .await;
        assert_eq!(
            out.trim(),
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
        );
    }
}

const WIDGET: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  labels: {team: a}\nspec:\n  size: 3\n  color: red\n";

#[tokio::test]
async fn kubectl_apply_client_side_then_server_side_and_get_yaml() {
    within(async {
        let k = Kubectl::start().await;
        k.install_crd().await;
        let w = k.write("w.yaml", WIDGET);
        let path = w.to_str().unwrap();
        assert_eq!(
            k.run(&["apply", "--validate=false", "-f", path])
                .await
                .trim(),
            "widget.example.com/w1 created"
        );
        assert_eq!(
            k.run(&["apply", "--validate=false", "-f", path])
                .await
                .trim(),
            "widget.example.com/w1 unchanged"
        );
        k.write("w.yaml", &WIDGET.replace("size: 3", "size: 5"));
        assert_eq!(
            k.run(&["apply", "--validate=false", "-f", path])
                .await
                .trim(),
            "widget.example.com/w1 configured"
        );
        assert_eq!(k.widgets().get("w1").await.unwrap().data["spec"]["size"], 5);

        k.write("w.yaml", &WIDGET.replace("size: 3", "size: 7"));
        let out = k
            .run(&["apply", "--server-side", "--validate=false", "-f", path])
            .await;
        assert_eq!(out.trim(), "widget.example.com/w1 serverside-applied");
        let yaml = k
            .run(&["get", "widget", "w1", "-o", "yaml", "--show-managed-fields"])
            .await;
        let obj: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(obj["spec"], json!({"size": 7, "color": "red"}));
        assert_eq!(obj["metadata"]["labels"], json!({"team": "a"}));
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"kubectl"), "{managers:?}");

        // The table view uses the CRD's printer columns.
        let table = k.run(&["get", "widgets"]).await;
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            vec!["NAME", "SIZE", "READY"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            vec!["w1", "7", "<none>"]
        );
    })
    .await;
}

#[tokio::test]
async fn kubectl_server_side_apply_creates_and_reports_conflicts() {
    within(async {
        let k = Kubectl::start().await;
        k.install_crd().await;
        let w = k.write("w.yaml", WIDGET);
        let path = w.to_str().unwrap();
        k.run(&["apply", "--server-side", "--validate=false", "-f", path]).await;
        // Another manager owns spec.size with a different value: kubectl reports the conflict.
        let cfg = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 9}});
        k.widgets().patch("w1", &PatchParams::apply("other").force(), &Patch::Apply(&cfg)).await.unwrap();
        let out = k.command(&["apply", "--server-side", "--validate=false", "-f", path]).output().await.unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("conflict with \"other\"") && err.contains(".spec.size"), "{err}");
        k.run(&["apply", "--server-side", "--force-conflicts", "--validate=false", "-f", path]).await;
        assert_eq!(k.widgets().get("w1").await.unwrap().data["spec"]["size"], 3);
    })
    .await;
}

#[tokio::test]
async fn kubectl_get_watch_prints_a_change_made_by_another_client() {
    within(async {
        let k = Kubectl::start().await;
        k.install_crd().await;
        let w = k.write("w.yaml", WIDGET);
        k.run(&["apply", "--validate=false", "-f", w.to_str().unwrap()])
            .await;
        let mut child = k
            .command(&["get", "widgets", "-w"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let header = lines.next_line().await.unwrap().unwrap();
        assert!(header.starts_with("NAME"), "{header}");
        let first = lines.next_line().await.unwrap().unwrap();
        assert!(first.starts_with("w1") && first.contains('3'), "{first}");
        k.widgets()
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 42}})),
            )
            .await
            .unwrap();
        let changed = tokio::time::timeout(
            fake_apiserver::test_time::scaled(Duration::from_secs(20)),
            lines.next_line(),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(
            changed.split_whitespace().take(2).collect::<Vec<_>>(),
            vec!["w1", "42"],
            "{changed}"
        );
        child.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn kubectl_delete_removes_the_object() {
    within(async {
        let k = Kubectl::start().await;
        k.install_crd().await;
        let w = k.write("w.yaml", WIDGET);
        k.run(&["apply", "--validate=false", "-f", w.to_str().unwrap()])
            .await;
        assert_eq!(
            k.run(&["delete", "widget", "w1"]).await.trim(),
            "widget.example.com \"w1\" deleted"
        );
        assert!(k.widgets().get_opt("w1").await.unwrap().is_none());
        let out = k.command(&["get", "widget", "w1"]).output().await.unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Error from server (NotFound): widgets.example.com \"w1\" not found"),
            "{err}"
        );
        assert_eq!(
            k.run(&[
                "delete",
                "-f",
                k.dir.path().join("crd.yaml").to_str().unwrap()
            ])
            .await
            .trim(),
            "customresourcedefinition.apiextensions.k8s.io \"widgets.example.com\" deleted"
        );
    })
    .await;
}

#[tokio::test]
async fn kubectl_wait_for_condition_ready_after_another_client_patches_status() {
    within(async {
        let k = Kubectl::start().await;
        k.install_crd().await;
        let w = k.write("w.yaml", WIDGET);
        k.run(&["apply", "--validate=false", "-f", w.to_str().unwrap()]).await;
        let timeout = format!("--timeout={}s", fake_apiserver::test_time::scaled_secs(Duration::from_secs(30)));
        let waiter = k.command(&["wait", "--for=condition=Ready", "widget/w1", &timeout]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Time for kubectl to start watching; if it is slower, it finds the condition already met.
        tokio::time::sleep(fake_apiserver::test_time::scaled(Duration::from_millis(700))).await;
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
        k.widgets().patch_status("w1", &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
        let out = waiter.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), "widget.example.com/w1 condition met");
        let table = k.run(&["get", "widgets"]).await;
        assert!(table.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>() == vec!["w1", "3", "True"], "{table}");
    })
    .await;
}

#[tokio::test]
async fn kubectl_apply_of_a_built_in_deployment_uses_strategic_merge() {
    within(async {
        let k = Kubectl::start().await;
        let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      containers:\n      - {name: c, image: img:1, env: [{name: A, value: \"1\"}]}\n";
        let p = k.write("d.yaml", dep);
        k.run(&["apply", "--validate=false", "-f", p.to_str().unwrap()]).await;
        k.write("d.yaml", &dep.replace("img:1", "img:2"));
        assert_eq!(k.run(&["apply", "--validate=false", "-f", p.to_str().unwrap()]).await.trim(), "deployment.apps/d configured");
        assert!(k.server.requests().iter().any(|r| r.method == "PATCH" && r.path.ends_with("/deployments/d")));
        let image = k.run(&["get", "deploy", "d", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"]).await;
        assert_eq!(image, "img:2 2");
    })
    .await;
}

#[tokio::test]
async fn kubectl_applies_a_manifest_of_a_deprecated_version_and_reads_it_at_the_storage_version() {
    within(async {
        let k = Kubectl::start().await;
        let crd = k.write(
            "crd.yaml",
            &serde_yaml_ng::to_string(&multi_version_widget_crd()).unwrap(),
        );
        k.run(&["apply", "--validate=false", "-f", crd.to_str().unwrap()])
            .await;
        let out = k.apply_widget_at("v1beta1").await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "widget.example.com/w1 created"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "Warning: example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget"
            ),
            "{out:?}"
        );
        let yaml = k
            .run(&["get", "widgets.v1.example.com", "w1", "-o", "yaml"])
            .await;
        let obj: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(obj["apiVersion"], "example.com/v1");
        assert_eq!(obj["spec"], json!({"size": 3, "color": "red"}));

        // A manifest of a version the CRD does not serve is refused by kubectl itself.
        let out = k.apply_widget_at("v1alpha1").await;
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("no matches for kind \"Widget\" in version \"example.com/v1alpha1\""),
            "{out:?}"
        );
    })
    .await;
}
