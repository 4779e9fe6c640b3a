//! Rotation age (pure): is a source older than the `secret-sync.io/max-age` an ExternalSecret allows?
//! Works from the rotation dates a provider reports; fetching them and writing status happen elsewhere.

use std::time::{Duration, SystemTime};

use crate::api::condition::{Condition, ConditionStatus};
use crate::provider::RotationTimes;

/// Annotation holding the longest acceptable time since the source's last rotation ("90d", "720h").
pub const MAX_AGE_ANNOTATION: &str = "secret-sync.io/max-age";
pub const CONDITION: &str = "RotationOverdue";

/// "90d", or any Go duration ("2160h", "1h30m").
pub fn parse_max_age(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Some(days) = raw.strip_suffix('d') {
        let days: u64 = days.parse().ok()?;
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero());
    }
    let nanos = go_parse_duration::parse_duration(raw).ok()?;
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos)
}

fn days(d: Duration) -> u64 {
    d.as_secs() / 86_400
}

/// The RotationOverdue condition for these sources: True when any source was last rotated (or, if it
/// never was, last changed) longer ago than `max_age`; Unknown when the provider reports no date.
pub fn verdict(
    max_age: Duration,
    sources: &[(String, RotationTimes)],
    now: SystemTime,
) -> Condition {
    let mut overdue = Vec::new();
    let mut unknown = Vec::new();
    for (key, times) in sources {
        match times.last_rotated.or(times.last_changed) {
            Some(at) => {
                let age = now.duration_since(at).unwrap_or_default();
                if age > max_age {
                    overdue.push(format!("{key:?} last rotated {} days ago", days(age)));
                }
            }
            None => unknown.push(format!("{key:?}")),
        }
    }
    if !overdue.is_empty() {
        return Condition::new(
            CONDITION,
            ConditionStatus::True,
            "MaxAgeExceeded",
            format!("{} (max-age {} days)", overdue.join("; "), days(max_age)),
        );
    }
    if !unknown.is_empty() {
        return Condition::new(
            CONDITION,
            ConditionStatus::Unknown,
            "RotationDateUnknown",
            format!(
                "the provider reports no rotation or change date for {}",
                unknown.join(", ")
            ),
        );
    }
    Condition::new(
        CONDITION,
        ConditionStatus::False,
        "WithinMaxAge",
        format!("every source was rotated within {} days", days(max_age)),
    )
}

/// The condition for an annotation that cannot be parsed.
pub fn invalid_max_age(raw: &str) -> Condition {
    Condition::new(
        CONDITION,
        ConditionStatus::Unknown,
        "InvalidMaxAge",
        format!(
            "annotation {MAX_AGE_ANNOTATION}={raw:?} is not a duration such as \"90d\" or \"720h\""
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days_ago: u64, now: SystemTime) -> Option<SystemTime> {
        now.checked_sub(DAY * days_ago as u32)
    }

    #[test]
    fn max_age_accepts_days_and_go_durations() {
        assert_eq!(parse_max_age("90d"), Some(DAY * 90));
        assert_eq!(parse_max_age("720h"), Some(DAY * 30));
        assert_eq!(parse_max_age("0d"), None);
        assert_eq!(parse_max_age("soon"), None);
    }

    #[test]
    fn a_source_older_than_max_age_is_overdue() {
        let now = SystemTime::now();
        let sources = vec![
            (
                "fresh".to_string(),
                RotationTimes {
                    last_rotated: at(10, now),
                    last_changed: at(1, now),
                },
            ),
            (
                "stale".to_string(),
                RotationTimes {
                    last_rotated: at(120, now),
                    last_changed: at(1, now),
                },
            ),
        ];
        let c = verdict(DAY * 90, &sources, now);
        assert_eq!(
            (c.status, c.reason.as_deref()),
            (ConditionStatus::True, Some("MaxAgeExceeded"))
        );
        assert!(
            c.message
                .unwrap()
                .contains("\"stale\" last rotated 120 days ago")
        );
    }

    #[test]
    fn never_rotated_sources_count_from_their_last_change() {
        let now = SystemTime::now();
        let sources = vec![(
            "manual".to_string(),
            RotationTimes {
                last_rotated: None,
                last_changed: at(5, now),
            },
        )];
        assert_eq!(
            verdict(DAY * 90, &sources, now).status,
            ConditionStatus::False
        );
        let old = vec![(
            "manual".to_string(),
            RotationTimes {
                last_rotated: None,
                last_changed: at(95, now),
            },
        )];
        assert_eq!(verdict(DAY * 90, &old, now).status, ConditionStatus::True);
    }

    #[test]
    fn unknown_dates_give_an_unknown_condition() {
        let c = verdict(
            DAY,
            &[("k".to_string(), RotationTimes::default())],
            SystemTime::now(),
        );
        assert_eq!(c.status, ConditionStatus::Unknown);
    }
}
