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

/// The corpus of real ESO manifests (`../shared/corpus` next to the checkout, or /work/shared/corpus):
/// its YAML files, sorted.
pub fn corpus_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let dir = if dir.exists() {
        dir
    } else {
        std::path::PathBuf::from("/work/shared/corpus")
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}
