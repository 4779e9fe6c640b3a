//! Generators end to end (`generators.external-secrets.io/v1alpha1`): the corpus manifests that use
//! ECRAuthorizationToken and Password, applied as written to the fake API server, synced by the
//! running controller against moto. What a user sees: Secret bytes, Ready conditions, and when the
//! ECR token is renewed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use secret_sync::controller;
use support::cluster::{TestCluster, wait_for};
use support::moto::{ACCOUNT, Moto, within_timeout};

fn corpus(file: &str) -> String {
    let path = support::corpus_files()
        .into_iter()
        .find(|p| p.ends_with(file))
        .unwrap_or_else(|| panic!("corpus file {file}"));
    std::fs::read_to_string(path).unwrap()
}

async fn cluster_with_moto(moto: &Moto) -> TestCluster {
    let mut cluster = TestCluster::without_controller().await;
    let providers = moto.providers(Some(cluster.client.clone())).await;
    cluster.start_controller_with(controller::Config::default(), providers, None);
    cluster
}

fn text(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("data");
    let value = data
        .get(key)
        .unwrap_or_else(|| panic!("key {key:?} in {:?}", data.keys()));
    String::from_utf8(value.0.clone()).unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Corpus 019 (the generator, with both auth forms as the doc shows them: ESO then uses secretRef)
/// and 020 (a dockerconfigjson template over it, no secretStoreRef), applied unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_ecr_generator_renders_a_dockerconfigjson_from_moto() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.ecr_token_lifetime(12 * 3600).await;
        let cluster = cluster_with_moto(&moto).await;
        cluster
            .apply(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: my-aws-creds, namespace: default}\nstringData: {key-id: testing, access-secret: testing}\n",
            )
            .await;
        cluster
            .apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: oci-token-sync, namespace: default}\n")
            .await;
        cluster.apply(&corpus("019-aws-ecr-generator.yaml")).await;
        cluster
            .apply(&corpus(
                "020-aws-ecr-generator-externalsecret-dockerconfigjson.yaml",
            ))
            .await;

        cluster
            .wait_ready("default", "ecr-secret", "True", "SecretSynced")
            .await;
        let secret = cluster.secret("default", "ecr-secret").await.unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        // moto answers user AWS, password "<account>-auth-token", in the generator's region.
        let password = format!("{ACCOUNT}-auth-token");
        let auth = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("AWS:{password}"),
        );
        let registry = format!("{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(
            text(&secret, ".dockerconfigjson"),
            format!(
                "{{\n  \"auths\": {{\n    \"{registry}\": {{\n      \"username\": \"AWS\",\n      \"password\": \"{password}\",\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n"
            )
        );
        let annotations = secret.metadata.annotations.clone().unwrap();
        let expires: u64 = annotations["expiresAt"].parse().unwrap();
        let lifetime = expires.saturating_sub(unix_now());
        assert!(
            (12 * 3600 - 120..=12 * 3600).contains(&lifetime),
            "expires_at is Unix seconds, 12h ahead: {expires}"
        );
        assert!(annotations.contains_key("secret-sync.io/expires-at"));
        // ESO's generator uses secretRef when both forms are given: keys from the Secret, then the
        // role assumed on top; no ServiceAccount token was requested.
        assert_eq!(moto.count("ecr.GetAuthorizationToken").await, 1);
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 0);
        assert_eq!(moto.count("sts.AssumeRole").await, 1);
    })
    .await;
}

