//! The provider boundary: one trait that fetches many remote values at once, so batching, dedup and
//! caching live in each backend. Providers return raw documents; selecting properties is `controller::build`'s job.

pub mod aws;
pub mod fake;
pub mod value;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::api::{ProviderChoice, StoreObject};
pub use value::SecretBytes;

/// One remote document to fetch: a key at a version, or its metadata (tags) instead of its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchRequest {
    pub key: String,
    /// None means the provider's current version.
    pub version: Option<String>,
    /// `metadataPolicy: Fetch`: the document is the remote object's tags as a JSON object.
    pub metadata: bool,
}

impl FetchRequest {
    pub fn current(key: impl Into<String>) -> Self {
        FetchRequest {
            key: key.into(),
            version: None,
            metadata: false,
        }
    }
}

/// One `dataFrom[].find` as a backend sees it (ESO's `GetAllSecrets`): the names, path and tags to
/// match. Key conversion, decoding and rewrites are the build step's, on what this returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FindRequest {
    /// A Go regular expression matched anywhere in the remote name (`find.name.regexp`).
    pub name_regexp: Option<String>,
    pub path: Option<String>,
    /// Each must be on the remote secret with exactly this value.
    pub tags: std::collections::BTreeMap<String, String>,
    /// `find.conversionStrategy`: only ESO's fake provider applies it itself, to the names it returns.
    pub conversion: crate::api::ConversionStrategy,
}

/// What a find matched: every value by its remote name (a secret or parameter name).
pub type Found = std::collections::BTreeMap<String, SecretBytes>;

/// Why a fetch failed. Messages name the key, never a value.
///
/// Only [`ProviderError::is_gone`] variants are evidence that the source itself no longer exists; they
/// alone may let a deletion policy delete a Secret or drop keys. Every other variant (a missing version,
/// a throttle, a denial, a malformed answer) is an error that leaves the Secret untouched.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    /// The secret or parameter itself does not exist (for a pinned version, confirmed by a second read).
    #[error("remote key {key:?} not found")]
    NotFound { key: String },
    /// The secret exists but is scheduled for deletion (Secrets Manager `DeletedDate`): gone for readers.
    #[error("remote key {key:?} is scheduled for deletion")]
    DeletionScheduled { key: String },
    /// The secret exists but the requested version, stage or label does not.
    #[error("version {version:?} of remote key {key:?} not found")]
    VersionNotFound { key: String, version: String },
    #[error("access denied reading {key:?}: {detail}")]
    AccessDenied { key: String, detail: String },
    #[error("provider throttled the request for {key:?}")]
    Throttled {
        key: String,
        retry_after: Option<Duration>,
    },
    #[error("provider unavailable for {key:?}: {detail}")]
    Unavailable { key: String, detail: String },
    /// The provider refused the request for the current state of the resource (AWS InvalidRequestException).
    #[error("provider refused the request for {key:?}: {detail}")]
    InvalidRequest { key: String, detail: String },
    #[error("invalid provider configuration: {detail}")]
    InvalidConfig { detail: String },
    #[error("failed to authenticate to the provider: {detail}")]
    Authentication { detail: String },
    /// A `dataFrom.find` matched more remote secrets than `--find-limit` allows: nothing is read.
    #[error(
        "dataFrom.find matched more than {limit} remote secrets (--find-limit); narrow its name, path or tags"
    )]
    FindLimitExceeded { limit: usize },
    /// The provider cannot run this `dataFrom.find` (a shape it does not support).
    #[error("failed to run dataFrom.find: {detail}")]
    FindUnsupported { detail: String },
}

impl ProviderError {
    /// Bounded label for metrics, Events and status.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::NotFound { .. } => "NotFound",
            ProviderError::DeletionScheduled { .. } => "DeletionScheduled",
            ProviderError::VersionNotFound { .. } => "VersionNotFound",
            ProviderError::AccessDenied { .. } => "AccessDenied",
            ProviderError::Throttled { .. } => "Throttled",
            ProviderError::Unavailable { .. } => "Unavailable",
            ProviderError::InvalidRequest { .. } => "InvalidRequest",
            ProviderError::InvalidConfig { .. } => "InvalidProviderConfig",
            ProviderError::Authentication { .. } => "AuthenticationFailed",
            ProviderError::FindLimitExceeded { .. } => "FindLimitExceeded",
            ProviderError::FindUnsupported { .. } => "Unsupported",
        }
    }

    /// Positive evidence that the source is gone: the only outcome a deletion policy may act on.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            ProviderError::NotFound { .. } | ProviderError::DeletionScheduled { .. }
        )
    }

    /// Permanent failures are retried slowly: they need a change to the store or the ExternalSecret.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ProviderError::AccessDenied { .. }
                | ProviderError::VersionNotFound { .. }
                | ProviderError::InvalidRequest { .. }
                | ProviderError::InvalidConfig { .. }
                | ProviderError::Authentication { .. }
                | ProviderError::FindLimitExceeded { .. }
                | ProviderError::FindUnsupported { .. }
        )
    }
}

/// When a remote secret was last rotated and last changed, where the backend records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationTimes {
    pub last_rotated: Option<std::time::SystemTime>,
    pub last_changed: Option<std::time::SystemTime>,
}

/// A backend that reads secret documents.
#[async_trait]
pub trait SecretProvider: Send + Sync {
    /// Fetch every request; the answer has one result per request, in the same order.
    /// Requests arrive deduplicated.
    async fn fetch_many(
        &self,
        requests: &[FetchRequest],
    ) -> Vec<Result<SecretBytes, ProviderError>>;

