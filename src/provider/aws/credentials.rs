//! Who we are when calling AWS: the identity key of a store, and the credential providers behind it
//! (controller default chain, keys from a Kubernetes Secret, ServiceAccount web identity, AssumeRole chain).
//! Must not fetch secret values, and must never print, log or put any credential or token in an error.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    self, ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use zeroize::Zeroizing;

use crate::api::aws::{AwsJwtAuth, AwsProvider, SecretKeySelector};
use crate::api::{StoreKind, StoreObject};
use crate::provider::ProviderError;

/// Annotation naming the IAM role of a ServiceAccount (the EKS IRSA convention ESO follows).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// Annotation overriding the token audience STS expects.
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// Shortest lifetime Kubernetes accepts; the token is used once, right away, to call STS.
const TOKEN_LIFETIME_SECONDS: i64 = 600;
/// Visible in CloudTrail as the session name of every role we assume.
const SESSION_NAME: &str = "secret-sync";

/// Everything that decides which credentials a store gets. Two stores with equal keys share credentials
/// and clients, so STS is called once for both. Holds references to secrets, never their contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey {
    pub region: String,
    pub base: BaseIdentity,
    /// Roles assumed in order on top of the base identity.
    pub chain: Vec<String>,
    /// Applied to the last role of the chain only (the store's `role`), as ESO does.
    pub external_id: Option<String>,
    pub session_tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BaseIdentity {
    /// The controller's own identity: the SDK default chain (IRSA, Pod Identity, env keys, ...).
    Controller,
    /// Static keys read from Kubernetes Secrets in `namespace`.
    StaticKeys {
        namespace: String,
        access_key_id: (String, String),
        secret_access_key: (String, String),
        session_token: Option<(String, String)>,
    },
    /// A ServiceAccount token exchanged for `role_arn` through AssumeRoleWithWebIdentity.
    ServiceAccount {
        namespace: String,
        name: String,
        audiences: Vec<String>,
        role_arn: String,
    },
}

/// What we need to know about a ServiceAccount to build its identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub role_arn: Option<String>,
    pub audience: Option<String>,
}

