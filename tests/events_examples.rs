//! The documented event material in examples/events/ is what the operator actually understands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secret_sync::events::parse::{self, Notification, Service};

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/examples/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn sample_events_parse_to_the_names_they_carry() {
    let Ok(Notification::Changed { service, names }) =
        parse::parse(example("sample-put-secret-value-event.json").as_bytes())
    else {
        panic!("PutSecretValue sample must be understood");
    };
    assert_eq!(service, Service::SecretsManager);
    assert_eq!(
        names,
        vec!["arn:aws:secretsmanager:eu-central-1:111122223333:secret:prod/db-AbCdEf".to_string()]
    );
    let Ok(Notification::Changed { service, names }) =
        parse::parse(example("sample-parameter-store-change-event.json").as_bytes())
    else {
        panic!("Parameter Store Change sample must be understood");
    };
    assert_eq!(service, Service::ParameterStore);
    assert!(names.contains(&"/prod/api-key".to_string()));
}

#[test]
fn the_rule_pattern_covers_every_event_the_parser_acts_on() {
    let pattern: serde_json::Value =
        serde_json::from_str(&example("eventbridge-rule-pattern.json")).unwrap();
    let text = pattern.to_string();
    for name in [
        "PutSecretValue",
        "UpdateSecret",
        "RotateSecret",
        "RotationSucceeded",
        "UpdateSecretVersionStage",
        "DeleteSecret",
        "RestoreSecret",
        "Parameter Store Change",
        "LabelParameterVersion",
    ] {
        assert!(
            text.contains(name),
            "{name} missing from the documented EventBridge pattern"
        );
    }
    for policy in ["sqs-queue-policy.json", "operator-events-iam-policy.json"] {
        let v: serde_json::Value = serde_json::from_str(&example(policy)).unwrap();
        assert_eq!(v["Version"], "2012-10-17", "{policy}");
    }
}

#[test]
fn the_reload_example_is_a_valid_external_secret() {
    let text = example("externalsecret-with-reload.yaml");
    let first = serde_yaml_ng::Deserializer::from_str(&text).next().unwrap();
    let es: secret_sync::api::ExternalSecret = serde::Deserialize::deserialize(first).unwrap();
    let annotations = es.metadata.annotations.unwrap();
    assert!(
        secret_sync::controller::rotation::parse_max_age(&annotations["secret-sync.io/max-age"])
            .is_some()
    );
}
