//! Leader election (`secret_sync::leader`) against the fake API server: with two replicas only one
//! works at a time, the other takes over when the leader goes away, and a leader that can no longer
//! trust its Lease stops working before anyone else may start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use fake_apiserver::test_time::scaled;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use secret_sync::leader::{LeaderConfig, LeaderError, run_as_leader};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NAMESPACE: &str = "secret-sync";
const LEASE: &str = "secret-sync-leader";
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// Scheduling slack for assertions on timing: the only machine-dependent part of a bound, so the
/// only part scaled by `SECRET_SYNC_TEST_TIME_FACTOR`. Bounds that are the safety property itself
/// (a leader stops before its lease could be taken) are never stretched.
fn slack() -> Duration {
    scaled(Duration::from_millis(500))
}

fn config(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_name: LEASE.to_owned(),
        lease_namespace: NAMESPACE.to_owned(),
        identity: identity.to_owned(),
        lease_duration: LEASE_DURATION,
        renew_every: RENEW_EVERY,
    }
}

async fn start_server() -> FakeApiServer {
    secret_sync::install_crypto_provider();
    let server = FakeApiServer::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    server
}

async fn within<F: std::future::Future<Output = ()>>(limit: Duration, test: F) {
    let limit = scaled(limit);
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
}

/// (replica, "started" or "stopped", when)
type Event = (String, &'static str, Instant);

/// Records which replica is working, so that overlaps are caught whenever they happen.
#[derive(Clone, Default)]
struct Probe {
    active: Arc<AtomicUsize>,
    most_active_at_once: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Event>>>,
}

/// Lives as long as a replica's work: dropping the work drops it.
struct Working {
    probe: Probe,
    who: String,
}

impl Drop for Working {
    fn drop(&mut self) {
        self.probe.active.fetch_sub(1, Ordering::SeqCst);
        self.probe.record(&self.who, "stopped");
    }
}

impl Probe {
    fn record(&self, who: &str, what: &'static str) {
        self.log
            .lock()
            .unwrap()
            .push((who.to_owned(), what, Instant::now()));
    }

    fn enter(&self, who: &str) -> Working {
        let now_active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_active_at_once
            .fetch_max(now_active, Ordering::SeqCst);
        self.record(who, "started");
        Working {
            probe: self.clone(),
            who: who.to_owned(),
        }
    }

    /// Work that runs until it is dropped.
    fn forever(
        &self,
        who: &str,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + use<> {
        let probe = self.clone();
        let who = who.to_owned();
        move || {
            Box::pin(async move {
                let _working = probe.enter(&who);
                std::future::pending::<()>().await;
            })
        }
    }

    fn when(&self, who: &str, what: &str) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(w, event, _)| w == who && *event == what)
            .map(|(_, _, at)| *at)
    }

    fn started(&self, who: &str) -> bool {
        self.when(who, "started").is_some()
    }

    fn assert_never_overlapped(&self) {
        assert_eq!(
            self.most_active_at_once.load(Ordering::SeqCst),
            1,
            "two replicas worked at the same time: {:?}",
            self.log.lock().unwrap()
        );
    }
}

struct Replica {
    leader: Arc<AtomicBool>,
    task: JoinHandle<Result<(), LeaderError>>,
}

fn spawn_replica(server: &FakeApiServer, probe: &Probe, who: &str) -> Replica {
    let leader = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run_as_leader(
        server.client(),
        config(who),
        leader.clone(),
        std::future::pending(),
        probe.forever(who),
    ));
    Replica { leader, task }
}

