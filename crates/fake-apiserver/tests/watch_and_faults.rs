//! Specification of WATCH semantics, fault injection and the request log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_apiserver::{Config, FakeApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

fn summary(ev: &WatchEvent<ConfigMap>) -> String {
    match ev {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

#[tokio::test]
async fn watch_from_a_resource_version_streams_added_modified_deleted() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let before = api
            .create(&PostParams::default(), &cm("old", &[]))
            .await
            .unwrap();
        let rv = before.resource_version().unwrap();
        let mut stream = api
            .watch(&WatchParams::default().timeout(watch_timeout(5)), &rv)
            .await
            .unwrap()
            .boxed();
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
        api.delete("a", &DeleteParams::default()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.push(summary(&stream.try_next().await.unwrap().unwrap()));
        }
        assert_eq!(
            seen,
            vec!["ADDED a", "MODIFIED a", "DELETED a"],
            "the object created before the version is not replayed"
        );
    })
    .await;
}

#[tokio::test]
async fn watch_from_zero_sends_current_objects_as_added_first() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .unwrap();
        api.create(&PostParams::default(), &cm("b", &[]))
            .await
            .unwrap();
        let lines = watch_lines(
            &server.client(),
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0&timeoutSeconds=1",
        )
        .await;
        let got: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                (
                    l["type"].as_str().unwrap().into(),
                    l["object"]["metadata"]["name"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]
        );
    })
    .await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let start = Instant::now();
        let lines = watch_lines(
            &server.client(),
            "/api/v1/configmaps?watch=true&timeoutSeconds=1",
        )
        .await;
        assert!(lines.is_empty());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900)
                && took < fake_apiserver::test_time::scaled(Duration::from_secs(5)),
            "{took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn bookmarks_are_sent_when_allowed() {
    within(async {
        let server = FakeApiServer::start_with(Config { bookmark_interval: Duration::from_millis(200), ..Default::default() }).await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let c = api.create(&PostParams::default(), &cm("a", &[])).await.unwrap();
        let uri = format!("/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={}", c.resource_version().unwrap());
        let lines = watch_lines(&server.client(), &uri).await;
        let bookmark = lines.iter().find(|l| l["type"] == "BOOKMARK").expect("a bookmark within a second");
        assert_eq!(bookmark["object"], json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": c.resource_version().unwrap()}}));
        let without = watch_lines(&server.client(), "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&resourceVersion=1").await;
        assert!(without.iter().all(|l| l["type"] != "BOOKMARK"));
    })
    .await;
}

#[tokio::test]
async fn too_old_resource_version_gets_410_expired() {
    within(async {
        let server = FakeApiServer::start_with(Config {
            history_limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        for i in 0..10 {
            api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
                .await
                .unwrap();
        }
        let lines = watch_lines(
            &server.client(),
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2&timeoutSeconds=5",
        )
        .await;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["type"], "ERROR");
        let status = &lines[0]["object"];
        assert_eq!(
            (status["code"].as_i64(), status["reason"].as_str()),
            (Some(410), Some("Expired"))
        );
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("too old resource version: 2"),
            "{status}"
        );
        let mut stream = api
            .watch(&WatchParams::default().timeout(watch_timeout(5)), "2")
            .await
            .unwrap()
            .boxed();
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Error(e) => assert_eq!(e.code, 410),
            other => panic!("expected 410, got {}", summary(&other)),
        }
    })
    .await;
}

#[tokio::test]
async fn an_object_leaving_the_selector_is_deleted_for_that_watcher() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let c = api
            .create(&PostParams::default(), &cm("a", &[("app", "x")]))
            .await
            .unwrap();
        let mut stream = api
            .watch(
                &WatchParams::default()
                    .labels("app=x")
                    .timeout(watch_timeout(5)),
                &c.resource_version().unwrap(),
            )
            .await
            .unwrap()
            .boxed();
        api.create(&PostParams::default(), &cm("other", &[("app", "y")]))
            .await
            .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
        )
        .await
        .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
        )
        .await
        .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.push(summary(&stream.try_next().await.unwrap().unwrap()));
        }
        assert_eq!(seen, vec!["DELETED a", "ADDED a", "MODIFIED a"]);
    })
    .await;
}

