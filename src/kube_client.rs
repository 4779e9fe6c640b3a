//! The operator's Kubernetes API client: kube's own layers (base URI, retry, authentication, extra
//! headers) and its TLS connector and timeouts, over a hyper connection pool that gives idle
//! connections back.
//!
//! Why not `kube::Client::try_from(config)`: kube talks HTTP/1.1 to the API server (its TLS
//! connector offers no h2), so every request in flight holds a connection of its own, and its
//! `ClientBuilder` makes the pool without a timer. hyper then never evicts an idle connection; it
//! only drops expired ones it happens to pop when checking one out, last in first out. So the pool
//! stays at the largest burst the operator ever made (73 connections after syncing 10,000
//! ExternalSecrets at `--concurrency 32`, about 40 KB of buffers and tasks each) for as long as the
//! server keeps them open. Here the pool has a timer and drops a connection idle for
//! [`POOL_IDLE_TIMEOUT`].

use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt, retry::RetryPolicy};
use tower::{BoxError, ServiceBuilder, retry::RetryLayer};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;

/// How long a connection may sit idle in the pool. Longer than a refresh cycle's gaps at a 10 s
/// `refreshInterval`, so steady work keeps reusing a few warm connections; short enough that a
/// burst's extra connections (start-up, a mass rotation) go within a minute of it ending.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for `config`, as `kube::Client::try_from` builds it but with the pool above. One
/// difference: kube's `Client::valid_until` (when an exec plugin's client certificate expires) is not
/// set, as kube keeps that reading private; nothing here reads it.
///
/// A kubeconfig with a proxy (`proxy-url`) is handed to kube's own builder, which owns proxy support
/// (and refuses the proxy protocols this build does not enable).
///
/// # Errors
/// What kube's builder returns: a TLS setup that fails (bad certificate or key data), or an
/// authentication setup that fails (an unreadable token file, a failing exec plugin).
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    pooled(config, POOL_IDLE_TIMEOUT)
}

fn pooled(config: kube::Config, idle_timeout: Duration) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    // The TLS connector wraps it; it sees https URIs too.
    http.enforce_http(false);
    let mut connector =
        hyper_timeout::TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let pool: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        // As kube's: a debug span per request, and an error for a failed one. Off unless the log
        // filter names this module (`cli::QUIET_KUBE_CLIENT`): connection failures are reported once
        // by `ApiReachability` instead.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &http::Request<Body>| {
                    tracing::debug_span!(
                        "HTTP",
                        http.method = %request.method(),
                        http.url = %request.uri()
                    )
                })
                .on_failure(
                    |failure: ServerErrorsFailureClass, _: Duration, _: &tracing::Span| {
                        tracing::error!("API request failed: {failure}");
                    },
                ),
        )
        .map_err(BoxError::from)
        .service(pool);
    Ok(kube::Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP/1.1 server that keeps connections alive, answers every request after `delay` (so
    /// concurrent requests need connections of their own), and counts the connections open.
    async fn server(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let open = counter.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            request.drain(..end + 4);
                            tokio::time::sleep(delay).await;
                            let body = r#"{"major":"1","minor":"33"}"#;
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (url, open)
    }

    /// Eight requests at once, then idle: how many connections are still open after `wait`.
    async fn open_after_burst(
        client: &kube::Client,
        open: &AtomicUsize,
        wait: Duration,
    ) -> (usize, usize) {
        let burst = (0..8).map(|_| client.apiserver_version());
        for answer in futures::future::join_all(burst).await {
            assert_eq!(answer.unwrap().minor, "33");
        }
        let after_burst = open.load(Ordering::SeqCst);
        tokio::time::sleep(wait).await;
        (after_burst, open.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        crate::install_crypto_provider();
        let (url, open) = server(Duration::from_millis(500)).await;
        let config = kube::Config::new(url.parse().unwrap());
        let client = pooled(config, Duration::from_millis(300)).unwrap();
        let (after_burst, later) = open_after_burst(&client, &open, Duration::from_secs(2)).await;
        // 8 when all 8 are in flight together; a loaded machine may dispatch some late.
        assert!(
            (2..=8).contains(&after_burst),
            "requests in flight together open connections of their own: {after_burst}"
        );
        assert_eq!(later, 0, "all idle past the timeout, all closed");
        // The pool still works after evicting everything.
        assert_eq!(client.apiserver_version().await.unwrap().minor, "33");
    }

    /// The behaviour this module exists to change: kube's own client keeps them past that timeout.
    /// (And past its own 90 s: its pool has no timer, so only a checkout drops an expired
    /// connection, hyper-util's `Pool::spawn_idle_interval`; too slow a wait for a unit test.)
    #[tokio::test]
    async fn kubes_own_client_keeps_idle_connections_past_the_timeout() {
        crate::install_crypto_provider();
        let (url, open) = server(Duration::from_millis(500)).await;
        let config = kube::Config::new(url.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (after_burst, later) = open_after_burst(&client, &open, Duration::from_secs(2)).await;
        assert!((2..=8).contains(&after_burst), "{after_burst}");
        assert_eq!(later, after_burst, "none closed");
    }
}
