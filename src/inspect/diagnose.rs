//! `why` (pure): from the facts gathered about one ExternalSecret, the chain of findings a person
//! reads top to bottom — spec, store, authentication, provider, target Secret, Events — each with the
//! fix to try. Never sees a secret value: facts carry names, keys and status texts only.

use serde::Serialize;

use crate::api::aws::AwsService;
use crate::api::{
    ConditionStatus, CreationPolicy, DeletionPolicy, ExternalSecret, ProviderChoice, StoreObject,
};
use crate::controller::build;
use crate::controller::resolve::ResolveError;

/// The link of the chain a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    ExternalSecret,
    Store,
    Authentication,
    Provider,
    Target,
    Events,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Ok,
    Problem,
    Info,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub step: Step,
    pub verdict: Verdict,
    /// What was found, in plain words.
    pub what: String,
    /// What to try, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(step: Step, what: impl Into<String>) -> Self {
        Finding {
            step,
            verdict: Verdict::Ok,
            what: what.into(),
            fix: None,
        }
    }
    fn info(step: Step, what: impl Into<String>) -> Self {
        Finding {
            step,
            verdict: Verdict::Info,
            what: what.into(),
            fix: None,
        }
    }
    fn problem(step: Step, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            step,
            verdict: Verdict::Problem,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// A ServiceAccount named by `auth.jwt.serviceAccountRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountFacts {
    pub namespace: String,
    pub name: String,
    pub exists: bool,
    /// Its `eks.amazonaws.com/role-arn` annotation.
    pub role_arn: Option<String>,
}

/// A Secret named by `auth.secretRef`: which of the wanted keys it has (names only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialsFacts {
    pub namespace: String,
    pub name: String,
    pub exists: bool,
    pub missing_keys: Vec<String>,
}

/// The target Secret, metadata only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetFacts {
    pub exists: bool,
    /// Name of the ExternalSecret that controls it, when it is not this one.
    pub other_controller: Option<String>,
    /// Any other controlling owner (kind/name), e.g. a Helm-managed or operator-managed Secret.
    pub foreign_owner: Option<String>,
    pub immutable: bool,
    pub managed_by_us: bool,
}

/// One recent Event about the ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFacts {
    pub type_: String,
    pub reason: String,
    pub note: String,
}

/// Everything `why` reads, gathered by `inspect::gather` (or built by a test).
#[derive(Clone, Debug)]
pub struct Facts {
    pub es: ExternalSecret,
    pub store: Result<StoreObject, ResolveError>,
    pub service_account: Option<ServiceAccountFacts>,
    pub credentials: Option<CredentialsFacts>,
    pub target: TargetFacts,
    /// Newest last.
    pub events: Vec<EventFacts>,
}

/// The ServiceAccount annotation IRSA reads.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Walk the chain. Every step says something, so a healthy ExternalSecret reads as a list of oks.
pub fn diagnose(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    spec_findings(&facts.es, &mut out);
    if !build::needs_store(&facts.es.spec) {
        out.push(Finding::ok(
            Step::Store,
            "no store needed: every value comes from a generator (dataFrom[].sourceRef.generatorRef)",
        ));
        provider_findings(facts, &mut out);
        target_findings(facts, &mut out);
        event_findings(facts, &mut out);
        return out;
    }
    let store = match &facts.store {
        Ok(store) => store,
        Err(e) => {
            out.push(store_problem(&facts.es, e));
            target_findings(facts, &mut out);
            event_findings(facts, &mut out);
            return out;
        }
    };
    out.push(Finding::ok(
        Step::Store,
        format!(
            "{} {:?} is usable from this namespace",
            store.kind.as_str(),
            store.name
        ),
    ));
    auth_findings(facts, store, &mut out);
    provider_findings(facts, &mut out);
    target_findings(facts, &mut out);
    event_findings(facts, &mut out);
    out
}

