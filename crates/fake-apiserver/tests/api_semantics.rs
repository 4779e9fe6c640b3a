//! Specification of the fake apiserver's REST semantics, through kube::Api and raw HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Error, ResourceExt};
use serde_json::{Value, json};

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

fn api_err(e: Error) -> (u16, String, String) {
    match e {
        Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image, "env": [{"name": "A", "value": "1"}]}]}}}
    }))
    .unwrap()
}

async fn names(api: &Api<Namespace>, params: &ListParams) -> Vec<String> {
    let list = api.list(params).await.unwrap();
    list.items.iter().map(|n| n.name_any()).collect()
}

#[tokio::test]
async fn every_namespace_carries_its_name_as_a_label_that_selectors_match() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let ns: Api<Namespace> = Api::all(server.client());
        let created: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "team-a", "labels": {"tier": "prod"}}}),
        )
        .unwrap();
        ns.create(&PostParams::default(), &created).await.unwrap();
        // A client that tries to change or drop it gets it back, as from the real namespace strategy.
        let patch =
            json!({"metadata": {"labels": {"kubernetes.io/metadata.name": "other", "tier": null}}});
        let patched = ns
            .patch("team-a", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        assert_eq!(
            patched.labels(),
            &BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "team-a".to_string()
            )])
        );
        let selected = names(
            &ns,
            &ListParams::default().labels("kubernetes.io/metadata.name in (team-a,default)"),
        )
        .await;
        assert_eq!(selected, ["default", "team-a"]);
    })
    .await;
}

#[tokio::test]
async fn default_and_kube_system_namespaces_exist_at_start() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let ns: Api<Namespace> = Api::all(server.client());
        let names = names(&ns, &ListParams::default()).await;
        assert!(
            names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()),
            "{names:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn create_sets_server_metadata_and_a_duplicate_gets_already_exists() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let created = api
            .create(&PostParams::default(), &cm("a", &[], &[("k", "v")]))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        assert!(created.resource_version().unwrap().parse::<u64>().is_ok());
        assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
        let (code, reason, message) = api_err(
            api.create(&PostParams::default(), &cm("a", &[], &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(message, "configmaps \"a\" already exists");
    })
    .await;
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let mut c = ConfigMap::default();
        c.metadata.generate_name = Some("gen-".into());
        let a = api.create(&PostParams::default(), &c).await.unwrap();
        let b = api.create(&PostParams::default(), &c).await.unwrap();
        assert!(
            a.name_any().starts_with("gen-") && a.name_any().len() == 9,
            "{}",
            a.name_any()
        );
        assert_ne!(a.name_any(), b.name_any());
    })
    .await;
}