/// Read the annotations of a ServiceAccount that decide its AWS identity.
pub async fn service_account_info(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ServiceAccountInfo, ProviderError> {
    let api: Api<ServiceAccount> = Api::namespaced(kube.clone(), namespace);
    let sa = api
        .get_opt(name)
        .await
        .map_err(|e| ProviderError::Unavailable {
            key: format!("serviceaccount/{namespace}/{name}"),
            detail: format!("failed to read the ServiceAccount: {e}"),
        })?;
    let Some(sa) = sa else {
        return Err(ProviderError::InvalidConfig {
            detail: format!(
                "ServiceAccount {namespace}/{name} named by auth.jwt.serviceAccountRef does not exist"
            ),
        });
    };
    let annotations = sa.metadata.annotations.unwrap_or_default();
    let non_empty = |k: &str| annotations.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(ServiceAccountInfo {
        role_arn: non_empty(ROLE_ARN_ANNOTATION),
        audience: non_empty(AUDIENCE_ANNOTATION),
    })
}

/// The namespace a reference may point into: a SecretStore only its own, a ClusterSecretStore the one it
/// names, else the ExternalSecret's (ESO's rule).
fn reference_namespace(
    store: &StoreObject,
    named: Option<&str>,
    es_namespace: &str,
    what: &str,
) -> Result<String, ProviderError> {
    match store.kind {
        StoreKind::SecretStore => {
            let own = store
                .namespace
                .clone()
                .unwrap_or_else(|| es_namespace.to_owned());
            match named {
                Some(ns) if !ns.is_empty() && ns != own => Err(ProviderError::InvalidConfig {
                    detail: format!(
                        "a SecretStore may only reference a {what} in its own namespace {own:?}, not {ns:?}"
                    ),
                }),
                _ => Ok(own),
            }
        }
        StoreKind::ClusterSecretStore => Ok(named
            .filter(|ns| !ns.is_empty())
            .unwrap_or(es_namespace)
            .to_owned()),
    }
}

fn selector_pair(sel: &SecretKeySelector, field: &str) -> Result<(String, String), ProviderError> {
    if sel.name.is_empty() || sel.key.is_empty() {
        return Err(ProviderError::InvalidConfig {
            detail: format!("auth.secretRef.{field} needs both name and key"),
        });
    }
    Ok((sel.name.clone(), sel.key.clone()))
}

/// The identity key of `store`. `service_account` looks a ServiceAccount up (the caller caches it); it is
/// only called for `auth.jwt` stores.
pub async fn identity_key<F, Fut>(
    store: &StoreObject,
    spec: &AwsProvider,
    es_namespace: &str,
    service_account: F,
) -> Result<IdentityKey, ProviderError>
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<ServiceAccountInfo, ProviderError>>,
{
    let auth = spec.auth.clone().unwrap_or_default();
    let mut chain: Vec<String> = spec
        .additional_roles
        .iter()
        .filter(|r| !r.is_empty())
        .cloned()
        .collect();
    let store_role = spec.role.clone().filter(|r| !r.is_empty());
    let mut role_consumed = false;
    let base = match (&auth.secret_ref, &auth.jwt) {
        (Some(_), Some(_)) => {
            return Err(ProviderError::InvalidConfig {
                detail: "auth may set secretRef or jwt, not both".to_owned(),
            });
        }
        (Some(keys), None) => {
            let named = keys.access_key_id.namespace.as_deref();
            let namespace = reference_namespace(store, named, es_namespace, "Secret")?;
            // Every selector must agree with the namespace rule, not just the first one.
            for sel in [Some(&keys.secret_access_key), keys.session_token.as_ref()]
                .into_iter()
                .flatten()
            {
                reference_namespace(store, sel.namespace.as_deref(), es_namespace, "Secret")?;
            }
            BaseIdentity::StaticKeys {
                namespace,
                access_key_id: selector_pair(&keys.access_key_id, "accessKeyIDSecretRef")?,
                secret_access_key: selector_pair(
                    &keys.secret_access_key,
                    "secretAccessKeySecretRef",
                )?,
                session_token: keys
                    .session_token
                    .as_ref()
                    .map(|s| selector_pair(s, "sessionTokenSecretRef"))
                    .transpose()?,
            }
        }
        (
            None,
            Some(AwsJwtAuth {
                service_account_ref: Some(sa),
            }),
        ) => {
            if sa.name.is_empty() {
                return Err(ProviderError::InvalidConfig {
                    detail: "auth.jwt.serviceAccountRef.name is empty".to_owned(),
                });
            }
            let namespace = reference_namespace(
                store,
                sa.namespace.as_deref(),
                es_namespace,
                "ServiceAccount",
            )?;
            let info = service_account(namespace.clone(), sa.name.clone()).await?;
            // As in ESO, the ServiceAccount's annotated role is the web identity and `role` is assumed on top;
            // without the annotation, `role` itself is the web identity role.
            let role_arn = match (info.role_arn, &store_role) {
                (Some(annotated), _) => annotated,
                (None, Some(role)) => {
                    role_consumed = true;
                    role.clone()
                }
                (None, None) => {
                    return Err(ProviderError::InvalidConfig {
                        detail: format!(
                            "ServiceAccount {namespace}/{} has no {ROLE_ARN_ANNOTATION} annotation and the store sets no role",
                            sa.name
                        ),
                    });
                }
            };
            let mut audiences = vec![info.audience.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned())];
            audiences.extend(
                sa.audiences
                    .iter()
                    .filter(|a| !a.is_empty() && !audiences.contains(a))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            BaseIdentity::ServiceAccount {
                namespace,
                name: sa.name.clone(),
                audiences,
                role_arn,
            }
        }
        (
            None,
            Some(AwsJwtAuth {
                service_account_ref: None,
            }),
        ) => {
            return Err(ProviderError::InvalidConfig {
                detail: "auth.jwt needs serviceAccountRef".to_owned(),
            });
        }
        (None, None) => BaseIdentity::Controller,
    };
    let mut key = IdentityKey {
        region: spec.region.clone(),
        base,
        chain: Vec::new(),
        external_id: None,
        session_tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
    };
    if let Some(role) = store_role.filter(|_| !role_consumed) {
        chain.push(role);
        key.external_id = spec.external_id.clone().filter(|e| !e.is_empty());
        key.session_tags = spec
            .session_tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        key.transitive_tag_keys = spec.transitive_tag_keys.clone();
    }
    key.chain = chain;
    Ok(key)
}

/// The credentials provider for `key`, layered on `common` (region, endpoint, retries, identity cache).
/// Each layer is its own `SharedCredentialsProvider`, so the shared identity cache keeps every layer's
/// credentials separately and refreshes each only when it nears expiry.
pub fn credentials_provider(
    key: &IdentityKey,
    common: &SdkConfig,
    kube: Option<&kube::Client>,
) -> Result<SharedCredentialsProvider, ProviderError> {
    let need_kube = || {
        kube.cloned().ok_or_else(|| ProviderError::InvalidConfig {
            detail:
                "this store's auth reads Kubernetes objects, but no Kubernetes client is configured"
                    .to_owned(),
        })
    };
    let mut current = match &key.base {
        BaseIdentity::Controller => common.credentials_provider().ok_or_else(|| ProviderError::Authentication {
            detail: "the controller has no AWS credentials (no IRSA, Pod Identity or environment keys found)".to_owned(),
        })?,
        BaseIdentity::StaticKeys { namespace, access_key_id, secret_access_key, session_token } => {
            SharedCredentialsProvider::new(KubeSecretCredentials {
                kube: need_kube()?,
                namespace: namespace.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: session_token.clone(),
            })
        }
        BaseIdentity::ServiceAccount { namespace, name, audiences, role_arn } => {
            // AssumeRoleWithWebIdentity is modelled as unsigned (the token is the proof), so whatever
            // credentials `common` carries are never used by this client.
            let sts = aws_sdk_sts::Client::new(common);
            SharedCredentialsProvider::new(ServiceAccountWebIdentity {
                kube: need_kube()?,
                namespace: namespace.clone(),
                name: name.clone(),
                audiences: audiences.clone(),
                role_arn: role_arn.clone(),
                sts,
            })
        }
    };
    let last = key.chain.len().saturating_sub(1);
    for (i, role) in key.chain.iter().enumerate() {
        let layer = common.to_builder().credentials_provider(current).build();
        let sts =
            aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&layer).build());
        let is_last = i == last;
        current = SharedCredentialsProvider::new(AssumeRoleStep {
            sts,
            role_arn: role.clone(),
            external_id: if is_last {
                key.external_id.clone()
            } else {
                None
            },
            session_tags: if is_last {
                key.session_tags.clone()
            } else {
                Vec::new()
            },
            transitive_tag_keys: if is_last {
                key.transitive_tag_keys.clone()
            } else {
                Vec::new()
            },
        });
    }
    Ok(current)
}

