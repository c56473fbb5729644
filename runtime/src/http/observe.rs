//! Per-request observability, around the whole router: the request is labelled with the
//! route template its path matched ([`MatchedTemplate`], recorded by the path policy in
//! front of it), the W3C trace context (incoming or new) goes into the request's extensions
//! for handlers, a span carries it on every log line, and the request is counted and timed
//! by route template (never by raw path, to keep labels bounded). It catches a handler's
//! panic itself, so a panicking handler is counted, as the 500 it became.
//!
//! One tower layer around the router rather than `Router::layer`, which would run inside the
//! router: a request no route matched would then go unobserved, and the router's own
//! answers (404, 405) uncounted.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use http::Method;
use pin_project_lite::pin_project;
use prometheus::{Histogram, IntCounter};
use tokio::time::Instant;
use tower::Service;
use tracing::Span;

use super::paths::MatchedTemplate;
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
    metrics: Metrics,
    /// One per template, in the templates' order ([`MatchedTemplate::index`]), then one for
    /// unmatched requests.
    routes: Arc<[RouteMetrics]>,
}

impl<S> Observe<S> {
    /// Observes requests to `inner`, whose paths match one of `templates` templates.
    pub(super) fn new(inner: S, templates: usize, metrics: Metrics) -> Self {
        let routes = (0..=templates).map(|_| RouteMetrics::default()).collect();
        Self {
            inner,
            metrics,
            routes,
        }
    }
}

/// The methods whose metrics are kept per route (others are looked up by label each time).
const METHODS: [Method; 7] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
];

/// A route's request counters and timer, by method and status class, each looked up in its
/// metric family once: `with_label_values` hashes the labels and takes a lock on every call
/// (callgrind: about 470 instructions a request for the two). With them, the name of the
/// route's span for each method, written once rather than formatted into every span
/// (about 500 instructions a request).
#[derive(Debug, Default)]
struct RouteMetrics {
    requests: [[OnceLock<IntCounter>; 5]; METHODS.len()],
    durations: [OnceLock<Histogram>; METHODS.len()],
    span_names: [OnceLock<Box<str>>; METHODS.len()],
}

impl RouteMetrics {
    /// `METHOD route`, the span's name under OpenTelemetry's HTTP conventions.
    fn span_name(&self, method: &Method, route: &str) -> Cow<'_, str> {
        let name = || format!("{method} {route}");
        match METHODS.iter().position(|m| m == method) {
            Some(m) => Cow::Borrowed(self.span_names[m].get_or_init(|| name().into())),
            None => Cow::Owned(name()),
        }
    }

    fn record(&self, metrics: &Metrics, route: &str, method: &Method, class: usize, secs: f64) {
        let method_index = METHODS.iter().position(|m| m == method);
        let labels = |class| [route, method.as_str(), CLASSES[class]];
        let count = |class: usize| metrics.http_requests.with_label_values(&labels(class));
        let timer = || {
            metrics
                .http_duration
                .with_label_values(&[route, method.as_str()])
        };
        match method_index.and_then(|m| Some((m, self.requests[m].get(class)?))) {
            Some((m, counter)) => {
                counter.get_or_init(|| count(class)).inc();
                self.durations[m].get_or_init(timer).observe(secs);
            }
            None => {
                count(class).inc();
                timer().observe(secs);
            }
        }
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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
        let mut req = req;
        let (route, index) = match req.extensions().get::<MatchedTemplate>() {
            Some(matched) => (Some(matched.route.clone()), matched.index),
            None => (None, self.routes.len().saturating_sub(1)),
        };
        let label = route.as_deref().unwrap_or(UNMATCHED);
        let method = req.method().clone();
        let name = match self.routes.get(index) {
            Some(metrics) => metrics.span_name(&method, label),
            None => Cow::Owned(format!("{method} {label}")),
        };
        let trace = TraceContext::from_header_or_new(
            req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()),
        );
        req.extensions_mut().insert(trace);
        let trace_id = trace.trace_id_hex();
        // Field names follow the OpenTelemetry HTTP conventions; they are the exported
        // span's attributes when OTLP export is on (`otel.*` fields only steer the exporter).
        let span = tracing::info_span!(
            "request",
            otel.name = name.as_ref(),
            otel.kind = "server",
            function = self.metrics.function(),
            "http.request.method" = method.as_str(),
            "http.route" = label,
            "http.response.status_code" = tracing::field::Empty,
            trace_id = trace_id.as_str(),
        );
        crate::telemetry::otlp::link_to_remote_parent(&span, &trace);
        // A service may run code in `call` too, so a panic there is caught as well. The span
        // is entered only around polls: axum's routes run no handler code in `call`, they
        // make its future, and an entry and exit of the span costs about 600 instructions.
        let inner = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))).ok();
        Observed {
            inner,
            observation: Some(Observation {
                span,
                started,
                route,
                method,
                metrics: self.metrics.clone(),
                routes: self.routes.clone(),
                index,
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
    routes: Arc<[RouteMetrics]>,
    index: usize,
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
        // The exported span's attribute. On the log lines it would show only on the one
        // below, which carries it itself: recording it on the span for them costs about 450
        // instructions a request (callgrind).
        if crate::telemetry::otlp::exporting() {
            self.span
                .record("http.response.status_code", status.as_u16());
        }
        let class = match status.as_u16() {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(metrics) = self.routes.get(self.index) {
            metrics.record(&self.metrics, route, &self.method, class, secs);
        }
        if !HOST_ROUTES.contains(&route) {
            self.metrics.handled_one();
            // Entering the span only to find the event disabled costs more than asking first.
            if tracing::level_enabled!(tracing::Level::DEBUG) {
                self.span.in_scope(|| {
                    tracing::debug!(
                        "http.response.status_code" = status.as_u16(),
                        "request served"
                    );
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::routing::get;

    use axum::extract::Path;

    use crate::http::Routes;
    use crate::telemetry::json_lines::captured::Captured;
    use crate::testing::TestClient;

    #[tokio::test]
    async fn a_served_request_is_logged_at_debug_with_its_route_status_trace_and_annotations() {
        let captured = Captured::default();
        let _default = tracing::subscriber::set_default(captured.subscriber());
        let client = TestClient::new(Routes::under("/api/things").route(
            "/{id}",
            get(|Path(id): Path<String>| async move {
                crate::trace::annotate("thing_id", &id);
                axum::http::StatusCode::ACCEPTED
            }),
        ));
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let response = client
            .raw(
                http::Method::GET,
                "/API/things/t-1",
                None,
                "",
                &[("traceparent", traceparent)],
            )
            .await;
        assert_eq!(response.status, 202);

        let lines = captured.lines();
        let served: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["message"] == "request served")
            .collect();
        assert_eq!(served.len(), 1, "{lines:?}");
        let line = served[0];
        assert_eq!(line["level"], "DEBUG");
        assert_eq!(line["http.route"], "/api/things/{id}");
        assert_eq!(line["http.request.method"], "GET");
        assert_eq!(line["http.response.status_code"], 202);
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["function"], "test");
        assert_eq!(line["thing_id"], "t-1");
    }
}
