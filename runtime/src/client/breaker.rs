//! A consecutive-failure circuit breaker.
//!
//! Closed: calls pass; `failures` consecutive transient failures open it. Open: calls fail
//! fast for `open_for`. Then one probe call passes (half-open): success closes the circuit,
//! failure opens it again. A probe that never reports (its caller was cancelled) is
//! replaced after another `open_for`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_since: Instant },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Whether a call may go ahead now.
    pub fn try_acquire(&self) -> bool {
        let now = Instant::now();
        let mut st = self.state();
        match *st {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                *st = State::HalfOpen { probe_since: now };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probe_since } if now >= probe_since + self.open_for => {
                *st = State::HalfOpen { probe_since: now };
                true
            }
            State::HalfOpen { .. } => false,
        }
    }

    pub fn record_success(&self) {
        *self.state() = State::Closed { failures: 0 };
    }

    /// Records a transient failure; returns true when this opened the circuit.
    pub fn record_failure(&self) -> bool {
        let now = Instant::now();
        let mut st = self.state();
        match *st {
            State::Closed { failures } if failures + 1 < self.threshold => {
                *st = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::Closed { .. } | State::HalfOpen { .. } => {
                *st = State::Open {
                    until: now + self.open_for,
                };
                true
            }
            State::Open { .. } => false,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_once() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.try_acquire());
            assert!(!b.record_failure());
        }
        assert!(b.try_acquire());
        assert!(b.record_failure(), "third failure opens");
        assert!(!b.try_acquire(), "open fails fast");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.try_acquire(), "one probe");
        assert!(!b.try_acquire(), "only one probe");
        b.record_success();
        assert!(!b.is_open());
        assert!(b.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.record_failure();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire());
        assert!(b.record_failure());
        assert!(!b.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let b = CircuitBreaker::new(2, Duration::from_secs(5));
        b.record_failure();
        b.record_success();
        assert!(!b.record_failure());
        assert!(!b.is_open());
    }
}
