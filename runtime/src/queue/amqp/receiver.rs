//! Receives one queue in peek-lock mode with a bounded credit, and settles.
//!
//! The link's credit is the most messages the broker may hand us ahead of settlement; the
//! pump's own bound (handlers plus prefetch) sets it, so no message waits here with a lock
//! ticking. Settlement goes back on the link the message came on: complete is `accepted`,
//! abandon is `modified` with `delivery-failed` (`released` on a generic broker), dead-letter
//! is `rejected` with the Service Bus dead-letter error.
//!
//! On a generic broker each receiver link has a session of its own, so that it can be
//! retired alone (Service Bus needs no session end: a lost delivery's lock expires and the
//! message comes back). The SDK
//! (fe2o3-amqp 0.16) takes the broker's delivery count from a flow frame while deliveries sent
//! before it still wait in the link's buffer, counts those again, and then refuses the last
//! deliveries of the credit as "transfer limit exceeded": they are lost inside the client
//! while the broker holds them as delivered. On RabbitMQ 3.10 that happened a few times per
//! thousand messages; the messages stayed stuck until the connection closed. A link that
//! refuses a delivery is retired: receiving moves to a fresh link at once, the old one keeps
//! settling what it holds, and when it holds nothing its session ends, which makes the broker
//! put the lost deliveries back. They come again as redeliveries, never having been handled.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use azure_core_amqp::{
    AmqpDelivery, AmqpDeliveryApis, AmqpDeliveryOutcome, AmqpErrorKind, AmqpReceiver,
    AmqpReceiverApis, AmqpReceiverOptions, AmqpSession, AmqpSessionApis, AmqpSource,
    ReceiverCreditMode, ReceiverSettleMode,
};
use chrono::Utc;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::codec::{dead_letter_error, from_amqp, hex};
use super::connection::{Connection, Live, OPEN_TIMEOUT, unavailable};
use super::management::Management;
use crate::queue::{LockToken, QueueError, QueueReceiver, ReceivedMessage};
use crate::sync;

/// How long one wait on the link holds it: the link is shared with settlement, so a long
/// wait would hold completes back.
const RECEIVE_SLICE: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct AmqpQueueReceiver {
    connection: Arc<Connection>,
    queue: String,
    credit: u32,
    /// The queue's max delivery count, where the broker's delivery counts can be compared
    /// with it (Service Bus).
    max_delivery_count: Option<u32>,
    link: Mutex<Option<Arc<ReceiverLink>>>,
    /// Received messages not yet settled, by lock token.
    unsettled: std::sync::Mutex<HashMap<LockToken, Unsettled>>,
    /// Received but not yet returned by `receive` (it was cancelled): handed out next time.
    ready: std::sync::Mutex<VecDeque<ReceivedMessage>>,
}

struct ReceiverLink {
    live: Arc<Live>,
    /// The link's own session on a generic broker (see the module docs); Service Bus links
    /// share the connection's.
    session: Option<AmqpSession>,
    receiver: AmqpReceiver,
    management: Option<Management>,
    /// No longer receives; settles what it holds, then ends its session.
    retired: AtomicBool,
    ended: AtomicBool,
}

impl std::fmt::Debug for ReceiverLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverLink")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Unsettled {
    link: Arc<ReceiverLink>,
    delivery: AmqpDelivery,
    service_bus_token: Option<uuid::Uuid>,
}

impl AmqpQueueReceiver {
    /// `credit`: at most this many messages delivered and not yet settled;
    /// `max_delivery_count`: the queue's, as configured on Service Bus.
    pub fn new(
        connection: Arc<Connection>,
        queue: &str,
        credit: u32,
        max_delivery_count: u32,
    ) -> Self {
        let counts = connection.settings.is_service_bus();
        Self {
            connection,
            queue: queue.to_owned(),
            credit: credit.max(1),
            max_delivery_count: counts.then_some(max_delivery_count),
            link: Mutex::new(None),
            unsettled: std::sync::Mutex::new(HashMap::new()),
            ready: std::sync::Mutex::new(VecDeque::new()),
        }
    }

