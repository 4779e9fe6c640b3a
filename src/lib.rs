//! secret-sync: keeps Kubernetes Secrets in sync with external secret managers, serving ESO's
//! `external-secrets.io/v1` API. Library crate; the `secret-sync` binary is a thin shell over it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod controller;
pub mod events;
pub mod generators;
pub mod goregex;
pub mod inspect;
pub mod kube_client;
pub mod leader;
pub mod provider;
pub mod reload;
pub mod render;
pub mod shutdown;
pub mod template;

/// kube (ring) and the AWS SDK (aws-lc-rs) both bring a rustls crypto backend; with two in the
/// build rustls cannot pick one, so every entry point installs ring once, before any client exists.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
