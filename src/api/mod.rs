//! The `external-secrets.io/v1` API served by secret-sync (also served as the deprecated `v1beta1`,
//! same schema), mirroring ESO's field names and meanings, and the
//! `generators.external-secrets.io/v1alpha1` kinds it runs (`generators`).
//! Types and their defaults only: no I/O, no reconcile logic.

pub mod aws;
pub mod cluster_external_secret;
pub mod condition;
pub mod external_secret;
pub mod generators;
mod schema;
pub mod secret_store;

pub use cluster_external_secret::{
    ClusterExternalSecret, ClusterExternalSecretCondition, ClusterExternalSecretSpec,
    ClusterExternalSecretStatus, ExternalSecretMetadata, NamespaceFailure,
};
pub use condition::{Condition, ConditionStatus};
pub use external_secret::*;
pub use secret_store::*;

/// The API group and version shared by every kind we serve.
pub const GROUP: &str = "external-secrets.io";
pub const VERSION: &str = "v1";
/// ESO's previous version, still served (deprecated) with the very same schema and no conversion:
/// the API server only rewrites `apiVersion`, and the controller reads everything as v1. ESO's own
/// chart served both this way from v0.16.0 (v1 promoted as an unchanged copy of v1beta1, conversion
/// webhook off by default) until v1beta1 was unserved in v0.17.0. The field-by-field comparison is
/// in docs/v1beta1.md.
pub const LEGACY_VERSION: &str = "v1beta1";

/// The kinds served at v1beta1 too (compared field by field in docs/v1beta1.md). Other kinds are
/// served only at the versions their own derive gives them.
pub const LEGACY_KINDS: &[&str] = &["SecretStore", "ClusterSecretStore", "ExternalSecret"];

/// Whether `api_version` (as written in a manifest) is one we serve: `external-secrets.io/v1` or
/// `external-secrets.io/v1beta1`. ESO's v1alpha1 has another shape and is not served.
pub fn is_served(api_version: &str) -> bool {
    api_version
        .strip_prefix(GROUP)
        .and_then(|v| v.strip_prefix('/'))
        .is_some_and(|v| v == VERSION || v == LEGACY_VERSION)
}

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};
use kube::CustomResourceExt;

/// The CRDs generated from the Rust types, in the order they should be installed. Each serves v1
/// (storage) and v1beta1 (deprecated, same schema, `conversion: None`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        SecretStore::crd(),
        ClusterSecretStore::crd(),
        ExternalSecret::crd(),
        ClusterExternalSecret::crd(),
        generators::ECRAuthorizationToken::crd(),
        generators::Password::crd(),
        generators::ClusterGenerator::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let mut value = serde_json::to_value(&crd).unwrap_or_default();
        tidy_schema(&mut value);
        let crd = serde_json::from_value(value).unwrap_or(crd);
        with_legacy_version(crd)
    })
    .collect()
}

/// Adds v1beta1 as a copy of the v1 entry: served, not stored, deprecated with the API server's own
/// wording. Kubernetes' `conversion: None` only rewrites `apiVersion`, which is all that is needed
/// when both versions have one schema (apiextensions.k8s.io/v1 CustomResourceConversion).
fn with_legacy_version(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let kind = crd.spec.names.kind.clone();
    if crd.spec.group != GROUP || !LEGACY_KINDS.contains(&kind.as_str()) {
        return crd;
    }
    if let Some(current) = crd.spec.versions.iter().find(|v| v.name == VERSION) {
        let mut legacy = current.clone();
        legacy.name = LEGACY_VERSION.to_owned();
        legacy.served = true;
        legacy.storage = false;
        legacy.deprecated = Some(true);
        legacy.deprecation_warning = Some(format!(
            "{GROUP}/{LEGACY_VERSION} {kind} is deprecated; use {GROUP}/{VERSION} {kind}"
        ));
        crd.spec.versions.push(legacy);
    }
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "None".to_owned(),
        webhook: None,
    });
    crd
}

/// Remove what serde's `default` leaks into the schema but ESO's CRDs do not have: `null` in enums
/// (Option<enum>) and empty defaults (`""`, `[]`, `{name: ""}`), which the API server would otherwise
/// write into every stored object.
fn tidy_schema(value: &mut serde_json::Value) {
    use serde_json::Value;
    fn is_empty_default(v: &Value) -> bool {
        match v {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.values().all(is_empty_default),
            Value::Null => true,
            _ => false,
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if map.get("default").is_some_and(is_empty_default) {
                map.remove("default");
            }
            map.values_mut().for_each(tidy_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy_schema),
        _ => {}
    }
}

/// All CRDs as one multi-document YAML stream, exactly as committed under `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
