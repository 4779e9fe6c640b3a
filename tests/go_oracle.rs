//! The Go oracle itself: it builds from Debian's packages and answers in order, errors included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::oracle::Oracle;

#[test]
fn the_oracle_answers_every_line_in_order_with_errors_as_answers() {
    let mut oracle = Oracle::start();
    let inputs: Vec<_> = (0..5000)
        .map(|i| json!({"n": i, "s": "x".repeat(i % 50)}))
        .collect();
    let answers = oracle.ask_many("echo", inputs.clone());
    assert_eq!(answers.len(), inputs.len());
    for (input, answer) in inputs.iter().zip(&answers) {
        assert_eq!(answer.as_ref().unwrap(), input);
    }
    assert_eq!(
        oracle.ask("echo", json!("")),
        Ok(json!("")),
        "an empty answer is an answer"
    );
    assert_eq!(
        oracle.ask("no-such-mode", json!({})),
        Err("unknown mode no-such-mode".into())
    );
}
