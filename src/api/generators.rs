//! The `generators.external-secrets.io/v1alpha1` kinds we serve: `ECRAuthorizationToken`, `Password`
//! and `ClusterGenerator` (ESO's cluster-wide wrapper of any generator spec). Types and defaults only.
//!
//! Field names, defaults and enums follow ESO's `apis/generators/v1alpha1` (types_ecr.go,
//! types_password.go, types_cluster.go). Generator kinds other than these two are accepted in a
//! ClusterGenerator's schema and refused in the ExternalSecret's status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::aws::AwsAuth;

/// The API group and version of every generator kind.
pub const GROUP: &str = "generators.external-secrets.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "generators.external-secrets.io/v1alpha1";

/// ESO marks every generator kind with a status subresource, though none writes a status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorStatus {}

/// An AWS ECR registry credential from `GetAuthorizationToken` (valid 12 hours on AWS).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ECRAuthorizationToken",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    status = "GeneratorStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ECRAuthorizationTokenSpec {
    /// The AWS region of the registry (required, as in ESO).
    pub region: String,
    /// `secretRef` (static keys in the ExternalSecret's namespace) or `jwt.serviceAccountRef` (a
    /// ServiceAccount with an `eks.amazonaws.com/role-arn` annotation); neither: the controller's own
    /// identity (IRSA); both: `secretRef`, as in ESO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
    /// A role assumed on top of the identity above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `private` (default) or `public` (ECR Public). Only private is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A random password. Defaults as ESO's generator: length 24, digits and symbols each 25% of the
/// length (rounded down), ESO's symbol set, upper case allowed, no repeated characters.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Password",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    status = "GeneratorStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSpec {
    /// Characters in the password. 0 (or less) means the default, 24.
    #[serde(default = "default_length")]
    #[schemars(schema_with = "length_schema")]
    pub length: i64,
    /// Digits among them; default `length / 4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<i64>,
    /// Symbols among them; default `length / 4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<i64>,
    /// The symbol alphabet; default ``~!@#$%^&*()_+`-={}|[]\:"<>?,./``; empty means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol_characters: Option<String>,
    #[serde(default)]
    pub no_upper: bool,
    #[serde(default)]
    pub allow_repeat: bool,
    /// Keys to fill, each with its own password; default `["password"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<String>,
    /// How the password is written: raw (default), base64, base64url, base32, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PasswordEncoding>,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        PasswordSpec {
            length: default_length(),
            digits: None,
            symbols: None,
            symbol_characters: None,
            no_upper: false,
            allow_repeat: false,
            secret_keys: Vec::new(),
            encoding: None,
        }
    }
}

fn default_length() -> i64 {
    24
}

fn length_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "integer", "default": 24 })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PasswordEncoding {
    #[default]
    Raw,
    Base64,
    Base64url,
    Base32,
    Hex,
}

/// Every generator kind ESO knows (its `GeneratorKind` enum); only two are served here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GeneratorKind {
    ACRAccessToken,
    BeyondtrustWorkloadCredentialsDynamicSecret,
    CloudsmithAccessToken,
    ECRAuthorizationToken,
    Fake,
    GCRAccessToken,
    GithubAccessToken,
    GitlabDeployToken,
    QuayAccessToken,
    Password,
    SSHKey,
    STSSessionToken,
    UUID,
    VaultDynamicSecret,
    Webhook,
    Grafana,
    MFA,
}

/// ESO's field name for each kind's spec inside `ClusterGenerator.spec.generator`, for the kinds we
/// do not interpret (kept as open objects so their manifests apply).
const OTHER_GENERATOR_SPECS: &[&str] = &[
    "acrAccessTokenSpec",
    "beyondtrustWorkloadCredentialsDynamicSecretSpec",
    "cloudsmithAccessTokenSpec",
    "fakeSpec",
    "gcrAccessTokenSpec",
    "githubAccessTokenSpec",
    "gitlabDeployTokenSpec",
    "quayAccessTokenSpec",
    "sshKeySpec",
    "stsSessionTokenSpec",
    "uuidSpec",
    "vaultDynamicSecretSpec",
    "webhookSpec",
    "grafanaSpec",
    "mfaSpec",
];

/// A generator usable from every namespace: `kind` names which of `generator`'s specs applies.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterGenerator",
    category = "external-secrets",
    category = "external-secrets-generators",
    status = "GeneratorStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGeneratorSpec {
    pub kind: GeneratorKind,
    pub generator: GeneratorSpec,
}

/// Exactly one spec, matching `kind` (ESO: MinProperties=1, MaxProperties=1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = accept_other_generator_specs)]
pub struct GeneratorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecr_authorization_token_spec: Option<ECRAuthorizationTokenSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_spec: Option<PasswordSpec>,
    /// The other kinds' specs, kept as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

fn accept_other_generator_specs(schema: &mut schemars::Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for name in OTHER_GENERATOR_SPECS {
            props.insert(
                (*name).to_owned(),
                serde_json::json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true }),
            );
        }
    }
    schema.insert("minProperties".to_owned(), 1.into());
    schema.insert("maxProperties".to_owned(), 1.into());
}

/// `dataFrom[].sourceRef.generatorRef`: which generator object an ExternalSecret entry uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    /// Defaults to `generators.external-secrets.io/v1alpha1`; ESO accepts only that group.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// A generator kind, or `ClusterGenerator` (ESO's enum; unknown kinds are refused by the API server).
    #[schemars(schema_with = "generator_ref_kind")]
    pub kind: String,
    pub name: String,
}

fn generator_ref_kind(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": [
            "ACRAccessToken", "BeyondtrustWorkloadCredentialsDynamicSecret", "ClusterGenerator",
            "CloudsmithAccessToken", "ECRAuthorizationToken", "Fake", "GCRAccessToken",
            "GithubAccessToken", "GitlabDeployToken", "QuayAccessToken", "Password", "SSHKey",
            "STSSessionToken", "UUID", "VaultDynamicSecret", "Webhook", "Grafana", "MFA"
        ]
    })
}

fn default_api_version() -> String {
    API_VERSION.to_owned()
}
