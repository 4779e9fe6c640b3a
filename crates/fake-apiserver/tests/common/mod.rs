//! Shared helpers for the fake-apiserver tests: timeouts, raw HTTP, and a Widget CRD fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// Every test runs inside this, so a hang fails instead of blocking CI (60 s on a quiet machine,
/// scaled by `SECRET_SYNC_TEST_TIME_FACTOR`).
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(
        fake_apiserver::test_time::scaled(Duration::from_secs(60)),
        f,
    )
    .await
    .expect("test timed out")
}

/// A raw request; returns the status code and the JSON body (Null if not JSON).
pub async fn raw(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Value,
) -> (u16, Value) {
    let (status, bytes) = raw_bytes(client, method, uri, content_type, &[], body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn raw_bytes(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Vec<u8>) {
    let data = match &body {
        Value::Null => Vec::new(),
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap(),
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(kube::client::Body::from(data)).unwrap();
    let resp = client.send(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

/// Watch events of a finished (timeoutSeconds) raw watch, one JSON value per line.
pub async fn watch_lines(client: &Client, uri: &str) -> Vec<Value> {
    let (status, bytes) = raw_bytes(client, "GET", uri, "application/json", &[], Value::Null).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 0},
                                "color": {"type": "string", "enum": ["red", "blue"]},
                                "port": {"x-kubernetes-int-or-string": true},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string"},
                                "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                            }
                        }
                    }
                }}
            }]
        }
    })
}

pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    )
}

/// Creates the Widget CRD and returns an Api for widgets in `default`.
pub async fn install_widgets(client: &Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    Api::namespaced_with(client.clone(), "default", &widget_resource())
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

/// A server-side watch timeout (seconds) long enough for the test's events on a loaded machine.
pub fn watch_timeout(quiet_secs: u64) -> u32 {
    let secs = fake_apiserver::test_time::scaled_secs(Duration::from_secs(quiet_secs));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The Widget CRD with three versions sharing one schema and no conversion: v1 (storage), v1beta1
/// (served, deprecated, default warning) and v1alpha1 (not served).
pub fn multi_version_widget_crd() -> Value {
    let mut crd = widget_crd();
    let v1 = crd["spec"]["versions"][0].clone();
    let mut beta = v1.clone();
    beta["name"] = json!("v1beta1");
    beta["storage"] = json!(false);
    beta["deprecated"] = json!(true);
    let mut alpha = v1.clone();
    alpha["name"] = json!("v1alpha1");
    alpha["storage"] = json!(false);
    alpha["served"] = json!(false);
    crd["spec"]["versions"] = json!([v1, beta, alpha]);
    crd["spec"]["conversion"] = json!({"strategy": "None"});
    crd
}