/// moto answering 15-second ECR tokens, and the first one written by an ExternalSecret `pull` with
/// this `refreshInterval` and `target` over the ECRAuthorizationToken `ecr` (no auth: the operator's
/// identity). A Merge target is created first, holding a key of its own.
async fn first_short_token(refresh_interval: &str, target: &str) -> (Moto, TestCluster, Secret) {
    let moto = Moto::start().await;
    moto.ecr_token_lifetime(15).await;
    let cluster = cluster_with_moto(&moto).await;
    if target.contains("Merge") {
        cluster
            .apply("apiVersion: v1\nkind: Secret\nmetadata: {name: pull, namespace: default}\nstringData: {url: oci://registry.example.com}\n")
            .await;
    }
    cluster
        .apply(
            "apiVersion: generators.external-secrets.io/v1alpha1\nkind: ECRAuthorizationToken\nmetadata: {name: ecr, namespace: default}\nspec: {region: us-east-1}\n",
        )
        .await;
    cluster
        .apply(&support::cluster::external_secret_yaml(
            "default",
            "pull",
            &format!(
                "  refreshInterval: {refresh_interval}\n  target: {{{target}}}\n  dataFrom:\n  - sourceRef: {{generatorRef: {{kind: ECRAuthorizationToken, name: ecr}}}}"
            ),
        ))
        .await;
    let first = wait_for("the first token", Duration::from_secs(15), || async {
        let s = cluster.secret("default", "pull").await?;
        s.data.as_ref()?.get("expires_at")?;
        Some(s)
    })
    .await;
    (moto, cluster, first)
}

/// The Unix second at which the Secret `pull` was seen holding a token newer than `first_expiry`.
/// The wait is generous; the callers' assertions hold the renewal to the expiry.
async fn renewed_after(cluster: &TestCluster, first_expiry: u64) -> u64 {
    wait_for("a renewed token", Duration::from_secs(20), || async {
        let s = cluster.secret("default", "pull").await?;
        let expiry: u64 = text(&s, "expires_at").parse().ok()?;
        (expiry > first_expiry).then_some(unix_now())
    })
    .await
}

/// ECR tokens expire (12 h on AWS): the Secret gets a new one before `expires_at`, even though
/// `refreshInterval` is 24h. moto's token lifetime is set to 15 s here; renewal is due after 10 s.
#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_token_is_renewed_before_it_expires_even_with_a_24h_refresh_interval() {
    within_timeout(async {
        let (moto, cluster, first) = first_short_token("24h", "").await;
        let first_expiry: u64 = text(&first, "expires_at").parse().unwrap();
        assert_eq!(text(&first, "username"), "AWS");
        assert_eq!(
            text(&first, "proxy_endpoint"),
            format!("https://{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")
        );

        let renewed = renewed_after(&cluster, first_expiry).await;
        assert!(
            renewed < first_expiry,
            "renewed at {renewed}, after the old token expired at {first_expiry}"
        );
        assert!(
            renewed + 8 >= first_expiry,
            "renewed at {renewed}: not before two thirds of the 15 s lifetime ({first_expiry})"
        );
        assert_eq!(moto.count("ecr.GetAuthorizationToken").await, 2);
        cluster
            .wait_ready("default", "pull", "True", "SecretSynced")
            .await;
    })
    .await;
}

