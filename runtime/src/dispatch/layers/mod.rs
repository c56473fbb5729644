//! The per-message layers between the pump and the handler, one concern per file, each a
//! `tower::Layer` over the boxed [`MessageService`]. [`stack`] puts them in order, outside in:
//!
//! ```text
//! pump -> trace -> hold -> metrics -> interrupt -> timeout -> catch_panic -> handler
//!         (span)  (delay   (in flight,  (drain     (handler   (a panic is
//!                  before   duration)    grace      budget)    an outcome)
//!                  abandon)              over)
//! ```
//!
//! - [`trace`] is outermost so every line about the message, the pump's settlement included,
//!   is in its span.
//! - [`hold`] sits outside the metrics: the delay before a transient failure is abandoned is
//!   not the handler's time.
//! - [`interrupt`] and [`timeout`] cut the handler short; inside them, [`catch_panic`] runs
//!   the handler in a task of its own, aborted when they give up on it.
//!
//! The pump then settles by the [`Outcome`]: it only fetches, locks and settles.

pub mod catch_panic;
pub mod handler;
pub mod hold;
pub mod interrupt;
pub mod metrics;
pub mod timeout;
pub mod trace;

use std::convert::Infallible;
use std::sync::Arc;

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use super::{DispatchOptions, Outcome, QueueHandler};
use crate::lifecycle::Shutdown;
use crate::queue::ReceivedMessage;
use crate::telemetry::Metrics;

/// A message's way to an [`Outcome`], boxed so the layers stay free of generics.
pub type MessageService = BoxCloneSyncService<ReceivedMessage, Outcome, Infallible>;

/// The whole stack for one queue trigger: what the pump calls with each locked message.
pub fn stack(
    handler: Arc<dyn QueueHandler>,
    queue: &str,
    messaging_system: &'static str,
    options: DispatchOptions,
    metrics: Metrics,
    stops: Stops,
) -> trace::TracedService {
    let inner = ServiceBuilder::new()
        .layer(hold::HoldLayer::new(
            options.redelivery_delay,
            stops.shutdown,
        ))
        .layer(metrics::MetricsLayer::new(metrics.clone()))
        .layer(interrupt::InterruptLayer::new(stops.interrupt))
        .layer(timeout::TimeoutLayer::new(options.handler_timeout))
        .layer(catch_panic::CatchPanicLayer)
        .service(handler::service(handler));
    trace::TracedService::new(inner, queue, messaging_system, metrics.function())
}

/// What ends a handler early: `shutdown` cuts a redelivery delay short, `interrupt` (the
/// end of the drain grace) stops the handler itself.
#[derive(Debug, Clone)]
pub struct Stops {
    pub shutdown: Shutdown,
    pub interrupt: Shutdown,
}
