//! The host's own external scaler (`scaler/`, `fabrikam scaler`), as KEDA sees it through
//! an `external-push` trigger whose metadata names a queue: the metric is the queue's
//! backlog plus the messages its replicas hold, active above zero, and `true` is pushed when
//! the queue becomes busy and every keep-alive while it stays busy.
//!
//! [`InFlightScaler`] is the trigger's answer from figures the caller supplies (the local
//! run asks the real scaler over gRPC); [`InFlightModel`] is the scaler itself for the
//! simulator: the backlog as of its last poll, in flight as the replicas last reported.

use std::time::Duration;

use crate::keda::{MetricSpec, Reading, ScalerAnswer};
use crate::objects::MetricType;
use crate::servicebus::QueueCounts;

/// The scaler's figures for one queue: its two parts where they are known (the
/// simulator's model), or the sum KEDA's `GetMetrics` returns (the local run asks the real
/// scaler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlightReading {
    Parts { backlog: u64, in_flight: u64 },
    Total(u64),
}

impl InFlightReading {
    pub fn total(&self) -> u64 {
        match *self {
            Self::Parts { backlog, in_flight } => backlog + in_flight,
            Self::Total(total) => total,
        }
    }

    /// The figures, as the explain log shows them.
    pub fn describe(&self) -> String {
        match *self {
            Self::Parts { backlog, in_flight } => {
                format!("backlog {backlog} + in flight {in_flight}")
            }
            Self::Total(total) => format!("backlog + in flight {total}"),
        }
    }
}

/// One `external-push` trigger on the host's scaler.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightScaler {
    pub metric: MetricSpec,
}

impl InFlightScaler {
    pub fn new(index: usize, queue: &str, target: f64, metric_type: MetricType) -> Self {
        Self {
            metric: MetricSpec {
                name: format!("s{index}-queue-{queue}"),
                target,
                metric_type,
            },
        }
    }

    pub fn answer(&self, reading: Result<InFlightReading, String>) -> ScalerAnswer {
        let reading = reading.map(|r| {
            let value = r.total();
            Reading {
                values: vec![value as f64],
                active: value > 0,
                why: format!("{} {} 0", r.describe(), if value > 0 { ">" } else { "=" }),
            }
        });
        ScalerAnswer {
            metrics: vec![self.metric.clone()],
            reading,
        }
    }
}

/// The scaler's behaviour over time, for the simulator. Assumptions, each a parameter: the
/// backlog is read every `poll` while no replica runs and every `poll_with_replicas` while
/// some do; reports reach the scaler at once (replicas report becoming busy at once, and
/// otherwise within 250 ms, each report the most they held since the last).
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightModel {
    pub poll: Duration,
    pub poll_with_replicas: Duration,
    pub keepalive: Duration,
    /// Backlog reads made, for the broker-load figure.
    pub reads: u64,
    next_poll: Duration,
    backlog: u64,
    in_flight: u64,
    was_active: bool,
    last_push: Option<Duration>,
}

impl InFlightModel {
    /// `fabrikam scaler`'s defaults: a read a second at zero and every 5 s with replicas, a
    /// push every 5 s while busy.
    pub fn new() -> Self {
        Self::with(Duration::from_secs(1), Duration::from_secs(5))
    }

    pub fn with(poll: Duration, keepalive: Duration) -> Self {
        Self {
            poll,
            poll_with_replicas: Duration::from_secs(5).max(poll),
            keepalive,
            reads: 0,
            next_poll: Duration::ZERO,
            backlog: 0,
            in_flight: 0,
            was_active: false,
            last_push: None,
        }
    }

    /// What the broker and the replicas show at `now`: the backlog is taken only when a
    /// poll is due; in flight at once. `replicas` is how many run (and report).
    pub fn observe(&mut self, now: Duration, live: QueueCounts, replicas: u32) {
        if now >= self.next_poll {
            self.backlog = live.active;
            self.reads += 1;
            let every = if replicas > 0 {
                self.poll_with_replicas
            } else {
                self.poll
            };
            self.next_poll = now + every;
        }
        self.in_flight = live.locked;
    }

    pub fn reading(&self) -> InFlightReading {
        InFlightReading::Parts {
            backlog: self.backlog,
            in_flight: self.in_flight,
        }
    }

    /// Whether the stream pushes `true` at `now`, and why: on becoming busy, then every
    /// keep-alive while busy.
    pub fn push(&mut self, now: Duration) -> Option<String> {
        let r = self.reading();
        let active = r.total() > 0;
        let edge = active && !self.was_active;
        self.was_active = active;
        let keepalive = active && self.last_push.is_some_and(|at| now >= at + self.keepalive);
        if !(edge || keepalive) {
            return None;
        }
        self.last_push = Some(now);
        Some(format!(
            "{} > 0{}",
            r.describe(),
            if edge { "" } else { " (keep-alive)" }
        ))
    }
}

impl Default for InFlightModel {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_metric_counts_what_replicas_hold() {
        let s = InFlightScaler::new(0, "deliveries", 20.0, MetricType::AverageValue);
        let a = s.answer(Ok(InFlightReading::Parts {
            backlog: 0,
            in_flight: 3,
        }));
        assert_eq!(a.metrics[0].name, "s0-queue-deliveries");
        let r = a.reading.unwrap();
        assert_eq!((r.values[0], r.active), (3.0, true));
        assert_eq!(r.why, "backlog 0 + in flight 3 > 0");
    }

    #[test]
    fn a_message_at_zero_is_pushed_at_the_next_poll_then_kept_alive() {
        let mut m = InFlightModel::with(secs(1.0), secs(5.0));
        m.observe(secs(0.0), QueueCounts::default(), 0);
        assert_eq!(m.push(secs(0.0)), None);
        // Arrives at 0.3 s: the backlog is read at the 1 s poll.
        m.observe(
            secs(0.3),
            QueueCounts {
                active: 1,
                locked: 0,
            },
            0,
        );
        assert_eq!(m.push(secs(0.3)), None);
        m.observe(
            secs(1.0),
            QueueCounts {
                active: 1,
                locked: 0,
            },
            0,
        );
        assert!(m.push(secs(1.0)).is_some());
        // Taken by a replica: in flight, still active, pushed again only after 5 s.
        m.observe(
            secs(1.5),
            QueueCounts {
                active: 0,
                locked: 1,
            },
            0,
        );
        assert_eq!(m.push(secs(1.5)), None);
        assert!(m.push(secs(6.0)).unwrap().ends_with("(keep-alive)"));
        m.observe(secs(7.0), QueueCounts::default(), 1);
        assert_eq!(m.push(secs(20.0)), None);
        // Read at 0, 1 and 7 s; with a replica running, the next read is 5 s later.
        assert_eq!(m.reads, 3);
        m.observe(secs(11.9), QueueCounts::default(), 1);
        assert_eq!(m.reads, 3);
        m.observe(secs(12.0), QueueCounts::default(), 1);
        assert_eq!(m.reads, 4);
    }
}
