// Owns the table of served kinds: the built-in table and the registry derived from stored CRDs.
// Must not store objects or know about HTTP; it only answers "what is this resource and how does it behave".

use std::collections::BTreeMap;

use serde_json::Value;

/// How one resource (group + plural) behaves.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, preferred (storage) version first.
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// Whether `metadata.generation` is maintained (kinds with a spec).
    pub generation: bool,
    pub custom: bool,
    /// Per version: the openAPIV3Schema of a custom resource.
    pub schemas: BTreeMap<String, Value>,
    /// Per version: additionalPrinterColumns of a custom resource.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
    /// Extra subresources beyond status (e.g. `token` on serviceaccounts).
    pub extra_subresources: Vec<&'static str>,
    /// Per deprecated version: the warning every request to it gets (`Warning: 299 - "…"`).
    pub deprecations: BTreeMap<String, String>,
}

impl ResourceDef {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

const NS: u8 = 1; // namespaced
const ST: u8 = 2; // has a status subresource
const GEN: u8 = 4; // maintains metadata.generation
const ALL: u8 = 8; // in category "all"

/// group, version, kind, plural, flags, short names.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u8,
    &'static [&'static str],
);

/// Adding a built-in kind is one line here.
const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", ST, &["ns"]),
    ("", "v1", "Secret", "secrets", NS, &[]),
    ("", "v1", "ConfigMap", "configmaps", NS, &["cm"]),
    ("", "v1", "ServiceAccount", "serviceaccounts", NS, &["sa"]),
    ("", "v1", "Service", "services", NS | ST | ALL, &["svc"]),
    ("", "v1", "Event", "events", NS, &["ev"]),
    ("events.k8s.io", "v1", "Event", "events", NS, &["ev"]),
    ("coordination.k8s.io", "v1", "Lease", "leases", NS, &[]),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        NS | ST | GEN | ALL,
        &["deploy"],
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        NS | ST | GEN | ALL,
        &["sts"],
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        NS | ST | GEN | ALL,
        &["ds"],
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", NS, &[]),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        NS,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        0,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        0,
        &[],
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        NS | ST | GEN,
        &["pdb"],
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        NS | GEN,
        &["netpol"],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        ST | GEN,
        &["crd", "crds"],
    ),
];

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_PLURAL: &str = "customresourcedefinitions";

pub fn builtins() -> Vec<ResourceDef> {
    BUILTINS
        .iter()
        .map(|(group, version, kind, plural, flags, short)| ResourceDef {
            group: (*group).to_string(),
            versions: vec![(*version).to_string()],
            kind: (*kind).to_string(),
            list_kind: format!("{kind}List"),
            plural: (*plural).to_string(),
            singular: kind.to_lowercase(),
            namespaced: flags & NS != 0,
            short_names: short.iter().map(|s| (*s).to_string()).collect(),
            categories: if flags & ALL != 0 {
                vec!["all".to_string()]
            } else {
                vec![]
            },
            has_status: flags & ST != 0,
            generation: flags & GEN != 0,
            custom: false,
            schemas: BTreeMap::new(),
            printer_columns: BTreeMap::new(),
            extra_subresources: if *plural == "serviceaccounts" {
                vec!["token"]
            } else {
                vec![]
            },
            deprecations: BTreeMap::new(),
        })
        .collect()
}

/// Derives a served resource from a stored CRD object. Returns None for a CRD too malformed to serve.
pub fn from_crd(crd: &Value) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let str_list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut schemas = BTreeMap::new();
    let mut printer_columns = BTreeMap::new();
    let mut has_status = false;
    let mut deprecated = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        let name = v.get("name")?.as_str()?.to_string();
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        if v.get("deprecated").and_then(Value::as_bool) == Some(true) {
            let custom = v.get("deprecationWarning").and_then(Value::as_str);
            deprecated.push((name.clone(), custom.map(str::to_string)));
        }
        if v.pointer("/subresources/status").is_some() {
            has_status = true;
        }
        if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(name.clone(), s.clone());
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            printer_columns.insert(name.clone(), cols.clone());
        }
        // The storage version is preferred; it goes first.
        if v.get("storage").and_then(Value::as_bool).unwrap_or(false) {
            versions.insert(0, name);
        } else {
            versions.push(name);
        }
    }
    if versions.is_empty() {
        return None;
    }
    let deprecations = deprecated
        .into_iter()
        .map(|(version, custom)| {
            let warning = custom.unwrap_or_else(|| {
                default_deprecation_warning(&group, &kind, &version, spec.get("versions"))
            });
            (version, warning)
        })
        .collect();
    Some(ResourceDef {
        group,
        versions,
        list_kind: names
            .get("listKind")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List")),
        singular: names
            .get("singular")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind,
        plural,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: str_list(names.get("shortNames")),
        categories: str_list(names.get("categories")),
        has_status,
        generation: true,
        custom: true,
        schemas,
        printer_columns,
        extra_subresources: vec![],
        deprecations,
    })
}