#[tokio::test]
async fn watch_honours_field_selectors_and_namespaces() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let all: Api<ConfigMap> = Api::all(client.clone());
        let mut stream = all
            .watch(
                &WatchParams::default()
                    .fields("metadata.name=target")
                    .timeout(watch_timeout(5)),
                "0",
            )
            .await
            .unwrap()
            .boxed();
        for ns in ["default", "kube-system"] {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            api.create(&PostParams::default(), &cm("noise", &[]))
                .await
                .unwrap();
            api.create(&PostParams::default(), &cm("target", &[]))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 2 {
            if let WatchEvent::Added(o) = stream.try_next().await.unwrap().unwrap() {
                seen.push(format!("{}/{}", o.namespace().unwrap(), o.name_any()));
            }
        }
        assert_eq!(seen, vec!["default/target", "kube-system/target"]);
    })
    .await;
}

#[tokio::test]
async fn fail_next_injects_errors_then_recovers() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .unwrap();
        server.faults().fail_next("GET", "/configmaps/a", 2, 500);
        for _ in 0..2 {
            match api.get("a").await.unwrap_err() {
                kube::Error::Api(s) => {
                    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"))
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(api.get("a").await.unwrap().name_any(), "a");

        server.faults().fail_next("PUT", "configmaps", 1, 409);
        let current = api.get("a").await.unwrap();
        match api
            .replace("a", &PostParams::default(), &current)
            .await
            .unwrap_err()
        {
            kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
            other => panic!("{other:?}"),
        }

        // kube's client retries 429 after the Retry-After delay, so the caller only sees success;
        // the request log shows the injected 429 first.
        server.clear_requests();
        server.faults().fail_next("get", "configmaps", 1, 429);
        let start = Instant::now();
        api.get("a").await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "Retry-After: 1 was honoured"
        );
        let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 200]);
    })
    .await;
}

#[tokio::test]
async fn latency_delays_every_request() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        // Long enough that a cleared latency stands out even on a loaded machine.
        let latency = Duration::from_secs(1);
        server.faults().set_latency(latency);
        let start = Instant::now();
        api.list(&Default::default()).await.unwrap();
        assert!(start.elapsed() >= latency);
        server.faults().set_latency(Duration::ZERO);
        let start = Instant::now();
        api.list(&Default::default()).await.unwrap();
        assert!(
            start.elapsed() < latency,
            "latency cleared: {:?}",
            start.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn close_watches_ends_open_streams() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let mut stream = api
            .watch(&WatchParams::default().timeout(60), "0")
            .await
            .unwrap()
            .boxed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.faults().close_watches();
        let next = tokio::time::timeout(
            fake_apiserver::test_time::scaled(Duration::from_secs(5)),
            stream.next(),
        )
        .await
        .expect("stream should end promptly");
        assert!(next.is_none(), "stream ended");
    })
    .await;
}

#[tokio::test]
async fn request_log_records_method_path_query_and_status() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        server.clear_requests();
        api.create(&PostParams::default(), &cm("a", &[])).await.unwrap();
        let _ = api.get("missing").await;
        api.patch("a", &PatchParams::apply("me"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}))).await.unwrap();
        let log = server.requests();
        let summary: Vec<(String, String, u16)> = log.iter().map(|r| (r.method.clone(), r.path.clone(), r.status)).collect();
        assert_eq!(
            summary,
            vec![
                ("POST".into(), "/api/v1/namespaces/default/configmaps".into(), 201),
                ("GET".into(), "/api/v1/namespaces/default/configmaps/missing".into(), 404),
                ("PATCH".into(), "/api/v1/namespaces/default/configmaps/a".into(), 200),
            ]
        );
        assert!(log[2].query.contains("fieldManager=me"));
        assert!(!log.iter().any(|r| r.method == "PATCH" && r.path.contains("/secrets")));
        server.clear_requests();
        assert!(server.requests().is_empty());
        let _: Value = Value::Null;
    })
    .await;
}
