//! The chart's alert rules and dashboard against metrics scraped from the running operator binary
//! (fake API server, moto): every expression parses and names only metrics the operator exports
//! (PyPI promql-parser), and promtool — Prometheus's own rule engine, from Debian's prometheus
//! package — evaluates the rules over three scrapes, which alerts fire for which ExternalSecret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::http::{free_port, http_get};

use fake_apiserver::FakeApiServer;
use fake_apiserver::test_time::scaled;
use serde_json::{Value, json};
use support::moto::Moto;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    std::env::var_os("SECRET_SYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/venv"))
}

fn venv_tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run ./scripts/test once (it builds the venv and unpacks promtool into it) or \
         set SECRET_SYNC_VENV to such a venv",
        path.display()
    );
    path
}

/// Run `program args` with `input` on stdin; (success, stdout, stderr).
fn run(program: &Path, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn python_json(script: &str, request: &Value) -> Value {
    let (ok, stdout, stderr) = run(
        &venv_tool("python"),
        &[repo().join("scripts").join(script).to_str().unwrap()],
        &request.to_string(),
    );
    assert!(ok, "{script} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// The chart rendered with both toggles: (the PrometheusRule, the dashboard JSON).
fn rendered_monitoring() -> (Value, Value) {
    let answer = python_json(
        "helm_render.py",
        &json!({
            "op": "render",
            "chart": repo().join("charts/secret-sync"),
            "values": {"prometheusRule": {"enabled": true}, "grafanaDashboard": {"enabled": true}},
            "name": "secret-sync",
            "namespace": "secret-sync",
        }),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    let objects = answer["objects"].as_array().unwrap();
    let rule = objects
        .iter()
        .map(|o| &o["object"])
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule")
        .clone();
    let config_map = objects
        .iter()
        .map(|o| &o["object"])
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a ConfigMap with Grafana's sidecar label");
    let dashboard =
        serde_json::from_str(config_map["data"]["secret-sync.json"].as_str().unwrap()).unwrap();
    (rule, dashboard)
}

fn alert_rules(rule: &Value) -> Vec<Value> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The metric names each expression selects, through PyPI promql-parser; panics on a parse error.
fn referenced_names(expressions: &[String]) -> Vec<BTreeSet<String>> {
    let answer = python_json("promql_names.py", &json!(expressions));
    assert_eq!(
        answer["ok"],
        true,
        "{answer}: {:?}",
        answer["index"].as_u64().map(|i| &expressions[i as usize])
    );
    answer["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|names| {
            names
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// Every sample name the exposition declares: its samples, and for each `# TYPE` the names that type
/// exposes (a family with no series yet is still exported, and rules may rely on it).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            names.extend(line.split(['{', ' ']).next().map(str::to_owned));
        }
    }
    names
}

/// For each expression, the names it uses that the operator does not export.
fn unexported(expressions: &[String], exported: &BTreeSet<String>) -> Vec<(String, String)> {
    expressions
        .iter()
        .zip(referenced_names(expressions))
        .flat_map(|(expr, names)| {
            names
                .into_iter()
                .filter(|n| !exported.contains(n))
                .map(move |n| (n, expr.clone()))
        })
        .collect()
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl is installed on every machine of this kind");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_for_scrape(admin: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let timeout = scaled(Duration::from_secs(40));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((200, body)) = http_get(admin, "/metrics")
            && check(&body)
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} on /metrics within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One parsed sample: labels (without the name) and value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn samples(exposition: &str) -> Samples {
    let mut out = Samples::new();
    for line in exposition.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.insert((name.to_owned(), labels), value.parse().unwrap());
    }
    out
}

fn selector(name: &str, labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

const MINUTES: usize = 30;

/// promtool input series from scrapes placed at the given minutes (each holds until the next).
/// Timestamps are rebased onto promtool's clock (which starts at 0), so that `time()` at minute M
/// reads as M minus the scrape's minute after that scrape.
fn input_series(scrapes: &[(&Samples, SystemTime, usize)]) -> Vec<Value> {
    let keys: BTreeSet<_> = scrapes.iter().flat_map(|s| s.0.keys()).cloned().collect();
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    keys.into_iter()
        .map(|key| {
            let (name, labels) = &key;
            let timestamp = name.ends_with("_timestamp_seconds");
            let values: Vec<String> = (0..=MINUTES)
                .map(|minute| {
                    let (samples, at, from) = scrapes
                        .iter()
                        .rev()
                        .find(|s| s.2 <= minute)
                        .expect("a scrape at minute 0");
                    samples.get(&key).map_or("_".to_owned(), |v| {
                        if timestamp {
                            format!("{}", v - unix(*at) + (from * 60) as f64)
                        } else {
                            format!("{v}")
                        }
                    })
                })
                .collect();
            json!({"series": selector(name, labels), "values": values.join(" ")})
        })
        .collect()
}

fn expected(alerts: &[BTreeMap<&str, &str>]) -> Vec<Value> {
    alerts
        .iter()
        .map(|labels| json!({"exp_labels": labels}))
        .collect()
}

fn es_labels<'a>(name: &'a str, extra: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    let mut labels: BTreeMap<&str, &str> = [
        ("namespace", "default"),
        ("name", name),
        ("severity", "warning"),
    ]
    .into();
    labels.extend(extra.iter().copied());
    labels
}

/// `promtool test rules` over `tests` with the chart's rules (annotations dropped: they hold
/// Prometheus templates whose text is not under test here); (passed, output).
fn promtool(rule: &Value, tests: Vec<Value>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut groups = rule["spec"]["groups"].clone();
    for group in groups.as_array_mut().unwrap() {
        for r in group["rules"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("annotations");
        }
    }
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(
        &rules_file,
        serde_json::to_string(&json!({"groups": groups})).unwrap(),
    )
    .unwrap();
    let (ok, out, err) = run(
        &venv_tool("promtool"),
        &["check", "rules", rules_file.to_str().unwrap()],
        "",
    );
    assert!(ok, "promtool check rules:\n{out}{err}");
    let test_file = dir.path().join("test.yaml");
    let spec = json!({"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests});
    std::fs::write(&test_file, serde_json::to_string(&spec).unwrap()).unwrap();
    let (ok, out, err) = run(
        &venv_tool("promtool"),
        &["test", "rules", test_file.to_str().unwrap()],
        "",
    );
    (ok, format!("{out}{err}"))
}

const STORE_AND_SECRETS: &str = r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: aws, namespace: default}
spec:
  provider:
    aws: {service: SecretsManager, region: us-east-1}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: fresh
  namespace: default
  annotations: {secret-sync.io/max-age: 3650d}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: aws, kind: SecretStore}
  target: {name: fresh}
  data: [{secretKey: v, remoteRef: {key: app/fresh}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: overdue
  namespace: default
  annotations: {secret-sync.io/max-age: 1s}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: aws, kind: SecretStore}
  target: {name: overdue}
  data: [{secretKey: v, remoteRef: {key: app/old}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: stale, namespace: default}
spec:
  refreshInterval: 2s
  secretStoreRef: {name: aws, kind: SecretStore}
  target: {name: stale}
  data: [{secretKey: v, remoteRef: {key: app/stale}}]
"#;

const THROTTLED: &str = r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: throttled, namespace: default}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: aws, kind: SecretStore}
  target: {name: throttled}
  data: [{secretKey: v, remoteRef: {key: app/throttled}}]
"#;

fn throttled_count(exposition: &str, name: &str) -> f64 {
    let series = format!(
        r#"externalsecret_sync_calls_error{{namespace="default",name="{name}",category="Throttled"}} "#
    );
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn ready_is(exposition: &str, name: &str, status: &str) -> bool {
    exposition.contains(&format!(
        r#"externalsecret_status_condition{{namespace="default",name="{name}",condition="Ready",status="{status}"}} 1"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alert_rules_fire_on_a_running_operators_metrics() {
    support::moto::within_timeout(async {
        let (rule, dashboard) = rendered_monitoring();
        let server = FakeApiServer::start().await.unwrap();
        let moto = Moto::start().await;
        for key in ["app/fresh", "app/old", "app/stale", "app/throttled"] {
            moto.put_secret_string(key, "value").await;
        }
        // app/old was rotated (moto without a rotation Lambda just promotes a copy): its
        // LastRotatedDate is used; app/fresh was never rotated, so its LastChangedDate is.
        moto.secrets_manager()
            .await
            .rotate_secret()
            .secret_id("app/old")
            .rotate_immediately(false)
            .send()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let crds = repo().join("crds/external-secrets.io.yaml");
        kubectl(
            &kubeconfig,
            &["apply", "--validate=false", "-f", crds.to_str().unwrap()],
        )
        .await;
        let manifests = dir.path().join("objects.yaml");
        std::fs::write(&manifests, STORE_AND_SECRETS).unwrap();
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--validate=false",
                "-f",
                manifests.to_str().unwrap(),
            ],
        )
        .await;

        let admin = format!("127.0.0.1:{}", free_port());
        // A queue that does not exist: the consumer fails every receive, as with a wrong URL or a
        // missing sqs:ReceiveMessage grant.
        let queue = format!("{}/123456789012/no-such-queue", moto.url);
        let _operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_secret-sync"))
            .args([
                "run",
                "--admin-addr",
                &admin,
                "--events-sqs-queue-url",
                &queue,
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();

        let scrape_a = wait_for_scrape(
            &admin,
            "three Ready ExternalSecrets and rotation dates",
            |m| {
                ["fresh", "overdue", "stale"]
                    .iter()
                    .all(|n| ready_is(m, n, "True"))
                    && m.contains("secret_sync_source_last_rotated_timestamp_seconds{")
                    && m.contains("secret_sync_source_last_changed_timestamp_seconds{")
                    && m.contains(r#"outcome="receive_failed""#)
            },
        )
        .await;
        let at_a = SystemTime::now();

        // From now on the provider throttles every read: `stale` fails its next refreshes, and a new
        // ExternalSecret never syncs.
        for action in ["BatchGetSecretValue", "GetSecretValue"] {
            moto.inject_fault(action, 100_000, 400, "ThrottlingException")
                .await;
        }
        std::fs::write(&manifests, THROTTLED).unwrap();
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--validate=false",
                "-f",
                manifests.to_str().unwrap(),
            ],
        )
        .await;
        let scrape_b = wait_for_scrape(&admin, "throttled syncs of stale and throttled", |m| {
            ["stale", "throttled"]
                .iter()
                .all(|n| ready_is(m, n, "False") && throttled_count(m, n) > 0.0)
        })
        .await;
        let at_b = SystemTime::now();
        // A third scrape once both have failed again, so the counters grow between scrapes as they
        // do in a real scrape series (increase() ignores a counter's first sample).
        let scrape_c = wait_for_scrape(&admin, "more throttled syncs", |m| {
            ["stale", "throttled"]
                .iter()
                .all(|n| throttled_count(m, n) > throttled_count(&scrape_b, n))
        })
        .await;
        let at_c = SystemTime::now();

        // 1. Every expression parses and selects only metrics this operator exports.
        let exported = exported_names(&scrape_c);
        let rules = alert_rules(&rule);
        let names: BTreeSet<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "SecretSyncErrors",
                "SecretSyncEventsLagging",
                "SecretSyncProviderThrottled",
                "SecretSyncRotationOverdue",
                "SecretSyncStale"
            ]
            .into()
        );
        for r in &rules {
            assert!(
                r["annotations"]["runbook"]
                    .as_str()
                    .is_some_and(|t| t.len() > 20),
                "{} has a runbook line",
                r["alert"]
            );
        }
        let mut expressions: Vec<String> = rules
            .iter()
            .map(|r| r["expr"].as_str().unwrap().to_owned())
            .collect();
        expressions.extend(dashboard_expressions(&dashboard));
        assert_eq!(unexported(&expressions, &exported), [], "\n{scrape_c}");
        // The check can fail: a rule on a metric the operator does not export is caught.
        let invented = vec!["secret_sync_sqs_queue_depth > 100".to_owned()];
        assert_eq!(unexported(&invented, &exported).len(), 1);

        // 2. promtool evaluates the rules over the scrapes, placed at minutes 0, 5 and 10.
        let (a, b, c) = (samples(&scrape_a), samples(&scrape_b), samples(&scrape_c));
        let series = input_series(&[(&a, at_a, 0), (&b, at_b, 5), (&c, at_c, 10)]);
        let throttled = |name| es_labels(name, &[("category", "Throttled")]);
        let not_ready = |name| es_labels(name, &[("condition", "Ready"), ("status", "False")]);
        let scrape_test = json!({
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                // Both error counters appear at minute 5 and grow at minute 10: pending from 10,
                // firing 5 minutes later.
                {"eval_time": "12m", "alertname": "SecretSyncProviderThrottled", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "SecretSyncProviderThrottled",
                 "exp_alerts": expected(&[throttled("stale"), throttled("throttled")])},
                // Not Ready from minute 5: still pending at 12, firing after 10 minutes.
                {"eval_time": "12m", "alertname": "SecretSyncErrors", "exp_alerts": []},
                {"eval_time": "25m", "alertname": "SecretSyncErrors",
                 "exp_alerts": expected(&[not_ready("stale"), not_ready("throttled")])},
                // `stale` refreshes every 2 s and last succeeded before the faults; `fresh` (1h) is
                // not due, and `throttled` never synced (SecretSyncErrors covers it).
                {"eval_time": "25m", "alertname": "SecretSyncStale",
                 "exp_alerts": expected(&[es_labels("stale", &[])])},
                // max-age 1s: app/old is overdue; app/fresh (3650d) is not.
                {"eval_time": "25m", "alertname": "SecretSyncRotationOverdue",
                 "exp_alerts": expected(&[es_labels("overdue", &[("key", "app/old")])])},
                // The consumer never received: more than 5 minutes after the last scrape, pending,
                // then firing 5 minutes later.
                {"eval_time": "12m", "alertname": "SecretSyncEventsLagging", "exp_alerts": []},
                {"eval_time": "25m", "alertname": "SecretSyncEventsLagging",
                 "exp_alerts": expected(&[[("severity", "warning")].into()])},
            ],
        });
        // The lag thresholds both ways, on hand-made series: a healthy consumer (received every
        // minute, nothing old) raises nothing; an old message does.
        let lag_test = json!({
            "interval": "1m",
            "input_series": [
                {"series": "secret_sync_sqs_last_receive_timestamp_seconds", "values": "0+60x30"},
                {"series": "secret_sync_sqs_oldest_message_age_seconds", "values": "0x10 400x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "SecretSyncEventsLagging", "exp_alerts": []},
                {"eval_time": "14m", "alertname": "SecretSyncEventsLagging", "exp_alerts": []},
                {"eval_time": "16m", "alertname": "SecretSyncEventsLagging",
                 "exp_alerts": expected(&[[("severity", "warning")].into()])},
            ],
        });
        let (ok, output) = promtool(&rule, vec![scrape_test.clone(), lag_test]);
        assert!(
            ok,
            "promtool test rules:\n{output}\nlast scrape:\n{scrape_c}"
        );

        // The evaluation can fail: the same scrapes with no overdue source fail the overdue case.
        let mut broken = scrape_test;
        broken["input_series"].as_array_mut().unwrap().retain(|s| {
            !s["series"]
                .as_str()
                .unwrap()
                .starts_with("secret_sync_externalsecret_max_age")
        });
        let (ok, output) = promtool(&rule, vec![broken]);
        assert!(
            !ok && output.contains("SecretSyncRotationOverdue"),
            "{output}"
        );
    })
    .await;
}