/// The apiextensions-apiserver's wording when a deprecated version sets no `deprecationWarning`:
/// "GROUP/VERSION KIND is deprecated", plus "; use GROUP/NEWEST KIND" naming the highest-priority
/// served version that is not deprecated.
fn default_deprecation_warning(
    group: &str,
    kind: &str,
    version: &str,
    versions: Option<&Value>,
) -> String {
    let mut msg = format!("{group}/{version} {kind} is deprecated");
    let replacement = versions
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .filter(|v| v.get("deprecated").and_then(Value::as_bool) != Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .max_by_key(|name| version_priority(name));
    if let Some(newest) = replacement {
        msg.push_str(&format!("; use {group}/{newest} {kind}"));
    }
    msg
}

/// Kubernetes' version ordering (GA > beta > alpha, then the higher numbers; anything else last),
/// as a sortable key: higher is preferred.
fn version_priority(name: &str) -> (u8, u64, u64) {
    let Some(rest) = name.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let level_of = |n: &str, level: u8| n.parse::<u64>().ok().map(|minor| (level, minor));
    let ranked = if tail.is_empty() {
        Some((3, 0))
    } else if let Some(n) = tail.strip_prefix("beta") {
        level_of(n, 2)
    } else {
        tail.strip_prefix("alpha").and_then(|n| level_of(n, 1))
    };
    let Some((level, minor)) = ranked else {
        return (0, 0, 0);
    };
    (level, major, if level == 3 { 0 } else { minor })
}

/// All served resources: built-ins plus CRD-derived ones, keyed by (group, plural).
#[derive(Debug, Clone)]
pub struct Registry {
    defs: BTreeMap<(String, String), ResourceDef>,
}

impl Default for Registry {
    fn default() -> Self {
        let defs = builtins()
            .into_iter()
            .map(|d| ((d.group.clone(), d.plural.clone()), d))
            .collect();
        Self { defs }
    }
}

impl Registry {
    pub fn get(&self, group: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs.get(&(group.to_string(), plural.to_string()))
    }

    /// Looks a resource up as addressed in a URL, requiring the version to be served.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.get(group, plural).filter(|d| d.serves(version))
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.defs.values()
    }

    pub fn upsert_crd(&mut self, def: ResourceDef) {
        self.defs
            .insert((def.group.clone(), def.plural.clone()), def);
    }

    pub fn remove_crd(&mut self, group: &str, plural: &str) -> Option<ResourceDef> {
        let key = (group.to_string(), plural.to_string());
        if self.defs.get(&key).is_some_and(|d| d.custom) {
            self.defs.remove(&key)
        } else {
            None
        }
    }

    /// Groups with their served versions, for `/apis` discovery (core group excluded).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values().filter(|d| !d.group.is_empty()) {
            let entry = out.entry(d.group.clone()).or_default();
            for v in &d.versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn crd(versions: Value) -> Value {
        json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": versions}})
    }

    #[test]
    fn versions_rank_as_kubernetes_orders_them() {
        let mut names = vec![
            "v1alpha1",
            "v10",
            "v11alpha2",
            "foo1",
            "v1",
            "v2beta1",
            "v12alpha1",
            "v1beta1",
            "v3beta1",
            "v1beta2",
            "v2",
        ];
        names.sort_by_key(|n| std::cmp::Reverse(version_priority(n)));
        // The example order of the Kubernetes CRD versioning docs (non-kube-like names last).
        assert_eq!(
            names,
            [
                "v10",
                "v2",
                "v1",
                "v3beta1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1"
            ]
        );
    }

    #[test]
    fn a_deprecated_version_gets_its_own_warning_or_the_servers_default() {
        let def = from_crd(&crd(json!([
            {"name": "v1", "served": true, "storage": true},
            {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
            {"name": "v1alpha1", "served": true, "storage": false, "deprecated": true,
             "deprecationWarning": "alpha is gone soon"},
            {"name": "v2beta1", "served": false, "storage": false}
        ])))
        .unwrap();
        assert_eq!(def.versions, ["v1", "v1beta1", "v1alpha1"]);
        assert_eq!(
            def.deprecations.get("v1beta1").map(String::as_str),
            Some("example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget")
        );
        assert_eq!(
            def.deprecations.get("v1alpha1").map(String::as_str),
            Some("alpha is gone soon")
        );
        assert!(!def.deprecations.contains_key("v1"));
    }

    #[test]
    fn the_default_warning_names_no_replacement_when_every_served_version_is_deprecated() {
        let def = from_crd(&crd(json!([
            {"name": "v1beta1", "served": true, "storage": true, "deprecated": true}
        ])))
        .unwrap();
        assert_eq!(
            def.deprecations.get("v1beta1").map(String::as_str),
            Some("example.com/v1beta1 Widget is deprecated")
        );
    }
}
