//! The ClusterExternalSecret kind (`ces`, cluster-scoped): one ExternalSecret spec stamped into every
//! selected namespace. Types, defaults and the status vocabulary only; the controller lives in
//! `controller::cluster_external_secret`. Field names and meanings follow ESO's v1 API
//! (apis/externalsecrets/v1/clusterexternalsecret_types.go).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::ConditionStatus;
use super::external_secret::ExternalSecretSpec;

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterExternalSecret",
    shortname = "ces",
    category = "external-secrets",
    status = "ClusterExternalSecretStatus",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.externalSecretSpec.secretStoreRef.name"}"#,
    printcolumn = r#"{"name":"Refresh Interval","type":"string","jsonPath":".spec.refreshTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// The spec of every ExternalSecret created, as written.
    pub external_secret_spec: ExternalSecretSpec,
    /// Name of the ExternalSecrets created; defaults to the ClusterExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub external_secret_name: Option<String>,
    /// Labels and annotations put on every ExternalSecret created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,
    /// Deprecated by ESO in favour of `namespaceSelectors`; still honoured (OR-ed with them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces matching any of these selectors get the ExternalSecret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Deprecated by ESO: namespaces chosen by name, OR-ed with the selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    ))]
    pub namespaces: Vec<String>,
    /// A Go duration: how often namespaces are re-evaluated and children re-checked even without a
    /// change (ESO's controller default, 1h, when unset). Changes are followed at once regardless.
    #[serde(
        rename = "refreshTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExternalSecretMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    /// The name the ExternalSecrets were created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// Selected namespaces whose ExternalSecret could not be written, sorted by namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<NamespaceFailure>,
    /// Namespaces holding this ClusterExternalSecret's ExternalSecret, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterExternalSecretCondition>,
}

impl ClusterExternalSecretStatus {
    /// `(namespace, reason)` of every failed namespace, in status order (for people and tests).
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.failed_namespaces
            .iter()
            .map(|f| {
                (
                    f.namespace.as_str(),
                    f.reason.as_deref().unwrap_or_default(),
                )
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceFailure {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// ESO's ClusterExternalSecret condition has no reason and no transition time: only `Ready`,
/// True when every selected namespace was provisioned (also when none is selected), else False.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterExternalSecretCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The Ready message when any namespace failed, as ESO writes it.
pub const NAMESPACES_FAILED: &str = "one or more namespaces failed";

/// The start of a failedNamespaces reason for an ExternalSecret we did not create, as ESO writes it
/// (we append which object it is and who holds it).
pub const ALREADY_EXISTS: &str = "external secret already exists in namespace";

impl ClusterExternalSecret {
    /// The name of the ExternalSecrets to create: `externalSecretName`, else the CES's own name.
    pub fn child_name(&self) -> String {
        self.spec
            .external_secret_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// The deprecated singular selector first, then the list, as ESO OR-s them.
    pub fn selectors(&self) -> impl Iterator<Item = &LabelSelector> {
        self.spec
            .namespace_selector
            .iter()
            .chain(self.spec.namespace_selectors.iter())
    }
}
