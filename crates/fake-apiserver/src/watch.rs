// Owns WATCH streams: initial ADDED events, resumption from history, selector transitions,
// bookmarks, timeouts, 410 Expired and closing on request. Must not modify the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::ops::{meta_str, present};
use crate::render::{self, Format};
use crate::resources::ResourceDef;
use crate::selectors::Selectors;
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventType};

pub struct WatchRequest {
    pub def: ResourceDef,
    pub version: String,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// None: start with the current state as ADDED events ("" or "0").
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    pub format: Format,
}

impl WatchRequest {
    fn line(&self, kind: &str, obj: &Arc<Value>) -> Bytes {
        let presented = Arc::new(present(obj, &self.def.api_version(&self.version)));
        let object = render::object(&self.format, &self.def, &self.version, &presented);
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = match self.format {
            Format::PartialMetadata => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            _ => (self.def.kind.clone(), self.def.api_version(&self.version)),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end && let Some(m) = metadata.as_object_mut() {
            m.insert(
                "annotations".into(),
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn in_scope(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace") == ns)
            && self.selectors.matches(obj)
    }

    /// The event this watcher sees for a store event, if any (selector transitions included).
    fn translate(&self, ev: &Event) -> Option<(&'static str, Arc<Value>)> {
        if ev.res.0 != self.def.group || ev.res.1 != self.def.plural {
            return None;
        }
        if self
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != ev.namespace)
        {
            return None;
        }
        let now = self.in_scope(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.in_scope(o));
        match ev.kind {
            EventType::Added => now.then(|| ("ADDED", ev.object.clone())),
            EventType::Deleted => (before || now).then(|| ("DELETED", ev.object.clone())),
            EventType::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", ev.object.clone())),
                (false, true) => Some(("ADDED", ev.object.clone())),
                (true, false) => Some(("DELETED", ev.object.clone())),
                (false, false) => None,
            },
        }
    }
}

fn expired_line(rv: u64, oldest: u64) -> Bytes {
    let err = ApiError::gone(format!("too old resource version: {rv} ({oldest})"));
    let mut line =
        serde_json::to_vec(&json!({"type": "ERROR", "object": err.to_json()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

pub fn serve(shared: Arc<Shared>, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(shared, req, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn run(shared: Arc<Shared>, req: WatchRequest, tx: mpsc::Sender<Bytes>) {
    let mut close = shared.faults.close_signal();
    close.mark_unchanged();
    // Snapshot and subscribe under the store lock so no event falls between them.
    let (mut last, initial, mut changes, expired) = {
        let store = shared.lock();
        let changes = shared.rv_tx.subscribe();
        let key = (req.def.group.clone(), req.def.plural.clone());
        match req.resource_version {
            None => {
                let objs: Vec<Arc<Value>> = store
                    .list(&key, req.namespace.as_deref())
                    .into_iter()
                    .filter(|o| req.selectors.matches(o))
                    .collect();
                (store.current_rv(), objs, changes, None)
            }
            Some(rv) => {
                let expired = store
                    .events_since(rv)
                    .err()
                    .map(|_| store.oldest_resumable());
                (rv, Vec::new(), changes, expired)
            }
        }
    };
    if let Some(oldest) = expired {
        let _ = tx.send(expired_line(last, oldest)).await;
        return;
    }
    for obj in &initial {
        if tx.send(req.line("ADDED", obj)).await.is_err() {
            return;
        }
    }
    if req.send_initial_events && req.bookmarks && tx.send(req.bookmark(last, true)).await.is_err()
    {
        return;
    }
    let timeout = tokio::time::sleep(req.timeout.unwrap_or(Duration::from_secs(3600 * 24 * 365)));
    tokio::pin!(timeout);
    let mut bookmark = tokio::time::interval(shared.bookmark_interval);
    bookmark.reset();
    let mut check = true;
    loop {
        if check {
            check = false;
            let batch = shared.lock().events_since(last);
            match batch {
                Err(_) => {
                    let oldest = shared.lock().oldest_resumable();
                    let _ = tx.send(expired_line(last, oldest)).await;
                    return;
                }
                Ok(events) => {
                    for ev in events {
                        last = ev.rv;
                        if let Some((kind, obj)) = req.translate(&ev)
                            && tx.send(req.line(kind, &obj)).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() { return; }
                check = true;
            }
            _ = bookmark.tick(), if req.bookmarks => {
                if tx.send(req.bookmark(last, false)).await.is_err() { return; }
            }
            _ = &mut timeout => return,
            _ = close.changed() => return,
            _ = tx.closed() => return,
        }
    }
}
