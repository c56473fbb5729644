//! [`App`]: what a function's [`crate::Function::build`] gives the host to serve.

use std::sync::Arc;

use crate::dispatch::QueueHandler;
use crate::http::Routes;

/// What a function serves: HTTP routes, or a handler for the messages of the queue its
/// declaration names (the host receives from that queue).
#[derive(Default)]
pub struct App {
    routes: Routes,
    queue_handler: Option<Arc<dyn QueueHandler>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.routes.templates())
            .field("queue_handler", &self.queue_handler.is_some())
            .finish()
    }
}

impl App {
    /// An HTTP function.
    pub fn http(routes: Routes) -> Self {
        Self {
            routes,
            queue_handler: None,
        }
    }

    /// A queue-triggered function: `handler` gets the messages of the declared queue
    /// trigger. It still serves the health, readiness and metrics endpoints.
    pub fn queue(handler: impl QueueHandler) -> Self {
        Self {
            routes: Routes::new(),
            queue_handler: Some(Arc::new(handler)),
        }
    }

    pub fn route_templates(&self) -> &[String] {
        self.routes.templates()
    }

    pub fn has_queue_handler(&self) -> bool {
        self.queue_handler.is_some()
    }

    /// The routes, for tests that call them without a socket.
    pub fn into_routes(self) -> Routes {
        self.routes
    }

    pub(crate) fn into_parts(self) -> (Routes, Option<Arc<dyn QueueHandler>>) {
        (self.routes, self.queue_handler)
    }
}