fn spec_findings(es: &ExternalSecret, out: &mut Vec<Finding>) {
    let spec = &es.spec;
    if let Err(e) = build::check_supported(spec) {
        out.push(Finding::problem(
            Step::ExternalSecret,
            format!("the spec cannot be synced: {e}"),
            "remove or change that field (see the README's ESO compatibility table)",
        ));
    }
    match build::refresh_interval(spec) {
        Err(e) => out.push(Finding::problem(
            Step::ExternalSecret,
            e.to_string(),
            "use a Go duration such as \"1h\" or \"15m\", or \"0\" to sync once",
        )),
        Ok(interval) => {
            let policy = spec
                .refresh_policy
                .map_or("Periodic".to_owned(), |p| format!("{p:?}"));
            let every = interval.map_or("once (refreshInterval \"0\")".to_owned(), |d| {
                format!("every {}", super::go_duration(d))
            });
            out.push(Finding::ok(
                Step::ExternalSecret,
                format!("refreshPolicy {policy}, {every}"),
            ));
        }
    }
    let (creation, deletion) = (spec.target.creation_policy, spec.target.deletion_policy);
    if deletion == DeletionPolicy::Delete && creation != CreationPolicy::Owner {
        out.push(Finding::problem(
            Step::ExternalSecret,
            "deletionPolicy Delete requires creationPolicy Owner",
            "set target.creationPolicy: Owner, or use deletionPolicy Retain or Merge",
        ));
    }
}

fn store_problem(es: &ExternalSecret, e: &ResolveError) -> Finding {
    let namespace = es.metadata.namespace.clone().unwrap_or_default();
    let fix = match e {
        ResolveError::NoStoreName => "set spec.secretStoreRef.name".to_owned(),
        ResolveError::StoreNotFound { kind, .. } => format!(
            "create it, or point spec.secretStoreRef at an existing store (kubectl get {} {})",
            if *kind == "ClusterSecretStore" { "clustersecretstores" } else { "secretstores" },
            if *kind == "ClusterSecretStore" { String::new() } else { format!("-n {namespace}") }
        ),
        ResolveError::NamespaceNotAdmitted { .. } => format!(
            "add namespace {namespace:?} to the ClusterSecretStore's spec.conditions (namespaces, namespaceSelector or namespaceRegexes), or use another store"
        ),
        ResolveError::InvalidCondition { .. } => {
            "fix the ClusterSecretStore's spec.conditions".to_owned()
        }
        ResolveError::OtherControllerClass { .. } => {
            "another controller handles this store; run secret-sync with --controller-class set to it, or clear spec.controller".to_owned()
        }
    };
    Finding::problem(Step::Store, e.to_string(), fix)
}

