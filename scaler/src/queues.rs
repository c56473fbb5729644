//! What the scaler knows of each queue it serves: the backlog the broker last reported and
//! the messages each replica says it holds. The metric KEDA reads is their sum.
//!
//! Every change is published on the queue's [`watch`] channel, so the `StreamIsActive`
//! streams see the edge where a queue becomes busy at once instead of at their next look.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One queue's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Messages waiting on the broker (Service Bus's ActiveMessageCount, RabbitMQ's ready
    /// messages); `None` until the first read, or once the last good read is too old.
    pub backlog: Option<u64>,
    /// Messages the reporting replicas hold: locked ahead of a handler or being handled,
    /// and not yet settled.
    pub in_flight: u64,
    /// Replicas whose last report is recent enough to count.
    pub replicas: usize,
}

impl Load {
    /// Backlog plus in flight, or `None` while the backlog is unknown: a metric without the
    /// backlog would tell KEDA a queue full of messages is idle.
    pub fn metric(&self) -> Option<u64> {
        self.backlog.map(|b| b + self.in_flight)
    }

    /// Whether anything waits or runs. In-flight work alone is activity: this is what keeps
    /// KEDA from scaling in replicas that are still handling messages.
    pub fn is_active(&self) -> bool {
        self.in_flight > 0 || self.backlog.is_some_and(|b| b > 0)
    }
}

/// Why a queue's load cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("this scaler does not serve queue {queue:?} (it serves {served})")]
    UnknownQueue { queue: String, served: String },
    #[error("the backlog of queue {queue:?} is unknown: {why}")]
    BacklogUnknown { queue: String, why: String },
}

/// How long figures stay good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// A replica that has not reported for this long is gone (killed, partitioned) and its
    /// messages no longer count: their locks expire and the broker shows them again.
    pub report_timeout: Duration,
    /// A backlog older than this is unknown, so a broker that stopped answering shows up as
    /// failed reads (and KEDA's fallback) rather than as a frozen figure.
    pub backlog_timeout: Duration,
}

#[derive(Debug)]
struct Report {
    in_flight: u64,
    at: Instant,
}

#[derive(Debug)]
struct QueueState {
    backlog: Option<(u64, Instant)>,
    /// The last read's error, while the backlog is unknown.
    backlog_error: Option<String>,
    reports: HashMap<String, Report>,
    load: watch::Sender<Load>,
}

/// Every served queue's state.
#[derive(Debug)]
pub struct Queues {
    freshness: Freshness,
    queues: std::sync::Mutex<BTreeMap<String, QueueState>>,
}

