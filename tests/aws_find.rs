//! `dataFrom.find` and `rewrite` against moto: Secrets Manager by name, tags (including a tag key with
//! '/') and path, Parameter Store by path (recursive) and tags, secrets pending deletion excluded, the
//! exact number of AWS calls for 100 matches, the limit; then end to end through the controller on
//! the fake API server: an over-limit find and a find that stops matching leave the Secret as it is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_ssm::types::ParameterType;
use secret_sync::controller::{self, build};
use secret_sync::provider::{self, SecretProvider};
use support::cluster::{data_of, pairs, wait_for};
use support::moto::{Moto, cluster_on_moto_with, es_spec, store, within_timeout};

const SM: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: sm, namespace: default}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n";
const PS: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: ps, namespace: default}\nspec:\n  provider:\n    aws: {service: ParameterStore, region: us-east-1}\n";

async fn tagged(moto: &Moto, name: &str, value: &str, tags: &[(&str, &str)]) {
    let mut call = moto
        .secrets_manager()
        .await
        .create_secret()
        .name(name)
        .secret_string(value);
    for (k, v) in tags {
        call = call.tags(Tag::builder().key(*k).value(*v).build());
    }
    call.send().await.unwrap();
}

/// What one reconcile builds for `spec` (documents, finds, then the pure build step), as key -> text.
async fn build_keys(
    provider: &dyn SecretProvider,
    spec: &str,
    limit: usize,
) -> Result<BTreeMap<String, String>, build::BuildError> {
    let spec = es_spec(spec);
    build::check_supported(&spec)?;
    let fetched = provider::fetch_documents(provider, build::requests(&spec)).await;
    let found = provider::find_all(provider, build::finds(&spec), limit).await;
    let desired = build::desired_data_found(&spec, &fetched, &found)?;
    Ok(desired
        .data
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
        .collect())
}

#[tokio::test]
async fn secrets_manager_finds_by_name_tags_and_path_as_eso_names_them() {
    within_timeout(async {
        let moto = Moto::start().await;
        tagged(&moto, "team-a/db", "a-db", &[("team", "a"), ("env", "prod")]).await;
        tagged(&moto, "team-a/api", "a-api", &[("team", "a"), ("env", "dev")]).await;
        // Both tag keys and both values are there, but not as pairs: AWS's filters match it, ESO's
        // tags (key=value) do not.
        tagged(&moto, "team-x/crossed", "x", &[("team", "prod"), ("env", "a")]).await;
        tagged(&moto, "team-b/db", "b-db", &[("kubernetes.io/cluster/prod", "owned")]).await;
        tagged(&moto, "team-a/doomed", "gone", &[("team", "a"), ("env", "prod")]).await;
        moto.secrets_manager()
            .await
            .delete_secret()
            .secret_id("team-a/doomed")
            .recovery_window_in_days(7)
            .send()
            .await
            .unwrap();
        let providers = moto.providers(None).await;
        let sm = providers.for_store(&store(SM), "default").await.unwrap();

        let by_name = build_keys(sm.as_ref(), "dataFrom: [{find: {name: {regexp: '^team-a/'}}}]", 100).await;
        assert_eq!(
            by_name.unwrap(),
            pairs(&[("team-a_api", "a-api"), ("team-a_db", "a-db")]),
            "'/' converts to '_'; the secret pending deletion is not found"
        );
        let by_tags = build_keys(sm.as_ref(), "dataFrom: [{find: {tags: {team: a, env: prod}}}]", 100).await;
        assert_eq!(by_tags.unwrap(), pairs(&[("team-a_db", "a-db")]));
        let slash = build_keys(
            sm.as_ref(),
            "dataFrom: [{find: {tags: {kubernetes.io/cluster/prod: owned}, conversionStrategy: Unicode}}]",
            100,
        )
        .await;
        assert_eq!(slash.unwrap(), pairs(&[("team-b_U002f_db", "b-db")]));
        let by_path = build_keys(
            sm.as_ref(),
            "dataFrom: [{find: {path: team-a/, name: {regexp: db$}}, rewrite: [{regexp: {source: '^team-a/(?P<k>.*)', target: '${k}'}}]}]",
            100,
        )
        .await;
        assert_eq!(by_path.unwrap(), pairs(&[("db", "a-db")]));
        // A tag value AWS's ListSecrets filters refuse (non-ASCII) still finds its secret.
        tagged(&moto, "team-c/cafe", "c", &[("place", "café")]).await;
        let accented = build_keys(sm.as_ref(), "dataFrom: [{find: {tags: {place: café}}}]", 100).await;
        assert_eq!(accented.unwrap(), pairs(&[("team-c_cafe", "c")]));
        let none = build_keys(sm.as_ref(), "dataFrom: [{find: {tags: {team: nobody}}}]", 100).await;
        assert_eq!(none.unwrap(), pairs(&[]), "no match is no error");
    })
    .await;
}

