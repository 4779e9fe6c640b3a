//! Secrets Manager reads: current versions batched through BatchGetSecretValue (20 IDs per call), pinned
//! versions through GetSecretValue, tags through DescribeSecret, `find` through ListSecrets (100 per page)
//! then BatchGetSecretValue. Returns raw documents only; must not
//! parse, select or decode values, and must never put a value in an error or a log line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::Blob;
use futures::{StreamExt, stream};

use super::coalesce::Run;
use aws_sdk_secretsmanager::types::SecretListEntry;

use super::{AwsIdentity, count, errors, listing};
use crate::admin::Metrics;
use crate::provider::{
    FetchRequest, FindRequest, Found, ProviderError, RotationTimes, SecretBytes, SecretProvider,
    Versions,
};

/// AWS's limit of secret IDs per BatchGetSecretValue call.
pub(super) const BATCH_LIMIT: usize = 20;
/// AWS's largest ListSecrets page.
const LIST_PAGE: i32 = 100;
/// AWS's most filters per ListSecrets call.
const MAX_FILTERS: usize = 10;
/// Calls in flight at once per fetch: enough to hide latency, few enough to stay far from AWS's TPS limits.
const CONCURRENCY: usize = 8;
const CURRENT_STAGE: &str = "AWSCURRENT";
/// ESO's spelling of a pinned VersionId in `remoteRef.version`.
const VERSION_ID_PREFIX: &str = "uuid/";

type Fetched = Result<SecretBytes, ProviderError>;

/// ESO's provider label in the API call metric.
const METRIC_PROVIDER: &str = "AWS/SecretsManager";

#[derive(Clone)]
pub struct SecretsManagerProvider {
    identity: Arc<AwsIdentity>,
    prefix: String,
    metrics: Arc<Metrics>,
}

impl SecretsManagerProvider {
    pub fn new(identity: Arc<AwsIdentity>, prefix: String, metrics: Arc<Metrics>) -> Self {
        SecretsManagerProvider {
            identity,
            prefix,
            metrics,
        }
    }

    async fn describe_times(&self, key: &str) -> Result<RotationTimes, ProviderError> {
        let client = self.identity.secrets_manager();
        let described = client
            .describe_secret()
            .secret_id(self.secret_id(key))
            .send()
            .await;
        count(&self.metrics, METRIC_PROVIDER, "DescribeSecret", &described);
        let described = described.map_err(|e| errors::from_sdk(key, &e))?;
        let to_time = |d: Option<aws_smithy_types::DateTime>| {
            d.and_then(|d| std::time::SystemTime::try_from(d).ok())
        };
        Ok(RotationTimes {
            last_rotated: to_time(described.last_rotated_date),
            last_changed: to_time(described.last_changed_date),
        })
    }