#[tokio::test]
async fn namespace_in_body_must_match_the_path_and_must_exist() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
        let mut c = cm("x", &[], &[]);
        c.metadata.namespace = Some("kube-system".into());
        let (code, reason, _) = api_err(api.create(&PostParams::default(), &c).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (400, "BadRequest"));
        let missing: Api<ConfigMap> = Api::namespaced(server.client(), "nope");
        let (code, reason, message) = api_err(
            missing
                .create(&PostParams::default(), &cm("x", &[], &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (404, "NotFound", "namespaces \"nope\" not found")
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_names_are_rejected_as_invalid() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let (code, reason, message) = api_err(
            api.create(&PostParams::default(), &cm("Bad_Name", &[], &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(
            message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn resource_version_is_one_cluster_wide_counter() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
        let secrets: Api<Secret> = Api::namespaced(server.client(), "kube-system");
        let a = cms
            .create(&PostParams::default(), &cm("a", &[], &[]))
            .await
            .unwrap();
        let mut s = Secret::default();
        s.metadata.name = Some("s".into());
        let b = secrets.create(&PostParams::default(), &s).await.unwrap();
        let rv = |x: Option<String>| x.unwrap().parse::<u64>().unwrap();
        assert_eq!(
            rv(b.metadata.resource_version.clone()),
            rv(a.metadata.resource_version) + 1
        );
        let list = secrets.list(&ListParams::default()).await.unwrap();
        assert_eq!(
            rv(list.metadata.resource_version),
            rv(b.metadata.resource_version.clone())
        );
    })
    .await;
}

#[tokio::test]
async fn stale_resource_version_update_gets_conflict() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let first = api
            .create(&PostParams::default(), &cm("c", &[], &[("k", "1")]))
            .await
            .unwrap();
        let mut second = first.clone();
        second.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
        let updated = api
            .replace("c", &PostParams::default(), &second)
            .await
            .unwrap();
        assert_ne!(updated.resource_version(), first.resource_version());
        let (code, reason, message) = api_err(
            api.replace("c", &PostParams::default(), &second)
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert!(
            message.contains("the object has been modified"),
            "{message}"
        );
        // Without a resourceVersion, PUT is unconditional.
        second.metadata.resource_version = None;
        second.data = Some(BTreeMap::from([("k".to_string(), "3".to_string())]));
        let forced = api
            .replace("c", &PostParams::default(), &second)
            .await
            .unwrap();
        assert_eq!(forced.data.unwrap()["k"], "3");
    })
    .await;
}

#[tokio::test]
async fn update_without_changes_does_not_bump_resource_version() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let c = api
            .create(&PostParams::default(), &cm("c", &[], &[("k", "1")]))
            .await
            .unwrap();
        let same = api.replace("c", &PostParams::default(), &c).await.unwrap();
        assert_eq!(same.resource_version(), c.resource_version());
    })
    .await;
}

#[tokio::test]
async fn generation_is_bumped_only_by_spec_changes() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<Deployment> = Api::default_namespaced(server.client());
        let d = api
            .create(&PostParams::default(), &deployment("d", "img:1"))
            .await
            .unwrap();
        assert_eq!(d.metadata.generation, Some(1));
        let labelled = api
            .patch(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .unwrap();
        assert_eq!(labelled.metadata.generation, Some(1));
        let status = api
            .patch_status(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 3}})),
            )
            .await
            .unwrap();
        assert_eq!(status.metadata.generation, Some(1));
        let spec = api
            .patch(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap();
        assert_eq!(spec.metadata.generation, Some(2));
    })
    .await;
}

#[tokio::test]
async fn label_selectors_support_every_operator() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        api.create(
            &PostParams::default(),
            &cm("a", &[("app", "web"), ("tier", "front")], &[]),
        )
        .await
        .unwrap();
        api.create(&PostParams::default(), &cm("b", &[("app", "api")], &[]))
            .await
            .unwrap();
        api.create(&PostParams::default(), &cm("c", &[], &[]))
            .await
            .unwrap();
        for (selector, want) in [
            ("app=web", vec!["a"]),
            ("app==api", vec!["b"]),
            ("app!=web", vec!["b", "c"]),
            ("app in (web,api)", vec!["a", "b"]),
            ("app notin (web)", vec!["b", "c"]),
            ("tier", vec!["a"]),
            ("!app", vec!["c"]),
        ] {
            let got: Vec<String> = api
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap()
                .items
                .iter()
                .map(|c| c.name_any())
                .collect();
            assert_eq!(got, want, "selector {selector}");
        }
    })
    .await;
}

