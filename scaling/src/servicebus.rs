//! KEDA's `azure-servicebus` scaler on a queue (SCALING.md §3): ActiveMessageCount against
//! `messageCount` per replica, active above `activationMessageCount`.

use crate::hpa::num;
use crate::keda::{MetricSpec, Reading, ScalerAnswer};
use crate::objects::MetricType;

/// What the broker holds for a queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages ready for delivery.
    pub active: u64,
    /// Messages locked by a receiver (prefetched or being handled).
    pub locked: u64,
}

/// One `azure-servicebus` trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBusScaler {
    pub metric: MetricSpec,
    pub activation_message_count: f64,
    /// Whether locked messages are in ActiveMessageCount. Service Bus's documentation
    /// defines the count as messages "ready for delivery", and one user saw it stay 0 while
    /// 10 prefetched messages were locked (SCALING.md §3), so the default is `false`;
    /// unverified on a live namespace, hence a parameter.
    pub counts_locked: bool,
}

impl ServiceBusScaler {
    pub fn new(
        index: usize,
        queue: &str,
        message_count: f64,
        activation_message_count: f64,
        metric_type: MetricType,
    ) -> Self {
        Self {
            metric: MetricSpec {
                name: format!("s{index}-azure-servicebus-{queue}"),
                target: message_count,
                metric_type,
            },
            activation_message_count,
            counts_locked: false,
        }
    }

    /// The scaler's answer for `counts` (one management-API read), or the read's error.
    pub fn answer(&self, counts: Result<QueueCounts, String>) -> ScalerAnswer {
        let reading = counts.map(|c| {
            let value = c.active + if self.counts_locked { c.locked } else { 0 };
            let value = value as f64;
            let active = value > self.activation_message_count;
            let what = if self.counts_locked {
                "ActiveMessageCount (with locked)"
            } else {
                "ActiveMessageCount"
            };
            Reading {
                values: vec![value],
                active,
                why: format!(
                    "{what} {} {} activationMessageCount {}",
                    num(value),
                    if active { ">" } else { "≤" },
                    num(self.activation_message_count)
                ),
            }
        });
        ScalerAnswer {
            metrics: vec![self.metric.clone()],
            reading,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_strictly_above_the_activation_count() {
        let s = ServiceBusScaler::new(0, "q", 5.0, 10.0, MetricType::AverageValue);
        let at = |active| {
            s.answer(Ok(QueueCounts { active, locked: 0 }))
                .reading
                .unwrap()
        };
        assert!(!at(10).active);
        assert!(at(11).active);
        assert_eq!(
            at(11).why,
            "ActiveMessageCount 11 > activationMessageCount 10"
        );
    }

    #[test]
    fn locked_messages_count_only_when_the_parameter_says_so() {
        let mut s = ServiceBusScaler::new(0, "q", 5.0, 0.0, MetricType::AverageValue);
        let busy = QueueCounts {
            active: 0,
            locked: 16,
        };
        let r = s.answer(Ok(busy)).reading.unwrap();
        assert_eq!((r.values[0], r.active), (0.0, false));
        s.counts_locked = true;
        let r = s.answer(Ok(busy)).reading.unwrap();
        assert_eq!((r.values[0], r.active), (16.0, true));
    }
}
