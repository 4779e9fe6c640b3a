//! Pure parsing of rotation notifications: EventBridge events (recognised by [`EVENT_TABLE`]),
//! SNS-wrapped ones, and the webhook's `{provider, key}`. Returns names only; never logs.

use serde_json::Value;

/// Which backend a changed name belongs to, when the message says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    SecretsManager,
    ParameterStore,
    Unknown,
}

/// What one message means for us.
#[derive(Debug, PartialEq, Eq)]
pub enum Notification {
    /// Names (or ARNs) of remote secrets whose value may have changed.
    Changed {
        service: Service,
        names: Vec<String>,
    },
    /// A documented event that does not change a value (e.g. a read, or a tag update).
    Irrelevant { reason: &'static str },
    /// A well-formed event that no row of [`EVENT_TABLE`] describes. `detail_type` is a bounded
    /// metric label: the event's detail-type when its source is one we consume, else "other".
    Unrecognised { detail_type: String },
}

/// Why a message could not be understood. Carries no payload content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message body is not JSON")]
    NotJson,
    #[error("message is JSON but not an EventBridge, SNS or {{provider, key}} payload")]
    UnknownShape,
    #[error("event names no secret or parameter")]
    NoName,
}

impl ParseError {
    pub fn category(&self) -> &'static str {
        match self {
            ParseError::NotJson => "NotJson",
            ParseError::UnknownShape => "UnknownShape",
            ParseError::NoName => "NoName",
        }
    }
}

/// What a recognised event means for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The named secret or parameter may have a new value, or be gone, or be back: refresh every
    /// ExternalSecret that reads it.
    Refresh(Service),
    /// A documented event that changes no value we read; acknowledged and counted as ignored.
    Ignore(&'static str),
}

/// One row of the recognition table: events of `source` and `detail_type` whose `field` (a JSON
/// pointer into the event) holds one of `values` (or all of them when `field` is `None`).
#[derive(Debug)]
pub struct EventKind {
    pub source: &'static str,
    pub detail_type: &'static str,
    pub field: Option<&'static str>,
    pub values: &'static [&'static str],
    pub effect: Effect,
    /// JSON pointers to the fields that name the secret or parameter; `resources` is read as well.
    pub names: &'static [&'static str],
}

const SECRETS_MANAGER: &str = "aws.secretsmanager";
const SSM: &str = "aws.ssm";
const API_CALL: &str = "AWS API Call via CloudTrail";
const SERVICE_EVENT: &str = "AWS Service Event via CloudTrail";
/// Where CloudTrail records put the secret: the request (name, ARN or partial ARN), the response
/// (`arn`, spelled `aRN` by some calls before 2024) and, for service events, `additionalEventData`.
const CLOUDTRAIL_SECRET: &[&str] = &[
    "/detail/requestParameters/secretId",
    "/detail/requestParameters/name",
    "/detail/responseElements/arn",
    "/detail/responseElements/aRN",
    "/detail/additionalEventData/SecretId",
    "/detail/serviceEventDetails/secretId",
];

