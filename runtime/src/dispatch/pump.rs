//! The run loop of a queue trigger.
//!
//! Two bounds keep locks safe (the reference's prefetch of 3000 let locks expire in a local
//! buffer and dead-lettered good messages):
//! - at most `max_concurrency` handlers run at once;
//! - at most `max_concurrency + prefetch` messages are locked by this pump at any time,
//!   running or waiting, and every one of them has its lock renewed until it is settled.
//!
//! On shutdown the pump stops receiving, abandons what it holds but has not started, lets
//! running handlers finish within the drain grace, then interrupts and abandons the rest.
//! Nothing is completed unless its handler succeeded, so nothing accepted is lost.
//!
//! The pump fetches, locks and settles; what happens to each message on its way to the
//! handler (its span, the hold before an abandon, metrics, the drain's interrupt, the
//! timeout, panic catching) is the [`super::layers`] stack.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{Instrument, info, warn};

use super::QueueHandler;
use super::in_flight::{HeldMessage, InFlight};
use super::layers::{self, Stops, trace::TracedService};
use super::policy::{Settlement, settlement_for};
use crate::client::Backoff;
use crate::lifecycle::Shutdown;
use crate::queue::{LockToken, QueueError, QueueReceiver, ReceivedMessage};
use crate::telemetry::Metrics;

/// Bounds and timeouts of one queue trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOptions {
    /// Handlers running at once.
    pub max_concurrency: usize,
    /// Messages locked ahead of a free handler.
    pub prefetch: usize,
    /// Longest a handler may run before its message is abandoned.
    pub handler_timeout: Duration,
    /// Longest one receive call waits for messages.
    pub receive_wait: Duration,
    /// How long running handlers may take to finish after shutdown begins.
    pub drain_grace: Duration,
    /// How long a message that failed transiently is held (its lock renewed) before it is
    /// abandoned, growing with its delivery count. Abandoning at once would spend the max
    /// delivery count in a second against a downstream that is restarting and dead-letter
    /// good messages; held, they ride out an outage of minutes. Zero base: no delay.
    pub redelivery_delay: Backoff,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
            prefetch: 16,
            handler_timeout: Duration::from_secs(120),
            receive_wait: Duration::from_secs(5),
            drain_grace: Duration::from_secs(20),
            redelivery_delay: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }
}

/// A locked message waiting for a handler; owns its slot, its lock renewal and its place
/// in the in-flight count.
struct Locked {
    message: ReceivedMessage,
    _slot: OwnedSemaphorePermit,
    renewal: RenewalGuard,
    _held: HeldMessage,
}

/// Stops renewing a lock when dropped.
struct RenewalGuard(AbortHandle);

impl Drop for RenewalGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the trigger until `shutdown` trips and the drain is over. `on_ready` is called once
/// the pump is receiving. `in_flight` counts every message from its lock to its settlement.
pub async fn run_pump(
    receiver: Arc<dyn QueueReceiver>,
    handler: Arc<dyn QueueHandler>,
    options: DispatchOptions,
    metrics: Metrics,
    shutdown: Shutdown,
    in_flight: InFlight,
    on_ready: impl FnOnce(),
) {
    let concurrency = options.max_concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency + options.prefetch));
    let workers = Arc::new(Semaphore::new(concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel::<Locked>();
    let interrupt = Shutdown::new();
    let service = layers::stack(
        handler,
        receiver.queue(),
        receiver.messaging_system(),
        options,
        metrics.clone(),
        Stops {
            shutdown: shutdown.clone(),
            interrupt: interrupt.clone(),
        },
    );

    let fetcher = tokio::spawn(fetch_loop(
        receiver.clone(),
        slots,
        tx,
        options,
        metrics.clone(),
        shutdown.clone(),
        in_flight,
    ));
    on_ready();

    let mut running = JoinSet::new();
    // A message taken from the buffer when shutdown began; released only once the fetcher
    // has stopped, or the fetcher could lock it again.
    let mut unstarted = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            next = rx.recv() => {
                let Some(locked) = next else { break };
                let permit = tokio::select! {
                    p = workers.clone().acquire_owned() => p,
                    _ = shutdown.wait() => {
                        unstarted = Some(locked);
                        break;
                    }
                };
                let Ok(permit) = permit else { break };
                running.spawn(process(
                    service.clone(),
                    receiver.clone(),
                    locked,
                    permit,
                    metrics.clone(),
                ));
            }
        }
    }

    // Stop receiving, then hand back what was locked but never started.
    let _ = fetcher.await;
    rx.close();
    if let Some(locked) = unstarted {
        release(&*receiver, locked, &metrics).await;
    }
    while let Some(locked) = rx.recv().await {
        release(&*receiver, locked, &metrics).await;
    }

    if !running.is_empty() {
        info!(
            in_flight = running.len(),
            grace_ms = options.drain_grace.as_millis() as u64,
            "draining in-flight messages"
        );
    }
    let grace = tokio::time::sleep(options.drain_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = running.join_next() => if next.is_none() { break },
            _ = &mut grace, if !interrupt.is_triggered() => {
                warn!(in_flight = running.len(), "drain grace over; abandoning unfinished messages");
                interrupt.trigger();
            }
        }
    }
    info!("queue trigger stopped");
}

