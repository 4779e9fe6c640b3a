//! ClusterExternalSecret planner (pure): from the selectors, the namespaces and the ExternalSecrets as
//! the caches see them, decide which children to create, update, keep, delete or refuse, and derive
//! the status from what the writes did. No client and no I/O.
//!
//! The rules (ESO's ClusterExternalSecret controller, pkg/controllers/clusterexternalsecret):
//! - A namespace is selected when it is not being deleted and it is named in `namespaces` or matches
//!   any selector (`namespaceSelector`, then `namespaceSelectors`; OR-ed). An invalid selector selects
//!   nothing and is reported under the namespace `unknown`; nothing is written or deleted then.
//! - Each selected namespace gets one ExternalSecret named `externalSecretName` (default: the CES's
//!   name), with a controller ownerReference to the CES.
//! - An ExternalSecret of that name without this CES as its controller is never written: the
//!   namespace is failed with a reason starting with ESO's "external secret already exists in namespace".
//! - Our children (controller = this CES) that are no longer wanted (namespace deselected, or
//!   `externalSecretName` changed) are deleted, except in namespaces that are gone or being deleted
//!   (the namespace takes them). Everything else is left alone.
//! - Ready is True when no namespace failed (also when none is selected), else False with ESO's
//!   message "one or more namespaces failed".

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::cluster_external_secret::{ALREADY_EXISTS, NAMESPACES_FAILED};
use crate::api::{
    ClusterExternalSecretCondition, ClusterExternalSecretStatus, ConditionStatus, NamespaceFailure,
};
use crate::controller::resolve::selector_matches;

/// The API group of our kinds, as it appears in an ownerReference's apiVersion.
const GROUP: &str = crate::api::GROUP;

/// A namespace as the metadata cache sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `deletionTimestamp` is set: the namespace is going away with its contents.
    pub terminating: bool,
}

/// Who controls an ExternalSecret (its ownerReference with `controller: true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No controller: made by hand or by a tool.
    Nobody,
    /// The ClusterExternalSecret being planned.
    ThisCes,
    /// Any other controller, kind and name (another ClusterExternalSecret, Argo, …).
    Other { kind: String, name: String },
}

impl Holder {
    /// From the ownerReferences of an ExternalSecret, for the ClusterExternalSecret `ces_name`.
    /// As in ESO, a controller reference of group external-secrets.io, kind ClusterExternalSecret and
    /// this name is ours (whatever its version or uid).
    pub fn of(
        owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
        ces_name: &str,
    ) -> Holder {
        let Some(controller) = owners.iter().find(|o| o.controller == Some(true)) else {
            return Holder::Nobody;
        };
        let group = controller
            .api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g);
        if group == GROUP
            && controller.kind == "ClusterExternalSecret"
            && controller.name == ces_name
        {
            Holder::ThisCes
        } else {
            Holder::Other {
                kind: controller.kind.clone(),
                name: controller.name.clone(),
            }
        }
    }
}

/// An ExternalSecret as the metadata cache sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub holder: Holder,
    /// Ours, and unchanged since we last applied exactly what we would apply now: no write needed.
    pub up_to_date: bool,
}

/// What the planner reads.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub ces_name: &'a str,
    /// `externalSecretName`, else the CES's name.
    pub child_name: &'a str,
    /// `spec.namespaces` (deprecated, by name).
    pub names: &'a [String],
    /// `namespaceSelector` then `namespaceSelectors`.
    pub selectors: &'a [&'a LabelSelector],
    pub namespaces: &'a [NamespaceView],
    /// ExternalSecrets named `child_name` or controlled by this CES (others are ignored).
    pub children: &'a [ChildView],
}

/// One thing to do in one namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Nothing to write: our child is already what we would apply.
    Keep { namespace: String },
    /// Server-side apply the child. `create`: it does not exist yet, so apply without force (a
    /// child created by someone else meanwhile makes the apply conflict instead of being taken).
    Apply { namespace: String, create: bool },
    /// Delete our child `name` (preconditioned on `uid`, so a re-created object is never touched).
    Delete {
        namespace: String,
        name: String,
        uid: String,
    },
}

