//! AWS Secrets Manager and Parameter Store: one identity (credentials, SDK clients, validation result) per
//! distinct store identity, built once and shared. Must not select properties or decode values (that is
//! `controller::build`'s job), and must never log, format or keep secret values outside `SecretBytes`.

pub mod credentials;
pub mod ecr;
mod errors;
mod listing;
mod parameter_store;
mod secrets_manager;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use tokio::sync::OnceCell;

use self::credentials::{IdentityKey, ServiceAccountInfo};
use super::{ProviderError, SecretProvider};
use crate::admin::Metrics;
use crate::api::StoreObject;
use crate::api::aws::{AwsProvider, AwsService};

/// How long a successful credential check stands before the store is re-checked.
const VALID_FOR: Duration = Duration::from_secs(300);
/// A failed check is retried sooner: the fix may be outside the store (an IAM policy, a Secret).
const INVALID_FOR: Duration = Duration::from_secs(30);
/// ServiceAccount annotations are re-read at most this often.
const SERVICE_ACCOUNT_TTL: Duration = Duration::from_secs(300);
/// After BatchGetSecretValue is refused, use GetSecretValue for this long before trying a batch again.
const BATCH_DENIED_FOR: Duration = Duration::from_secs(900);
/// Identities nobody used for this long are dropped (their credentials with them).
const IDLE_IDENTITY: Duration = Duration::from_secs(2 * 3600);

/// Process-wide AWS state: the base SDK configuration, the credentials cache and every identity built so far.
pub struct AwsProviders {
    kube: Option<kube::Client>,
    metrics: Arc<Metrics>,
    base: OnceCell<SdkConfig>,
    /// One cache for all identities: each credentials provider has its own partition in it.
    identity_cache: SharedIdentityCache,
    identities: Mutex<HashMap<IdentityKey, Arc<AwsIdentity>>>,
    service_accounts: Mutex<HashMap<(String, String), (Instant, ServiceAccountInfo)>>,
}

impl Default for AwsProviders {
    fn default() -> Self {
        AwsProviders::new(None, Arc::default())
    }
}

