//! Status conditions shared by ExternalSecret and the stores, and the rule that keeps
//! `lastTransitionTime` stable unless the status really changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: Some(reason.to_owned()),
            message: Some(message.into()),
            last_transition_time: None,
        }
    }

    /// Same type, status, reason and message: writing it again would change nothing a user can see.
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
    }
}

/// Put `desired` into `conditions`, keeping the previous `lastTransitionTime` when the status did not
/// change, so that a repeated reconcile produces a byte-identical status (and no write).
pub fn upsert(conditions: &mut Vec<Condition>, mut desired: Condition, now: &Time) {
    match conditions.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(existing) => {
            desired.last_transition_time = if existing.status == desired.status {
                existing
                    .last_transition_time
                    .clone()
                    .or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            };
            *existing = desired;
        }
        None => {
            desired.last_transition_time = Some(now.clone());
            conditions.push(desired);
        }
    }
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn unchanged_status_keeps_the_transition_time() {
        let mut conds = vec![];
        upsert(
            &mut conds,
            Condition::new("Ready", ConditionStatus::True, "SecretSynced", "ok"),
            &at(10),
        );
        upsert(
            &mut conds,
            Condition::new("Ready", ConditionStatus::True, "SecretSynced", "ok again"),
            &at(20),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Some(at(10)));
        assert_eq!(conds[0].message.as_deref(), Some("ok again"));
    }

    #[test]
    fn flipped_status_moves_the_transition_time() {
        let mut conds = vec![];
        upsert(
            &mut conds,
            Condition::new("Ready", ConditionStatus::True, "SecretSynced", "ok"),
            &at(10),
        );
        upsert(
            &mut conds,
            Condition::new("Ready", ConditionStatus::False, "SecretSyncedError", "bad"),
            &at(20),
        );
        assert_eq!(conds[0].last_transition_time, Some(at(20)));
        assert_eq!(conds[0].status, ConditionStatus::False);
    }
}
