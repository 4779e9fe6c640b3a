//! The SQS consumer: long-polls a queue fed by EventBridge, hands parsed changes to the controller
//! and deletes what it handled. It never logs message bodies and never stops on errors.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tracing::{debug, info, warn};

use super::parse::{self, Notification};
use super::{ChangeSender, RemoteChange};
use crate::admin::Metrics;

/// What to do with a message that cannot be understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MalformedPolicy {
    /// Delete it (it would never parse on a retry either).
    Delete,
    /// Leave it: after the queue's maxReceiveCount it moves to the dead-letter queue for a human.
    LeaveForDeadLetterQueue,
}

#[derive(Clone, Debug)]
pub struct SqsConfig {
    pub queue_url: String,
    pub malformed: MalformedPolicy,
    /// Long-poll wait, at most 20 s (SQS's limit).
    pub wait_seconds: i32,
}

/// Region from a queue URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/q, for
/// installations that set no AWS_REGION.
fn region_of(queue_url: &str) -> Option<String> {
    let host = queue_url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    match (parts.next(), parts.next()) {
        (Some("sqs"), Some(region)) if region != "amazonaws" => Some(region.to_owned()),
        _ => None,
    }
}

/// An SQS client with the controller's own identity (IRSA on EKS), through the SDK's default chain.
pub async fn client_for(queue_url: &str) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let region_configured = std::env::var_os("AWS_REGION").is_some()
        || std::env::var_os("AWS_DEFAULT_REGION").is_some();
    if !region_configured && let Some(region) = region_of(queue_url) {
        loader = loader.region(aws_config::Region::new(region));
    }
    Client::new(&loader.load().await)
}

/// Runs until `shutdown` resolves or the controller stops taking changes.
pub async fn run(
    client: Client,
    config: SqsConfig,
    changes: ChangeSender,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    // Start the clock: a consumer that never receives must age into the lagging alert too.
    metrics.sqs_received(SystemTime::now(), Duration::ZERO);
    info!(queue = %config.queue_url, "consuming rotation events from SQS");
    loop {
        let receive = client
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(config.wait_seconds.clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send();
        let output = tokio::select! {
            () = &mut shutdown => return,
            out = receive => out,
        };
        let messages = match output {
            Ok(out) => {
                failures = 0;
                let messages = out.messages.unwrap_or_default();
                let now = SystemTime::now();
                let oldest = messages
                    .iter()
                    .filter_map(|m| sent_at(m).and_then(|sent| now.duration_since(sent).ok()))
                    .max()
                    .unwrap_or_default();
                metrics.sqs_received(now, oldest);
                messages
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let delay = crate::controller::backoff::failure_delay(failures)
                    .min(Duration::from_secs(30));
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&err), retry_in = ?delay, "failed to receive from SQS");
                metrics.event("sqs", "receive_failed");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        for message in messages {
            let received = Instant::now();
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.as_deref().unwrap_or_default();
            metrics.event("sqs", "received");
            let delete = match parse::parse(body.as_bytes()) {
                Ok(Notification::Changed { names, .. }) => {
                    let change = RemoteChange {
                        source: "sqs",
                        names,
                        received,
                    };
                    // A full channel waits for the controller; shutdown must not.
                    let sent = tokio::select! {
                        () = &mut shutdown => return,
                        sent = changes.send(change) => sent,
                    };
                    if sent.is_err() {
                        // The controller is gone; leave the message for the next replica.
                        return;
                    }
                    true
                }
                Ok(Notification::Irrelevant { reason }) => {
                    debug!(message_id = %id, reason, "ignored event");
                    metrics.event("sqs", "ignored");
                    true
                }
                Ok(Notification::Unrecognised { detail_type }) => {
                    // Deleted like an ignored event (a retry would not help), but counted apart.
                    debug!(message_id = %id, detail_type, "event not in the event table; counted and deleted");
                    metrics.event("sqs", "unrecognised");
                    metrics.unrecognised_event(&detail_type);
                    true
                }
                Err(err) => {
                    warn!(message_id = %id, error = %err, "malformed rotation event (payload not logged)");
                    metrics.event("sqs", "malformed");
                    config.malformed == MalformedPolicy::Delete
                }
            };
            let Some(handle) = message.receipt_handle.as_deref().filter(|_| delete) else {
                continue;
            };
            let deleted = client
                .delete_message()
                .queue_url(&config.queue_url)
                .receipt_handle(handle)
                .send();
            // An undeleted message comes back after its visibility timeout; handling is idempotent.
            let deleted = tokio::select! {
                () = &mut shutdown => return,
                deleted = deleted => deleted,
            };
            if let Err(err) = deleted {
                warn!(message_id = %id, error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "failed to delete handled message");
            }
        }
    }
}

/// When SQS accepted the message (its `SentTimestamp`, milliseconds since the epoch).
fn sent_at(message: &Message) -> Option<SystemTime> {
    let millis: u64 = message
        .attributes
        .as_ref()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_queue_url() {
        assert_eq!(
            region_of("https://sqs.eu-west-1.amazonaws.com/123456789012/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:4566/123456789012/q"), None);
    }

    #[test]
    fn sent_timestamp_is_milliseconds_since_the_epoch() {
        let message = Message::builder()
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000123")
            .build();
        assert_eq!(
            sent_at(&message),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(sent_at(&Message::builder().build()), None);
    }
}
