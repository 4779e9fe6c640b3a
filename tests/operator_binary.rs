//! The shipped binary, driven as a user drives it: `secret-sync run` against an API server, the real
//! kubectl applying CRDs and the quickstart, Prometheus-style scraping, and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use fake_apiserver::test_time::{scaled, scaled_secs};
use support::http::{free_port, http_get};

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

/// Wait up to 15 s (scaled) for a process to exit after SIGTERM.
/// A fake API server and a kubeconfig for it (in a temporary directory kept alive by the caller).
async fn fake_server() -> (FakeApiServer, tempfile::TempDir, std::path::PathBuf) {
    secret_sync::install_crypto_provider();
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    (server, dir, kubeconfig)
}

/// The committed CRDs, applied with kubectl as a user would.
fn apply_crds(kubeconfig: &Path) {
    let crds = format!(
        "{}/crds/external-secrets.io.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    kubectl(kubeconfig, &["apply", "--validate=false", "-f", &crds]);
}

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
    let (_server, _dir, kubeconfig) = fake_server().await;
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

            apply_crds(&kubeconfig);
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
    let (_server, _dir, kubeconfig) = fake_server().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let test = tokio::task::spawn_blocking(move || {
        apply_crds(&kubeconfig);
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

/// A running `secret-sync run` whose stderr is collected as it is written.
struct Operator {
    child: std::process::Child,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Operator {
    fn spawn(kubeconfig: &Path, args: &[&str], envs: &[(&str, &str)]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_secret-sync"))
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Operator { child, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        wait_until(&format!("the log line {needle:?}"), timeout, || {
            self.logs().contains(needle)
        });
    }

    /// Waits for the process to exit on its own: (status, time taken).
    fn wait_exit_within(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain what was written last.
                std::thread::sleep(Duration::from_millis(100));
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running {limit:?} later; logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status and how long the process took to exit.
    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.wait_exit_within(GRACE)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The longest a stop may take: the kubelet's grace period is longer, ours is 10 s.
const GRACE: Duration = Duration::from_secs(10);

fn write_kubeconfig(path: &Path, server: &str, ca_pem: Option<&str>) {
    use base64::Engine as _;
    let ca = ca_pem
        .map(|pem| {
            format!(
                ", certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"{ca}}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
}

/// A TLS server whose certificate is signed by nobody the kubeconfig trusts: it completes no
/// handshake. Returns its port and the PEM of an unrelated CA (the "wrong" CA for the kubeconfig).
fn untrusted_tls_server() -> (u16, String) {
    let served = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    // A CA with another name: the served certificate's issuer is not found at all (UnknownIssuer).
    let wrong_ca = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "some other cluster's CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
    };
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(served.signing_key.serialize_der().into());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![served.cert.der().clone()], key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let (Ok(mut tcp), config) = (tcp, config.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                if let Ok(mut conn) = rustls::ServerConnection::new(config) {
                    // The client refuses the certificate and closes; that ends the handshake.
                    while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
                }
            });
        }
    });
    (port, wrong_ca.pem())
}

/// Lines that report the API server unreachable.
fn reach_warnings(logs: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains("cannot reach the Kubernetes API"))
        .count()
}

#[test]
fn sigterm_stops_the_operator_promptly_while_the_api_server_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (tls_port, wrong_ca) = untrusted_tls_server();
    let closed = format!("https://127.0.0.1:{}", free_port());
    let refused_cert = format!("https://127.0.0.1:{tls_port}");
    for (server, ca, cause) in [
        (closed.as_str(), None, "Connection refused"),
        (
            refused_cert.as_str(),
            Some(wrong_ca.as_str()),
            "invalid peer certificate: UnknownIssuer",
        ),
    ] {
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, server, ca);
        let admin = format!("127.0.0.1:{}", free_port());
        // --startup-timeout-seconds 0: keep retrying, as a long outage would.
        let mut operator = Operator::spawn(
            &kubeconfig,
            &["--admin-addr", &admin, "--startup-timeout-seconds", "0"],
            &[],
        );
        wait_until("/readyz to name the cause", Duration::from_secs(10), || {
            http_get(&admin, "/readyz").is_some_and(|(status, body)| {
                status == 503
                    && body.contains(&format!("cannot reach the Kubernetes API at {server}"))
                    && body.contains(cause)
            })
        });
        // Retries continue underneath (about every 5 s), but the cause is logged once, not per retry.
        std::thread::sleep(Duration::from_secs(3));
        let (status, took) = operator.terminate();
        let logs = operator.logs();
        eprintln!("{server}: exited {took:?} after SIGTERM");
        assert!(status.success(), "{status:?}\n{logs}");
        assert!(logs.contains(cause), "{logs}");
        assert_eq!(reach_warnings(&logs), 1, "logged once:\n{logs}");
        assert!(!logs.contains(" ERROR "), "no error spam:\n{logs}");
    }
}

#[test]
fn an_unreachable_api_server_fails_the_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (tls_port, wrong_ca) = untrusted_tls_server();
    let server = format!("https://127.0.0.1:{tls_port}");
    write_kubeconfig(&kubeconfig, &server, Some(&wrong_ca));
    let admin = format!("127.0.0.1:{}", free_port());

    // --fail-fast: the first failure ends the process.
    let mut operator = Operator::spawn(&kubeconfig, &["--admin-addr", &admin, "--fail-fast"], &[]);
    let (status, took) = operator.wait_exit_within(Duration::from_secs(5));
    let logs = operator.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    let expected = format!(
        "error: cannot reach the Kubernetes API at {server}: invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(logs.lines().last(), Some(expected.as_str()), "{logs}");
    eprintln!("--fail-fast exited after {took:?}");

    // Without it, start-up retries until the start-up timeout (60 s unless set).
    let closed = format!("https://127.0.0.1:{}", free_port());
    write_kubeconfig(&kubeconfig, &closed, None);
    let mut operator = Operator::spawn(
        &kubeconfig,
        &["--admin-addr", &admin, "--startup-timeout-seconds", "2"],
        &[],
    );
    let (status, took) = operator.wait_exit_within(Duration::from_secs(8));
    let logs = operator.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        took >= Duration::from_millis(1500),
        "gave up early, after {took:?}"
    );
    let last = logs.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: cannot reach the Kubernetes API at {closed}: "
        )) && last.contains("Connection refused"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_operator_promptly_before_its_caches_have_listed() {
    // No CRDs: the API server answers, but the ExternalSecret watch can never list, so the
    // controller's cache never becomes ready.
    let (_server, _dir, kubeconfig) = fake_server().await;
    let admin = format!("127.0.0.1:{}", free_port());
    let test = tokio::task::spawn_blocking(move || {
        let mut operator = Operator::spawn(&kubeconfig, &["--admin-addr", &admin], &[]);
        wait_until("/readyz to answer", Duration::from_secs(10), || {
            http_get(&admin, "/readyz")
                .is_some_and(|(s, body)| s == 503 && body.contains("watches not ready"))
        });
        std::thread::sleep(Duration::from_secs(1));
        let (status, took) = operator.terminate();
        eprintln!("exited {took:?} after SIGTERM");
        assert!(status.success(), "{status:?}\n{}", operator.logs());
        assert!(
            operator.logs().contains("controller stopped"),
            "{}",
            operator.logs()
        );
    });
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("within time limit")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_standby_promptly_while_another_replica_holds_the_lease() {
    let (_server, _dir, kubeconfig) = fake_server().await;
    let admin = format!("127.0.0.1:{}", free_port());
    let test = tokio::task::spawn_blocking(move || {
        let lease = kubeconfig.with_file_name("lease.yaml");
        std::fs::write(
            &lease,
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: secret-sync-leader, namespace: default}\n\
             spec: {holderIdentity: other-replica, leaseDurationSeconds: 3600}\n",
        )
        .unwrap();
        kubectl(
            &kubeconfig,
            &["apply", "--validate=false", "-f", lease.to_str().unwrap()],
        );
        let mut operator = Operator::spawn(
            &kubeconfig,
            &[
                "--admin-addr",
                &admin,
                "--leader-elect",
                "--lease-namespace",
                "default",
            ],
            &[("POD_NAME", "replica-b")],
        );
        operator.wait_for_log("another replica leads; waiting", Duration::from_secs(10));
        let (status, took) = operator.terminate();
        eprintln!("exited {took:?} after SIGTERM");
        assert!(status.success(), "{status:?}\n{}", operator.logs());
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
        assert_eq!(holder, "other-replica", "a standby never touches the Lease");
    });
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("within time limit")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_operator_promptly_while_the_sqs_consumer_is_blocked() {
    let (_server, _dir, kubeconfig) = fake_server().await;
    let test = tokio::task::spawn_blocking(move || {
        apply_crds(&kubeconfig);
        // An endpoint that accepts connections and never answers (a long poll that never ends).
        let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hanging_port = hanging.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let accepted = accepted.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for conn in hanging.incoming().flatten() {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    held.push(conn);
                }
            });
        }
        let closed_port = free_port();
        for (endpoint, blocked) in [
            (format!("http://127.0.0.1:{hanging_port}"), "hanging"),
            (format!("http://127.0.0.1:{closed_port}"), "unreachable"),
        ] {
            let admin = format!("127.0.0.1:{}", free_port());
            let queue = format!("{endpoint}/123456789012/events");
            let mut operator = Operator::spawn(
                &kubeconfig,
                &["--admin-addr", &admin, "--events-sqs-queue-url", &queue],
                &[
                    ("AWS_ENDPOINT_URL", endpoint.as_str()),
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_ACCESS_KEY_ID", "test"),
                    ("AWS_SECRET_ACCESS_KEY", "test"),
                    ("AWS_EC2_METADATA_DISABLED", "true"),
                ],
            );
            wait_until("/readyz 200", Duration::from_secs(20), || {
                http_get(&admin, "/readyz").is_some_and(|(s, _)| s == 200)
            });
            if blocked == "hanging" {
                wait_until("a receive to be under way", Duration::from_secs(10), || {
                    accepted.load(std::sync::atomic::Ordering::SeqCst) > 0
                });
            } else {
                operator.wait_for_log("failed to receive from SQS", Duration::from_secs(20));
            }
            let (status, took) = operator.terminate();
            eprintln!("SQS endpoint {blocked}: exited {took:?} after SIGTERM");
            assert!(status.success(), "{status:?}\n{}", operator.logs());
        }
    });
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("within time limit")
        .unwrap();
}