fn auth_findings(facts: &Facts, store: &StoreObject, out: &mut Vec<Finding>) {
    let aws = match store.spec.provider.choice() {
        ProviderChoice::Aws(aws) => aws,
        ProviderChoice::Fake(_) => {
            out.push(Finding::ok(
                Step::Authentication,
                "fake provider: values live in the store, no authentication",
            ));
            return;
        }
        ProviderChoice::Unsupported(name) => {
            out.push(Finding::problem(
                Step::Store,
                format!("provider {name:?} is not supported by secret-sync"),
                "use provider aws (SecretsManager or ParameterStore) or fake",
            ));
            return;
        }
        ProviderChoice::Missing | ProviderChoice::Ambiguous(_) => {
            out.push(Finding::problem(
                Step::Store,
                "the store must name exactly one provider",
                "keep one provider block in spec.provider",
            ));
            return;
        }
    };
    let service = match aws.service {
        AwsService::SecretsManager => "Secrets Manager",
        AwsService::ParameterStore => "Parameter Store",
    };
    let roles = aws
        .additional_roles
        .iter()
        .chain(aws.role.iter())
        .map(String::as_str)
        .collect::<Vec<_>>();
    let chain = if roles.is_empty() {
        String::new()
    } else {
        format!(", then assumes {}", roles.join(" → "))
    };
    let auth = aws.auth.as_ref();
    match (
        auth.and_then(|a| a.jwt.as_ref()),
        auth.and_then(|a| a.secret_ref.as_ref()),
    ) {
        (Some(_), _) => match &facts.service_account {
            Some(sa) if !sa.exists => out.push(Finding::problem(
                Step::Authentication,
                format!("ServiceAccount {}/{} (auth.jwt.serviceAccountRef) does not exist", sa.namespace, sa.name),
                format!("create it with the annotation {ROLE_ARN_ANNOTATION}: <role ARN>, or fix the reference"),
            )),
            Some(sa) => match &sa.role_arn {
                None => out.push(Finding::problem(
                    Step::Authentication,
                    format!("ServiceAccount {}/{} has no {ROLE_ARN_ANNOTATION} annotation", sa.namespace, sa.name),
                    format!("kubectl annotate serviceaccount -n {} {} {ROLE_ARN_ANNOTATION}=<role ARN>", sa.namespace, sa.name),
                )),
                Some(role) => out.push(Finding::ok(
                    Step::Authentication,
                    format!("{service} as ServiceAccount {}/{}: AssumeRoleWithWebIdentity into {role}{chain}", sa.namespace, sa.name),
                )),
            },
            None => out.push(Finding::problem(
                Step::Authentication,
                "auth.jwt names no serviceAccountRef",
                "set auth.jwt.serviceAccountRef.name",
            )),
        },
        (None, Some(_)) => match &facts.credentials {
            Some(c) if !c.exists => out.push(Finding::problem(
                Step::Authentication,
                format!("credentials Secret {}/{} (auth.secretRef) does not exist", c.namespace, c.name),
                "create it with the access key id and secret access key, or prefer IRSA (no auth block)",
            )),
            Some(c) if !c.missing_keys.is_empty() => out.push(Finding::problem(
                Step::Authentication,
                format!("credentials Secret {}/{} lacks key(s) {}", c.namespace, c.name, c.missing_keys.join(", ")),
                "add the keys, or fix the key names in auth.secretRef",
            )),
            Some(c) => out.push(Finding::ok(
                Step::Authentication,
                format!("{service} with static keys from Secret {}/{}{chain}", c.namespace, c.name),
            )),
            None => out.push(Finding::problem(
                Step::Authentication,
                "auth.secretRef names no Secret",
                "set accessKeyIDSecretRef and secretAccessKeySecretRef",
            )),
        },
        (None, None) => out.push(Finding::ok(
            Step::Authentication,
            format!(
                "{service} with the operator's own identity (IRSA or Pod Identity of its ServiceAccount){chain}"
            ),
        )),
    }
}

/// The last sync's outcome, from the Ready condition the controller wrote ("Category: message").
fn provider_findings(facts: &Facts, out: &mut Vec<Finding>) {
    let ready = facts
        .es
        .status
        .as_ref()
        .and_then(|s| crate::api::condition::find(&s.conditions, "Ready"));
    let Some(ready) = ready else {
        out.push(Finding::problem(
            Step::Provider,
            "no sync has been reported yet (no Ready condition)",
            "check that secret-sync is running and handles this store's controller class (kubectl logs)",
        ));
        return;
    };
    let message = ready.message.clone().unwrap_or_default();
    let reason = ready.reason.clone().unwrap_or_default();
    if ready.status == ConditionStatus::True {
        out.push(Finding::ok(Step::Provider, format!("{reason}: {message}")));
        return;
    }
    let category = message.split_once(": ").map_or("", |(c, _)| c);
    let fix = match category {
        "NotFound" | "VersionNotFound" | "DeletionScheduled" => {
            "check the remote key (and version) exists in the provider, in the store's region and under its prefix"
        }
        "AccessDenied" => {
            "grant the identity above read access to that key (secretsmanager:GetSecretValue / BatchGetSecretValue, ssm:GetParameters, kms:Decrypt)"
        }
        "AuthenticationFailed" => {
            "the credentials are wrong or expired: check the role's trust policy (IRSA: the cluster's OIDC provider and this ServiceAccount)"
        }
        "Throttled" | "Unavailable" => {
            "a passing provider problem: secret-sync retries with backoff and keeps the Secret as it is"
        }
        "PropertyNotFound" | "InvalidJSON" | "DecodeFailed" | "InvalidSecretKey" => {
            "the remote value does not have the shape the spec expects: fix remoteRef.property / decodingStrategy, or the remote value"
        }
        "SecretOwnedByOther" | "SecretImmutable" => "see the target Secret below",
        "Unsupported" | "InvalidSpec" => "change the spec (see above)",
        "GeneratorNotFound" => {
            "create the generator the message names, in the ExternalSecret's namespace (or a ClusterGenerator)"
        }
        "UnsupportedGenerator" | "InvalidGeneratorSpec" => {
            "use an ECRAuthorizationToken or Password generator (or a ClusterGenerator of those kinds) with a valid spec"
        }
        "StoreNotFound" | "NamespaceNotAdmitted" => "see the store above",
        _ => "see the message; the Events below may say more",
    };
    out.push(Finding::problem(
        Step::Provider,
        format!("last sync failed: {message}"),
        fix,
    ));
}

