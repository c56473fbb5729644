//! Per-request observability: the W3C trace context (incoming or new) goes into the
//! request's extensions for handlers, a span carries it on every log line, and the request
//! is counted and timed by route template (never by raw path, to keep labels bounded).
//! It catches a handler's panic itself, so a panicking handler is counted, as the 500 it
//! became, without another layer on every route.

use std::panic::AssertUnwindSafe;
use std::task::Poll;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tokio::time::Instant;
use tracing::Instrument;

use crate::problem::ApiError;
use crate::telemetry::Metrics;
use crate::trace::{TRACEPARENT, TraceContext};

pub(super) async fn observe(
    State(metrics): State<Metrics>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // MatchedPath is an Arc and standard methods are inline: no allocation per request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let trace = TraceContext::from_header_or_new(
        req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(trace);
    // Field names follow the OpenTelemetry HTTP conventions; they are the exported span's
    // attributes when OTLP export is on (`otel.*` fields only steer the exporter).
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        function = metrics.function(),
        "http.request.method" = method.as_str(),
        "http.route" = route,
        "http.response.status_code" = tracing::field::Empty,
        trace_id = %trace.trace_id_hex(),
    );
    crate::telemetry::otlp::link_to_remote_parent(&span, &trace);
    let response = caught(next.run(req)).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .http_requests
        .with_label_values(&[route, method.as_str(), class])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[route, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if route != "/healthz" && route != "/readyz" && route != "/metrics" {
        metrics.handled_one();
        span.in_scope(|| tracing::debug!("request served"));
    }
    response
}

/// The handler's response, or a 500 problem if it panicked (what tower-http's catch-panic
/// layer did: `catch_unwind` around each poll).
async fn caught(handled: impl Future<Output = Response>) -> Response {
    let mut handled = std::pin::pin!(handled);
    let outcome = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| handled.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await;
    outcome.unwrap_or_else(|_| ApiError::Internal("a handler panicked".into()).into_response())
}
