//! The reload decision (pure): from a workload's annotations, its pod template and the data hashes
//! of our Secrets, what to write. No client and no clock; the same inputs always give the same plan.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::refs::OptIn;

/// Pod-template annotation; changing it is what makes the workload controller roll the pods.
pub const SECRETS_HASH_ANNOTATION: &str = "secret-sync.io/secrets-hash";
/// Workload-metadata annotation: `name=data-hash,…` of the covered Secrets as last seen. It lives
/// outside the pod template so that recording it never rolls pods.
pub const OBSERVED_ANNOTATION: &str = "secret-sync.io/observed-secrets";

/// Secret name -> `secret-sync.io/data-hash`, for the Secrets of one namespace we know about.
pub type Hashes = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// What is recorded is what is there: write nothing.
    Unchanged,
    /// Remember the current hashes without touching the pods: first sight of the workload (operator
    /// start-up, new opt-in), or a covered Secret appeared for the first time.
    Record { observed: String },
    /// The data of a Secret in the record changed: roll the pods, then remember.
    Rollout {
        observed: String,
        template_hash: String,
    },
    /// The workload opted out: drop our record, so that opting in again starts without a restart.
    Forget,
}

/// Decide what to write. `secrets` may hold more Secrets than the workload covers; only the covered
/// ones that we manage count. A rollout happens only when a Secret in the record now has a different
/// data hash. A Secret seen for the first time only joins the record (the pods were waiting for it,
/// or run without an optional one). A covered Secret that is gone keeps its last hash in the record:
/// rolling then would start pods that cannot find it, and if it comes back with other data the pods
/// still hold the old data, so that is a change.
pub fn plan(
    annotations: &BTreeMap<String, String>,
    template: Option<&PodTemplateSpec>,
    secrets: &Hashes,
) -> Plan {
    let Some(opt_in) = OptIn::from_annotations(annotations) else {
        return if annotations.contains_key(OBSERVED_ANNOTATION) {
            Plan::Forget
        } else {
            Plan::Unchanged
        };
    };
    let covered = opt_in.covered(template);
    let current: Hashes = covered
        .iter()
        .filter_map(|name| secrets.get(name).map(|hash| (name.clone(), hash.clone())))
        .collect();
    // An unreadable record (edited by hand) is treated as no record: never restart on a guess.
    let Some(previous) = annotations
        .get(OBSERVED_ANNOTATION)
        .and_then(|v| parse_observed(v))
    else {
        return Plan::Record {
            observed: encode_observed(&current),
        };
    };
    let mut next = current.clone();
    for (name, hash) in &previous {
        if covered.contains(name) && !next.contains_key(name) {
            next.insert(name.clone(), hash.clone());
        }
    }
    if next == previous {
        return Plan::Unchanged;
    }
    let data_changed = current
        .iter()
        .any(|(name, hash)| previous.get(name).is_some_and(|old| old != hash));
    let observed = encode_observed(&next);
    if data_changed {
        Plan::Rollout {
            observed,
            template_hash: secrets_hash(&current),
        }
    } else {
        Plan::Record { observed }
    }
}

/// The merge patch for a plan: annotations only, so nothing else of the workload can be clobbered.
/// `None` for `Unchanged`.
pub fn patch_body(plan: &Plan) -> Option<Value> {
    match plan {
        Plan::Unchanged => None,
        Plan::Record { observed } => Some(json!({
            "metadata": {"annotations": {OBSERVED_ANNOTATION: observed}}
        })),
        Plan::Rollout {
            observed,
            template_hash,
        } => Some(json!({
            "metadata": {"annotations": {OBSERVED_ANNOTATION: observed}},
            "spec": {"template": {"metadata": {"annotations": {SECRETS_HASH_ANNOTATION: template_hash}}}}
        })),
        // In a merge patch, null deletes the key.
        Plan::Forget => Some(json!({
            "metadata": {"annotations": {OBSERVED_ANNOTATION: null}}
        })),
    }
}

