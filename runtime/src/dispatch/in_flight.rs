//! How many messages a pump holds: locked ahead of a handler or being handled, and not yet
//! settled. It is what a replica tells the scaler (`SCALER_URL`), so that KEDA never scales
//! in a replica while it holds work.

use std::sync::Arc;

use tokio::sync::watch;

/// The count, shared by the pump (which changes it) and the reporter (which follows it).
/// Once the pump and every message it held are gone, followers see the channel close.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<watch::Sender<u64>>);

impl Default for InFlight {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl InFlight {
    /// Counts one more message until the guard is dropped.
    pub fn hold(&self) -> HeldMessage {
        self.0.send_modify(|n| *n += 1);
        HeldMessage(self.0.clone())
    }

    pub fn count(&self) -> u64 {
        *self.0.borrow()
    }

    /// Follows the count as it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
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
}
