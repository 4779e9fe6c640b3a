//! `secret-sync status` and `secret-sync why`: read-only views for people, against the current
//! kubeconfig. This file gathers facts through the API (reads only, metadata only for Secrets);
//! `diagnose.rs` turns them into findings. Must never read or print a secret value.

pub mod diagnose;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::Api;
use serde::Serialize;

use self::diagnose::{
    CredentialsFacts, EventFacts, Facts, ROLE_ARN_ANNOTATION, ServiceAccountFacts, TargetFacts,
};
use crate::api::{
    ClusterSecretStore, ExternalSecret, ProviderChoice, SecretStore, StoreKind, StoreObject,
};
use crate::controller::build::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::controller::resolve::{self, StoreLookup};
use crate::controller::{kube_message, rotation};

/// Why a view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("expected NAMESPACE/NAME, got {0:?}")]
    ParseName(String),
    #[error("ExternalSecret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("failed to read {what}: {}", kube_message(.source))]
    Read { what: String, source: kube::Error },
}

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> InspectError {
    let what = what.into();
    move |source| InspectError::Read { what, source }
}

/// The one store an ExternalSecret names, and its namespace's labels, read for `resolve_store`.
#[derive(Default)]
struct Lookup {
    store: Option<StoreObject>,
    namespace_labels: Option<BTreeMap<String, String>>,
}

impl StoreLookup for Lookup {
    fn secret_store(&self, _: &str, _: &str) -> Option<StoreObject> {
        self.store.clone()
    }
    fn cluster_secret_store(&self, _: &str) -> Option<StoreObject> {
        self.store.clone()
    }
    fn namespace_labels(&self, _: &str) -> Option<BTreeMap<String, String>> {
        self.namespace_labels.clone()
    }
}

async fn store_of(client: &kube::Client, es: &ExternalSecret) -> Result<Lookup, InspectError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.spec.secret_store_ref.name.clone();
    let mut lookup = Lookup::default();
    if name.is_empty() {
        return Ok(lookup);
    }
    lookup.store = match es.store_kind() {
        StoreKind::SecretStore => Api::<SecretStore>::namespaced(client.clone(), &namespace)
            .get_opt(&name)
            .await
            .map_err(read(format!("SecretStore {namespace}/{name}")))?
            .map(|s| StoreObject::from(&s)),
        StoreKind::ClusterSecretStore => Api::<ClusterSecretStore>::all(client.clone())
            .get_opt(&name)
            .await
            .map_err(read(format!("ClusterSecretStore {name}")))?
            .map(|s| StoreObject::from(&s)),
    };
    if es.store_kind() == StoreKind::ClusterSecretStore {
        // Only ClusterSecretStore conditions need it; a caller who may not read Namespaces still
        // gets the rest of the diagnosis.
        lookup.namespace_labels = Api::<Namespace>::all(client.clone())
            .get_opt(&namespace)
            .await
            .ok()
            .flatten()
            .map(|ns| ns.metadata.labels.unwrap_or_default());
    }
    Ok(lookup)
}

/// Zero the values of a Secret read only for its metadata or key names.
fn wipe(data: Option<BTreeMap<String, k8s_openapi::ByteString>>) {
    use zeroize::Zeroize;
    for (_, mut value) in data.into_iter().flatten() {
        value.0.zeroize();
    }
}

