//! Per-message metrics: messages in flight, the handler's duration, and the start-up phase
//! of the first message handled. Inside the hold, so the delay before an abandon is not
//! counted as the handler's time.

use tokio::time::Instant;
use tower::{Layer, ServiceExt};

use super::MessageService;
use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl Layer<MessageService> for MetricsLayer {
    type Service = MessageService;

    fn layer(&self, inner: MessageService) -> MessageService {
        let metrics = self.metrics.clone();
        MessageService::new(tower::service_fn(move |message| {
            let call = inner.clone().oneshot(message);
            let metrics = metrics.clone();
            async move {
                metrics.queue_in_flight.inc();
                let started = Instant::now();
                let outcome = call.await;
                metrics
                    .queue_handler_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.handled_one();
                metrics.queue_in_flight.dec();
                outcome
            }
        }))
    }
}
