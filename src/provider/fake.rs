//! ESO's `fake` provider: values held in the store spec, looked up by key and optional version.
//! Used by the quickstart and by tests; it talks to nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{FetchRequest, ProviderError, SecretBytes, SecretProvider};
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
