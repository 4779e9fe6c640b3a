//! The shipped binary, driven as a user drives it: `secret-sync run` against an API server, the real
//! kubectl applying CRDs and the quickstart, Prometheus-style scraping, and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use fake_apiserver::test_time::{scaled, scaled_secs};

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is installed on every machine of this kind");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A plain HTTP/1.1 GET: (status code, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(scaled(Duration::from_secs(5))))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Wait up to 15 s (scaled) for a process to exit after SIGTERM.
fn wait_exit(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let limit = scaled(Duration::from_secs(15));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` until it holds; `timeout` is a quiet-machine bound, scaled here.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_quickstart_against_the_real_binary() {
    secret_sync::install_crypto_provider();
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let root = env!("CARGO_MANIFEST_DIR");

    let test = {
        let kubeconfig = kubeconfig.clone();
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut operator = Command::new(env!("CARGO_BIN_EXE_secret-sync"))
                .args(["run", "--admin-addr", &admin, "--log-format", "json"])
                .env("KUBECONFIG", &kubeconfig)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();

            // Before the CRDs exist the watches cannot start: alive, but not ready.
            wait_until("/livez to answer 200", Duration::from_secs(20), || {
                http_get(&admin, "/livez").is_some_and(|(s, _)| s == 200)
            });
            let (status, _) = http_get(&admin, "/readyz").unwrap();
            assert_eq!(status, 503, "not ready before the watches have listed");

            kubectl(
                &kubeconfig,
                &[
                    "apply",
                    "--validate=false",
                    "-f",
                    &format!("{root}/crds/external-secrets.io.yaml"),
                ],
            );
            wait_until(
                "/readyz to turn 200 once watches start",
                Duration::from_secs(30),
                || http_get(&admin, "/readyz").is_some_and(|(s, _)| s == 200),
            );

            kubectl(
                &kubeconfig,
                &[
                    "apply",
                    "--validate=false",
                    "-f",
                    &format!("{root}/examples/quickstart.yaml"),
                ],
            );
            kubectl(
                &kubeconfig,
                &[
                    "wait",
                    "--for=condition=Ready",
                    "externalsecret/demo-app",
                    &format!("--timeout={}s", scaled_secs(Duration::from_secs(30))),
                ],
            );
            let token = kubectl(
                &kubeconfig,
                &[
                    "get",
                    "secret",
                    "demo-app-credentials",
                    "-o",
                    "jsonpath={.data.API_TOKEN}",
                ],
            );
            assert_eq!(
                token.trim(),
                "dG9rLTEyMzQ=",
                "API_TOKEN holds base64(tok-1234)"
            );
            let table = kubectl(&kubeconfig, &["get", "es"]);
            assert!(
                table.contains("STORETYPE") && table.contains("REFRESH INTERVAL"),
                "printer columns: {table}"
            );
            assert!(
                table.contains("SecretSynced") && table.contains("True"),
                "{table}"
            );

            // One ExternalSecret that cannot sync, so the error counter has a sample too.
            let broken = kubeconfig.with_file_name("broken.yaml");
            std::fs::write(
                &broken,
                "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: broken, namespace: default}\nspec:\n  secretStoreRef: {name: demo-store}\n  data:\n  - {secretKey: x, remoteRef: {key: /does/not/exist}}\n",
            )
            .unwrap();
            kubectl(
                &kubeconfig,
                &["apply", "--validate=false", "-f", broken.to_str().unwrap()],
            );
            wait_until("the failure to be counted", Duration::from_secs(20), || {
                http_get(&admin, "/metrics")
                    .is_some_and(|(_, m)| m.contains("externalsecret_sync_calls_error{"))
            });

            let (status, metrics) = http_get(&admin, "/metrics").unwrap();
            assert_eq!(status, 200);
            let names: Vec<&str> = metrics
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| l.split(['{', ' ']).next())
                .collect();
            for expected in [
                "externalsecret_sync_calls_total",
                "externalsecret_sync_calls_error",
                "externalsecret_status_condition",
                "externalsecret_reconcile_duration",
                "externalsecret_provider_api_calls_count",
            ] {
                assert!(
                    names.contains(&expected),
                    "{expected} missing from /metrics:\n{metrics}"
                );
            }
            assert!(
                metrics.contains(r#"externalsecret_status_condition{namespace="default",name="demo-app",condition="Ready",status="True"} 1"#),
                "{metrics}"
            );

            // SIGTERM: graceful stop, exit code 0.
            let pid = operator.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let status = wait_exit(&mut operator, "operator");
            let mut logs = String::new();
            operator
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut logs)
                .unwrap();
            assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
            assert!(logs.contains("shutdown requested"), "{logs}");
            assert!(
                logs.lines()
                    .all(|l| l.trim().is_empty() || l.starts_with('{')),
                "--log-format json prints JSON lines:\n{logs}"
            );
        })
    };
    tokio::time::timeout(scaled(Duration::from_secs(120)), test)
        .await
        .expect("within time limit")
        .unwrap();
}

fn spawn_operator(kubeconfig: &Path, admin: &str, identity: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_secret-sync"))
        .args([
            "run",
            "--admin-addr",
            admin,
            "--leader-elect",
            "--lease-namespace",
            "default",
            "--lease-duration-seconds",
            "3",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", identity)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reconciles counted by one replica's /metrics.
fn sync_calls(admin: &str) -> u64 {
    let (_, metrics) = http_get(admin, "/metrics").unwrap_or_default();
    metrics
        .lines()
        .filter(|l| l.starts_with("externalsecret_sync_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_leader_election_only_the_leader_writes_and_the_other_takes_over() {
    secret_sync::install_crypto_provider();
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let test = tokio::task::spawn_blocking(move || {
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--validate=false",
                "-f",
                &format!("{root}/crds/external-secrets.io.yaml"),
            ],
        );
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--validate=false",
                "-f",
                &format!("{root}/examples/quickstart.yaml"),
            ],
        );
        let (admin_a, admin_b) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let mut a = spawn_operator(&kubeconfig, &admin_a, "replica-a");
        kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for=condition=Ready",
                "externalsecret/demo-app",
                &format!("--timeout={}s", scaled_secs(Duration::from_secs(30))),
            ],
        );
        let holder = kubectl(
            &kubeconfig,
            &[
                "get",
                "lease",
                "secret-sync-leader",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        assert_eq!(holder, "replica-a");

        let mut b = spawn_operator(&kubeconfig, &admin_b, "replica-b");
        wait_until(
            "replica b to serve /readyz",
            Duration::from_secs(20),
            || http_get(&admin_b, "/readyz").is_some(),
        );
        // A change while both run: only the leader reconciles it.
        kubectl(
            &kubeconfig,
            &[
                "annotate",
                "externalsecret/demo-app",
                "force-sync=1",
                "--overwrite",
            ],
        );
        wait_until(
            "the leader to reconcile the change",
            Duration::from_secs(10),
            || {
                let status = kubectl(
                    &kubeconfig,
                    &[
                        "get",
                        "es",
                        "demo-app",
                        "-o",
                        "jsonpath={.status.syncedResourceVersion}",
                    ],
                );
                !status.is_empty() && sync_calls(&admin_a) >= 2
            },
        );
        // A negative (the standby stays idle): a fixed window, not scaled.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(sync_calls(&admin_b), 0, "the standby must not reconcile");
        let (_, readyz) = http_get(&admin_b, "/readyz").unwrap();
        assert!(readyz.contains("leader: false"), "{readyz}");

        // The leader dies without releasing the Lease; the standby takes over within the lease duration.
        a.kill().unwrap();
        a.wait().unwrap();
        let died = Instant::now();
        kubectl(&kubeconfig, &["delete", "secret", "demo-app-credentials"]);
        wait_until(
            "replica b to take over and recreate the Secret",
            Duration::from_secs(20),
            || {
                Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "secret", "demo-app-credentials"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
        // 3s lease, plus the standby's retry and kubectl's own start-up: 8 s on a quiet machine.
        let takeover = died.elapsed();
        assert!(
            takeover < scaled(Duration::from_secs(8)),
            "takeover took {takeover:?} with a 3s lease"
        );
        let holder = kubectl(
            &kubeconfig,
            &[
                "get",
                "lease",
                "secret-sync-leader",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        assert_eq!(holder, "replica-b");
        assert!(sync_calls(&admin_b) >= 1);

        assert!(
            Command::new("kill")
                .args(["-TERM", &b.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = wait_exit(&mut b, "replica b");
        assert!(status.success(), "{status:?}");
        // A graceful stop releases the Lease for the next replica.
        let holder = kubectl(
            &kubeconfig,
            &[
                "get",
                "lease",
                "secret-sync-leader",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        assert!(
            holder.is_empty(),
            "Lease released on SIGTERM, holder is {holder:?}"
        );
    });
    tokio::time::timeout(scaled(Duration::from_secs(120)), test)
        .await
        .expect("within time limit")
        .unwrap();
}