    async fn attach(&self) -> Result<Arc<ReceiverLink>, QueueError> {
        let live = self.connection.live().await?;
        self.connection.authorize(&live, &self.queue).await?;
        let session = if self.connection.settings.is_service_bus() {
            None
        } else {
            let session = AmqpSession::new();
            let begun = tokio::time::timeout(
                OPEN_TIMEOUT,
                session.begin(&live.connection, Some(self.connection.session_options())),
            )
            .await
            .map_err(|_| unavailable("beginning the receiver's session timed out"))?;
            if let Err(e) = begun {
                return Err(self.connection.failed(&live, &e));
            }
            Some(session)
        };
        let receiver = AmqpReceiver::new();
        let source = AmqpSource::builder()
            .with_address(self.connection.address(&self.queue, ""))
            .build();
        let attached = tokio::time::timeout(
            OPEN_TIMEOUT,
            receiver.attach(
                session.as_ref().unwrap_or(&live.session),
                source,
                Some(AmqpReceiverOptions {
                    name: Some(format!("{}-receiver-{}", self.queue, uuid::Uuid::new_v4())),
                    receiver_settle_mode: Some(ReceiverSettleMode::First),
                    credit_mode: Some(ReceiverCreditMode::Auto(self.credit)),
                    auto_accept: false,
                    ..AmqpReceiverOptions::default()
                }),
            ),
        )
        .await
        .map_err(|_| unavailable("attaching the receiver timed out"))?;
        if let Err(e) = attached {
            return Err(self.connection.failed(&live, &e));
        }
        let management = if self.connection.settings.is_service_bus() {
            Some(Management::attach(&self.connection, &live, &self.queue).await?)
        } else {
            None
        };
        Ok(Arc::new(ReceiverLink {
            live,
            session,
            receiver,
            management,
            retired: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }))
    }

    async fn current_link(&self) -> Result<Arc<ReceiverLink>, QueueError> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot
            .as_ref()
            .filter(|l| !l.live.is_broken() && !l.retired.load(Ordering::Acquire))
        {
            return Ok(link.clone());
        }
        let link = self.attach().await?;
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Stops receiving on `link` (see the module docs); its session ends once it holds
    /// nothing.
    async fn retire(&self, link: &Arc<ReceiverLink>) {
        if link.retired.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(queue = %self.queue, "receiver link refused a delivery it was sent; moving to a fresh link");
        let mut slot = self.link.lock().await;
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, link))
        {
            *slot = None;
        }
        drop(slot);
        self.end_if_drained(link);
    }

    /// Ends a retired link's session once no unsettled message is held on it: the broker
    /// then puts back what it delivered that the client never saw.
    fn end_if_drained(&self, link: &Arc<ReceiverLink>) {
        if !link.retired.load(Ordering::Acquire)
            || sync::lock(&self.unsettled)
                .values()
                .any(|u| Arc::ptr_eq(&u.link, link))
            || link.ended.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let link = link.clone();
        tokio::spawn(async move {
            if let Some(session) = &link.session
                && let Err(e) = session.end().await
            {
                tracing::debug!(error = %e, "ending a retired receiver's session");
            }
        });
    }

    fn take(&self, lock: &LockToken) -> Result<Unsettled, QueueError> {
        let u = sync::lock(&self.unsettled)
            .remove(lock)
            .ok_or(QueueError::LockLost)?;
        if u.link.live.is_broken() {
            // The broker released it when the link dropped; it will be delivered again.
            return Err(QueueError::LockLost);
        }
        Ok(u)
    }

    async fn settle(
        &self,
        lock: &LockToken,
        outcome: AmqpDeliveryOutcome,
    ) -> Result<(), QueueError> {
        let u = self.take(lock)?;
        let settled = self
            .connection
            .answer(
                &u.link.live,
                u.link.receiver.settle_delivery(&u.delivery, outcome),
                "a settlement",
            )
            .await;
        let link = u.link.clone();
        drop(u);
        self.end_if_drained(&link);
        match settled {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.connection.failed(&link.live, &e);
                Err(QueueError::LockLost)
            }
            // The connection broke: the broker puts the message back itself.
            None => Err(QueueError::LockLost),
        }
    }

    fn to_received(&self, link: &Arc<ReceiverLink>, delivery: AmqpDelivery) -> ReceivedMessage {
        let d = from_amqp(delivery.message(), delivery.delivery_tag(), Utc::now());
        let token = LockToken(format!(
            "{}/{}",
            link.live.generation,
            hex(delivery.delivery_tag())
        ));
        let locked_for = d
            .locked_for
            .unwrap_or(self.connection.settings.lock_duration);
        sync::lock(&self.unsettled).insert(
            token.clone(),
            Unsettled {
                link: link.clone(),
                delivery,
                service_bus_token: d.lock_token,
            },
        );
        // A generic broker that does not count deliveries (RabbitMQ) still says a redelivery
        // is not the first: count it as the second, the least it can be.
        let delivery_count = if self.connection.settings.is_service_bus() || d.first_acquirer {
            d.delivery_count
        } else {
            d.delivery_count.max(2)
        };
        ReceivedMessage {
            message_id: d.message_id,
            content_type: d.content_type,
            body: d.body,
            properties: d.properties,
            delivery_count,
            last_attempt: self
                .max_delivery_count
                .is_some_and(|max| delivery_count >= max),
            enqueued_at: d.enqueued_at,
            lock_token: token,
            locked_until: Instant::now() + locked_for,
        }
    }
}

