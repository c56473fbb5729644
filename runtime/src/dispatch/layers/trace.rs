//! The message's span: everything about one message, the handler's lines and the pump's
//! settlement alike, is in it, and it continues the producer's trace (the `traceparent`
//! ingestion puts on every message). Field names follow the OpenTelemetry messaging
//! conventions; they are the exported span's attributes when OTLP export is on (`otel.*`
//! fields only steer the exporter). Functions add fields of their own to it
//! ([`crate::trace::annotate`]).
//!
//! Outermost, and so not a `Layer` like the others: it hands the span back with the
//! outcome, for the pump to settle in.

use std::convert::Infallible;
use std::sync::Arc;

use tower::ServiceExt;
use tracing::{Instrument, Span, info_span};

use super::MessageService;
use crate::dispatch::Outcome;
use crate::queue::ReceivedMessage;

/// An outcome and the span it happened in.
#[derive(Debug)]
pub struct Traced {
    pub outcome: Outcome,
    pub span: Span,
}

/// The stack with its span.
#[derive(Clone)]
pub struct TracedService {
    inner: MessageService,
    queue: Arc<str>,
    messaging_system: &'static str,
    function: Arc<str>,
}

impl std::fmt::Debug for TracedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedService")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl TracedService {
    pub fn new(
        inner: MessageService,
        queue: &str,
        messaging_system: &'static str,
        function: &str,
    ) -> Self {
        Self {
            inner,
            queue: queue.into(),
            messaging_system,
            function: function.into(),
        }
    }

    /// Runs the stack for `message` inside its span.
    pub async fn call(&self, message: ReceivedMessage) -> Traced {
        let trace = message.trace_context();
        let queue = &*self.queue;
        let span = info_span!(
            "message",
            otel.name = %format_args!("process {queue}"),
            otel.kind = "consumer",
            function = &*self.function,
            trace_id = trace.as_ref().map(|t| tracing::field::display(t.trace_id_hex())),
            "messaging.system" = self.messaging_system,
            "messaging.operation.type" = "process",
            "messaging.destination.name" = queue,
            "messaging.message.id" = %message.message_id,
            "messaging.servicebus.message.delivery_count" = message.delivery_count,
        );
        if let Some(trace) = &trace {
            crate::telemetry::otlp::link_to_remote_parent(&span, trace);
        }
        let outcome: Result<Outcome, Infallible> = self
            .inner
            .clone()
            .oneshot(message)
            .instrument(span.clone())
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        };
        Traced { outcome, span }
    }
}
