//! Per-request observability, around the whole router: the path is matched to its route
//! template ([`PathTemplates`], which also rewrites it to the template's spelling), the W3C
//! trace context (incoming or new) goes into the request's extensions for handlers, a span
//! carries it on every log line, and the request is counted and timed by route template
//! (never by raw path, to keep labels bounded). It catches a handler's panic itself, so a
//! panicking handler is counted, as the 500 it became.
//!
//! A tower service of its own, not `axum::middleware::from_fn` on the router: `Router::layer`
//! wraps every route, and `from_fn` boxes the rest of the stack and its future again on each
//! request. Matching the templates here, once, costs less than what axum's `MatchedPath`
//! saved (callgrind: about 5,000 instructions a request, of 35,700; docs/BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use http::Method;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;
use tracing::Span;

use super::paths::PathTemplates;
use crate::problem::ApiError;
use crate::telemetry::Metrics;
use crate::trace::{TRACEPARENT, TraceContext};

/// The label of a request no template matched (the 404 fallback answers it).
const UNMATCHED: &str = "unmatched";

/// The host's routes are served but not counted as handled work.
const HOST_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Observes each request to `inner`; see the module's documentation.
#[derive(Debug, Clone)]
pub(super) struct Observe<S> {
    inner: S,
    paths: PathTemplates,
    metrics: Metrics,
}

impl<S> Observe<S> {
    pub(super) fn new(inner: S, paths: PathTemplates, metrics: Metrics) -> Self {
        Self {
            inner,
            paths,
            metrics,
        }
    }
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let (route, mut req) = self.paths.resolve(req);
        let label = route.as_deref().unwrap_or(UNMATCHED);
        let method = req.method().clone();
        let trace = TraceContext::from_header_or_new(
            req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()),
        );
        req.extensions_mut().insert(trace);
        // Field names follow the OpenTelemetry HTTP conventions; they are the exported
        // span's attributes when OTLP export is on (`otel.*` fields only steer the exporter).
        let span = tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {label}"),
            otel.kind = "server",
            function = self.metrics.function(),
            "http.request.method" = method.as_str(),
            "http.route" = label,
            "http.response.status_code" = tracing::field::Empty,
            trace_id = %trace.trace_id_hex(),
        );
        crate::telemetry::otlp::link_to_remote_parent(&span, &trace);
        // A service may run handler code in `call` too, so that is caught as well.
        let inner = span
            .in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))).ok());
        Observed {
            inner,
            observation: Some(Observation {
                span,
                started,
                route,
                method,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

pin_project! {
    /// The response future of [`Observe`].
    pub(super) struct Observed<F> {
        // `None` when the service panicked in `call`.
        #[pin]
        inner: Option<F>,
        // Taken when the response is ready.
        observation: Option<Observation>,
    }
}

/// What a request's observation needs once its response is ready.
struct Observation {
    span: Span,
    started: Instant,
    route: Option<Arc<str>>,
    method: Method,
    metrics: Metrics,
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(observation) = this.observation.as_ref() else {
            // Polled after it finished: a contract breach by the caller, not a reason to
            // panic in the server.
            return Poll::Pending;
        };
        let polled = observation.span.in_scope(|| match this.inner.as_pin_mut() {
            None => Poll::Ready(Err(())),
            // What tower-http's catch-panic layer did: `catch_unwind` around each poll.
            Some(inner) => match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                Ok(Poll::Ready(Ok(response))) => Poll::Ready(Ok(response)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(_) => Poll::Ready(Err(())),
            },
        });
        let Poll::Ready(outcome) = polled else {
            return Poll::Pending;
        };
        let response = outcome
            .unwrap_or_else(|()| ApiError::Internal("a handler panicked".into()).into_response());
        if let Some(observation) = this.observation.take() {
            observation.finish(&response);
        }
        Poll::Ready(Ok(response))
    }
}

impl Observation {
    fn finish(self, response: &Response) {
        let route = self.route.as_deref().unwrap_or(UNMATCHED);
        let status = response.status();
        self.span
            .record("http.response.status_code", status.as_u16());
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let method = self.method.as_str();
        self.metrics
            .http_requests
            .with_label_values(&[route, method, class])
            .inc();
        self.metrics
            .http_duration
            .with_label_values(&[route, method])
            .observe(self.started.elapsed().as_secs_f64());
        if !HOST_ROUTES.contains(&route) {
            self.metrics.handled_one();
            self.span.in_scope(|| tracing::debug!("request served"));
        }
    }
}
