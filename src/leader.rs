//! Leader election over one coordination.k8s.io/v1 Lease: runs the given work only while this
//! replica holds the Lease, and drops it the moment the Lease can no longer be trusted. It touches
//! nothing but its own Lease (get, create, update) and knows nothing about what the work does.
//!
//! Why not `kube-lease-manager`: its watch loop keeps reporting "leader" while renewals fail with
//! API errors (it logs and retries), so a leader cut off from the API server would keep writing
//! after its Lease expired and another replica took over. Here the leader keeps a local deadline
//! and stops its work when the deadline passes without a successful renewal.
//!
//! The protocol is client-go's: the holder renews `spec.renewTime` every `renew_every` with an
//! optimistic-concurrency update (`resourceVersion`); a follower takes the Lease only after it has
//! seen the Lease record unchanged for `leaseDurationSeconds` of its own clock (no clock-skew
//! assumptions), or at once when the holder released it (empty `holderIdentity`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The longest a graceful stop waits for the Lease release.
const RELEASE_LIMIT: Duration = Duration::from_secs(2);

/// Where the Lease lives, who we are, and the timings.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique per replica (the pod name). A restarted process with the same identity resumes.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal. Written to `leaseDurationSeconds`,
    /// rounded up to whole seconds.
    pub lease_duration: Duration,
    /// How often the leader renews and a follower checks the Lease. Must be less than half of
    /// `lease_duration`: a leader steps down when it has not renewed for
    /// `lease_duration - renew_every`, so it stops writing before anyone else may start.
    pub renew_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease was taken by another replica or could not be renewed in time. The work has been
    /// dropped; the process should exit and start again as a follower.
    #[error("lost the leader lease; stopped reconciling so that only one replica writes")]
    Lost,
    #[error("invalid leader election settings: {0}")]
    InvalidConfig(String),
    /// The API server refused us for good (e.g. 403: RBAC does not grant the Lease).
    #[error("failed to access Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Runs `work` only while this replica holds the Lease. When the Lease is lost, `work` is dropped
/// at once (so it stops writing) and this returns `Err(LeaderError::Lost)` so the process can exit
/// and restart; `leader` reflects the current state for /readyz reporting.
///
/// When `work` returns on its own (graceful shutdown), the Lease is released so another replica
/// takes over without waiting for it to expire, and this returns `Ok(())`. Dropping the returned
/// future also drops `work`, but leaves the Lease to expire.
///
/// A `shutdown` that resolves while this replica waits for the Lease ends the wait with `Ok(())`
/// and no work. Once working, `work` must itself stop on the same signal; then the Lease is released.
///
/// `work` must not detach tasks that write (`tokio::spawn` without keeping the handle): dropping
/// `work` only stops what it owns.
pub async fn run_as_leader<F, Fut>(
    client: kube::Client,
    config: LeaderConfig,
    leader: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
    work: F,
) -> Result<(), LeaderError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let timings = Timings::new(&config)?;
    let mut elector = Elector {
        api: Api::namespaced(client, &config.lease_namespace),
        config,
        timings,
        observed: None,
    };
    leader.store(false, Ordering::SeqCst);

    let mut renewed_at = tokio::select! {
        biased;
        () = shutdown => {
            info!(lease = %elector.config.lease_name, "shutdown requested while waiting for the leader lease");
            return Ok(());
        }
        acquired = elector.acquire() => acquired?,
    };
    leader.store(true, Ordering::SeqCst);
    info!(
        lease = %elector.config.lease_name,
        namespace = %elector.config.lease_namespace,
        identity = %elector.config.identity,
        "acquired the leader lease; starting work"
    );

    let work = work();
    tokio::pin!(work);
    let outcome = tokio::select! {
        biased;
        lost = elector.hold(&mut renewed_at) => Err(lost),
        () = &mut work => Ok(()),
    };
    // Leaving the select dropped whichever side did not finish: on loss, the work is gone here.
    leader.store(false, Ordering::SeqCst);
    match outcome {
        Err(err) => {
            warn!(
                lease = %elector.config.lease_name,
                identity = %elector.config.identity,
                error = %err,
                "stopped work"
            );
            Err(err)
        }
        Ok(()) => {
            elector.release().await;
            Ok(())
        }
    }
}

/// Validated timings.
#[derive(Clone, Copy, Debug)]
struct Timings {
    lease_duration: Duration,
    lease_duration_seconds: i32,
    renew_every: Duration,
    /// How long a leader may go without a successful renewal before it steps down.
    step_down_after: Duration,
    /// Pause between attempts after a failed renewal.
    retry_every: Duration,
}