/// With `refreshInterval: "0"` nothing else would ever sync again; a restarted operator (no memory of
/// the token) still renews it in time, from the expiry recorded on the Secret: one it owns (in the
/// cache), or one it merges into (read once).
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_renews_the_token_from_the_expiry_on_the_secret() {
    restarted_operator_renews("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_renews_a_token_merged_into_a_secret_it_does_not_own() {
    restarted_operator_renews("creationPolicy: Merge").await;
}

async fn restarted_operator_renews(target: &str) {
    within_timeout(async {
        let (moto, mut cluster, first) = first_short_token("\"0\"", target).await;
        let first_expiry: u64 = text(&first, "expires_at").parse().unwrap();
        cluster
            .wait_ready("default", "pull", "True", "SecretSynced")
            .await;
        cluster.stop_controller().await;
        let providers = moto.providers(Some(cluster.client.clone())).await;
        cluster.start_controller_with(controller::Config::default(), providers, None);

        let renewed = renewed_after(&cluster, first_expiry).await;
        assert!(
            renewed < first_expiry,
            "renewed at {renewed}, after the old token expired at {first_expiry}"
        );
        // One token at the first sync, one renewal: the restart itself fetched nothing.
        assert_eq!(moto.count("ecr.GetAuthorizationToken").await, 2);
        if target.contains("Merge") {
            let secret = cluster.secret("default", "pull").await.unwrap();
            assert_eq!(text(&secret, "url"), "oci://registry.example.com");
        }
    })
    .await;
}

/// Corpus 036: a Password generator feeding a template next to values from Secrets Manager, with
/// `refreshInterval: "0"`. The store `keycloak` (a kubernetes-provider store in the source repo, not
/// in the corpus) is an AWS ClusterSecretStore here; `aws-secretsmanager` is corpus 032.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_password_generator_is_generated_once_and_kept_under_refresh_interval_0() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string(
            "keycloak-clients",
            r#"{"ARGOCD_SESSION_TOKEN":"tok","BACKSTAGE_CLIENT_SECRET":"bcs","ARGOCD_ADMIN_PASSWORD":"adm"}"#,
        )
        .await;
        moto.put_secret_string(
            "ref-impl/github-app",
            r#"{"backstage-github":{"appId":"42","clientId":"cid","clientSecret":"cs","webhookSecret":"ws","privateKey":"-----BEGIN KEY-----\nabc\n-----END KEY-----","webhookUrl":"https://hooks.example.com"}}"#,
        )
        .await;
        let mut cluster = cluster_with_moto(&moto).await;
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: backstage}\n")
            .await;
        cluster
            .apply(&corpus("032-aws-sm-clustersecretstore-ambient-no-auth.yaml").replace("us-west-2", "us-east-1"))
            .await;
        cluster
            .apply(
                "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: keycloak}\nspec: {provider: {aws: {service: SecretsManager, region: us-east-1}}}\n",
            )
            .await;
        cluster
            .apply(&corpus(
                "036-aws-sm-externalsecret-generator-plus-data-nindent.yaml",
            ))
            .await;

        let secret = cluster
            .wait_secret_value("backstage", "backstage-env-vars", "ARGOCD_AUTH_TOKEN", b"argocd.token=tok")
            .await;
        assert_eq!(text(&secret, "ARGOCD_ADMIN_PASSWORD"), "adm");
        assert_eq!(text(&secret, "BACKSTAGE_CLIENT_SECRET"), "bcs");
        let password = text(&secret, "POSTGRES_PASSWORD");
        // The generator's spec: length 48, 5 digits, 5 of "/-+", the rest letters.
        assert_eq!(password.len(), 48, "{}", password.len());
        assert_eq!(password.bytes().filter(u8::is_ascii_digit).count(), 5);
        assert_eq!(password.bytes().filter(|b| b"/-+".contains(b)).count(), 5);
        assert_eq!(password.bytes().filter(u8::is_ascii_alphabetic).count(), 38);
        let integrations = cluster
            .wait_secret_value("backstage", "integrations", "github-integration.yaml", b"appId: 42\nclientId: cid\nclientSecret: cs\nwebhookUrl: https://hooks.example.com\nwebhookSecret: ws\nprivateKey: | \n  -----BEGIN KEY-----\n  abc\n  -----END KEY-----\n")
            .await;
        assert!(integrations.data.is_some());
        cluster
            .wait_ready("backstage", "backstage-env-vars", "True", "SecretSynced")
            .await;

        // refreshInterval "0": an edit of the ExternalSecret, or an operator restart, keeps the password.
        let es_api: Api<secret_sync::api::ExternalSecret> =
            Api::namespaced(cluster.client.clone(), "backstage");
        es_api
            .patch(
                "backstage-env-vars",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"touched": "yes"}}})),
            )
            .await
            .unwrap();
        cluster.stop_controller().await;
        let providers = moto.providers(Some(cluster.client.clone())).await;
        cluster.start_controller_with(controller::Config::default(), providers, None);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let kept = cluster.secret("backstage", "backstage-env-vars").await.unwrap();
        assert_eq!(text(&kept, "POSTGRES_PASSWORD"), password, "the password is kept");

        // Deleting the Secret makes a new one, with a new password (ESO: a sync runs the generator).
        Api::<Secret>::namespaced(cluster.client.clone(), "backstage")
            .delete("backstage-env-vars", &DeleteParams::default())
            .await
            .unwrap();
        let fresh = wait_for("a re-created Secret", Duration::from_secs(15), || async {
            let s = cluster.secret("backstage", "backstage-env-vars").await?;
            s.data.as_ref()?.get("POSTGRES_PASSWORD")?;
            Some(s)
        })
        .await;
        let new_password = text(&fresh, "POSTGRES_PASSWORD");
        assert_eq!(new_password.len(), 48);
        assert_ne!(new_password, password, "a new sync runs the generator again");
    })
    .await;
}

