//! The `external-secrets.io/v1` API served by secret-sync, mirroring ESO's field names and meanings.
//! Types and their defaults only: no I/O, no reconcile logic.

pub mod aws;
mod schema;
pub mod condition;
pub mod external_secret;
pub mod secret_store;

pub use condition::{Condition, ConditionStatus};
pub use external_secret::*;
pub use secret_store::*;

/// The API group and version shared by every kind we serve.
pub const GROUP: &str = "external-secrets.io";
pub const VERSION: &str = "v1";

use kube::CustomResourceExt;

/// The CRDs generated from the Rust types, in the order they should be installed.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    vec![SecretStore::crd(), ClusterSecretStore::crd(), ExternalSecret::crd()]
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
