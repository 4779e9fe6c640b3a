//! The reconcile pipeline: resolve store -> fetch -> build (pure) -> apply (server-side apply) -> status.
//! Each step is its own module; this file wires them to kube-runtime.

pub mod build;
pub mod resolve;
