//! The innermost service: the function's handler, its result as an [`Outcome`].

use std::sync::Arc;

use super::MessageService;
use crate::dispatch::{Outcome, QueueHandler};

pub fn service(handler: Arc<dyn QueueHandler>) -> MessageService {
    MessageService::new(tower::service_fn(move |message| {
        let handler = handler.clone();
        async move { Ok(Outcome::Handled(handler.handle(message).await)) }
    }))
}
