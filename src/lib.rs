//! secret-sync: keeps Kubernetes Secrets in sync with external secret managers, serving ESO's
//! `external-secrets.io/v1` API. Library crate; the `secret-sync` binary is a thin shell over it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod controller;
pub mod render;
pub mod provider;