fn target_findings(facts: &Facts, out: &mut Vec<Finding>) {
    let es = &facts.es;
    let name = es.target_name();
    let t = &facts.target;
    let creation = es.spec.target.creation_policy;
    let finding = if let Some(other) = &t.other_controller {
        Finding::problem(
            Step::Target,
            format!(
                "Secret {name:?} is controlled by ExternalSecret {other:?}; this one does not write it"
            ),
            "give this ExternalSecret another target.name, or remove the other one",
        )
    } else if let Some(owner) = &t.foreign_owner {
        Finding::problem(
            Step::Target,
            format!("Secret {name:?} is controlled by {owner}"),
            "use another target.name; two controllers of one Secret overwrite each other",
        )
    } else if !t.exists {
        match creation {
            CreationPolicy::Merge => Finding::problem(
                Step::Target,
                format!(
                    "Secret {name:?} does not exist; creationPolicy Merge only adds keys to an existing Secret"
                ),
                "create the Secret, or use creationPolicy Owner",
            ),
            CreationPolicy::None => {
                Finding::info(Step::Target, "creationPolicy None: no Secret is written")
            }
            _ => Finding::info(
                Step::Target,
                format!("Secret {name:?} does not exist yet; it is created at the next sync"),
            ),
        }
    } else if t.immutable && es.spec.target.immutable {
        Finding::info(
            Step::Target,
            format!(
                "Secret {name:?} is immutable: a changed source is not applied; delete the Secret to have it re-created"
            ),
        )
    } else if t.immutable {
        Finding::problem(
            Step::Target,
            format!("Secret {name:?} is immutable: its data cannot be changed"),
            "delete it (it is re-created), or remove immutable",
        )
    } else {
        Finding::ok(
            Step::Target,
            format!(
                "Secret {name:?} exists{}",
                if t.managed_by_us {
                    ", written by secret-sync"
                } else {
                    ""
                }
            ),
        )
    };
    out.push(finding);
}

fn event_findings(facts: &Facts, out: &mut Vec<Finding>) {
    if facts.events.is_empty() {
        out.push(Finding::info(Step::Events, "no Events recorded"));
    }
    for e in facts.events.iter().rev().take(5).rev() {
        out.push(Finding::info(
            Step::Events,
            format!("{} {}: {}", e.type_, e.reason, e.note),
        ));
    }
}

/// The findings as text for a person: one line each, the fix indented below.
pub fn render_text(es: &ExternalSecret, findings: &[Finding]) -> String {
    let ready = es
        .status
        .as_ref()
        .and_then(|s| crate::api::condition::find(&s.conditions, "Ready"))
        .map_or("no status yet".to_owned(), |c| {
            format!(
                "Ready={:?} {}",
                c.status,
                c.reason.clone().unwrap_or_default()
            )
        });
    let mut out = format!(
        "ExternalSecret {}/{}: {ready}\n",
        es.metadata.namespace.clone().unwrap_or_default(),
        es.metadata.name.clone().unwrap_or_default()
    );
    for f in findings {
        let mark = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Problem => "FAIL",
            Verdict::Info => "info",
        };
        out.push_str(&format!("  [{mark}] {:?}: {}\n", f.step, f.what));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("         fix: {fix}\n"));
        }
    }
    out
}
