//! Shutdown and readiness.
//!
//! [`Shutdown`] is a one-way latch shared by every trigger of a function: once tripped, HTTP
//! stops accepting, the queue pump stops receiving and readiness turns false, so the
//! Kubernetes endpoint controller takes the pod out of rotation while in-flight work drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::watch;

/// A latch that trips once and wakes every waiter.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Trips the latch.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the latch has tripped (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|tripped| *tripped).await;
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the host");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Trips `shutdown` on the first signal; a second signal exits the process at once.
pub fn shutdown_on_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        termination_signal().await;
        tracing::info!("termination signal received; draining");
        shutdown.trigger();
        termination_signal().await;
        tracing::warn!("second termination signal; exiting without draining");
        std::process::exit(130);
    });
}

/// Readiness: every trigger reports ready, and the host is not shutting down.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    pending: AtomicUsize,
    draining: AtomicBool,
}

impl Readiness {
    /// Readiness that waits for `triggers` calls of [`Readiness::trigger_ready`].
    pub fn new(triggers: usize) -> Self {
        Self {
            inner: Arc::new(ReadinessInner {
                pending: AtomicUsize::new(triggers),
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// One more trigger is ready; true when it was the last one.
    pub fn trigger_ready(&self) -> bool {
        self.inner
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            == Ok(1)
    }

    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire) == 0
            && !self.inner.draining.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_wakes_waiters_including_late_ones() {
        let s = Shutdown::new();
        let early = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        s.trigger();
        early.await.unwrap();
        s.wait().await;
        assert!(s.is_triggered());
    }

    #[test]
    fn ready_only_after_every_trigger_and_not_while_draining() {
        let r = Readiness::new(2);
        assert!(!r.is_ready());
        assert!(!r.trigger_ready());
        assert!(!r.is_ready());
        assert!(r.trigger_ready(), "the last trigger says so");
        assert!(r.is_ready());
        assert!(!r.trigger_ready(), "and only once");
        r.set_draining();
        assert!(!r.is_ready());
    }
}
