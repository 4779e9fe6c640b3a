//! Generators (`dataFrom[].sourceRef.generatorRef`): read the generator object an ExternalSecret names
//! and produce its keys. Keeps nothing: a generated value lives only in the Secret it is written to.
//!
//! As in ESO (`externalsecret_controller_secret.go`), every sync runs every generator entry again, in
//! `dataFrom` order, even when two entries name the same generator; whether a sync happens at all is the
//! refresh policy's decision (`controller::refresh`).

pub mod password;

use std::collections::BTreeMap;
use std::time::SystemTime;

use kube::Api;

use crate::api::generators::{ClusterGenerator, ECRAuthorizationToken, GeneratorKind, Password};
use crate::api::{ExternalSecret, generators::GeneratorRef};
use crate::provider::aws::AwsProviders;
use crate::provider::{ProviderError, SecretBytes};

/// What one generator entry produced.
#[derive(Debug, Default)]
pub struct Generated {
    pub keys: BTreeMap<String, SecretBytes>,
    /// When the produced credential stops working (ECR tokens), for the renewal rule.
    pub expires_at: Option<SystemTime>,
}

/// Why a generator produced nothing. Names objects and kinds, never a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeneratorError {
    #[error("failed to read {kind} {name:?}: {detail}")]
    Read {
        kind: String,
        name: String,
        detail: String,
    },
    #[error("{kind} {name:?} not found{scope}")]
    NotFound {
        kind: String,
        name: String,
        scope: String,
    },
    #[error(
        "generator kind {kind:?} is not supported by secret-sync (supported: ECRAuthorizationToken, \
         Password, and ClusterGenerators of those kinds)"
    )]
    UnsupportedKind { kind: String },
    #[error("ClusterGenerator {name:?} has kind {kind} but no spec.generator.{field}")]
    MissingSpec {
        name: String,
        kind: &'static str,
        field: &'static str,
    },
    #[error("failed to generate a password with Password {name:?}: {source}")]
    Password {
        name: String,
        source: password::PasswordError,
    },
    #[error("failed to get an ECR token with ECRAuthorizationToken {name:?}: {source}")]
    Ecr { name: String, source: ProviderError },
}

impl GeneratorError {
    /// Bounded label for metrics, Events and status.
    pub fn category(&self) -> &'static str {
        match self {
            GeneratorError::Read { .. } => "KubernetesAPI",
            GeneratorError::NotFound { .. } => "GeneratorNotFound",
            GeneratorError::UnsupportedKind { .. } => "UnsupportedGenerator",
            GeneratorError::MissingSpec { .. } | GeneratorError::Password { .. } => {
                "InvalidGeneratorSpec"
            }
            GeneratorError::Ecr { source, .. } => source.category(),
        }
    }

    /// Failures only an edit can fix. A missing generator is not one of them: it is often applied
    /// together with (or just after) the ExternalSecret.
    pub fn is_permanent(&self) -> bool {
        match self {
            GeneratorError::Read { .. } | GeneratorError::NotFound { .. } => false,
            GeneratorError::UnsupportedKind { .. }
            | GeneratorError::MissingSpec { .. }
            | GeneratorError::Password { .. } => true,
            GeneratorError::Ecr { source, .. } => source.is_permanent(),
        }
    }
}

/// A generator spec we can run, read from a namespaced generator or a ClusterGenerator.
enum Spec {
    Ecr(Box<crate::api::generators::ECRAuthorizationTokenSpec>),
    Password(crate::api::generators::PasswordSpec),
}

/// Run every generator entry of `es`, keyed by its index in `dataFrom`.
pub async fn generate_all(
    kube: &kube::Client,
    aws: &AwsProviders,
    es: &ExternalSecret,
) -> Result<BTreeMap<usize, Generated>, (usize, GeneratorError)> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (index, from) in es.spec.data_from.iter().enumerate() {
        let Some(generator) = crate::controller::build::generator_ref(from) else {
            continue;
        };
        let generated = generate(kube, aws, &namespace, generator)
            .await
            .map_err(|e| (index, e))?;
        out.insert(index, generated);
    }
    Ok(out)
}

/// Read the generator `generator` names (in `namespace`, or cluster-wide for a ClusterGenerator) and run it.
pub async fn generate(
    kube: &kube::Client,
    aws: &AwsProviders,
    namespace: &str,
    generator: &GeneratorRef,
) -> Result<Generated, GeneratorError> {
    let name = generator.name.clone();
    let spec = read_spec(kube, namespace, generator).await?;
    match spec {
        Spec::Password(spec) => {
            let keys = password::generate(&spec)
                .map_err(|source| GeneratorError::Password { name, source })?;
            Ok(Generated {
                keys,
                expires_at: None,
            })
        }
        Spec::Ecr(spec) => {
            let token = aws
                .ecr_token(&spec, namespace)
                .await
                .map_err(|source| GeneratorError::Ecr { name, source })?;
            let expires_at = Some(token.expires_at);
            Ok(Generated {
                keys: token.into_keys(),
                expires_at,
            })
        }
    }
}

