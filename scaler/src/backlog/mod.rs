//! Where a queue's backlog comes from: a cheap counter on the broker, polled at most once a
//! second per queue and slower whenever the broker pushes back.

pub mod rabbitmq;
pub mod servicebus;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::ScalerMetrics;
use crate::queues::Queues;

/// Why a backlog read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{url}: {detail}")]
    Failed { url: String, detail: String },
    /// The broker asked us to slow down.
    #[error("{url}: throttled; retry after {retry_after:?}")]
    Throttled { url: String, retry_after: Duration },
    #[error("the broker has no queue {0:?}")]
    NoSuchQueue(String),
}

impl ReadError {
    pub fn failed(url: &str, detail: impl Into<String>) -> Self {
        Self::Failed {
            url: url.to_owned(),
            detail: detail.into(),
        }
    }

    /// The outcome label of the reads counter.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Failed { .. } => "failed",
            Self::Throttled { .. } => "throttled",
            Self::NoSuchQueue(_) => "no_such_queue",
        }
    }
}

/// The broker the backlog is read from.
#[derive(Debug, Clone)]
pub enum Backlog {
    /// Service Bus: the queue's ActiveMessageCount (runtime properties).
    ServiceBus(servicebus::RuntimeProperties),
    /// RabbitMQ: the queue's ready messages (management API).
    RabbitMq(Box<rabbitmq::Management>),
}

impl Backlog {
    /// Messages waiting on `queue`, not counting those consumers hold.
    pub async fn read(&self, queue: &str, timeout: Duration) -> Result<u64, ReadError> {
        match self {
            Self::ServiceBus(properties) => properties.active_messages(queue, timeout).await,
            Self::RabbitMq(management) => management
                .queue_counts(queue, timeout)
                .await
                .map(|c| c.ready),
        }
    }

    /// What the scaler says it reads, in its start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::ServiceBus(p) => format!("Service Bus runtime properties at {}", p.base()),
            Self::RabbitMq(m) => format!("RabbitMQ management API at {}", m.base()),
        }
    }
}

/// How often the backlog is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOptions {
    /// Between two reads of one queue while no replica reports: one second at most, so a
    /// message at zero is seen within it.
    pub interval: Duration,
    /// Between two reads while replicas report: a message on an idle queue is then taken by
    /// a replica within its receive wait and reported at once, so the backlog only feeds
    /// the HPA, which syncs every 15 s. Reads cost the broker (Service Bus throttles them).
    pub with_replicas: Duration,
    /// The longest wait between reads after failures (the interval doubles per failure).
    pub max_backoff: Duration,
}

impl PollOptions {
    /// One read's deadline: an answer later than a poll interval is no use.
    fn timeout(&self) -> Duration {
        self.interval.max(Duration::from_millis(500)) * 2
    }
}

/// Reads one queue's backlog for as long as the scaler runs.
#[derive(Debug)]
pub struct Poller {
    pub backlog: Backlog,
    pub queues: Arc<Queues>,
    pub options: PollOptions,
    pub metrics: ScalerMetrics,
}

impl Poller {
    /// The wait before the next read of `queue`, as the replicas' reports stand.
    fn interval(&self, queue: &str) -> Duration {
        let reporting = self
            .queues
            .load(queue, Instant::now())
            .map_or(0, |l| l.replicas);
        if reporting > 0 {
            self.options.with_replicas
        } else {
            self.options.interval
        }
    }

    pub async fn run(self, queue: String) {
        let mut backoff = self.options.interval;
        let mut failing = false;
        loop {
            let mut wait = self.interval(&queue);
            let started = Instant::now();
            let read = self.backlog.read(&queue, self.options.timeout()).await;
            let outcome = read.as_ref().map_or_else(ReadError::label, |_| "ok");
            self.metrics
                .broker_reads
                .with_label_values(&[&queue, outcome])
                .inc();
            match read {
                Ok(count) => {
                    if failing {
                        info!(queue, backlog = count, "backlog read again");
                    }
                    failing = false;
                    self.queues.backlog_read(&queue, Ok(count), Instant::now());
                    backoff = self.options.interval;
                }
                Err(e) => {
                    if !failing {
                        warn!(queue, error = %e, "backlog read failed; backing off");
                    }
                    failing = true;
                    backoff = match &e {
                        ReadError::Throttled { retry_after, .. } => *retry_after,
                        _ => backoff * 2,
                    }
                    .clamp(self.options.interval, self.options.max_backoff);
                    wait = backoff;
                    self.queues
                        .backlog_read(&queue, Err(e.to_string()), Instant::now());
                }
            }
            tokio::time::sleep_until(started + wait).await;
        }
    }
}
