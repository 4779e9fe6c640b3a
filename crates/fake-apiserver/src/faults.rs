// Owns fault injection: scripted failures for the next N matching requests, added latency, and the
// signal that closes open watches. Must not know about resources; it matches on method and path only.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path_contains: String,
    remaining: usize,
    status: u16,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    latency: Duration,
}

/// Cheap, cloneable handle for injecting faults into a running [`crate::FakeApiServer`].
#[derive(Debug, Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    close: Arc<watch::Sender<u64>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            close: Arc::new(watch::channel(0).0),
        }
    }
}

impl Faults {
    /// Fails the next `n` requests whose method equals `method` (case-insensitive, "*" for any) and
    /// whose path contains `path_contains`, answering `status` (429 adds `Retry-After: 1`).
    pub fn fail_next(&self, method: &str, path_contains: &str, n: usize, status: u16) {
        lock(&self.state).rules.push(Rule {
            method: method.to_uppercase(),
            path_contains: path_contains.to_string(),
            remaining: n,
            status,
        });
    }

    /// Delays every request by `d` (zero turns it off).
    pub fn set_latency(&self, d: Duration) {
        lock(&self.state).latency = d;
    }

    /// Ends every open watch stream; clients have to reconnect.
    pub fn close_watches(&self) {
        self.close.send_modify(|g| *g += 1);
    }

    /// Removes all scripted failures and latency.
    pub fn clear(&self) {
        let mut s = lock(&self.state);
        s.rules.clear();
        s.latency = Duration::ZERO;
    }

    pub(crate) fn latency(&self) -> Duration {
        lock(&self.state).latency
    }

    pub(crate) fn close_signal(&self) -> watch::Receiver<u64> {
        self.close.subscribe()
    }

    /// Consumes one matching failure, if any, returning the status to answer with.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<u16> {
        let mut s = lock(&self.state);
        let rule = s.rules.iter_mut().find(|r| {
            r.remaining > 0
                && (r.method == "*" || r.method == method.to_uppercase())
                && path.contains(&r.path_contains)
        })?;
        rule.remaining -= 1;
        let status = rule.status;
        s.rules.retain(|r| r.remaining > 0);
        Some(status)
    }
}
