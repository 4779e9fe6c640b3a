//! Watch caches the reconcile reads instead of the API server: stores, namespaces, and the metadata of
//! the Secrets we manage. Read-only views; the reflectors that fill them are started in `controller::run`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::resolve::StoreLookup;
use crate::api::{ClusterSecretStore, SecretStore, StoreObject};

#[derive(Clone)]
pub struct Caches {
    pub secret_stores: Store<SecretStore>,
    /// None in namespaced mode, where ClusterSecretStores are not watched.
    pub cluster_stores: Option<Store<ClusterSecretStore>>,
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// Only Secrets carrying our managed-by label; metadata only, never data.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Every cache above has listed once; before that a missing store may just be not yet seen.
    pub ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Caches {
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn secret_meta(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<PartialObjectMeta<Secret>>> {
        self.secrets.get(&ObjectRef::new(name).within(namespace))
    }
}

impl StoreLookup for Caches {
    fn secret_store(&self, namespace: &str, name: &str) -> Option<StoreObject> {
        self.secret_stores
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| StoreObject::from(s.as_ref()))
    }

    fn cluster_secret_store(&self, name: &str) -> Option<StoreObject> {
        self.cluster_stores
            .as_ref()?
            .get(&ObjectRef::new(name))
            .map(|s| StoreObject::from(s.as_ref()))
    }

    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .as_ref()?
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }
}
