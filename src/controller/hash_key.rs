//! The cluster's hash key: derives the salt that keys a Secret's data hash, so a Secret deleted and
//! re-created with the same data gets the same hash (no workload restart), while readers of a workload's
//! hash annotation cannot brute-force short values. Owns the key's Secret; must not log the key.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Data key of the key Secret.
const KEY_FIELD: &str = "key";

/// 32 random bytes, zeroed on drop; never printed.
#[derive(Clone)]
pub struct HashKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

impl Default for HashKey {
    /// A key for this process only (no `--hash-key-secret`): hashes stay stable while it runs and for
    /// every Secret that keeps its salt; only a Secret re-created after a restart gets a new hash.
    fn default() -> Self {
        HashKey(Zeroizing::new(rand::random::<[u8; 32]>().to_vec()))
    }
}

/// Why the key Secret could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum HashKeyError {
    #[error("invalid --hash-key-secret {0:?}: expected NAMESPACE/NAME")]
    ParseName(String),
    #[error("failed to read hash key Secret {namespace}/{name}: {}", super::kube_message(.source))]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("failed to create hash key Secret {namespace}/{name}: {}", super::kube_message(.source))]
    Create {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("hash key Secret {namespace}/{name} has no {KEY_FIELD:?} of at least 32 bytes")]
    Malformed { namespace: String, name: String },
}

impl HashKey {
    /// The salt for the Secret `namespace/name`: HMAC-SHA256(key, "namespace/name"), 16 bytes in hex.
    pub fn salt_for(&self, namespace: &str, name: &str) -> String {
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(namespace.as_bytes());
        mac.update(b"/");
        mac.update(name.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Read the key from Secret `NAMESPACE/NAME`, creating it with a random key on first start. Two
    /// replicas racing to create it both end up with the one that was stored (409 → read again).
    pub async fn load_or_create(client: kube::Client, secret: &str) -> Result<Self, HashKeyError> {
        let (namespace, name) = secret
            .split_once('/')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
            .ok_or_else(|| HashKeyError::ParseName(secret.to_owned()))?;
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let read = |source| HashKeyError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        };
        if let Some(found) = api.get_opt(name).await.map_err(read)? {
            return Self::from_secret(found, namespace, name);
        }
        let fresh = HashKey::default();
        let secret = Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            data: Some([(KEY_FIELD.to_owned(), ByteString(fresh.0.to_vec()))].into()),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(fresh),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let found = api.get(name).await.map_err(read)?;
                Self::from_secret(found, namespace, name)
            }
            Err(source) => Err(HashKeyError::Create {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }),
        }
    }

    fn from_secret(mut secret: Secret, namespace: &str, name: &str) -> Result<Self, HashKeyError> {
        let key = secret
            .data
            .as_mut()
            .and_then(|d| d.remove(KEY_FIELD))
            .map(|b| Zeroizing::new(b.0));
        match key {
            Some(key) if key.len() >= 32 => Ok(HashKey(key)),
            _ => Err(HashKeyError::Malformed {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_is_stable_per_secret_and_differs_between_secrets_and_keys() {
        let key = HashKey(Zeroizing::new(vec![7; 32]));
        assert_eq!(key.salt_for("ns", "a"), key.salt_for("ns", "a"));
        assert_ne!(key.salt_for("ns", "a"), key.salt_for("ns", "b"));
        assert_ne!(key.salt_for("ns", "a"), key.salt_for("ns2", "a"));
        assert_ne!(
            key.salt_for("ns", "a"),
            HashKey::default().salt_for("ns", "a")
        );
        assert_eq!(key.salt_for("ns", "a").len(), 32);
        assert!(!format!("{key:?}").contains('7'));
    }
}
