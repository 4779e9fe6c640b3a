// Owns HTTP: routing of Kubernetes REST paths to operations, query/header parsing, fault injection
// and the request log. Must not implement API semantics itself; ops, watch and discovery do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;

use crate::RequestRecord;
use crate::discovery;
use crate::faults::Faults;
use crate::ops::{self, PatchType, WriteCtx, meta_str, present};
use crate::render::{self, Format};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector, Selectors};
use crate::status::{ApiError, ApiResult};
use crate::store::Store;
use crate::token;
use crate::watch::{self, WatchRequest};

/// State shared by every request handler and watch task.
pub struct Shared {
    store: Mutex<Store>,
    pub rv_tx: tokio_watch::Sender<u64>,
    pub faults: Faults,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub token_key: Vec<u8>,
    pub bookmark_interval: Duration,
    pub address: Mutex<String>,
}

impl Shared {
    pub fn new(history_limit: usize, bookmark_interval: Duration) -> Self {
        Self {
            store: Mutex::new(Store::new(history_limit)),
            rv_tx: tokio_watch::channel(0).0,
            faults: Faults::default(),
            requests: Mutex::new(Vec::new()),
            token_key: rand::random::<[u8; 32]>().to_vec(),
            bookmark_interval,
            address: Mutex::new(String::new()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes watchers after a write.
    fn notify(&self, store: &Store) {
        self.rv_tx.send_replace(store.current_rv());
    }

    pub fn requests_lock(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn json_response(code: u16, v: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

fn bytes_response(code: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Entry point for every request: latency, injected faults, routing, request log.
pub async fn entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match shared.faults.take(method.as_str(), &path) {
        Some(code) => injected(code),
        None => {
            let headers = req.headers().clone();
            match axum::body::to_bytes(req.into_body(), 256 * 1024 * 1024).await {
                Ok(body) => route(&shared, &method, &path, &query, &headers, body)
                    .await
                    .unwrap_or_else(IntoResponse::into_response),
                Err(e) => {
                    ApiError::bad_request(format!("failed to read body: {e}")).into_response()
                }
            }
        }
    };
    tracing::debug!(%method, %path, %query, status = resp.status().as_u16(), "request");
    shared.requests_lock().push(RequestRecord {
        method: method.to_string(),
        path,
        query,
        status: resp.status().as_u16(),
    });
    resp
}

fn injected(code: u16) -> Response {
    let mut err = match code {
        409 => ApiError::new(
            409,
            "Conflict",
            "injected conflict: the object has been modified; please apply your changes to the latest version and try again",
        ),
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "injected: the server has received too many requests and has asked us to try again later",
        ),
        500 => ApiError::internal(
            "injected: an error on the server has prevented the request from succeeding",
        ),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "injected: the server is currently unable to handle the request",
        ),
        404 => ApiError::new(
            404,
            "NotFound",
            "injected: the server could not find the requested resource",
        ),
        _ => ApiError::new(
            code,
            "InternalError",
            format!("injected failure with status {code}"),
        ),
    };
    if code == 429 {
        err.retry_after = Some(1);
    }
    err.into_response()
}

/// A parsed resource path.
struct Target {
    def: ResourceDef,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        [] => {
            return Ok(json_response(
                200,
                &json!({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]}),
            ));
        }
        ["version"] => return Ok(json_response(200, &discovery::version())),
        ["healthz" | "livez" | "readyz"] => {
            let mut r = "ok".into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(r);
        }
        ["api"] => {
            let addr = shared.address.lock().map(|a| a.clone()).unwrap_or_default();
            return Ok(json_response(200, &discovery::api_versions(&addr)));
        }
        ["apis"] => {
            return Ok(json_response(
                200,
                &discovery::api_groups(&shared.lock().registry),
            ));
        }
        ["api", "v1"] => {
            return discovery::resource_list(&shared.lock().registry, "", "v1")
                .map(|v| json_response(200, &v))
                .ok_or_else(not_found_path);
        }
        ["apis", g, v] => {
            return discovery::resource_list(&shared.lock().registry, g, v)
                .map(|v| json_response(200, &v))
                .ok_or_else(not_found_path);
        }
        ["apis", g] => {
            let groups = discovery::api_groups(&shared.lock().registry);
            let found = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned());
            return found
                .map(|mut v| {
                    if let Some(m) = v.as_object_mut() {
                        m.insert("kind".into(), json!("APIGroup"));
                        m.insert("apiVersion".into(), json!("v1"));
                    }
                    json_response(200, &v)
                })
                .ok_or_else(not_found_path);
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let target = resolve(shared, group, version, rest)?;
    // A deprecated CRD version warns on every request to it, successful or not, as
    // apiextensions-apiserver does; kubectl prints the text on stderr ("Warning: …").
    let warning = target.def.deprecations.get(&target.version).cloned();
    let mut resp = serve_resource(shared, method, path, &q, headers, body, target)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(text) = warning {
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(resp)
}

/// One request to a resolved resource: watch, list, get, create, update, patch, delete.
async fn serve_resource(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    target: Target,
) -> ApiResult<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let format = render::negotiate(accept, q.get("includeObject").map(String::as_str));
    let is_watch =
        target.legacy_watch || matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let manager = q.get("fieldManager").cloned().unwrap_or_else(|| {
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_string()
    });
    let ctx = WriteCtx {
        def: target.def.clone(),
        version: target.version.clone(),
        namespace: target.namespace.clone().unwrap_or_default(),
        manager,
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
    };
    let sub = target.subresource.as_deref();
    if let Some(s) = sub {
        let allowed =
            (s == "status" && target.def.has_status) || target.def.extra_subresources.contains(&s);
        if !allowed || target.name.is_none() {
            return Err(not_found_path());
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let respond = |code: u16, obj: &Arc<Value>| {
        let presented = Arc::new(present(obj, &target.def.api_version(&target.version)));
        json_response(
            code,
            &render::object(&format, &target.def, &target.version, &presented),
        )
    };
    match (method.clone(), target.name.as_deref()) {
        (Method::GET, None) if is_watch => Ok(watch::serve(
            shared.clone(),
            watch_request(&target, q, format)?,
        )),
        (Method::GET, None) => list(shared, &target, q, &format),
        (Method::GET, Some(name)) => {
            let store = shared.lock();
            let obj = store
                .get(
                    &(target.def.group.clone(), target.def.plural.clone()),
                    &ctx.namespace,
                    name,
                )
                .ok_or_else(|| ApiError::not_found(&target.def.group, &target.def.plural, name))?;
            Ok(respond(200, &obj))
        }
        (Method::POST, Some(name)) if sub == Some("token") => {
            let request: Value = decode(&body, &content_type)?;
            let sa = shared
                .lock()
                .get(
                    &(String::new(), "serviceaccounts".into()),
                    &ctx.namespace,
                    name,
                )
                .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
            Ok(json_response(
                201,
                &token::issue(&sa, &request, &shared.token_key)?,
            ))
        }
        (Method::POST, None) => {
            require_namespace(&target)?;
            let obj: Value = decode(&body, &content_type)?;
            let mut store = shared.lock();
            let created = ops::create(&mut store, &ctx, obj)?;
            shared.notify(&store);
            Ok(respond(201, &created))
        }
        (Method::PUT, Some(name)) => {
            let obj: Value = decode(&body, &content_type)?;
            let mut store = shared.lock();
            let updated = ops::update(&mut store, &ctx, name, obj, sub)?;
            shared.notify(&store);
            Ok(respond(200, &updated))
        }
        (Method::PATCH, Some(name)) => {
            let ptype = PatchType::from_content_type(&content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(&content_type))?;
            let force = q.get("force").is_some_and(|f| f == "true");
            if ptype == PatchType::Apply && !q.contains_key("fieldManager") {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requests must have a fieldManager",
                ));
            }
            if ptype != PatchType::Apply && q.contains_key("force") {
                return Err(ApiError::bad_request(
                    "force is not allowed when patching with a non-apply patch",
                ));
            }
            let mut store = shared.lock();
            let existed = store
                .get(
                    &(target.def.group.clone(), target.def.plural.clone()),
                    &ctx.namespace,
                    name,
                )
                .is_some();
            let patched = ops::patch(&mut store, &ctx, name, ptype, &body, sub, force)?;
            shared.notify(&store);
            Ok(respond(if existed { 200 } else { 201 }, &patched))
        }
        (Method::DELETE, Some(name)) => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                decode(&body, &content_type).unwrap_or_else(|_| json!({}))
            };
            let policy = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| {
                    opts.get("propagationPolicy")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .or_else(|| {
                    (opts.get("orphanDependents").and_then(Value::as_bool) == Some(true))
                        .then(|| "Orphan".to_string())
                })
                .unwrap_or_else(|| "Background".to_string());
            if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
                return Err(ApiError::bad_request(format!(
                    "unsupported propagationPolicy {policy:?}"
                )));
            }
            let mut store = shared.lock();
            if let Some(pre) = opts.get("preconditions")
                && let Some(obj) = store.get(
                    &(target.def.group.clone(), target.def.plural.clone()),
                    &ctx.namespace,
                    name,
                )
            {
                for (field, key) in [("uid", "uid"), ("resourceVersion", "resourceVersion")] {
                    if let Some(want) = pre.get(field).and_then(Value::as_str)
                        && want != meta_str(&obj, key)
                    {
                        return Err(ApiError::conflict(
                            &target.def.group,
                            &target.def.plural,
                            name,
                        ));
                    }
                }
            }
            let (obj, gone) = ops::delete(&mut store, &ctx, name, &policy)?;
            shared.notify(&store);
            Ok(respond(if gone { 200 } else { 202 }, &obj))
        }
        (Method::DELETE, None) => {
            let selectors = parse_selectors(q, &target.def.plural)?;
            let mut store = shared.lock();
            let key = (target.def.group.clone(), target.def.plural.clone());
            let objs: Vec<Arc<Value>> = store
                .list(&key, target.namespace.as_deref())
                .into_iter()
                .filter(|o| selectors.matches(o))
                .collect();
            let policy = q
                .get("propagationPolicy")
                .cloned()
                .unwrap_or_else(|| "Background".into());
            let deleted = ops::delete_collection(&mut store, &ctx, objs, &policy);
            shared.notify(&store);
            let rv = store.current_rv().to_string();
            drop(store);
            Ok(bytes_response(
                200,
                render::list(
                    &Format::Json,
                    &target.def,
                    &target.version,
                    &deleted,
                    json!({"resourceVersion": rv}),
                ),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {path})"
        ))),
    }
}

