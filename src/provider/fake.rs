//! ESO's `fake` provider: values held in the store spec, looked up by key and optional version.
//! Used by the quickstart and by tests; it talks to nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{FetchRequest, FindRequest, Found, ProviderError, SecretBytes, SecretProvider};
use crate::admin::Metrics;
use crate::api::FakeProvider;

pub struct FakeSecretProvider {
    /// (key, version) -> value; version "" is the unversioned entry.
    values: HashMap<(String, String), SecretBytes>,
    metrics: Arc<Metrics>,
}

impl FakeSecretProvider {
    pub fn new(spec: &FakeProvider, metrics: Arc<Metrics>) -> Self {
        let mut values = HashMap::new();
        for entry in &spec.data {
            let value = match (&entry.value, &entry.value_map) {
                (Some(v), _) => SecretBytes::from_str_value(v),
                (None, Some(map)) => {
                    SecretBytes::from(serde_json::to_string(map).unwrap_or_default())
                }
                (None, None) => SecretBytes::default(),
            };
            values.insert(
                (entry.key.clone(), entry.version.clone().unwrap_or_default()),
                value,
            );
        }
        FakeSecretProvider { values, metrics }
    }

    fn lookup(&self, request: &FetchRequest) -> Result<SecretBytes, ProviderError> {
        if request.metadata {
            // The fake provider has no tags; an empty object is what a tag-less remote secret yields.
            return Ok(SecretBytes::from_str_value("{}"));
        }
        let version = request.version.clone().unwrap_or_default();
        self.values
            .get(&(request.key.clone(), version))
            .cloned()
            .ok_or_else(|| ProviderError::NotFound {
                key: request.key.clone(),
            })
    }
}

#[async_trait]
impl SecretProvider for FakeSecretProvider {
    async fn fetch_many(
        &self,
        requests: &[FetchRequest],
    ) -> Vec<Result<SecretBytes, ProviderError>> {
        let results: Vec<_> = requests.iter().map(|r| self.lookup(r)).collect();
        let failed = results.iter().filter(|r| r.is_err()).count() as u64;
        self.metrics.provider_call(
            "fake",
            "GetSecret",
            "success",
            results.len() as u64 - failed,
        );
        self.metrics
            .provider_call("fake", "GetSecret", "error", failed);
        results
    }

    async fn validate(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The store spec is the whole listing, and any edit of it is a store change that fetches
    /// everything: a present entry has one version for as long as the spec stands.
    async fn versions(
        &self,
        requests: &[FetchRequest],
        _max_age: Option<std::time::Duration>,
    ) -> Option<Vec<Option<String>>> {
        Some(
            requests
                .iter()
                .map(|r| self.lookup(r).ok().map(|_| "spec".to_owned()))
                .collect(),
        )
    }

    /// ESO's fake provider: by name only (path and tags are not looked at; a find without a name is
    /// an error), the entry with the greatest version string per key, and the key converted with the
    /// find's conversionStrategy here already, as ESO's fake provider does.
    async fn find(&self, request: &FindRequest, limit: usize) -> Result<Found, ProviderError> {
        let Some(matcher) = super::find_matcher(request)? else {
            return Err(ProviderError::FindUnsupported {
                detail: "the fake provider finds by name only".to_owned(),
            });
        };
        let mut latest: std::collections::BTreeMap<&str, (&str, &SecretBytes)> = Default::default();
        for ((key, version), value) in &self.values {
            if !matcher.is_match(key) {
                continue;
            }
            let slot = latest.entry(key).or_insert((version, value));
            if slot.0 < version.as_str() {
                *slot = (version, value);
            }
        }
        if latest.len() > limit {
            return Err(ProviderError::FindLimitExceeded { limit });
        }
        self.metrics
            .provider_call("fake", "GetAllSecrets", "success", 1);
        let mut found = Found::new();
        for (key, (_, value)) in latest {
            found.insert(
                crate::controller::values::convert_key(key, request.conversion),
                value.clone(),
            );
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FakeProviderData;

    fn entry(key: &str, value: &str, version: Option<&str>) -> FakeProviderData {
        FakeProviderData {
            key: key.into(),
            value: Some(value.into()),
            value_map: None,
            version: version.map(Into::into),
        }
    }

    #[tokio::test]
    async fn find_takes_the_latest_version_of_each_matching_key_and_converts_names() {
        let provider = FakeSecretProvider::new(
            &FakeProvider {
                data: vec![
                    entry("/foo/bar", "HELLO1", Some("v1")),
                    entry("/foo/bar", "HELLO2", Some("v2")),
                    entry("/foo/baz", "{}", Some("v1")),
                    entry("other", "x", None),
                ],
            },
            Arc::default(),
        );
        let find = |re: &str| FindRequest {
            name_regexp: Some(re.into()),
            ..Default::default()
        };
        let found = provider.find(&find("foo"), 10).await.unwrap();
        let keys: Vec<_> = found.keys().map(String::as_str).collect();
        assert_eq!(keys, ["_foo_bar", "_foo_baz"]);
        assert_eq!(found["_foo_bar"].expose(), b"HELLO2");
        assert!(
            provider
                .find(&find("nothing"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            provider.find(&find(".*"), 2).await,
            Err(ProviderError::FindLimitExceeded { limit: 2 })
        );
        assert_eq!(
            provider
                .find(&FindRequest::default(), 10)
                .await
                .unwrap_err()
                .category(),
            "Unsupported"
        );
    }

    #[tokio::test]
    async fn versions_are_distinct_and_missing_keys_are_not_found() {
        let provider = FakeSecretProvider::new(
            &FakeProvider {
                data: vec![
                    entry("db", "v-current", None),
                    entry("db", "v-one", Some("v1")),
                ],
            },
            Arc::default(),
        );
        let got = provider
            .fetch_many(&[
                FetchRequest::current("db"),
                FetchRequest {
                    key: "db".into(),
                    version: Some("v1".into()),
                    metadata: false,
                },
                FetchRequest::current("nope"),
            ])
            .await;
        assert_eq!(
            got[0].as_ref().map(|v| v.expose().to_vec()),
            Ok(b"v-current".to_vec())
        );
        assert_eq!(
            got[1].as_ref().map(|v| v.expose().to_vec()),
            Ok(b"v-one".to_vec())
        );
        assert_eq!(got[2], Err(ProviderError::NotFound { key: "nope".into() }));
    }
}
