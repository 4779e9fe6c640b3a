//! Bulk change detection against moto, through the real controller on the fake API server: timer
//! refreshes read nothing while ListSecrets / DescribeParameters show every source unchanged, a change
//! (current value, moved stage) reaches the Secret, a throttled listing falls back to fetching, a
//! secret that leaves the listing is confirmed gone by a direct read before the deletion policy acts,
//! and store validation makes no STS call while refreshes prove the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use support::cluster::{TestCluster, wait_for};
use support::moto::{Moto, cluster_on_moto, store, within_timeout};

const SM: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: sm, namespace: default}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n";
const PS: &str = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: ps, namespace: default}\nspec:\n  provider:\n    aws: {service: ParameterStore, region: us-east-1}\n";

fn es(name: &str, store: &str, data: &str, extra: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {{name: {store}}}\n{extra}  data:\n{data}"
    )
}

fn one_key(key: &str) -> String {
    format!("  - {{secretKey: value, remoteRef: {{key: {key}}}}}\n")
}

async fn value_of(c: &TestCluster, name: &str, key: &str) -> Option<Vec<u8>> {
    let secret = c.secret("default", name).await?;
    Some(secret.data?.get(key)?.0.clone())
}

/// Every ExternalSecret has had at least `per_es` skipped refreshes on average: steady state.
async fn steady(c: &TestCluster, n: u64, per_es: u64) {
    wait_for(
        "timer refreshes skipped by change detection",
        Duration::from_secs(30),
        || async { (c.metrics.fetches_skipped() >= n * per_es).then_some(()) },
    )
    .await;
}