#[tokio::test]
async fn field_selectors_and_lists_across_namespaces() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        for ns in ["default", "kube-system"] {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            api.create(&PostParams::default(), &cm("same", &[], &[]))
                .await
                .unwrap();
            api.create(&PostParams::default(), &cm(&format!("only-{ns}"), &[], &[]))
                .await
                .unwrap();
        }
        let all: Api<ConfigMap> = Api::all(client.clone());
        assert_eq!(
            all.list(&ListParams::default()).await.unwrap().items.len(),
            4
        );
        let by_name = all
            .list(&ListParams::default().fields("metadata.name=same"))
            .await
            .unwrap();
        assert_eq!(by_name.items.len(), 2);
        let by_ns = all
            .list(
                &ListParams::default().fields("metadata.namespace=kube-system,metadata.name!=same"),
            )
            .await
            .unwrap();
        assert_eq!(
            by_ns.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
            vec!["only-kube-system"]
        );
        let (code, list) = raw(
            &client,
            "GET",
            "/api/v1/configmaps",
            "application/json",
            Value::Null,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["apiVersion"], "v1");
        assert!(
            list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        let (code, err) = raw(
            &client,
            "GET",
            "/api/v1/configmaps?fieldSelector=data.x%3Dy",
            "application/json",
            Value::Null,
        )
        .await;
        assert_eq!((code, err["reason"].as_str()), (400, Some("BadRequest")));
    })
    .await;
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue_returns_every_object_once() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        for i in 0..7 {
            api.create(&PostParams::default(), &cm(&format!("c{i}"), &[], &[]))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut params = ListParams::default().limit(3);
        loop {
            let page = api.list(&params).await.unwrap();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|c| c.name_any()));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => {
                    params = ListParams::default().limit(3).continue_token(&token)
                }
                _ => break,
            }
        }
        assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn merge_json_and_strategic_merge_patches() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
        cms.create(&PostParams::default(), &cm("c", &[], &[("a", "1"), ("b", "2")])).await.unwrap();
        let merged = cms.patch("c", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": null, "c": "3"}}))).await.unwrap();
        assert_eq!(merged.data.unwrap(), BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())]));
        let ops: json_patch::Patch = serde_json::from_value(json!([{"op": "replace", "path": "/data/b", "value": "20"}])).unwrap();
        let patched = cms.patch("c", &PatchParams::default(), &Patch::<()>::Json(ops)).await.unwrap();
        assert_eq!(patched.data.unwrap()["b"], "20");

        let deploys: Api<Deployment> = Api::default_namespaced(server.client());
        deploys.create(&PostParams::default(), &deployment("d", "img:1")).await.unwrap();
        let smp = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
            "containers": [{"name": "main", "image": "img:2", "env": [{"name": "B", "value": "2"}]}, {"name": "side", "image": "side:1"}]
        }}}});
        let d = deploys.patch("d", &PatchParams::default(), &Patch::Strategic(smp)).await.unwrap();
        let containers = d.spec.unwrap().template.spec.unwrap().containers;
        assert_eq!(containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["main", "side"]);
        assert_eq!(containers[0].image.as_deref(), Some("img:2"));
        let env: Vec<&str> = containers[0].env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(env, vec!["A", "B"], "env is merged by name, not replaced");
    })
    .await;
}