impl Timings {
    fn new(config: &LeaderConfig) -> Result<Self, LeaderError> {
        let invalid = |msg: String| Err(LeaderError::InvalidConfig(msg));
        if config.lease_name.is_empty() || config.lease_namespace.is_empty() {
            return invalid("the lease name and namespace must not be empty".to_owned());
        }
        if config.identity.is_empty() {
            return invalid("the identity must not be empty".to_owned());
        }
        let LeaderConfig {
            lease_duration,
            renew_every,
            ..
        } = *config;
        if lease_duration < Duration::from_secs(1) {
            return invalid(format!(
                "the lease duration must be at least 1s (got {lease_duration:?})"
            ));
        }
        if renew_every.is_zero() || renew_every.saturating_mul(2) >= lease_duration {
            return invalid(format!(
                "renew_every ({renew_every:?}) must be more than zero and less than half the lease \
                 duration ({lease_duration:?})"
            ));
        }
        let whole_seconds = lease_duration.as_secs() + u64::from(lease_duration.subsec_nanos() > 0);
        let Ok(lease_duration_seconds) = i32::try_from(whole_seconds) else {
            return invalid(format!("the lease duration {lease_duration:?} is too long"));
        };
        Ok(Timings {
            lease_duration,
            lease_duration_seconds,
            renew_every,
            step_down_after: lease_duration.saturating_sub(renew_every),
            retry_every: (renew_every / 4).max(Duration::from_millis(20)),
        })
    }
}

/// The parts of a Lease that change when its holder is alive; compared to detect renewals.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    lease_duration_seconds: Option<i32>,
    lease_transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            lease_duration_seconds: spec.lease_duration_seconds,
            lease_transitions: spec.lease_transitions,
        }
    }
}

/// What a single acquire-or-renew attempt found.
enum Attempt {
    /// We hold the Lease; the renewal was sent at this instant (before the server saw it).
    Held(Instant),
    /// Another live replica holds it.
    HeldByOther(String),
    /// Someone wrote the Lease between our read and our write; look again.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    timings: Timings,
    /// The last Lease record we saw and when we first saw it (our clock).
    observed: Option<(Record, Instant)>,
}

