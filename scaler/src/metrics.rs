//! The scaler's own Prometheus metrics (`/metrics`): what it read from the broker, what the
//! replicas told it, and what it answered KEDA.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::time::Instant;

use crate::queues::Queues;

#[derive(Debug, Clone)]
pub struct ScalerMetrics {
    registry: Registry,
    /// Backlog reads per queue and outcome (`ok`, `failed`, `throttled`, `no_such_queue`):
    /// the load the scaler puts on the broker.
    pub broker_reads: IntCounterVec,
    /// Replica reports per outcome (`ok`, `refused`).
    pub reports: IntCounterVec,
    /// Replicas dropped for not reporting in time.
    pub replicas_expired: IntCounter,
    /// gRPC calls per method and outcome (`ok`, `error`).
    pub calls: IntCounterVec,
    /// `true`s sent on StreamIsActive, per queue.
    pub pushes: IntCounterVec,
    /// StreamIsActive streams open now.
    pub streams: IntGauge,
    backlog: IntGaugeVec,
    in_flight: IntGaugeVec,
    replicas: IntGaugeVec,
}

impl ScalerMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<_, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<_, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), &["queue"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let broker_reads = counter(
            "scaler_broker_reads_total",
            "Backlog reads made on the broker, by queue and outcome.",
            &["queue", "outcome"],
        )?;
        let reports = counter(
            "scaler_reports_total",
            "In-flight reports received from replicas, by outcome.",
            &["outcome"],
        )?;
        let calls = counter(
            "scaler_grpc_calls_total",
            "External scaler calls from KEDA, by method and outcome.",
            &["method", "outcome"],
        )?;
        let pushes = counter(
            "scaler_stream_pushes_total",
            "Activity pushed to KEDA on StreamIsActive, by queue.",
            &["queue"],
        )?;
        let replicas_expired = IntCounter::new(
            "scaler_replicas_expired_total",
            "Replicas dropped because they stopped reporting.",
        )?;
        registry.register(Box::new(replicas_expired.clone()))?;
        let streams = IntGauge::new("scaler_streams_open", "StreamIsActive streams open.")?;
        registry.register(Box::new(streams.clone()))?;
        Ok(Self {
            broker_reads,
            reports,
            replicas_expired,
            calls,
            pushes,
            streams,
            backlog: gauge("scaler_queue_backlog", "Messages waiting on the broker.")?,
            in_flight: gauge(
                "scaler_queue_in_flight",
                "Messages the reporting replicas hold.",
            )?,
            replicas: gauge("scaler_queue_replicas", "Replicas reporting in time.")?,
            registry,
        })
    }

    /// The text exposition, with the queues' gauges as they are now.
    pub fn render(&self, queues: &Queues) -> String {
        let now = Instant::now();
        for name in queues.names() {
            if let Ok(load) = queues.load(&name, now) {
                let gauge = |g: &IntGaugeVec, v: u64| {
                    g.with_label_values(&[&name])
                        .set(i64::try_from(v).unwrap_or(i64::MAX));
                };
                gauge(&self.backlog, load.backlog.unwrap_or(0));
                gauge(&self.in_flight, load.in_flight);
                gauge(&self.replicas, load.replicas as u64);
            }
        }
        let mut out = Vec::new();
        // Encoding to a Vec cannot fail for the text format.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
