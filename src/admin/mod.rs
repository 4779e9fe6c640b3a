//! The admin HTTP server: `/metrics`, `/livez`, `/readyz`. It reads shared flags and metrics;
//! it must never block on, or reach into, the reconcile loop.

pub mod metrics;
pub mod reachability;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use metrics::Metrics;
pub use reachability::ApiReachability;

/// Flags the runtime flips as it starts and stops; the admin server only reads them.
#[derive(Clone, Default)]
pub struct Health {
    /// Every watch has produced its first full list.
    pub watches_ready: Arc<AtomicBool>,
    /// This replica holds the leader lease (always true without leader election).
    pub leader: Arc<AtomicBool>,
    /// The reconcile loop ended unexpectedly: the process should be restarted.
    pub failed: Arc<AtomicBool>,
    /// Whether the API server can be reached, and the cause when it cannot.
    pub api: Arc<ApiReachability>,
}

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// `POST /v1/refresh`, when a webhook key is configured.
    pub webhook: Option<Arc<crate::events::webhook::WebhookState>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("failed to bind the admin server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server failed: {0}")]
    Serve(std::io::Error),
}

pub fn router(state: AdminState) -> Router {
    let webhook = state.webhook.clone();
    let admin = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state);
    match webhook {
        Some(webhook) => admin.merge(
            Router::new()
                .route(
                    "/v1/refresh",
                    axum::routing::post(crate::events::webhook::refresh),
                )
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::events::webhook::MAX_BODY,
                ))
                .with_state(webhook),
        ),
        None => admin,
    }
}

pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, AdminError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(AdminError::Serve)
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn livez(State(state): State<AdminState>) -> impl IntoResponse {
    if state.health.failed.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "reconcile loop stopped\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let leader = state.health.leader.load(Ordering::Relaxed);
    if let Some(problem) = state.health.api.problem() {
        // Neither a leader nor a standby is of use while it cannot reach the API server.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{problem}\nleader: {leader}\n"),
        );
    }
    if state.health.watches_ready.load(Ordering::Relaxed) || !leader {
        // A standby replica is ready to take over; leadership is reported, not required.
        let body = format!("ok\nleader: {leader}\n");
        (StatusCode::OK, body)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "watches not ready\nleader: true\n".to_owned(),
        )
    }
}
