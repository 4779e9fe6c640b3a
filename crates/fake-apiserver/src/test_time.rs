//! The one knob for every time bound in this workspace's tests: `SECRET_SYNC_TEST_TIME_FACTOR`.
//!
//! Tests write their bounds as they would hold on a quiet machine and pass them through [`scaled`].
//! The default leaves room for a 2-core machine that is also compiling something; raise the factor
//! on slower machines, lower it (e.g. `1`) to see how close a quiet machine comes to the bounds.
//! Only upper bounds ("this must happen within X") are scaled: windows in which a test asserts that
//! nothing happens, and lower bounds, stay as written.

use std::sync::OnceLock;
use std::time::Duration;

/// Environment variable holding the factor (a positive number, e.g. `1`, `2.5`, `6`).
pub const ENV: &str = "SECRET_SYNC_TEST_TIME_FACTOR";

/// Without the variable: a loaded 2-core machine passes with room to spare.
pub const DEFAULT_FACTOR: f64 = 3.0;

/// The factor in force; an unset, unparsable or non-positive value gives [`DEFAULT_FACTOR`].
pub fn factor() -> f64 {
    static FACTOR: OnceLock<f64> = OnceLock::new();
    *FACTOR.get_or_init(|| {
        std::env::var(ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(DEFAULT_FACTOR)
    })
}

/// An upper bound written for a quiet machine, stretched by [`factor`].
pub fn scaled(bound: Duration) -> Duration {
    bound.mul_f64(factor())
}

/// [`scaled`] in whole seconds (at least 1), for tools that take a timeout such as
/// `kubectl wait --timeout=30s`.
pub fn scaled_secs(bound: Duration) -> u64 {
    scaled(bound).as_secs_f64().ceil().max(1.0) as u64
}
