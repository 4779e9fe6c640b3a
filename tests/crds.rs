//! The CRDs: generated from the Rust types, committed without drift, structural and CEL-free (so they
//! install on Kubernetes 1.24+), and accepting manifests written in ESO's documented style unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use secret_sync::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};
use support::assert_subset;
use support::cluster::TestCluster;

const COMMITTED: &str = include_str!("../crds/external-secrets.io.yaml");

#[test]
fn committed_crds_match_the_generated_ones() {
    let generated = secret_sync::api::crds_yaml().unwrap();
    assert!(
        generated == COMMITTED,
        "crds/external-secrets.io.yaml is out of date: run `cargo run -- crds > crds/external-secrets.io.yaml`"
    );
}

#[test]
fn crds_use_no_cel_rules_and_keep_every_schema_structural() {
    assert!(
        !COMMITTED.contains("x-kubernetes-validations"),
        "CEL rules need Kubernetes 1.25+ without feature gates"
    );
    for crd in secret_sync::api::crds() {
        for v in &crd.spec.versions {
            let at = format!("{} {}", crd.spec.names.kind, v.name);
            assert!(
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{at} has a status subresource"
            );
            let schema = serde_json::to_value(
                v.schema
                    .as_ref()
                    .unwrap()
                    .open_api_v3_schema
                    .as_ref()
                    .unwrap(),
            )
            .unwrap();
            assert_structural(&schema, &at);
        }
    }
}

/// v1beta1 is served next to v1 with the very same schema, printer columns and status subresource,
/// stored as v1, deprecated, and without conversion (the API server only rewrites apiVersion).
#[test]
fn every_kind_serves_v1beta1_as_a_deprecated_copy_of_v1_stored_as_v1() {
    let crds = secret_sync::api::crds();
    for kind in ["SecretStore", "ClusterSecretStore", "ExternalSecret"] {
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("a CRD for {kind}"));
        let names: Vec<(&str, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(
            names,
            [("v1", true, true), ("v1beta1", true, false)],
            "{kind}: v1 stored, v1beta1 served; v1alpha1 not served"
        );
        let (v1, beta) = (&crd.spec.versions[0], &crd.spec.versions[1]);
        assert_eq!(
            v1.schema, beta.schema,
            "{kind}: one schema for both versions"
        );
        assert_eq!(v1.subresources, beta.subresources, "{kind}");
        assert_eq!(
            v1.additional_printer_columns, beta.additional_printer_columns,
            "{kind}"
        );
        assert_eq!(v1.deprecated, None, "{kind}: v1 is not deprecated");
        assert_eq!(beta.deprecated, Some(true), "{kind}");
        assert_eq!(
            beta.deprecation_warning.as_deref(),
            Some(
                format!(
                    "external-secrets.io/v1beta1 {kind} is deprecated; use external-secrets.io/v1 {kind}"
                )
                .as_str()
            )
        );
        assert_eq!(
            crd.spec.conversion.as_ref().map(|c| c.strategy.as_str()),
            Some("None"),
            "{kind}: no conversion webhook"
        );
    }
}

/// Structural schemas (apiextensions v1) need a type on every node unless it preserves unknown fields
/// or is int-or-string; `anyOf`/`oneOf` may not carry types of their own.
fn assert_structural(node: &serde_json::Value, path: &str) {
    let Some(map) = node.as_object() else { return };
    let open =
        map.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::Value::Bool(true));
    let int_or_string =
        map.get("x-kubernetes-int-or-string") == Some(&serde_json::Value::Bool(true));
    assert!(
        map.contains_key("type") || open || int_or_string,
        "schema node {path} has no type"
    );
    for (key, child) in map {
        match key.as_str() {
            "properties" => {
                for (name, prop) in child.as_object().unwrap() {
                    assert_structural(prop, &format!("{path}.{name}"));
                }
            }
            "items" | "additionalProperties" if child.is_object() => {
                assert_structural(child, &format!("{path}[]"))
            }
            "anyOf" | "oneOf" | "allOf" | "not" => {
                panic!("{path} uses {key}, which our CRDs avoid for old API servers")
            }
            _ => {}
        }
    }
}

/// ESO-style manifests under tests/fixtures/eso/.
const FIXTURES: [&str; 3] = [
    "stores.yaml",
    "external-secrets.yaml",
    "cluster-external-secrets.yaml",
];