async fn fetch_loop(
    receiver: Arc<dyn QueueReceiver>,
    slots: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Locked>,
    options: DispatchOptions,
    metrics: Metrics,
    shutdown: Shutdown,
    in_flight: InFlight,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            p = slots.clone().acquire_owned() => p,
        };
        let Ok(first) = first else { return };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        // `receive` is cancel-safe, so stopping mid-wait locks nothing.
        let received = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            r = receiver.receive(permits.len(), options.receive_wait) => r,
        };
        match received {
            Ok(messages) => {
                backoff = Duration::from_millis(100);
                metrics.queue_received.inc_by(messages.len() as u64);
                for message in messages {
                    let Some(slot) = permits.pop() else { break };
                    let renewal = RenewalGuard(
                        tokio::spawn(renew_lock(
                            receiver.clone(),
                            message.lock_token.clone(),
                            message.locked_until,
                            metrics.clone(),
                        ))
                        .abort_handle(),
                    );
                    let locked = Locked {
                        message,
                        _slot: slot,
                        renewal,
                        _held: in_flight.hold(),
                    };
                    if let Err(unsent) = tx.send(locked) {
                        release(&*receiver, unsent.0, &metrics).await;
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "receive failed; retrying");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Renews a lock when half its remaining time has passed, for as long as the guard lives.
async fn renew_lock(
    receiver: Arc<dyn QueueReceiver>,
    lock: LockToken,
    mut until: Instant,
    metrics: Metrics,
) {
    loop {
        let now = Instant::now();
        if until <= now {
            return;
        }
        tokio::time::sleep_until(now + (until - now) / 2).await;
        match receiver.renew_lock(&lock).await {
            Ok(new_until) => {
                metrics.queue_lock_renewals.inc();
                until = new_until;
            }
            Err(QueueError::LockLost) => {
                metrics.queue_locks_lost.inc();
                warn!("message lock lost while the message was held");
                return;
            }
            Err(e) => warn!(error = %e, "lock renewal failed; retrying"),
        }
    }
}

/// Runs one locked message through the layers, then settles it in the message's span.
async fn process(
    service: TracedService,
    receiver: Arc<dyn QueueReceiver>,
    locked: Locked,
    _worker: OwnedSemaphorePermit,
    metrics: Metrics,
) {
    let traced = service.call(locked.message.clone()).await;
    let settlement = settlement_for(traced.outcome);
    settle(&*receiver, &locked.message, settlement, &metrics)
        .instrument(traced.span)
        .await;
    // Renewal stops only now, after settlement.
    drop(locked.renewal);
}

async fn settle(
    receiver: &dyn QueueReceiver,
    message: &ReceivedMessage,
    settlement: Settlement,
    metrics: &Metrics,
) {
    let lock = &message.lock_token;
    let result = match &settlement {
        Settlement::Complete => receiver.complete(lock).await,
        Settlement::Abandon { why } => {
            warn!(why = %why, "message abandoned for redelivery");
            receiver.abandon(lock).await
        }
        Settlement::DeadLetter {
            reason,
            description,
        } => {
            warn!(reason = %reason, description = %description, "message dead-lettered");
            receiver.dead_letter(lock, reason, description).await
        }
    };
    match result {
        Ok(()) => {
            metrics
                .queue_settled
                .with_label_values(&[settlement.label()])
                .inc();
            if settlement == Settlement::Complete {
                info!("message completed");
            }
        }
        Err(QueueError::LockLost) => {
            // The broker will redeliver; handlers are idempotent, so the retry is harmless.
            metrics.queue_locks_lost.inc();
            metrics
                .queue_settled
                .with_label_values(&["lock_lost"])
                .inc();
            warn!(
                settlement = settlement.label(),
                "lock lost before settlement; the message will be redelivered"
            );
        }
        Err(e) => {
            metrics
                .queue_settled
                .with_label_values(&["settle_failed"])
                .inc();
            warn!(error = %e, settlement = settlement.label(), "settlement failed; the lock will expire and the message be redelivered");
        }
    }
}

async fn release(receiver: &dyn QueueReceiver, locked: Locked, metrics: &Metrics) {
    let why = "the host is shutting down".to_owned();
    settle(
        receiver,
        &locked.message,
        Settlement::Abandon { why },
        metrics,
    )
    .await;
}
