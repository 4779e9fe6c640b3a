//! Runs the fake API server standalone for manual exploration with kubectl.
//!
//! Usage: `fake-apiserver [PORT] [KUBECONFIG_PATH]` (defaults: 6443, ./fake-kubeconfig.yaml).
#![forbid(unsafe_code)]

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), fake_apiserver::Error> {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(6443);
    let kubeconfig = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fake-kubeconfig.yaml"));
    let server = fake_apiserver::FakeApiServer::start_with(fake_apiserver::Config {
        port,
        ..Default::default()
    })
    .await?;
    server.write_kubeconfig(&kubeconfig)?;
    println!("fake apiserver listening on {}", server.url());
    println!("kubectl --kubeconfig {} get ns", kubeconfig.display());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(())
}
