//! Pure parsing of rotation notifications: EventBridge envelopes (CloudTrail API calls, Parameter
//! Store Change), SNS-wrapped ones, and the webhook's `{provider, key}`. Returns names only; never logs.

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
    /// A well-formed event that does not change a value (e.g. a read, or a tag update we ignore).
    Irrelevant { reason: &'static str },
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

/// Secrets Manager API calls that change what GetSecretValue returns (or whether it succeeds).
const SECRETS_MANAGER_CHANGES: &[&str] = &[
    "PutSecretValue",
    "UpdateSecret",
    "RotateSecret",
    "RotationSucceeded",
    "UpdateSecretVersionStage",
    "DeleteSecret",
    "RestoreSecret",
    "CancelRotateSecret",
];

/// Parameter Store Change operations that change a value, a version or a label.
const PARAMETER_STORE_CHANGES: &[&str] = &["Create", "Update", "Delete", "LabelParameterVersion"];

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
    let source = value.get("source").and_then(Value::as_str);
    let detail = value.get("detail");
    match (source, detail) {
        (Some("aws.secretsmanager"), Some(detail)) => secrets_manager(value, detail),
        (Some("aws.ssm"), Some(detail)) => parameter_store(value, detail),
        (Some(_), Some(_)) => Ok(Notification::Irrelevant {
            reason: "event from another service",
        }),
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

fn secrets_manager(event: &Value, detail: &Value) -> Result<Notification, ParseError> {
    let event_name = detail
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !SECRETS_MANAGER_CHANGES.contains(&event_name) {
        return Ok(Notification::Irrelevant {
            reason: "API call that changes no value",
        });
    }
    let mut names = Vec::new();
    let candidates = [
        detail.pointer("/requestParameters/secretId"),
        detail.pointer("/requestParameters/name"),
        detail.pointer("/additionalEventData/SecretId"),
        detail.pointer("/responseElements/arn"),
        detail.pointer("/responseElements/aRN"),
    ];
    names.extend(
        candidates
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    names.extend(resources(event));
    dedup(&mut names);
    if names.is_empty() {
        return Err(ParseError::NoName);
    }
    Ok(Notification::Changed {
        service: Service::SecretsManager,
        names,
    })
}

fn parameter_store(event: &Value, detail: &Value) -> Result<Notification, ParseError> {
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if detail_type != "Parameter Store Change" {
        return Ok(Notification::Irrelevant {
            reason: "SSM event other than Parameter Store Change",
        });
    }
    let operation = detail
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !PARAMETER_STORE_CHANGES.contains(&operation) {
        return Ok(Notification::Irrelevant {
            reason: "parameter operation that changes no value",
        });
    }
    let mut names: Vec<String> = detail
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    names.extend(resources(event));
    dedup(&mut names);
    if names.is_empty() {
        return Err(ParseError::NoName);
    }
    Ok(Notification::Changed {
        service: Service::ParameterStore,
        names,
    })
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
