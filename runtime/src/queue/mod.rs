//! Queue transports: one trait pair for sending and peek-lock receiving.
//!
//! The embedded transport ([`embedded`]) keeps local runs and tests free of servers; the
//! Service Bus transport (AMQP 1.0) implements the same traits. Semantics follow Service
//! Bus: a received message is locked for a lock duration, settled exactly once by complete,
//! abandon or dead-letter, and reappears when its lock expires.

pub mod amqp;
pub mod embedded;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::trace::{DIAGNOSTIC_ID, TRACEPARENT, TraceContext};

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Stable per request, so broker-side duplicate detection can drop retries.
    pub message_id: String,
    pub content_type: String,
    pub body: Bytes,
    /// Application properties (`operation`, `traceparent`, `Diagnostic-Id`).
    pub properties: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A JSON message.
    pub fn json(message_id: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            message_id: message_id.into(),
            content_type: "application/json".to_owned(),
            body: body.into(),
            properties: BTreeMap::new(),
        }
    }

    pub fn with_property(mut self, name: &str, value: impl Into<String>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }
}

/// Identifies one lock on one received message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockToken(pub String);

/// A message received in peek-lock mode.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub content_type: String,
    pub body: Bytes,
    pub properties: BTreeMap<String, String>,
    /// 1 on first delivery.
    pub delivery_count: u32,
    /// This delivery is the last: if it fails, the broker dead-letters the message instead
    /// of delivering it again, so a handler that holds something for the message (a drone)
    /// gives it back now. Known where the broker counts deliveries (Service Bus, the
    /// embedded queue); always false on a broker that does not (RabbitMQ 3.10 says only
    /// whether a delivery is the first).
    pub last_attempt: bool,
    pub enqueued_at: DateTime<Utc>,
    pub lock_token: LockToken,
    pub locked_until: Instant,
}

impl ReceivedMessage {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The producer's trace context: `traceparent`, or `Diagnostic-Id` from producers that
    /// only set that; `None` when neither holds a valid one.
    pub fn trace_context(&self) -> Option<TraceContext> {
        self.property(TRACEPARENT)
            .or(self.property(DIAGNOSTIC_ID))
            .and_then(TraceContext::parse)
    }
}

/// A message that was moved to the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub message: ReceivedMessage,
    pub reason: String,
    pub description: String,
}

/// A transport failure, classified, with the transport's own error, when there is one, as
/// its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached; the caller may retry later.
    #[error("queue unavailable: {detail}")]
    Unavailable {
        detail: String,
        #[source]
        cause: Option<crate::cause::Cause>,
    },
    /// The lock expired or was already settled: the message will be (or was) redelivered.
    #[error("message lock lost")]
    LockLost,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("no such queue: {0}")]
    NoSuchQueue(String),
}

impl QueueError {
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            cause: None,
        }
    }

    /// Unavailable because of `error`, which is kept as the source.
    pub fn unavailable_from(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            detail: error.to_string(),
            cause: Some(crate::cause::Cause::new(error)),
        }
    }
}

/// Sends messages; `send` returns only after the broker has accepted the message.
#[async_trait]
pub trait QueueSender: Send + Sync + Debug {
    async fn send(&self, message: OutgoingMessage) -> Result<(), QueueError>;

    /// Sends several messages; the default sends them one by one.
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }
}

/// Receives in peek-lock mode and settles.
#[async_trait]
pub trait QueueReceiver: Send + Sync + Debug {
    /// The queue's name (`messaging.destination.name` on each message's span).
    fn queue(&self) -> &str;

    /// The broker kind, as the OpenTelemetry `messaging.system` attribute names it.
    fn messaging_system(&self) -> &'static str;

    /// Waits up to `max_wait` for messages and returns between 0 and `max` of them, each
    /// locked. Must be cancel-safe: a dropped call leaves no message locked.
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Removes the message: it was handled.
    async fn complete(&self, lock: &LockToken) -> Result<(), QueueError>;

    /// Unlocks the message for redelivery; counts as a failed delivery.
    async fn abandon(&self, lock: &LockToken) -> Result<(), QueueError>;

    /// Moves the message to the dead-letter queue with a reason and a description.
    async fn dead_letter(
        &self,
        lock: &LockToken,
        reason: &str,
        description: &str,
    ) -> Result<(), QueueError>;

    /// Extends the lock; returns the new expiry.
    async fn renew_lock(&self, lock: &LockToken) -> Result<Instant, QueueError>;
}

/// Opens queues by name: what a function's bindings use to get its trigger and outputs.
pub trait Broker: Send + Sync + Debug {
    fn sender(&self, queue: &str) -> Result<Arc<dyn QueueSender>, QueueError>;
    fn receiver(&self, queue: &str) -> Result<Arc<dyn QueueReceiver>, QueueError>;
}

/// Settings that a broker keeps per queue; the embedded transport honours them, Service Bus
/// has them set on the queue itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub lock_duration: Duration,
    pub max_delivery_count: u32,
    /// Messages with a `message_id` seen within this window are dropped as duplicates.
    pub duplicate_detection_window: Duration,
    pub max_message_bytes: usize,
}

impl Default for QueueSettings {
    /// Service Bus defaults: 60 s locks, 10 deliveries, 10 minutes of duplicate detection,
    /// 256 KiB messages (Standard tier).
    fn default() -> Self {
        Self {
            lock_duration: Duration::from_secs(60),
            max_delivery_count: 10,
            duplicate_detection_window: Duration::from_secs(600),
            max_message_bytes: 256 * 1024,
        }
    }
}
