//! A handler that panics is an outcome, not the end of the pump: it runs in a task of its
//! own, whose panic comes back as a `JoinError`. The task is aborted when the caller stops
//! waiting (the timeout or the drain's end), so an abandoned handler does not run on.

use tower::{Layer, ServiceExt};
use tracing::Instrument;

use super::MessageService;
use crate::dispatch::Outcome;

#[derive(Debug, Clone, Copy)]
pub struct CatchPanicLayer;

impl Layer<MessageService> for CatchPanicLayer {
    type Service = MessageService;

    fn layer(&self, inner: MessageService) -> MessageService {
        MessageService::new(tower::service_fn(move |message| {
            let task = tokio::spawn(inner.clone().oneshot(message).in_current_span());
            let guard = AbortOnDrop(task.abort_handle());
            async move {
                let outcome = match task.await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(never)) => match never {},
                    Err(e) if e.is_panic() => Outcome::Panicked,
                    Err(_) => Outcome::Interrupted,
                };
                drop(guard);
                Ok(outcome)
            }
        }))
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