#[async_trait]
impl QueueReceiver for AmqpQueueReceiver {
    fn queue(&self) -> &str {
        &self.queue
    }

    /// Service Bus in production; RabbitMQ in local tests speaks the same protocol.
    fn messaging_system(&self) -> &'static str {
        "servicebus"
    }

    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let deadline = Instant::now() + max_wait;
        let link = self.current_link().await?;
        loop {
            let have = sync::lock(&self.ready).len();
            if have >= max {
                break;
            }
            // Wait in short slices so settlements on the same link get their turn; once
            // something arrived, only take what is already there.
            let slice = if have == 0 {
                RECEIVE_SLICE.min(deadline.saturating_duration_since(Instant::now()))
            } else {
                Duration::ZERO
            };
            match tokio::time::timeout(slice, link.receiver.receive_delivery()).await {
                Ok(Ok(delivery)) => {
                    let m = self.to_received(&link, delivery);
                    sync::lock(&self.ready).push_back(m);
                }
                Ok(Err(e)) if matches!(e.kind(), AmqpErrorKind::TransferLimitExceeded(_)) => {
                    self.retire(&link).await;
                    break;
                }
                Ok(Err(e)) => {
                    let error = self.connection.failed(&link.live, &e);
                    if sync::lock(&self.ready).is_empty() {
                        return Err(error);
                    }
                    break;
                }
                Err(_) if have > 0 || Instant::now() >= deadline => break,
                Err(_) => {}
            }
        }
        let mut ready = sync::lock(&self.ready);
        let n = ready.len().min(max);
        Ok(ready.drain(..n).collect())
    }

    async fn complete(&self, lock: &LockToken) -> Result<(), QueueError> {
        self.settle(lock, AmqpDeliveryOutcome::Accepted).await
    }

    /// Service Bus: `modified` with `delivery-failed`, which counts the delivery. A generic
    /// broker gets `released`: RabbitMQ's AMQP 1.0 plugin refuses `modified` by closing the
    /// whole session (every other message it holds then loses its lock), and a quorum
    /// queue counts a released message's deliveries itself (`x-delivery-limit`).
    async fn abandon(&self, lock: &LockToken) -> Result<(), QueueError> {
        let outcome = if self.connection.settings.is_service_bus() {
            AmqpDeliveryOutcome::Modified {
                delivery_failed: Some(true),
                undeliverable_here: Some(false),
                message_annotations: None,
            }
        } else {
            AmqpDeliveryOutcome::Released
        };
        self.settle(lock, outcome).await
    }

    async fn dead_letter(
        &self,
        lock: &LockToken,
        reason: &str,
        description: &str,
    ) -> Result<(), QueueError> {
        self.settle(
            lock,
            AmqpDeliveryOutcome::Rejected(Some(dead_letter_error(reason, description))),
        )
        .await
    }

    /// Service Bus: `com.microsoft:renew-lock` on the queue's `$management` node. A generic
    /// broker has no lock expiry (it holds an unsettled message for as long as the link
    /// lives), so renewal there only checks that the link still holds the message.
    async fn renew_lock(&self, lock: &LockToken) -> Result<Instant, QueueError> {
        let (link, token) = {
            let unsettled = sync::lock(&self.unsettled);
            let u = unsettled.get(lock).ok_or(QueueError::LockLost)?;
            (u.link.clone(), u.service_bus_token)
        };
        if link.live.is_broken() {
            return Err(QueueError::LockLost);
        }
        match (&link.management, token) {
            (Some(management), Some(token)) => management.renew_lock(token).await,
            (Some(_), None) => Err(QueueError::LockLost),
            (None, _) => Ok(Instant::now() + self.connection.settings.lock_duration),
        }
    }
}
