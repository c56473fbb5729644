//! The queue pump: bounds, lock renewal, failure handling and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use runtime::MessageError;
use runtime::client::Backoff;
use runtime::dispatch::{DispatchOptions, InFlight, QueueHandler, run_pump};
use runtime::lifecycle::Shutdown;
use runtime::queue::embedded::EmbeddedQueue;
use runtime::queue::{OutgoingMessage, QueueSender, QueueSettings, ReceivedMessage};
use runtime::telemetry::Metrics;
use tokio::task::JoinHandle;

fn queue(lock: Duration) -> Arc<EmbeddedQueue> {
    Arc::new(EmbeddedQueue::new(
        "q",
        QueueSettings {
            lock_duration: lock,
            max_delivery_count: 5,
            ..QueueSettings::default()
        },
    ))
}

fn options(concurrency: usize, prefetch: usize, grace: Duration) -> DispatchOptions {
    DispatchOptions {
        max_concurrency: concurrency,
        prefetch,
        handler_timeout: Duration::from_secs(60),
        receive_wait: Duration::from_millis(20),
        drain_grace: grace,
        redelivery_delay: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    }
}

fn start(
    q: &Arc<EmbeddedQueue>,
    handler: impl QueueHandler,
    options: DispatchOptions,
) -> (Shutdown, Metrics, JoinHandle<()>) {
    start_counted(q, handler, options, InFlight::default())
}

/// As [`start`], counting what the pump holds in `in_flight`.
fn start_counted(
    q: &Arc<EmbeddedQueue>,
    handler: impl QueueHandler,
    options: DispatchOptions,
    in_flight: InFlight,
) -> (Shutdown, Metrics, JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let metrics = Metrics::new("test").unwrap();
    let pump = tokio::spawn(run_pump(
        q.clone(),
        Arc::new(handler),
        options,
        metrics.clone(),
        shutdown.clone(),
        in_flight,
        || {},
    ));
    (shutdown, metrics, pump)
}

async fn send(q: &EmbeddedQueue, n: usize) {
    for i in 0..n {
        q.send(OutgoingMessage::json(format!("m{i}"), "{}"))
            .await
            .unwrap();
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn settled(m: &Metrics, outcome: &str) -> u64 {
    m.queue_settled.with_label_values(&[outcome]).get()
}

#[tokio::test]
async fn never_runs_more_than_the_concurrency_nor_locks_more_than_concurrency_plus_prefetch() {
    let q = queue(Duration::from_secs(30));
    send(&q, 20).await;
    let running = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = {
        let (running, gate) = (running.clone(), gate.clone());
        move |_m: ReceivedMessage| {
            let (running, gate) = (running.clone(), gate.clone());
            async move {
                running.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), MessageError>(())
            }
        }
    };
    let in_flight = InFlight::default();
    let (shutdown, metrics, pump) = start_counted(
        &q,
        handler,
        options(3, 2, Duration::from_secs(5)),
        in_flight.clone(),
    );
    until("three handlers running", || {
        running.load(Ordering::SeqCst) == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.load(Ordering::SeqCst), 3);
    assert_eq!(q.locked_count(), 5, "3 running + 2 prefetched");
    assert_eq!(
        in_flight.count(),
        5,
        "what the scaler is told: every lock held"
    );
    gate.add_permits(100);
    until("all completed", || settled(&metrics, "completed") == 20).await;
    until("nothing held", || in_flight.count() == 0).await;
    shutdown.trigger();
    pump.await.unwrap();
}

#[tokio::test]
async fn locks_are_renewed_while_a_handler_runs_longer_than_the_lock() {
    let q = queue(Duration::from_millis(200));
    send(&q, 1).await;
    let handler = |_m: ReceivedMessage| async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        Ok::<(), MessageError>(())
    };
    let (shutdown, metrics, pump) = start(&q, handler, options(1, 0, Duration::from_secs(5)));
    until("completed", || settled(&metrics, "completed") == 1).await;
    assert!(metrics.queue_lock_renewals.get() >= 2);
    assert_eq!(metrics.queue_locks_lost.get(), 0);
    assert_eq!(q.active_count() + q.locked_count(), 0);
    shutdown.trigger();
    pump.await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_abandons_and_the_pump_survives() {
    let q = queue(Duration::from_secs(30));
    send(&q, 1).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        move |_m: ReceivedMessage| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("boom");
                }
                Ok::<(), MessageError>(())
            }
        }
    };
    let (shutdown, metrics, pump) = start(&q, handler, options(1, 0, Duration::from_secs(5)));
    until("completed after the panic", || {
        settled(&metrics, "completed") == 1
    })
    .await;
    assert_eq!(settled(&metrics, "abandoned"), 1);
    shutdown.trigger();
    pump.await.unwrap();
}