fn into_credentials(
    creds: Option<aws_sdk_sts::types::Credentials>,
    source: &'static str,
) -> provider::Result {
    let creds =
        creds.ok_or_else(|| CredentialsError::unhandled("STS answered without credentials"))?;
    let expiry = SystemTime::try_from(creds.expiration)
        .map_err(|_| CredentialsError::unhandled("STS credentials have an invalid expiration"))?;
    Ok(Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        Some(creds.session_token),
        Some(expiry),
        source,
    ))
}

/// Static keys kept in Kubernetes Secrets. Read when the identity cache asks (about every 15 minutes,
/// the cache's default lifetime for credentials without an expiry), never per fetch.
struct KubeSecretCredentials {
    kube: kube::Client,
    namespace: String,
    access_key_id: (String, String),
    secret_access_key: (String, String),
    session_token: Option<(String, String)>,
}

impl std::fmt::Debug for KubeSecretCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecretCredentials")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeSecretCredentials {
    async fn read(
        &self,
        secrets: &mut BTreeMap<String, Secret>,
        (name, key): &(String, String),
    ) -> Result<Zeroizing<String>, CredentialsError> {
        if !secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.kube.clone(), &self.namespace);
            let secret = api.get_opt(name).await.map_err(|e| {
                CredentialsError::provider_error(format!(
                    "failed to read Secret {}/{name}: {e}",
                    self.namespace
                ))
            })?;
            let secret = secret.ok_or_else(|| {
                CredentialsError::invalid_configuration(format!(
                    "Secret {}/{name} named by auth.secretRef does not exist",
                    self.namespace
                ))
            })?;
            secrets.insert(name.clone(), secret);
        }
        let bytes = secrets
            .get(name)
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .map(|b| Zeroizing::new(b.0.clone()))
            .ok_or_else(|| {
                CredentialsError::invalid_configuration(format!(
                    "Secret {}/{name} has no key {key:?}",
                    self.namespace
                ))
            })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            CredentialsError::invalid_configuration(format!(
                "key {key:?} of Secret {}/{name} is not UTF-8",
                self.namespace
            ))
        })?;
        // A trailing newline (from `echo` into a file) would break request signing.
        Ok(Zeroizing::new(text.trim().to_owned()))
    }

    async fn load(&self) -> provider::Result {
        let mut secrets = BTreeMap::new();
        let akid = self.read(&mut secrets, &self.access_key_id).await?;
        let secret = self.read(&mut secrets, &self.secret_access_key).await?;
        let token = match &self.session_token {
            Some(sel) => Some(self.read(&mut secrets, sel).await?),
            None => None,
        };
        // Wipe the copies the Secret objects hold as soon as the credentials exist.
        for secret in secrets.values_mut() {
            if let Some(data) = secret.data.as_mut() {
                for value in data.values_mut() {
                    zeroize::Zeroize::zeroize(&mut value.0);
                }
            }
        }
        Ok(Credentials::new(
            akid.as_str(),
            secret.as_str(),
            token.map(|t| t.as_str().to_owned()),
            None,
            "secret-sync-kubernetes-secret",
        ))
    }
}