#[tokio::test]
async fn strategic_merge_patch_on_a_custom_resource_is_unsupported_media_type() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let widgets = install_widgets(&server.client()).await;
        widgets
            .create(&PostParams::default(), &widget("w", json!({"size": 1})))
            .await
            .unwrap();
        let (code, reason, _) = api_err(
            widgets
                .patch(
                    "w",
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"spec": {"size": 2}})),
                )
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_tracks_managers_conflicts_and_removes_dropped_fields() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "a"}}, "data": {"x": "1", "y": "1"}});
        let created = api.patch("c", &PatchParams::apply("alice"), &Patch::Apply(&a)).await.unwrap();
        let mf = created.metadata.managed_fields.clone().unwrap();
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0].manager.as_deref(), Some("alice"));
        assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
        assert_eq!(
            serde_json::to_value(mf[0].fields_v1.as_ref().unwrap()).unwrap(),
            json!({"f:data": {"f:x": {}, "f:y": {}}, "f:metadata": {"f:labels": {"f:team": {}}}})
        );

        // Same value: shared ownership, no conflict.
        let b_same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
        api.patch("c", &PatchParams::apply("bob"), &Patch::Apply(&b_same)).await.unwrap();
        // Different value without force: 409 naming the manager and the field.
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        let (code, reason, message) = api_err(api.patch("c", &PatchParams::apply("bob"), &Patch::Apply(&b)).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert!(message.contains("conflict with \"alice\"") && message.contains(".data.y"), "{message}");
        // With force, bob takes y.
        let forced = api.patch("c", &PatchParams::apply("bob").force(), &Patch::Apply(&b)).await.unwrap();
        assert_eq!(forced.data.as_ref().unwrap()["y"], "2");

        // alice stops applying x and y: x stays (bob co-owns it), y stays (bob owns it), the label goes.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "1"}});
        let after = api.patch("c", &PatchParams::apply("alice"), &Patch::Apply(&a2)).await.unwrap();
        assert_eq!(after.data.unwrap(), BTreeMap::from([("x".into(), "1".into()), ("y".into(), "2".into()), ("z".into(), "1".into())]));
        assert!(after.metadata.labels.unwrap_or_default().is_empty());

        // A non-apply update takes ownership without conflicts; later apply by alice conflicts with it.
        api.patch("c", &PatchParams { field_manager: Some("editor".into()), ..Default::default() }, &Patch::Merge(json!({"data": {"z": "9"}}))).await.unwrap();
        let (code, _, message) = api_err(api.patch("c", &PatchParams::apply("alice"), &Patch::Apply(&a2)).await.unwrap_err());
        assert_eq!(code, 409);
        assert!(message.contains("\"editor\"") && message.contains(".data.z"), "{message}");
        let got = api.get("c").await.unwrap();
        let ops: Vec<(String, String)> = got.metadata.managed_fields.unwrap().iter().map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap())).collect();
        assert!(ops.contains(&("editor".into(), "Update".into())), "{ops:?}");
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_of_a_custom_resource_rejects_undeclared_fields() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let widgets = install_widgets(&server.client()).await;
        let cfg = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "bogus": true}});
        let (code, _, message) = api_err(widgets.patch("w", &PatchParams::apply("me"), &Patch::Apply(&cfg)).await.unwrap_err());
        assert_eq!(code, 400);
        assert!(message.contains(".spec.bogus: field not declared in schema"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn status_subresource_changes_only_status_and_main_endpoint_ignores_status() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let widgets = install_widgets(&server.client()).await;
        let mut w = widget("w", json!({"size": 1}));
        w.data["status"] = json!({"phase": "Ignored"});
        let created = widgets.create(&PostParams::default(), &w).await.unwrap();
        assert!(created.data.get("status").is_none(), "status is dropped on create");
        let s = widgets
            .patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 5}, "status": {"phase": "Ready"}})))
            .await
            .unwrap();
        assert_eq!(s.data["status"]["phase"], "Ready");
        assert_eq!(s.data["spec"]["size"], 1, "spec is not changed through /status");
        let m = widgets.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "Hacked"}}))).await.unwrap();
        assert_eq!(m.data["spec"]["size"], 2);
        assert_eq!(m.data["status"]["phase"], "Ready", "status is ignored on the main endpoint");
        // Status via apply is recorded with subresource "status".
        let cfg = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Applied"}});
        let applied = widgets.patch_status("w", &PatchParams::apply("ctl").force(), &Patch::Apply(&cfg)).await.unwrap();
        assert_eq!(applied.data["status"]["phase"], "Applied");
        let entry = applied.metadata.managed_fields.unwrap().into_iter().find(|m| m.manager.as_deref() == Some("ctl")).unwrap();
        assert_eq!(entry.subresource.as_deref(), Some("status"));
    })
    .await;
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_they_are_removed() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let mut c = cm("f", &[], &[]);
        c.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
        api.create(&PostParams::default(), &c).await.unwrap();
        let deleted = api.delete("f", &DeleteParams::default()).await.unwrap();
        let marked = deleted
            .left()
            .expect("object is returned while finalizers remain");
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
        let still = api.get("f").await.unwrap();
        assert!(still.metadata.deletion_timestamp.is_some());
        let (code, reason, message) = api_err(
            api.patch(
                "f",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/cleanup", "new"]}})),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(
            message.contains("no new finalizers can be added if the object is being deleted"),
            "{message}"
        );
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
        let (code, _, _) = api_err(api.get("f").await.unwrap_err());
        assert_eq!(code, 404);
    })
    .await;
}

