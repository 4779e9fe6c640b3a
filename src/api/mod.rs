//! The `external-secrets.io/v1` API served by secret-sync, mirroring ESO's field names and meanings,
//! and the `generators.external-secrets.io/v1alpha1` kinds it runs (`generators`).
//! Types and their defaults only: no I/O, no reconcile logic.

pub mod aws;
pub mod condition;
pub mod external_secret;
pub mod generators;
mod schema;
pub mod secret_store;

pub use condition::{Condition, ConditionStatus};
pub use external_secret::*;
pub use secret_store::*;

/// The API group and version shared by every kind we serve.
pub const GROUP: &str = "external-secrets.io";
pub const VERSION: &str = "v1";

use kube::CustomResourceExt;

/// The CRDs generated from the Rust types, in the order they should be installed.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        SecretStore::crd(),
        ClusterSecretStore::crd(),
        ExternalSecret::crd(),
        generators::ECRAuthorizationToken::crd(),
        generators::Password::crd(),
        generators::ClusterGenerator::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let mut value = serde_json::to_value(&crd).unwrap_or_default();
        tidy_schema(&mut value);
        serde_json::from_value(value).unwrap_or(crd)
    })
    .collect()
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