/// Hash over the (name, data hash) pairs, length-prefixed so that no two sets share an encoding.
pub fn secrets_hash(hashes: &Hashes) -> String {
    let mut hasher = Sha256::new();
    for (name, hash) in hashes {
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update((hash.len() as u64).to_be_bytes());
        hasher.update(hash.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// `a=h1,b=h2` in name order. Secret names hold neither ',' nor '=', and data hashes are hex.
fn encode_observed(hashes: &Hashes) -> String {
    hashes
        .iter()
        .map(|(name, hash)| format!("{name}={hash}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_observed(value: &str) -> Option<Hashes> {
    if value.trim().is_empty() {
        return Some(Hashes::new());
    }
    value
        .split(',')
        .map(|pair| {
            let (name, hash) = pair.trim().split_once('=')?;
            (!name.is_empty() && !hash.is_empty()).then(|| (name.to_owned(), hash.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::refs::{RELOAD_ANNOTATION, RELOAD_SECRETS_ANNOTATION};
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn uses(names: &[&str]) -> PodTemplateSpec {
        let env: Vec<String> = names
            .iter()
            .map(|n| format!("{{name: E, valueFrom: {{secretKeyRef: {{name: {n}, key: k}}}}}}"))
            .collect();
        serde_yaml_ng::from_str(&format!(
            "spec: {{containers: [{{name: app, env: [{}]}}]}}",
            env.join(", ")
        ))
        .unwrap()
    }

    fn opted_in_with(observed: Option<&str>) -> BTreeMap<String, String> {
        let mut a = map(&[(RELOAD_ANNOTATION, "true")]);
        if let Some(o) = observed {
            a.insert(OBSERVED_ANNOTATION.to_owned(), o.to_owned());
        }
        a
    }

    #[test]
    fn first_sight_records_the_hashes_without_a_restart() {
        let plan = plan(
            &opted_in_with(None),
            Some(&uses(&["db", "api"])),
            &map(&[("db", "h1"), ("api", "h2"), ("other", "h3")]),
        );
        assert_eq!(
            plan,
            Plan::Record {
                observed: "api=h2,db=h1".into()
            }
        );
    }

    #[test]
    fn unchanged_data_writes_nothing() {
        let plan = plan(
            &opted_in_with(Some("api=h2,db=h1")),
            Some(&uses(&["db", "api"])),
            &map(&[("db", "h1"), ("api", "h2")]),
        );
        assert_eq!(plan, Plan::Unchanged);
    }

    #[test]
    fn changed_data_of_a_used_secret_rolls_the_pods_to_the_hash_of_the_pairs() {
        let secrets = map(&[("db", "h1-new"), ("api", "h2")]);
        let plan = plan(
            &opted_in_with(Some("api=h2,db=h1")),
            Some(&uses(&["db", "api"])),
            &secrets,
        );
        let expected_hash = secrets_hash(&secrets);
        assert_eq!(
            plan,
            Plan::Rollout {
                observed: "api=h2,db=h1-new".into(),
                template_hash: expected_hash
            }
        );
    }

    #[test]
    fn a_change_to_a_secret_the_workload_does_not_use_is_ignored() {
        let plan = plan(
            &opted_in_with(Some("db=h1")),
            Some(&uses(&["db"])),
            &map(&[("db", "h1"), ("unrelated", "changed")]),
        );
        assert_eq!(plan, Plan::Unchanged);
    }

    #[test]
    fn a_secret_seen_for_the_first_time_is_recorded_without_a_restart() {
        let appeared = plan(
            &opted_in_with(Some("db=h1")),
            Some(&uses(&["db", "api"])),
            &map(&[("db", "h1"), ("api", "h2")]),
        );
        assert_eq!(
            appeared,
            Plan::Record {
                observed: "api=h2,db=h1".into()
            }
        );
    }

    #[test]
    fn a_deleted_secret_keeps_its_record_and_comes_back_as_a_change_only_with_other_data() {
        let record = opted_in_with(Some("api=h2,db=h1"));
        let template = uses(&["db", "api"]);
        assert_eq!(
            plan(&record, Some(&template), &map(&[("db", "h1")])),
            Plan::Unchanged
        );
        assert_eq!(
            plan(
                &record,
                Some(&template),
                &map(&[("db", "h1"), ("api", "h2")])
            ),
            Plan::Unchanged
        );
        assert!(matches!(
            plan(
                &record,
                Some(&template),
                &map(&[("db", "h1"), ("api", "h2-new")])
            ),
            Plan::Rollout { .. }
        ));
    }

    #[test]
    fn a_secret_the_template_stopped_using_leaves_the_record() {
        let plan = plan(
            &opted_in_with(Some("api=h2,db=h1")),
            Some(&uses(&["db"])),
            &map(&[("db", "h1"), ("api", "h2")]),
        );
        assert_eq!(
            plan,
            Plan::Record {
                observed: "db=h1".into()
            }
        );
    }

    #[test]
    fn a_data_change_together_with_a_new_secret_still_rolls() {
        let plan = plan(
            &opted_in_with(Some("db=h1")),
            Some(&uses(&["db", "api"])),
            &map(&[("db", "h1-new"), ("api", "h2")]),
        );
        assert!(matches!(plan, Plan::Rollout { .. }), "{plan:?}");
    }

    #[test]
    fn reload_secrets_counts_only_the_named_secrets() {
        let annotations = map(&[
            (RELOAD_SECRETS_ANNOTATION, "api"),
            (OBSERVED_ANNOTATION, "api=h2"),
        ]);
        let template = uses(&["db", "api"]);
        assert_eq!(
            plan(
                &annotations,
                Some(&template),
                &map(&[("db", "changed"), ("api", "h2")])
            ),
            Plan::Unchanged
        );
        assert!(matches!(
            plan(
                &annotations,
                Some(&template),
                &map(&[("db", "h1"), ("api", "changed")])
            ),
            Plan::Rollout { .. }
        ));
    }

    #[test]
    fn opting_out_forgets_the_record_and_never_opted_in_is_left_alone() {
        let mut annotations = map(&[(OBSERVED_ANNOTATION, "db=h1")]);
        assert_eq!(
            plan(&annotations, Some(&uses(&["db"])), &map(&[("db", "h2")])),
            Plan::Forget
        );
        annotations.clear();
        assert_eq!(
            plan(&annotations, Some(&uses(&["db"])), &map(&[("db", "h2")])),
            Plan::Unchanged
        );
    }

    #[test]
    fn an_unreadable_record_is_replaced_without_a_restart() {
        let plan = plan(
            &opted_in_with(Some("garbage")),
            Some(&uses(&["db"])),
            &map(&[("db", "h1")]),
        );
        assert_eq!(
            plan,
            Plan::Record {
                observed: "db=h1".into()
            }
        );
    }

    #[test]
    fn applying_a_plan_makes_the_next_plan_unchanged() {
        // The loop guard: after our own write, the same inputs must ask for nothing more.
        let secrets = map(&[("db", "h1-new")]);
        let first = plan(
            &opted_in_with(Some("db=h1")),
            Some(&uses(&["db"])),
            &secrets,
        );
        let Plan::Rollout { observed, .. } = first else {
            panic!("expected a rollout, got {first:?}")
        };
        assert_eq!(
            plan(
                &opted_in_with(Some(&observed)),
                Some(&uses(&["db"])),
                &secrets
            ),
            Plan::Unchanged
        );
    }

    #[test]
    fn patches_touch_only_annotations() {
        let rollout = patch_body(&Plan::Rollout {
            observed: "db=h".into(),
            template_hash: "t".into(),
        })
        .unwrap();
        assert_eq!(
            rollout,
            json!({"metadata": {"annotations": {OBSERVED_ANNOTATION: "db=h"}},
                   "spec": {"template": {"metadata": {"annotations": {SECRETS_HASH_ANNOTATION: "t"}}}}})
        );
        let record = patch_body(&Plan::Record {
            observed: String::new(),
        })
        .unwrap();
        assert_eq!(
            record,
            json!({"metadata": {"annotations": {OBSERVED_ANNOTATION: ""}}})
        );
        assert_eq!(
            patch_body(&Plan::Forget).unwrap(),
            json!({"metadata": {"annotations": {OBSERVED_ANNOTATION: null}}})
        );
        assert_eq!(patch_body(&Plan::Unchanged), None);
    }

    #[test]
    fn the_secrets_hash_depends_on_every_name_and_hash() {
        let a = secrets_hash(&map(&[("a", "1"), ("b", "2")]));
        assert_ne!(a, secrets_hash(&map(&[("a", "1"), ("b", "3")])));
        assert_ne!(a, secrets_hash(&map(&[("a", "1"), ("c", "2")])));
        assert_ne!(a, secrets_hash(&map(&[("a", "1b"), ("", "2")])));
        assert_eq!(a, secrets_hash(&map(&[("b", "2"), ("a", "1")])));
    }
}
