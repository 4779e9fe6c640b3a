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

/// The shared corpus of real ESO manifests (`../shared/corpus` next to the repository).
pub fn corpus_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.exists() {
        dir
    } else {
        std::path::PathBuf::from("/work/shared/corpus")
    }
}

/// A manifest of the shared corpus of real ESO manifests, as written.
pub fn corpus(file: &str) -> String {
    std::fs::read_to_string(corpus_dir().join(file))
        .unwrap_or_else(|e| panic!("corpus {file}: {e}"))
}

/// Every field the user wrote must come back from the API server unchanged (nothing pruned).
pub fn assert_subset(sent: &serde_json::Value, stored: &serde_json::Value, path: &str) {
    match (sent, stored) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in a {
                let other = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} was pruned by our schema"));
                assert_subset(v, other, &format!("{path}.{k}"));
            }
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path} changed length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_subset(x, y, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changed"),
    }
}

/// The corpus's YAML files, sorted.
pub fn corpus_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("the corpus")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}