fn require_namespace(target: &Target) -> ApiResult<()> {
    if target.def.namespaced && target.namespace.is_none() {
        return Err(not_found_path());
    }
    Ok(())
}

fn decode(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if content_type.contains("yaml") {
        return serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

/// Maps `rest` (the path after the group version) to a resource, namespace, name and subresource.
fn resolve(shared: &Shared, group: &str, version: &str, mut rest: &[&str]) -> ApiResult<Target> {
    let store = shared.lock();
    let reg = &store.registry;
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && reg
            .lookup(group, version, rest[2])
            .is_some_and(|d| d.namespaced);
    let (namespace, plural, name, sub) = if namespaced_path {
        (Some(rest[1].to_string()), rest[2], rest.get(3), rest.get(4))
    } else {
        match rest.first() {
            Some(p) => (None, *p, rest.get(1), rest.get(2)),
            None => return Err(not_found_path()),
        }
    };
    if rest.len() > if namespaced_path { 5 } else { 3 } {
        return Err(not_found_path());
    }
    let def = reg
        .lookup(group, version, plural)
        .cloned()
        .ok_or_else(not_found_path)?;
    if !def.namespaced && namespace.is_some() {
        return Err(not_found_path());
    }
    Ok(Target {
        def,
        version: version.to_string(),
        namespace,
        name: name.map(|s| (*s).to_string()),
        subresource: sub.map(|s| (*s).to_string()),
        legacy_watch,
    })
}

fn parse_selectors(q: &HashMap<String, String>, plural: &str) -> ApiResult<Selectors> {
    Ok(Selectors {
        labels: match q.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::default(),
        },
        fields: match q.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s, plural)?,
            None => FieldSelector::default(),
        },
    })
}

