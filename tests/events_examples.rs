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

/// Every sample in examples/events/, with what it must refresh. Written from AWS's documented
/// shapes (made-up accounts and ARNs).
const SAMPLES: &[(&str, Service, &[&str])] = &[
    (
        "sample-put-secret-value-event.json",
        Service::SecretsManager,
        &["arn:aws:secretsmanager:eu-central-1:111122223333:secret:prod/db-AbCdEf"],
    ),
    (
        "sample-parameter-store-change-event.json",
        Service::ParameterStore,
        &[
            "/prod/api-key",
            "arn:aws:ssm:eu-central-1:111122223333:parameter/prod/api-key",
        ],
    ),
    (
        "samples/secret-label-updated.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-update-secret.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-rotate-secret.json",
        Service::SecretsManager,
        SM_ARN,
    ),
    (
        "samples/cloudtrail-update-secret-version-stage.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-delete-secret.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-restore-secret.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-create-secret.json",
        Service::SecretsManager,
        SM_NAME_AND_ARN,
    ),
    (
        "samples/cloudtrail-cancel-rotate-secret.json",
        Service::SecretsManager,
        SM_ARN,
    ),
    (
        "samples/cloudtrail-rotation-succeeded.json",
        Service::SecretsManager,
        SM_ARN,
    ),
    (
        "samples/cloudtrail-rotation-abandoned.json",
        Service::SecretsManager,
        SM_ARN,
    ),
    (
        "samples/parameter-store-change-create.json",
        Service::ParameterStore,
        SSM_NAME_AND_ARN,
    ),
    (
        "samples/parameter-store-change-delete.json",
        Service::ParameterStore,
        SSM_NAME_AND_ARN,
    ),
    (
        "samples/parameter-store-change-label-parameter-version.json",
        Service::ParameterStore,
        SSM_NAME_AND_ARN,
    ),
    (
        "samples/parameter-store-policy-expiration.json",
        Service::ParameterStore,
        SSM_NAME_AND_ARN,
    ),
];
const SM_ARN: &[&str] =
    &["arn:aws:secretsmanager:eu-central-1:210987654321:secret:shop/payments-Xy12Zq"];
const SM_NAME_AND_ARN: &[&str] = &[
    "arn:aws:secretsmanager:eu-central-1:210987654321:secret:shop/payments-Xy12Zq",
    "shop/payments",
];
const SSM_NAME_AND_ARN: &[&str] = &[
    "/shop/payments/api-key",
    "arn:aws:ssm:eu-central-1:210987654321:parameter/shop/payments/api-key",
];

fn sample(name: &str) -> serde_json::Value {
    serde_json::from_str(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_sample_refreshes_exactly_the_secret_it_names() {
    for (file, service, names) in SAMPLES {
        let parsed = parse::parse(example(file).as_bytes());
        assert_eq!(
            parsed,
            Ok(Notification::Changed {
                service: *service,
                names: names.iter().map(|n| n.to_string()).collect(),
            }),
            "{file}"
        );
    }
}

#[test]
fn every_refreshing_row_of_the_event_table_has_a_sample() {
    let mut covered = std::collections::BTreeSet::new();
    for (file, ..) in SAMPLES {
        let (kind, value) = parse::recognise(&sample(file)).unwrap_or_else(|| panic!("{file}"));
        covered.insert((kind.detail_type, value));
    }
    for kind in parse::EVENT_TABLE {
        if !matches!(kind.effect, parse::Effect::Refresh(_)) {
            continue;
        }
        let values: Vec<Option<&str>> = if kind.field.is_none() {
            vec![None]
        } else {
            kind.values.iter().copied().map(Some).collect()
        };
        for value in values {
            assert!(
                covered.contains(&(kind.detail_type, value)),
                "no sample for {} {value:?}",
                kind.detail_type
            );
        }
    }
}

/// The same sample with `field` (a JSON pointer) set to `value`.
fn with(mut event: serde_json::Value, field: &str, value: &str) -> serde_json::Value {
    *event.pointer_mut(field).unwrap() = value.into();
    event
}

#[test]
fn the_rule_pattern_matches_every_sample_and_no_event_we_ignore() {
    use secret_sync::events::pattern::matches;
    let pattern: serde_json::Value =
        serde_json::from_str(&example("eventbridge-rule-pattern.json")).unwrap();
    for (file, ..) in SAMPLES {
        assert!(
            matches(&pattern, &sample(file)).unwrap(),
            "{file} not sent by the rule"
        );
    }
    // Each ignored row's values, put into a sample of the same detail-type: the rule leaves them out.
    let mut checked = 0;
    for kind in parse::EVENT_TABLE {
        let parse::Effect::Ignore(_) = kind.effect else {
            continue;
        };
        let (Some(field), Some((file, ..))) = (
            kind.field,
            SAMPLES.iter().find(|(f, ..)| {
                parse::recognise(&sample(f)).is_some_and(|(k, _)| k.detail_type == kind.detail_type)
            }),
        ) else {
            panic!(
                "no sample of {} to derive ignored events from",
                kind.detail_type
            );
        };
        for value in kind.values {
            let event = with(sample(file), field, value);
            assert!(
                matches!(parse::recognise(&event), Some((k, _)) if matches!(k.effect, parse::Effect::Ignore(_))),
                "{value}"
            );
            assert!(
                !matches(&pattern, &event).unwrap(),
                "the rule sends ignored {value}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
    let other_service = with(
        sample("samples/secret-label-updated.json"),
        "/source",
        "aws.ec2",
    );
    assert!(!matches(&pattern, &other_service).unwrap());
}

#[test]
fn the_readme_event_table_lists_every_row() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = readme
        .find("### Event table")
        .expect("README has an event table");
    let table = &readme[start..];
    let table = &table[..table[4..].find("\n#").map_or(table.len(), |i| i + 4)];
    for kind in parse::EVENT_TABLE {
        assert!(table.contains(kind.detail_type), "{}", kind.detail_type);
        for value in kind.values {
            assert!(
                table.contains(&format!("`{value}`")),
                "{value} missing from the README event table"
            );
        }
    }
}