impl Elector {
    /// Waits until this replica holds the Lease; returns when the acquiring write was sent.
    async fn acquire(&mut self) -> Result<Instant, LeaderError> {
        let mut waiting_for: Option<String> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held(at)) => return Ok(at),
                Ok(Attempt::HeldByOther(holder)) => {
                    if waiting_for.as_deref() != Some(holder.as_str()) {
                        info!(lease = %self.config.lease_name, %holder, "another replica leads; waiting");
                        waiting_for = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {
                    debug!(lease = %self.config.lease_name, "lease changed under us")
                }
                Err(err) if is_fatal(&err) => return Err(self.api_error(err)),
                Err(err) => {
                    warn!(lease = %self.config.lease_name, error = %err, "failed to read or take the lease; retrying")
                }
            }
            tokio::time::sleep(self.timings.renew_every).await;
        }
    }

    /// Renews until the Lease is lost; only ever returns the reason it was lost.
    async fn hold(&mut self, renewed_at: &mut Instant) -> LeaderError {
        let mut next_attempt = *renewed_at + self.timings.renew_every;
        loop {
            let deadline = *renewed_at + self.timings.step_down_after;
            if next_attempt >= deadline {
                return self.lost("could not renew the lease in time");
            }
            tokio::time::sleep_until(next_attempt).await;
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Err(_elapsed) => {
                    return self.lost("the API server did not answer before the lease ran out");
                }
                Ok(Ok(Attempt::Held(at))) => {
                    *renewed_at = at;
                    next_attempt = at + self.timings.renew_every;
                }
                Ok(Ok(Attempt::HeldByOther(holder))) => {
                    return self.lost(&format!("the lease is now held by {holder}"));
                }
                Ok(Ok(Attempt::Conflict)) => next_attempt = Instant::now(),
                Ok(Err(err)) => {
                    warn!(lease = %self.config.lease_name, error = %err, "failed to renew the lease; retrying");
                    next_attempt = Instant::now() + self.timings.retry_every;
                }
            }
        }
    }

    fn lost(&self, why: &str) -> LeaderError {
        warn!(
            lease = %self.config.lease_name,
            namespace = %self.config.lease_namespace,
            identity = %self.config.identity,
            reason = why,
            "lost the leader lease"
        );
        LeaderError::Lost
    }

    /// One round of client-go's tryAcquireOrRenew.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let name = self.config.lease_name.clone();
        let Some(lease) = self.api.get_opt(&name).await? else {
            let sent_at = Instant::now();
            let now = MicroTime(Timestamp::now());
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.config.lease_namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.timings.lease_duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observed = Some((Record::of(&created), sent_at));
                    Ok(Attempt::Held(sent_at))
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
                Err(err) => Err(err),
            };
        };

        let record = Record::of(&lease);
        let now = Instant::now();
        let seen_since = match &self.observed {
            Some((previous, since)) if *previous == record => *since,
            _ => now,
        };
        self.observed = Some((record.clone(), seen_since));

        let ours = record.holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = record.holder.as_ref().filter(|_| !ours) {
            let valid_for = record
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.timings.lease_duration, Duration::from_secs);
            if now < seen_since + valid_for {
                return Ok(Attempt::HeldByOther(holder.clone()));
            }
            info!(lease = %self.config.lease_name, %holder, "the leader's lease expired; taking over");
        }

        let sent_at = Instant::now();
        let timestamp = MicroTime(Timestamp::now());
        let mut updated = lease;
        let spec = updated.spec.get_or_insert_with(LeaseSpec::default);
        if !ours {
            spec.acquire_time = Some(timestamp.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.holder_identity = Some(self.config.identity.clone());
        }
        spec.renew_time = Some(timestamp);
        spec.lease_duration_seconds = Some(self.timings.lease_duration_seconds);
        // `updated` keeps the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &updated)
            .await
        {
            Ok(stored) => {
                self.observed = Some((Record::of(&stored), sent_at));
                Ok(Attempt::Held(sent_at))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up so that a follower takes over at once. Best effort: on failure the Lease
    /// simply expires.
    async fn release(&mut self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            spec.lease_duration_seconds = Some(1);
            self.api
                .replace(&self.config.lease_name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        // Bounded well below the kubelet's grace period: an unreachable API server must not hold
        // the exit; the Lease then simply expires.
        let limit = self.timings.lease_duration.min(RELEASE_LIMIT);
        match tokio::time::timeout(limit, result).await {
            Ok(Ok(())) => info!(lease = %self.config.lease_name, "released the leader lease"),
            Ok(Err(err)) => {
                warn!(lease = %self.config.lease_name, error = %err, "failed to release the leader lease; it will expire")
            }
            Err(_) => {
                warn!(lease = %self.config.lease_name, "releasing the leader lease timed out; it will expire")
            }
        }
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.config.lease_namespace.clone(),
            name: self.config.lease_name.clone(),
            source,
        }
    }
}

/// Errors that retrying cannot fix: the API server does not let us use the Lease at all.
fn is_fatal(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if matches!(status.code, 401 | 403))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lease_duration: Duration, renew_every: Duration) -> LeaderConfig {
        LeaderConfig {
            lease_name: "secret-sync".to_owned(),
            lease_namespace: "secret-sync".to_owned(),
            identity: "pod-a".to_owned(),
            lease_duration,
            renew_every,
        }
    }

    #[test]
    fn renewing_at_least_twice_per_lease_is_required() {
        let err = Timings::new(&config(Duration::from_secs(2), Duration::from_secs(1)));
        assert!(matches!(err, Err(LeaderError::InvalidConfig(_))));
        assert!(Timings::new(&config(Duration::from_secs(15), Duration::from_secs(5))).is_ok());
    }

    #[test]
    fn sub_second_leases_are_refused_because_the_lease_counts_whole_seconds() {
        let err = Timings::new(&config(
            Duration::from_millis(900),
            Duration::from_millis(100),
        ));
        assert!(matches!(err, Err(LeaderError::InvalidConfig(_))));
    }

    #[test]
    fn lease_duration_is_rounded_up_and_the_leader_steps_down_early() {
        let timings = Timings::new(&config(
            Duration::from_millis(2500),
            Duration::from_millis(500),
        ));
        let Ok(timings) = timings else {
            unreachable!("valid settings refused")
        };
        assert_eq!(timings.lease_duration_seconds, 3);
        assert_eq!(timings.step_down_after, Duration::from_secs(2));
    }

    #[test]
    fn empty_identity_is_refused() {
        let mut bad = config(Duration::from_secs(15), Duration::from_secs(2));
        bad.identity.clear();
        assert!(matches!(
            Timings::new(&bad),
            Err(LeaderError::InvalidConfig(_))
        ));
    }
}
