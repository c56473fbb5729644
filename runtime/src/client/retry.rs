//! Exponential backoff with jitter.

use std::time::Duration;

use http::HeaderMap;
use rand::Rng;

/// Delays grow as `base * 2^(attempt-1)` up to `max`; each is jittered to between half and
/// all of that ("equal jitter"), so retries from many workers spread out instead of
/// arriving together, while still waiting at least half the nominal delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1-based). A server's `Retry-After`
    /// is honoured when it asks for longer, up to `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let nominal = self.base.saturating_mul(exp).min(self.max);
        let half = nominal / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().min(u64::MAX as u128) as u64);
        let jittered = half + Duration::from_micros(jitter);
        match retry_after {
            Some(asked) if asked > jittered => asked.min(self.max),
            _ => jittered,
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used between our functions).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..200 {
            let d1 = b.delay(1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = b.delay(3, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d10 = b.delay(10, None);
            assert!(
                d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000),
                "{d10:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_secs(3),
        };
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(3)
        );
    }
}