/// Periodic: every refresh generates a new password (ESO), but an operator restart before the
/// interval has passed does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_periodic_password_is_kept_across_an_operator_restart() {
    let limit = support::cluster::scaled(Duration::from_secs(60));
    tokio::time::timeout(limit, async {
        let mut cluster = TestCluster::start().await;
        cluster
            .apply(
                "apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: db, namespace: default}\nspec: {}\n",
            )
            .await;
        cluster
            .apply(&support::cluster::external_secret_yaml(
                "default",
                "db",
                "  refreshInterval: 1h\n  dataFrom:\n  - sourceRef: {generatorRef: {kind: Password, name: db}}",
            ))
            .await;
        cluster
            .wait_ready("default", "db", "True", "SecretSynced")
            .await;
        let before = text(&cluster.secret("default", "db").await.unwrap(), "password");
        assert_eq!(before.len(), 24);
        cluster.stop_controller().await;
        cluster.start_controller(controller::Config::default(), None);
        // A negative: a fixed window in which a restart sync would have written a new password.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = text(&cluster.secret("default", "db").await.unwrap(), "password");
        assert_eq!(after, before, "the restart kept the password");
    })
    .await
    .expect("within time limit");
}

/// Corpus 042 (the generator, jwt auth through a ServiceAccount's IRSA role) and 041 (written as
/// v1beta1; applied here as v1): creationPolicy Merge adds the token to an existing ArgoCD Secret.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_ecr_generator_with_service_account_merges_into_an_existing_secret() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.ecr_token_lifetime(12 * 3600).await;
        let cluster = cluster_with_moto(&moto).await;
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n")
            .await;
        cluster
            .apply(&format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: argocd-server\n  namespace: argocd\n  annotations: {{eks.amazonaws.com/role-arn: 'arn:aws:iam::{ACCOUNT}:role/argocd-ecr'}}\n"
            ))
            .await;
        cluster
            .apply(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: argocd-private-ecr-credentials\n  namespace: argocd\n  labels: {argocd.argoproj.io/secret-type: repository}\nstringData: {url: oci://registry.example.com, type: helm}\n",
            )
            .await;
        cluster.apply(&corpus("042-aws-ecr-generator-jwt.yaml")).await;
        cluster
            .apply(
                &corpus("041-aws-ecr-generator-externalsecret-merge-v1beta1.yaml")
                    .replace("external-secrets.io/v1beta1", "external-secrets.io/v1"),
            )
            .await;

        let secret = cluster
            .wait_secret_value(
                "argocd",
                "argocd-private-ecr-credentials",
                "password",
                format!("{ACCOUNT}-auth-token").as_bytes(),
            )
            .await;
        assert_eq!(text(&secret, "username"), "AWS");
        assert_eq!(text(&secret, "url"), "oci://registry.example.com", "kept");
        assert_eq!(text(&secret, "type"), "helm", "kept");
        // mergePolicy Merge: the generator's own keys stay next to the template's (ESO).
        let keys: BTreeSet<&str> = secret
            .data
            .as_ref()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["expires_at", "password", "proxy_endpoint", "type", "url", "username"])
        );
        cluster
            .wait_ready(
                "argocd",
                "argocd-secrets-ecr-auth-token-external-secret",
                "True",
                "SecretSynced",
            )
            .await;
        assert_eq!(moto.count("sts.AssumeRoleWithWebIdentity").await, 1);
        assert_eq!(moto.count("ecr.GetAuthorizationToken").await, 1);
    })
    .await;
}