fn owner_ref(owner: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[tokio::test]
async fn background_deletion_collects_dependents_and_orphan_keeps_them() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
        let secrets: Api<Secret> = Api::default_namespaced(server.client());
        for (owner, policy) in [
            ("bg", DeleteParams::background()),
            ("orphan", DeleteParams::orphan()),
        ] {
            let o = cms
                .create(&PostParams::default(), &cm(owner, &[], &[]))
                .await
                .unwrap();
            let mut s = Secret::default();
            s.metadata.name = Some(format!("{owner}-child"));
            s.metadata.owner_references = Some(vec![owner_ref(&o)]);
            secrets.create(&PostParams::default(), &s).await.unwrap();
            cms.delete(owner, &policy).await.unwrap();
        }
        assert_eq!(api_err(secrets.get("bg-child").await.unwrap_err()).0, 404);
        let orphan = secrets.get("orphan-child").await.unwrap();
        assert!(
            orphan
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn custom_resources_are_validated_and_pruned_against_the_schema() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let widgets = install_widgets(&server.client()).await;
        let cases = [
            (json!({"size": "big"}), "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""),
            (json!({}), "spec.size: Required value"),
            (json!({"size": 1, "color": "green"}), "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""),
            (json!({"size": -1}), "spec.size in body should be greater than or equal to 0"),
            (json!({"size": 1, "port": true}), "spec.port in body must be of type integer-or-string"),
        ];
        for (spec, want) in cases {
            let (code, reason, message) = api_err(widgets.create(&PostParams::default(), &widget("w", spec)).await.unwrap_err());
            assert_eq!((code, reason.as_str()), (422, "Invalid"));
            assert!(message.starts_with("Widget.example.com \"w\" is invalid: "), "{message}");
            assert!(message.contains(want), "{message} should contain {want}");
        }
        let ok = widgets
            .create(&PostParams::default(), &widget("w", json!({"size": 1, "port": "http", "unknown": 1, "extra": {"kept": true}})))
            .await
            .unwrap();
        assert_eq!(ok.data["spec"], json!({"size": 1, "port": "http", "extra": {"kept": true}}));
    })
    .await;
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_stops_serving_it() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let widgets = install_widgets(&client).await;
        widgets.create(&PostParams::default(), &widget("w", json!({"size": 1}))).await.unwrap();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
        let crd = crds.get("widgets.example.com").await.unwrap();
        let established = crd.status.unwrap().conditions.unwrap().iter().any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established);
        crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
        let (code, _, _) = api_err(widgets.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(code, 404);
        install_widgets(&client).await;
        assert!(widgets.list(&ListParams::default()).await.unwrap().items.is_empty(), "objects went with the CRD");
    })
    .await;
}

#[tokio::test]
async fn errors_are_metav1_status_objects() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let (code, body) = raw(&server.client(), "GET", "/apis/apps/v1/namespaces/default/deployments/missing", "application/json", Value::Null).await;
        assert_eq!(code, 404);
        assert_eq!(
            body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "deployments.apps \"missing\" not found",
                   "reason": "NotFound", "details": {"name": "missing", "group": "apps", "kind": "deployments"}, "code": 404})
        );
        let (code, body) = raw(&server.client(), "POST", "/api/v1/namespaces/default/configmaps/x", "application/json", json!({})).await;
        assert_eq!((code, body["reason"].as_str()), (405, Some("MethodNotAllowed")));
        let (code, body) = raw(&server.client(), "PATCH", "/api/v1/namespaces/default/configmaps/x", "text/plain", json!({})).await;
        assert_eq!((code, body["reason"].as_str()), (415, Some("UnsupportedMediaType")));
    })
    .await;
}