/// Every AWS event we know, built from AWS's documentation (Secrets Manager's native events and
/// CloudTrail entries, Parameter Store's EventBridge events). An event matching no row is
/// "unrecognised": acknowledged, and counted by detail-type so a new kind of event gets noticed.
/// The README's event table and `examples/events/` (one sample per refreshing value) follow it.
pub const EVENT_TABLE: &[EventKind] = &[
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: "Secret Label Updated",
        field: None,
        values: &[],
        effect: Effect::Refresh(Service::SecretsManager),
        names: &["/detail/name"],
    },
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: API_CALL,
        field: Some("/detail/eventName"),
        values: &[
            "PutSecretValue",
            "UpdateSecret",
            "RotateSecret",
            "UpdateSecretVersionStage",
            "DeleteSecret",
            "RestoreSecret",
            "CreateSecret",
            "CancelRotateSecret",
        ],
        effect: Effect::Refresh(Service::SecretsManager),
        names: CLOUDTRAIL_SECRET,
    },
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: API_CALL,
        field: Some("/detail/eventName"),
        values: &[
            "GetSecretValue",
            "BatchGetSecretValue",
            "DescribeSecret",
            "ListSecrets",
            "ListSecretVersionIds",
            "GetRandomPassword",
            "GetResourcePolicy",
            "PutResourcePolicy",
            "DeleteResourcePolicy",
            "ValidateResourcePolicy",
            "TagResource",
            "UntagResource",
            "ReplicateSecretToRegions",
            "RemoveRegionsFromReplication",
            "StopReplicationToReplica",
        ],
        effect: Effect::Ignore("API call that changes no value"),
        names: &[],
    },
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: SERVICE_EVENT,
        field: Some("/detail/eventName"),
        values: &["RotationSucceeded", "RotationAbandoned"],
        effect: Effect::Refresh(Service::SecretsManager),
        names: CLOUDTRAIL_SECRET,
    },
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: SERVICE_EVENT,
        field: Some("/detail/eventName"),
        values: &["RotationStarted", "RotationFailed"],
        effect: Effect::Ignore("rotation step that changes no current value"),
        names: &[],
    },
    EventKind {
        source: SECRETS_MANAGER,
        detail_type: SERVICE_EVENT,
        field: Some("/detail/eventName"),
        values: &[
            "StartSecretVersionDelete",
            "CancelSecretVersionDelete",
            "EndSecretVersionDelete",
        ],
        effect: Effect::Ignore(
            "deletion progress; DeleteSecret and RestoreSecret carry the change",
        ),
        names: &[],
    },
    EventKind {
        source: SSM,
        detail_type: "Parameter Store Change",
        field: Some("/detail/operation"),
        values: &["Create", "Update", "Delete", "LabelParameterVersion"],
        effect: Effect::Refresh(Service::ParameterStore),
        names: &["/detail/name"],
    },
    EventKind {
        source: SSM,
        detail_type: "Parameter Store Policy Action",
        field: Some("/detail/policy-type"),
        // An Expiration policy deletes the parameter.
        values: &["Expiration"],
        effect: Effect::Refresh(Service::ParameterStore),
        names: &["/detail/parameter-name"],
    },
    EventKind {
        source: SSM,
        detail_type: "Parameter Store Policy Action",
        field: Some("/detail/policy-type"),
        values: &["ExpirationNotification", "NoChangeNotification"],
        effect: Effect::Ignore("parameter policy notification that changes no value"),
        names: &[],
    },
];

/// Sources whose detail-types may label the unrecognised-events metric; any other is "other".
const KNOWN_SOURCES: &[&str] = &[SECRETS_MANAGER, SSM];

/// The row an EventBridge event falls under, with the value of its `field` that selected it.
/// An event without `detail-type` (a hand-made webhook body) is matched on source and field alone.
pub fn recognise(event: &Value) -> Option<(&'static EventKind, Option<&'static str>)> {
    let source = event.get("source").and_then(Value::as_str)?;
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    EVENT_TABLE.iter().find_map(|kind| {
        if kind.source != source || detail_type.is_some_and(|d| d != kind.detail_type) {
            return None;
        }
        match kind.field {
            None if detail_type.is_some() => Some((kind, None)),
            None => None,
            Some(field) => {
                let actual = event.pointer(field).and_then(Value::as_str)?;
                let value = kind.values.iter().find(|v| **v == actual)?;
                Some((kind, Some(*value)))
            }
        }
    })
}

/// The metric label of an unrecognised event: its detail-type when it comes from a source we
/// consume (AWS's detail-types are a short fixed set), else "other". Never more than 64 plain
/// characters, so a forged message cannot put arbitrary text into a label.
fn unrecognised_label(event: &Value) -> String {
    let source = event.get("source").and_then(Value::as_str);
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    match (source, detail_type) {
        (Some(source), Some(detail_type))
            if KNOWN_SOURCES.contains(&source)
                && !detail_type.is_empty()
                && detail_type.len() <= 64
                && detail_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')) =>
        {
            detail_type.to_owned()
        }
        _ => "other".to_owned(),
    }
}

