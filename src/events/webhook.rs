//! `POST /v1/refresh`: the rotation webhook for clusters without SQS. Authenticates every request
//! (bearer token or HMAC-SHA256 of the body, with a key read from a Secret) before parsing anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::parse::{self, Notification};
use super::{ChangeSender, RemoteChange};
use crate::admin::Metrics;
use crate::provider::SecretBytes;

/// Largest accepted body; EventBridge events are at most 256 KiB, ours are far smaller.
pub const MAX_BODY: usize = 64 * 1024;
/// Header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-secret-sync-signature";
const KEY_TTL: Duration = Duration::from_secs(60);
const FAILURE_TTL: Duration = Duration::from_secs(5);

/// Where the shared key lives: a Secret's `token` key, re-read at most once a minute so a rotated
/// webhook key takes effect without a restart.
pub struct KeySource {
    client: kube::Client,
    namespace: String,
    name: String,
    /// The key, or `None` when reading it failed (cached briefly too, so unauthenticated floods
    /// cannot turn into API server load).
    cached: Mutex<Option<(Instant, Option<SecretBytes>)>>,
}

impl KeySource {
    pub fn new(client: kube::Client, namespace: String, name: String) -> Self {
        KeySource {
            client,
            namespace,
            name,
            cached: Mutex::new(None),
        }
    }

    async fn key(&self) -> Option<SecretBytes> {
        let mut cached = self.cached.lock().await;
        if let Some((at, key)) = cached.as_ref() {
            let ttl = if key.is_some() { KEY_TTL } else { FAILURE_TTL };
            if at.elapsed() < ttl {
                return key.clone();
            }
        }
        let key = self.read().await;
        *cached = Some((Instant::now(), key.clone()));
        key
    }

    async fn read(&self) -> Option<SecretBytes> {
        let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), &self.namespace);
        let secret = api.get(&self.name).await.ok()?;
        // Owning the raw bytes in a SecretBytes wipes them on drop, like the trimmed copy.
        let raw = SecretBytes::new(secret.data?.remove("token")?.0);
        // A key written with `echo` ends in a newline; it is not part of the token.
        let key = SecretBytes::new(raw.expose().trim_ascii().to_vec());
        (!key.is_empty()).then_some(key)
    }
}

pub struct WebhookState {
    pub key: KeySource,
    pub changes: ChangeSender,
    pub metrics: Arc<Metrics>,
    /// Only the leader reconciles; a standby answers 503 so the sender retries (and reaches the leader).
    pub leader: Arc<std::sync::atomic::AtomicBool>,
}

/// Bearer token or body signature, both compared in constant time.
fn authenticated(key: &SecretBytes, headers: &HeaderMap, body: &[u8]) -> bool {
    if let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return bool::from(token.as_bytes().ct_eq(key.expose()));
    }
    let Some(signature) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

pub async fn refresh(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let received = Instant::now();
    state.metrics.event("webhook", "received");
    let Some(key) = state.key.key().await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook key not available\n".to_owned(),
        );
    };
    if !authenticated(&key, &headers, &body) {
        state.metrics.event("webhook", "unauthenticated");
        return (
            StatusCode::UNAUTHORIZED,
            "authentication required\n".to_owned(),
        );
    }
    if !state.leader.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not the leader; retry\n".to_owned(),
        );
    }
    match parse::parse(&body) {
        Ok(Notification::Changed { names, .. }) => {
            let count = names.len();
            if state
                .changes
                .send(RemoteChange {
                    source: "webhook",
                    names,
                    received,
                })
                .await
                .is_err()
            {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "controller not running\n".to_owned(),
                );
            }
            (
                StatusCode::ACCEPTED,
                format!("{{\"accepted\":true,\"names\":{count}}}\n"),
            )
        }
        Ok(Notification::Irrelevant { reason }) => {
            state.metrics.event("webhook", "ignored");
            (
                StatusCode::ACCEPTED,
                format!("{{\"accepted\":false,\"reason\":\"{reason}\"}}\n"),
            )
        }
        Ok(Notification::Unrecognised { detail_type }) => {
            state.metrics.event("webhook", "unrecognised");
            state.metrics.unrecognised_event(&detail_type);
            (
                StatusCode::ACCEPTED,
                "{\"accepted\":false,\"reason\":\"event not in the event table\"}\n".to_owned(),
            )
        }
        Err(err) => {
            state.metrics.event("webhook", "malformed");
            (
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"{}\"}}\n", err.category()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_signature_authenticate_and_nothing_else_does() {
        let key = SecretBytes::from_str_value("k3y");
        let body = br#"{"key":"app/db"}"#;
        assert!(authenticated(
            &key,
            &headers(&[("authorization", "Bearer k3y".into())]),
            body
        ));
        assert!(!authenticated(
            &key,
            &headers(&[("authorization", "Bearer k3y-wrong".into())]),
            body
        ));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(authenticated(
            &key,
            &headers(&[(SIGNATURE_HEADER, format!("sha256={sig}"))]),
            body
        ));
        assert!(!authenticated(
            &key,
            &headers(&[(SIGNATURE_HEADER, format!("sha256={sig}"))]),
            b"{\"key\":\"other\"}"
        ));
        assert!(!authenticated(&key, &HeaderMap::new(), body));
    }
}
