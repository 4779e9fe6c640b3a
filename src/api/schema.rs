//! Hand-written schema fragments for fields whose Rust type cannot describe them structurally.
//! Only schema shapes live here; defaults and semantics stay with the types.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any object, kept as sent: used for ESO fields we accept but do not interpret yet.
pub fn open_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A Go duration string, as ESO's metav1.Duration fields are written.
pub fn go_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "default": "1h"
    })
}

/// Adds every unsupported ESO provider as an open object, and requires exactly one provider,
/// so ESO manifests for other providers are accepted and then reported in status.
pub fn accept_other_providers(schema: &mut Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for name in super::secret_store::UNSUPPORTED_PROVIDERS {
            props.insert(
                (*name).to_owned(),
                serde_json::json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true }),
            );
        }
    }
    schema.insert("minProperties".to_owned(), 1.into());
    schema.insert("maxProperties".to_owned(), 1.into());
}