/// Read everything `why` needs about `namespace/name`.
pub async fn gather(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    controller_class: &str,
) -> Result<Facts, InspectError> {
    let es = Api::<ExternalSecret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(read(format!("ExternalSecret {namespace}/{name}")))?
        .ok_or_else(|| InspectError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let lookup = store_of(client, &es).await?;
    let store = resolve::resolve_store(&es, &lookup, controller_class);
    let aws = store
        .as_ref()
        .ok()
        .and_then(|s| match s.spec.provider.choice() {
            ProviderChoice::Aws(aws) => Some(aws.clone()),
            _ => None,
        });
    // A ClusterSecretStore's references may name another namespace; a SecretStore's never do.
    let cluster_store = es.store_kind() == StoreKind::ClusterSecretStore;
    let ref_namespace = |given: &Option<String>| match given {
        Some(ns) if cluster_store && !ns.is_empty() => ns.clone(),
        _ => namespace.to_owned(),
    };
    let auth = aws.as_ref().and_then(|a| a.auth.clone());
    let service_account = match auth.as_ref().and_then(|a| a.jwt.as_ref()) {
        Some(jwt) => match &jwt.service_account_ref {
            Some(sa) => {
                let ns = ref_namespace(&sa.namespace);
                let found = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                    .get_opt(&sa.name)
                    .await
                    .map_err(read(format!("ServiceAccount {ns}/{}", sa.name)))?;
                Some(ServiceAccountFacts {
                    namespace: ns,
                    name: sa.name.clone(),
                    exists: found.is_some(),
                    role_arn: found
                        .and_then(|f| f.metadata.annotations?.get(ROLE_ARN_ANNOTATION).cloned()),
                })
            }
            None => None,
        },
        None => None,
    };
    let credentials = match auth.as_ref().and_then(|a| a.secret_ref.as_ref()) {
        Some(refs) => {
            let id = &refs.access_key_id;
            let ns = ref_namespace(&id.namespace);
            let wanted: Vec<&String> = [Some(&id.key), Some(&refs.secret_access_key.key)]
                .into_iter()
                .chain(std::iter::once(refs.session_token.as_ref().map(|t| &t.key)))
                .flatten()
                .collect();
            let keys = secret_keys(client, &ns, &id.name).await?;
            Some(CredentialsFacts {
                namespace: ns,
                name: id.name.clone(),
                exists: keys.is_some(),
                missing_keys: wanted
                    .into_iter()
                    .filter(|k| keys.as_ref().is_some_and(|have| !have.contains(*k)))
                    .cloned()
                    .collect(),
            })
        }
        None => None,
    };
    let target = target_facts(client, &es).await?;
    let events = events_of(client, &es).await?;
    Ok(Facts {
        es,
        store,
        service_account,
        credentials,
        target,
        events,
    })
}

/// The data key names of a Secret (None when it does not exist). The values are read by the API
/// call but dropped here, never kept or printed.
async fn secret_keys(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Vec<String>>, InspectError> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(read(format!("Secret {namespace}/{name}")))?;
    Ok(secret.map(|mut s| {
        let data = s.data.take();
        let names = data.iter().flatten().map(|(k, _)| k.clone()).collect();
        wipe(data);
        names
    }))
}

async fn target_facts(
    client: &kube::Client,
    es: &ExternalSecret,
) -> Result<TargetFacts, InspectError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.target_name();
    // One GET: metadata and `immutable` are kept, the data is wiped at once and never printed.
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(&name)
        .await
        .map_err(read(format!("Secret {namespace}/{name}")))?;
    let Some(mut secret) = secret else {
        return Ok(TargetFacts::default());
    };
    wipe(secret.data.take());
    let immutable = secret.immutable == Some(true);
    let meta = secret;
    let controller = meta
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.controller == Some(true));
    let (other_controller, foreign_owner) = match controller {
        Some(r) if r.kind == "ExternalSecret" && Some(&r.uid) != es.metadata.uid.as_ref() => {
            (Some(r.name), None)
        }
        Some(r) if r.kind != "ExternalSecret" => (None, Some(format!("{} {:?}", r.kind, r.name))),
        _ => (None, None),
    };
    Ok(TargetFacts {
        exists: true,
        other_controller,
        foreign_owner,
        immutable,
        managed_by_us: meta
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY_VALUE),
    })
}

async fn events_of(
    client: &kube::Client,
    es: &ExternalSecret,
) -> Result<Vec<EventFacts>, InspectError> {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let list = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .map_err(read(format!("Events in {namespace}")))?;
    let mut events: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ExternalSecret") && r.name == es.metadata.name
            })
        })
        .collect();
    events.sort_by_key(|e| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    Ok(events
        .into_iter()
        .map(|e| EventFacts {
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
        })
        .collect())
}

/// One line of `secret-sync status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub namespace: String,
    pub name: String,
    pub store: String,
    pub provider: String,
    pub ready: String,
    pub reason: String,
    /// When the Secret's content last changed (status.refreshTime), RFC 3339.
    pub last_sync: Option<String>,
    /// The refresh rule: "every 1h", "on change", "once".
    pub refresh: String,
    /// The RotationOverdue condition's message, where rotation age is monitored.
    pub rotation: Option<String>,
}