async fn read_spec(
    kube: &kube::Client,
    namespace: &str,
    generator: &GeneratorRef,
) -> Result<Spec, GeneratorError> {
    let name = generator.name.as_str();
    let read = |kind: &str| {
        let kind = kind.to_owned();
        move |e: kube::Error| GeneratorError::Read {
            kind,
            name: name.to_owned(),
            detail: crate::controller::kube_message(&e),
        }
    };
    let not_found = |kind: &str, scope: String| GeneratorError::NotFound {
        kind: kind.to_owned(),
        name: name.to_owned(),
        scope,
    };
    let in_namespace = format!(" in namespace {namespace:?}");
    match generator.kind.as_str() {
        "Password" => Api::<Password>::namespaced(kube.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(read("Password"))?
            .map(|g| Spec::Password(g.spec))
            .ok_or_else(|| not_found("Password", in_namespace)),
        "ECRAuthorizationToken" => {
            Api::<ECRAuthorizationToken>::namespaced(kube.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(read("ECRAuthorizationToken"))?
                .map(|g| Spec::Ecr(Box::new(g.spec)))
                .ok_or_else(|| not_found("ECRAuthorizationToken", in_namespace))
        }
        "ClusterGenerator" => {
            let cluster = Api::<ClusterGenerator>::all(kube.clone())
                .get_opt(name)
                .await
                .map_err(read("ClusterGenerator"))?
                .ok_or_else(|| not_found("ClusterGenerator", String::new()))?;
            cluster_spec(name, cluster.spec)
        }
        other => Err(GeneratorError::UnsupportedKind {
            kind: other.to_owned(),
        }),
    }
}

/// The spec a ClusterGenerator's `kind` selects (ESO: "when kind is X, XSpec must be set").
fn cluster_spec(
    name: &str,
    spec: crate::api::generators::ClusterGeneratorSpec,
) -> Result<Spec, GeneratorError> {
    let missing = |kind, field| GeneratorError::MissingSpec {
        name: name.to_owned(),
        kind,
        field,
    };
    match spec.kind {
        GeneratorKind::ECRAuthorizationToken => spec
            .generator
            .ecr_authorization_token_spec
            .map(|spec| Spec::Ecr(Box::new(spec)))
            .ok_or_else(|| missing("ECRAuthorizationToken", "ecrAuthorizationTokenSpec")),
        GeneratorKind::Password => spec
            .generator
            .password_spec
            .map(Spec::Password)
            .ok_or_else(|| missing("Password", "passwordSpec")),
        other => Err(GeneratorError::UnsupportedKind {
            kind: format!("ClusterGenerator/{other:?}"),
        }),
    }
}

/// The earliest expiry among the generated credentials, if any expires.
pub fn earliest_expiry(generated: &BTreeMap<usize, Generated>) -> Option<SystemTime> {
    generated.values().filter_map(|g| g.expires_at).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> crate::api::generators::ClusterGeneratorSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn a_cluster_generator_runs_the_spec_its_kind_names() {
        let spec = cluster("{kind: Password, generator: {passwordSpec: {length: 12}}}");
        assert!(matches!(cluster_spec("g", spec), Ok(Spec::Password(p)) if p.length == 12));
        let spec = cluster(
            "{kind: ECRAuthorizationToken, generator: {ecrAuthorizationTokenSpec: {region: eu-west-1}}}",
        );
        assert!(matches!(cluster_spec("g", spec), Ok(Spec::Ecr(e)) if e.region == "eu-west-1"));
    }

    #[test]
    fn a_cluster_generator_without_its_kinds_spec_or_of_another_kind_is_refused() {
        let spec = cluster("{kind: Password, generator: {ecrAuthorizationTokenSpec: {region: x}}}");
        let err = cluster_spec("g", spec).err().unwrap();
        assert_eq!(err.category(), "InvalidGeneratorSpec");
        assert!(err.to_string().contains("passwordSpec"), "{err}");
        let spec = cluster("{kind: UUID, generator: {uuidSpec: {}}}");
        let err = cluster_spec("g", spec).err().unwrap();
        assert_eq!(err.category(), "UnsupportedGenerator");
        assert!(err.to_string().contains("UUID"), "{err}");
    }

    #[test]
    fn the_earliest_expiry_counts() {
        let at = |s: Option<u64>| Generated {
            keys: BTreeMap::new(),
            expires_at: s.map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s)),
        };
        let all = BTreeMap::from([(0, at(Some(50))), (1, at(None)), (2, at(Some(20)))]);
        assert_eq!(
            earliest_expiry(&all),
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(20))
        );
        assert_eq!(earliest_expiry(&BTreeMap::from([(0, at(None))])), None);
    }
}
