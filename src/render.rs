//! `secret-sync render`: run the pipeline on manifests from files and print the Secrets it would write.
//! No cluster is contacted; providers are reached exactly as the controller would reach them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;

use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore, StoreObject};
use crate::controller::apply::Change;
use crate::controller::build::{self, BuildError, Ownership};
use crate::controller::plan::{self, Plan, Policy, Refusal};
use crate::controller::resolve::{self, ResolveError, StoreLookup};
use crate::controller::templating::{SourceKind, Sources, TemplateSpec};
use crate::provider::{ProviderError, Providers, SecretBytes};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("failed to read {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to parse {path} document {index}: {source}")]
    Parse {
        path: String,
        index: usize,
        source: serde_yaml_ng::Error,
    },
    #[error(
        "{path} document {index}: {kind} at {api_version:?} is not served; secret-sync serves \
         external-secrets.io/v1 and external-secrets.io/v1beta1 (see docs/v1beta1.md)"
    )]
    UnservedVersion {
        path: String,
        index: usize,
        kind: String,
        api_version: String,
    },
    #[error("no ExternalSecret found in the given files")]
    NothingToRender,
    #[error("{failed} of {total} ExternalSecrets could not be rendered:\n{details}")]
    Failed {
        failed: usize,
        total: usize,
        details: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum RenderOneError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Generators make credentials or random values: an offline preview cannot stand for them.
    #[error("render does not run generators (spec.dataFrom[{index}].sourceRef.generatorRef)")]
    Generator { index: usize },
}

#[derive(Default)]
struct FileObjects {
    stores: HashMap<(String, String), StoreObject>,
    cluster_stores: HashMap<String, StoreObject>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    external_secrets: Vec<ExternalSecret>,
    /// ConfigMaps and Secrets in the files, by (kind, namespace, name): `templateFrom` sources.
    template_sources: HashMap<(SourceKind, String, String), BTreeMap<String, SecretBytes>>,
}

impl StoreLookup for FileObjects {
    fn secret_store(&self, namespace: &str, name: &str) -> Option<StoreObject> {
        self.stores
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
    fn cluster_secret_store(&self, name: &str) -> Option<StoreObject> {
        self.cluster_stores.get(name).cloned()
    }
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(namespace).cloned()
    }
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "apiVersion")]
    api_version: String,
}

fn load(files: &[PathBuf]) -> Result<FileObjects, RenderError> {
    let mut objects = FileObjects::default();
    for path in files {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RenderError::ReadFile {
            path: shown.clone(),
            source,
        })?;
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let parse_err = |source| RenderError::Parse {
                path: shown.clone(),
                index,
                source,
            };
            let value = serde_yaml_ng::Value::deserialize(doc).map_err(parse_err)?;
            if value.is_null() {
                continue;
            }
            let meta: TypeMeta = serde_yaml_ng::from_value(value.clone()).map_err(parse_err)?;
            let ours = matches!(
                meta.kind.as_str(),
                "SecretStore" | "ClusterSecretStore" | "ExternalSecret"
            );
            // The API server would refuse it too: never read another version's shape as v1.
            if ours && !crate::api::is_served(&meta.api_version) {
                return Err(RenderError::UnservedVersion {
                    path: shown.clone(),
                    index,
                    kind: meta.kind,
                    api_version: meta.api_version,
                });
            }
            match meta.kind.as_str() {
                "SecretStore" => {
                    let mut store: SecretStore =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    let ns = store
                        .metadata
                        .namespace
                        .get_or_insert_with(|| "default".to_owned())
                        .clone();
                    let name = store.metadata.name.clone().unwrap_or_default();
                    objects.stores.insert((ns, name), StoreObject::from(&store));
                }
                "ClusterSecretStore" => {
                    let store: ClusterSecretStore =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    objects.cluster_stores.insert(
                        store.metadata.name.clone().unwrap_or_default(),
                        StoreObject::from(&store),
                    );
                }
                "ExternalSecret" => {
                    let mut es: ExternalSecret =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    es.metadata
                        .namespace
                        .get_or_insert_with(|| "default".to_owned());
                    objects.external_secrets.push(es);
                }
                "Namespace" => {
                    let ns: k8s_openapi::api::core::v1::Namespace =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    objects.namespaces.insert(
                        ns.metadata.name.clone().unwrap_or_default(),
                        ns.metadata.labels.clone().unwrap_or_default(),
                    );
                }
                "ConfigMap" => {
                    let cm: k8s_openapi::api::core::v1::ConfigMap =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    let data = cm.data.unwrap_or_default().into_iter();
                    objects.template_sources.insert(
                        source_key(SourceKind::ConfigMap, &cm.metadata),
                        data.map(|(k, v)| (k, SecretBytes::from(v))).collect(),
                    );
                }
                "Secret" => {
                    let secret: k8s_openapi::api::core::v1::Secret =
                        serde_yaml_ng::from_value(value).map_err(parse_err)?;
                    let data = secret.data.unwrap_or_default().into_iter();
                    let strings = secret.string_data.unwrap_or_default().into_iter();
                    objects.template_sources.insert(
                        source_key(SourceKind::Secret, &secret.metadata),
                        data.map(|(k, v)| (k, SecretBytes::new(v.0)))
                            .chain(strings.map(|(k, v)| (k, SecretBytes::from(v))))
                            .collect(),
                    );
                }
                // Other kinds (Deployments, ServiceAccounts, ...) may share the file; they are not ours.
                _ => {}
            }
        }
    }
    Ok(objects)
}

