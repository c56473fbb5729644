//! The embedded in-process queue: Service Bus semantics without a server.
//!
//! Peek-lock with a lock duration (an unsettled message reappears when its lock expires),
//! a delivery count, a max delivery count after which the message moves to the dead-letter
//! queue, complete / abandon / dead-letter with a reason, and duplicate detection on
//! `message_id`. Time is tokio's, so tests can run it with paused time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Broker, DeadLetter, LockToken, OutgoingMessage, QueueError, QueueReceiver, QueueSender,
    QueueSettings, ReceivedMessage,
};

/// Reason Service Bus gives when a message was delivered too often.
pub const MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";

#[derive(Debug, Clone)]
struct Stored {
    message_id: String,
    content_type: String,
    body: Bytes,
    properties: std::collections::BTreeMap<String, String>,
    delivery_count: u32,
    enqueued_at: DateTime<Utc>,
}

impl Stored {
    fn received(
        &self,
        lock_token: LockToken,
        locked_until: Instant,
        max_delivery_count: u32,
    ) -> ReceivedMessage {
        ReceivedMessage {
            message_id: self.message_id.clone(),
            content_type: self.content_type.clone(),
            body: self.body.clone(),
            properties: self.properties.clone(),
            delivery_count: self.delivery_count,
            last_attempt: self.delivery_count >= max_delivery_count,
            enqueued_at: self.enqueued_at,
            lock_token,
            locked_until,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Stored>,
    locked: HashMap<LockToken, (Stored, Instant)>,
    dead: Vec<DeadLetter>,
    seen_ids: HashMap<String, Instant>,
    seen_order: VecDeque<(Instant, String)>,
    unavailable: bool,
}

/// One queue.
#[derive(Debug)]
pub struct EmbeddedQueue {
    name: String,
    settings: QueueSettings,
    state: Mutex<State>,
    arrivals: Notify,
}

impl EmbeddedQueue {
    pub fn new(name: &str, settings: QueueSettings) -> Self {
        Self {
            name: name.to_owned(),
            settings,
            state: Mutex::new(State::default()),
            arrivals: Notify::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent data (every mutation is a single
        // move between collections), so a poisoned lock is safe to keep using.
        crate::sync::lock(&self.state)
    }

    /// Messages waiting to be received (not locked, not dead-lettered).
    pub fn active_count(&self) -> usize {
        let mut st = self.state();
        self.reclaim_expired(&mut st);
        st.ready.len()
    }

    /// Messages currently locked by a receiver.
    pub fn locked_count(&self) -> usize {
        let mut st = self.state();
        self.reclaim_expired(&mut st);
        st.locked.len()
    }

    /// The dead-letter queue's contents, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut st = self.state();
        self.reclaim_expired(&mut st);
        st.dead.clone()
    }

    /// Fault injection for tests: an unavailable queue refuses every operation, as an
    /// unreachable broker would.
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_available(&self, available: bool) {
        self.state().unavailable = !available;
        self.arrivals.notify_waiters();
    }

    fn check_available(&self, st: &State) -> Result<(), QueueError> {
        if st.unavailable {
            Err(QueueError::unavailable(format!(
                "embedded queue {} is switched off",
                self.name
            )))
        } else {
            Ok(())
        }
    }

    /// Expired locks put their message back, or into the dead-letter queue once it has been
    /// delivered `max_delivery_count` times.
    fn reclaim_expired(&self, st: &mut State) {
        let now = Instant::now();
        let expired: Vec<LockToken> = st
            .locked
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for token in expired {
            if let Some((msg, _)) = st.locked.remove(&token) {
                tracing::debug!(queue = %self.name, message_id = %msg.message_id, "message lock expired");
                self.return_or_dead_letter(st, msg);
            }
        }
    }

    fn return_or_dead_letter(&self, st: &mut State, msg: Stored) {
        if msg.delivery_count >= self.settings.max_delivery_count {
            tracing::warn!(
                queue = %self.name,
                message_id = %msg.message_id,
                delivery_count = msg.delivery_count,
                "message dead-lettered after its max delivery count"
            );
            let description = format!(
                "the message was delivered {} times, the queue's max delivery count",
                msg.delivery_count
            );
            let message = msg.received(
                LockToken(String::new()),
                Instant::now(),
                self.settings.max_delivery_count,
            );
            st.dead.push(DeadLetter {
                message,
                reason: MAX_DELIVERY_COUNT_EXCEEDED.to_owned(),
                description,
            });
        } else {
            st.ready.push_front(msg);
            self.arrivals.notify_waiters();
        }
    }

    fn take_locked(&self, st: &mut State, lock: &LockToken) -> Result<Stored, QueueError> {
        self.check_available(st)?;
        self.reclaim_expired(st);
        st.locked
            .remove(lock)
            .map(|(m, _)| m)
            .ok_or(QueueError::LockLost)
    }

    fn is_duplicate(&self, st: &mut State, message_id: &str, now: Instant) -> bool {
        let window = self.settings.duplicate_detection_window;
        while let Some((at, _)) = st.seen_order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((at, id)) = st.seen_order.pop_front()
                && st.seen_ids.get(&id) == Some(&at)
            {
                st.seen_ids.remove(&id);
            }
        }
        if window.is_zero() || message_id.is_empty() {
            return false;
        }
        if st.seen_ids.contains_key(message_id) {
            return true;
        }
        st.seen_ids.insert(message_id.to_owned(), now);
        st.seen_order.push_back((now, message_id.to_owned()));
        false
    }

    fn try_take(&self, max: usize) -> Result<(Vec<ReceivedMessage>, Option<Instant>), QueueError> {
        let mut st = self.state();
        self.check_available(&st)?;
        self.reclaim_expired(&mut st);
        let now = Instant::now();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut msg) = st.ready.pop_front() else {
                break;
            };
            msg.delivery_count += 1;
            let token = LockToken(uuid::Uuid::new_v4().to_string());
            let until = now + self.settings.lock_duration;
            out.push(msg.received(token.clone(), until, self.settings.max_delivery_count));
            st.locked.insert(token, (msg, until));
        }
        let next_expiry = st.locked.values().map(|(_, until)| *until).min();
        Ok((out, next_expiry))
    }
}