impl Step {
    pub fn namespace(&self) -> &str {
        match self {
            Step::Keep { namespace }
            | Step::Apply { namespace, .. }
            | Step::Delete { namespace, .. } => namespace,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Selected namespaces holding an ExternalSecret of the child's name that is not ours.
    pub refused: BTreeMap<String, String>,
    /// The selectors could not be evaluated: nothing is done and this is reported.
    pub selection_error: Option<String>,
}

/// The namespace ESO reports a selection failure under.
pub const UNKNOWN_NAMESPACE: &str = "unknown";

/// Which namespaces are selected, sorted; Err when a selector is invalid (Kubernetes' rules for
/// LabelSelectorAsSelector: In/NotIn need values, Exists/DoesNotExist take none).
pub fn select(inputs: &Inputs) -> Result<BTreeSet<String>, String> {
    for selector in inputs.selectors {
        validate_selector(selector)?;
    }
    let mut selected = BTreeSet::new();
    for ns in inputs.namespaces.iter().filter(|ns| !ns.terminating) {
        let mut chosen = inputs.names.contains(&ns.name);
        for selector in inputs.selectors {
            if chosen {
                break;
            }
            chosen = selector_matches(selector, &ns.labels)?;
        }
        if chosen {
            selected.insert(ns.name.clone());
        }
    }
    Ok(selected)
}

fn validate_selector(selector: &LabelSelector) -> Result<(), String> {
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let ok = match expr.operator.as_str() {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            other => {
                return Err(format!(
                    "failed to convert label selector: {other:?} is not a valid label selector operator"
                ));
            }
        };
        if !ok {
            return Err(format!(
                "failed to convert label selector: key {:?}: values must be {} when operator is {}",
                expr.key,
                if values.is_empty() {
                    "specified"
                } else {
                    "empty"
                },
                expr.operator
            ));
        }
    }
    Ok(())
}

/// The plan for one ClusterExternalSecret.
pub fn plan(inputs: &Inputs) -> Plan {
    let selected = match select(inputs) {
        Ok(s) => s,
        Err(e) => {
            return Plan {
                selection_error: Some(e),
                ..Plan::default()
            };
        }
    };
    let mut out = Plan::default();
    for namespace in &selected {
        let existing = inputs
            .children
            .iter()
            .find(|c| &c.namespace == namespace && c.name == inputs.child_name);
        match existing {
            None => out.steps.push(Step::Apply {
                namespace: namespace.clone(),
                create: true,
            }),
            Some(c) if c.holder == Holder::ThisCes && c.up_to_date => out.steps.push(Step::Keep {
                namespace: namespace.clone(),
            }),
            Some(c) if c.holder == Holder::ThisCes => out.steps.push(Step::Apply {
                namespace: namespace.clone(),
                create: false,
            }),
            Some(c) => {
                out.refused
                    .insert(namespace.clone(), refusal(inputs.ces_name, c));
            }
        }
    }
    let live: BTreeSet<&str> = inputs
        .namespaces
        .iter()
        .filter(|ns| !ns.terminating)
        .map(|ns| ns.name.as_str())
        .collect();
    for c in inputs
        .children
        .iter()
        .filter(|c| c.holder == Holder::ThisCes)
    {
        let wanted = selected.contains(&c.namespace) && c.name == inputs.child_name;
        if !wanted && live.contains(c.namespace.as_str()) {
            out.steps.push(Step::Delete {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                uid: c.uid.clone(),
            });
        }
    }
    out.steps.sort();
    out
}

fn refusal(ces_name: &str, child: &ChildView) -> String {
    let holder = match &child.holder {
        Holder::Nobody => "it has no controller".to_owned(),
        Holder::Other { kind, name } => format!("its controller is {kind} {name:?}"),
        Holder::ThisCes => "it is ours".to_owned(),
    };
    format!(
        "{ALREADY_EXISTS}: ExternalSecret {:?} was not created by ClusterExternalSecret {ces_name:?} ({holder}); it is left as it is",
        child.name
    )
}

/// The status after executing `plan`: `results` holds, for each step that was attempted, Ok or the
/// failure's message. Keep and successful applies are provisioned; refusals and failed writes are
/// failed (a namespace with any failure is not listed as provisioned). On a selection error the
/// previous provisioned list stays, as in ESO (nothing was done).
pub fn status(
    child_name: &str,
    plan: &Plan,
    results: &[(Step, Result<(), String>)],
    previous: Option<&ClusterExternalSecretStatus>,
) -> ClusterExternalSecretStatus {
    let mut failed: BTreeMap<String, String> = plan.refused.clone();
    let mut provisioned = BTreeSet::new();
    if let Some(e) = &plan.selection_error {
        failed.insert(UNKNOWN_NAMESPACE.to_owned(), e.clone());
        provisioned.extend(
            previous
                .map(|p| p.provisioned_namespaces.clone())
                .unwrap_or_default(),
        );
    }
    for (step, result) in results {
        match (step, result) {
            (Step::Keep { namespace } | Step::Apply { namespace, .. }, Ok(())) => {
                provisioned.insert(namespace.clone());
            }
            (Step::Delete { .. }, Ok(())) => {}
            (step, Err(message)) => {
                failed
                    .entry(step.namespace().to_owned())
                    .or_insert_with(|| message.clone());
            }
        }
    }
    provisioned.retain(|ns| !failed.contains_key(ns));
    let ready = if failed.is_empty() {
        ClusterExternalSecretCondition {
            type_: "Ready".to_owned(),
            status: ConditionStatus::True,
            message: None,
        }
    } else {
        ClusterExternalSecretCondition {
            type_: "Ready".to_owned(),
            status: ConditionStatus::False,
            message: Some(NAMESPACES_FAILED.to_owned()),
        }
    };
    let mut conditions: Vec<ClusterExternalSecretCondition> = previous
        .map(|p| p.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Ready")
        .collect();
    conditions.push(ready);
    ClusterExternalSecretStatus {
        external_secret_name: Some(child_name.to_owned()),
        failed_namespaces: failed
            .into_iter()
            .map(|(namespace, reason)| NamespaceFailure {
                namespace,
                reason: Some(reason),
            })
            .collect(),
        provisioned_namespaces: provisioned.into_iter().collect(),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceView {
        let mut labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // As every API server does (and as ESO's `namespaces` field relies on).
        labels.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
        NamespaceView {
            name: name.to_owned(),
            labels,
            terminating: false,
        }
    }

    fn child(namespace: &str, name: &str, holder: Holder, up_to_date: bool) -> ChildView {
        ChildView {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: format!("uid-{namespace}-{name}"),
            holder,
            up_to_date,
        }
    }

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn inputs<'a>(
        selectors: &'a [&'a LabelSelector],
        namespaces: &'a [NamespaceView],
        children: &'a [ChildView],
    ) -> Inputs<'a> {
        Inputs {
            ces_name: "shared",
            child_name: "db",
            names: &[],
            selectors,
            namespaces,
            children,
        }
    }