impl Queues {
    pub fn new(names: &[String], freshness: Freshness) -> Self {
        let queues = names
            .iter()
            .map(|name| {
                let state = QueueState {
                    backlog: None,
                    backlog_error: Some("not read yet".to_owned()),
                    reports: HashMap::new(),
                    load: watch::Sender::new(Load::default()),
                };
                (name.clone(), state)
            })
            .collect();
        Self {
            freshness,
            queues: std::sync::Mutex::new(queues),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, QueueState>> {
        // A panic while holding the lock leaves plain counters behind, never a broken
        // invariant, so a poisoned lock is still good to use.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unknown(&self, queue: &str, served: &BTreeMap<String, QueueState>) -> LoadError {
        LoadError::UnknownQueue {
            queue: queue.to_owned(),
            served: served.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }

    /// A replica's report: it holds `in_flight` messages of `queue` now.
    pub fn report(
        &self,
        queue: &str,
        replica: &str,
        in_flight: u64,
        now: Instant,
    ) -> Result<(), LoadError> {
        let mut queues = self.lock();
        let Some(state) = queues.get_mut(queue) else {
            return Err(self.unknown(queue, &queues));
        };
        state
            .reports
            .insert(replica.to_owned(), Report { in_flight, at: now });
        publish(state, self.freshness, now);
        Ok(())
    }

    /// A replica's last report: it drained, holds nothing and leaves.
    pub fn leave(&self, queue: &str, replica: &str, now: Instant) -> Result<(), LoadError> {
        let mut queues = self.lock();
        let Some(state) = queues.get_mut(queue) else {
            return Err(self.unknown(queue, &queues));
        };
        state.reports.remove(replica);
        publish(state, self.freshness, now);
        Ok(())
    }

    /// The broker's answer for `queue`'s backlog.
    pub fn backlog_read(&self, queue: &str, read: Result<u64, String>, now: Instant) {
        let mut queues = self.lock();
        let Some(state) = queues.get_mut(queue) else {
            return;
        };
        match read {
            Ok(count) => {
                state.backlog = Some((count, now));
                state.backlog_error = None;
            }
            Err(why) => state.backlog_error = Some(why),
        }
        publish(state, self.freshness, now);
    }

    /// Forgets silent replicas and stale backlogs; returns the replicas dropped.
    pub fn expire(&self, now: Instant) -> Vec<(String, String)> {
        let mut dropped = Vec::new();
        let mut queues = self.lock();
        for (name, state) in queues.iter_mut() {
            let timeout = self.freshness.report_timeout;
            state.reports.retain(|replica, r| {
                let keep = now.saturating_duration_since(r.at) < timeout;
                if !keep {
                    dropped.push((name.clone(), replica.clone()));
                }
                keep
            });
            publish(state, self.freshness, now);
        }
        dropped
    }

    /// `queue`'s load now.
    pub fn load(&self, queue: &str, now: Instant) -> Result<Load, LoadError> {
        let queues = self.lock();
        let Some(state) = queues.get(queue) else {
            return Err(self.unknown(queue, &queues));
        };
        let load = current(state, self.freshness, now);
        if load.backlog.is_none() {
            let why = state
                .backlog_error
                .clone()
                .unwrap_or_else(|| "the last good read is too old".to_owned());
            return Err(LoadError::BacklogUnknown {
                queue: queue.to_owned(),
                why,
            });
        }
        Ok(load)
    }

    /// What `queue`'s live replicas hold, known even while the backlog is not (0 for a
    /// queue this scaler does not serve).
    pub fn in_flight(&self, queue: &str, now: Instant) -> u64 {
        self.lock()
            .get(queue)
            .map_or(0, |s| current(s, self.freshness, now).in_flight)
    }

    /// Follows `queue`'s load as it changes.
    pub fn watch(&self, queue: &str) -> Result<watch::Receiver<Load>, LoadError> {
        let queues = self.lock();
        match queues.get(queue) {
            Some(state) => Ok(state.load.subscribe()),
            None => Err(self.unknown(queue, &queues)),
        }
    }

    /// Whether every queue's backlog is known: the scaler is of use to KEDA.
    pub fn all_known(&self, now: Instant) -> bool {
        self.lock()
            .values()
            .all(|s| current(s, self.freshness, now).backlog.is_some())
    }
}

fn current(state: &QueueState, freshness: Freshness, now: Instant) -> Load {
    let backlog = state
        .backlog
        .filter(|(_, at)| now.saturating_duration_since(*at) < freshness.backlog_timeout)
        .map(|(count, _)| count);
    let live = state
        .reports
        .values()
        .filter(|r| now.saturating_duration_since(r.at) < freshness.report_timeout);
    let (in_flight, replicas) = live.fold((0, 0), |(sum, n), r| (sum + r.in_flight, n + 1));
    Load {
        backlog,
        in_flight,
        replicas,
    }
}

fn publish(state: &QueueState, freshness: Freshness, now: Instant) {
    let load = current(state, freshness, now);
    state.load.send_if_modified(|old| {
        let changed = *old != load;
        *old = load;
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Freshness = Freshness {
        report_timeout: Duration::from_secs(10),
        backlog_timeout: Duration::from_secs(5),
    };

    fn queues() -> Queues {
        Queues::new(&["workflow".to_owned()], FRESH)
    }

    #[test]
    fn a_replica_that_leaves_no_longer_counts_as_reporting() {
        let q = queues();
        let t = Instant::now();
        q.backlog_read("workflow", Ok(0), t);
        q.report("workflow", "a", 0, t).unwrap();
        q.report("workflow", "b", 2, t).unwrap();
        assert_eq!(q.load("workflow", t).unwrap().replicas, 2);
        q.leave("workflow", "a", t).unwrap();
        let load = q.load("workflow", t).unwrap();
        assert_eq!((load.replicas, load.in_flight), (1, 2));
        assert!(q.leave("billing", "a", t).is_err());
    }

    #[test]
    fn the_metric_is_backlog_plus_what_every_replica_holds() {
        let q = queues();
        let t = Instant::now();
        q.backlog_read("workflow", Ok(7), t);
        q.report("workflow", "a", 3, t).unwrap();
        q.report("workflow", "b", 2, t).unwrap();
        let load = q.load("workflow", t).unwrap();
        assert_eq!(load.metric(), Some(12));
        assert_eq!(load.replicas, 2);
        // A later report replaces the replica's earlier one.
        q.report("workflow", "a", 0, t).unwrap();
        assert_eq!(q.load("workflow", t).unwrap().metric(), Some(9));
    }

    #[test]
    fn in_flight_work_alone_is_activity() {
        let q = queues();
        let t = Instant::now();
        q.backlog_read("workflow", Ok(0), t);
        assert!(!q.load("workflow", t).unwrap().is_active());
        q.report("workflow", "a", 1, t).unwrap();
        let load = q.load("workflow", t).unwrap();
        assert!(load.is_active());
        assert_eq!(load.metric(), Some(1));
    }

    #[test]
    fn a_replica_that_stops_reporting_is_dropped_after_the_timeout() {
        let q = queues();
        let t = Instant::now();
        q.backlog_read("workflow", Ok(0), t);
        q.report("workflow", "a", 4, t).unwrap();
        q.report("workflow", "b", 1, t + Duration::from_secs(8))
            .unwrap();
        let later = t + Duration::from_secs(10);
        q.backlog_read("workflow", Ok(0), later);
        // Dropped from the figures at once, and from the table by `expire`.
        assert_eq!(q.load("workflow", later).unwrap().in_flight, 1);
        assert_eq!(
            q.expire(later),
            vec![("workflow".to_owned(), "a".to_owned())]
        );
        assert_eq!(q.load("workflow", later).unwrap().replicas, 1);
    }

    #[test]
    fn an_unknown_or_stale_backlog_is_an_error_not_a_zero() {
        let q = queues();
        let t = Instant::now();
        q.report("workflow", "a", 2, t).unwrap();
        let err = q.load("workflow", t).unwrap_err();
        assert!(err.to_string().contains("not read yet"), "{err}");

        q.backlog_read("workflow", Ok(3), t);
        q.backlog_read("workflow", Err("503 from the broker".to_owned()), t);
        // The last good read still counts while it is fresh...
        assert_eq!(q.load("workflow", t).unwrap().backlog, Some(3));
        // ...and is unknown once it is too old, with the last error as the reason.
        let err = q.load("workflow", t + Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("503 from the broker"), "{err}");
        assert!(!q.all_known(t + Duration::from_secs(5)));
    }

    #[test]
    fn unknown_queues_are_refused_by_name() {
        let q = queues();
        let err = q.report("billing", "a", 1, Instant::now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this scaler does not serve queue \"billing\" (it serves workflow)"
        );
        assert!(q.watch("billing").is_err());
    }

    #[test]
    fn watchers_see_each_change_once() {
        let q = queues();
        let t = Instant::now();
        let mut rx = q.watch("workflow").unwrap();
        q.backlog_read("workflow", Ok(0), t);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        // The same figures again are not a change.
        q.backlog_read("workflow", Ok(0), t);
        assert!(!rx.has_changed().unwrap());
        q.report("workflow", "a", 1, t).unwrap();
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().is_active());
    }
}