    /// A real check that the store's configuration and credentials work (store Ready condition).
    async fn validate(&self) -> Result<(), ProviderError>;

    /// Rotation dates for each key (rotation-age monitoring), one result per key in order. Backends
    /// that record none answer with empty times.
    async fn rotation_times(&self, keys: &[String]) -> Vec<Result<RotationTimes, ProviderError>> {
        keys.iter().map(|_| Ok(RotationTimes::default())).collect()
    }

    /// Change detection (`--change-detection=list`): for each request, a token that differs whenever its
    /// document may have changed (a Secrets Manager VersionId, a parameter's version number, a digest of
    /// tags), as a bulk listing saw it, one per request in order; `None` for a request the listing
    /// cannot vouch for (not listed, a pinned version it does not show, a shape it does not cover).
    /// `max_age: Some(d)`: from a listing started at most `d` ago, listing now if needed (one listing
    /// serves every caller of the identity). `max_age: None`: from the last complete listing, whatever
    /// its age, never listing. The whole answer is `None` when the backend has no listing or it failed
    /// (then every request is fetched). A token never claims more than the listing saw: taken before a
    /// fetch, it is at most as new as the fetched document.
    async fn versions(
        &self,
        requests: &[FetchRequest],
        max_age: Option<Duration>,
    ) -> Option<Vec<Option<String>>> {
        let _ = (requests, max_age);
        None
    }

    /// `dataFrom[].find`: every current value matching `request`, by remote name. Matching nothing is
    /// `Ok` and empty; secrets scheduled for deletion never match. More than `limit` matches is
    /// `FindLimitExceeded`, found before any value is read.
    async fn find(&self, request: &FindRequest, limit: usize) -> Result<Found, ProviderError> {
        let _ = (request, limit);
        Err(ProviderError::FindUnsupported {
            detail: "this provider does not support dataFrom.find".to_owned(),
        })
    }
}

/// The answers of every `dataFrom[].find` of one reconcile, by request.
pub type FoundAll = std::collections::HashMap<FindRequest, Result<Found, ProviderError>>;

/// The find step: each distinct find once, one after the other (each may page through a listing).
pub async fn find_all(
    provider: &dyn SecretProvider,
    requests: Vec<FindRequest>,
    limit: usize,
) -> FoundAll {
    let mut out = FoundAll::new();
    for request in requests {
        let answer = provider.find(&request, limit).await;
        out.insert(request, answer);
    }
    out
}

/// `find.name.regexp` compiled as Go compiles it, or the find's error.
pub(crate) fn find_matcher(
    request: &FindRequest,
) -> Result<Option<crate::goregex::GoRegex>, ProviderError> {
    request
        .name_regexp
        .as_deref()
        .map(crate::goregex::GoRegex::new)
        .transpose()
        .map_err(|e| ProviderError::FindUnsupported {
            detail: e.to_string(),
        })
}

/// The fetch step: every request in one provider call, answers keyed by request for the build step.
pub async fn fetch_documents(
    provider: &dyn SecretProvider,
    requests: Vec<FetchRequest>,
) -> std::collections::HashMap<FetchRequest, Result<SecretBytes, ProviderError>> {
    let results = provider.fetch_many(&requests).await;
    requests.into_iter().zip(results).collect()
}

/// Builds the provider for a store. Backends keep their own caches (credentials, clients) inside.
#[derive(Clone, Default)]
pub struct Providers {
    /// Needed by providers that read Kubernetes objects (credentials Secrets, ServiceAccount tokens).
    pub kube: Option<kube::Client>,
    /// Provider API calls are counted here (`externalsecret_provider_api_calls_count`).
    pub metrics: Arc<crate::admin::Metrics>,
    /// AWS identities (credentials, SDK clients), shared by every store that resolves to the same identity.
    pub aws: Arc<aws::AwsProviders>,
}

impl Providers {
    pub fn new(kube: Option<kube::Client>) -> Self {
        Self::with_metrics(kube, Arc::default())
    }

    pub fn with_metrics(kube: Option<kube::Client>, metrics: Arc<crate::admin::Metrics>) -> Self {
        let aws = Arc::new(aws::AwsProviders::new(kube.clone(), metrics.clone()));
        Providers { kube, metrics, aws }
    }

    /// The provider for `store`, used on behalf of an ExternalSecret in `namespace`.
    pub async fn for_store(
        &self,
        store: &StoreObject,
        namespace: &str,
    ) -> Result<Arc<dyn SecretProvider>, ProviderError> {
        match store.spec.provider.choice() {
            ProviderChoice::Fake(fake) => Ok(Arc::new(fake::FakeSecretProvider::new(
                fake,
                self.metrics.clone(),
            ))),
            ProviderChoice::Aws(aws) => self.aws.for_store(store, aws, namespace).await,
            ProviderChoice::Unsupported(name) => Err(ProviderError::InvalidConfig {
                detail: format!("provider {name} is not supported"),
            }),
            ProviderChoice::Missing => Err(ProviderError::InvalidConfig {
                detail: "spec.provider names no provider".to_owned(),
            }),
            ProviderChoice::Ambiguous(names) => Err(ProviderError::InvalidConfig {
                detail: format!(
                    "spec.provider must name exactly one provider, found {}",
                    names.join(", ")
                ),
            }),
        }
    }
}