    fn apply(namespace: &str, create: bool) -> Step {
        Step::Apply {
            namespace: namespace.to_owned(),
            create,
        }
    }

    fn delete(namespace: &str, name: &str) -> Step {
        Step::Delete {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: format!("uid-{namespace}-{name}"),
        }
    }

    fn keep(namespace: &str) -> Step {
        Step::Keep {
            namespace: namespace.to_owned(),
        }
    }

    fn other_ces(name: &str) -> Holder {
        Holder::Other {
            kind: "ClusterExternalSecret".into(),
            name: name.into(),
        }
    }

    /// Every child state in a selected namespace, in a deselected one, in a terminating one and in
    /// one that is gone: the whole decision table.
    #[test]
    fn every_child_state_in_every_namespace_state() {
        #[derive(Clone, Copy, Debug)]
        enum Ns {
            Selected,
            Deselected,
            Terminating,
            Gone,
        }
        #[derive(Clone, Copy, Debug)]
        enum Child {
            Absent,
            OursCurrent,
            OursStale,
            Nobody,
            OtherCes,
        }
        #[derive(Debug, PartialEq)]
        enum Expect {
            Create,
            Update,
            Keep,
            Delete,
            Refuse,
            Nothing,
        }
        let table = [
            (Ns::Selected, Child::Absent, Expect::Create),
            (Ns::Selected, Child::OursCurrent, Expect::Keep),
            (Ns::Selected, Child::OursStale, Expect::Update),
            (Ns::Selected, Child::Nobody, Expect::Refuse),
            (Ns::Selected, Child::OtherCes, Expect::Refuse),
            (Ns::Deselected, Child::Absent, Expect::Nothing),
            (Ns::Deselected, Child::OursCurrent, Expect::Delete),
            (Ns::Deselected, Child::OursStale, Expect::Delete),
            (Ns::Deselected, Child::Nobody, Expect::Nothing),
            (Ns::Deselected, Child::OtherCes, Expect::Nothing),
            (Ns::Terminating, Child::Absent, Expect::Nothing),
            (Ns::Terminating, Child::OursCurrent, Expect::Nothing),
            (Ns::Terminating, Child::OursStale, Expect::Nothing),
            (Ns::Terminating, Child::Nobody, Expect::Nothing),
            (Ns::Terminating, Child::OtherCes, Expect::Nothing),
            (Ns::Gone, Child::Absent, Expect::Nothing),
            (Ns::Gone, Child::OursCurrent, Expect::Nothing),
            (Ns::Gone, Child::OursStale, Expect::Nothing),
            (Ns::Gone, Child::Nobody, Expect::Nothing),
            (Ns::Gone, Child::OtherCes, Expect::Nothing),
        ];
        let sel = selector("matchLabels: {team: a}");
        for (ns_state, child_state, expect) in table {
            let namespaces: Vec<NamespaceView> = match ns_state {
                Ns::Selected => vec![ns("a", &[("team", "a")])],
                Ns::Deselected => vec![ns("a", &[("team", "b")])],
                Ns::Terminating => vec![NamespaceView {
                    terminating: true,
                    ..ns("a", &[("team", "a")])
                }],
                Ns::Gone => vec![],
            };
            let children: Vec<ChildView> = match child_state {
                Child::Absent => vec![],
                Child::OursCurrent => vec![child("a", "db", Holder::ThisCes, true)],
                Child::OursStale => vec![child("a", "db", Holder::ThisCes, false)],
                Child::Nobody => vec![child("a", "db", Holder::Nobody, false)],
                Child::OtherCes => vec![child("a", "db", other_ces("x"), false)],
            };
            let p = plan(&inputs(&[&sel], &namespaces, &children));
            let got = match (p.steps.as_slice(), p.refused.is_empty()) {
                ([], false) => Expect::Refuse,
                ([], true) => Expect::Nothing,
                ([Step::Apply { create: true, .. }], true) => Expect::Create,
                ([Step::Apply { create: false, .. }], true) => Expect::Update,
                ([Step::Keep { .. }], true) => Expect::Keep,
                ([Step::Delete { .. }], true) => Expect::Delete,
                other => panic!("{ns_state:?} {child_state:?}: unexpected plan {other:?}"),
            };
            assert_eq!(got, expect, "namespace {ns_state:?}, child {child_state:?}");
            assert!(p.steps.iter().all(|s| s.namespace() == "a"));
            assert_eq!(p.selection_error, None);
        }
    }

