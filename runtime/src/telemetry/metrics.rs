//! Prometheus metrics. They live in one registry per function, so the dev launcher can run
//! five functions in one process and each `/metrics` shows only its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::startup::{Phase, seconds_since_start};

/// Every metric the host records for one function; a cheap handle to share.
///
/// Shared behind one `Arc` because the HTTP layer clones its state for every request, and
/// cloning a dozen metric handles there showed up in profiles.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// The metrics themselves, reached through [`Metrics`].
#[derive(Debug)]
pub struct MetricSet {
    registry: Registry,
    function: String,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub queue_received: IntCounter,
    pub queue_settled: IntCounterVec,
    pub queue_handler_duration: Histogram,
    pub queue_in_flight: IntGauge,
    pub queue_lock_renewals: IntCounter,
    pub queue_locks_lost: IntCounter,
    pub queue_sent: IntCounterVec,
    pub downstream_duration: HistogramVec,
    pub downstream_retries: IntCounterVec,
    pub downstream_breaker_open: IntGaugeVec,
    pub secret_reloads: IntCounterVec,
    startup_phase: GaugeVec,
    first_handled: AtomicBool,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// A fresh registry with every metric registered, labelled with the function's name.
    pub fn new(function: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            Some(crate::contract::PRODUCT.to_owned()),
            Some([("function".to_owned(), function.to_owned())].into()),
        )?;
        let m = MetricSet {
            function: function.to_owned(),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests served, by route template, method and status class.",
                ),
                &["route", "method", "status_class"],
            )?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time to answer an HTTP request.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "method"],
            )?,
            queue_received: IntCounter::new(
                "queue_messages_received_total",
                "Queue messages received.",
            )?,
            queue_settled: IntCounterVec::new(
                Opts::new(
                    "queue_messages_settled_total",
                    "Queue messages settled, by outcome.",
                ),
                &["outcome"],
            )?,
            queue_handler_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "queue_handler_duration_seconds",
                    "Time a queue handler took per message.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            queue_in_flight: IntGauge::new(
                "queue_messages_in_flight",
                "Messages being handled now.",
            )?,
            queue_lock_renewals: IntCounter::new(
                "queue_lock_renewals_total",
                "Message locks renewed.",
            )?,
            queue_locks_lost: IntCounter::new(
                "queue_locks_lost_total",
                "Message locks lost before settlement.",
            )?,
            queue_sent: IntCounterVec::new(
                Opts::new(
                    "queue_messages_sent_total",
                    "Messages sent to a queue, by result.",
                ),
                &["result"],
            )?,
            downstream_duration: HistogramVec::new(
                HistogramOpts::new(
                    "downstream_request_duration_seconds",
                    "Calls to other functions, per attempt.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["downstream", "outcome"],
            )?,
            downstream_retries: IntCounterVec::new(
                Opts::new(
                    "downstream_retries_total",
                    "Retried calls to other functions.",
                ),
                &["downstream"],
            )?,
            downstream_breaker_open: IntGaugeVec::new(
                Opts::new(
                    "downstream_circuit_open",
                    "1 while the circuit breaker to a downstream is open.",
                ),
                &["downstream"],
            )?,
            secret_reloads: IntCounterVec::new(
                Opts::new(
                    "secret_reloads_total",
                    "Secrets re-read from the source that changed (rotated) or could not be read (failed), by secret name.",
                ),
                &["secret", "outcome"],
            )?,
            startup_phase: GaugeVec::new(
                Opts::new(
                    "startup_phase_seconds",
                    "Seconds from process start until each start-up phase finished.",
                ),
                &["phase"],
            )?,
            first_handled: AtomicBool::new(false),
            registry,
        };
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.http_duration.clone()))?;
        m.registry.register(Box::new(m.queue_received.clone()))?;
        m.registry.register(Box::new(m.queue_settled.clone()))?;
        m.registry
            .register(Box::new(m.queue_handler_duration.clone()))?;
        m.registry.register(Box::new(m.queue_in_flight.clone()))?;
        m.registry
            .register(Box::new(m.queue_lock_renewals.clone()))?;
        m.registry.register(Box::new(m.queue_locks_lost.clone()))?;
        m.registry.register(Box::new(m.queue_sent.clone()))?;
        m.registry
            .register(Box::new(m.downstream_duration.clone()))?;
        m.registry
            .register(Box::new(m.downstream_retries.clone()))?;
        m.registry
            .register(Box::new(m.downstream_breaker_open.clone()))?;
        m.registry.register(Box::new(m.secret_reloads.clone()))?;
        m.registry.register(Box::new(m.startup_phase.clone()))?;
        Ok(Self(Arc::new(m)))
    }
}

impl MetricSet {
    /// Records that start-up reached `phase` now.
    pub fn record_phase(&self, phase: Phase) {
        self.startup_phase
            .with_label_values(&[phase.label()])
            .set(seconds_since_start());
    }

    /// Records [`Phase::FirstHandled`] the first time it is called; after that, one atomic
    /// load, cheap enough for every request.
    pub fn handled_one(&self) {
        if !self.first_handled.load(Ordering::Relaxed)
            && !self.first_handled.swap(true, Ordering::Relaxed)
        {
            self.record_phase(Phase::FirstHandled);
        }
    }

    /// The function these metrics belong to; log spans carry it too, so the five functions
    /// of `fabrikam dev`, which share one process and one stdout, can be told apart.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The registry, for functions that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format_with_the_function_label() {
        let m = Metrics::new("delivery").unwrap();
        m.http_requests
            .with_label_values(&["/api/deliveries/{id}", "GET", "2xx"])
            .inc();
        let text = m.render();
        assert!(text.contains("# TYPE fabrikam_http_requests_total counter"));
        assert!(text.contains("function=\"delivery\""));
    }
}
