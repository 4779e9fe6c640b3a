//! Watch caches the reconcile reads instead of the API server: stores, namespaces, and the metadata of
//! the Secrets we manage. Read-only views; the reflectors that fill them are started in `controller::run`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};

use super::resolve::StoreLookup;
use crate::api::{ClusterSecretStore, SecretStore, StoreObject};

#[derive(Clone)]
pub struct Caches {
    pub secret_stores: Store<SecretStore>,
    /// None in namespaced mode, where ClusterSecretStores are not watched.
    pub cluster_stores: Option<Store<ClusterSecretStore>>,
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// Only Secrets carrying our managed-by label; the metadata the reconcile reads, never data.
    pub secrets: Store<ManagedSecret>,
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
    ) -> Option<std::sync::Arc<ManagedSecret>> {
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

/// Key-value pairs sorted by key: labels or annotations in the compact form the caches keep.
type Pairs = Box<[(Box<str>, Box<str>)]>;

fn pairs(map: Option<BTreeMap<String, String>>) -> Pairs {
    // A BTreeMap iterates in key order, so the slice is sorted for `lookup`.
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
        .collect()
}

fn lookup<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .binary_search_by(|(k, _)| k.as_ref().cmp(key))
        .ok()
        .and_then(|i| pairs.get(i))
        .map(|(_, v)| v.as_ref())
}

/// What the reconcile reads of a Secret we manage, cached for each of them: the resourceVersion, the
/// labels and annotations (data hash, salt, recorded expiry, the template's), and the ExternalSecrets
/// named in its ownerReferences (the controller's trigger, as kube-runtime's `owns` maps them).
///
/// Why not `PartialObjectMeta<Secret>`: k8s-openapi's `ObjectMeta` keeps labels and annotations in
/// `BTreeMap`s of about 0.5 KiB a node, and at 10,000 Secrets that cache was the largest structure
/// in the heap (2.2 KB a Secret; docs/memory.md). This one holds the same answers in boxed slices.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedSecret {
    name: Box<str>,
    namespace: Box<str>,
    resource_version: Option<Box<str>>,
    labels: Pairs,
    annotations: Pairs,
    /// Names of the ExternalSecrets (`external-secrets.io/v1`) among the ownerReferences.
    owners: Box<[Box<str>]>,
}

impl ManagedSecret {
    /// Keeps what the reconcile reads of `meta` (managedFields and the rest are dropped).
    pub fn from_meta(meta: ObjectMeta) -> Self {
        use kube::Resource;
        let owner_api_version = <crate::api::ExternalSecret as Resource>::api_version(&());
        let owner_kind = <crate::api::ExternalSecret as Resource>::kind(&());
        ManagedSecret {
            name: meta.name.unwrap_or_default().into_boxed_str(),
            namespace: meta.namespace.unwrap_or_default().into_boxed_str(),
            resource_version: meta.resource_version.map(String::into_boxed_str),
            labels: pairs(meta.labels),
            annotations: pairs(meta.annotations),
            owners: meta
                .owner_references
                .into_iter()
                .flatten()
                .filter(|o| o.api_version == owner_api_version && o.kind == owner_kind)
                .map(|o| o.name.into_boxed_str())
                .collect(),
        }
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        lookup(&self.annotations, key)
    }

    /// The ExternalSecrets that own this Secret: reconciled when it changes.
    pub fn owners(&self) -> impl Iterator<Item = ObjectRef<crate::api::ExternalSecret>> + '_ {
        self.owners
            .iter()
            .map(|name| ObjectRef::new(name).within(&self.namespace))
    }
}

/// Cached under its namespace and name alone: the key needs no copy of the resourceVersion or uid.
impl Lookup for ManagedSecret {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Secret")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("secrets")
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.namespace))
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owner(api_version: &str, kind: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn managed_secret_answers_as_the_metadata_did() {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let meta = ObjectMeta {
            name: Some("db".into()),
            namespace: Some("team-a".into()),
            resource_version: Some("42".into()),
            labels: map(&[
                ("app", "x"),
                ("app.kubernetes.io/managed-by", "secret-sync"),
            ]),
            annotations: map(&[
                ("secret-sync.io/data-hash", "h"),
                ("secret-sync.io/hash-salt", "s"),
                ("z", ""),
            ]),
            owner_references: Some(vec![
                owner("external-secrets.io/v1", "ExternalSecret", "db-es"),
                owner("apps/v1", "Deployment", "web"),
                owner("external-secrets.io/v1", "ClusterExternalSecret", "c"),
            ]),
            ..ObjectMeta::default()
        };
        let slim = ManagedSecret::from_meta(meta.clone());
        assert_eq!(slim.resource_version(), Some("42"));
        for (k, v) in meta.labels.iter().flatten() {
            assert_eq!(slim.label(k), Some(v.as_str()));
        }
        for (k, v) in meta.annotations.iter().flatten() {
            assert_eq!(slim.annotation(k), Some(v.as_str()));
        }
        assert_eq!(slim.label("absent"), None);
        assert_eq!(slim.annotation("a"), None);
        assert_eq!(
            slim.owners().collect::<Vec<_>>(),
            vec![ObjectRef::new("db-es").within("team-a")]
        );
        // The cache key is namespace and name.
        let key = slim.to_object_ref(());
        assert_eq!(
            (key.name.as_str(), key.namespace.as_deref()),
            ("db", Some("team-a"))
        );
        assert_eq!(key.extra.resource_version, None);
    }

    #[test]
    fn managed_secret_without_labels_or_owners() {
        let slim = ManagedSecret::from_meta(ObjectMeta {
            name: Some("n".into()),
            ..ObjectMeta::default()
        });
        assert_eq!(slim.label("app"), None);
        assert_eq!(slim.annotation("a"), None);
        assert_eq!(slim.resource_version(), None);
        assert_eq!(slim.owners().count(), 0);
    }
}