    /// ResourceNotFoundException cannot tell a missing secret from a missing stage or version (or a
    /// secret without a current value), and InvalidRequestException is also how a secret scheduled for
    /// deletion answers. DescribeSecret settles each such answer: one call per distinct key, only on these
    /// error paths. Only a secret DescribeSecret cannot find, or one with a `DeletedDate`, counts as gone.
    async fn confirm_missing(
        &self,
        client: &Client,
        requests: &[FetchRequest],
        results: &mut [Fetched],
    ) {
        let doubtful = |request: &FetchRequest, r: &Fetched| {
            !request.metadata
                && matches!(
                    r,
                    Err(ProviderError::NotFound { .. } | ProviderError::InvalidRequest { .. })
                )
        };
        let states =
            super::confirm_each(requests, results, doubtful, CONCURRENCY, |key| async move {
                let answer = self.deletion_scheduled(client, &key).await;
                (key, answer)
            })
            .await;
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            if !doubtful(request, result) {
                continue;
            }
            let Some(state) = states.get(request.key.as_str()) else {
                continue;
            };
            let key = request.key.clone();
            *result = match (state, &*result) {
                (Err(e), _) if e.is_gone() => Err(ProviderError::NotFound { key }),
                (Ok(true), _) => Err(ProviderError::DeletionScheduled { key }),
                // The secret exists: what was not found is the version (AWSCURRENT when none was asked for).
                (Ok(false), Err(ProviderError::NotFound { .. })) => {
                    Err(ProviderError::VersionNotFound {
                        key,
                        version: request
                            .version
                            .clone()
                            .unwrap_or_else(|| CURRENT_STAGE.to_owned()),
                    })
                }
                (Ok(false), _) => continue,
                // DescribeSecret failed too: report that, never "gone".
                (Err(e), _) => Err(e.clone()),
            };
        }
    }

    /// Whether the secret is scheduled for deletion (`DeletedDate`); NotFound when it does not exist.
    async fn deletion_scheduled(&self, client: &Client, key: &str) -> Result<bool, ProviderError> {
        let described = client
            .describe_secret()
            .secret_id(self.secret_id(key))
            .send()
            .await;
        count(&self.metrics, METRIC_PROVIDER, "DescribeSecret", &described);
        let described = described.map_err(|e| errors::from_sdk(key, &e))?;
        Ok(described.deleted_date.is_some())
    }

    fn secret_id(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The current value of each of `ids` through the identity's shared BatchGetSecretValue batches
    /// (gathered with concurrent fetches, 20 IDs per call), errors keyed by `keys` (same order). `None`
    /// means "no usable answer in a batch": the caller reads that one on its own.
    async fn batched(&self, ids: Vec<String>, keys: &[&str]) -> Vec<Option<Fetched>> {
        let (identity, metrics) = (self.identity.clone(), self.metrics.clone());
        let run: Run<String, Fetched> = Arc::new(move |ids| {
            let (identity, metrics) = (identity.clone(), metrics.clone());
            Box::pin(async move { batch(&identity, &metrics, ids).await })
        });
        let mut out = Vec::with_capacity(keys.len());
        for (pending, key) in self
            .identity
            .secret_values
            .submit(ids, &run)
            .into_iter()
            .zip(keys)
        {
            out.push(
                pending
                    .answer()
                    .await
                    .map(|answer| answer.map_err(|e| errors::rekey(e, key))),
            );
        }
        out
    }

    async fn fetch_one(&self, client: &Client, request: &FetchRequest) -> Fetched {
        self.fetch_id(client, request, &self.secret_id(&request.key))
            .await
    }

    /// `request` read from the secret `id` (the prefixed key, or a name that `find` listed).
    async fn fetch_id(&self, client: &Client, request: &FetchRequest, id: &str) -> Fetched {
        let key = request.key.as_str();
        if request.metadata {
            let described = client.describe_secret().secret_id(id).send().await;
            count(&self.metrics, METRIC_PROVIDER, "DescribeSecret", &described);
            let described = described.map_err(|e| errors::from_sdk(key, &e))?;
            let tags: BTreeMap<String, String> = described
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                .collect();
            let json = serde_json::to_vec(&tags).map_err(|e| ProviderError::Unavailable {
                key: key.to_owned(),
                detail: format!("failed to encode tags as JSON: {e}"),
            })?;
            return Ok(SecretBytes::new(json));
        }
        let mut call = client.get_secret_value().secret_id(id);
        if let Some(v) = request.version.as_deref().filter(|v| !v.is_empty()) {
            call = match v.strip_prefix(VERSION_ID_PREFIX) {
                Some(version_id) => call.version_id(version_id),
                None => call.version_stage(v),
            };
        }
        let value = call.send().await;
        count(&self.metrics, METRIC_PROVIDER, "GetSecretValue", &value);
        let value = value.map_err(|e| errors::from_sdk(key, &e))?;
        document(key, value.secret_string, value.secret_binary)
    }
}