async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Instant {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

async fn lease(server: &FakeApiServer) -> LeaseSpec {
    let leases: Api<Lease> = Api::namespaced(server.client(), NAMESPACE);
    leases.get(LEASE).await.unwrap().spec.unwrap_or_default()
}

#[tokio::test]
async fn two_replicas_only_one_works_and_the_other_takes_over_when_it_dies() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let probe = Probe::default();
        let a = spawn_replica(&server, &probe, "pod-a");
        wait_for("pod-a leading", scaled(Duration::from_secs(5)), || {
            probe.started("pod-a")
        })
        .await;
        let b = spawn_replica(&server, &probe, "pod-b");

        // Several lease durations with both running: pod-a keeps renewing, pod-b keeps waiting.
        // A negative over a window defined by the lease, not scaled.
        tokio::time::sleep(LEASE_DURATION * 2).await;
        assert!(
            a.leader.load(Ordering::SeqCst),
            "pod-a reports leadership for /readyz"
        );
        assert!(
            !b.leader.load(Ordering::SeqCst),
            "pod-b must not report leadership"
        );
        assert!(
            !probe.started("pod-b"),
            "pod-b worked while pod-a held a live lease"
        );
        let spec = lease(&server).await;
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(spec.lease_duration_seconds, Some(2));

        // pod-a dies without releasing anything (a crash, a lost node).
        a.task.abort();
        let died = Instant::now();
        let took_over = wait_for(
            "pod-b taking over",
            LEASE_DURATION + RENEW_EVERY * 2 + slack(),
            || probe.started("pod-b"),
        )
        .await;
        let waited = took_over - died;
        assert!(
            waited >= LEASE_DURATION - RENEW_EVERY * 2,
            "pod-b took a lease that had not expired yet (after {waited:?})"
        );
        assert!(b.leader.load(Ordering::SeqCst));
        let spec = lease(&server).await;
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
        assert_eq!(spec.lease_transitions, Some(1));
        probe.assert_never_overlapped();
        b.task.abort();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_work_ends_releases_the_lease_for_an_immediate_takeover() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let probe = Probe::default();
        let leader = Arc::new(AtomicBool::new(false));
        let work_probe = probe.clone();
        let a = tokio::spawn(run_as_leader(
            server.client(),
            config("pod-a"),
            leader.clone(),
            std::future::pending(),
            move || async move {
                let _working = work_probe.enter("pod-a");
                tokio::time::sleep(Duration::from_secs(1)).await;
            },
        ));
        wait_for("pod-a leading", scaled(Duration::from_secs(5)), || {
            probe.started("pod-a")
        })
        .await;
        let b = spawn_replica(&server, &probe, "pod-b");

        a.await
            .unwrap()
            .expect("a leader whose work finished returns Ok");
        assert!(
            !leader.load(Ordering::SeqCst),
            "pod-a no longer reports leadership"
        );
        let finished = probe.when("pod-a", "stopped").unwrap();
        let took_over = wait_for("pod-b taking over", LEASE_DURATION, || {
            probe.started("pod-b")
        })
        .await;
        assert!(
            took_over - finished <= RENEW_EVERY + slack(),
            "a released lease is taken within one check, not after it expires ({:?})",
            took_over - finished
        );
        probe.assert_never_overlapped();
        b.task.abort();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_working_before_its_lease_expires() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let probe = Probe::default();
        let a = spawn_replica(&server, &probe, "pod-a");
        wait_for("pod-a leading", scaled(Duration::from_secs(5)), || {
            probe.started("pod-a")
        })
        .await;
        tokio::time::sleep(RENEW_EVERY * 2).await;

        // Every Lease request now fails; the last successful renewal was at most RENEW_EVERY ago.
        let cut_off = Instant::now();
        server.faults().fail_next("*", "/leases", usize::MAX, 503);
        let result = tokio::time::timeout(LEASE_DURATION, a.task)
            .await
            .expect("pod-a kept working after its lease could have been taken")
            .unwrap();
        assert!(matches!(result, Err(LeaderError::Lost)), "{result:?}");
        let stopped = probe
            .when("pod-a", "stopped")
            .expect("pod-a's work was dropped");
        assert!(
            stopped - cut_off < LEASE_DURATION,
            "pod-a stopped {:?} after losing the API server; its lease could be taken after {:?}",
            stopped - cut_off,
            LEASE_DURATION
        );
        assert!(!a.leader.load(Ordering::SeqCst));
        server.faults().clear();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_api_calls_hang_stops_working_before_its_lease_expires() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let probe = Probe::default();
        let a = spawn_replica(&server, &probe, "pod-a");
        wait_for("pod-a leading", scaled(Duration::from_secs(5)), || {
            probe.started("pod-a")
        })
        .await;

        let hung = Instant::now();
        server.faults().set_latency(Duration::from_secs(10));
        let result = tokio::time::timeout(LEASE_DURATION, a.task)
            .await
            .expect("pod-a kept working while its renewals hung")
            .unwrap();
        assert!(matches!(result, Err(LeaderError::Lost)), "{result:?}");
        assert!(probe.when("pod-a", "stopped").unwrap() - hung < LEASE_DURATION);
        server.faults().clear();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_at_its_next_renewal() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let probe = Probe::default();
        let a = spawn_replica(&server, &probe, "pod-a");
        wait_for("pod-a leading", scaled(Duration::from_secs(5)), || {
            probe.started("pod-a")
        })
        .await;

        let leases: Api<Lease> = Api::namespaced(server.client(), NAMESPACE);
        let mut taken = leases.get(LEASE).await.unwrap();
        taken
            .spec
            .get_or_insert_with(LeaseSpec::default)
            .holder_identity = Some("intruder".to_owned());
        leases
            .replace(LEASE, &PostParams::default(), &taken)
            .await
            .unwrap();
        let stolen = Instant::now();

        let result = tokio::time::timeout(RENEW_EVERY + slack(), a.task)
            .await
            .expect("pod-a did not notice that another holder took its lease")
            .unwrap();
        assert!(matches!(result, Err(LeaderError::Lost)), "{result:?}");
        assert!(probe.when("pod-a", "stopped").unwrap() - stolen <= RENEW_EVERY + slack());
        assert_eq!(
            lease(&server).await.holder_identity.as_deref(),
            Some("intruder"),
            "a replica that lost the lease must not write it back"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn missing_lease_permissions_fail_at_once_instead_of_waiting_forever() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        server.faults().fail_next("GET", "/leases", 1, 403);
        let probe = Probe::default();
        let result = run_as_leader(
            server.client(),
            config("pod-a"),
            Arc::new(AtomicBool::new(false)),
            std::future::pending(),
            probe.forever("pod-a"),
        )
        .await;
        assert!(matches!(result, Err(LeaderError::Api { .. })), "{result:?}");
        assert!(!probe.started("pod-a"));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn settings_that_cannot_be_safe_are_refused() {
    within(Duration::from_secs(30), async {
        let server = start_server().await;
        let mut bad = config("pod-a");
        bad.renew_every = bad.lease_duration;
        let probe = Probe::default();
        let result = run_as_leader(
            server.client(),
            bad,
            Arc::new(AtomicBool::new(false)),
            std::future::pending(),
            probe.forever("pod-a"),
        )
        .await;
        assert!(
            matches!(result, Err(LeaderError::InvalidConfig(_))),
            "{result:?}"
        );
        assert!(!probe.started("pod-a"));
        server.shutdown().await;
    })
    .await;
}
