//! Sends to one queue, settled only when the broker accepts. Batches go to Service Bus as
//! its batch format, one transfer per envelope; a generic broker gets them one by one.
//!
//! The SDK's sender holds its link for the whole round trip of a send, so one link carries
//! one send at a time. A few links share the load: a slow send (or one on a connection that
//! just died) holds up only its own link, and concurrent requests go out on the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use azure_core_amqp::{
    AmqpMessage, AmqpSendOptions, AmqpSendOutcome, AmqpSender, AmqpSenderApis, AmqpSenderOptions,
    AmqpTarget, SenderSettleMode,
};
use tokio::sync::{Mutex, MutexGuard};

use super::codec::{BATCH_FORMAT, batches, to_amqp};
use super::connection::{Connection, Live, OPEN_TIMEOUT, outcome_name, unavailable};
use crate::queue::{OutgoingMessage, QueueError, QueueSender};

/// Links per queue and process: enough that a stalled send does not hold up the others;
/// each costs the broker one link.
const SENDER_LINKS: usize = 4;

#[derive(Debug)]
pub struct AmqpQueueSender {
    connection: Arc<Connection>,
    queue: String,
    links: [Mutex<Option<SenderLink>>; SENDER_LINKS],
    next: AtomicUsize,
    max_message_bytes: usize,
}

struct SenderLink {
    live: Arc<Live>,
    sender: AmqpSender,
}

impl std::fmt::Debug for SenderLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderLink")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl AmqpQueueSender {
    pub fn new(connection: Arc<Connection>, queue: &str, max_message_bytes: usize) -> Self {
        Self {
            connection,
            queue: queue.to_owned(),
            links: std::array::from_fn(|_| Mutex::new(None)),
            next: AtomicUsize::new(0),
            max_message_bytes,
        }
    }

    /// A free link slot, or, when all are busy, the next one in turn.
    async fn slot(&self) -> MutexGuard<'_, Option<SenderLink>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..SENDER_LINKS {
            if let Ok(slot) = self.links[(start + i) % SENDER_LINKS].try_lock() {
                return slot;
            }
        }
        self.links[start % SENDER_LINKS].lock().await
    }

    async fn attach(&self) -> Result<SenderLink, QueueError> {
        let live = self.connection.live().await?;
        self.connection.authorize(&live, &self.queue).await?;
        let sender = AmqpSender::new();
        let address = self.connection.address(&self.queue, "");
        let attached = tokio::time::timeout(
            OPEN_TIMEOUT,
            sender.attach(
                &live.session,
                format!("{}-sender-{}", self.queue, uuid::Uuid::new_v4()),
                AmqpTarget::from(address),
                Some(AmqpSenderOptions {
                    sender_settle_mode: Some(SenderSettleMode::Unsettled),
                    ..AmqpSenderOptions::default()
                }),
            ),
        )
        .await
        .map_err(|_| unavailable("attaching the sender timed out"))?;
        if let Err(e) = attached {
            return Err(self.connection.failed(&live, &e));
        }
        Ok(SenderLink { live, sender })
    }

    /// Sends once on a link; a lost link is dropped for the next call to reattach.
    async fn send_once(
        &self,
        message: &AmqpMessage,
        format: Option<u32>,
    ) -> Result<(), QueueError> {
        let mut slot = self.slot().await;
        if slot.as_ref().is_none_or(|l| l.live.is_broken()) {
            *slot = Some(self.attach().await?);
        }
        let Some(link) = slot.as_ref() else {
            return Err(unavailable("no sender link"));
        };
        let options = format.map(|f| AmqpSendOptions {
            message_format: Some(f),
            settled: None,
        });
        let sent = self
            .connection
            .answer(&link.live, link.sender.send_ref(message, options), "a send")
            .await;
        let Some(sent) = sent else {
            *slot = None;
            return Err(unavailable(
                "the connection was lost before the broker answered the send",
            ));
        };
        match sent {
            Ok(AmqpSendOutcome::Accepted) => Ok(()),
            Ok(other) => Err(QueueError::unavailable(format!(
                "the broker did not accept the message: {}",
                outcome_name(&other)
            ))),
            Err(e) => {
                let error = self.connection.failed(&link.live, &e);
                *slot = None;
                Err(error)
            }
        }
    }

    /// Sends, with one retry on a fresh link after a dropped one: message ids are stable, so
    /// the broker's duplicate detection drops a copy that had in fact arrived.
    async fn send_with_retry(
        &self,
        message: &AmqpMessage,
        format: Option<u32>,
    ) -> Result<(), QueueError> {
        match self.send_once(message, format).await {
            Err(QueueError::Unavailable { detail: first, .. }) => {
                tracing::info!(queue = %self.queue, error = %first, "send failed; retrying on a new link");
                self.send_once(message, format).await
            }
            other => other,
        }
    }

    fn check_size(&self, message: &OutgoingMessage) -> Result<(), QueueError> {
        if message.body.len() > self.max_message_bytes {
            return Err(QueueError::MessageTooLarge {
                size: message.body.len(),
                limit: self.max_message_bytes,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl QueueSender for AmqpQueueSender {
    async fn send(&self, message: OutgoingMessage) -> Result<(), QueueError> {
        self.check_size(&message)?;
        self.send_with_retry(&to_amqp(&message), None).await
    }

    /// Every message is checked before any is sent, so a refused batch sends nothing.
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        for m in &messages {
            self.check_size(m)?;
        }
        if !self.connection.settings.is_service_bus() {
            for m in &messages {
                self.send_with_retry(&to_amqp(m), None).await?;
            }
            return Ok(());
        }
        let envelopes = batches(&messages, self.max_message_bytes)
            .map_err(|e| QueueError::unavailable(format!("encoding a batch: {e}")))?;
        for envelope in &envelopes {
            self.send_with_retry(envelope, Some(BATCH_FORMAT)).await?;
        }
        Ok(())
    }
}
