//! Build step (pure): from an ExternalSecret and the fetched documents, compute the Secret data we want.
//! No client and no I/O here; everything is decided from its inputs, so it is unit-tested exhaustively.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use sha2::Sha256;

use super::values::{self, KeyError, PropertyError};

use crate::api::generators::{self, GeneratorRef};
use crate::api::{
    ConversionStrategy, DecodingStrategy, ExternalSecretDataFromRemoteRef, ExternalSecretFind,
    ExternalSecretSpec, MetadataPolicy, RemoteRef,
};
use crate::provider::{FetchRequest, FindRequest, FoundAll, ProviderError, SecretBytes};

/// Everything that can make the desired data impossible to compute. Never carries a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("{field} is not supported by secret-sync yet")]
    Unsupported { field: &'static str },
    #[error(transparent)]
    Template(#[from] super::templating::TemplatingError),
    #[error("invalid refreshInterval {value:?}: expected a Go duration such as \"1h\" or \"15m\"")]
    InvalidRefreshInterval { value: String },
    #[error("the ExternalSecret has no data and no dataFrom")]
    NothingToSync,
    #[error(
        "generator kind {kind:?} is not supported by secret-sync (supported: ECRAuthorizationToken, \
         Password, and ClusterGenerators of those kinds)"
    )]
    UnsupportedGenerator { kind: String },
    #[error(
        "generatorRef apiVersion {api_version:?} is not {}",
        generators::API_VERSION
    )]
    InvalidGeneratorRef { api_version: String },
    #[error("failed to fetch {key:?}: {source}")]
    Fetch { key: String, source: ProviderError },
    #[error("remote key {key:?} is not valid JSON, so property {property:?} cannot be read")]
    PropertyOfNonJson { key: String, property: String },
    #[error(
        "property {property:?} of remote key {key:?} uses gjson syntax secret-sync does not evaluate \
         yet (wildcards '*' '?', modifiers '@', queries '#(', pipes '|', multipaths, literals '!'); \
         escape a character with '\\' to read it as part of a key"
    )]
    UnsupportedProperty { key: String, property: String },
    #[error("property {property:?} does not exist in remote key {key:?}")]
    PropertyNotFound { key: String, property: String },
    #[error(
        "remote key {key:?} is not a JSON object, so dataFrom.extract cannot split it into keys"
    )]
    ExtractNonObject { key: String },
    #[error("value of remote key {key:?} is not valid {strategy} (decodingStrategy)")]
    Decode { key: String, strategy: &'static str },
    #[error(
        "secret key {secret_key:?} is not a valid Secret key (Kubernetes allows 1 to 253 ASCII letters, \
         digits, '-', '_' and '.', not '.' or '..' and no leading '..'; conversionStrategy keeps \
         non-ASCII letters and digits, as ESO does)"
    )]
    InvalidSecretKey { secret_key: String },
    #[error(
        "two keys of remote key {key:?} convert to the same secret key {secret_key:?} (conversionStrategy)"
    )]
    KeyCollision { key: String, secret_key: String },
    #[error("spec.dataFrom[{index}]: {source}")]
    Rewrite {
        index: usize,
        source: super::rewrite::RewriteError,
    },
    #[error("spec.dataFrom[{index}].find: {detail}")]
    InvalidFind { index: usize, detail: String },
    #[error("spec.dataFrom[{index}].find failed: {source}")]
    Find { index: usize, source: ProviderError },
}

impl BuildError {
    /// Bounded label for metrics, Events and status.
    pub fn category(&self) -> &'static str {
        match self {
            BuildError::Unsupported { .. } | BuildError::UnsupportedProperty { .. } => {
                "Unsupported"
            }
            BuildError::Template(e) => e.category(),
            BuildError::UnsupportedGenerator { .. } => "UnsupportedGenerator",
            BuildError::InvalidRefreshInterval { .. }
            | BuildError::NothingToSync
            | BuildError::InvalidGeneratorRef { .. } => "InvalidSpec",
            BuildError::Fetch { source, .. } => source.category(),
            BuildError::PropertyOfNonJson { .. } | BuildError::ExtractNonObject { .. } => {
                "InvalidJSON"
            }
            BuildError::PropertyNotFound { .. } => "PropertyNotFound",
            BuildError::Decode { .. } => "DecodeFailed",
            BuildError::InvalidSecretKey { .. } | BuildError::KeyCollision { .. } => {
                "InvalidSecretKey"
            }
            BuildError::Rewrite { source, .. } => source.category(),
            BuildError::InvalidFind { .. } => "InvalidSpec",
            BuildError::Find { source, .. } => source.category(),
        }
    }

    /// Errors that only a change to the ExternalSecret, the store or the remote value can fix.
    pub fn is_permanent(&self) -> bool {
        match self {
            BuildError::Fetch { source, .. } | BuildError::Find { source, .. } => {
                source.is_permanent()
            }
            _ => true,
        }
    }
}

/// Refuse the ESO fields we accept in the schema but do not implement, before any fetch.
pub fn check_supported(spec: &ExternalSecretSpec) -> Result<(), BuildError> {
    super::templating::TemplateSpec::of(spec)?;
    if spec.data.iter().any(|d| d.source_ref.is_some()) {
        return Err(BuildError::Unsupported {
            field: "spec.data[].sourceRef",
        });
    }
    for (index, from) in spec.data_from.iter().enumerate() {
        if from
            .source_ref
            .as_ref()
            .is_some_and(|s| s.store_ref.is_some())
        {
            return Err(BuildError::Unsupported {
                field: "spec.dataFrom[].sourceRef.storeRef",
            });
        }
        if let Some(find) = &from.find {
            check_find(index, find)?;
        }
        super::rewrite::validate(from.rewrite.as_deref().unwrap_or_default())
            .map_err(|source| BuildError::Rewrite { index, source })?;
        if let Some(generator) = generator_ref(from) {
            check_generator_ref(generator)?;
        }
    }
    if spec.data.is_empty()
        && spec
            .data_from
            .iter()
            .all(|f| f.extract.is_none() && f.find.is_none() && generator_ref(f).is_none())
    {
        return Err(BuildError::NothingToSync);
    }
    Ok(())
}

