//! Shared test support: an operator running against the in-process fake API server, and (for the
//! AWS tests) a moto launcher, and the Go oracle for differential tests. Each test binary uses only
//! part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cluster;
pub mod http;
pub mod logs;
pub mod moto;
pub mod oracle;

/// A line for CI logs (case counts of the differential suites). Written to stderr directly: the test
/// harness captures `println!` of tests that pass.
pub fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