    #[test]
    fn selectors_are_ored_with_the_deprecated_selector_and_the_names() {
        let namespaces = [
            ns("by-label", &[("team", "a")]),
            ns("by-old-selector", &[("legacy", "yes")]),
            ns("by-name", &[]),
            ns("by-expression", &[("tier", "prod")]),
            ns("none", &[("team", "b")]),
        ];
        let old = selector("matchLabels: {legacy: 'yes'}");
        let new = selector("matchLabels: {team: a}");
        let expr = selector("matchExpressions: [{key: tier, operator: In, values: [prod, stage]}]");
        let names = ["by-name".to_owned(), "missing".to_owned()];
        let selectors = [&old, &new, &expr];
        let i = Inputs {
            names: &names,
            ..inputs(&selectors, &namespaces, &[])
        };
        assert_eq!(
            select(&i).unwrap(),
            BTreeSet::from(
                ["by-label", "by-old-selector", "by-name", "by-expression"].map(str::to_owned)
            )
        );
    }

    #[test]
    fn corpus_029_selects_namespaces_by_their_name_label() {
        // The deprecated singular namespaceSelector with matchExpressions on kubernetes.io/metadata.name.
        let sel = selector(
            "matchExpressions:\n- {key: kubernetes.io/metadata.name, operator: In, values: [apps, cluster-services]}",
        );
        let namespaces = [
            ns("apps", &[]),
            ns("cluster-services", &[]),
            ns("default", &[]),
        ];
        let p = plan(&inputs(&[&sel], &namespaces, &[]));
        assert_eq!(
            p.steps,
            [apply("apps", true), apply("cluster-services", true)]
        );
    }