fn eventbridge(event: &Value) -> Result<Notification, ParseError> {
    let Some((kind, _)) = recognise(event) else {
        return Ok(Notification::Unrecognised {
            detail_type: unrecognised_label(event),
        });
    };
    let service = match kind.effect {
        Effect::Ignore(reason) => return Ok(Notification::Irrelevant { reason }),
        Effect::Refresh(service) => service,
    };
    let mut names: Vec<String> = kind
        .names
        .iter()
        .filter_map(|pointer| event.pointer(pointer))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    names.extend(resources(event));
    dedup(&mut names);
    if names.is_empty() {
        return Err(ParseError::NoName);
    }
    Ok(Notification::Changed { service, names })
}

pub fn parse(body: &[u8]) -> Result<Notification, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ParseError::NotJson)?;
    parse_value(&value, 0)
}

fn parse_value(value: &Value, depth: u8) -> Result<Notification, ParseError> {
    // SNS wraps the EventBridge event as a JSON string in `Message`.
    if let (Some("Notification"), Some(Value::String(inner))) = (
        value.get("Type").and_then(Value::as_str),
        value.get("Message"),
    ) {
        if depth > 2 {
            return Err(ParseError::UnknownShape);
        }
        let inner: Value = serde_json::from_str(inner).map_err(|_| ParseError::NotJson)?;
        return parse_value(&inner, depth + 1);
    }
    if let Some(key) = value.get("key").and_then(Value::as_str) {
        return Ok(Notification::Changed {
            service: webhook_service(value.get("provider")),
            names: vec![key.to_owned()],
        });
    }
    match (value.get("source"), value.get("detail")) {
        (Some(Value::String(_)), Some(_)) => eventbridge(value),
        _ => Err(ParseError::UnknownShape),
    }
}

fn webhook_service(provider: Option<&Value>) -> Service {
    let name = provider
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.contains("parameter") || name.contains("ssm") {
        Service::ParameterStore
    } else if name.contains("secretsmanager") || name.contains("secrets-manager") {
        Service::SecretsManager
    } else {
        Service::Unknown
    }
}