#[tokio::test]
async fn a_hundred_matches_cost_one_list_page_and_five_batches_and_the_limit_reads_nothing() {
    within_timeout(async {
        let moto = Moto::start().await;
        for i in 0..100 {
            moto.put_secret_string(&format!("bulk/s{i:03}"), &format!("v{i}")).await;
        }
        moto.put_secret_string("other/s", "x").await;
        let providers = moto.providers(None).await;
        let sm = providers.for_store(&store(SM), "default").await.unwrap();
        moto.reset_counts().await;
        let keys = build_keys(sm.as_ref(), "dataFrom: [{find: {path: bulk/, name: {regexp: '.'}}}]", 1000)
            .await
            .unwrap();
        assert_eq!(keys.len(), 100);
        assert_eq!(keys["bulk_s042"], "v42");
        let counts = moto.counts().await;
        let list = counts.get("secretsmanager.ListSecrets").copied().unwrap_or(0);
        let batch = counts
            .get("secretsmanager.BatchGetSecretValue")
            .copied()
            .unwrap_or(0);
        let total: u64 = counts.values().sum();
        support::report(&format!(
            "[find] 100 matches on Secrets Manager: {list} ListSecrets + {batch} BatchGetSecretValue, {total} calls in all"
        ));
        assert_eq!((list, batch, total), (1, 5, 6), "{counts:?}");

        moto.reset_counts().await;
        let err = build_keys(sm.as_ref(), "dataFrom: [{find: {path: bulk/, name: {regexp: '.'}}}]", 99)
            .await
            .unwrap_err();
        assert_eq!(err.category(), "FindLimitExceeded");
        assert!(err.to_string().contains("more than 99"), "{err}");
        assert_eq!(moto.count("secretsmanager.BatchGetSecretValue").await, 0, "no value read");
    })
    .await;
}