#[tokio::test]
async fn a_handler_past_its_timeout_is_abandoned() {
    let q = queue(Duration::from_secs(30));
    send(&q, 1).await;
    let handler = |_m: ReceivedMessage| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<(), MessageError>(())
    };
    let mut o = options(1, 0, Duration::from_secs(5));
    o.handler_timeout = Duration::from_millis(50);
    let (shutdown, metrics, pump) = start(&q, handler, o);
    until("abandoned", || settled(&metrics, "abandoned") >= 1).await;
    shutdown.trigger();
    pump.await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_message_finish_within_the_grace() {
    let q = queue(Duration::from_secs(30));
    send(&q, 1).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let started = started.clone();
        move |_m: ReceivedMessage| {
            let started = started.clone();
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<(), MessageError>(())
            }
        }
    };
    let (shutdown, metrics, pump) = start(&q, handler, options(1, 0, Duration::from_secs(5)));
    started.notified().await;
    shutdown.trigger();
    q.send(OutgoingMessage::json("late", "{}")).await.unwrap();
    pump.await.unwrap();
    assert_eq!(
        settled(&metrics, "completed"),
        1,
        "the in-flight message finished"
    );
    assert_eq!(
        q.active_count(),
        1,
        "the message sent after shutdown was not taken"
    );
    assert_eq!(q.locked_count(), 0);
}

#[tokio::test]
async fn shutdown_releases_what_cannot_finish_in_time_so_nothing_is_lost() {
    let q = queue(Duration::from_secs(30));
    send(&q, 4).await;
    let handler = |_m: ReceivedMessage| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<(), MessageError>(())
    };
    let in_flight = InFlight::default();
    let mut reported = in_flight.subscribe();
    let (shutdown, metrics, pump) = start_counted(
        &q,
        handler,
        options(2, 2, Duration::from_millis(100)),
        in_flight.clone(),
    );
    until("four locked", || q.locked_count() == 4).await;
    assert_eq!(in_flight.count(), 4);
    drop(in_flight);
    shutdown.trigger();
    pump.await.unwrap();
    assert_eq!(
        *reported.borrow_and_update(),
        0,
        "a drained pump holds nothing"
    );
    assert!(reported.has_changed().is_err(), "and its count is closed");
    assert_eq!(q.locked_count(), 0);
    assert_eq!(q.active_count(), 4, "every message is back in the queue");
    assert_eq!(settled(&metrics, "completed"), 0);
    assert_eq!(settled(&metrics, "abandoned"), 4);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_held_longer_each_time_before_redelivery() {
    let q = queue(Duration::from_secs(30));
    send(&q, 1).await;
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = {
        let attempts = attempts.clone();
        move |m: ReceivedMessage| {
            attempts
                .lock()
                .unwrap()
                .push((m.delivery_count, tokio::time::Instant::now()));
            async { Err::<(), _>(MessageError::Transient("downstream restarting".into())) }
        }
    };
    let mut o = options(1, 0, Duration::from_secs(5));
    o.redelivery_delay = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(8),
    };
    let (shutdown, metrics, pump) = start(&q, handler, o);
    for _ in 0..600 {
        if attempts.lock().unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // Equal jitter: between half and all of 2 s, 4 s, 8 s.
    for (gap, nominal) in gaps.iter().zip([2u64, 4, 8]) {
        let nominal = Duration::from_secs(nominal);
        assert!(
            *gap >= nominal / 2 && *gap <= nominal + Duration::from_millis(100),
            "{gaps:?}"
        );
    }
    assert_eq!(
        seen.iter().map(|a| a.0).collect::<Vec<_>>()[..4],
        [1, 2, 3, 4],
        "each hold ends in a redelivery"
    );
    // Shutdown cuts a hold short: the message goes back at once, not after the delay.
    let before = tokio::time::Instant::now();
    shutdown.trigger();
    pump.await.unwrap();
    assert!(before.elapsed() < Duration::from_secs(1));
    assert!(settled(&metrics, "abandoned") >= 4);
    assert_eq!(q.locked_count(), 0);
}