#[tokio::test]
async fn service_account_token_request_returns_a_signed_jwt() {
    use base64::Engine;
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::default_namespaced(client.clone());
        let mut sa = k8s_openapi::api::core::v1::ServiceAccount::default();
        sa.metadata.name = Some("robot".into());
        sas.create(&PostParams::default(), &sa).await.unwrap();
        let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 7200}});
        let (code, tr) = raw(&client, "POST", "/api/v1/namespaces/default/serviceaccounts/robot/token", "application/json", req).await;
        assert_eq!(code, 201);
        let token = tr["status"]["token"].as_str().unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
        assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
        let exp = claims["exp"].as_i64().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!((exp - now - 7200).abs() < 10);
        assert!(tr["status"]["expirationTimestamp"].as_str().is_some());
        let (code, tr) = raw(&client, "POST", "/api/v1/namespaces/default/serviceaccounts/robot/token", "application/json", json!({"spec": {}})).await;
        assert_eq!(code, 201);
        let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tr["status"]["token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["aud"], json!(["https://kubernetes.default.svc"]));
        let (code, _) = raw(&client, "POST", "/api/v1/namespaces/default/serviceaccounts/ghost/token", "application/json", json!({})).await;
        assert_eq!(code, 404);
    })
    .await;
}

#[tokio::test]
async fn discovery_lists_built_in_kinds_and_served_crds() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        install_widgets(&client).await;
        let (_, v) = raw(&client, "GET", "/version", "application/json", Value::Null).await;
        assert_eq!(v["major"], "1");
        let (_, core) = raw(&client, "GET", "/api/v1", "application/json", Value::Null).await;
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "namespaces",
            "secrets",
            "configmaps",
            "serviceaccounts",
            "serviceaccounts/token",
            "services",
            "events",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let (_, groups) = raw(&client, "GET", "/apis", "application/json", Value::Null).await;
        let gnames: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        for g in [
            "apps",
            "coordination.k8s.io",
            "events.k8s.io",
            "rbac.authorization.k8s.io",
            "policy",
            "networking.k8s.io",
            "apiextensions.k8s.io",
            "example.com",
        ] {
            assert!(gnames.contains(&g), "{g} missing");
        }
        let (_, ex) = raw(
            &client,
            "GET",
            "/apis/example.com/v1",
            "application/json",
            Value::Null,
        )
        .await;
        assert_eq!(ex["resources"][0]["kind"], "Widget");
        assert_eq!(ex["resources"][0]["shortNames"], json!(["wd"]));
        assert_eq!(ex["resources"][1]["name"], "widgets/status");
        // kube's own discovery works against it.
        let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
        assert!(discovery.groups().any(|g| g.name() == "example.com"));
    })
    .await;
}

#[tokio::test]
async fn kubectl_style_table_and_metadata_only_responses() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let widgets = install_widgets(&client).await;
        widgets.create(&PostParams::default(), &widget("w", json!({"size": 3}))).await.unwrap();
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let (code, bytes) = raw_bytes(&client, "GET", "/apis/example.com/v1/namespaces/default/widgets", "application/json", &[("accept", accept)], Value::Null).await;
        assert_eq!(code, 200);
        let table: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(table["kind"], "Table");
        let cols: Vec<&str> = table["columnDefinitions"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(cols, vec!["Name", "Size", "Ready"]);
        assert_eq!(table["rows"][0]["cells"], json!(["w", 3, "<none>"]));
        let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        let (_, bytes) = raw_bytes(&client, "GET", "/apis/example.com/v1/namespaces/default/widgets", "application/json", &[("accept", meta)], Value::Null).await;
        let list: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["items"][0]["metadata"]["name"], "w");
        assert!(list["items"][0].get("spec").is_none());
    })
    .await;
}

#[tokio::test]
async fn dry_run_does_not_persist() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let c = api.create(&pp, &cm("dry", &[], &[])).await.unwrap();
        assert_eq!(c.name_any(), "dry");
        assert_eq!(api_err(api.get("dry").await.unwrap_err()).0, 404);
    })
    .await;
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<Secret> = Api::default_namespaced(server.client());
        let mut s = Secret::default();
        s.metadata.name = Some("s".into());
        s.string_data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
        let created = api.create(&PostParams::default(), &s).await.unwrap();
        assert_eq!(created.data.unwrap()["k"].0, b"v".to_vec());
        assert!(created.string_data.is_none());
        assert_eq!(created.type_.as_deref(), Some("Opaque"));
    })
    .await;
}

