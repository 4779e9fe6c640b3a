//! Resolve step (pure): which store an ExternalSecret may use, given what the caches hold.
//! Enforces tenant isolation (SecretStores are namespace-local, ClusterSecretStore conditions); reads nothing itself.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::{ClusterSecretStoreCondition, ExternalSecret, StoreKind, StoreObject};

/// Read access to stores and namespace labels, from watch caches (controller) or files (render).
pub trait StoreLookup {
    fn secret_store(&self, namespace: &str, name: &str) -> Option<StoreObject>;
    fn cluster_secret_store(&self, name: &str) -> Option<StoreObject>;
    /// None when the namespace is unknown.
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error("spec.secretStoreRef.name is empty")]
    NoStoreName,
    #[error("{kind} {name:?} not found{scope}")]
    StoreNotFound {
        kind: &'static str,
        name: String,
        scope: String,
    },
    #[error(
        "ClusterSecretStore {name:?} does not admit namespace {namespace:?} (see its spec.conditions)"
    )]
    NamespaceNotAdmitted { name: String, namespace: String },
    #[error("ClusterSecretStore {name:?} has an invalid condition: {detail}")]
    InvalidCondition { name: String, detail: String },
    #[error("{kind} {name:?} belongs to controller class {class:?}, not ours")]
    OtherControllerClass {
        kind: &'static str,
        name: String,
        class: String,
    },
}

impl ResolveError {
    pub fn category(&self) -> &'static str {
        match self {
            ResolveError::NoStoreName | ResolveError::StoreNotFound { .. } => "StoreNotFound",
            ResolveError::NamespaceNotAdmitted { .. } => "NamespaceNotAdmitted",
            ResolveError::InvalidCondition { .. } => "InvalidStoreConfiguration",
            ResolveError::OtherControllerClass { .. } => "OtherControllerClass",
        }
    }
}