#[test]
fn eso_style_manifests_deserialize_into_our_types() {
    for file in FIXTURES {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/eso/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            match value["kind"].as_str().unwrap() {
                "ClusterExternalSecret" => {
                    drop(serde_json::from_value::<ClusterExternalSecret>(value).unwrap())
                }
                "SecretStore" => drop(serde_json::from_value::<SecretStore>(value).unwrap()),
                "ClusterSecretStore" => {
                    drop(serde_json::from_value::<ClusterSecretStore>(value).unwrap())
                }
                "ExternalSecret" => drop(serde_json::from_value::<ExternalSecret>(value).unwrap()),
                other => panic!("unexpected kind {other}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eso_style_manifests_are_accepted_by_the_api_server_without_pruning() {
    let limit = fake_apiserver::test_time::scaled(Duration::from_secs(60));
    tokio::time::timeout(limit, async {
        let c = TestCluster::without_controller().await;
        for file in FIXTURES {
            let text = std::fs::read_to_string(format!(
                "{}/tests/fixtures/eso/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            c.apply(&text).await;
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let sent: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
                let kind = sent["kind"].as_str().unwrap();
                let plural = match kind {
                    "ClusterExternalSecret" => "clusterexternalsecrets",
                    "SecretStore" => "secretstores",
                    "ClusterSecretStore" => "clustersecretstores",
                    _ => "externalsecrets",
                };
                let ar = ApiResource {
                    group: "external-secrets.io".into(),
                    version: "v1".into(),
                    api_version: "external-secrets.io/v1".into(),
                    kind: kind.into(),
                    plural: plural.into(),
                };
                let name = sent["metadata"]["name"].as_str().unwrap();
                let api: Api<DynamicObject> = match sent["metadata"]["namespace"].as_str() {
                    Some(ns) => Api::namespaced_with(c.client.clone(), ns, &ar),
                    None => Api::all_with(c.client.clone(), &ar),
                };
                let stored = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
                assert_subset(
                    &sent["spec"],
                    &stored["spec"],
                    &format!("{kind}/{name}.spec"),
                );
            }
        }
    })
    .await
    .expect("within time limit");
}

/// Every generator object in the corpus (ECRAuthorizationToken, Password), as written, is accepted by
/// the API server with nothing pruned, and reads into our types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_generators_are_accepted_without_pruning() {
    let limit = fake_apiserver::test_time::scaled(Duration::from_secs(60));
    tokio::time::timeout(limit, async {
        let c = TestCluster::without_controller().await;
        let mut seen = Vec::new();
        for file in support::corpus_files() {
            let text = std::fs::read_to_string(&file).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let Ok(sent) = <serde_json::Value as serde::Deserialize>::deserialize(doc) else {
                    continue;
                };
                if sent["apiVersion"] != "generators.external-secrets.io/v1alpha1" {
                    continue;
                }
                let kind = sent["kind"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "Password" => drop(
                        serde_json::from_value::<secret_sync::api::generators::Password>(
                            sent.clone(),
                        )
                        .unwrap(),
                    ),
                    "ECRAuthorizationToken" => {
                        drop(
                            serde_json::from_value::<
                                secret_sync::api::generators::ECRAuthorizationToken,
                            >(sent.clone())
                            .unwrap(),
                        )
                    }
                    other => panic!("{}: unexpected generator kind {other}", file.display()),
                }
                if let Some(ns) = sent["metadata"]["namespace"].as_str() {
                    c.apply(&format!(
                        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
                    ))
                    .await;
                }
                c.apply(&serde_json::to_string(&sent).unwrap()).await;
                let ar = ApiResource {
                    group: "generators.external-secrets.io".into(),
                    version: "v1alpha1".into(),
                    api_version: "generators.external-secrets.io/v1alpha1".into(),
                    kind: kind.clone(),
                    plural: format!("{}s", kind.to_lowercase()),
                };
                let name = sent["metadata"]["name"].as_str().unwrap();
                let ns = sent["metadata"]["namespace"].as_str().unwrap_or("default");
                let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), ns, &ar);
                let stored = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
                assert_subset(
                    &sent["spec"],
                    &stored["spec"],
                    &format!("{kind}/{name}.spec"),
                );
                seen.push(format!("{kind}/{name}"));
            }
        }
        // 019, 021, 035 (two), 036, 042.
        assert_eq!(seen.len(), 6, "{seen:?}");
    })
    .await
    .expect("within time limit");
}