#[tokio::test]
async fn dynamic_objects_round_trip_through_kube_api() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let widgets = install_widgets(&server.client()).await;
        widgets
            .create(&PostParams::default(), &widget("a", json!({"size": 1})))
            .await
            .unwrap();
        let list = widgets.list(&ListParams::default()).await.unwrap();
        let obj: &DynamicObject = &list.items[0];
        assert_eq!(obj.types.as_ref().unwrap().kind, "Widget");
        assert_eq!(obj.data["spec"]["size"], 1);
    })
    .await;
}

/// A raw request that also returns the response's `Warning` headers.
async fn raw_warned(
    client: &kube::Client,
    method: &str,
    uri: &str,
    body: Value,
) -> (u16, Value, Vec<String>) {
    let data = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(data))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    )
}

#[tokio::test]
async fn versions_without_conversion_serve_one_object_under_each_served_apiversion() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        crds.create(&PostParams::default(), &serde_json::from_value(multi_version_widget_crd()).unwrap())
            .await
            .unwrap();
        let beta = "/apis/example.com/v1beta1/namespaces/default/widgets";
        let ga = "/apis/example.com/v1/namespaces/default/widgets";
        let warning = "299 - \"example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget\"";

        // Created at the deprecated version: answered at that version, with the server's warning.
        let (code, created, warnings) = raw_warned(
            &client,
            "POST",
            beta,
            json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "dropped": true}}),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["apiVersion"], "example.com/v1beta1");
        assert_eq!(created["spec"], json!({"size": 1}), "pruned by the v1beta1 schema");
        assert_eq!(warnings, [warning]);

        // Read, listed and watched at v1: the same object, apiVersion rewritten, no warning.
        let (_, got, warnings) = raw_warned(&client, "GET", &format!("{ga}/w"), Value::Null).await;
        assert_eq!(got["apiVersion"], "example.com/v1");
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_, list, _) = raw_warned(&client, "GET", ga, Value::Null).await;
        assert_eq!(list["apiVersion"], "example.com/v1");
        assert_eq!(list["items"][0]["apiVersion"], "example.com/v1");
        let events = watch_lines(&client, &format!("{ga}?watch=true&resourceVersion=0&timeoutSeconds=1")).await;
        assert_eq!(events[0]["type"], "ADDED");
        assert_eq!(events[0]["object"]["apiVersion"], "example.com/v1");

        // A v1 write is seen at v1beta1, and a failed request to v1beta1 warns too.
        let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &widget_resource());
        widgets
            .patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 2}})))
            .await
            .unwrap();
        let (_, got, _) = raw_warned(&client, "GET", &format!("{beta}/w"), Value::Null).await;
        assert_eq!((got["apiVersion"].as_str(), got["spec"]["size"].as_i64()), (Some("example.com/v1beta1"), Some(2)));
        let (code, _, warnings) = raw_warned(&client, "GET", &format!("{beta}/missing"), Value::Null).await;
        assert_eq!((code, warnings.as_slice()), (404, [warning.to_owned()].as_slice()));

        // A version that is not served does not exist: 404, and discovery does not list it.
        let (code, _, _) = raw_warned(&client, "GET", "/apis/example.com/v1alpha1/namespaces/default/widgets", Value::Null).await;
        assert_eq!(code, 404);
        let (_, group, _) = raw_warned(&client, "GET", "/apis/example.com", Value::Null).await;
        let served: Vec<&str> = group["versions"].as_array().unwrap().iter().filter_map(|v| v["version"].as_str()).collect();
        assert_eq!(served, ["v1", "v1beta1"]);
        assert_eq!(group["preferredVersion"]["version"], "v1");
        let (code, _, _) = raw_warned(&client, "GET", "/apis/example.com/v1alpha1", Value::Null).await;
        assert_eq!(code, 404);
    })
    .await;
}
