//! The host's own external scaler (`scaler/`, `fabrikam scaler`), as KEDA sees it through
//! an `external-push` trigger whose metadata names a queue: the metric is the queue's
//! backlog plus the messages its replicas hold, active above zero, and `true` is pushed when
//! the queue becomes busy and every keep-alive while it stays busy.
//!
//! [`InFlightScaler`] is the trigger's answer from figures the caller supplies (the local
//! run asks the real scaler over gRPC); [`InFlightModel`] is the scaler itself for the
//! simulator: the backlog as of its last poll, in flight as the replicas last reported.

use std::time::Duration;

use crate::hpa::num;
use crate::keda::{MetricSpec, Reading, ScalerAnswer};
use crate::objects::MetricType;
use crate::servicebus::QueueCounts;

/// The scaler's figures for one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlightReading {
    pub backlog: u64,
    pub in_flight: u64,
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
            let value = r.backlog + r.in_flight;
            Reading {
                values: vec![value as f64],
                active: value > 0,
                why: format!(
                    "backlog {} + in flight {} {} 0",
                    r.backlog,
                    r.in_flight,
                    if value > 0 { ">" } else { "=" }
                ),
            }
        });
        ScalerAnswer {
            metrics: vec![self.metric.clone()],
            reading,
        }
    }
}

/// The scaler's behaviour over time, for the simulator. Assumptions, each a parameter: the
/// backlog is read every `poll`; reports reach the scaler at once (replicas report on the
/// edge to or from zero at once, and otherwise within 250 ms).
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightModel {
    pub poll: Duration,
    pub keepalive: Duration,
    next_poll: Duration,
    backlog: u64,
    in_flight: u64,
    was_active: bool,
    last_push: Option<Duration>,
}

impl InFlightModel {
    /// `fabrikam scaler`'s defaults: a read a second, a push every 5 s while busy.
    pub fn new() -> Self {
        Self::with(Duration::from_secs(1), Duration::from_secs(5))
    }

    pub fn with(poll: Duration, keepalive: Duration) -> Self {
        Self {
            poll,
            keepalive,
            next_poll: Duration::ZERO,
            backlog: 0,
            in_flight: 0,
            was_active: false,
            last_push: None,
        }
    }

    /// What the broker and the replicas show at `now`: the backlog is taken only when a
    /// poll is due; in flight at once.
    pub fn observe(&mut self, now: Duration, live: QueueCounts) {
        if now >= self.next_poll {
            self.backlog = live.active;
            self.next_poll = now + self.poll;
        }
        self.in_flight = live.locked;
    }

    pub fn reading(&self) -> InFlightReading {
        InFlightReading {
            backlog: self.backlog,
            in_flight: self.in_flight,
        }
    }

    /// Whether the stream pushes `true` at `now`, and why: on becoming busy, then every
    /// keep-alive while busy.
    pub fn push(&mut self, now: Duration) -> Option<String> {
        let r = self.reading();
        let active = r.backlog + r.in_flight > 0;
        let edge = active && !self.was_active;
        self.was_active = active;
        let keepalive = active && self.last_push.is_some_and(|at| now >= at + self.keepalive);
        if !(edge || keepalive) {
            return None;
        }
        self.last_push = Some(now);
        Some(format!(
            "the scaler pushed: backlog {} + in flight {} > 0{}",
            num(r.backlog as f64),
            num(r.in_flight as f64),
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
        let a = s.answer(Ok(InFlightReading {
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
        m.observe(secs(0.0), QueueCounts::default());
        assert_eq!(m.push(secs(0.0)), None);
        // Arrives at 0.3 s: the backlog is read at the 1 s poll.
        m.observe(
            secs(0.3),
            QueueCounts {
                active: 1,
                locked: 0,
            },
        );
        assert_eq!(m.push(secs(0.3)), None);
        m.observe(
            secs(1.0),
            QueueCounts {
                active: 1,
                locked: 0,
            },
        );
        assert!(m.push(secs(1.0)).is_some());
        // Taken by a replica: in flight, still active, pushed again only after 5 s.
        m.observe(
            secs(1.5),
            QueueCounts {
                active: 0,
                locked: 1,
            },
        );
        assert_eq!(m.push(secs(1.5)), None);
        assert!(m.push(secs(6.0)).unwrap().ends_with("(keep-alive)"));
        m.observe(secs(7.0), QueueCounts::default());
        assert_eq!(m.push(secs(20.0)), None);
    }
}