fn source_key(
    kind: SourceKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (SourceKind, String, String) {
    (
        kind,
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

async fn render_one(
    objects: &FileObjects,
    providers: &Providers,
    es: &ExternalSecret,
) -> Result<String, RenderOneError> {
    build::check_supported(&es.spec)?;
    build::refresh_interval(&es.spec)?;
    if let Some(index) = es
        .spec
        .data_from
        .iter()
        .position(|f| build::generator_ref(f).is_some())
    {
        return Err(RenderOneError::Generator { index });
    }
    let store = resolve::resolve_store(es, objects, "")?;
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let provider = providers.for_store(&store, &namespace).await?;
    let fetched =
        crate::provider::fetch_documents(provider.as_ref(), build::requests(&es.spec)).await;
    let found = crate::provider::find_all(
        provider.as_ref(),
        build::finds(&es.spec),
        crate::controller::DEFAULT_FIND_LIMIT,
    )
    .await;
    let mut desired = build::desired_data_found(&es.spec, &fetched, &found)?;
    // templateFrom ConfigMaps and Secrets come from the same files.
    let sources: Sources = TemplateSpec::of(&es.spec)
        .map_err(BuildError::from)?
        .iter()
        .flat_map(|t| t.sources())
        .map(|(kind, name)| {
            let found = objects
                .template_sources
                .get(&(kind, namespace.clone(), name.to_owned()))
                .cloned();
            ((kind, name.to_owned()), found)
        })
        .collect();
    build::apply_template(&es.spec, &mut desired, &sources)?;
    let id = format!(
        "{namespace}/{}",
        es.metadata.name.clone().unwrap_or_default()
    );
    // The same planner as the controller, for a cluster where the Secret does not exist yet.
    match plan::plan(Policy::of(es), &es.target_name(), &desired, None) {
        // Merge needs an existing Secret; render shows the keys it would add.
        Plan::Write { .. } | Plan::Keep(Change::TargetMissing) => {}
        Plan::Refuse(refusal) => return Err(refusal.into()),
        Plan::Keep(Change::NotWritten) => {
            return Ok(format!(
                "# ExternalSecret {id}: creationPolicy None, no Secret is written\n"
            ));
        }
        Plan::Keep(Change::NothingFound) => {
            return Ok(format!(
                "# ExternalSecret {id}: dataFrom.find matched nothing, no Secret\n"
            ));
        }
        Plan::Keep(_) | Plan::Delete => {
            return Ok(format!(
                "# ExternalSecret {id}: every remote key is gone, no Secret\n"
            ));
        }
    }
    let Some(ownership) = Ownership::of(es.spec.target.creation_policy) else {
        return Ok(format!(
            "# ExternalSecret {id}: creationPolicy None, no Secret is written\n"
        ));
    };
    let secret = build::desired_secret(
        es,
        &desired.data,
        &desired.meta,
        ownership,
        &build::new_salt(),
    );
    let mut out = String::new();
    match ownership {
        Ownership::MergedInto => {
            out.push_str("# creationPolicy Merge: these keys are merged into an existing Secret\n")
        }
        Ownership::Owned => {
            out.push_str("# the controller also sets an ownerReference to the ExternalSecret\n")
        }
        Ownership::Orphaned => {}
    }
    // Serialising a k8s-openapi Secret cannot fail; an empty document would be visible.
    out.push_str(&serde_yaml_ng::to_string(&secret).unwrap_or_default());
    Ok(out)
}

/// What `render` produced: the YAML of every Secret it could build, and each failure.
#[derive(Debug)]
pub struct Rendered {
    pub yaml: String,
    /// "ExternalSecret NS/NAME: reason", one per ExternalSecret that failed.
    pub failures: Vec<String>,
    pub total: usize,
}

impl Rendered {
    /// The failures as one error (None when everything rendered), for a non-zero exit.
    pub fn error(&self) -> Option<RenderError> {
        (!self.failures.is_empty()).then(|| RenderError::Failed {
            failed: self.failures.len(),
            total: self.total,
            details: self
                .failures
                .iter()
                .map(|f| format!("  {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }
}

/// Render every ExternalSecret found in `files`, in file order. One failing ExternalSecret does not
/// hide the others: everything that could be built is in `yaml`, each failure in `failures`.
pub async fn render_files(files: &[PathBuf]) -> Result<Rendered, RenderError> {
    let objects = load(files)?;
    if objects.external_secrets.is_empty() {
        return Err(RenderError::NothingToRender);
    }
    let providers = Providers::new(None);
    let mut yaml = String::new();
    let mut failures = Vec::new();
    for es in &objects.external_secrets {
        let id = format!(
            "{}/{}",
            es.metadata.namespace.clone().unwrap_or_default(),
            es.metadata.name.clone().unwrap_or_default()
        );
        match render_one(&objects, &providers, es).await {
            Ok(doc) => {
                yaml.push_str("---\n");
                yaml.push_str(&doc);
            }
            Err(e) => failures.push(format!("ExternalSecret {id}: {e}")),
        }
    }
    Ok(Rendered {
        yaml,
        failures,
        total: objects.external_secrets.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: here, value: v}\n";

    fn es(name: &str, key: &str, target: &str) -> String {
        format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretStoreRef: {{name: s}}\n  target: {{{target}}}\n  data:\n  - {{secretKey: k, remoteRef: {{key: {key}}}}}\n"
        )
    }

    async fn render(text: &str) -> Rendered {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.yaml");
        std::fs::write(&path, text).unwrap();
        render_files(&[path]).await.unwrap()
    }

    #[tokio::test]
    async fn finds_and_rewrites_render_offline_and_an_empty_find_says_so() {
        let find = |name: &str, regexp: &str| {
            format!(
                "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretStoreRef: {{name: s}}\n  dataFrom:\n  - find: {{name: {{regexp: '{regexp}'}}}}\n    rewrite: [{{regexp: {{source: '^(h)', target: 'x-${{1}}'}}}}]\n"
            )
        };
        let out = render(&format!(
            "{STORE}{}{}",
            find("found", "^he"),
            find("empty", "^nothing")
        ))
        .await;
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        // "v" in base64.
        assert!(out.yaml.contains("x-here: dg=="), "{}", out.yaml);
        assert!(
            out.yaml.contains(
                "# ExternalSecret default/empty: dataFrom.find matched nothing, no Secret"
            ),
            "{}",
            out.yaml
        );
    }

    #[tokio::test]
    async fn a_v1beta1_manifest_renders_the_same_secret_as_v1_and_v1alpha1_is_refused() {
        let v1 = format!("{STORE}{}", es("app", "here", ""));
        let beta = v1.replace("external-secrets.io/v1\n", "external-secrets.io/v1beta1\n");
        assert_eq!(beta.matches("v1beta1").count(), 2);
        // The hash salt is random offline; everything else is the same Secret.
        let secret = |yaml: String| {
            let mut v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
            v["metadata"]["annotations"] = serde_json::Value::Null;
            v
        };
        let (from_beta, from_v1) = (render(&beta).await.yaml, render(&v1).await.yaml);
        assert!(from_v1.contains("k: dg=="), "{from_v1}");
        assert_eq!(secret(from_beta), secret(from_v1));

        let alpha = v1.replace("external-secrets.io/v1\n", "external-secrets.io/v1alpha1\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alpha.yaml");
        std::fs::write(&path, alpha).unwrap();
        let err = render_files(&[path]).await.unwrap_err();
        assert!(
            matches!(&err, RenderError::UnservedVersion { kind, api_version, index: 0, .. }
                if kind == "SecretStore" && api_version == "external-secrets.io/v1alpha1"),
            "{err}"
        );
    }

    #[test]
    fn served_versions_are_v1_and_v1beta1_of_our_group() {
        for yes in ["external-secrets.io/v1", "external-secrets.io/v1beta1"] {
            assert!(crate::api::is_served(yes), "{yes}");
        }
        for no in [
            "external-secrets.io/v1alpha1",
            "external-secrets.io/v2",
            "external-secrets.io",
            "v1",
            "",
            "generators.external-secrets.io/v1alpha1",
            "example.com/external-secrets.io/v1",
        ] {
            assert!(!crate::api::is_served(no), "{no}");
        }
    }

    #[tokio::test]
    async fn one_failing_external_secret_does_not_hide_the_others() {
        let text = format!(
            "{STORE}{}{}{}",
            es("first", "here", ""),
            es("broken", "here, property: nope", ""),
            es("last", "here", "name: last-secret")
        );
        let out = render(&text).await;
        assert!(
            out.yaml.contains("name: first") && out.yaml.contains("name: last-secret"),
            "{}",
            out.yaml
        );
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert!(
            out.failures[0].starts_with("ExternalSecret default/broken: "),
            "{:?}",
            out.failures
        );
        let error = out.error().unwrap().to_string();
        assert!(
            error.starts_with("1 of 3 ExternalSecrets could not be rendered"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn every_key_gone_under_delete_renders_as_no_secret() {
        let text = format!(
            "{STORE}{}{}",
            es("gone", "nowhere", "deletionPolicy: Delete"),
            es("retained", "nowhere", "")
        );
        let out = render(&text).await;
        assert!(
            out.yaml
                .contains("# ExternalSecret default/gone: every remote key is gone, no Secret"),
            "{}",
            out.yaml
        );
        assert!(
            !out.yaml.contains("kind: Secret"),
            "no empty Secret: {}",
            out.yaml
        );
        assert_eq!(
            out.failures.len(),
            1,
            "Retain reports the gone key: {:?}",
            out.failures
        );
        assert!(out.error().is_some());
    }

    #[tokio::test]
    async fn generators_are_not_run_offline_and_say_so() {
        let text = format!(
            "{STORE}---\napiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {{name: pw, namespace: default}}\nspec: {{length: 12}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: gen, namespace: default}}\nspec:\n  dataFrom:\n  - extract: {{key: here}}\n  - sourceRef: {{generatorRef: {{kind: Password, name: pw}}}}\n"
        );
        let out = render(&text).await;
        assert_eq!(
            out.failures,
            [
                "ExternalSecret default/gen: render does not run generators (spec.dataFrom[1].sourceRef.generatorRef)"
            ]
        );
    }
}
