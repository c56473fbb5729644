//! The KEDA HTTP add-on (SCALING.md §4): the interceptor's counters, the scaler that samples
//! them every 500 ms into concurrency and a request rate, and the activity it pushes every
//! 200 ms on `StreamIsActive`.
//!
//! Sources: `kedacore/http-add-on:scaler/config.go` (the two periods),
//! `interceptor/middleware/counting.go` (what is counted), `pkg/queue/bucketing.go` (the
//! rate's buckets and `WindowAverage`, whose rules [`RateBuckets`] follows).

use std::time::Duration;

use crate::hpa::num;
use crate::keda::{MetricSpec, Reading, ScalerAnswer};
use crate::objects::{MetricType, Route};

/// `KEDA_HTTP_QUEUE_TICK_DURATION`: how often the scaler fetches the interceptors' counts.
pub const PING_PERIOD: Duration = Duration::from_millis(500);
/// `KEDA_HTTP_SCALER_STREAM_INTERVAL_MS`: how often the scaler sends `IsActive` on the stream.
pub const STREAM_PERIOD: Duration = Duration::from_millis(200);

/// One route's counters in the interceptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests inside the interceptor now: held for a replica, or being answered.
    pub concurrency: u64,
    /// Every request that entered, ever.
    pub request_count: u64,
}

/// A ring of per-`granularity` request counts over `window`, averaged as the add-on's
/// `WindowAverage` does: over the buckets since the first write (so a young window is not
/// diluted), and 0 once nothing was written for a whole window.
#[derive(Debug, Clone)]
pub struct RateBuckets {
    granularity: u64,
    window: u64,
    buckets: Vec<u64>,
    /// Bucket start times (ms) of the first and last write; `None` before any write.
    first_write: Option<u64>,
    last_write: u64,
    total: u64,
}

impl RateBuckets {
    pub fn new(window: Duration, granularity: Duration) -> Self {
        let granularity = (granularity.as_millis() as u64).max(1);
        let window = (window.as_millis() as u64).max(granularity);
        Self {
            granularity,
            window,
            buckets: vec![0; window.div_ceil(granularity) as usize],
            first_write: None,
            last_write: 0,
            total: 0,
        }
    }

    fn index(&self, bucket_time: u64) -> usize {
        ((bucket_time / self.granularity) % self.buckets.len() as u64) as usize
    }

    /// Zeroes the buckets after `from` up to and including `to`, as time moved past them.
    fn clear_between(&mut self, from: u64, to: u64) {
        let steps = ((to - from) / self.granularity).min(self.buckets.len() as u64);
        for step in 1..=steps {
            let i = self.index(from + step * self.granularity);
            self.total -= self.buckets[i];
            self.buckets[i] = 0;
        }
    }

    pub fn record(&mut self, now: Duration, value: u64) {
        let now = now.as_millis() as u64;
        let bucket_time = now - now % self.granularity;
        match self.first_write {
            None => self.first_write = Some(bucket_time),
            Some(_) if bucket_time > self.last_write => {
                if bucket_time - self.last_write >= self.window {
                    self.buckets.iter_mut().for_each(|b| *b = 0);
                    self.total = 0;
                    self.first_write = Some(bucket_time);
                } else {
                    self.clear_between(self.last_write, bucket_time);
                }
            }
            // Older than a window before the last write: ignored.
            Some(_) if bucket_time + self.window <= self.last_write => return,
            Some(_) => {}
        }
        self.last_write = self.last_write.max(bucket_time);
        let i = self.index(bucket_time);
        self.buckets[i] += value;
        self.total += value;
    }

    /// Requests per `granularity`, averaged over the window (three decimals).
    pub fn window_average(&self, now: Duration) -> f64 {
        let Some(first) = self.first_write else {
            return 0.0;
        };
        let now = now.as_millis() as u64;
        let now = now - now % self.granularity;
        let valid =
            ((self.last_write - first) / self.granularity + 1).min(self.buckets.len() as u64);
        let total = if now <= self.last_write {
            self.total
        } else if now - self.last_write < self.window {
            let steps = (now - self.last_write) / self.granularity;
            let stale: u64 = (1..=steps)
                .map(|s| self.buckets[self.index(self.last_write + s * self.granularity)])
                .sum();
            self.total - stale
        } else {
            return 0.0;
        };
        ((total as f64 / valid as f64) * 1000.0).round() / 1000.0
    }
}

/// The add-on's scaler for one InterceptorRoute, behind an `external-push` trigger.
#[derive(Debug, Clone)]
pub struct AddonScaler {
    concurrency: Option<MetricSpec>,
    rate: Option<(MetricSpec, RateBuckets)>,
    /// The last sample of the interceptors' concurrency.
    sampled_concurrency: u64,
    last_count: Option<u64>,
    last_ping: Option<Duration>,
}

impl AddonScaler {
    /// The scaler for `route`, whose ScaledObject trigger is number `index`.
    pub fn new(index: usize, route: &Route) -> Self {
        let spec = |kind: &str, target: f64| MetricSpec {
            name: format!("s{index}-{}-{kind}", route.name),
            target,
            metric_type: MetricType::AverageValue,
        };
        Self {
            concurrency: route.concurrency_target.map(|t| spec("concurrency", t)),
            rate: route.request_rate.map(|r| {
                (
                    spec("requestRate", r.target),
                    RateBuckets::new(r.window, r.granularity),
                )
            }),
            sampled_concurrency: 0,
            last_count: None,
            last_ping: None,
        }
    }

    /// Whether a ping is due at `now` (every [`PING_PERIOD`]).
    pub fn ping_due(&self, now: Duration) -> bool {
        self.last_ping.is_none_or(|last| now >= last + PING_PERIOD)
    }

