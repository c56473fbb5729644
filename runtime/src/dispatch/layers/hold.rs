//! The delay before a transient failure is abandoned (`QUEUE_RETRY_DELAY_*`): the message is
//! held, its lock renewed, for a delay that doubles with its delivery count. Abandoning at
//! once would spend the max delivery count in a second against a downstream that is
//! restarting and dead-letter good messages; held, they ride out an outage of minutes.
//! Shutdown cuts the hold short; a handler interrupted by the drain is not held.

use tower::{Layer, ServiceExt};
use tracing::info;

use super::MessageService;
use crate::client::Backoff;
use crate::dispatch::Outcome;
use crate::dispatch::policy::{Settlement, settlement_for};
use crate::lifecycle::Shutdown;

#[derive(Debug, Clone)]
pub struct HoldLayer {
    delay: Backoff,
    shutdown: Shutdown,
}

impl HoldLayer {
    pub fn new(delay: Backoff, shutdown: Shutdown) -> Self {
        Self { delay, shutdown }
    }
}

impl Layer<MessageService> for HoldLayer {
    type Service = MessageService;

    fn layer(&self, inner: MessageService) -> MessageService {
        let (delay, shutdown) = (self.delay, self.shutdown.clone());
        MessageService::new(tower::service_fn(
            move |message: crate::queue::ReceivedMessage| {
                let delivery_count = message.delivery_count;
                let call = inner.clone().oneshot(message);
                let shutdown = shutdown.clone();
                async move {
                    let outcome = call.await?;
                    let abandoned =
                        matches!(settlement_for(outcome.clone()), Settlement::Abandon { .. });
                    if abandoned && outcome != Outcome::Interrupted && !delay.base.is_zero() {
                        let wait = delay.delay(delivery_count, None);
                        info!(
                            wait_ms = wait.as_millis() as u64,
                            "transient failure; holding the message before redelivery"
                        );
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = shutdown.wait() => {}
                        }
                    }
                    Ok(outcome)
                }
            },
        ))
    }
}