    #[test]
    fn an_empty_selector_selects_every_namespace_and_no_selector_selects_none() {
        let namespaces = [ns("a", &[]), ns("b", &[("x", "y")])];
        let all = selector("{}");
        assert_eq!(select(&inputs(&[&all], &namespaces, &[])).unwrap().len(), 2);
        assert!(select(&inputs(&[], &namespaces, &[])).unwrap().is_empty());
    }

    #[test]
    fn an_invalid_selector_does_nothing_and_is_reported_under_unknown() {
        let namespaces = [ns("a", &[("team", "a")])];
        let children = [child("b", "db", Holder::ThisCes, true)];
        for bad in [
            "matchExpressions: [{key: team, operator: In, values: []}]",
            "matchExpressions: [{key: team, operator: Exists, values: [a]}]",
            "matchExpressions: [{key: team, operator: Like, values: [a]}]",
        ] {
            let sel = selector(bad);
            let good = selector("matchLabels: {team: a}");
            let p = plan(&inputs(&[&good, &sel], &namespaces, &children));
            assert!(p.steps.is_empty(), "{bad}: {p:?}");
            let err = p.selection_error.clone().unwrap();
            assert!(err.starts_with("failed to convert label selector"), "{err}");
            let previous = ClusterExternalSecretStatus {
                provisioned_namespaces: vec!["b".into()],
                ..Default::default()
            };
            let s = status("db", &p, &[], Some(&previous));
            assert_eq!(s.provisioned_namespaces, ["b"]);
            assert_eq!(s.failed_namespaces.len(), 1);
            assert_eq!(s.failed_namespaces[0].namespace, "unknown");
            assert_eq!(s.failed_namespaces[0].reason.as_deref(), Some(err.as_str()));
            assert_eq!(s.conditions[0].status, ConditionStatus::False);
        }
    }

    #[test]
    fn a_renamed_child_is_created_under_the_new_name_and_the_old_one_deleted() {
        let sel = selector("{}");
        let namespaces = [ns("a", &[])];
        let children = [child("a", "old-name", Holder::ThisCes, true)];
        let p = plan(&inputs(&[&sel], &namespaces, &children));
        assert_eq!(p.steps, [apply("a", true), delete("a", "old-name")]);
    }

    #[test]
    fn other_external_secrets_are_never_touched() {
        let sel = selector("{}");
        let namespaces = [ns("a", &[])];
        // Another name, not ours: neither applied nor deleted, and no conflict.
        let children = [
            child("a", "unrelated", Holder::Nobody, false),
            child("a", "theirs", other_ces("x"), false),
        ];
        let p = plan(&inputs(&[&sel], &namespaces, &children));
        assert_eq!(p.steps, [apply("a", true)]);
        assert!(p.refused.is_empty());
    }