/// A find needs a name or tags (as ESO's AWS providers require), and its regexp must compile.
fn check_find(index: usize, find: &ExternalSecretFind) -> Result<(), BuildError> {
    if find.name.is_none() && find.tags.is_empty() {
        return Err(BuildError::InvalidFind {
            index,
            detail: "needs name.regexp or tags".to_owned(),
        });
    }
    if let Some(name) = &find.name {
        crate::goregex::GoRegex::new(&name.regexp).map_err(|e| BuildError::InvalidFind {
            index,
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// The provider's view of a `dataFrom[].find`.
pub fn find_request(find: &ExternalSecretFind) -> FindRequest {
    FindRequest {
        name_regexp: find.name.as_ref().map(|n| n.regexp.clone()),
        path: find.path.clone(),
        tags: find.tags.clone(),
        conversion: find.conversion_strategy.unwrap_or_default(),
    }
}

/// The distinct finds of this spec, each listed once per reconcile.
pub fn finds(spec: &ExternalSecretSpec) -> Vec<FindRequest> {
    let mut out: Vec<FindRequest> = Vec::new();
    for request in spec
        .data_from
        .iter()
        .filter_map(|f| f.find.as_ref())
        .map(find_request)
    {
        if !out.contains(&request) {
            out.push(request);
        }
    }
    out
}

/// The generator a `dataFrom` entry runs: its `sourceRef.generatorRef`, unless the entry is an
/// `extract` or `find` (ESO reads those first and ignores the generator).
pub fn generator_ref(from: &ExternalSecretDataFromRemoteRef) -> Option<&GeneratorRef> {
    if from.extract.is_some() || from.find.is_some() {
        return None;
    }
    from.source_ref.as_ref()?.generator_ref.as_ref()
}

/// ESO accepts only the generators group (`generators.external-secrets.io/v1alpha1`); of its kinds we
/// run ECRAuthorizationToken and Password, directly or through a ClusterGenerator.
fn check_generator_ref(generator: &GeneratorRef) -> Result<(), BuildError> {
    if generator.api_version != generators::API_VERSION {
        return Err(BuildError::InvalidGeneratorRef {
            api_version: generator.api_version.clone(),
        });
    }
    match generator.kind.as_str() {
        "ECRAuthorizationToken" | "Password" | "ClusterGenerator" => Ok(()),
        other => Err(BuildError::UnsupportedGenerator {
            kind: other.to_owned(),
        }),
    }
}

/// Whether any `dataFrom` entry runs a generator.
pub fn has_generators(spec: &ExternalSecretSpec) -> bool {
    spec.data_from.iter().any(|f| generator_ref(f).is_some())
}

/// Whether a refresh may skip this spec when the listing shows every source unchanged: what it writes
/// then depends only on the fetched documents, the spec and the store. Not so with `find` (the set of
/// matches can change), generators (each run makes new values), `templateFrom` ConfigMaps and Secrets
/// (read at render time), or a template, rewrite or key that names a function whose answer changes
/// between renders (`template::is_deterministic`, a word match over the whole spec).
pub fn change_detectable(spec: &ExternalSecretSpec) -> bool {
    let template_sources = match super::templating::TemplateSpec::of(spec) {
        Ok(Some(tpl)) => tpl.sources().next().is_some(),
        Ok(None) => false,
        Err(_) => true,
    };
    spec.data_from.iter().all(|f| f.find.is_none())
        && !has_generators(spec)
        && !template_sources
        && serde_json::to_string(spec).is_ok_and(|json| crate::template::is_deterministic(&json))
}

/// Whether the spec reads any store: an ExternalSecret made of generators alone names none (ESO).
pub fn needs_store(spec: &ExternalSecretSpec) -> bool {
    !spec.data.is_empty() || spec.data_from.iter().any(|f| generator_ref(f).is_none())
}

/// Parse ESO's refreshInterval (a Go duration). `None` means "never refresh" ("0").
pub fn refresh_interval(spec: &ExternalSecretSpec) -> Result<Option<Duration>, BuildError> {
    let raw = spec.refresh_interval.as_deref().unwrap_or("1h");
    let invalid = || BuildError::InvalidRefreshInterval {
        value: raw.to_owned(),
    };
    let nanos = go_parse_duration::parse_duration(raw).map_err(|_| invalid())?;
    match u64::try_from(nanos) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(Duration::from_nanos(n))),
        Err(_) => Err(invalid()),
    }
}

fn request_for(remote: &RemoteRef) -> FetchRequest {
    FetchRequest {
        key: remote.key.clone(),
        version: remote.version.clone().filter(|v| !v.is_empty()),
        metadata: remote.metadata_policy == Some(MetadataPolicy::Fetch),
    }
}

/// The distinct documents this spec needs, so each is fetched once per reconcile.
pub fn requests(spec: &ExternalSecretSpec) -> Vec<FetchRequest> {
    let refs = spec.data.iter().map(|d| &d.remote_ref).chain(
        spec.data_from
            .iter()
            .filter(|f| f.find.is_none())
            .filter_map(|f| f.extract.as_ref()),
    );
    let unique: BTreeSet<FetchRequest> = refs.map(request_for).collect();
    unique.into_iter().collect()
}

/// The desired data, plus the remote keys whose source is gone (`ProviderError::is_gone`), for the
/// planner to judge under the deletion policy.
#[derive(Debug, Default, PartialEq)]
pub struct DesiredData {
    pub data: BTreeMap<String, SecretBytes>,
    pub missing_remote_keys: Vec<String>,
    /// A `dataFrom[].find` matched nothing. Not evidence that anything is gone: with no data at all,
    /// the planner keeps the Secret as it is.
    pub empty_find: bool,
    /// What `target.template` asks for besides data (empty without a template).
    pub meta: TemplateMeta,
}

/// Secret metadata from `target.template`: its `type` and rendered labels and annotations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateMeta {
    pub type_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Apply `target.template` (if any) to the built data: ESO's engine v2 (`templating.rs`). Skipped when
/// every source is gone, so the deletion policy judges the real outcome.
pub fn apply_template(
    spec: &ExternalSecretSpec,
    desired: &mut DesiredData,
    sources: &super::templating::Sources,
) -> Result<(), BuildError> {
    let Some(tpl) = super::templating::TemplateSpec::of(spec)? else {
        return Ok(());
    };
    if (!desired.missing_remote_keys.is_empty() || desired.empty_find) && desired.data.is_empty() {
        return Ok(());
    }
    let rendered = super::templating::apply(&tpl, &desired.data, sources)?;
    for key in rendered.data.keys() {
        validated_key(key.clone())?;
    }
    desired.data = rendered.data;
    desired.meta = TemplateMeta {
        type_: rendered.type_,
        labels: rendered.labels,
        annotations: rendered.annotations,
    };
    Ok(())
}

/// [`desired_data_found`] for a spec without `find` entries.
pub fn desired_data(
    spec: &ExternalSecretSpec,
    fetched: &HashMap<FetchRequest, Result<SecretBytes, ProviderError>>,
) -> Result<DesiredData, BuildError> {
    desired_data_all(spec, fetched, &FoundAll::new(), &BTreeMap::new())
}

/// [`desired_data_all`] for a spec without generators.
pub fn desired_data_found(
    spec: &ExternalSecretSpec,
    fetched: &HashMap<FetchRequest, Result<SecretBytes, ProviderError>>,
    found: &FoundAll,
) -> Result<DesiredData, BuildError> {
    desired_data_all(spec, fetched, found, &BTreeMap::new())
}

/// [`desired_data_all`] for a spec without finds.
pub fn desired_data_with(
    spec: &ExternalSecretSpec,
    fetched: &HashMap<FetchRequest, Result<SecretBytes, ProviderError>>,
    generated: &BTreeMap<usize, BTreeMap<String, SecretBytes>>,
) -> Result<DesiredData, BuildError> {
    desired_data_all(spec, fetched, &FoundAll::new(), generated)
}

/// Combine the fetched documents, what each find matched and the keys each generator entry produced
/// (by its index in `dataFrom`) into Secret data. A NotFound document is recorded as missing and its
/// entries are skipped; a find that matched nothing contributes nothing (`empty_find`); any other
/// error fails the whole build so no partial Secret is written. Generator keys get the entry's
/// rewrites but, as in ESO, no conversionStrategy: only the Kubernetes key rule.
pub fn desired_data_all(
    spec: &ExternalSecretSpec,
    fetched: &HashMap<FetchRequest, Result<SecretBytes, ProviderError>>,
    found: &FoundAll,
    generated: &BTreeMap<usize, BTreeMap<String, SecretBytes>>,
) -> Result<DesiredData, BuildError> {
    let mut out = DesiredData::default();
    let mut missing = BTreeSet::new();
    let mut document = |remote: &RemoteRef| -> Result<Option<SecretBytes>, BuildError> {
        let request = request_for(remote);
        match fetched.get(&request) {
            Some(Ok(bytes)) => Ok(Some(bytes.clone())),
            // Only positive evidence that the source is gone; a missing version is an error below.
            Some(Err(e)) if e.is_gone() => {
                missing.insert(remote.key.clone());
                Ok(None)
            }
            Some(Err(source)) => Err(BuildError::Fetch {
                key: remote.key.clone(),
                source: source.clone(),
            }),
            None => Err(BuildError::Fetch {
                key: remote.key.clone(),
                source: ProviderError::Unavailable {
                    key: remote.key.clone(),
                    detail: "no answer for this key".into(),
                },
            }),
        }
    };

    // dataFrom first, then data, so explicit `data` entries win on key collisions (as in ESO).
    for (index, from) in spec.data_from.iter().enumerate() {
        if let Some(keys) = generated.get(&index) {
            let rewrite = from.rewrite.as_deref().unwrap_or_default();
            let keys = super::rewrite::apply(rewrite, keys.clone())
                .map_err(|source| BuildError::Rewrite { index, source })?;
            for (key, value) in keys {
                out.data.insert(validated_key(key)?, value);
            }
            continue;
        }
        // A find wins over an extract in the same entry, as in ESO.
        if let Some(find) = &from.find {
            let entries = match found.get(&find_request(find)) {
                Some(Ok(entries)) => entries.clone(),
                Some(Err(source)) => {
                    return Err(BuildError::Find {
                        index,
                        source: source.clone(),
                    });
                }
                None => {
                    return Err(BuildError::Find {
                        index,
                        source: ProviderError::Unavailable {
                            key: format!("dataFrom[{index}].find"),
                            detail: "no answer for this find".into(),
                        },
                    });
                }
            };
            if entries.is_empty() {
                out.empty_find = true;
                continue;
            }
            let entries = finish_keys(
                index,
                from,
                &format!("dataFrom[{index}].find"),
                entries,
                find.conversion_strategy.unwrap_or_default(),
                find.decoding_strategy.unwrap_or_default(),
            )?;
            out.data.extend(entries);
        } else if let Some(remote) = &from.extract {
            let Some(doc) = document(remote)? else {
                continue;
            };
            let doc = match &remote.property {
                Some(p) if !p.is_empty() => select_property(&remote.key, p, &doc)?,
                _ => doc,
            };
            let entries = values::extract(&doc).ok_or_else(|| BuildError::ExtractNonObject {
                key: remote.key.clone(),
            })?;
            let entries = finish_keys(
                index,
                from,
                &remote.key,
                entries,
                remote.conversion_strategy.unwrap_or_default(),
                remote.decoding_strategy.unwrap_or_default(),
            )?;
            out.data.extend(entries);
        }
    }
    for entry in &spec.data {
        let remote = &entry.remote_ref;
        let Some(doc) = document(remote)? else {
            continue;
        };
        let value = match &remote.property {
            Some(p) if !p.is_empty() => select_property(&remote.key, p, &doc)?,
            _ => doc,
        };
        let value = decode(
            &remote.key,
            remote.decoding_strategy.unwrap_or_default(),
            value,
        )?;
        out.data
            .insert(validated_key(entry.secret_key.clone())?, value);
    }
    out.missing_remote_keys = missing.into_iter().collect();
    Ok(out)
}

/// The keys of one dataFrom entry, as ESO finishes them: the entry's rewrites in order, else the
/// conversion strategy (ESO converts only when there is no rewrite); then Kubernetes' key rule, then
/// the decoding strategy on every value.
fn finish_keys(
    index: usize,
    from: &ExternalSecretDataFromRemoteRef,
    source: &str,
    entries: BTreeMap<String, SecretBytes>,
    conversion: ConversionStrategy,
    decoding: DecodingStrategy,
) -> Result<BTreeMap<String, SecretBytes>, BuildError> {
    let rewrite = from.rewrite.as_deref().unwrap_or_default();
    let entries = if rewrite.is_empty() {
        values::convert_keys(entries, conversion).map_err(|e| match e {
            KeyError::Collision { key } => BuildError::KeyCollision {
                key: source.to_owned(),
                secret_key: key,
            },
            KeyError::Invalid { key } => BuildError::InvalidSecretKey { secret_key: key },
        })?
    } else {
        let entries = super::rewrite::apply(rewrite, entries)
            .map_err(|source| BuildError::Rewrite { index, source })?;
        for key in entries.keys() {
            validated_key(key.clone())?;
        }
        entries
    };
    entries
        .into_iter()
        .map(|(key, value)| Ok((key, decode(source, decoding, value)?)))
        .collect()
}

fn select_property(
    key: &str,
    property: &str,
    doc: &SecretBytes,
) -> Result<SecretBytes, BuildError> {
    values::property(doc, property).map_err(|e| match e {
        PropertyError::NotJson => BuildError::PropertyOfNonJson {
            key: key.to_owned(),
            property: property.to_owned(),
        },
        PropertyError::NotFound => BuildError::PropertyNotFound {
            key: key.to_owned(),
            property: property.to_owned(),
        },
        PropertyError::UnsupportedSyntax => BuildError::UnsupportedProperty {
            key: key.to_owned(),
            property: property.to_owned(),
        },
    })
}

fn decode(
    key: &str,
    strategy: DecodingStrategy,
    value: SecretBytes,
) -> Result<SecretBytes, BuildError> {
    values::decode(strategy, value).map_err(|_| BuildError::Decode {
        key: key.to_owned(),
        strategy: match strategy {
            DecodingStrategy::Base64Url => "Base64URL",
            _ => "Base64",
        },
    })
}

/// Keys named in `data[].secretKey` are used as written; Kubernetes' rule applies.
fn validated_key(key: String) -> Result<String, BuildError> {
    if !values::is_valid_secret_key(&key) {
        return Err(BuildError::InvalidSecretKey { secret_key: key });
    }
    Ok(key)
}

/// A stable digest of the data, stored on the Secret so unchanged data is never written again.
/// It is keyed (HMAC-SHA256) with a random salt kept on the Secret itself: the digest travels further
/// than the Secret (reload records it on workloads, readable by `view`), and an unkeyed hash of a short
/// password could be brute-forced there; the salt is readable only by those who can read the Secret.
pub fn data_hash(key: &str, data: &BTreeMap<String, SecretBytes>) -> String {
    use hmac::Mac;
    // HMAC accepts keys of any length, so this cannot fail; an empty key still yields a digest.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    for (name, value) in data {
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(&(value.len() as u64).to_be_bytes());
        mac.update(value.expose());
    }
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Annotation recording when the earliest generated credential in the Secret expires (RFC 3339, UTC),
/// so its renewal is scheduled in time after an operator restart too. Not in ESO; the value is public.
pub const EXPIRES_AT_ANNOTATION: &str = "secret-sync.io/expires-at";

/// Record `expires_at` (the earliest generated expiry, if any) on the Secret we will write.
pub fn mark_expiry(desired: &mut DesiredData, expires_at: Option<std::time::SystemTime>) {
    let Some(at) = expires_at.and_then(|t| k8s_openapi::jiff::Timestamp::try_from(t).ok()) else {
        return;
    };
    desired
        .meta
        .annotations
        .insert(EXPIRES_AT_ANNOTATION.to_owned(), at.to_string());
}

/// The expiry `mark_expiry` recorded on a Secret, from its `EXPIRES_AT_ANNOTATION` value, if any
/// (and valid).
pub fn recorded_expiry(annotation: Option<&str>) -> Option<std::time::SystemTime> {
    let raw = annotation?;
    let at: k8s_openapi::jiff::Timestamp = raw.parse().ok()?;
    Some(std::time::SystemTime::from(at))
}

/// Label on every Secret we create, used to watch only our Secrets (metadata only).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "secret-sync";
/// Annotation holding `data_hash` of what we last wrote.
pub const DATA_HASH_ANNOTATION: &str = "secret-sync.io/data-hash";
/// Annotation holding the salt that keys `data_hash`; kept for the Secret's life so hashes stay stable.
pub const HASH_SALT_ANNOTATION: &str = "secret-sync.io/hash-salt";

/// A fresh salt for a Secret we create.
pub fn new_salt() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// How the Secret relates to its ExternalSecret, from `target.creationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Owner: labelled, hashed and owned (garbage-collected with the ExternalSecret).
    Owned,
    /// Orphan: labelled and hashed, no ownerReference.
    Orphaned,
    /// Merge: only our data keys, on someone else's Secret.
    MergedInto,
}

impl Ownership {
    /// What `target.creationPolicy` asks for; `None` writes no Secret at all.
    pub fn of(policy: crate::api::CreationPolicy) -> Option<Ownership> {
        use crate::api::CreationPolicy;
        match policy {
            CreationPolicy::Owner => Some(Ownership::Owned),
            CreationPolicy::Orphan => Some(Ownership::Orphaned),
            CreationPolicy::Merge => Some(Ownership::MergedInto),
            CreationPolicy::None => None,
        }
    }
}

/// The Secret to server-side apply. Under `MergedInto` it carries only the data keys, so our field
/// manager owns nothing else on the Secret. Pure: same inputs, same object.
pub fn desired_secret(
    es: &crate::api::ExternalSecret,
    data: &BTreeMap<String, SecretBytes>,
    meta: &TemplateMeta,
    ownership: Ownership,
    salt: &str,
) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    let mut metadata = ObjectMeta {
        name: Some(es.target_name()),
        namespace: es.metadata.namespace.clone(),
        ..ObjectMeta::default()
    };
    // The template's labels and annotations (Merge writes them too, as ESO does); ours win.
    let mut labels = meta.labels.clone();
    let mut annotations = meta.annotations.clone();
    if ownership != Ownership::MergedInto {
        labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned());
        annotations.insert(DATA_HASH_ANNOTATION.to_owned(), data_hash(salt, data));
        annotations.insert(HASH_SALT_ANNOTATION.to_owned(), salt.to_owned());
    }
    metadata.labels = (!labels.is_empty()).then_some(labels);
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    // Without a uid (render, before the object exists) no valid ownerReference can be written.
    if let (Ownership::Owned, Some(uid)) = (ownership, es.metadata.uid.clone()) {
        metadata.owner_references = Some(vec![OwnerReference {
            api_version: "external-secrets.io/v1".to_owned(),
            kind: "ExternalSecret".to_owned(),
            name: es.metadata.name.clone().unwrap_or_default(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
    }
    let immutable =
        (ownership != Ownership::MergedInto && es.spec.target.immutable).then_some(true);
    Secret {
        metadata,
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect(),
        ),
        type_: (ownership != Ownership::MergedInto)
            .then(|| meta.type_.clone().unwrap_or_else(|| "Opaque".to_owned())),
        immutable,
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExternalSecretData, ExternalSecretDataFromRemoteRef};

    fn spec(yaml: &str) -> ExternalSecretSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn fetched(
        entries: &[(&str, Result<&str, ProviderError>)],
    ) -> HashMap<FetchRequest, Result<SecretBytes, ProviderError>> {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    FetchRequest::current(*k),
                    v.clone().map(SecretBytes::from_str_value),
                )
            })
            .collect()
    }

    fn text(d: &DesiredData, key: &str) -> String {
        String::from_utf8(d.data[key].expose().to_vec()).unwrap()
    }

    #[test]
    fn plain_value_lands_under_its_secret_key() {
        let s = spec("data: [{secretKey: password, remoteRef: {key: db}}]");
        let d = desired_data(&s, &fetched(&[("db", Ok("hunter2"))])).unwrap();
        assert_eq!(text(&d, "password"), "hunter2");
    }

    #[test]
    fn nested_property_and_escaped_dotted_key_are_selected() {
        let s = spec(
            r#"data:
  - {secretKey: user, remoteRef: {key: db, property: creds.user}}
  - {secretKey: host, remoteRef: {key: db, property: 'conn\.host'}}
  - {secretKey: port, remoteRef: {key: db, property: conn.port}}
  - {secretKey: nested, remoteRef: {key: db, property: creds}}
  - {secretKey: literal, remoteRef: {key: db, property: conn.host}}"#,
        );
        let doc = r#"{"creds":{"user":"admin"},"conn.host":"db.local","conn":{"port":5432}}"#;
        let d = desired_data(&s, &fetched(&[("db", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "user"), "admin");
        assert_eq!(text(&d, "host"), "db.local");
        assert_eq!(text(&d, "port"), "5432");
        assert_eq!(text(&d, "nested"), r#"{"user":"admin"}"#);
        assert_eq!(
            text(&d, "literal"),
            "db.local",
            "a top-level key named like the property wins, as in ESO"
        );
    }

    #[test]
    fn missing_property_fails_with_the_key_and_property_named() {
        let s = spec("data: [{secretKey: x, remoteRef: {key: db, property: nope}}]");
        let err = desired_data(&s, &fetched(&[("db", Ok(r#"{"a":"SECRET"}"#))])).unwrap_err();
        assert_eq!(
            err,
            BuildError::PropertyNotFound {
                key: "db".into(),
                property: "nope".into()
            }
        );
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn property_of_non_json_value_is_invalid_json() {
        let s = spec("data: [{secretKey: x, remoteRef: {key: db, property: a}}]");
        let err = desired_data(&s, &fetched(&[("db", Ok("plain-SECRET"))])).unwrap_err();
        assert_eq!(err.category(), "InvalidJSON");
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn extract_splits_objects_and_keeps_nested_values_as_json() {
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let d = desired_data(
            &s,
            &fetched(&[("app", Ok(r#"{"a":"1","b":{"z": 1, "c":true},"n":3}"#))]),
        )
        .unwrap();
        assert_eq!(text(&d, "a"), "1");
        assert_eq!(
            text(&d, "b"),
            r#"{"z": 1, "c":true}"#,
            "nested JSON keeps its original text"
        );
        assert_eq!(text(&d, "n"), "3");
    }

    #[test]
    fn explicit_data_wins_over_extracted_keys() {
        let s = spec(
            "dataFrom: [{extract: {key: app}}]\ndata: [{secretKey: a, remoteRef: {key: other}}]",
        );
        let d = desired_data(
            &s,
            &fetched(&[
                ("app", Ok(r#"{"a":"from-extract"}"#)),
                ("other", Ok("explicit")),
            ]),
        )
        .unwrap();
        assert_eq!(text(&d, "a"), "explicit");
    }

    #[test]
    fn unicode_conversion_rewrites_invalid_key_characters() {
        let s = spec("dataFrom: [{extract: {key: app, conversionStrategy: Unicode}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok(r#"{"a b":"v"}"#))])).unwrap();
        assert_eq!(text(&d, "a_U0020_b"), "v");
    }

    /// The keys of `doc` under `dataFrom.extract` with this conversionStrategy.
    fn extracted_keys(strategy: &str, doc: &str) -> Result<Vec<String>, BuildError> {
        let s = spec(&format!(
            "dataFrom: [{{extract: {{key: app, conversionStrategy: {strategy}}}}}]"
        ));
        desired_data(&s, &fetched(&[("app", Ok(doc))])).map(|d| d.data.into_keys().collect())
    }

    const AWKWARD_KEYS: &str =
        r#"{"API KEY":"k1","db/password":"k2","arr[0]":"k3","a@b":"k5","XYZ ":"k6"}"#;

    #[test]
    fn default_conversion_turns_invalid_key_characters_into_underscores() {
        let mut want = vec!["API_KEY", "XYZ_", "a_b", "arr_0_", "db_password"];
        want.sort();
        assert_eq!(extracted_keys("Default", AWKWARD_KEYS).unwrap(), want);
        // Omitted means Default, as in ESO.
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok(AWKWARD_KEYS))])).unwrap();
        assert_eq!(text(&d, "db_password"), "k2");
        assert_eq!(text(&d, "XYZ_"), "k6");
    }

    #[test]
    fn unicode_conversion_writes_code_points_as_lowercase_hex() {
        let mut want = vec![
            "API_U0020_KEY",
            "XYZ_U0020_",
            "a_U0040_b",
            "arr_U005b_0_U005d_",
            "db_U002f_password",
        ];
        want.sort();
        assert_eq!(extracted_keys("Unicode", AWKWARD_KEYS).unwrap(), want);
        // Beyond four digits the number simply grows; a combining mark is not a letter.
        assert_eq!(
            extracted_keys("Unicode", r#"{"a😀":"1","e\u0301":"2"}"#).unwrap(),
            vec!["a_U1f600_", "e_U0301_"]
        );
        assert_eq!(
            extracted_keys("Default", r#"{"a😀":"1","e\u0301":"2"}"#).unwrap(),
            vec!["a_", "e_"]
        );
    }

    #[test]
    fn two_keys_converting_to_one_name_are_an_error() {
        let err = extracted_keys("Default", r#"{"a b":"1","a_b":"2"}"#).unwrap_err();
        assert_eq!(
            err,
            BuildError::KeyCollision {
                key: "app".into(),
                secret_key: "a_b".into()
            }
        );
        assert_eq!(err.category(), "InvalidSecretKey");
        assert!(extracted_keys("Unicode", r#"{"a b":"1","a_b":"2"}"#).is_ok());
    }

    #[test]
    fn an_empty_extracted_key_is_dropped() {
        assert_eq!(
            extracted_keys("Default", r#"{"":"x","k":"v"}"#).unwrap(),
            vec!["k"]
        );
        assert_eq!(
            extracted_keys("Unicode", r#"{"":"x"}"#).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_non_ascii_letter_kept_by_conversion_is_refused_before_any_write() {
        for strategy in ["Default", "Unicode"] {
            let err = extracted_keys(strategy, r#"{"clé":"v","k":"v"}"#).unwrap_err();
            assert_eq!(
                err,
                BuildError::InvalidSecretKey {
                    secret_key: "clé".into()
                }
            );
            assert!(err.to_string().contains("ASCII"), "{err}");
        }
        // Digits of other scripts are numbers to ESO too.
        assert!(extracted_keys("Default", r#"{"٣":"v"}"#).is_err());
        // Kubernetes also refuses "." and ".." and a leading "..".
        for key in [".", "..", "..a"] {
            let doc = format!(r#"{{"{key}":"v"}}"#);
            assert!(extracted_keys("Default", &doc).is_err(), "{key}");
        }
        assert!(extracted_keys("Default", r#"{".a":"v","a..":"v"}"#).is_ok());
    }

    #[test]
    fn json_null_is_an_empty_value_through_extract_and_property() {
        let s = spec(
            "dataFrom: [{extract: {key: app}}]\ndata: [{secretKey: p, remoteRef: {key: app, property: n}}]",
        );
        let d = desired_data(&s, &fetched(&[("app", Ok(r#"{"n":null,"s":"x"}"#))])).unwrap();
        assert_eq!(text(&d, "n"), "");
        assert_eq!(text(&d, "p"), "");
        assert_eq!(text(&d, "s"), "x");
        // A whole document of `null` is an object with no keys to Go's encoding/json.
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok("null"))])).unwrap();
        assert!(d.data.is_empty());
    }

    #[test]
    fn property_reads_lenient_json_as_gjson_does_but_extract_is_strict() {
        let lenient = r#"{"TEST1": "abc123",}"#;
        let s = spec("data: [{secretKey: t, remoteRef: {key: app, property: TEST1}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok(lenient))])).unwrap();
        assert_eq!(text(&d, "t"), "abc123");
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let err = desired_data(&s, &fetched(&[("app", Ok(lenient))])).unwrap_err();
        assert_eq!(err, BuildError::ExtractNonObject { key: "app".into() });
    }

    #[test]
    fn property_prints_numbers_as_gjson_and_extract_keeps_their_text() {
        let doc =
            r#"{"f":1.50,"e":1e3,"big":12345678901234567890,"neg":-0,"huge":1e400,"tiny":1e-7}"#;
        let s = spec(
            r#"data:
  - {secretKey: f, remoteRef: {key: app, property: f}}
  - {secretKey: e, remoteRef: {key: app, property: e}}
  - {secretKey: big, remoteRef: {key: app, property: big}}
  - {secretKey: neg, remoteRef: {key: app, property: neg}}
  - {secretKey: huge, remoteRef: {key: app, property: huge}}
  - {secretKey: tiny, remoteRef: {key: app, property: tiny}}"#,
        );
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "f"), "1.5");
        assert_eq!(text(&d, "e"), "1000");
        assert_eq!(
            text(&d, "big"),
            "12345678901234567890",
            "integers keep their digits"
        );
        assert_eq!(text(&d, "neg"), "-0");
        assert_eq!(text(&d, "huge"), "+Inf");
        assert_eq!(text(&d, "tiny"), "0.0000001");
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "f"), "1.50");
        assert_eq!(text(&d, "e"), "1e3");
        assert_eq!(text(&d, "huge"), "1e400");
    }

    #[test]
    fn property_strings_are_unescaped_as_go_does() {
        let doc = r#"{"pair":"\uD858\uDD04","emoji":"\ud83d\ude00","lone":"a\ud800b","nl":"a\nb"}"#;
        let s = spec(
            r#"data:
  - {secretKey: pair, remoteRef: {key: app, property: pair}}
  - {secretKey: emoji, remoteRef: {key: app, property: emoji}}
  - {secretKey: lone, remoteRef: {key: app, property: lone}}
  - {secretKey: nl, remoteRef: {key: app, property: nl}}"#,
        );
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "pair"), "\u{26104}");
        assert_eq!(text(&d, "emoji"), "😀");
        assert_eq!(text(&d, "lone"), "a\u{fffd}b");
        assert_eq!(text(&d, "nl"), "a\nb");
        // extract decodes like encoding/json: the same bytes here.
        let s = spec("dataFrom: [{extract: {key: app}}]");
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "pair"), "\u{26104}");
        assert_eq!(text(&d, "lone"), "a\u{fffd}b");
    }

    #[test]
    fn property_paths_follow_gjson_for_arrays_and_duplicate_keys() {
        let doc = r#"{"users":[{"n":"a"},{"n":"b"},{"x":1}],"o":{"":"empty-key"},"d":{"x":1},"d":{"y":"second"}}"#;
        let s = spec(
            r#"data:
  - {secretKey: first, remoteRef: {key: app, property: users.0.n}}
  - {secretKey: count, remoteRef: {key: app, property: "users.#"}}
  - {secretKey: names, remoteRef: {key: app, property: "users.#.n"}}
  - {secretKey: dup, remoteRef: {key: app, property: d.y}}"#,
        );
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(text(&d, "first"), "a");
        assert_eq!(text(&d, "count"), "3");
        assert_eq!(text(&d, "names"), r#"["a","b"]"#);
        assert_eq!(
            text(&d, "dup"),
            "second",
            "gjson goes on to a later key of the same name"
        );
        // `#` counts arrays only; on an object it is a key like any other.
        let s = spec("data: [{secretKey: x, remoteRef: {key: app, property: \"o.#\"}}]");
        let err = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap_err();
        assert_eq!(err.category(), "PropertyNotFound");
    }

    #[test]
    fn property_syntax_we_do_not_evaluate_is_refused_not_guessed() {
        let doc = r#"{"a*":"SECRET-literal","abc":"SECRET-wild"}"#;
        for property in [
            "a*",
            "a?c",
            "@reverse",
            "users.#(n==\"a\").n",
            "a|b",
            "[a,abc]",
        ] {
            let s = spec(&format!(
                "data: [{{secretKey: x, remoteRef: {{key: app, property: '{property}'}}}}]"
            ));
            let err = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap_err();
            assert_eq!(err.category(), "Unsupported", "{property}");
            assert!(!err.to_string().contains("SECRET"));
        }
        let s = spec(r#"data: [{secretKey: x, remoteRef: {key: app, property: 'a\*'}}]"#);
        let d = desired_data(&s, &fetched(&[("app", Ok(doc))])).unwrap();
        assert_eq!(
            text(&d, "x"),
            "SECRET-literal",
            "an escaped '*' is part of the key"
        );
    }

    #[test]
    fn decoding_strategies_decode_as_documented() {
        let s = spec(
            r#"data:
  - {secretKey: std, remoteRef: {key: b64, decodingStrategy: Base64}}
  - {secretKey: url, remoteRef: {key: b64url, decodingStrategy: Base64URL}}
  - {secretKey: auto, remoteRef: {key: b64, decodingStrategy: Auto}}
  - {secretKey: autoraw, remoteRef: {key: raw, decodingStrategy: Auto}}"#,
        );
        let d = desired_data(
            &s,
            &fetched(&[
                ("b64", Ok("aGk/Pz4+fg==")),
                ("b64url", Ok("aGk_Pz4-fg==")),
                ("raw", Ok("not base64!")),
            ]),
        )
        .unwrap();
        assert_eq!(d.data["std"].expose(), b"hi??>>~");
        assert_eq!(d.data["url"].expose(), b"hi??>>~");
        assert_eq!(d.data["auto"].expose(), b"hi??>>~");
        assert_eq!(text(&d, "autoraw"), "not base64!");
    }

    #[test]
    fn bad_base64_is_a_decode_error() {
        let s = spec("data: [{secretKey: x, remoteRef: {key: k, decodingStrategy: Base64}}]");
        let err = desired_data(&s, &fetched(&[("k", Ok("%%%"))])).unwrap_err();
        assert_eq!(err.category(), "DecodeFailed");
    }

    fn decoded(strategy: &str, value: &str) -> Result<Vec<u8>, BuildError> {
        let s = spec(&format!(
            "data: [{{secretKey: x, remoteRef: {{key: k, decodingStrategy: {strategy}}}}}]"
        ));
        desired_data(&s, &fetched(&[("k", Ok(value))])).map(|d| d.data["x"].expose().to_vec())
    }

    #[test]
    fn base64_follows_go_padding_newlines_and_trailing_bits() {
        // CR and LF anywhere are skipped: wrapped base64 decodes.
        assert_eq!(
            decoded("Base64", "aGVs\r\nbG8g\nd29y\rbGQ=\n").unwrap(),
            b"hello world"
        );
        assert_eq!(decoded("Base64", "aQ=\n=").unwrap(), b"i");
        // A missing pad is an error; so is a space, which is not skipped.
        assert!(decoded("Base64", "aQ").is_err());
        assert!(decoded("Base64", "aQ== ").is_err());
        assert!(decoded("Base64", " aQ==").is_err());
        // Non-canonical trailing bits are accepted.
        assert_eq!(decoded("Base64", "YR==").unwrap(), b"a");
        // Each strategy keeps to its alphabet.
        assert!(decoded("Base64", "aGk_Pz4-fg==").is_err());
        assert_eq!(decoded("Base64URL", "aGk_Pz4-fg==").unwrap(), b"hi??>>~");
        assert!(decoded("Base64URL", "aGk_Pz4-fg").is_err());
        assert!(decoded("Base64URL", "aGk/Pz4+fg==").is_err());
        assert_eq!(decoded("Base64", "").unwrap(), b"");
    }

    #[test]
    fn auto_tries_standard_then_url_safe_then_keeps_the_value() {
        assert_eq!(decoded("Auto", "aGk/Pz4+fg==").unwrap(), b"hi??>>~");
        assert_eq!(decoded("Auto", "aGk_Pz4-fg==").unwrap(), b"hi??>>~");
        assert_eq!(decoded("Auto", "aGVs\nbG8=").unwrap(), b"hello");
        // Never an error: what is not padded base64 stays as it is.
        assert_eq!(decoded("Auto", "aGk_Pz4-fg").unwrap(), b"aGk_Pz4-fg");
        assert_eq!(decoded("Auto", "aQ== ").unwrap(), b"aQ== ");
        assert_eq!(decoded("Auto", "hunter2").unwrap(), b"hunter2");
        assert_eq!(decoded("None", "aQ==").unwrap(), b"aQ==");
    }

    #[test]
    fn extracted_values_are_decoded_after_key_conversion() {
        let s = spec(
            "dataFrom: [{extract: {key: app, decodingStrategy: Base64, conversionStrategy: Default}}]",
        );
        let d = desired_data(&s, &fetched(&[("app", Ok(r#"{"a b":"aGk=","n":null}"#))])).unwrap();
        assert_eq!(text(&d, "a_b"), "hi");
        assert_eq!(
            text(&d, "n"),
            "",
            "null is empty, and empty is valid base64"
        );
    }

    #[test]
    fn not_found_keys_are_reported_missing_not_failed() {
        let s = spec(
            "data: [{secretKey: a, remoteRef: {key: gone}}, {secretKey: b, remoteRef: {key: here}}]",
        );
        let d = desired_data(
            &s,
            &fetched(&[
                ("gone", Err(ProviderError::NotFound { key: "gone".into() })),
                ("here", Ok("v")),
            ]),
        )
        .unwrap();
        assert_eq!(d.missing_remote_keys, vec!["gone".to_string()]);
        assert_eq!(d.data.keys().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn any_other_provider_error_fails_the_whole_build() {
        let s = spec(
            "data: [{secretKey: a, remoteRef: {key: denied}}, {secretKey: b, remoteRef: {key: here}}]",
        );
        let denied = ProviderError::AccessDenied {
            key: "denied".into(),
            detail: "no".into(),
        };
        let err =
            desired_data(&s, &fetched(&[("denied", Err(denied)), ("here", Ok("v"))])).unwrap_err();
        assert_eq!(err.category(), "AccessDenied");
    }

    #[test]
    fn requests_are_deduplicated_across_data_and_extract() {
        let s = spec(
            "data: [{secretKey: a, remoteRef: {key: db, property: x}}, {secretKey: b, remoteRef: {key: db, property: y}}]\ndataFrom: [{extract: {key: db}}]",
        );
        assert_eq!(requests(&s), vec![FetchRequest::current("db")]);
    }

    #[test]
    fn versions_and_metadata_are_distinct_requests() {
        let s = spec(
            "data: [{secretKey: a, remoteRef: {key: db, version: AWSPREVIOUS}}, {secretKey: b, remoteRef: {key: db, metadataPolicy: Fetch}}]",
        );
        let got = requests(&s);
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .any(|r| r.version.as_deref() == Some("AWSPREVIOUS"))
        );
        assert!(got.iter().any(|r| r.metadata));
    }

    #[test]
    fn template_engine_v2_is_accepted_and_v1_refused_before_any_fetch() {
        let t = spec(
            "target: {template: {type: kubernetes.io/tls}}\ndata: [{secretKey: a, remoteRef: {key: k}}]",
        );
        assert_eq!(check_supported(&t), Ok(()));
        let v1 = spec(
            "target: {template: {engineVersion: v1}}\ndata: [{secretKey: a, remoteRef: {key: k}}]",
        );
        assert_eq!(check_supported(&v1).unwrap_err().category(), "InvalidSpec");
        let f = spec(
            "dataFrom: [{find: {name: {regexp: '.*'}}, rewrite: [{regexp: {source: a, target: b}}]}]",
        );
        assert_eq!(check_supported(&f), Ok(()));
        let g = spec("dataFrom: [{sourceRef: {storeRef: {name: other}}}]");
        assert_eq!(
            check_supported(&g),
            Err(BuildError::Unsupported {
                field: "spec.dataFrom[].sourceRef.storeRef"
            })
        );
        let empty = ExternalSecretSpec {
            data: vec![],
            data_from: vec![ExternalSecretDataFromRemoteRef::default()],
            ..Default::default()
        };
        assert_eq!(check_supported(&empty), Err(BuildError::NothingToSync));
        let ok = ExternalSecretSpec {
            data: vec![ExternalSecretData {
                secret_key: "a".into(),
                remote_ref: RemoteRef {
                    key: "k".into(),
                    ..Default::default()
                },
                source_ref: None,
            }],
            ..Default::default()
        };
        assert_eq!(check_supported(&ok), Ok(()));
    }

    fn found(entries: &[(&str, &str)]) -> crate::provider::Found {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from_str_value(v)))
            .collect()
    }

    fn with_find(
        s: &ExternalSecretSpec,
        answer: Result<crate::provider::Found, ProviderError>,
    ) -> FoundAll {
        let requests = finds(s);
        assert_eq!(requests.len(), 1);
        requests.into_iter().map(|r| (r, answer.clone())).collect()
    }

    #[test]
    fn found_secrets_are_named_by_remote_name_then_converted_then_decoded() {
        let s = spec(
            "dataFrom: [{find: {name: {regexp: '^app/'}, conversionStrategy: Unicode, decodingStrategy: Base64}}]",
        );
        let all = with_find(
            &s,
            Ok(found(&[("app/db.user", "dQ=="), ("/app/x y", "eA==")])),
        );
        let d = desired_data_found(&s, &HashMap::new(), &all).unwrap();
        assert_eq!(text(&d, "app_U002f_db.user"), "u");
        assert_eq!(text(&d, "_U002f_app_U002f_x_U0020_y"), "x");
        let s = spec("dataFrom: [{find: {path: /team, tags: {a: b}}}]");
        let all = with_find(&s, Ok(found(&[("/team/db", "v")])));
        let d = desired_data_found(&s, &HashMap::new(), &all).unwrap();
        assert_eq!(text(&d, "_team_db"), "v", "Default replaces '/' with '_'");
    }

    #[test]
    fn rewrite_replaces_conversion_and_applies_to_extract_and_find() {
        let s = spec(
            r#"
dataFrom:
  - extract: {key: dev}
    rewrite: [{regexp: {source: "(.*)", target: "dev-$1"}}]
  - find: {name: {regexp: "^path/to/my/secrets/"}}
    rewrite: [{regexp: {source: "path/to/my/secrets/(.*)", target: "$1"}}]
"#,
        );
        let all = with_find(
            &s,
            Ok(found(&[
                ("path/to/my/secrets/username", "u"),
                ("path/to/my/secrets/password", "p"),
            ])),
        );
        let d = desired_data_found(&s, &fetched(&[("dev", Ok(r#"{"password":"bar"}"#))]), &all)
            .unwrap();
        let keys: Vec<_> = d.data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["dev-password", "password", "username"]);
        // Without conversion, a rewritten key must already be a valid Secret key.
        let s = spec(
            r#"dataFrom: [{find: {name: {regexp: "."}}, rewrite: [{regexp: {source: "^x", target: "y"}}]}]"#,
        );
        let all = with_find(&s, Ok(found(&[("x/a", "v")])));
        let err = desired_data_found(&s, &HashMap::new(), &all).unwrap_err();
        assert_eq!(err.category(), "InvalidSecretKey");
    }

    #[test]
    fn a_find_matching_nothing_contributes_nothing_and_errors_fail_the_build() {
        let s = spec(
            "data: [{secretKey: a, remoteRef: {key: k}}]\ndataFrom: [{find: {name: {regexp: nothing}}}]",
        );
        let all = with_find(&s, Ok(found(&[])));
        let d = desired_data_found(&s, &fetched(&[("k", Ok("v"))]), &all).unwrap();
        assert!(d.empty_find);
        assert_eq!(d.data.keys().collect::<Vec<_>>(), ["a"]);
        let all = with_find(&s, Err(ProviderError::FindLimitExceeded { limit: 3 }));
        let err = desired_data_found(&s, &fetched(&[("k", Ok("v"))]), &all).unwrap_err();
        assert_eq!(err.category(), "FindLimitExceeded");
        assert!(err.to_string().contains("dataFrom[0].find"), "{err}");
    }

    #[test]
    fn generator_keys_get_their_rewrites_but_no_conversion() {
        let s = spec(
            "dataFrom: [{sourceRef: {generatorRef: {kind: Password, name: p}}, rewrite: [{transform: {template: 'DB_{{ .value | upper }}'}}]}]",
        );
        let generated: BTreeMap<usize, BTreeMap<String, SecretBytes>> = [(
            0,
            [("password".to_string(), SecretBytes::from_str_value("pw"))].into(),
        )]
        .into();
        let d = desired_data_all(&s, &HashMap::new(), &FoundAll::new(), &generated).unwrap();
        assert_eq!(text(&d, "DB_PASSWORD"), "pw");
        let s = spec(
            "dataFrom: [{sourceRef: {generatorRef: {kind: Password, name: p}}, rewrite: [{regexp: {source: pass, target: 'pass/'}}]}]",
        );
        let err = desired_data_all(&s, &HashMap::new(), &FoundAll::new(), &generated).unwrap_err();
        assert_eq!(
            err.category(),
            "InvalidSecretKey",
            "no conversion turns '/' into '_'"
        );
    }

    #[test]
    fn finds_need_a_name_or_tags_and_a_valid_go_regexp() {
        let no_name = spec("dataFrom: [{find: {path: /a}}]");
        assert_eq!(
            check_supported(&no_name).unwrap_err().category(),
            "InvalidSpec"
        );
        let bad = spec("dataFrom: [{find: {name: {regexp: '(?=x)'}}}]");
        assert_eq!(check_supported(&bad).unwrap_err().category(), "InvalidSpec");
        let bad_rewrite =
            spec("dataFrom: [{extract: {key: k}, rewrite: [{regexp: {source: '[', target: x}}]}]");
        assert!(
            check_supported(&bad_rewrite)
                .unwrap_err()
                .to_string()
                .contains("dataFrom[0]: rewrite[0].regexp")
        );
        let twice = spec(
            "dataFrom: [{find: {tags: {a: b}}}, {find: {tags: {a: b}}, rewrite: [{regexp: {source: x, target: y}}]}]",
        );
        assert_eq!(finds(&twice).len(), 1, "one listing serves both entries");
    }

    #[test]
    fn generator_refs_are_accepted_for_served_kinds_and_refused_naming_the_kind() {
        let with = |kind: &str| {
            spec(&format!(
                "dataFrom: [{{sourceRef: {{generatorRef: {{apiVersion: generators.external-secrets.io/v1alpha1, kind: {kind}, name: g}}}}}}]"
            ))
        };
        for kind in ["ECRAuthorizationToken", "Password", "ClusterGenerator"] {
            assert_eq!(check_supported(&with(kind)), Ok(()), "{kind}");
            assert!(!needs_store(&with(kind)), "{kind} alone reads no store");
        }
        let err = check_supported(&with("UUID")).unwrap_err();
        assert_eq!(err.category(), "UnsupportedGenerator");
        assert!(err.to_string().contains("\"UUID\""), "{err}");
        // apiVersion defaults to the generators group; another group is refused as ESO does.
        let defaulted = spec("dataFrom: [{sourceRef: {generatorRef: {kind: Password, name: g}}}]");
        assert_eq!(check_supported(&defaulted), Ok(()));
        let other = spec(
            "dataFrom: [{sourceRef: {generatorRef: {apiVersion: example.com/v1, kind: Password, name: g}}}]",
        );
        assert_eq!(
            check_supported(&other).unwrap_err().category(),
            "InvalidSpec"
        );
        let store_ref = spec("dataFrom: [{extract: {key: k}, sourceRef: {storeRef: {name: s}}}]");
        assert_eq!(
            check_supported(&store_ref),
            Err(BuildError::Unsupported {
                field: "spec.dataFrom[].sourceRef.storeRef"
            })
        );
        let mixed = spec(
            "dataFrom: [{sourceRef: {generatorRef: {kind: Password, name: g}}}]\ndata: [{secretKey: a, remoteRef: {key: k}}]",
        );
        assert!(needs_store(&mixed));
    }

    #[test]
    fn generated_keys_merge_in_data_from_order_and_data_wins() {
        let s = spec(
            "dataFrom:\n- extract: {key: app}\n- sourceRef: {generatorRef: {kind: Password, name: g}}\ndata: [{secretKey: password, remoteRef: {key: pinned}}]",
        );
        let mut generated = BTreeMap::new();
        generated.insert(
            1,
            BTreeMap::from([
                ("password".to_owned(), SecretBytes::from("gen".to_owned())),
                (
                    "a".to_owned(),
                    SecretBytes::from("from-generator".to_owned()),
                ),
            ]),
        );
        let d = desired_data_with(
            &s,
            &fetched(&[
                ("app", Ok(r#"{"a":"from-extract"}"#)),
                ("pinned", Ok("explicit")),
            ]),
            &generated,
        )
        .unwrap();
        assert_eq!(
            d.data["a"].expose(),
            b"from-generator",
            "a later dataFrom entry wins"
        );
        assert_eq!(
            d.data["password"].expose(),
            b"explicit",
            "data wins over dataFrom"
        );
        // Generator keys follow the Kubernetes key rule.
        generated.insert(
            1,
            BTreeMap::from([("bad key".to_owned(), SecretBytes::default())]),
        );
        let err = desired_data_with(
            &s,
            &fetched(&[("app", Ok("{}")), ("pinned", Ok("x"))]),
            &generated,
        )
        .unwrap_err();
        assert_eq!(err.category(), "InvalidSecretKey");
    }

    #[test]
    fn the_expiry_is_recorded_on_the_secret_and_read_back() {
        let mut d = DesiredData::default();
        mark_expiry(&mut d, None);
        assert!(d.meta.annotations.is_empty());
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
        mark_expiry(&mut d, Some(at));
        assert_eq!(
            d.meta.annotations[EXPIRES_AT_ANNOTATION],
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            recorded_expiry(
                d.meta
                    .annotations
                    .get(EXPIRES_AT_ANNOTATION)
                    .map(String::as_str)
            ),
            Some(at)
        );
        assert_eq!(recorded_expiry(Some("soon")), None);
        assert_eq!(recorded_expiry(None), None);
    }

    #[test]
    fn refresh_interval_follows_go_durations() {
        let with = |v: &str| ExternalSecretSpec {
            refresh_interval: Some(v.into()),
            ..Default::default()
        };
        assert_eq!(
            refresh_interval(&with("1h30m")),
            Ok(Some(Duration::from_secs(5400)))
        );
        assert_eq!(
            refresh_interval(&with("15s")),
            Ok(Some(Duration::from_secs(15)))
        );
        assert_eq!(refresh_interval(&with("0")), Ok(None));
        assert_eq!(refresh_interval(&with("0s")), Ok(None));
        assert!(refresh_interval(&with("soon")).is_err());
        assert_eq!(
            refresh_interval(&ExternalSecretSpec::default()),
            Ok(Some(Duration::from_secs(3600)))
        );
    }

    fn es(yaml: &str) -> crate::api::ExternalSecret {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn owned_secret_is_labelled_hashed_and_owned() {
        let es = es(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app, namespace: ns, uid: u-1}\nspec: {target: {name: app-secret}}",
        );
        let data: BTreeMap<_, _> = [("k".to_string(), SecretBytes::from_str_value("v"))].into();
        let secret = desired_secret(
            &es,
            &data,
            &TemplateMeta::default(),
            Ownership::Owned,
            "salt-1",
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("app-secret"));
        assert_eq!(
            secret.metadata.labels.unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
        assert_eq!(
            secret.metadata.annotations.unwrap()[DATA_HASH_ANNOTATION],
            data_hash("salt-1", &data)
        );
        let owner = &secret.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ExternalSecret", "u-1", Some(true))
        );
        assert_eq!(secret.data.unwrap()["k"].0, b"v");
    }

    #[test]
    fn orphan_has_no_owner_and_merge_touches_only_data() {
        let es = es(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app, namespace: ns, uid: u-1}\nspec: {target: {immutable: true}}",
        );
        let data: BTreeMap<_, _> = [("k".to_string(), SecretBytes::from_str_value("v"))].into();
        let orphan = desired_secret(
            &es,
            &data,
            &TemplateMeta::default(),
            Ownership::Orphaned,
            "salt-1",
        );
        assert!(orphan.metadata.owner_references.is_none());
        assert_eq!(orphan.immutable, Some(true));
        assert_eq!(orphan.metadata.name.as_deref(), Some("app"));
        let merged = desired_secret(
            &es,
            &data,
            &TemplateMeta::default(),
            Ownership::MergedInto,
            "salt-1",
        );
        assert!(merged.metadata.labels.is_none() && merged.metadata.annotations.is_none());
        assert!(
            merged.metadata.owner_references.is_none()
                && merged.type_.is_none()
                && merged.immutable.is_none()
        );
    }

    #[test]
    fn data_hash_changes_with_any_byte_and_is_order_independent() {
        let a: BTreeMap<_, _> = [("k".to_string(), SecretBytes::from_str_value("v1"))].into();
        let b: BTreeMap<_, _> = [("k".to_string(), SecretBytes::from_str_value("v2"))].into();
        assert_ne!(data_hash("k", &a), data_hash("k", &b));
        assert_ne!(
            data_hash("k", &a),
            data_hash("other-key", &a),
            "keyed: the same data hashes differently per ExternalSecret"
        );
        assert_eq!(data_hash("k", &a), data_hash("k", &a.clone()));
        let ab: BTreeMap<_, _> = [("ab".to_string(), SecretBytes::from_str_value("c"))].into();
        let a_bc: BTreeMap<_, _> = [("a".to_string(), SecretBytes::from_str_value("bc"))].into();
        assert_ne!(data_hash("k", &ab), data_hash("k", &a_bc));
    }
}