/// Find the store `es` points at and check that its namespace may use it.
pub fn resolve_store(
    es: &ExternalSecret,
    lookup: &dyn StoreLookup,
    controller_class: &str,
) -> Result<StoreObject, ResolveError> {
    let name = es.spec.secret_store_ref.name.as_str();
    if name.is_empty() {
        return Err(ResolveError::NoStoreName);
    }
    let namespace = es.metadata.namespace.as_deref().unwrap_or("default");
    let kind = es.store_kind();
    let store = match kind {
        StoreKind::SecretStore => {
            lookup
                .secret_store(namespace, name)
                .ok_or_else(|| ResolveError::StoreNotFound {
                    kind: kind.as_str(),
                    name: name.to_owned(),
                    scope: format!(" in namespace {namespace:?}"),
                })?
        }
        StoreKind::ClusterSecretStore => {
            lookup
                .cluster_secret_store(name)
                .ok_or_else(|| ResolveError::StoreNotFound {
                    kind: kind.as_str(),
                    name: name.to_owned(),
                    scope: String::new(),
                })?
        }
    };
    let class = store.spec.controller.clone().unwrap_or_default();
    if class != controller_class {
        return Err(ResolveError::OtherControllerClass {
            kind: kind.as_str(),
            name: name.to_owned(),
            class,
        });
    }
    if kind == StoreKind::ClusterSecretStore && !store.spec.conditions.is_empty() {
        let labels = lookup.namespace_labels(namespace).unwrap_or_default();
        let mut admitted = false;
        for condition in &store.spec.conditions {
            if condition_admits(condition, namespace, &labels).map_err(|detail| {
                ResolveError::InvalidCondition {
                    name: name.to_owned(),
                    detail,
                }
            })? {
                admitted = true;
                break;
            }
        }
        if !admitted {
            return Err(ResolveError::NamespaceNotAdmitted {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
    }
    Ok(store)
}

/// One condition admits a namespace when any of its rules matches (ESO: conditions are OR-ed,
/// and within one condition a namespace matching any of the listed ways is admitted).
fn condition_admits(
    condition: &ClusterSecretStoreCondition,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    if condition.namespaces.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    for pattern in &condition.namespace_regexes {
        let re =
            regex::Regex::new(pattern).map_err(|e| format!("namespaceRegexes {pattern:?}: {e}"))?;
        if re.is_match(namespace) {
            return Ok(true);
        }
    }
    if let Some(selector) = &condition.namespace_selector {
        return selector_matches(selector, labels);
    }
    Ok(false)
}

/// Kubernetes label-selector semantics: every matchLabels pair and every expression must hold.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default();
        let value = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => return Err(format!("unknown selector operator {other:?}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretStoreSpec;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fixture {
        stores: HashMap<(String, String), StoreObject>,
        cluster: HashMap<String, StoreObject>,
        namespaces: HashMap<String, BTreeMap<String, String>>,
    }

    impl StoreLookup for Fixture {
        fn secret_store(&self, ns: &str, name: &str) -> Option<StoreObject> {
            self.stores.get(&(ns.into(), name.into())).cloned()
        }
        fn cluster_secret_store(&self, name: &str) -> Option<StoreObject> {
            self.cluster.get(name).cloned()
        }
        fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>> {
            self.namespaces.get(ns).cloned()
        }
    }

    fn store(kind: StoreKind, ns: Option<&str>, spec_yaml: &str) -> StoreObject {
        let spec: SecretStoreSpec = serde_yaml_ng::from_str(spec_yaml).unwrap();
        StoreObject {
            kind,
            name: "s".into(),
            namespace: ns.map(Into::into),
            uid: None,
            generation: Some(1),
            spec,
        }
    }

    fn es(ns: &str, yaml: &str) -> ExternalSecret {
        let mut es: ExternalSecret = serde_yaml_ng::from_str(&format!(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: e, namespace: {ns}}}\nspec: {yaml}"
        ))
        .unwrap();
        es.metadata.namespace = Some(ns.into());
        es
    }

    #[test]
    fn secret_store_in_another_namespace_is_not_visible() {
        let mut f = Fixture::default();
        f.stores.insert(
            ("team-a".into(), "s".into()),
            store(
                StoreKind::SecretStore,
                Some("team-a"),
                "provider: {fake: {data: []}}",
            ),
        );
        let got = resolve_store(&es("team-b", "{secretStoreRef: {name: s}}"), &f, "");
        assert_eq!(got.unwrap_err().category(), "StoreNotFound");
        assert!(resolve_store(&es("team-a", "{secretStoreRef: {name: s}}"), &f, "").is_ok());
    }

    #[test]
    fn cluster_store_conditions_admit_by_name_regex_or_labels() {
        let mut f = Fixture::default();
        f.cluster.insert(
            "s".into(),
            store(
                StoreKind::ClusterSecretStore,
                None,
                "provider: {fake: {data: []}}\nconditions:\n- namespaces: [named]\n- namespaceRegexes: ['^team-.*$']\n- namespaceSelector: {matchLabels: {tier: prod}}",
            ),
        );
        f.namespaces.insert(
            "labelled".into(),
            [("tier".to_string(), "prod".to_string())].into(),
        );
        let spec = "{secretStoreRef: {name: s, kind: ClusterSecretStore}}";
        for admitted in ["named", "team-x", "labelled"] {
            assert!(
                resolve_store(&es(admitted, spec), &f, "").is_ok(),
                "{admitted}"
            );
        }
        let err = resolve_store(&es("other", spec), &f, "").unwrap_err();
        assert_eq!(
            err,
            ResolveError::NamespaceNotAdmitted {
                name: "s".into(),
                namespace: "other".into()
            }
        );
    }

    #[test]
    fn cluster_store_without_conditions_admits_every_namespace() {
        let mut f = Fixture::default();
        f.cluster.insert(
            "s".into(),
            store(
                StoreKind::ClusterSecretStore,
                None,
                "provider: {fake: {data: []}}",
            ),
        );
        assert!(
            resolve_store(
                &es(
                    "anything",
                    "{secretStoreRef: {name: s, kind: ClusterSecretStore}}"
                ),
                &f,
                ""
            )
            .is_ok()
        );
    }

    #[test]
    fn store_of_another_controller_class_is_left_alone() {
        let mut f = Fixture::default();
        f.stores.insert(
            ("ns".into(), "s".into()),
            store(
                StoreKind::SecretStore,
                Some("ns"),
                "controller: other\nprovider: {fake: {data: []}}",
            ),
        );
        let err = resolve_store(&es("ns", "{secretStoreRef: {name: s}}"), &f, "").unwrap_err();
        assert_eq!(err.category(), "OtherControllerClass");
    }

    #[test]
    fn selector_expressions_follow_kubernetes_semantics() {
        let sel: LabelSelector = serde_yaml_ng::from_str(
            "matchExpressions: [{key: env, operator: In, values: [prod, stage]}, {key: legacy, operator: DoesNotExist}]",
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            selector_matches(&sel, &labels(&[("env", "prod")])),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel, &labels(&[("env", "dev")])),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&sel, &labels(&[("env", "prod"), ("legacy", "1")])),
            Ok(false)
        );
    }
}
