//! How many messages a pump holds: locked ahead of a handler or being handled, and not yet
//! settled. It is what a replica tells the scaler (`SCALER_URL`), so that KEDA never scales
//! in a replica while it holds work.
//!
//! Besides the count, the most held at once since the reporter last took it: a message
//! locked and settled between two reports still shows as work, so a replica handling one
//! message at a time, each in a millisecond, never looks idle to the scaler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// The count, shared by the pump (which changes it) and the reporter (which follows it).
/// Once the pump and every message it held are gone, followers see the channel close.
#[derive(Debug, Clone)]
pub struct InFlight {
    count: Arc<watch::Sender<u64>>,
    peak: Arc<AtomicU64>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
            peak: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl InFlight {
    /// Counts one more message until the guard is dropped.
    pub fn hold(&self) -> HeldMessage {
        self.count.send_modify(|n| {
            *n += 1;
            self.peak.fetch_max(*n, Ordering::Relaxed);
        });
        HeldMessage(self.count.clone())
    }

    pub fn count(&self) -> u64 {
        *self.count.borrow()
    }

    /// Follows the count as it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.count.subscribe()
    }

    /// What a reporter follows: the count, and the most held since it last looked.
    pub fn follow(&self) -> Follower {
        Follower {
            count: self.count.subscribe(),
            peak: self.peak.clone(),
        }
    }
}

/// The reporter's view; it does not keep the count alive.
#[derive(Debug)]
pub struct Follower {
    pub count: watch::Receiver<u64>,
    peak: Arc<AtomicU64>,
}

impl Follower {
    /// The most held at once since the last [`Self::take_peak`], without resetting it.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(*self.count.borrow())
    }

    /// The most held at once since the last call; the next interval starts at the count
    /// held now.
    pub fn take_peak(&self) -> u64 {
        let now = *self.count.borrow();
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }
}

/// One held message: counted from its lock until its settlement.
#[derive(Debug)]
pub struct HeldMessage(Arc<watch::Sender<u64>>);

impl Drop for HeldMessage {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_counts_while_its_guard_lives() {
        let in_flight = InFlight::default();
        let mut follower = in_flight.subscribe();
        let a = in_flight.hold();
        let b = in_flight.hold();
        assert_eq!(in_flight.count(), 2);
        drop(a);
        assert_eq!(*follower.borrow_and_update(), 1);
        drop(b);
        assert_eq!(in_flight.count(), 0);
        drop(in_flight);
        assert!(
            follower.has_changed().is_err(),
            "the channel closes with the pump"
        );
    }

    #[test]
    fn a_message_settled_between_two_looks_is_still_seen() {
        let in_flight = InFlight::default();
        let follower = in_flight.follow();
        drop(in_flight.hold());
        assert_eq!(*follower.count.borrow(), 0);
        assert_eq!(follower.take_peak(), 1, "held once since the last look");
        assert_eq!(follower.take_peak(), 0, "and nothing since");
        let (a, b) = (in_flight.hold(), in_flight.hold());
        drop(a);
        assert_eq!(follower.peak(), 2);
        assert_eq!(follower.take_peak(), 2);
        assert_eq!(follower.take_peak(), 1, "one is still held");
        drop(b);
    }
}