#[async_trait]
impl QueueSender for EmbeddedQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<(), QueueError> {
        if message.body.len() > self.settings.max_message_bytes {
            return Err(QueueError::MessageTooLarge {
                size: message.body.len(),
                limit: self.settings.max_message_bytes,
            });
        }
        let mut st = self.state();
        self.check_available(&st)?;
        let now = Instant::now();
        if self.is_duplicate(&mut st, &message.message_id, now) {
            tracing::debug!(queue = %self.name, message_id = %message.message_id, "duplicate message dropped");
            return Ok(());
        }
        st.ready.push_back(Stored {
            message_id: message.message_id,
            content_type: message.content_type,
            body: message.body,
            properties: message.properties,
            delivery_count: 0,
            enqueued_at: Utc::now(),
        });
        drop(st);
        self.arrivals.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl QueueReceiver for EmbeddedQueue {
    fn queue(&self) -> &str {
        &self.name
    }

    fn messaging_system(&self) -> &'static str {
        "embedded"
    }

    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let deadline = Instant::now() + max_wait;
        loop {
            // Register for wake-ups before looking, so a send between the look and the
            // wait is not missed.
            let notified = self.arrivals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let (messages, next_expiry) = self.try_take(max.max(1))?;
            if !messages.is_empty() {
                return Ok(messages);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_expiry.map_or(deadline, |e| e.min(deadline));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn complete(&self, lock: &LockToken) -> Result<(), QueueError> {
        let mut st = self.state();
        self.take_locked(&mut st, lock).map(drop)
    }

    async fn abandon(&self, lock: &LockToken) -> Result<(), QueueError> {
        let mut st = self.state();
        let msg = self.take_locked(&mut st, lock)?;
        self.return_or_dead_letter(&mut st, msg);
        Ok(())
    }

    async fn dead_letter(
        &self,
        lock: &LockToken,
        reason: &str,
        description: &str,
    ) -> Result<(), QueueError> {
        let mut st = self.state();
        let msg = self.take_locked(&mut st, lock)?;
        let message = msg.received(
            lock.clone(),
            Instant::now(),
            self.settings.max_delivery_count,
        );
        st.dead.push(DeadLetter {
            message,
            reason: reason.to_owned(),
            description: description.to_owned(),
        });
        Ok(())
    }

    async fn renew_lock(&self, lock: &LockToken) -> Result<Instant, QueueError> {
        let mut st = self.state();
        self.check_available(&st)?;
        self.reclaim_expired(&mut st);
        let until = Instant::now() + self.settings.lock_duration;
        match st.locked.get_mut(lock) {
            Some((_, locked_until)) => {
                *locked_until = until;
                Ok(until)
            }
            None => Err(QueueError::LockLost),
        }
    }
}

/// Queues by name, created on first use; shared by every function in one process.
#[derive(Debug, Default)]
pub struct EmbeddedBroker {
    settings: QueueSettings,
    queues: Mutex<HashMap<String, Arc<EmbeddedQueue>>>,
}

impl EmbeddedBroker {
    pub fn new(settings: QueueSettings) -> Self {
        Self {
            settings,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// The queue called `name`, created if new.
    pub fn queue(&self, name: &str) -> Arc<EmbeddedQueue> {
        let mut queues = crate::sync::lock(&self.queues);
        queues
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(EmbeddedQueue::new(name, self.settings)))
            .clone()
    }
}

impl Broker for EmbeddedBroker {
    fn sender(&self, queue: &str) -> Result<Arc<dyn QueueSender>, QueueError> {
        Ok(self.queue(queue))
    }

    fn receiver(&self, queue: &str) -> Result<Arc<dyn QueueReceiver>, QueueError> {
        Ok(self.queue(queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> QueueSettings {
        QueueSettings {
            lock_duration: Duration::from_secs(30),
            max_delivery_count: 3,
            duplicate_detection_window: Duration::from_secs(60),
            max_message_bytes: 1024,
        }
    }

    async fn send(q: &EmbeddedQueue, id: &str) {
        q.send(OutgoingMessage::json(id, format!("{{\"id\":\"{id}\"}}")))
            .await
            .unwrap();
    }

    async fn one(q: &EmbeddedQueue) -> ReceivedMessage {
        let mut got = q.receive(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.len(), 1, "expected one message");
        got.remove(0)
    }

    #[tokio::test(start_paused = true)]
    async fn complete_removes_the_message() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        let m = one(&q).await;
        assert_eq!((m.message_id.as_str(), m.delivery_count), ("a", 1));
        q.complete(&m.lock_token).await.unwrap();
        assert_eq!(q.active_count() + q.locked_count(), 0);
        assert_eq!(q.complete(&m.lock_token).await, Err(QueueError::LockLost));
    }

    #[tokio::test(start_paused = true)]
    async fn abandon_redelivers_with_a_higher_count_then_dead_letters() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        for expected in 1..=3 {
            let m = one(&q).await;
            assert_eq!(m.delivery_count, expected);
            assert_eq!(
                m.last_attempt,
                expected == 3,
                "the third of three is the last"
            );
            q.abandon(&m.lock_token).await.unwrap();
        }
        assert_eq!(q.active_count(), 0);
        let dead = q.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, MAX_DELIVERY_COUNT_EXCEEDED);
        assert_eq!(dead[0].message.message_id, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lock_makes_the_message_reappear() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        let first = one(&q).await;
        assert!(
            q.receive(1, Duration::from_secs(5))
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        let again = one(&q).await;
        assert_eq!(again.delivery_count, 2);
        assert_eq!(
            q.complete(&first.lock_token).await,
            Err(QueueError::LockLost)
        );
        q.complete(&again.lock_token).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_receiver_wakes_when_a_lock_expires() {
        let q = Arc::new(EmbeddedQueue::new("q", settings()));
        send(&q, "a").await;
        let _held = one(&q).await;
        let again = q.receive(1, Duration::from_secs(120)).await.unwrap();
        assert_eq!(again[0].delivery_count, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn renewing_keeps_the_lock() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        let m = one(&q).await;
        tokio::time::advance(Duration::from_secs(20)).await;
        q.renew_lock(&m.lock_token).await.unwrap();
        tokio::time::advance(Duration::from_secs(20)).await;
        q.complete(&m.lock_token).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn dead_letter_keeps_reason_and_description() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        let m = one(&q).await;
        q.dead_letter(&m.lock_token, "MalformedMessage", "not JSON")
            .await
            .unwrap();
        let dead = q.dead_letters();
        assert_eq!(
            (dead[0].reason.as_str(), dead[0].description.as_str()),
            ("MalformedMessage", "not JSON")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_within_the_window_are_dropped() {
        let q = EmbeddedQueue::new("q", settings());
        send(&q, "a").await;
        send(&q, "a").await;
        assert_eq!(q.active_count(), 1);
        tokio::time::advance(Duration::from_secs(61)).await;
        send(&q, "a").await;
        assert_eq!(q.active_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn receive_returns_at_most_max() {
        let q = EmbeddedQueue::new("q", settings());
        for i in 0..5 {
            send(&q, &i.to_string()).await;
        }
        assert_eq!(q.receive(3, Duration::ZERO).await.unwrap().len(), 3);
        assert_eq!(q.active_count(), 2);
    }

    #[tokio::test]
    async fn oversized_and_unavailable_sends_fail_clearly() {
        let q = EmbeddedQueue::new("q", settings());
        let big = OutgoingMessage::json("big", vec![b'x'; 2048]);
        assert!(matches!(
            q.send(big).await,
            Err(QueueError::MessageTooLarge { .. })
        ));
        q.set_available(false);
        assert!(matches!(
            q.send(OutgoingMessage::json("a", "{}")).await,
            Err(QueueError::Unavailable { .. })
        ));
        q.set_available(true);
        send(&q, "a").await;
    }
}