    /// A fetch of the interceptors' counters at `now`: the concurrency sampled as it is, the
    /// requests since the last fetch into the rate's buckets (zeros too, as every fetch
    /// records).
    pub fn ping(&mut self, now: Duration, counters: Counters) {
        self.last_ping = Some(now);
        self.sampled_concurrency = counters.concurrency;
        // The interceptor's count starts at 0 with it, so the first sample counts every
        // request so far (a request held before the first sample must wake the function).
        // A counter that went back (an interceptor restarted) counts as no new requests.
        let delta = counters
            .request_count
            .saturating_sub(self.last_count.unwrap_or(0));
        self.last_count = Some(counters.request_count);
        if let Some((_, buckets)) = &mut self.rate {
            buckets.record(now, delta);
        }
    }

    fn values(&self, now: Duration) -> Vec<(String, f64)> {
        let mut values = Vec::new();
        if self.concurrency.is_some() {
            values.push(("concurrency".to_owned(), self.sampled_concurrency as f64));
        }
        if let Some((_, buckets)) = &self.rate {
            values.push(("requestRate".to_owned(), buckets.window_average(now)));
        }
        values
    }

    /// `IsActive`: any value above 0; with the values, for the explain log.
    pub fn is_active(&self, now: Duration) -> (bool, String) {
        let values = self.values(now);
        let active = values.iter().any(|(_, v)| *v > 0.0);
        let why = values
            .iter()
            .map(|(k, v)| format!("{k} {}", num(*v)))
            .collect::<Vec<_>>()
            .join(", ");
        (
            active,
            format!("{why} {}", if active { "> 0" } else { "all 0" }),
        )
    }

    /// `GetMetrics` and `IsActive` as one answer.
    pub fn answer(&self, now: Duration) -> ScalerAnswer {
        let mut metrics = Vec::new();
        metrics.extend(self.concurrency.clone());
        metrics.extend(self.rate.as_ref().map(|(m, _)| m.clone()));
        let (active, why) = self.is_active(now);
        ScalerAnswer {
            metrics,
            reading: Ok(Reading {
                values: self.values(now).into_iter().map(|(_, v)| v).collect(),
                active,
                why,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::RequestRate;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A route scaled on its request rate: 50 a second per replica over a minute.
    fn rate_route() -> Route {
        Route {
            name: "r".into(),
            path_prefixes: vec![],
            concurrency_target: None,
            request_rate: Some(RequestRate {
                target: 50.0,
                granularity: Duration::from_secs(1),
                window: Duration::from_secs(60),
            }),
            readiness_timeout: None,
        }
    }

    #[test]
    fn the_rate_averages_over_the_buckets_since_the_first_write() {
        let mut b = RateBuckets::new(Duration::from_secs(60), Duration::from_secs(1));
        b.record(ms(0), 10);
        // One bucket of data: 10 per second.
        assert_eq!(b.window_average(ms(500)), 10.0);
        b.record(ms(1_000), 0);
        assert_eq!(b.window_average(ms(1_000)), 5.0);
        // No write since t=1 s: the average keeps the written span and drops nothing yet.
        assert_eq!(b.window_average(ms(30_000)), 5.0);
        // The last write leaves the window: 0.
        assert_eq!(b.window_average(ms(61_000)), 0.0);
    }

    #[test]
    fn a_request_stays_in_the_rate_for_one_window_when_every_ping_records() {
        let route = rate_route();
        let mut s = AddonScaler::new(0, &route);
        let mut count = 0;
        let mut t = ms(0);
        let mut last_active = None;
        while t <= Duration::from_secs(120) {
            if t == Duration::from_secs(10) {
                count += 1;
            }
            s.ping(
                t,
                Counters {
                    concurrency: 0,
                    request_count: count,
                },
            );
            if s.is_active(t).0 {
                last_active = Some(t);
            }
            t += PING_PERIOD;
        }
        // Recorded in the bucket of t=10 s, gone once that bucket leaves the 60 s window.
        assert_eq!(last_active, Some(ms(69_500)));
    }

    #[test]
    fn a_request_counted_before_the_first_sample_is_in_the_rate() {
        let route = rate_route();
        let mut s = AddonScaler::new(0, &route);
        s.ping(
            ms(0),
            Counters {
                concurrency: 1,
                request_count: 1,
            },
        );
        assert!(s.is_active(ms(0)).0);
    }

    #[test]
    fn concurrency_is_what_the_last_sample_saw() {
        // SCALING.md §6: a 50 ms request every 60 s is usually between two 500 ms samples,
        // so a concurrency-only route looks idle.
        let route = Route {
            name: "r".into(),
            path_prefixes: vec![],
            concurrency_target: Some(100.0),
            request_rate: None,
            readiness_timeout: None,
        };
        let mut s = AddonScaler::new(0, &route);
        let mut seen_active = false;
        for tick in 0..(600_000 / 500) {
            let now = ms(tick * 500);
            // The request runs from 60 s × k + 120 ms to + 170 ms: never at a sample.
            s.ping(
                now,
                Counters {
                    concurrency: 0,
                    request_count: tick / 120,
                },
            );
            seen_active |= s.is_active(now).0;
        }
        assert!(!seen_active);
        s.ping(
            ms(600_500),
            Counters {
                concurrency: 3,
                request_count: 10,
            },
        );
        let answer = s.answer(ms(600_500));
        assert_eq!(answer.metrics[0].name, "s0-r-concurrency");
        assert_eq!(answer.reading.unwrap().values, vec![3.0]);
    }
}