fn resources(event: &Value) -> Vec<String> {
    event
        .get("resources")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn dedup(names: &mut Vec<String>) {
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: &str = r#"{
      "version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
      "account": "123456789012", "region": "us-east-1", "resources": [],
      "detail": {"eventSource": "secretsmanager.amazonaws.com", "eventName": "PutSecretValue",
                 "requestParameters": {"secretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"},
                 "responseElements": {"arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"}}}"#;

    #[test]
    fn put_secret_value_names_the_secret() {
        assert_eq!(
            parse(PUT.as_bytes()),
            Ok(Notification::Changed {
                service: Service::SecretsManager,
                names: vec![
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf".into()
                ],
            })
        );
    }

    #[test]
    fn rotation_succeeded_uses_additional_event_data() {
        let body = r#"{"source":"aws.secretsmanager","detail-type":"AWS Service Event via CloudTrail",
            "detail":{"eventName":"RotationSucceeded","additionalEventData":{"SecretId":"app/db"}}}"#;
        assert!(
            matches!(parse(body.as_bytes()), Ok(Notification::Changed { names, .. }) if names == vec!["app/db".to_string()])
        );
    }

    #[test]
    fn reads_are_irrelevant_not_errors() {
        let body = PUT.replace("PutSecretValue", "GetSecretValue");
        assert!(matches!(
            parse(body.as_bytes()),
            Ok(Notification::Irrelevant { .. })
        ));
    }

    #[test]
    fn parameter_store_change_names_the_parameter() {
        let body = r#"{"source":"aws.ssm","detail-type":"Parameter Store Change",
            "resources":["arn:aws:ssm:us-east-1:123456789012:parameter/app/db"],
            "detail":{"name":"/app/db","type":"SecureString","operation":"Update"}}"#;
        let Ok(Notification::Changed { service, names }) = parse(body.as_bytes()) else {
            panic!()
        };
        assert_eq!(service, Service::ParameterStore);
        assert_eq!(
            names,
            vec![
                "/app/db".to_string(),
                "arn:aws:ssm:us-east-1:123456789012:parameter/app/db".to_string()
            ]
        );
    }

    #[test]
    fn native_secret_label_updated_names_the_secret() {
        let body = r#"{"version":"0","source":"aws.secretsmanager","detail-type":"Secret Label Updated",
            "resources":["arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"],
            "detail":{"name":"app/db","labelUpdated":"AWSCURRENT","versionId":"v-2"}}"#;
        assert_eq!(
            parse(body.as_bytes()),
            Ok(Notification::Changed {
                service: Service::SecretsManager,
                names: vec![
                    "app/db".into(),
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf".into()
                ],
            })
        );
    }

    #[test]
    fn unrecognised_events_carry_a_bounded_detail_type() {
        let label = |body: &str| match parse(body.as_bytes()) {
            Ok(Notification::Unrecognised { detail_type }) => detail_type,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            label(
                r#"{"source":"aws.secretsmanager","detail-type":"Secret Rotation Failed","detail":{"name":"a"}}"#
            ),
            "Secret Rotation Failed"
        );
        assert_eq!(
            label(
                r#"{"source":"aws.ssm","detail-type":"Parameter Store Change","detail":{"name":"/a","operation":"Archive"}}"#
            ),
            "Parameter Store Change",
            "a new operation of a known detail-type"
        );
        assert_eq!(
            label(
                r#"{"source":"aws.secretsmanager","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"FutureCall"}}"#
            ),
            "AWS API Call via CloudTrail"
        );
        assert_eq!(
            label(
                r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#
            ),
            "other",
            "another service"
        );
        assert_eq!(
            label(r#"{"source":"aws.ssm","detail-type":"SECRET-VALUE {\"x\": 1}","detail":{}}"#),
            "other",
            "not a plain detail-type"
        );
        let long = format!(
            r#"{{"source":"aws.ssm","detail-type":"{}","detail":{{}}}}"#,
            "a".repeat(65)
        );
        assert_eq!(label(&long), "other");
    }

    #[test]
    fn every_row_is_reachable_and_rows_do_not_overlap() {
        for (i, kind) in EVENT_TABLE.iter().enumerate() {
            assert!(kind.field.is_some() != kind.values.is_empty(), "row {i}");
            for other in &EVENT_TABLE[i + 1..] {
                let same_type =
                    kind.source == other.source && kind.detail_type == other.detail_type;
                assert!(
                    !same_type
                        || (kind.field.is_some()
                            && kind.field == other.field
                            && kind.values.iter().all(|v| !other.values.contains(v))),
                    "rows overlap: {kind:?} / {other:?}"
                );
            }
        }
    }

    #[test]
    fn sns_envelopes_are_unwrapped() {
        let wrapped = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": PUT})
            .to_string();
        assert!(matches!(
            parse(wrapped.as_bytes()),
            Ok(Notification::Changed {
                service: Service::SecretsManager,
                ..
            })
        ));
    }

    #[test]
    fn webhook_payload_names_provider_and_key() {
        let body = br#"{"provider":"aws-parameterstore","key":"/app/db"}"#;
        assert_eq!(
            parse(body),
            Ok(Notification::Changed {
                service: Service::ParameterStore,
                names: vec!["/app/db".into()]
            })
        );
    }

    #[test]
    fn malformed_messages_are_errors_without_content() {
        assert_eq!(parse(b"SECRET-VALUE not json"), Err(ParseError::NotJson));
        assert_eq!(
            parse(br#"{"hello":"SECRET-VALUE"}"#),
            Err(ParseError::UnknownShape)
        );
        let err =
            parse(br#"{"source":"aws.secretsmanager","detail":{"eventName":"PutSecretValue"}}"#)
                .unwrap_err();
        assert_eq!(err, ParseError::NoName);
        assert!(!format!("{err} {err:?}").contains("SECRET"));
    }
}