impl SecretsManagerProvider {
    /// The names `find` matches: ListSecrets pages with the server-side filters ESO sends (`tag-key` and
    /// `tag-value` per tag, `name` for the path; AWS matches these as prefixes, unpaired), then the
    /// exact rules on each entry: the name starts with the path, the regexp matches, every tag is on
    /// the secret with exactly its value, and it is not scheduled for deletion.
    async fn find_names(
        &self,
        client: &Client,
        request: &FindRequest,
        limit: usize,
    ) -> Result<Vec<String>, ProviderError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let matcher = crate::provider::find_matcher(request)?;
        let filter = |key: FilterNameStringType, value: &str| {
            Filter::builder().key(key).values(value).build()
        };
        let mut wanted = Vec::new();
        if let Some(path) = &request.path {
            wanted.push((FilterNameStringType::Name, path.as_str()));
        }
        for (k, v) in &request.tags {
            wanted.push((FilterNameStringType::TagKey, k.as_str()));
            wanted.push((FilterNameStringType::TagValue, v.as_str()));
        }
        // Server-side filters only narrow the listing (the exact rules run on every entry below), so
        // a value AWS would refuse or read as a negation is left out rather than failing the find,
        // and so is anything past AWS's 10 filters.
        let filters: Vec<Filter> = wanted
            .into_iter()
            .filter(|(_, value)| is_plain_filter_value(value))
            .take(MAX_FILTERS)
            .map(|(key, value)| filter(key, value))
            .collect();
        let mut names = Vec::new();
        self.list_secrets(client, filters, |entry| {
            let Some(name) = entry.name else {
                return Ok(());
            };
            let tags: BTreeMap<String, String> = entry
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                .collect();
            let wanted = entry.deleted_date.is_none()
                && request.path.as_deref().is_none_or(|p| name.starts_with(p))
                && matcher.as_ref().is_none_or(|m| m.is_match(&name))
                && request.tags.iter().all(|(k, v)| tags.get(k) == Some(v));
            if wanted {
                names.push(name);
                if names.len() > limit {
                    return Err(ProviderError::FindLimitExceeded { limit });
                }
            }
            Ok(())
        })
        .await?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every ListSecrets page (100 entries per call) for `filters`, each entry handed to `each` in order;
    /// the first error, from AWS or from `each`, ends the listing.
    async fn list_secrets(
        &self,
        client: &Client,
        filters: Vec<aws_sdk_secretsmanager::types::Filter>,
        mut each: impl FnMut(SecretListEntry) -> Result<(), ProviderError>,
    ) -> Result<(), ProviderError> {
        let filters = (!filters.is_empty()).then_some(filters);
        let mut token = None;
        loop {
            let page = client
                .list_secrets()
                .set_filters(filters.clone())
                .max_results(LIST_PAGE)
                .set_next_token(token)
                .send()
                .await;
            count(&self.metrics, METRIC_PROVIDER, "ListSecrets", &page);
            let page = page.map_err(|e| errors::from_sdk("ListSecrets", &e))?;
            for entry in page.secret_list.unwrap_or_default() {
                each(entry)?;
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// The listing behind change detection: every secret whose name starts with `prefix` (a server-side
    /// `name` filter when AWS accepts the prefix as one; ARNs are not names, so then no filter), with its
    /// versions, their staging labels, and its tags. Secrets scheduled for deletion are not listed.
    async fn list_versions(
        &self,
        prefix: String,
        mut gathering: listing::Gathering,
    ) -> Result<listing::Gathering, ProviderError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let client = self.identity.secrets_manager();
        let plain: String = prefix
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || " :_@/+=.-".contains(*c))
            .collect();
        let filters = if plain.is_empty() || plain.starts_with("arn:") {
            Vec::new()
        } else {
            vec![
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(plain)
                    .build(),
            ]
        };
        self.list_secrets(client, filters, |mut entry| {
            if entry.deleted_date.is_some() {
                return Ok(());
            }
            let ids = entry.name.take().into_iter().chain(entry.arn.take());
            gathering.keep(ids, || {
                let tags = entry.tags.unwrap_or_default();
                let tags = listing::tags_digest(tags.iter().filter_map(|t| {
                    Some((t.key.as_deref()?, t.value.as_deref().unwrap_or_default()))
                }));
                let versions = entry.secret_versions_to_stages.unwrap_or_default();
                listing::Entry::new(versions, Some(tags))
            });
            Ok(())
        })
        .await?;
        self.identity.proven();
        Ok(gathering)
    }
}

/// The change-detection token of `request` in a listed secret: the VersionId its document is (the one
/// holding AWSCURRENT, or the asked stage; a pinned `uuid/` VersionId if listed), or the tags digest for
/// `metadataPolicy: Fetch`. None when the listing does not show it: the request is then fetched.
fn version_token(entry: &listing::Entry, request: &FetchRequest) -> Option<String> {
    if request.metadata {
        return entry.tags.map(|digest| format!("tags:{digest:016x}"));
    }
    let version = request
        .version
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(CURRENT_STAGE);
    if let Some(id) = version.strip_prefix(VERSION_ID_PREFIX) {
        return entry
            .versions
            .iter()
            .any(|v| &*v.id == id)
            .then(|| id.to_owned());
    }
    entry
        .versions
        .iter()
        .find(|v| v.stages.iter().any(|s| &**s == version))
        .map(|v| v.id.to_string())
}

#[async_trait]
impl SecretProvider for SecretsManagerProvider {
    /// ListSecrets (ceil(N/100) pages when the filters narrow the listing to the N matches), then
    /// BatchGetSecretValue by name, 20 per call: ceil(N/100) + ceil(N/20) calls. As in ESO, the
    /// store's `prefix` does not apply to find; a find needs a name or tags.
    async fn find(&self, request: &FindRequest, limit: usize) -> Result<Found, ProviderError> {
        if request.name_regexp.is_none() && request.tags.is_empty() {
            return Err(ProviderError::FindUnsupported {
                detail: "a find on Secrets Manager needs name or tags".to_owned(),
            });
        }
        let client = self.identity.secrets_manager();
        let names = self.find_names(client, request, limit).await?;
        let requests: Vec<FetchRequest> = names.iter().map(FetchRequest::current).collect();
        let mut results: Vec<Option<Fetched>> = vec![None; requests.len()];
        let single = if self.identity.batch_allowed() {
            let keys: Vec<&str> = names.iter().map(String::as_str).collect();
            results = self.batched(names.clone(), &keys).await;
            (0..requests.len())
                .filter(|&i| results[i].is_none())
                .collect()
        } else {
            (0..requests.len()).collect::<Vec<_>>()
        };
        let requests = &requests;
        let answers: Vec<(usize, Fetched)> = stream::iter(single)
            .map(|i| async move {
                let request = &requests[i];
                (i, self.fetch_id(client, request, &request.key).await)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (i, result) in answers {
            results[i] = Some(result);
        }
        let mut found = Found::new();
        for (name, result) in names.into_iter().zip(results) {
            match result {
                Some(Ok(value)) => {
                    found.insert(name, value);
                }
                // Deleted, or scheduled for deletion, since it was listed: it no longer matches.
                Some(Err(e)) if e.is_gone() => {}
                Some(Err(ProviderError::InvalidRequest { .. }))
                    if self
                        .deletion_scheduled(client, &name)
                        .await
                        .is_ok_and(|scheduled| scheduled) => {}
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(ProviderError::Unavailable {
                        key: name,
                        detail: "Secrets Manager gave no answer".to_owned(),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn fetch_many(&self, requests: &[FetchRequest]) -> Vec<Fetched> {
        let client = self.identity.secrets_manager();
        let mut results: Vec<Option<Fetched>> = vec![None; requests.len()];
        let batch_allowed = self.identity.batch_allowed();
        let (batched, mut single): (Vec<usize>, Vec<usize>) =
            (0..requests.len()).partition(|&i| batch_allowed && is_current_value(&requests[i]));

        // `None` and `AWSCURRENT` name the same value: the coalescer gives one ID one slot in a batch,
        // shared by every request (of this fetch or a concurrent one) that wants it.
        let ids: Vec<String> = batched
            .iter()
            .map(|&i| self.secret_id(&requests[i].key))
            .collect();
        let keys: Vec<&str> = batched.iter().map(|&i| requests[i].key.as_str()).collect();
        let answers = self.batched(ids, &keys).await;
        for (i, answer) in batched.into_iter().zip(answers) {
            match answer {
                Some(answer) => results[i] = Some(answer),
                None => single.push(i),
            }
        }

        let answers: Vec<(usize, Fetched)> = stream::iter(single)
            .map(|i| async move { (i, self.fetch_one(client, &requests[i]).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (i, result) in answers {
            results[i] = Some(result);
        }
        let mut results: Vec<Fetched> = results
            .into_iter()
            .zip(requests)
            .map(|(result, request)| {
                result.unwrap_or_else(|| {
                    Err(ProviderError::Unavailable {
                        key: request.key.clone(),
                        detail: "Secrets Manager gave no answer".to_owned(),
                    })
                })
            })
            .collect();
        self.confirm_missing(client, requests, &mut results).await;
        if results.iter().any(Result::is_ok) {
            self.identity.proven();
        }
        results
    }

    async fn validate(&self) -> Result<(), ProviderError> {
        self.identity.validate().await
    }

    /// From the identity's ListSecrets listing (`listing.rs`), by secret id (prefix + key).
    async fn versions(
        &self,
        requests: &[FetchRequest],
        max_age: Option<std::time::Duration>,
    ) -> Versions {
        let ids: Vec<String> = requests.iter().map(|r| self.secret_id(&r.key)).collect();
        let this = self.clone();
        self.identity.secrets_manager_listing.versions(
            requests,
            &ids,
            max_age,
            |prefix, gathering| async move { this.list_versions(prefix, gathering).await },
            version_token,
        )
    }

    /// DescribeSecret per key: LastRotatedDate and LastChangedDate.
    async fn rotation_times(&self, keys: &[String]) -> Vec<Result<RotationTimes, ProviderError>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CONCURRENCY) {
            let answers =
                futures::future::join_all(chunk.iter().map(|key| self.describe_times(key))).await;
            out.extend(answers);
        }
        out
    }
}

/// One BatchGetSecretValue call for `ids` (distinct): the answer for each ID it settles, errors keyed
/// by the ID. An ID left out has no usable answer in the batch and is read on its own.
async fn batch(
    identity: &AwsIdentity,
    metrics: &Metrics,
    ids: Vec<String>,
) -> HashMap<String, Fetched> {
    let client = identity.secrets_manager();
    let answer = client
        .batch_get_secret_value()
        .set_secret_id_list(Some(ids.clone()))
        .send()
        .await;
    count(metrics, METRIC_PROVIDER, "BatchGetSecretValue", &answer);
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            let error = errors::from_sdk("BatchGetSecretValue", &err);
            let denied = matches!(error, ProviderError::AccessDenied { .. });
            if denied {
                // Denied the batch action itself, not a secret: fall back to GetSecretValue per key.
                identity.batch_denied();
            }
            // A call-wide refusal caused by one secret (one pending deletion fails the whole call)
            // says nothing about the others: each is then read on its own.
            let isolate = denied
                || matches!(
                    error,
                    ProviderError::NotFound { .. }
                        | ProviderError::InvalidRequest { .. }
                        | ProviderError::InvalidConfig { .. }
                );
            if isolate {
                return HashMap::new();
            }
            return ids
                .into_iter()
                .map(|id| {
                    let e = errors::rekey(error.clone(), &id);
                    (id, Err(e))
                })
                .collect();
        }
    };
    let mut wanted: HashSet<String> = ids.into_iter().collect();
    let mut out = HashMap::with_capacity(wanted.len());
    for entry in answer.secret_values.unwrap_or_default() {
        // The answer names a secret by Name and ARN; the request may have used either (or a partial ARN).
        let found = [entry.name.as_deref(), entry.arn.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|candidate| wanted.take(candidate))
            .or_else(|| {
                let arn = entry.arn.as_deref()?;
                let partial = wanted.iter().find(|id| is_partial_arn_of(id, arn))?.clone();
                wanted.take(&partial)
            });
        if let Some(id) = found {
            let value = document(&id, entry.secret_string, entry.secret_binary);
            out.insert(id, value);
        }
    }
    for error in answer.errors.unwrap_or_default() {
        let Some(id) = error.secret_id.as_deref().and_then(|id| wanted.take(id)) else {
            continue;
        };
        let code = error.error_code.as_deref().unwrap_or("Unknown");
        let e = errors::from_code(&id, code, error.message.as_deref(), None);
        out.insert(id, Err(e));
    }
    out
}

/// A ListSecrets filter value AWS accepts as a plain prefix: its pattern
/// `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$`, at most 512 characters, and no leading `!` (a negation).
fn is_plain_filter_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && !value.starts_with('!')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
}

/// Current values can be batched; BatchGetSecretValue cannot pin a stage or a VersionId.
fn is_current_value(request: &FetchRequest) -> bool {
    !request.metadata
        && request
            .version
            .as_deref()
            .is_none_or(|v| v.is_empty() || v == CURRENT_STAGE)
}

/// A partial ARN is the full ARN without the "-" and six random characters AWS appends.
fn is_partial_arn_of(id: &str, arn: &str) -> bool {
    id.starts_with("arn:")
        && arn.len() == id.len() + 7
        && arn.starts_with(id)
        && arn.as_bytes().get(id.len()) == Some(&b'-')
}

/// The raw document of a secret version: SecretString as its bytes, else SecretBinary.
fn document(key: &str, string: Option<String>, binary: Option<Blob>) -> Fetched {
    if let Some(text) = string {
        return Ok(SecretBytes::from(text));
    }
    if let Some(bytes) = binary {
        return Ok(SecretBytes::new(bytes.into_inner()));
    }
    Err(ProviderError::Unavailable {
        key: key.to_owned(),
        detail: "the secret version has neither SecretString nor SecretBinary".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_current_values_are_batched() {
        let at = |v: Option<&str>| FetchRequest {
            key: "k".into(),
            version: v.map(Into::into),
            metadata: false,
        };
        assert!(is_current_value(&at(None)));
        assert!(is_current_value(&at(Some("AWSCURRENT"))));
        assert!(!is_current_value(&at(Some("AWSPREVIOUS"))));
        assert!(!is_current_value(&at(Some("uuid/123"))));
        assert!(!is_current_value(&FetchRequest {
            key: "k".into(),
            version: None,
            metadata: true
        }));
    }

    #[test]
    fn only_values_aws_reads_as_plain_prefixes_become_server_side_filters() {
        assert!(is_plain_filter_value("kubernetes.io/cluster/prod"));
        assert!(is_plain_filter_value("a b:c@d+e=f-g"));
        assert!(!is_plain_filter_value("!negated"));
        assert!(!is_plain_filter_value("comma,value"));
        assert!(!is_plain_filter_value("é"));
        assert!(!is_plain_filter_value(""));
        assert!(!is_plain_filter_value(&"a".repeat(513)));
    }

    #[test]
    fn partial_arns_match_their_full_arn() {
        let full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";
        assert!(is_partial_arn_of(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db",
            full
        ));
        assert!(!is_partial_arn_of(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/d",
            full
        ));
        assert!(!is_partial_arn_of("app/db", full));
    }

    #[test]
    fn a_version_without_string_or_binary_is_an_error_naming_only_the_key() {
        assert_eq!(
            document("k", Some("v".into()), None).map(|v| v.expose().to_vec()),
            Ok(b"v".to_vec())
        );
        assert_eq!(
            document("k", None, Some(Blob::new(vec![0, 1]))).map(|v| v.expose().to_vec()),
            Ok(vec![0, 1])
        );
        assert_eq!(
            document("k", None, None).map_err(|e| e.category()),
            Err("Unavailable")
        );
    }
}
