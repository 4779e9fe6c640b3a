//! docs/install-eks.md: the manifests a user copies are valid for our API, and the IAM documents
//! are valid JSON that say what the guide promises (least privilege, IRSA bound to one account).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use secret_sync::api::{ExternalSecret, SecretStore};
use serde::Deserialize;
use serde_json::Value;

fn guide() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/install-eks.md");
    std::fs::read_to_string(path).expect("docs/install-eks.md")
}

/// Fenced code blocks of the given language, also inside list items (indented fences; the fence's
/// indentation is removed from every line of the block).
fn blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in guide().lines() {
        match current.as_mut() {
            None if line.trim() == fence => {
                current = Some((line.len() - line.trim_start().len(), String::new()));
            }
            None => {}
            Some(_) if line.trim() == "```" => out.extend(current.take().map(|(_, text)| text)),
            Some((indent, text)) => {
                text.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                text.push('\n');
            }
        }
    }
    out
}

fn json_blocks() -> Vec<Value> {
    blocks("json")
        .iter()
        .map(|b| {
            serde_json::from_str(b)
                .unwrap_or_else(|e| panic!("invalid JSON in the guide ({e}):\n{b}"))
        })
        .collect()
}

#[test]
fn example_manifests_are_valid_for_our_api() {
    let mut stores = 0;
    let mut external_secrets = 0;
    for block in blocks("yaml") {
        for document in serde_yaml_ng::Deserializer::from_str(&block) {
            let value = serde_yaml_ng::Value::deserialize(document).unwrap();
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("SecretStore") => {
                    let store: SecretStore = serde_yaml_ng::from_value(value).unwrap();
                    let aws = store.spec.provider.aws.as_ref().expect("an AWS store");
                    assert!(
                        aws.auth.is_none(),
                        "the guide's store uses the operator's IRSA role"
                    );
                    stores += 1;
                }
                Some("ExternalSecret") => {
                    let _: ExternalSecret = serde_yaml_ng::from_value(value).unwrap();
                    external_secrets += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!((stores, external_secrets), (1, 1));
}

#[test]
fn iam_policy_only_reads() {
    let policies = json_blocks();
    let policy = policies
        .iter()
        .find(|p| p["Statement"][0]["Action"].is_array())
        .expect("the permissions policy");
    let mut actions = Vec::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        let these: Vec<String> = match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            Value::Array(list) => list
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
            other => panic!("unexpected Action {other}"),
        };
        if statement["Resource"] == "*" {
            for action in &these {
                assert!(
                    [
                        "ecr:GetAuthorizationToken",
                        "secretsmanager:BatchGetSecretValue",
                        "secretsmanager:ListSecrets",
                        "ssm:DescribeParameters"
                    ]
                    .contains(&action.as_str()),
                    "only calls without resource-level permissions may use Resource \"*\": {statement}"
                );
            }
        }
        actions.extend(these);
    }
    actions.sort();
    assert_eq!(
        actions,
        [
            "ecr:GetAuthorizationToken",
            "kms:Decrypt",
            "secretsmanager:BatchGetSecretValue",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:ListSecrets",
            "ssm:DescribeParameters",
            "ssm:GetParameter",
            "ssm:GetParameters",
            "ssm:GetParametersByPath",
        ]
    );
}

#[test]
fn trust_policy_binds_the_role_to_the_charts_service_account_only() {
    let policies = json_blocks();
    let trust = policies
        .iter()
        .find(|p| p["Statement"][0]["Action"] == "sts:AssumeRoleWithWebIdentity")
        .expect("the IRSA trust policy");
    let statement = &trust["Statement"][0];
    assert!(
        statement["Principal"]["Federated"]
            .as_str()
            .unwrap()
            .contains(":oidc-provider/oidc.eks.")
    );
    let conditions = statement["Condition"]["StringEquals"].as_object().unwrap();
    let condition = |suffix: &str| {
        conditions
            .iter()
            .find(|(key, _)| key.ends_with(suffix))
            .map(|(_, value)| value.as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {suffix} condition"))
    };
    // The chart's ServiceAccount for `helm install secret-sync --namespace secret-sync`.
    assert_eq!(
        condition(":sub"),
        "system:serviceaccount:secret-sync:secret-sync"
    );
    assert_eq!(condition(":aud"), "sts.amazonaws.com");
}

#[test]
fn pod_identity_trust_policy_is_for_eks_pod_identity_and_the_charts_service_account() {
    let policies = json_blocks();
    let trust = policies
        .iter()
        .find(|p| p["Statement"][0]["Principal"]["Service"] == "pods.eks.amazonaws.com")
        .expect("the Pod Identity trust policy");
    let statement = &trust["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    let mut actions: Vec<&str> = statement["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, ["sts:AssumeRole", "sts:TagSession"]);
    let conditions = &statement["Condition"]["StringEquals"];
    assert_eq!(
        conditions["aws:RequestTag/kubernetes-namespace"],
        "secret-sync"
    );
    assert_eq!(
        conditions["aws:RequestTag/kubernetes-service-account"],
        "secret-sync"
    );
    let guide = guide();
    assert!(guide.contains("aws eks create-pod-identity-association"));
    assert!(
        guide.contains("Does not work with Pod Identity: per-store `auth.jwt.serviceAccountRef`"),
        "the guide says what Pod Identity cannot do"
    );
}
