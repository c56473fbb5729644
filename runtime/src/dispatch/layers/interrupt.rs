//! The end of the drain grace: once the host has waited `SHUTDOWN_GRACE_SECONDS` for running
//! handlers, it stops them; their messages are abandoned, so the broker redelivers them to
//! another replica.

use tower::{Layer, ServiceExt};

use super::MessageService;
use crate::dispatch::Outcome;
use crate::lifecycle::Shutdown;

#[derive(Debug, Clone)]
pub struct InterruptLayer {
    interrupt: Shutdown,
}

impl InterruptLayer {
    pub fn new(interrupt: Shutdown) -> Self {
        Self { interrupt }
    }
}

impl Layer<MessageService> for InterruptLayer {
    type Service = MessageService;

    fn layer(&self, inner: MessageService) -> MessageService {
        let interrupt = self.interrupt.clone();
        MessageService::new(tower::service_fn(move |message| {
            let call = inner.clone().oneshot(message);
            let interrupt = interrupt.clone();
            async move {
                tokio::select! {
                    outcome = call => outcome,
                    () = interrupt.wait() => Ok(Outcome::Interrupted),
                }
            }
        }))
    }
}
