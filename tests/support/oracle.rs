//! The Go oracle (tools/go-oracle): ESO's semantics answered by the Go libraries ESO uses. Built once per
//! test process into target/, then fed JSON lines. Differential tests ask it and compare with our answer.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// What the oracle said: `Ok(answer)` or `Err(message)` (the Go library failed).
pub type Answer = Result<Value, String>;

pub struct Oracle {
    _child: Child,
    /// Taken by the writer thread during a round trip.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out = root.join("target/go-oracle/go-oracle");
            // A per-process name, then a rename: concurrent test binaries never see a half-written file.
            let tmp = out.with_extension(format!("tmp{}", std::process::id()));
            std::fs::create_dir_all(out.parent().expect("parent")).expect("create target/go-oracle");
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&tmp)
                .arg(".")
                .current_dir(root.join("tools/go-oracle"))
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", root.join("target/go-oracle/cache"))
                .status()
                .unwrap_or_else(|e| {
                    panic!(
                        "the Go oracle needs Debian's golang-go, golang-github-masterminds-sprig-dev, \
                         golang-github-tidwall-gjson-dev, golang-k8s-sigs-yaml-dev and \
                         golang-sslmate-src-go-pkcs12-dev (./scripts/test installs them): {e}"
                    )
                });
            assert!(status.success(), "go build of tools/go-oracle failed");
            std::fs::rename(&tmp, &out).expect("install the oracle binary");
            out
        })
        .clone()
}

impl Oracle {
    pub fn start() -> Oracle {
        let mut child = Command::new(binary())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Go oracle");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Oracle {
            _child: child,
            stdin: Some(stdin),
            stdout,
        }
    }

    /// Ask one question.
    pub fn ask(&mut self, mode: &str, input: Value) -> Answer {
        self.ask_many(mode, vec![input]).pop().expect("one answer")
    }

    /// Ask many questions of one mode in one round trip; answers come back in order.
    pub fn ask_many(&mut self, mode: &str, inputs: Vec<Value>) -> Vec<Answer> {
        let mut batch = String::new();
        for input in &inputs {
            batch.push_str(&serde_json::json!({"mode": mode, "input": input}).to_string());
            batch.push('\n');
        }
        // Write from another thread: a large batch would otherwise fill both pipes and deadlock.
        let mut stdin = self.stdin.take().expect("the oracle's stdin");
        let writer = std::thread::spawn(move || {
            stdin
                .write_all(batch.as_bytes())
                .expect("write to the oracle");
            stdin.flush().expect("flush the oracle's stdin");
            stdin
        });
        let mut answers = Vec::with_capacity(inputs.len());
        let mut line = String::new();
        for _ in &inputs {
            line.clear();
            self.stdout
                .read_line(&mut line)
                .expect("read from the oracle");
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("oracle answered {line:?}: {e}"));
            answers.push(match (value.get("ok"), value.get("err")) {
                (Some(ok), None) => Ok(ok.clone()),
                (None, Some(err)) => Err(err.as_str().unwrap_or_default().to_owned()),
                _ => panic!("oracle answered neither ok nor err: {line:?}"),
            });
        }
        self.stdin = Some(writer.join().expect("writer thread"));
        answers
    }
}

/// Template data as the differential tests write it: key -> raw bytes.
pub type Data = std::collections::BTreeMap<String, Vec<u8>>;

pub fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Our engine's render of `text` over `data`: the bytes, or the error message.
pub fn render_ours(text: &str, data: &Data) -> Result<Vec<u8>, String> {
    let d: std::collections::BTreeMap<String, secret_sync::provider::value::SecretBytes> = data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                secret_sync::provider::value::SecretBytes::new(v.clone()),
            )
        })
        .collect();
    secret_sync::template::render(text, "t", &d)
        .map(|s| s.expose().to_vec())
        .map_err(|e| e.to_string())
}