/// Reads of values (not listings) moto served since the last reset.
async fn value_reads(moto: &Moto) -> u64 {
    let counts = moto.counts().await;
    [
        "secretsmanager.BatchGetSecretValue",
        "secretsmanager.GetSecretValue",
        "ssm.GetParameters",
        "ssm.GetParameter",
    ]
    .iter()
    .map(|name| counts.get(*name).copied().unwrap_or(0))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_refreshes_read_only_what_the_listing_shows_changed() {
    within_timeout(async {
        let moto = Moto::start().await;
        const N: u64 = 30;
        for i in 0..N {
            moto.put_secret_string(&format!("cd/app-{i:02}"), &format!("v1-{i}")).await;
        }
        let c = cluster_on_moto(&moto).await;
        c.apply(SM).await;
        for i in 0..N {
            c.apply(&es(&format!("app-{i:02}"), "sm", &one_key(&format!("cd/app-{i:02}")), "")).await;
        }
        for i in 0..N {
            c.wait_secret_value("default", &format!("app-{i:02}"), "value", format!("v1-{i}").as_bytes()).await;
        }
        steady(&c, N, 2).await;

        // A window of steady state: listings only, no value read, no STS call.
        moto.reset_counts().await;
        let skipped_before = c.metrics.fetches_skipped();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let counts = moto.counts().await;
        let refreshes = c.metrics.fetches_skipped() - skipped_before;
        let lists = counts.get("secretsmanager.ListSecrets").copied().unwrap_or(0);
        let sts: u64 = counts.iter().filter(|(k, _)| k.starts_with("sts.")).map(|(_, v)| v).sum();
        let calls: u64 = counts.iter().filter(|(k, _)| !k.starts_with('_')).map(|(_, v)| v).sum();
        support::report(&format!(
            "steady state over 3 s: {refreshes} refreshes skipped, AWS calls {counts:?}, {:.3} calls per refresh",
            calls as f64 / refreshes.max(1) as f64
        ));
        assert_eq!(value_reads(&moto).await, 0, "nothing changed, nothing read: {counts:?}");
        assert_eq!(sts, 0, "no STS call in steady state: {counts:?}");
        assert!(lists >= 1, "the listing is what keeps the refreshes honest: {counts:?}");
        assert!(refreshes >= 2 * N, "about one refresh per ExternalSecret per second, got {refreshes}");
        assert!(calls * 10 <= refreshes, "at most 0.1 calls per refresh with 30 per listing page: {counts:?}");

        // A change to one secret reaches its Secret, and only that secret is read.
        moto.reset_counts().await;
        moto.put_secret_string("cd/app-07", "v2-7").await;
        let started = std::time::Instant::now();
        c.wait_secret_value("default", "app-07", "value", b"v2-7").await;
        support::report(&format!("a changed value reached its Secret after {:?}", started.elapsed()));
        let counts = moto.counts().await;
        let reads = counts.get("secretsmanager.BatchGetSecretValue").copied().unwrap_or(0);
        assert!((1..=2).contains(&reads), "the changed secret alone is read: {counts:?}");
        for i in [0, 6, 8, 29] {
            assert_eq!(value_of(&c, &format!("app-{i:02}"), "value").await.unwrap(), format!("v1-{i}").as_bytes());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_stages_and_version_ids_follow_the_listing() {
    within_timeout(async {
        let moto = Moto::start().await;
        let first = moto.put_secret_string("pinned/db", "one").await;
        moto.put_secret_string("pinned/db", "two").await;
        let c = cluster_on_moto(&moto).await;
        c.apply(SM).await;
        let data = format!(
            "  - {{secretKey: current, remoteRef: {{key: pinned/db}}}}\n  - {{secretKey: previous, remoteRef: {{key: pinned/db, version: AWSPREVIOUS}}}}\n  - {{secretKey: first, remoteRef: {{key: pinned/db, version: uuid/{first}}}}}\n"
        );
        c.apply(&es("pinned", "sm", &data, "")).await;
        c.wait_secret_value("default", "pinned", "previous", b"one").await;
        steady(&c, 1, 2).await;
        moto.reset_counts().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(value_reads(&moto).await, 0, "stages and the VersionId are all in the listing");

        // A new value moves AWSCURRENT and AWSPREVIOUS: both keys follow; the pinned VersionId stays.
        moto.put_secret_string("pinned/db", "three").await;
        c.wait_secret_value("default", "pinned", "current", b"three").await;
        c.wait_secret_value("default", "pinned", "previous", b"two").await;
        assert_eq!(value_of(&c, "pinned", "first").await.unwrap(), b"one");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_listing_falls_back_to_fetching_and_never_touches_the_secret() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("throttled/db", "v1").await;
        let c = cluster_on_moto(&moto).await;
        c.apply(SM).await;
        c.apply(&es("app", "sm", &one_key("throttled/db"), ""))
            .await;
        c.wait_secret_value("default", "app", "value", b"v1").await;
        steady(&c, 1, 2).await;
        let rv = c
            .secret("default", "app")
            .await
            .unwrap()
            .metadata
            .resource_version;

        // Every listing is throttled from now on (the SDK's retries included).
        moto.reset_counts().await;
        moto.inject_fault("ListSecrets", 1000, 400, "ThrottlingException")
            .await;
        let skipped = c.metrics.fetches_skipped();
        wait_for(
            "refreshes that fetch instead",
            Duration::from_secs(10),
            || async {
                (moto.count("secretsmanager.BatchGetSecretValue").await >= 2).then_some(())
            },
        )
        .await;
        assert_eq!(
            c.metrics.fetches_skipped(),
            skipped,
            "no refresh is skipped on a failed listing"
        );
        let secret = c.secret("default", "app").await.unwrap();
        assert_eq!(
            secret.metadata.resource_version, rv,
            "unchanged data, untouched Secret"
        );
        assert_eq!(
            c.ready("default", "app").await.unwrap().status,
            secret_sync::api::ConditionStatus::True
        );
        let lists = moto.count("secretsmanager.ListSecrets").await;
        assert!(
            lists <= 8,
            "a failed listing is not retried by every refresh: {lists} ListSecrets"
        );

        // A change during the throttling still arrives, through the direct fetch.
        moto.put_secret_string("throttled/db", "v2").await;
        c.wait_secret_value("default", "app", "value", b"v2").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_leaves_the_listing_is_confirmed_gone_before_the_deletion_policy_acts() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("leaving/kept", "k").await;
        moto.put_secret_string("leaving/gone", "g").await;
        let c = cluster_on_moto(&moto).await;
        c.apply(SM).await;
        let delete = "  target: {creationPolicy: Owner, deletionPolicy: Delete}\n";
        c.apply(&es("kept", "sm", &one_key("leaving/kept"), delete))
            .await;
        c.apply(&es("gone", "sm", &one_key("leaving/gone"), delete))
            .await;
        c.wait_secret_value("default", "gone", "value", b"g").await;
        steady(&c, 2, 2).await;

        moto.reset_counts().await;
        moto.secrets_manager()
            .await
            .delete_secret()
            .secret_id("leaving/gone")
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
        wait_for(
            "the Secret of the deleted source to go",
            Duration::from_secs(15),
            || async { c.secret("default", "gone").await.is_none().then_some(()) },
        )
        .await;
        let counts = moto.counts().await;
        assert!(
            counts
                .get("secretsmanager.DescribeSecret")
                .copied()
                .unwrap_or(0)
                >= 1,
            "absence from the listing was confirmed by a direct read: {counts:?}"
        );
        assert_eq!(value_of(&c, "kept", "value").await.unwrap(), b"k");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_store_refreshes_read_only_changed_parameters() {
    within_timeout(async {
        let moto = Moto::start().await;
        const N: u64 = 12;
        for i in 0..N {
            moto.put_parameter(
                &format!("/cd/p{i:02}"),
                &format!("v1-{i}"),
                ParameterType::SecureString,
            )
            .await;
        }
        let c = cluster_on_moto(&moto).await;
        c.apply(PS).await;
        for i in 0..N {
            c.apply(&es(
                &format!("p{i:02}"),
                "ps",
                &one_key(&format!("/cd/p{i:02}")),
                "",
            ))
            .await;
        }
        for i in 0..N {
            c.wait_secret_value(
                "default",
                &format!("p{i:02}"),
                "value",
                format!("v1-{i}").as_bytes(),
            )
            .await;
        }
        steady(&c, N, 2).await;
        moto.reset_counts().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let counts = moto.counts().await;
        assert_eq!(
            value_reads(&moto).await,
            0,
            "nothing changed, nothing read: {counts:?}"
        );
        assert!(
            counts.get("ssm.DescribeParameters").copied().unwrap_or(0) >= 1,
            "{counts:?}"
        );

        moto.put_parameter("/cd/p03", "v2-3", ParameterType::SecureString)
            .await;
        c.wait_secret_value("default", "p03", "value", b"v2-3")
            .await;
        assert_eq!(value_of(&c, "p04", "value").await.unwrap(), b"v1-4");
    })
    .await;
}

#[tokio::test]
async fn store_validation_needs_no_sts_call_while_reads_succeed() {
    within_timeout(async {
        let moto = Moto::start().await;
        moto.put_secret_string("proof/db", "v").await;
        let providers = moto.providers(None).await;
        let sm = providers.for_store(&store(SM), "default").await.unwrap();
        moto.reset_counts().await;
        sm.validate().await.unwrap();
        assert_eq!(
            moto.count("sts.GetCallerIdentity").await,
            1,
            "nothing proved the credentials yet"
        );

        // A fresh identity (another region) whose first act is a successful listing: that proves the
        // credentials, so its store validation makes no STS call.
        let other = SM.replace("us-east-1", "us-west-2");
        moto.reset_counts().await;
        let sm = providers
            .for_store(&store(&other), "default")
            .await
            .unwrap();
        let listed = sm
            .versions(
                &[secret_sync::provider::FetchRequest::current("x")],
                Some(Duration::ZERO),
            )
            .await;
        assert_eq!(listed, Some(vec![None]), "listed, and x is not there");
        sm.validate().await.unwrap();
        assert_eq!(
            moto.count("sts.GetCallerIdentity").await,
            0,
            "the listing proved the credentials"
        );
    })
    .await;
}