    #[test]
    fn a_foreign_child_is_refused_with_a_reason_that_names_it_and_its_holder() {
        let sel = selector("{}");
        let namespaces = [ns("a", &[]), ns("b", &[]), ns("c", &[])];
        let children = [
            child("a", "db", Holder::Nobody, false),
            child(
                "b",
                "db",
                Holder::Other {
                    kind: "Application".into(),
                    name: "argo".into(),
                },
                false,
            ),
        ];
        let p = plan(&inputs(&[&sel], &namespaces, &children));
        assert_eq!(p.steps, [apply("c", true)]);
        assert_eq!(
            p.refused["a"],
            "external secret already exists in namespace: ExternalSecret \"db\" was not created by ClusterExternalSecret \"shared\" (it has no controller); it is left as it is"
        );
        assert_eq!(
            p.refused["b"],
            "external secret already exists in namespace: ExternalSecret \"db\" was not created by ClusterExternalSecret \"shared\" (its controller is Application \"argo\"); it is left as it is"
        );
    }

    #[test]
    fn status_lists_provisioned_and_failed_namespaces_sorted_and_ready_follows_failures() {
        let p = Plan {
            steps: vec![],
            refused: BTreeMap::from([("m".to_owned(), "taken".to_owned())]),
            selection_error: None,
        };
        let results = vec![
            (apply("z", true), Ok(())),
            (keep("b"), Ok(())),
            (apply("c", false), Err("boom".to_owned())),
            (delete("d", "db"), Err("cannot delete".to_owned())),
            (delete("e", "db"), Ok(())),
        ];
        let s = status("db", &p, &results, None);
        assert_eq!(s.external_secret_name.as_deref(), Some("db"));
        assert_eq!(s.provisioned_namespaces, ["b", "z"]);
        assert_eq!(
            s.failures(),
            [("c", "boom"), ("d", "cannot delete"), ("m", "taken")]
        );
        assert_eq!(
            s.conditions,
            [ClusterExternalSecretCondition {
                type_: "Ready".into(),
                status: ConditionStatus::False,
                message: Some("one or more namespaces failed".into()),
            }]
        );
        let ok = status(
            "db",
            &Plan::default(),
            &[(apply("a", true), Ok(()))],
            Some(&s),
        );
        assert_eq!(ok.provisioned_namespaces, ["a"]);
        assert!(ok.failed_namespaces.is_empty());
        assert_eq!(
            ok.conditions,
            [ClusterExternalSecretCondition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                message: None,
            }]
        );
    }

    #[test]
    fn no_selected_namespace_is_ready_with_nothing_provisioned() {
        // ESO: "Should be ready if no namespace matches".
        let sel = selector("matchLabels: {team: nobody}");
        let namespaces = [ns("a", &[])];
        let p = plan(&inputs(&[&sel], &namespaces, &[]));
        let s = status("db", &p, &[], None);
        assert!(s.provisioned_namespaces.is_empty() && s.failed_namespaces.is_empty());
        assert_eq!(s.conditions[0].status, ConditionStatus::True);
    }

    #[test]
    fn the_holder_is_the_controller_reference_matched_by_group_kind_and_name() {
        let owner =
            |api_version: &str, kind: &str, name: &str, controller: Option<bool>| OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                uid: "u".into(),
                controller,
                block_owner_deletion: None,
            };
        let ces = |v: &str, n: &str| owner(v, "ClusterExternalSecret", n, Some(true));
        assert_eq!(Holder::of(&[], "shared"), Holder::Nobody);
        assert_eq!(
            Holder::of(&[ces("external-secrets.io/v1", "shared")], "shared"),
            Holder::ThisCes
        );
        assert_eq!(
            Holder::of(&[ces("external-secrets.io/v1beta1", "shared")], "shared"),
            Holder::ThisCes
        );
        assert_eq!(
            Holder::of(&[ces("external-secrets.io/v1", "other")], "shared"),
            other_ces("other")
        );
        assert_eq!(
            Holder::of(&[ces("example.com/v1", "shared")], "shared"),
            other_ces("shared")
        );
        // Only the controller reference counts.
        assert_eq!(
            Holder::of(
                &[owner(
                    "external-secrets.io/v1",
                    "ClusterExternalSecret",
                    "shared",
                    None
                )],
                "shared"
            ),
            Holder::Nobody
        );
    }
}