/// `status`: every ExternalSecret in `namespace` (None: all namespaces).
pub async fn status_rows(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<StatusRow>, InspectError> {
    let api: Api<ExternalSecret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&Default::default())
        .await
        .map_err(read("ExternalSecrets"))?;
    let stores = Api::<SecretStore>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("SecretStores"))?;
    // A caller without cluster-wide rights still gets rows; the provider column says "?".
    let cluster_stores = Api::<ClusterSecretStore>::all(client.clone())
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut rows: Vec<StatusRow> = list
        .items
        .iter()
        .map(|es| {
            let ns = es.metadata.namespace.clone().unwrap_or_default();
            let store_name = &es.spec.secret_store_ref.name;
            let spec = match es.store_kind() {
                StoreKind::SecretStore => stores
                    .items
                    .iter()
                    .find(|s| {
                        s.metadata.name.as_ref() == Some(store_name)
                            && s.metadata.namespace.as_deref() == Some(ns.as_str())
                    })
                    .map(|s| s.spec.provider.clone()),
                StoreKind::ClusterSecretStore => cluster_stores
                    .iter()
                    .find(|s| s.metadata.name.as_ref() == Some(store_name))
                    .map(|s| s.spec.0.provider.clone()),
            };
            row(es, spec.as_ref())
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(rows)
}

fn row(es: &ExternalSecret, provider: Option<&crate::api::SecretStoreProvider>) -> StatusRow {
    let conditions = es
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = crate::api::condition::find(conditions, "Ready");
    let storeless = !crate::controller::build::needs_store(&es.spec);
    let provider = match provider.map(|p| p.choice()) {
        None if storeless => "generators".to_owned(),
        Some(ProviderChoice::Aws(aws)) => format!("aws/{:?}", aws.service),
        Some(ProviderChoice::Fake(_)) => "fake".to_owned(),
        Some(ProviderChoice::Unsupported(name)) => format!("{name} (unsupported)"),
        Some(ProviderChoice::Missing | ProviderChoice::Ambiguous(_)) => "invalid".to_owned(),
        None => "?".to_owned(),
    };
    let refresh = match (
        es.spec.refresh_policy,
        crate::controller::build::refresh_interval(&es.spec),
    ) {
        (Some(crate::api::RefreshPolicy::OnChange), _) => "on change".to_owned(),
        (Some(crate::api::RefreshPolicy::CreatedOnce), _) | (_, Ok(None)) => "once".to_owned(),
        (_, Ok(Some(d))) => format!("every {}", go_duration(d)),
        (_, Err(_)) => "invalid".to_owned(),
    };
    StatusRow {
        namespace: es.metadata.namespace.clone().unwrap_or_default(),
        name: es.metadata.name.clone().unwrap_or_default(),
        store: if storeless {
            "-".to_owned()
        } else {
            format!(
                "{}/{}",
                es.store_kind().as_str(),
                es.spec.secret_store_ref.name
            )
        },
        provider,
        ready: ready.map_or("Unknown".to_owned(), |c| format!("{:?}", c.status)),
        reason: ready.and_then(|c| c.reason.clone()).unwrap_or_default(),
        last_sync: es
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .map(|t| t.0.to_string()),
        refresh,
        rotation: crate::api::condition::find(conditions, rotation::CONDITION)
            .and_then(|c| c.message.clone()),
    }
}

/// A refresh interval as a Go duration reads ("1h", "15m", "30s"), for people.
pub(crate) fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The rows as an aligned table.
pub fn render_rows(rows: &[StatusRow]) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "STORE",
        "PROVIDER",
        "READY",
        "REASON",
        "LAST SYNC",
        "REFRESH",
        "ROTATION",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.name.clone(),
                r.store.clone(),
                r.provider.clone(),
                r.ready.clone(),
                r.reason.clone(),
                r.last_sync.clone().unwrap_or_else(|| "-".into()),
                r.refresh.clone(),
                r.rotation.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
