//! Status step: derive the ExternalSecret status from what the pipeline did (pure), and write it only
//! when it differs, so status writes never trigger reconcile loops or churn.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};

use super::apply::Change;
use super::{Context, SyncError};
use crate::api::condition::{self, Condition, ConditionStatus};
use crate::api::{Binding, CreationPolicy, ExternalSecret, ExternalSecretStatus, reason};

/// What the status should say after a sync attempt.
pub fn desired_status(
    es: &ExternalSecret,
    outcome: &Result<Change, SyncError>,
    synced_version: &str,
    now: &Time,
) -> ExternalSecretStatus {
    let mut status = es.status.clone().unwrap_or_default();
    let target = es.target_name();
    // SecretDeleted and SecretMissing are Ready=True, as in ESO: nothing is wrong with the
    // ExternalSecret itself.
    let ready = match outcome {
        Ok(Change::Deleted | Change::AlreadyDeleted) => {
            status.synced_resource_version = Some(synced_version.to_owned());
            Condition::new(
                "Ready",
                ConditionStatus::True,
                reason::SECRET_DELETED,
                deleted_message(es),
            )
        }
        // Not a sync: no syncedResourceVersion, so the next reconcile tries again.
        Ok(Change::TargetMissing) => Condition::new(
            "Ready",
            ConditionStatus::True,
            reason::SECRET_MISSING,
            format!(
                "target Secret {target:?} does not exist; creationPolicy Merge only adds keys to an existing Secret"
            ),
        ),
        Ok(change) => {
            if matches!(change, Change::Created | Change::Updated) || status.refresh_time.is_none()
            {
                status.refresh_time = Some(now.clone());
            }
            status.synced_resource_version = Some(synced_version.to_owned());
            status.binding =
                (es.spec.target.creation_policy != CreationPolicy::None).then(|| Binding {
                    name: target.clone(),
                });
            let message = match change {
                Change::NotWritten => {
                    "values fetched; creationPolicy None writes no Secret".to_owned()
                }
                Change::ImmutableKept => immutable_kept_message(es),
                Change::NothingFound => format!(
                    "dataFrom.find matched no remote secret and nothing else is left to write; \
                     Secret {target:?} is kept as it is"
                ),
                _ => format!("Secret {target:?} is synced"),
            };
            Condition::new(
                "Ready",
                ConditionStatus::True,
                reason::SECRET_SYNCED,
                message,
            )
        }
        Err(err) => Condition::new(
            "Ready",
            ConditionStatus::False,
            reason::SECRET_SYNCED_ERROR,
            err.status_message(),
        ),
    };
    condition::upsert(&mut status.conditions, ready, now);
    status
}

/// Ready stays True: the Secret is what was synced before; only a new Secret can take the new data.
pub fn immutable_kept_message(es: &ExternalSecret) -> String {
    format!(
        "the source changed, but Secret {:?} is immutable and keeps the data it was created with; delete it to have it re-created with the new data",
        es.target_name()
    )
}

/// What "every remote key is gone" did, per deletion policy.
pub fn deleted_message(es: &ExternalSecret) -> String {
    let target = es.target_name();
    match es.spec.target.deletion_policy {
        crate::api::DeletionPolicy::Delete => {
            format!(
                "every remote key is gone; Secret {target:?} was deleted (deletionPolicy Delete)"
            )
        }
        _ => format!(
            "every remote key is gone; our keys were removed from Secret {target:?} (deletionPolicy Merge)"
        ),
    }
}

/// Server-side apply of the status subresource, skipped when nothing changed.
pub async fn write_if_changed(
    ctx: &Context,
    es: &ExternalSecret,
    desired: ExternalSecretStatus,
) -> Result<bool, kube::Error> {
    if es.status.as_ref() == Some(&desired) {
        return Ok(false);
    }
    let api: Api<ExternalSecret> = Api::namespaced(
        ctx.client.clone(),
        es.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let body = serde_json::json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "status": desired,
    });
    let name = es.metadata.name.clone().unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::apply(&ctx.config.field_manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    ctx.metrics.kube_write("externalsecrets/status", "apply");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderError;
    use k8s_openapi::jiff::Timestamp;

    fn es() -> ExternalSecret {
        serde_yaml_ng::from_str("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app, namespace: ns}\nspec: {}").unwrap()
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn success_sets_ready_refresh_time_and_binding() {
        let st = desired_status(&es(), &Ok(Change::Created), "1-abc", &at(100));
        let ready = condition::find(&st.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (ConditionStatus::True, Some("SecretSynced"))
        );
        assert_eq!(st.refresh_time, Some(at(100)));
        assert_eq!(st.binding.unwrap().name, "app");
        assert_eq!(st.synced_resource_version.as_deref(), Some("1-abc"));
    }

    #[test]
    fn unchanged_refresh_produces_an_identical_status() {
        let mut obj = es();
        obj.status = Some(desired_status(
            &obj,
            &Ok(Change::Created),
            "1-abc",
            &at(100),
        ));
        let again = desired_status(&obj, &Ok(Change::Unchanged), "1-abc", &at(200));
        assert_eq!(
            obj.status,
            Some(again),
            "a no-op refresh must not produce a status write"
        );
    }

    #[test]
    fn failure_keeps_last_sync_data_and_reports_the_error() {
        let mut obj = es();
        obj.status = Some(desired_status(
            &obj,
            &Ok(Change::Created),
            "1-abc",
            &at(100),
        ));
        let err = SyncError::Provider(ProviderError::NotFound { key: "db".into() });
        let st = desired_status(&obj, &Err(err), "2-def", &at(200));
        let ready = condition::find(&st.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (ConditionStatus::False, Some("SecretSyncedError"))
        );
        assert!(ready.message.as_deref().unwrap().contains("\"db\""));
        assert_eq!(st.refresh_time, Some(at(100)));
        assert_eq!(st.synced_resource_version.as_deref(), Some("1-abc"));
    }
}
