//! kube-runtime's watcher and Controller running against the fake apiserver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fake_apiserver::FakeApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c
}

#[tokio::test]
async fn watcher_sees_changes_and_survives_closed_watches() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        api.create(&PostParams::default(), &cm("before"))
            .await
            .unwrap();
        let mut names = watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .map_ok(|c| c.name_any())
            .boxed();
        assert_eq!(names.try_next().await.unwrap().unwrap(), "before");
        api.create(&PostParams::default(), &cm("during"))
            .await
            .unwrap();
        assert_eq!(names.try_next().await.unwrap().unwrap(), "during");
        server.faults().close_watches();
        // Time for the server to end the stream, so the next object comes through the reconnect.
        tokio::time::sleep(fake_apiserver::test_time::scaled(Duration::from_millis(
            200,
        )))
        .await;
        api.create(&PostParams::default(), &cm("after-reconnect"))
            .await
            .unwrap();
        loop {
            // A relist may replay earlier objects; the new one must arrive.
            if names.try_next().await.unwrap().unwrap() == "after-reconnect" {
                break;
            }
        }
    })
    .await;
}

struct Ctx {
    client: kube::Client,
    reconciles: Mutex<HashMap<String, usize>>,
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(parent: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = parent.name_any();
    *ctx.reconciles
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default() += 1;
    let owner = parent.controller_owner_ref(&()).unwrap();
    let child = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-child"), "ownerReferences": [owner]},
        "stringData": {"from": name},
    });
    let secrets: Api<Secret> = Api::default_namespaced(ctx.client.clone());
    secrets
        .patch(
            &format!("{name}-child"),
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&child),
        )
        .await?;
    if parent.labels().contains_key("requeue") {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn controller_with_owns_reconciles_on_owned_changes_and_requeues() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let parents: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            reconciles: Mutex::new(HashMap::new()),
        });
        let controller = Controller::new(parents.clone(), watcher::Config::default())
            .owns(secrets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {});
        let handle = tokio::spawn(controller);
        let count = |name: &str| {
            ctx.reconciles
                .lock()
                .unwrap()
                .get(name)
                .copied()
                .unwrap_or(0)
        };

        parents
            .create(&PostParams::default(), &cm("p"))
            .await
            .unwrap();
        while secrets.get_opt("p-child").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the child's own creation event settle, then change the child from outside.
        tokio::time::sleep(fake_apiserver::test_time::scaled(Duration::from_millis(
            500,
        )))
        .await;
        let settled = count("p");
        secrets
            .patch(
                "p-child",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
            )
            .await
            .unwrap();
        while count("p") <= settled {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut r = cm("r");
        r.metadata.labels = Some([("requeue".to_string(), "yes".to_string())].into());
        parents.create(&PostParams::default(), &r).await.unwrap();
        while count("r") < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        handle.abort();
    })
    .await;
}
