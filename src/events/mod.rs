//! Rotation events: notifications that a remote secret changed (SQS/EventBridge, webhook) become
//! immediate reconciles of exactly the ExternalSecrets that read it. Parsing here; reconciling stays in `controller`.

pub mod index;
pub mod parse;
pub mod pattern;
pub mod sqs;
pub mod webhook;

use std::time::Instant;

use tokio::sync::mpsc;

/// One notification, already parsed: these remote names may have a new value.
#[derive(Debug, Clone)]
pub struct RemoteChange {
    /// "sqs" or "webhook", for metrics.
    pub source: &'static str,
    pub names: Vec<String>,
    /// When the notification arrived, for the event-to-synced latency.
    pub received: Instant,
}

/// The sending side handed to event sources; the controller owns the receiving side.
pub type ChangeSender = mpsc::Sender<RemoteChange>;
pub type ChangeReceiver = mpsc::Receiver<RemoteChange>;

/// Bounded so that a flood of events applies back-pressure to the sources instead of memory.
pub fn channel() -> (ChangeSender, ChangeReceiver) {
    mpsc::channel(1024)
}
