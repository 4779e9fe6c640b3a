//! Timing rules: jittered refresh intervals and per-object exponential backoff for failures.
//! Pure arithmetic plus a random draw; the failure counts themselves live in the Context state.

use std::time::Duration;

use rand::Rng;

/// First retry after a failure, and the cap every retry (jitter included) stays under.
pub const FAILURE_BASE: Duration = Duration::from_secs(5);
pub const FAILURE_CAP: Duration = Duration::from_secs(300);

/// `every` ±10%, so objects created together do not refresh in lock-step.
pub fn jittered(every: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    every.mul_f64(factor)
}

/// `every` minus up to 10%: spreads retries without ever exceeding `every` (used for the 5-minute cap).
pub fn jittered_below(every: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.0);
    every.mul_f64(factor)
}

/// Exponential backoff with "equal jitter": somewhere in [d/2, d] for d = base·2^(n-1), capped.
/// (backon's jitter adds up to 100% on top of the capped delay, which would break the 5-minute cap.)
pub fn failure_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = FAILURE_BASE.saturating_mul(1 << exp).min(FAILURE_CAP);
    let factor = rand::rng().random_range(0.5..=1.0);
    full.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_delays_grow_and_never_exceed_the_cap() {
        for n in 1..40 {
            let d = failure_delay(n);
            assert!(d <= FAILURE_CAP, "{n}: {d:?}");
            let full = FAILURE_BASE
                .saturating_mul(1 << (n - 1).min(16))
                .min(FAILURE_CAP);
            assert!(d >= full / 2, "{n}: {d:?}");
        }
        assert!(failure_delay(1) <= FAILURE_BASE);
        assert!(failure_delay(10) >= FAILURE_CAP / 2);
    }

    #[test]
    fn refresh_jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
