//! Queue dispatch: `receive -> handler -> error policy -> settle`.
//!
//! A queue handler is a plain async function of the received message (body plus metadata:
//! message id, delivery count, enqueued time) returning `Result<(), MessageError>`. The
//! [`policy`] maps its outcome to a settlement; the [`pump`] runs handlers with bounded
//! concurrency and prefetch, renews locks while they run, and drains on shutdown.

pub mod in_flight;
pub mod layers;
pub mod policy;
pub mod pump;
pub mod report;

use std::future::Future;

use async_trait::async_trait;

use crate::queue::ReceivedMessage;

pub use in_flight::InFlight;
pub use policy::{Outcome, Settlement};
pub use pump::{DispatchOptions, run_pump};

/// How a handler failed, which decides the settlement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Worth another try later (timeouts, unreachable downstreams, 5xx, 429): abandon, so
    /// the broker redelivers and dead-letters after its max delivery count.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will never succeed (unparseable body, unknown operation, a 4xx from a downstream):
    /// dead-letter at once with a reason and a description.
    #[error("permanent failure ({reason}): {description}")]
    Permanent { reason: String, description: String },
}

impl MessageError {
    pub fn permanent(reason: &str, description: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.to_owned(),
            description: description.into(),
        }
    }
}

/// Handles one message. Implemented for every `Fn(ReceivedMessage) -> impl Future`.
#[async_trait]
pub trait QueueHandler: Send + Sync + 'static {
    async fn handle(&self, message: ReceivedMessage) -> Result<(), MessageError>;
}

#[async_trait]
impl<F, Fut> QueueHandler for F
where
    F: Fn(ReceivedMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), MessageError>> + Send + 'static,
{
    async fn handle(&self, message: ReceivedMessage) -> Result<(), MessageError> {
        self(message).await
    }
}