#[tokio::test]
async fn parameter_store_finds_by_path_recursively_and_by_tags() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_parameter("/app/db/user", "admin", ParameterType::String)
            .await;
        moto.put_parameter("/app/db/pass", "s3cr3t", ParameterType::SecureString)
            .await;
        moto.put_parameter("/app/list", "a,b", ParameterType::StringList)
            .await;
        moto.put_parameter("/other/x", "x", ParameterType::String)
            .await;
        moto.tag_parameter("/other/x", "team", "x").await;
        let providers = moto.providers(None).await;
        let ps = providers.for_store(&store(PS), "default").await.unwrap();
        let by_path = build_keys(
            ps.as_ref(),
            "dataFrom: [{find: {path: /app, name: {regexp: '.*'}}}]",
            100,
        )
        .await;
        assert_eq!(
            by_path.unwrap(),
            pairs(&[
                ("_app_db_pass", "s3cr3t"),
                ("_app_db_user", "admin"),
                ("_app_list", "a,b")
            ]),
            "recursive, decrypted, named as ESO names them"
        );
        let by_name = build_keys(
            ps.as_ref(),
            "dataFrom: [{find: {name: {regexp: 'db/u'}}}]",
            100,
        )
        .await;
        assert_eq!(
            by_name.unwrap(),
            pairs(&[("_app_db_user", "admin")]),
            "path defaults to /"
        );
        let by_tags = build_keys(ps.as_ref(), "dataFrom: [{find: {tags: {team: x}}}]", 100).await;
        assert_eq!(by_tags.unwrap(), pairs(&[("_other_x", "x")]));
        let over = build_keys(
            ps.as_ref(),
            "dataFrom: [{find: {path: /app, name: {regexp: '.*'}}}]",
            2,
        )
        .await;
        assert_eq!(over.unwrap_err().category(), "FindLimitExceeded");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_or_matching_nothing_the_secret_is_kept_as_it_is() {
    within_timeout(async {
        let moto = Moto::start().await;
        for name in ["team/a", "team/b"] {
            tagged(&moto, name, &format!("{name}-v1"), &[("owner", "team")]).await;
        }
        let config = controller::Config {
            find_limit: 2,
            ..controller::Config::default()
        };
        let c = cluster_on_moto_with(&moto, config).await;
        c.apply(SM).await;
        let es = |name: &str, tags: &str| {
            support::cluster::external_secret_yaml(
                "default",
                name,
                &format!(
                    "  refreshInterval: 1s\n  secretStoreRef: {{name: sm}}\n  target: {{deletionPolicy: Delete}}\n  dataFrom:\n  - find: {{tags: {{{tags}}}}}\n    rewrite: [{{regexp: {{source: '^team/', target: ''}}}}]"
                ),
            )
        };
        c.apply(&es("limited", "owner: team")).await;
        c.apply(&es("vanishing", "only: me")).await;
        tagged(&moto, "team/c", "team/c-v1", &[("only", "me")]).await;
        c.wait_secret_value("default", "limited", "b", b"team/b-v1").await;
        c.wait_secret_value("default", "vanishing", "c", b"team/c-v1").await;

        // A changed value and a third match: over the limit of 2. Ready=False, nothing written.
        moto.put_secret_string("team/a", "team/a-v2").await;
        tagged(&moto, "team/d", "team/d-v1", &[("owner", "team")]).await;
        let ready = c.wait_ready("default", "limited", "False", "SecretSyncedError").await;
        let message = ready.message.unwrap();
        assert!(message.starts_with("FindLimitExceeded: "), "{message}");
        assert!(message.contains("more than 2"), "{message}");
        let kept = c.secret("default", "limited").await.expect("kept");
        assert_eq!(
            data_of(&kept),
            BTreeMap::from([("a".into(), "team/a-v1".into()), ("b".into(), "team/b-v1".into())]),
            "untouched: not even the changed value is written"
        );

        // The only match is deleted for good: the find matches nothing. deletionPolicy Delete does
        // not delete the Secret on that (no evidence that the source is gone, only that the find is).
        moto.secrets_manager()
            .await
            .delete_secret()
            .secret_id("team/c")
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
        let ready = wait_for("vanishing reports an empty find", std::time::Duration::from_secs(20), || async {
            let ready = c.ready("default", "vanishing").await?;
            ready.message.as_deref()?.contains("matched no remote secret").then_some(ready)
        })
        .await;
        assert_eq!(
            (format!("{:?}", ready.status), ready.reason.as_deref()),
            ("True".to_owned(), Some("SecretSynced"))
        );
        let kept = c.secret("default", "vanishing").await.expect("not deleted");
        assert_eq!(data_of(&kept), BTreeMap::from([("c".into(), "team/c-v1".into())]));
    })
    .await;
}

