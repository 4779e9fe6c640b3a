//! Parameter Store reads: GetParameters with at most 10 names per call and always WithDecryption, versions
//! and labels as `name:3` / `name:label` (as ESO builds them), tags through ListTagsForResource, `find`
//! through GetParametersByPath (by name) or DescribeParameters + GetParameters (by tags).
//! Returns raw values only (StringList as AWS sends it); must never put a value in an error or a log line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterStringFilter, ResourceTypeForTagging};
use futures::{StreamExt, stream};

use super::coalesce::Run;
use super::{AwsIdentity, count, errors, listing};
use crate::admin::Metrics;
use crate::provider::{
    FetchRequest, FindRequest, Found, ProviderError, SecretBytes, SecretProvider, Versions,
};

/// AWS's limit of names per GetParameters call.
pub(super) const BATCH_LIMIT: usize = 10;
const CONCURRENCY: usize = 4;
/// AWS's largest DescribeParameters page.
const DESCRIBE_PAGE: i32 = 50;

type Fetched = Result<SecretBytes, ProviderError>;

/// One parameter to read: `base` is prefix + key, `name` adds the `:version` selector if any.
#[derive(Clone, Debug)]
struct Wanted {
    index: usize,
    key: String,
    base: String,
    name: String,
}

impl Wanted {
    /// A parameter named in full (listed by `find`: no store prefix, no version selector).
    fn full_name(index: usize, name: &str) -> Wanted {
        Wanted {
            index,
            key: name.to_owned(),
            base: name.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// ESO's provider label in the API call metric.
const METRIC_PROVIDER: &str = "AWS/ParameterStore";

#[derive(Clone)]
pub struct ParameterStoreProvider {
    identity: Arc<AwsIdentity>,
    prefix: String,
    metrics: Arc<Metrics>,
}

impl ParameterStoreProvider {
    pub fn new(identity: Arc<AwsIdentity>, prefix: String, metrics: Arc<Metrics>) -> Self {
        ParameterStoreProvider {
            identity,
            prefix,
            metrics,
        }
    }

    fn wanted(&self, index: usize, request: &FetchRequest) -> Wanted {
        let base = format!("{}{}", self.prefix, request.key);
        let name = match request.version.as_deref().filter(|v| !v.is_empty()) {
            Some(version) => format!("{base}:{version}"),
            None => base.clone(),
        };
        Wanted {
            index,
            key: request.key.clone(),
            base,
            name,
        }
    }

    /// For `name:3` or `name:label`, "not found" (an InvalidParameters entry, ParameterNotFound or
    /// ParameterVersionNotFound) cannot tell a missing version or label from a missing parameter.
    /// DescribeParameters (filter `Name Equals`, no value read) settles it: one call per distinct name,
    /// only on this error path. Only a parameter that does not exist counts as gone.
    async fn confirm_missing(
        &self,
        client: &Client,
        requests: &[FetchRequest],
        results: &mut [Fetched],
    ) {
        let doubtful = |request: &FetchRequest, result: &Fetched| {
            !request.metadata
                && request.version.as_deref().is_some_and(|v| !v.is_empty())
                && matches!(result, Err(ProviderError::NotFound { .. }))
        };
        let exists =
            super::confirm_each(requests, results, doubtful, CONCURRENCY, |key| async move {
                let answer = self.parameter_exists(client, &key).await;
                (key, answer)
            })
            .await;
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            if !doubtful(request, result) {
                continue;
            }
            match exists.get(request.key.as_str()) {
                Some(Ok(false)) | None => {}
                Some(Ok(true)) => {
                    *result = Err(ProviderError::VersionNotFound {
                        key: request.key.clone(),
                        version: request.version.clone().unwrap_or_default(),
                    })
                }
                // DescribeParameters failed: report that, never "gone".
                Some(Err(e)) => *result = Err(e.clone()),
            }
        }
    }

    async fn parameter_exists(&self, client: &Client, key: &str) -> Result<bool, ProviderError> {
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(format!("{}{key}", self.prefix))
            .build()
            .map_err(|e| ProviderError::InvalidConfig {
                detail: format!("DescribeParameters filter for {key:?}: {e}"),
            })?;
        let described = client
            .describe_parameters()
            .parameter_filters(filter)
            .send()
            .await;
        count(
            &self.metrics,
            METRIC_PROVIDER,
            "DescribeParameters",
            &described,
        );
        let described = described.map_err(|e| errors::from_sdk(key, &e))?;
        Ok(!described.parameters.unwrap_or_default().is_empty())
    }

    /// The current values of `wanted` (unversioned names) through the identity's shared GetParameters
    /// batches (gathered with concurrent fetches, 10 names per call, decrypted), errors keyed by each
    /// `Wanted::key`. `None` means "no usable answer in a batch": read that one on its own.
    async fn batched(&self, wanted: &[Wanted]) -> Vec<Option<Fetched>> {
        let (client, metrics) = (self.identity.ssm().clone(), self.metrics.clone());
        let run: Run<String, Fetched> = Arc::new(move |names: Vec<String>| {
            let (client, metrics) = (client.clone(), metrics.clone());
            Box::pin(async move {
                let chunk = names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| Wanted::full_name(index, name))
                    .collect();
                batch(&client, &metrics, chunk)
                    .await
                    .into_iter()
                    .filter_map(|(i, answer)| Some((names.get(i)?.clone(), answer?)))
                    .collect()
            })
        });
        let pending = self
            .identity
            .parameters
            .submit(wanted.iter().map(|w| w.name.clone()), &run);
        let mut out = Vec::with_capacity(wanted.len());
        for (pending, w) in pending.into_iter().zip(wanted) {
            out.push(
                pending
                    .answer()
                    .await
                    .map(|answer| answer.map_err(|e| errors::rekey(e, &w.key))),
            );
        }
        out
    }

    async fn fetch_one(&self, client: &Client, wanted: &Wanted, metadata: bool) -> Fetched {
        let key = wanted.key.as_str();
        if metadata {
            let listed = client
                .list_tags_for_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&wanted.base)
                .send()
                .await;
            count(
                &self.metrics,
                METRIC_PROVIDER,
                "ListTagsForResource",
                &listed,
            );
            let listed = listed.map_err(|e| errors::from_sdk(key, &e))?;
            let tags: BTreeMap<String, String> = listed
                .tag_list
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect();
            let json = serde_json::to_vec(&tags).map_err(|e| ProviderError::Unavailable {
                key: key.to_owned(),
                detail: format!("failed to encode tags as JSON: {e}"),
            })?;
            return Ok(SecretBytes::new(json));
        }
        let answer = client
            .get_parameter()
            .name(&wanted.name)
            .with_decryption(true)
            .send()
            .await;
        count(&self.metrics, METRIC_PROVIDER, "GetParameter", &answer);
        let answer = answer.map_err(|e| errors::from_sdk(key, &e))?;
        value(key, answer.parameter.and_then(|p| p.value))
    }
}