/// Generator kinds we do not run are refused in status, naming the kind; a generator that does not
/// exist yet is retried, and syncs once it is created; a ClusterGenerator serves every namespace.
#[tokio::test(flavor = "multi_thread")]
async fn unsupported_kinds_are_refused_by_name_and_missing_generators_are_awaited() {
    let limit = support::cluster::scaled(Duration::from_secs(60));
    tokio::time::timeout(limit, async {
        let cluster = TestCluster::start().await;
        cluster
            .apply(&support::cluster::external_secret_yaml(
                "default",
                "uuid",
                "  dataFrom:\n  - sourceRef: {generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: UUID, name: u}}",
            ))
            .await;
        let ready = cluster
            .wait_ready("default", "uuid", "False", "SecretSyncedError")
            .await;
        let message = ready.message.unwrap();
        assert!(
            message.starts_with("UnsupportedGenerator: ") && message.contains("\"UUID\""),
            "{message}"
        );

        cluster
            .apply(&support::cluster::external_secret_yaml(
                "default",
                "db",
                "  dataFrom:\n  - sourceRef: {generatorRef: {kind: Password, name: db}}",
            ))
            .await;
        let ready = cluster
            .wait_ready("default", "db", "False", "SecretSyncedError")
            .await;
        assert!(
            ready.message.as_deref().unwrap().starts_with("GeneratorNotFound: spec.dataFrom[0]"),
            "{ready:?}"
        );
        cluster
            .apply(
                "apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: db, namespace: default}\nspec: {length: 20, symbols: 0, noUpper: true}\n",
            )
            .await;
        let secret = wait_for("the generated password", Duration::from_secs(30), || async {
            let s = cluster.secret("default", "db").await?;
            s.data.as_ref()?.get("password")?;
            Some(s)
        })
        .await;
        let password = text(&secret, "password");
        assert_eq!(password.len(), 20);
        assert!(password.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(password.bytes().filter(u8::is_ascii_digit).count(), 5);

        cluster
            .apply(
                "apiVersion: generators.external-secrets.io/v1alpha1\nkind: ClusterGenerator\nmetadata: {name: shared}\nspec: {kind: Password, generator: {passwordSpec: {length: 16, encoding: hex, secretKeys: [a, b]}}}\n",
            )
            .await;
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n")
            .await;
        cluster
            .apply(&support::cluster::external_secret_yaml(
                "team-b",
                "shared",
                "  dataFrom:\n  - sourceRef: {generatorRef: {kind: ClusterGenerator, name: shared}}",
            ))
            .await;
        let secret = wait_for("the ClusterGenerator's keys", Duration::from_secs(15), || async {
            let s = cluster.secret("team-b", "shared").await?;
            s.data.as_ref()?.get("b")?;
            Some(s)
        })
        .await;
        assert_eq!(text(&secret, "a").len(), 32, "16 bytes as hex");
        assert_ne!(text(&secret, "a"), text(&secret, "b"));
    })
    .await
    .expect("within time limit");
}

/// Corpus 035: the same Password generator twice plus another, each entry renamed by
/// `rewrite.transform`, under `refreshInterval: "0"`.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_password_generators_renamed_by_rewrite_feed_a_template() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string(
            "ref-impl/config",
            r#"{"domain":"example.com","path_routing":"true"}"#,
        )
        .await;
        let cluster = cluster_with_moto(&moto).await;
        cluster
            .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: keycloak}\n")
            .await;
        cluster
            .apply(
                &corpus("032-aws-sm-clustersecretstore-ambient-no-auth.yaml")
                    .replace("us-west-2", "us-east-1"),
            )
            .await;
        cluster
            .apply(&corpus(
                "035-aws-sm-externalsecret-password-generator-rewrite-transform.yaml",
            ))
            .await;
        let secret = cluster
            .wait_secret_value(
                "keycloak",
                "keycloak-config",
                "ARGO_CD_URL",
                b"example.com/argocd",
            )
            .await;
        assert_eq!(
            text(&secret, "KEYCLOAK_URL"),
            "http://keycloak.keycloak.svc.cluster.local/keycloak"
        );
        let postgres = text(&secret, "POSTGRES_PASSWORD");
        let admin = text(&secret, "KEYCLOAK_ADMIN_PASSWORD");
        let user = text(&secret, "USER1_PASSWORD");
        for p in [&postgres, &admin, &user] {
            assert_eq!(p.len(), 32);
            assert_eq!(p.bytes().filter(u8::is_ascii_digit).count(), 5);
        }
        assert_ne!(postgres, admin, "each entry runs the generator again (ESO)");
        assert_eq!(user.bytes().filter(|b| *b == b'-').count(), 5);
    })
    .await;
}