/// The corpus manifests that use find and rewrite, applied unchanged (their stores adapted to moto or
/// taken from the corpus), each giving the keys ESO gives for the same remote data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_find_and_rewrite_manifests_sync_with_esos_keys() {
    within_timeout(async {
        let moto = Moto::start().await;
        for (name, value) in [
            ("path/to/my/secrets/username", "u"),
            ("path/to/my/secrets/password", "p"),
            ("path/to/my/other", "not-matched-by-name"),
            ("path/to/yours/secrets/z", "not-under-path"),
            ("my-secrets-dev", r#"{"password":"bar"}"#),
            ("my-secrets-prod", r#"{"password":"safebar"}"#),
            ("productA/nginx/site1", r#"{"cert":"Q0VSVC0x"}"#),
            ("productA/nginx/site2", r#"{"cert":"Q0VSVC0y"}"#),
            ("productB/nginx/site3", r#"{"cert":"other"}"#),
        ] {
            moto.put_secret_string(name, value).await;
        }
        let c = cluster_on_moto_with(&moto, controller::Config::default()).await;
        c.apply(&SM.replace("name: sm", "name: backend")).await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: aws-secretsmanager}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n").await;
        c.apply(&support::corpus("061-fake-clustersecretstore.yaml")).await;
        let synced = |name: &'static str, want: &'static [(&'static str, &'static str)]| {
            let c = &c;
            async move {
                let want = pairs(want);
                wait_for(&format!("Secret {name} with ESO's keys"), std::time::Duration::from_secs(20), || async {
                    let s = c.secret("default", name).await?;
                    (data_of(&s) == want).then_some(())
                })
                .await;
            }
        };
        let mut checked = 0;
        c.apply(&support::corpus("067-generic-externalsecret-find-path-rewrite-remove-prefix.yaml")).await;
        synced("secret-to-be-created", &[("password", "p"), ("username", "u")]).await;
        checked += 1;
        c.apply(&support::corpus("068-generic-externalsecret-extract-rewrite-prefix-conflict.yaml")).await;
        synced("secret-to-be-created", &[("dev-password", "bar"), ("prod-password", "safebar")]).await;
        checked += 1;
        c.apply(&support::corpus("069-fake-externalsecret-find-all-rewrite-transform.yaml")).await;
        synced(
            "external-secret-transform",
            &[("ENV__FOO_BAR", "HELLO2"), ("ENV__FOO_BAZ", r#"{"john": "doe"}"#)],
        )
        .await;
        checked += 1;
        c.apply(&support::corpus("074-aws-sm-externalsecret-find-rewrite-templatefrom-literal-fromjson.yaml")).await;
        synced("nginx-certs", &[("site1", "Q0VSVC0x"), ("site2", "Q0VSVC0y")]).await;
        checked += 1;
        c.apply(&support::corpus("075-aws-sm-externalsecret-templatefrom-valuesdecodingstrategy.yaml")).await;
        synced("nginx-certs", &[("site1", "CERT-1"), ("site2", "CERT-2")]).await;
        checked += 1;

        // v1beta1 manifests from user reports, as written.
        for (name, value) in [("/aaa/eks/db", "aGk="), ("/aaa/eks/plain", "not base64!"), ("/aaa/other/x", "x")] {
            moto.put_parameter(name, value, ParameterType::String).await;
        }
        for (name, value) in [("/my/base/path/a", "1"), ("/my/base/path/sub/b", "2"), ("/my/other", "3")] {
            moto.put_parameter(name, value, ParameterType::String).await;
        }
        let common = [("app-environment", "DEV"), ("app-platform", "k8s")];
        let main_tags = [common[0], common[1], ("app-service", "content_delivery"), ("services.k8s.aws/namespace", "app")];
        let int_tags = [common[0], common[1], ("app-service", "content_delivery_int"), ("services.k8s.aws/namespace", "app-secondary")];
        tagged(&moto, "rds/content", "main-password", &main_tags).await;
        tagged(&moto, "rds/content-int", "int-password", &int_tags).await;
        c.apply(&PS.replace("name: ps", "name: parameterstore")).await;
        c.apply(&PS.replace("name: ps", "name: my-store")).await;
        c.apply("apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: clustersecretstore}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n").await;
        c.apply(&support::corpus("047-aws-ps-externalsecret-find-path-regexp-rewrite-v1beta1.yaml")).await;
        synced("pltfrmxxx", &[("db", "hi"), ("plain", "not base64!")]).await;
        checked += 1;
        // ESO's tag filters are AWS prefixes: "content_delivery" also matches "content_delivery_int",
        // and both secrets fight over `credentials` (the user's report). Exact tags: one each.
        c.apply(&support::corpus("048-aws-sm-externalsecret-find-tags-rewrite-v1beta1.yaml")).await;
        synced("dev-app-content-del-rdsmasterpassword", &[("credentials", "main-password")]).await;
        synced("dev-app-sec-content-del-rdsmasterpassword", &[("credentials", "int-password")]).await;
        checked += 1;
        c.apply(&support::corpus("049-aws-ps-externalsecret-find-all-under-path-v1beta1.yaml")).await;
        synced("my-secret", &[("_my_base_path_a", "1"), ("_my_base_path_sub_b", "2")]).await;
        checked += 1;
        for name in ["secret-to-be-created", "external-secret-transform", "nginx-certs"] {
            let es = if name == "secret-to-be-created" { "example" } else { name };
            c.wait_ready("default", es, "True", "SecretSynced").await;
        }
        support::report(&format!("[corpus] {checked} find/rewrite manifests synced with ESO's keys"));
    })
    .await;
}
