//! EventBridge event-pattern matching, for the subset of the syntax our documented rule uses: exact
//! values in arrays, nested objects, `$or`, and the `prefix` / `exists` filters. Anything else is
//! an error rather than a guess, so a test over the documented pattern cannot pass by accident.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern must be a JSON object")]
    NotAnObject,
    #[error("`{0}`: a leaf must be an array of values or filters")]
    LeafNotArray(String),
    #[error("`$or` must be an array of objects")]
    BadOr,
    #[error("unsupported filter {0}")]
    Unsupported(String),
}

/// Does `event` match `pattern`? Every field of the pattern must match (AND); the values of one
/// array are alternatives (OR); an array in the event matches when any of its elements does.
pub fn matches(pattern: &Value, event: &Value) -> Result<bool, PatternError> {
    let pattern = pattern.as_object().ok_or(PatternError::NotAnObject)?;
    object_matches(pattern, Some(event))
}

fn object_matches(
    pattern: &Map<String, Value>,
    event: Option<&Value>,
) -> Result<bool, PatternError> {
    let mut all = true;
    for (key, expected) in pattern {
        // Evaluate every field even after a mismatch, so unsupported syntax is always reported.
        let ok = if key == "$or" {
            let alternatives = expected.as_array().ok_or(PatternError::BadOr)?;
            let mut any = false;
            for alternative in alternatives {
                let alternative = alternative.as_object().ok_or(PatternError::BadOr)?;
                any |= object_matches(alternative, event)?;
            }
            any
        } else {
            let field = event.and_then(|e| e.get(key));
            match expected {
                Value::Object(nested) => object_matches(nested, field)?,
                Value::Array(values) => leaf_matches(values, field)?,
                _ => return Err(PatternError::LeafNotArray(key.clone())),
            }
        };
        all &= ok;
    }
    Ok(all)
}

fn leaf_matches(alternatives: &[Value], field: Option<&Value>) -> Result<bool, PatternError> {
    let candidates: Vec<&Value> = match field {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value) => vec![value],
        None => Vec::new(),
    };
    let mut any = false;
    for alternative in alternatives {
        any |= match alternative {
            Value::Object(filter) => filter_matches(filter, field, &candidates)?,
            Value::Array(_) => return Err(PatternError::Unsupported("nested array".into())),
            exact => candidates.contains(&exact),
        };
    }
    Ok(any)
}

fn filter_matches(
    filter: &Map<String, Value>,
    field: Option<&Value>,
    candidates: &[&Value],
) -> Result<bool, PatternError> {
    let mut entries = filter.iter();
    let (Some((name, argument)), None) = (entries.next(), entries.next()) else {
        return Err(PatternError::Unsupported(
            "filter object with other than one key".into(),
        ));
    };
    match (name.as_str(), argument) {
        ("prefix", Value::String(prefix)) => Ok(candidates
            .iter()
            .any(|c| c.as_str().is_some_and(|s| s.starts_with(prefix.as_str())))),
        ("exists", Value::Bool(wanted)) => Ok(field.is_some() == *wanted),
        (other, _) => Err(PatternError::Unsupported(format!("`{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pattern: Value, event: Value) -> bool {
        matches(&pattern, &event).unwrap()
    }

    #[test]
    fn leaf_arrays_are_alternatives_and_fields_all_must_match() {
        let p = json!({"source": ["aws.ssm", "aws.secretsmanager"], "detail-type": ["X"]});
        assert!(m(
            p.clone(),
            json!({"source": "aws.ssm", "detail-type": "X"})
        ));
        assert!(!m(
            p.clone(),
            json!({"source": "aws.ssm", "detail-type": "Y"})
        ));
        assert!(!m(
            p.clone(),
            json!({"source": "aws.ec2", "detail-type": "X"})
        ));
        assert!(
            !m(p, json!({"source": "aws.ssm"})),
            "a missing field never matches"
        );
    }

    #[test]
    fn nested_objects_or_prefix_exists_and_event_arrays() {
        let p = json!({"$or": [
            {"detail": {"eventName": ["PutSecretValue"]}},
            {"detail": {"name": [{"prefix": "/prod/"}]}, "resources": [{"exists": true}]}
        ]});
        assert!(m(
            p.clone(),
            json!({"detail": {"eventName": "PutSecretValue"}})
        ));
        assert!(m(
            p.clone(),
            json!({"detail": {"name": "/prod/db"}, "resources": []})
        ));
        assert!(!m(p.clone(), json!({"detail": {"name": "/prod/db"}})));
        assert!(!m(
            p.clone(),
            json!({"detail": {"name": "/dev/db"}, "resources": []})
        ));
        assert!(!m(p, json!({"detail": "PutSecretValue"})));
        let arrays = json!({"resources": ["arn:b"]});
        assert!(m(arrays.clone(), json!({"resources": ["arn:a", "arn:b"]})));
        assert!(!m(arrays, json!({"resources": ["arn:a"]})));
        // Types are compared exactly, as EventBridge does.
        assert!(!m(json!({"n": ["1"]}), json!({"n": 1})));
    }

    #[test]
    fn unsupported_syntax_is_an_error_not_a_guess() {
        let event = json!({"source": "aws.ssm"});
        for p in [
            json!({"source": [{"anything-but": ["aws.ec2"]}]}),
            json!({"source": "aws.ssm"}),
            json!({"$or": {"source": ["aws.ssm"]}}),
            json!(["aws.ssm"]),
        ] {
            assert!(matches(&p, &event).is_err(), "{p}");
        }
    }
}