impl AwsProviders {
    /// The base configuration is read from the environment (AWS_REGION, AWS_ENDPOINT_URL, IRSA variables)
    /// on first use, once.
    pub fn new(kube: Option<kube::Client>, metrics: Arc<Metrics>) -> Self {
        AwsProviders {
            kube,
            metrics,
            base: OnceCell::new(),
            identity_cache: IdentityCache::lazy()
                .buffer_time(credentials::REFRESH_BEFORE_EXPIRY)
                // TokenRequest plus STS, with the SDK's retries, can take longer than the 5 s default.
                .load_timeout(Duration::from_secs(30))
                .build(),
            identities: Mutex::new(HashMap::new()),
            service_accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Use `base` instead of the environment: for tests and for embedding with a custom endpoint.
    pub fn with_base_config(
        kube: Option<kube::Client>,
        metrics: Arc<Metrics>,
        base: SdkConfig,
    ) -> Self {
        let providers = AwsProviders::new(kube, metrics);
        // A fresh cell cannot be set already; ignoring the impossible error keeps this infallible.
        let _ = providers.base.set(base);
        providers
    }

    async fn base(&self) -> &SdkConfig {
        self.base
            .get_or_init(|| aws_config::defaults(BehaviorVersion::latest()).load())
            .await
    }

    /// The provider for an `aws` store, used for an ExternalSecret in `es_namespace`.
    pub async fn for_store(
        &self,
        store: &StoreObject,
        spec: &AwsProvider,
        es_namespace: &str,
    ) -> Result<Arc<dyn SecretProvider>, ProviderError> {
        let identity = self.identity(store, spec, es_namespace).await?;
        let prefix = spec.prefix.clone().unwrap_or_default();
        Ok(match spec.service {
            AwsService::SecretsManager => Arc::new(secrets_manager::SecretsManagerProvider::new(
                identity,
                prefix,
                self.metrics.clone(),
            )),
            AwsService::ParameterStore => Arc::new(parameter_store::ParameterStoreProvider::new(
                identity,
                prefix,
                self.metrics.clone(),
            )),
        })
    }

    /// A fresh ECR registry credential for an `ECRAuthorizationToken` generator used by an ExternalSecret
    /// in `es_namespace`. The generator's `auth` and `role` resolve to an identity exactly as a
    /// SecretStore's in that namespace would (shared credentials cache, same auth forms); as in ESO,
    /// `namespace` fields of its references are ignored: a generator only reads its own namespace.
    pub async fn ecr_token(
        &self,
        spec: &crate::api::generators::ECRAuthorizationTokenSpec,
        es_namespace: &str,
    ) -> Result<ecr::EcrToken, ProviderError> {
        if spec.scope.as_deref().is_some_and(|s| s == "public") {
            return Err(ProviderError::InvalidConfig {
                detail: "ECRAuthorizationToken scope public (ECR Public) is not supported"
                    .to_owned(),
            });
        }
        let mut auth = spec.auth.clone();
        if let Some(auth) = auth.as_mut() {
            // ESO's generator session reads jwt first and then lets secretRef replace it: with both
            // given (as ESO's own example shows), the static keys are used.
            if auth.secret_ref.is_some() {
                auth.jwt = None;
            }
            if let Some(keys) = auth.secret_ref.as_mut() {
                keys.access_key_id.namespace = None;
                keys.secret_access_key.namespace = None;
                if let Some(token) = keys.session_token.as_mut() {
                    token.namespace = None;
                }
            }
            if let Some(sa) = auth
                .jwt
                .as_mut()
                .and_then(|j| j.service_account_ref.as_mut())
            {
                sa.namespace = None;
            }
        }
        let aws = AwsProvider {
            region: spec.region.clone(),
            role: spec.role.clone(),
            auth,
            ..AwsProvider::default()
        };
        // The identity rules of a SecretStore in the ExternalSecret's namespace.
        let store = StoreObject {
            kind: crate::api::StoreKind::SecretStore,
            name: String::new(),
            namespace: Some(es_namespace.to_owned()),
            uid: None,
            generation: None,
            spec: crate::api::SecretStoreSpec::default(),
        };
        let identity = self.identity(&store, &aws, es_namespace).await?;
        ecr::authorization_token(&identity, &self.metrics).await
    }

    /// The shared identity of a store: built on first use, then reused until idle for hours.
    pub async fn identity(
        &self,
        store: &StoreObject,
        spec: &AwsProvider,
        es_namespace: &str,
    ) -> Result<Arc<AwsIdentity>, ProviderError> {
        let base = self.base().await;
        let mut spec = spec.clone();
        if spec.region.is_empty() {
            spec.region = base.region().map(|r| r.to_string()).ok_or_else(|| {
                ProviderError::InvalidConfig {
                    detail:
                        "spec.provider.aws.region is empty and the controller has no AWS_REGION"
                            .to_owned(),
                }
            })?;
        }
        let key = credentials::identity_key(store, &spec, es_namespace, |ns, name| {
            self.service_account(ns, name)
        })
        .await?;
        let mut identities = self.identities.lock().map_err(|_| poisoned())?;
        if let Some(identity) = identities.get(&key) {
            identity.touch();
            return Ok(identity.clone());
        }
        identities.retain(|_, id| Arc::strong_count(id) > 1 || id.idle() < IDLE_IDENTITY);
        let common = base
            .to_builder()
            .region(Region::new(key.region.clone()))
            .identity_cache(self.identity_cache.clone())
            // Bounded: the SDK retries throttling and 5xx itself, then the controller backs off per object.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        let provider = credentials::credentials_provider(&key, &common, self.kube.as_ref())?;
        let config = common.into_builder().credentials_provider(provider).build();
        let identity = Arc::new(AwsIdentity::new(key.clone(), config));
        identities.insert(key, identity.clone());
        Ok(identity)
    }

    async fn service_account(
        &self,
        namespace: String,
        name: String,
    ) -> Result<ServiceAccountInfo, ProviderError> {
        let cache_key = (namespace, name);
        {
            let cache = self.service_accounts.lock().map_err(|_| poisoned())?;
            if let Some((at, info)) = cache
                .get(&cache_key)
                .filter(|(at, _)| at.elapsed() < SERVICE_ACCOUNT_TTL)
            {
                let _ = at;
                return Ok(info.clone());
            }
        }
        let kube = self
            .kube
            .as_ref()
            .ok_or_else(|| ProviderError::InvalidConfig {
                detail: "auth.jwt needs a Kubernetes client, and none is configured".to_owned(),
            })?;
        let info = credentials::service_account_info(kube, &cache_key.0, &cache_key.1).await?;
        self.service_accounts
            .lock()
            .map_err(|_| poisoned())?
            .insert(cache_key, (Instant::now(), info.clone()));
        Ok(info)
    }

    /// How many identities are cached (for tests and metrics).
    pub fn identity_count(&self) -> usize {
        self.identities.lock().map(|m| m.len()).unwrap_or_default()
    }
}

/// Count one AWS call in ESO's metric (`externalsecret_provider_api_calls_count`), with ESO's labels.
/// Ask `check` once per distinct key of the requests whose results are `doubtful`, a few at a time:
/// the confirmation step shared by both services' `confirm_missing`.
async fn confirm_each<F, Fut>(
    requests: &[crate::provider::FetchRequest],
    results: &[Result<crate::provider::SecretBytes, ProviderError>],
    doubtful: impl Fn(
        &crate::provider::FetchRequest,
        &Result<crate::provider::SecretBytes, ProviderError>,
    ) -> bool,
    concurrency: usize,
    check: F,
) -> std::collections::HashMap<String, Result<bool, ProviderError>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = (String, Result<bool, ProviderError>)>,
{
    use futures::StreamExt;
    let mut keys: Vec<String> = requests
        .iter()
        .zip(results)
        .filter(|(request, result)| doubtful(request, result))
        .map(|(request, _)| request.key.clone())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    futures::stream::iter(keys)
        .map(check)
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn count<T, E>(metrics: &Metrics, provider: &str, call: &str, result: &Result<T, E>) {
    metrics.provider_call(
        provider,
        call,
        if result.is_ok() { "success" } else { "error" },
        1,
    );
}

fn poisoned() -> ProviderError {
    ProviderError::Unavailable {
        key: String::new(),
        detail: "internal AWS identity cache lock poisoned".to_owned(),
    }
}

/// One AWS identity: its configuration (with cached, self-refreshing credentials), its clients, built once,
/// and the result of its last credential check.
pub struct AwsIdentity {
    key: IdentityKey,
    config: SdkConfig,
    secrets_manager: OnceLock<aws_sdk_secretsmanager::Client>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    sts: OnceLock<aws_sdk_sts::Client>,
    ecr: OnceLock<aws_sdk_ecr::Client>,
    validated: tokio::sync::Mutex<Option<(Instant, Result<(), ProviderError>)>>,
    batch_denied_at: Mutex<Option<Instant>>,
    last_used: Mutex<Instant>,
    /// Last time a call with these credentials succeeded: proof enough that they work (no STS call).
    proven_at: Mutex<Option<Instant>>,
    /// Bulk change detection, one listing per service (`listing.rs`).
    pub(crate) secrets_manager_listing: listing::Listing,
    pub(crate) parameter_store_listing: listing::Listing,
}

impl AwsIdentity {
    fn new(key: IdentityKey, config: SdkConfig) -> Self {
        AwsIdentity {
            key,
            config,
            secrets_manager: OnceLock::new(),
            ssm: OnceLock::new(),
            sts: OnceLock::new(),
            ecr: OnceLock::new(),
            validated: tokio::sync::Mutex::new(None),
            batch_denied_at: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            proven_at: Mutex::new(None),
            secrets_manager_listing: listing::Listing::default(),
            parameter_store_listing: listing::Listing::default(),
        }
    }

    pub fn key(&self) -> &IdentityKey {
        &self.key
    }

    fn touch(&self) {
        if let Ok(mut at) = self.last_used.lock() {
            *at = Instant::now();
        }
    }

    fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    pub(crate) fn secrets_manager(&self) -> &aws_sdk_secretsmanager::Client {
        self.secrets_manager
            .get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.config))
    }

    pub(crate) fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.ssm
            .get_or_init(|| aws_sdk_ssm::Client::new(&self.config))
    }