impl ParameterStoreProvider {
    /// ESO's find by name: GetParametersByPath under `path` (default `/`), recursive, decrypted, the
    /// regexp applied to each name; values come with the listing. If GetParametersByPath is denied, ESO
    /// falls back to DescribeParameters (names) and reads the values; so do we (GetParameters, 10 a call).
    async fn find_by_name(
        &self,
        client: &Client,
        request: &FindRequest,
        limit: usize,
    ) -> Result<Found, ProviderError> {
        let matcher = crate::provider::find_matcher(request)?;
        let path = request.path.clone().unwrap_or_else(|| "/".to_owned());
        let mut found = Found::new();
        let mut token = None;
        loop {
            let page = client
                .get_parameters_by_path()
                .path(&path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token)
                .send()
                .await;
            count(&self.metrics, METRIC_PROVIDER, "GetParametersByPath", &page);
            let page = match page.map_err(|e| errors::from_sdk(&path, &e)) {
                Ok(page) => page,
                Err(ProviderError::AccessDenied { .. }) => {
                    let names = self.describe_names(client, request, limit).await?;
                    let names = names
                        .into_iter()
                        .filter(|n| matcher.as_ref().is_none_or(|m| m.is_match(n)))
                        .collect();
                    return self.read_values(client, names).await;
                }
                Err(e) => return Err(e),
            };
            for parameter in page.parameters.unwrap_or_default() {
                let Some(name) = parameter.name else { continue };
                if matcher.as_ref().is_some_and(|m| !m.is_match(&name)) {
                    continue;
                }
                let value = value(&name, parameter.value)?;
                found.insert(name, value);
                if found.len() > limit {
                    return Err(ProviderError::FindLimitExceeded { limit });
                }
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// The names DescribeParameters lists for ESO's filters: `tag:KEY Equals VALUE` per tag and
    /// `Path Recursive` for the path.
    async fn describe_names(
        &self,
        client: &Client,
        request: &FindRequest,
        limit: usize,
    ) -> Result<Vec<String>, ProviderError> {
        let invalid = |e: aws_sdk_ssm::error::BuildError| ProviderError::FindUnsupported {
            detail: format!("DescribeParameters filter: {e}"),
        };
        let mut filters = Vec::new();
        for (k, v) in &request.tags {
            filters.push(
                ParameterStringFilter::builder()
                    .key(format!("tag:{k}"))
                    .option("Equals")
                    .values(v)
                    .build()
                    .map_err(invalid)?,
            );
        }
        if let Some(path) = &request.path {
            filters.push(
                ParameterStringFilter::builder()
                    .key("Path")
                    .option("Recursive")
                    .values(path)
                    .build()
                    .map_err(invalid)?,
            );
        }
        let mut names = Vec::new();
        self.describe_parameters(client, filters, |parameter| {
            if let Some(name) = parameter.name {
                names.push(name);
                if names.len() > limit {
                    return Err(ProviderError::FindLimitExceeded { limit });
                }
            }
            Ok(())
        })
        .await?;
        Ok(names)
    }

    /// Every DescribeParameters page (50 entries per call, AWS's largest) for `filters`, each entry handed
    /// to `each` in order; the first error, from AWS or from `each`, ends the listing.
    async fn describe_parameters(
        &self,
        client: &Client,
        filters: Vec<ParameterStringFilter>,
        mut each: impl FnMut(aws_sdk_ssm::types::ParameterMetadata) -> Result<(), ProviderError>,
    ) -> Result<(), ProviderError> {
        let filters = (!filters.is_empty()).then_some(filters);
        let mut token = None;
        loop {
            let page = client
                .describe_parameters()
                .set_parameter_filters(filters.clone())
                .max_results(DESCRIBE_PAGE)
                .set_next_token(token)
                .send()
                .await;
            count(&self.metrics, METRIC_PROVIDER, "DescribeParameters", &page);
            let page = page.map_err(|e| errors::from_sdk("DescribeParameters", &e))?;
            for parameter in page.parameters.unwrap_or_default() {
                each(parameter)?;
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// The listing behind change detection: every parameter whose name starts with `prefix` (a
    /// `Name BeginsWith` filter when there is one), with its current version number.
    async fn list_versions(
        &self,
        prefix: String,
        mut gathering: listing::Gathering,
    ) -> Result<listing::Gathering, ProviderError> {
        let client = self.identity.ssm();
        let filters = if prefix.is_empty() {
            Vec::new()
        } else {
            vec![
                ParameterStringFilter::builder()
                    .key("Name")
                    .option("BeginsWith")
                    .values(prefix)
                    .build()
                    .map_err(|e| ProviderError::InvalidConfig {
                        detail: format!("DescribeParameters filter: {e}"),
                    })?,
            ]
        };
        self.describe_parameters(client, filters, |parameter| {
            let version = parameter.version;
            gathering.keep(parameter.name, || {
                listing::Entry::new([(version.to_string(), Vec::new())], None)
            });
            Ok(())
        })
        .await?;
        self.identity.proven();
        Ok(gathering)
    }

    /// Current values of `names` (full parameter names, no store prefix), 10 per GetParameters call.
    /// A parameter deleted since it was listed no longer matches.
    async fn read_values(
        &self,
        client: &Client,
        names: Vec<String>,
    ) -> Result<Found, ProviderError> {
        let wanted: Vec<Wanted> = names
            .iter()
            .enumerate()
            .map(|(index, name)| Wanted::full_name(index, name))
            .collect();
        let answers = self.batched(&wanted).await;
        let mut found = Found::new();
        for (i, answer) in answers.into_iter().enumerate() {
            let answer = match answer {
                Some(answer) => answer,
                None => self.fetch_one(client, &wanted[i], false).await,
            };
            match answer {
                Ok(value) => {
                    found.insert(names[i].clone(), value);
                }
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl SecretProvider for ParameterStoreProvider {
    /// ESO's GetAllSecrets for Parameter Store: with a name, by path (tags are then not looked at, as
    /// in ESO); with tags only, DescribeParameters then GetParameters. The store's `prefix` does not
    /// apply, as in ESO.
    async fn find(&self, request: &FindRequest, limit: usize) -> Result<Found, ProviderError> {
        let client = self.identity.ssm();
        if request.name_regexp.is_some() {
            return self.find_by_name(client, request, limit).await;
        }
        if request.tags.is_empty() {
            return Err(ProviderError::FindUnsupported {
                detail: "a find on Parameter Store needs name or tags".to_owned(),
            });
        }
        let names = self.describe_names(client, request, limit).await?;
        self.read_values(client, names).await
    }

    async fn fetch_many(&self, requests: &[FetchRequest]) -> Vec<Fetched> {
        let client = self.identity.ssm();
        let mut results: Vec<Option<Fetched>> = vec![None; requests.len()];
        let mut single: Vec<(Wanted, bool)> = Vec::new();
        let mut current = Vec::new();
        let mut pinned = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let wanted = self.wanted(i, request);
            if request.metadata {
                single.push((wanted, true))
            } else if wanted.name == wanted.base {
                current.push(wanted)
            } else {
                pinned.push(wanted)
            }
        }

        // Current values share GetParameters calls with concurrent fetches; pinned ones (`name:3`,
        // `name:label`) keep calls of their own, never two of one name in a call.
        for (w, answer) in current.iter().zip(self.batched(&current).await) {
            match answer {
                Some(result) => results[w.index] = Some(result),
                None => single.push((w.clone(), false)),
            }
        }
        let answers: Vec<Vec<(usize, Option<Fetched>)>> =
            stream::iter(chunks_with_distinct_bases(pinned.clone()))
                .map(|chunk| batch(client, &self.metrics, chunk))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let by_index: HashMap<usize, &Wanted> = pinned.iter().map(|w| (w.index, w)).collect();
        for (i, answer) in answers.into_iter().flatten() {
            match answer {
                Some(result) => results[i] = Some(result),
                None => {
                    if let Some(w) = by_index.get(&i) {
                        single.push(((*w).clone(), false));
                    }
                }
            }
        }

        let answers: Vec<(usize, Fetched)> =
            stream::iter(single)
                .map(|(w, metadata)| async move {
                    (w.index, self.fetch_one(client, &w, metadata).await)
                })
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
                        detail: "Parameter Store gave no answer".to_owned(),
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

    /// From the identity's DescribeParameters listing (`listing.rs`): a current value's token is the
    /// parameter's version number. Pinned versions and labels are not vouched for (DescribeParameters
    /// shows no labels), nor are tags: those requests are always fetched.
    async fn versions(
        &self,
        requests: &[FetchRequest],
        max_age: Option<std::time::Duration>,
    ) -> Versions {
        let ids: Vec<String> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| self.wanted(i, r).base)
            .collect();
        let this = self.clone();
        self.identity.parameter_store_listing.versions(
            requests,
            &ids,
            max_age,
            |prefix, gathering| async move { this.list_versions(prefix, gathering).await },
            |entry, request| {
                let current =
                    !request.metadata && request.version.as_deref().is_none_or(str::is_empty);
                current
                    .then(|| entry.versions.first())
                    .flatten()
                    .map(|version| format!("v{}", version.id))
            },
        )
    }
}

/// One GetParameters call. `None` for an entry means "no usable answer": it is fetched on its own.
async fn batch(
    client: &Client,
    metrics: &Metrics,
    chunk: Vec<Wanted>,
) -> Vec<(usize, Option<Fetched>)> {
    let names: Vec<String> = chunk.iter().map(|w| w.name.clone()).collect();
    let answer = client
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(true)
        .send()
        .await;
    count(metrics, METRIC_PROVIDER, "GetParameters", &answer);
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            let error = errors::from_sdk("GetParameters", &err);
            // A call-wide refusal (one name denied or malformed fails them all) says nothing about the
            // other names: ask for each on its own so every key gets its own answer.
            let isolate = chunk.len() > 1
                && matches!(
                    error,
                    ProviderError::AccessDenied { .. }
                        | ProviderError::NotFound { .. }
                        | ProviderError::InvalidConfig { .. }
                );
            return chunk
                .into_iter()
                .map(|w| {
                    (
                        w.index,
                        (!isolate).then(|| Err(errors::rekey(error.clone(), &w.key))),
                    )
                })
                .collect();
        }
    };
    // Chunks never hold two names with the same base, so a returned parameter maps to one request
    // even when the answer omits the `Selector` (moto does).
    let mut by_base: HashMap<&str, &Wanted> = chunk.iter().map(|w| (w.base.as_str(), w)).collect();
    let by_name: HashMap<&str, &Wanted> = chunk.iter().map(|w| (w.name.as_str(), w)).collect();
    let mut out = Vec::with_capacity(chunk.len());
    for invalid in answer.invalid_parameters.unwrap_or_default() {
        if let Some(w) = by_name.get(invalid.as_str()) {
            by_base.remove(w.base.as_str());
            out.push((
                w.index,
                Some(Err(ProviderError::NotFound { key: w.key.clone() })),
            ));
        }
    }
    for parameter in answer.parameters.unwrap_or_default() {
        let found = [parameter.name.as_deref(), parameter.arn.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|candidate| by_base.remove(candidate));
        if let Some(w) = found {
            out.push((w.index, Some(value(&w.key, parameter.value))));
        }
    }
    out.extend(by_base.into_values().map(|w| (w.index, None)));
    out
}

/// Pack names into as few chunks of at most 10 as possible, never two with the same base name in one
/// chunk (`db` and `db:3` go to different calls), so answers map back without relying on `Selector`.
fn chunks_with_distinct_bases(wanted: Vec<Wanted>) -> Vec<Vec<Wanted>> {
    let mut chunks: Vec<(HashSet<String>, Vec<Wanted>)> = Vec::new();
    for w in wanted {
        let slot = chunks
            .iter_mut()
            .find(|(bases, items)| items.len() < BATCH_LIMIT && !bases.contains(&w.base));
        match slot {
            Some((bases, items)) => {
                bases.insert(w.base.clone());
                items.push(w);
            }
            None => chunks.push(([w.base.clone()].into(), vec![w])),
        }
    }
    chunks.into_iter().map(|(_, items)| items).collect()
}

fn value(key: &str, value: Option<String>) -> Fetched {
    value
        .map(SecretBytes::from)
        .ok_or_else(|| ProviderError::Unavailable {
            key: key.to_owned(),
            detail: "the parameter has no value".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(i: usize, base: &str, name: &str) -> Wanted {
        Wanted {
            index: i,
            key: base.into(),
            base: base.into(),
            name: name.into(),
        }
    }

    #[test]
    fn twenty_five_distinct_names_take_three_calls() {
        let wanted = (0..25)
            .map(|i| w(i, &format!("p{i}"), &format!("p{i}")))
            .collect();
        let sizes: Vec<usize> = chunks_with_distinct_bases(wanted)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    #[test]
    fn versions_of_one_name_never_share_a_call() {
        let chunks = chunks_with_distinct_bases(vec![
            w(0, "db", "db"),
            w(1, "db", "db:3"),
            w(2, "db", "db:label"),
            w(3, "x", "x"),
        ]);
        assert_eq!(chunks.len(), 3);
        for chunk in chunks {
            let bases: HashSet<&str> = chunk.iter().map(|w| w.base.as_str()).collect();
            assert_eq!(bases.len(), chunk.len());
        }
    }
}
