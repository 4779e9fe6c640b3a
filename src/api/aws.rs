//! `spec.provider.aws` of a store: service, region, role chain and authentication, as ESO spells them.
//! Types only; credentials and clients live in `provider::aws`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    pub service: AwsService,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
    /// Role ARN assumed last, after `additionalRoles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub region: String,
    /// Role ARNs assumed in order before `role`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_roles: Vec<String>,
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_tags: Vec<AwsTag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive_tag_keys: Vec<String>,
    /// Prepended to every remote key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// PushSecret deletion settings in ESO; accepted and unused (we never write to AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::open_object")]
    pub secrets_manager: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AwsService {
    #[default]
    SecretsManager,
    ParameterStore,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AwsTag {
    pub key: String,
    pub value: String,
}

/// At most one of `secretRef` or `jwt`; neither means the controller's own identity (IRSA on EKS).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsAuthSecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<AwsJwtAuth>,
}

impl AwsAuth {
    /// Whether the identity is named without a namespace (`jwt.serviceAccountRef`, or any selector of
    /// `secretRef`). In a ClusterSecretStore ESO resolves such a reference in each ExternalSecret's
    /// namespace ("referent authentication", ESO's `IsReferentSpec` in providers/v1/aws/util), so
    /// the store alone cannot be validated.
    pub fn is_referent(&self) -> bool {
        let unnamed = |ns: &Option<String>| ns.as_deref().is_none_or(str::is_empty);
        let jwt = self
            .jwt
            .as_ref()
            .and_then(|j| j.service_account_ref.as_ref())
            .is_some_and(|sa| unnamed(&sa.namespace));
        let keys = self.secret_ref.as_ref().is_some_and(|k| {
            unnamed(&k.access_key_id.namespace)
                || unnamed(&k.secret_access_key.namespace)
                || k.session_token
                    .as_ref()
                    .is_some_and(|t| unnamed(&t.namespace))
        });
        jwt || keys
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AwsAuthSecretRef {
    #[serde(rename = "accessKeyIDSecretRef", default)]
    pub access_key_id: SecretKeySelector,
    #[serde(rename = "secretAccessKeySecretRef", default)]
    pub secret_access_key: SecretKeySelector,
    #[serde(
        rename = "sessionTokenSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub session_token: Option<SecretKeySelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// A key of a Secret; `namespace` only counts for ClusterSecretStores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountSelector {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn auth(yaml: &str) -> AwsAuth {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn an_identity_named_without_a_namespace_is_referent() {
        assert!(auth("jwt: {serviceAccountRef: {name: sa}}").is_referent());
        assert!(auth("jwt: {serviceAccountRef: {name: sa, namespace: ''}}").is_referent());
        assert!(
            auth(
                "secretRef: {accessKeyIDSecretRef: {name: k, key: id, namespace: ns}, \
                 secretAccessKeySecretRef: {name: k, key: secret}}"
            )
            .is_referent()
        );
        assert!(
            auth(
                "secretRef: {accessKeyIDSecretRef: {name: k, key: id, namespace: ns}, \
                 secretAccessKeySecretRef: {name: k, key: secret, namespace: ns}, \
                 sessionTokenSecretRef: {name: k, key: token}}"
            )
            .is_referent()
        );
    }

    #[test]
    fn an_identity_with_namespaces_or_no_auth_is_not_referent() {
        assert!(!auth("{}").is_referent());
        assert!(!auth("jwt: {}").is_referent());
        assert!(!auth("jwt: {serviceAccountRef: {name: sa, namespace: ns}}").is_referent());
        assert!(
            !auth(
                "secretRef: {accessKeyIDSecretRef: {name: k, key: id, namespace: ns}, \
                 secretAccessKeySecretRef: {name: k, key: secret, namespace: ns}, \
                 sessionTokenSecretRef: {name: k, key: token, namespace: ns}}"
            )
            .is_referent()
        );
    }
}
