//! The handler's budget (`QUEUE_HANDLER_TIMEOUT_SECONDS`). The lock is renewed while it
//! runs, so the budget is not bound by the lock duration; it stops a stuck handler from
//! holding a slot and a lock for ever. A handler past it is abandoned for redelivery.

use std::time::Duration;

use tower::{Layer, ServiceExt};

use super::MessageService;
use crate::dispatch::Outcome;

#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl Layer<MessageService> for TimeoutLayer {
    type Service = MessageService;

    fn layer(&self, inner: MessageService) -> MessageService {
        let limit = self.limit;
        MessageService::new(tower::service_fn(move |message| {
            let call = inner.clone().oneshot(message);
            async move {
                tokio::time::timeout(limit, call)
                    .await
                    .unwrap_or(Ok(Outcome::TimedOut))
            }
        }))
    }
}