impl ProvideCredentials for KubeSecretCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// IRSA done by the operator on behalf of a ServiceAccount: TokenRequest, then AssumeRoleWithWebIdentity.
struct ServiceAccountWebIdentity {
    kube: kube::Client,
    namespace: String,
    name: String,
    audiences: Vec<String>,
    role_arn: String,
    sts: aws_sdk_sts::Client,
}

impl std::fmt::Debug for ServiceAccountWebIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountWebIdentity")
            .field(
                "serviceaccount",
                &format_args!("{}/{}", self.namespace, self.name),
            )
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountWebIdentity {
    async fn token(&self) -> Result<Zeroizing<String>, CredentialsError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), &self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: self.audiences.clone(),
                expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let answer = api
            .create_token_request(&self.name, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "TokenRequest for ServiceAccount {}/{} failed: {e}",
                    self.namespace, self.name
                ))
            })?;
        let token = answer
            .status
            .map(|s| Zeroizing::new(s.token))
            .filter(|t| !t.is_empty());
        token.ok_or_else(|| {
            CredentialsError::provider_error(format!(
                "TokenRequest for ServiceAccount {}/{} returned no token",
                self.namespace, self.name
            ))
        })
    }

    async fn load(&self) -> provider::Result {
        let token = self.token().await?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .web_identity_token(token.as_str())
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "AssumeRoleWithWebIdentity into {} for ServiceAccount {}/{} failed: {}",
                    self.role_arn,
                    self.namespace,
                    self.name,
                    DisplayErrorContext(&e)
                ))
            })?;
        into_credentials(out.credentials, "secret-sync-web-identity")
    }
}

impl ProvideCredentials for ServiceAccountWebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// One AssumeRole of the chain. Written here rather than with aws-config's `AssumeRoleProvider` because
/// ESO's `transitiveTagKeys` has no setter there.
#[derive(Debug)]
struct AssumeRoleStep {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    session_tags: Vec<(String, String)>,
    transitive_tag_keys: Vec<String>,
}

impl AssumeRoleStep {
    async fn load(&self) -> provider::Result {
        let mut tags = Vec::with_capacity(self.session_tags.len());
        for (k, v) in &self.session_tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| {
                    CredentialsError::invalid_configuration(format!(
                        "invalid session tag {k:?}: {e}"
                    ))
                })?;
            tags.push(tag);
        }
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_transitive_tag_keys(
                (!self.transitive_tag_keys.is_empty()).then(|| self.transitive_tag_keys.clone()),
            )
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "AssumeRole into {} failed: {}",
                    self.role_arn,
                    DisplayErrorContext(&e)
                ))
            })?;
        into_credentials(out.credentials, "secret-sync-assume-role")
    }
}

impl ProvideCredentials for AssumeRoleStep {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// How long before expiry cached credentials are refreshed: early enough that no request ever goes out
/// with credentials about to lapse, late enough that a 15-minute session is still reused.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