fn watch_request(
    target: &Target,
    q: &HashMap<String, String>,
    format: Format,
) -> ApiResult<WatchRequest> {
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let send_initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    Ok(WatchRequest {
        def: target.def.clone(),
        version: target.version.clone(),
        namespace: target.namespace.clone(),
        selectors: parse_selectors(q, &target.def.plural)?,
        resource_version: if send_initial_events { None } else { rv },
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        send_initial_events,
        timeout: q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs),
        format,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list(
    shared: &Shared,
    target: &Target,
    q: &HashMap<String, String>,
    format: &Format,
) -> ApiResult<Response> {
    let selectors = parse_selectors(q, &target.def.plural)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let start = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let raw = URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            let t: ContinueToken = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            Some(t)
        }
        None => None,
    };
    let key = (target.def.group.clone(), target.def.plural.clone());
    let (all, rv) = {
        let store = shared.lock();
        (
            store.list(&key, target.namespace.as_deref()),
            store.current_rv(),
        )
    };
    let mut matching = all.into_iter().filter(|o| selectors.matches(o));
    let mut items: Vec<Arc<Value>> = Vec::new();
    let after = |o: &Value, t: &ContinueToken| {
        (meta_str(o, "namespace"), meta_str(o, "name")) > (t.ns.as_str(), t.name.as_str())
    };
    let mut remaining = 0usize;
    let list_rv = start.as_ref().map(|t| t.rv).unwrap_or(rv);
    for o in matching.by_ref() {
        if start.as_ref().is_some_and(|t| !after(&o, t)) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            remaining = 1;
            break;
        }
        items.push(o);
    }
    remaining += matching.count();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let (Some(last), Some(m)) = (items.last(), metadata.as_object_mut())
    {
        let token = ContinueToken {
            rv: list_rv,
            ns: meta_str(last, "namespace").to_string(),
            name: meta_str(last, "name").to_string(),
        };
        m.insert(
            "continue".into(),
            json!(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())),
        );
        m.insert("remainingItemCount".into(), json!(remaining));
    }
    if target.def.custom {
        let av = target.def.api_version(&target.version);
        items = items
            .into_iter()
            .map(|o| {
                if o.get("apiVersion").and_then(Value::as_str) == Some(av.as_str()) {
                    o
                } else {
                    Arc::new(present(&o, &av))
                }
            })
            .collect();
    }
    Ok(bytes_response(
        200,
        render::list(format, &target.def, &target.version, &items, metadata),
    ))
}
