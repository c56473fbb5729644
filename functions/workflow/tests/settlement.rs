//! The workflow behind the host's queue pump and the embedded queue: each settlement path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use runtime::dispatch::{DispatchOptions, InFlight, run_pump};
use runtime::lifecycle::Shutdown;
use runtime::queue::embedded::{EmbeddedQueue, MAX_DELIVERY_COUNT_EXCEEDED};
use runtime::queue::{QueueSender, QueueSettings};
use runtime::telemetry::Metrics;
use support::{Backends, delivery_body, outgoing};
use workflow::steps::reasons;

struct Running {
    queue: Arc<EmbeddedQueue>,
    shutdown: Shutdown,
    pump: tokio::task::JoinHandle<()>,
    metrics: Metrics,
}

fn run(b: &Backends, max_delivery_count: u32) -> Running {
    let queue = Arc::new(EmbeddedQueue::new(
        "deliveries",
        QueueSettings {
            lock_duration: Duration::from_secs(30),
            max_delivery_count,
            ..QueueSettings::default()
        },
    ));
    let processor = Arc::new(b.processor());
    let shutdown = Shutdown::new();
    let metrics = Metrics::new("workflow").unwrap();
    let options = DispatchOptions {
        max_concurrency: 4,
        prefetch: 2,
        handler_timeout: Duration::from_secs(10),
        receive_wait: Duration::from_millis(50),
        drain_grace: Duration::from_secs(2),
        redelivery_delay: runtime::client::Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
    };
    let handler = move |m| {
        let p = processor.clone();
        async move { p.handle(m).await }
    };
    let pump = tokio::spawn(run_pump(
        queue.clone(),
        Arc::new(handler),
        options,
        metrics.clone(),
        shutdown.clone(),
        InFlight::default(),
        || {},
    ));
    Running {
        queue,
        shutdown,
        pump,
        metrics,
    }
}

impl Running {
    async fn settled(&self, outcome: &str, n: u64) {
        for _ in 0..500 {
            if self
                .metrics
                .queue_settled
                .with_label_values(&[outcome])
                .get()
                >= n
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {n} {outcome} settlements:\n{}", self.metrics.render());
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.pump.await.unwrap();
    }
}

#[tokio::test]
async fn success_completes_the_message() {
    let b = Backends::start().await;
    let r = run(&b, 5);
    r.queue
        .send(outgoing("delivery", &delivery_body("d1")))
        .await
        .unwrap();
    r.settled("completed", 1).await;
    assert_eq!(r.queue.active_count() + r.queue.locked_count(), 0);
    assert_eq!(
        b.get(&b.config.delivery_url, "/api/deliveries/d1").await.0,
        200
    );
    r.stop().await;
}

#[tokio::test]
async fn a_transient_failure_is_abandoned_then_redelivered_and_completed() {
    let b = Backends::start().await;
    // The client retries 3 times, so 3 failures exhaust the first delivery only.
    b.faults.fail_delivery_put(503, 3);
    let r = run(&b, 5);
    r.queue
        .send(outgoing("delivery", &delivery_body("d1")))
        .await
        .unwrap();
    r.settled("abandoned", 1).await;
    r.settled("completed", 1).await;
    assert!(r.queue.dead_letters().is_empty());
    assert_eq!(
        b.get(&b.config.delivery_url, "/api/deliveries/d1").await.0,
        200
    );
    r.stop().await;
}

#[tokio::test]
async fn a_message_failing_every_time_is_dead_lettered_after_the_max_delivery_count() {
    let b = Backends::start().await;
    b.faults.fail_delivery_put(503, u32::MAX);
    let r = run(&b, 3);
    r.queue
        .send(outgoing("delivery", &delivery_body("d1")))
        .await
        .unwrap();
    r.settled("abandoned", 3).await;
    let dead = r.queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, MAX_DELIVERY_COUNT_EXCEEDED);
    assert_eq!(dead[0].message.delivery_count, 3);
    r.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_with_reason_and_description() {
    let b = Backends::start().await;
    b.faults.fail_delivery_put(400, u32::MAX);
    let r = run(&b, 10);
    r.queue
        .send(outgoing("delivery", &delivery_body("d1")))
        .await
        .unwrap();
    r.settled("dead_lettered", 1).await;
    let dead = r.queue.dead_letters();
    assert_eq!(dead[0].reason, reasons::DELIVERY_REJECTED);
    assert!(
        dead[0].description.contains("400"),
        "{}",
        dead[0].description
    );
    assert_eq!(dead[0].message.delivery_count, 1, "not retried");
    r.stop().await;
}

#[tokio::test]
async fn unknown_operations_are_dead_lettered() {
    let b = Backends::start().await;
    let r = run(&b, 10);
    r.queue
        .send(outgoing("frobnicate", &delivery_body("d1")))
        .await
        .unwrap();
    r.settled("dead_lettered", 1).await;
    assert_eq!(r.queue.dead_letters()[0].reason, reasons::UNKNOWN_OPERATION);
    r.stop().await;
}
