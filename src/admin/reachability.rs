//! Whether the Kubernetes API server can be reached, and why not. Every connection failure is
//! reported here; it is logged with its real cause once, then at most every [`LOG_EVERY`] while
//! the outage lasts, and `/readyz` shows the cause.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

/// Repeats of the same connection failure are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct ApiReachability {
    url: String,
    /// The cause of the current outage; `None` while the API server answers.
    outage: watch::Sender<Option<String>>,
    logged: Mutex<Option<Logged>>,
}

#[derive(Debug)]
struct Logged {
    cause: String,
    at: Instant,
    since: Instant,
}

impl Default for ApiReachability {
    fn default() -> Self {
        Self::new("")
    }
}

impl ApiReachability {
    /// `url`: the API server's address from the kubeconfig, for messages.
    pub fn new(url: impl Into<String>) -> Self {
        ApiReachability {
            url: url.into(),
            outage: watch::channel(None).0,
            logged: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The API server answered (any HTTP response counts).
    pub fn reached(&self) {
        // Called for every watch event: only an actual change notifies subscribers.
        let was_down = self.outage.send_if_modified(|cause| cause.take().is_some());
        if was_down {
            let down_for = self.lock().take().map(|l| l.since.elapsed());
            info!(url = %self.url, ?down_for, "reached the Kubernetes API again");
        }
    }

    /// Records `err` if it is a failure to reach the API server (not an answer from it); returns
    /// whether it was one.
    pub fn failed(&self, err: &kube::Error) -> bool {
        if !is_connection_error(err) {
            return false;
        }
        self.record(cause_of(err));
        true
    }

    /// A request that got no answer in time.
    pub fn unanswered(&self, cause: &str) {
        self.record(cause.to_owned());
    }

    fn record(&self, cause: String) {
        let now = Instant::now();
        {
            let mut logged = self.lock();
            let repeat = logged
                .as_ref()
                .is_some_and(|l| l.cause == cause && now.duration_since(l.at) < LOG_EVERY);
            if !repeat {
                let since = logged.as_ref().map_or(now, |l| l.since);
                warn!(
                    url = %self.url,
                    error = %cause,
                    down_for = ?now.duration_since(since),
                    "cannot reach the Kubernetes API; retrying"
                );
                *logged = Some(Logged {
                    cause: cause.clone(),
                    at: now,
                    since,
                });
            }
        }
        self.outage.send_if_modified(|current| {
            let changed = current.as_deref() != Some(cause.as_str());
            *current = Some(cause);
            changed
        });
    }

    /// "cannot reach the Kubernetes API at URL: CAUSE" during an outage.
    pub fn problem(&self) -> Option<String> {
        self.outage
            .borrow()
            .as_ref()
            .map(|cause| self.describe(cause))
    }

    pub fn describe(&self, cause: &str) -> String {
        format!("cannot reach the Kubernetes API at {}: {cause}", self.url)
    }

    /// Changes of the outage cause (`None` = reachable).
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.outage.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Logged>> {
        self.logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Transport failures (connect, TLS, timeouts): the request never got an HTTP answer.
pub fn is_connection_error(err: &kube::Error) -> bool {
    matches!(err, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// The error's cause chain without kube's and hyper's generic wrappers, e.g.
/// `invalid peer certificate: UnknownIssuer` or `tcp connect error: Connection refused (os error 111)`.
pub fn cause_of(err: &kube::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = match err {
        kube::Error::HyperError(e) => Some(e),
        kube::Error::Service(e) => Some(e.as_ref()),
        other => return other.to_string(),
    };
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their source's text ("{source}"); keep it once.
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    // hyper-util's outer layer says only "client error (Connect)"; what follows says why.
    if parts.len() > 1 && parts[0].starts_with("client error") {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    fn refused() -> kube::Error {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        kube::Error::Service(Box::new(Outer(io)))
    }

    #[test]
    fn the_cause_is_the_chain_without_generic_wrappers() {
        assert_eq!(cause_of(&refused()), "connection refused");
    }

    #[test]
    fn an_answer_from_the_server_is_not_a_connection_failure() {
        let reach = ApiReachability::new("https://127.0.0.1:1");
        let status = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        assert!(!reach.failed(&kube::Error::Api(Box::new(status))));
        assert_eq!(reach.problem(), None);
    }

    #[test]
    fn an_outage_is_described_until_the_server_answers() {
        let reach = ApiReachability::new("https://127.0.0.1:1");
        assert!(reach.failed(&refused()));
        assert_eq!(
            reach.problem().as_deref(),
            Some("cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused")
        );
        reach.reached();
        assert_eq!(reach.problem(), None);
    }
}
