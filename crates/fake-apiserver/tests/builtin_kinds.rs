//! Every built-in kind in the table is served: create, get, list, delete through DynamicObject.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use fake_apiserver::FakeApiServer;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::json;

#[tokio::test]
async fn every_built_in_kind_can_be_created_listed_and_deleted() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let kinds = [
            ("", "v1", "Secret", "secrets", true),
            ("", "v1", "ConfigMap", "configmaps", true),
            ("", "v1", "ServiceAccount", "serviceaccounts", true),
            ("", "v1", "Service", "services", true),
            ("", "v1", "Event", "events", true),
            ("", "v1", "Namespace", "namespaces", false),
            ("events.k8s.io", "v1", "Event", "events", true),
            ("coordination.k8s.io", "v1", "Lease", "leases", true),
            ("apps", "v1", "Deployment", "deployments", true),
            ("apps", "v1", "StatefulSet", "statefulsets", true),
            ("apps", "v1", "DaemonSet", "daemonsets", true),
            ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "rolebindings",
                true,
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
            ),
            (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                true,
            ),
            (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
                true,
            ),
        ];
        for (group, version, kind, plural, namespaced) in kinds {
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, kind),
                plural,
            );
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(client.clone(), "default", &ar)
            } else {
                Api::all_with(client.clone(), &ar)
            };
            let obj: DynamicObject = serde_json::from_value(
                json!({"apiVersion": ar.api_version, "kind": kind, "metadata": {"name": "sample"}}),
            )
            .unwrap();
            let created = api
                .create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(created.types.unwrap().kind, kind);
            assert_eq!(
                api.get("sample").await.unwrap().metadata.name.as_deref(),
                Some("sample")
            );
            let names: Vec<String> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
            assert!(names.contains(&"sample".to_string()), "{kind}: {names:?}");
            api.delete("sample", &DeleteParams::default())
                .await
                .unwrap();
            assert!(
                api.get_opt("sample").await.unwrap().is_none(),
                "{kind} deleted"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    within(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client();
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
        )
        .await
        .unwrap();
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), "tmp");
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap();
        ns.delete("tmp", &DeleteParams::default()).await.unwrap();
        assert!(
            Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let _ = widget_resource();
    })
    .await;
}
