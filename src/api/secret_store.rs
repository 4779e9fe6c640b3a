//! SecretStore (`ss`) and ClusterSecretStore (`css`): which provider to reach and with what identity.
//! Only the fake and aws providers are interpreted; every other ESO provider is accepted and reported.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::aws::AwsProvider;
use super::condition::Condition;

/// Shared by both store kinds, as in ESO.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "SecretStore",
    namespaced,
    shortname = "ss",
    category = "external-secrets",
    status = "SecretStoreStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// Controller class: a store naming another class is left to that controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    pub provider: SecretStoreProvider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Seconds between store re-validations; 0 or empty uses the controller default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<i64>,
    /// ClusterSecretStore only: which namespaces may use the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

/// The cluster-scoped twin of SecretStore; its spec type is the same.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterSecretStore",
    shortname = "css",
    category = "external-secrets",
    status = "SecretStoreStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(transparent)]
pub struct ClusterSecretStoreSpec(pub SecretStoreSpec);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
}

/// Exactly one provider is set. `aws` and `fake` are implemented; the others are kept as written so
/// that the store can say clearly which provider it does not support.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::schema::accept_other_providers)]
pub struct SecretStoreProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake: Option<FakeProvider>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// ESO providers accepted by the schema but not implemented here.
pub const UNSUPPORTED_PROVIDERS: &[&str] = &[
    "azurekv",
    "akeyless",
    "bitwardensecretsmanager",
    "vault",
    "ovh",
    "gcpsm",
    "oracle",
    "ibm",
    "yandexcertificatemanager",
    "yandexlockbox",
    "github",
    "gitlab",
    "onepassword",
    "onepasswordSDK",
    "webhook",
    "kubernetes",
    "senhasegura",
    "scaleway",
    "doppler",
    "previder",
    "onboardbase",
    "keepersecurity",
    "conjur",
    "delinea",
    "secretserver",
    "chef",
    "pulumi",
    "fortanix",
    "passworddepot",
    "passbolt",
    "dvls",
    "infisical",
    "beyondtrust",
    "beyondtrustworkloadcredentials",
    "cloudrusm",
    "volcengine",
    "ngrok",
    "barbican",
    "nebiusmysterybox",
    "alibaba",
    "device42",
];

/// What the provider block asks for, after checking that exactly one provider is named.
#[derive(Debug, PartialEq)]
pub enum ProviderChoice<'a> {
    Aws(&'a AwsProvider),
    Fake(&'a FakeProvider),
    Unsupported(String),
    Missing,
    Ambiguous(Vec<String>),
}

impl SecretStoreProvider {
    pub fn choice(&self) -> ProviderChoice<'_> {
        let mut named: Vec<String> = self.other.keys().cloned().collect();
        if self.aws.is_some() {
            named.push("aws".to_owned());
        }
        if self.fake.is_some() {
            named.push("fake".to_owned());
        }
        if named.len() > 1 {
            named.sort();
            return ProviderChoice::Ambiguous(named);
        }
        match (&self.aws, &self.fake, named.pop()) {
            (Some(aws), _, _) => ProviderChoice::Aws(aws),
            (_, Some(fake), _) => ProviderChoice::Fake(fake),
            (_, _, Some(other)) => ProviderChoice::Unsupported(other),
            (_, _, None) => ProviderChoice::Missing,
        }
    }
}

/// ESO's fake provider: static values held in the store spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProvider {
    #[serde(default)]
    pub data: Vec<FakeProviderData>,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProviderData {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Deprecated in ESO; still honoured: served as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_map: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Values in a fake store are test secrets, but still secrets: never printed.
impl std::fmt::Debug for FakeProviderData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProviderData")
            .field("key", &self.key)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
}

/// Store condition reasons, as ESO names them.
pub mod store_reason {
    pub const VALID: &str = "Valid";
    pub const INVALID_PROVIDER_CONFIG: &str = "InvalidProviderConfig";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const INVALID_STORE: &str = "InvalidStoreConfiguration";
}

/// Either store kind, as the reconcile pipeline sees it.
#[derive(Clone, Debug)]
pub struct StoreObject {
    pub kind: super::StoreKind,
    pub name: String,
    /// None for a ClusterSecretStore.
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub spec: SecretStoreSpec,
}

impl From<&SecretStore> for StoreObject {
    fn from(s: &SecretStore) -> Self {
        StoreObject {
            kind: super::StoreKind::SecretStore,
            name: s.metadata.name.clone().unwrap_or_default(),
            namespace: s.metadata.namespace.clone(),
            uid: s.metadata.uid.clone(),
            generation: s.metadata.generation,
            spec: s.spec.clone(),
        }
    }
}

impl From<&ClusterSecretStore> for StoreObject {
    fn from(s: &ClusterSecretStore) -> Self {
        StoreObject {
            kind: super::StoreKind::ClusterSecretStore,
            name: s.metadata.name.clone().unwrap_or_default(),
            namespace: None,
            uid: s.metadata.uid.clone(),
            generation: s.metadata.generation,
            spec: s.spec.0.clone(),
        }
    }
}