    pub(crate) fn ecr(&self) -> &aws_sdk_ecr::Client {
        self.ecr
            .get_or_init(|| aws_sdk_ecr::Client::new(&self.config))
    }

    fn sts(&self) -> &aws_sdk_sts::Client {
        self.sts
            .get_or_init(|| aws_sdk_sts::Client::new(&self.config))
    }

    /// Whether BatchGetSecretValue may be tried (it was not refused recently).
    pub(crate) fn batch_allowed(&self) -> bool {
        self.batch_denied_at
            .lock()
            .map(|at| at.is_none_or(|at| at.elapsed() > BATCH_DENIED_FOR))
            .unwrap_or(true)
    }

    /// Many least-privilege policies written for ESO grant GetSecretValue but not BatchGetSecretValue.
    pub(crate) fn batch_denied(&self) {
        if let Ok(mut at) = self.batch_denied_at.lock() {
            *at = Some(Instant::now());
        }
    }

    /// A call with these credentials just succeeded.
    pub(crate) fn proven(&self) {
        if let Ok(mut at) = self.proven_at.lock() {
            *at = Some(Instant::now());
        }
    }

    /// A real credential check, at most once per 5 minutes per identity: a provider call that succeeded
    /// within that time, else STS GetCallerIdentity. In steady state the refreshes themselves prove the
    /// credentials, so no STS call is made.
    pub async fn validate(&self) -> Result<(), ProviderError> {
        if self
            .proven_at
            .lock()
            .is_ok_and(|at| at.is_some_and(|at| at.elapsed() < VALID_FOR))
        {
            return Ok(());
        }
        let mut last = self.validated.lock().await;
        if let Some((at, result)) = last.as_ref() {
            let ttl = if result.is_ok() {
                VALID_FOR
            } else {
                INVALID_FOR
            };
            if at.elapsed() < ttl {
                return result.clone();
            }
        }
        let result = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| errors::from_sdk("sts:GetCallerIdentity", &e));
        *last = Some((Instant::now(), result.clone()));
        result
    }
}
