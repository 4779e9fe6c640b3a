//! Which Secrets a workload opted in to reload on (pure): the opt-in annotations and the Secret
//! references of a pod template. No client, no cache lookups; callers bring the objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};

/// `"true"` on a workload's metadata: reload on every secret-sync Secret its pod template uses.
pub const RELOAD_ANNOTATION: &str = "secret-sync.io/reload";
/// Comma-separated Secret names on a workload's metadata: reload on exactly these.
pub const RELOAD_SECRETS_ANNOTATION: &str = "secret-sync.io/reload-secrets";

/// What a workload asked for. Both annotations may be set; the covered Secrets are then the union.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptIn {
    /// `reload: "true"`: every Secret the pod template references.
    pub referenced: bool,
    /// `reload-secrets`: named Secrets, used by the pods or not (an app may read them itself).
    pub named: BTreeSet<String>,
}

impl OptIn {
    /// `None` when the workload did not opt in (no annotation, `reload` not "true", empty list).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<OptIn> {
        // Only the exact string "true" opts in, as for other Kubernetes boolean annotations;
        // "True" or "yes" would silently mean something else elsewhere.
        let referenced = annotations
            .get(RELOAD_ANNOTATION)
            .is_some_and(|v| v.trim() == "true");
        let named: BTreeSet<String> = annotations
            .get(RELOAD_SECRETS_ANNOTATION)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        (referenced || !named.is_empty()).then_some(OptIn { referenced, named })
    }

    /// Names of the Secrets this opt-in covers for a pod template. Whether each one is managed by
    /// secret-sync is decided by the caller, which only knows the data hashes of our Secrets.
    pub fn covered(&self, template: Option<&PodTemplateSpec>) -> BTreeSet<String> {
        let mut names = self.named.clone();
        if self.referenced
            && let Some(template) = template
        {
            names.extend(template_secrets(template));
        }
        names
    }
}

/// Every Secret name a pod template reads: env `secretKeyRef`, `envFrom.secretRef`, `secret`
/// volumes and projected volumes' `secret` sources, in containers and initContainers.
/// (Ephemeral containers cannot be in a template; imagePullSecrets are read by the kubelet once per
/// pull, so a rollout would not be how their change takes effect.)
pub fn template_secrets(template: &PodTemplateSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(spec) = template.spec.as_ref() else {
        return names;
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        container_secrets(container, &mut names);
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.as_ref()) {
            names.insert(name.clone());
        }
        let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in projected.into_iter().flatten() {
            if let Some(secret) = source.secret.as_ref() {
                names.insert(secret.name.clone());
            }
        }
    }
    // An empty name is not a reference the API server would accept; drop it rather than match it.
    names.remove("");
    names
}

fn container_secrets(container: &Container, names: &mut BTreeSet<String>) {
    for env in container.env.iter().flatten() {
        if let Some(key_ref) = env
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            names.insert(key_ref.name.clone());
        }
    }
    for from in container.env_from.iter().flatten() {
        if let Some(secret_ref) = from.secret_ref.as_ref() {
            names.insert(secret_ref.name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> PodTemplateSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    const EVERY_KIND_OF_REFERENCE: &str = r#"
spec:
  initContainers:
  - name: init
    env:
    - {name: A, valueFrom: {secretKeyRef: {name: init-env, key: k}}}
  containers:
  - name: app
    env:
    - {name: PLAIN, value: x}
    - {name: CM, valueFrom: {configMapKeyRef: {name: a-configmap, key: k}}}
    - {name: B, valueFrom: {secretKeyRef: {name: env-ref, key: k}}}
    envFrom:
    - secretRef: {name: env-from}
    - configMapRef: {name: another-configmap}
  - name: sidecar
    envFrom:
    - secretRef: {name: sidecar-env-from}
  volumes:
  - {name: v1, secret: {secretName: volume}}
  - {name: v2, configMap: {name: cm-volume}}
  - name: v3
    projected:
      sources:
      - secret: {name: projected}
      - configMap: {name: cm-projected}
      - serviceAccountToken: {path: token}
"#;

    #[test]
    fn every_secret_reference_of_a_pod_template_is_found_and_nothing_else() {
        assert_eq!(
            template_secrets(&template(EVERY_KIND_OF_REFERENCE)),
            set(&[
                "env-from",
                "env-ref",
                "init-env",
                "projected",
                "sidecar-env-from",
                "volume"
            ])
        );
    }

    #[test]
    fn a_template_without_spec_or_references_uses_no_secret() {
        assert!(template_secrets(&template("metadata: {labels: {a: b}}")).is_empty());
        assert!(
            template_secrets(&template("spec: {containers: [{name: app, image: x}]}")).is_empty()
        );
    }

    #[test]
    fn workloads_without_the_annotations_do_not_opt_in() {
        assert_eq!(OptIn::from_annotations(&annotations(&[])), None);
        assert_eq!(
            OptIn::from_annotations(&annotations(&[(RELOAD_ANNOTATION, "false")])),
            None
        );
        assert_eq!(
            OptIn::from_annotations(&annotations(&[(RELOAD_ANNOTATION, "yes")])),
            None
        );
        assert_eq!(
            OptIn::from_annotations(&annotations(&[(RELOAD_SECRETS_ANNOTATION, " , ")])),
            None
        );
    }

    #[test]
    fn reload_true_covers_the_referenced_secrets() {
        let opt = OptIn::from_annotations(&annotations(&[(RELOAD_ANNOTATION, "true")])).unwrap();
        let t = template(EVERY_KIND_OF_REFERENCE);
        assert_eq!(opt.covered(Some(&t)), template_secrets(&t));
        assert!(opt.covered(None).is_empty());
    }

    #[test]
    fn reload_secrets_covers_exactly_the_named_secrets_whether_used_or_not() {
        let opt = OptIn::from_annotations(&annotations(&[(
            RELOAD_SECRETS_ANNOTATION,
            " volume, not-in-the-template ,,",
        )]))
        .unwrap();
        assert!(!opt.referenced);
        assert_eq!(
            opt.covered(Some(&template(EVERY_KIND_OF_REFERENCE))),
            set(&["not-in-the-template", "volume"])
        );
    }

    #[test]
    fn both_annotations_cover_the_union() {
        let opt = OptIn::from_annotations(&annotations(&[
            (RELOAD_ANNOTATION, "true"),
            (RELOAD_SECRETS_ANNOTATION, "extra"),
        ]))
        .unwrap();
        let covered = opt.covered(Some(&template(EVERY_KIND_OF_REFERENCE)));
        assert!(covered.contains("extra") && covered.contains("volume"));
    }
}
