//! The HTTP client binding for calls from one function to another.
//!
//! Per downstream: a timeout per attempt, retries with exponential backoff and jitter for
//! transient failures (connection errors, timeouts, 408, 429, 5xx), a circuit breaker that
//! fails fast while the downstream is down, and a bulkhead bounding concurrent calls so one
//! slow service cannot absorb every task. Callers see either a final response (2xx, or a
//! 4xx they must handle) or a [`CallError`] that says whether trying later can help.

mod breaker;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::cause::Cause;
use crate::config::EnvReader;
use crate::telemetry::Metrics;
use crate::trace::{TRACEPARENT, TraceContext};

pub use breaker::CircuitBreaker;
pub use retry::Backoff;

/// Largest response body read from a downstream.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Resilience settings for one downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub breaker_failures: u32,
    pub breaker_open_for: Duration,
    pub max_concurrent: usize,
}

impl Default for DownstreamPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_attempts: 4,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(10),
            max_concurrent: 64,
        }
    }
}

impl DownstreamPolicy {
    /// Reads `DOWNSTREAM_*` variables.
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        let ms = Duration::from_millis;
        Self {
            timeout: r.millis("DOWNSTREAM_TIMEOUT_MS", d.timeout, ms(10), ms(60_000)),
            max_attempts: r.number_in("DOWNSTREAM_MAX_ATTEMPTS", d.max_attempts, 1, 20),
            backoff: Backoff {
                base: r.millis(
                    "DOWNSTREAM_BACKOFF_BASE_MS",
                    d.backoff.base,
                    ms(1),
                    ms(60_000),
                ),
                max: r.millis(
                    "DOWNSTREAM_BACKOFF_MAX_MS",
                    d.backoff.max,
                    ms(1),
                    ms(300_000),
                ),
            },
            breaker_failures: r.number_in(
                "DOWNSTREAM_BREAKER_FAILURES",
                d.breaker_failures,
                1,
                1000,
            ),
            breaker_open_for: r.millis(
                "DOWNSTREAM_BREAKER_OPEN_MS",
                d.breaker_open_for,
                ms(10),
                ms(600_000),
            ),
            max_concurrent: r.number_in("DOWNSTREAM_MAX_CONCURRENT", d.max_concurrent, 1, 10_000),
        }
    }
}

/// A final answer from a downstream.
#[derive(Debug, Clone)]
pub struct CallResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl CallResponse {
    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, shortened for error messages.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// A call that did not produce a final answer. Every variant is transient: the caller may
/// try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{downstream} failed after {attempts} attempts: {detail}")]
    Exhausted {
        downstream: String,
        attempts: u32,
        detail: String,
        /// The last attempt's own error (a connection failure), when it had one.
        #[source]
        cause: Option<Cause>,
    },
    #[error("{downstream} circuit is open; failing fast")]
    CircuitOpen { downstream: String },
    #[error("{downstream} has too many calls in flight")]
    BulkheadFull { downstream: String },
    #[error("cannot build a request to {downstream}")]
    InvalidRequest {
        downstream: String,
        #[source]
        cause: Cause,
    },
}

impl CallError {
    /// Whether a later retry can succeed (false only for a request that cannot be built).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::InvalidRequest { .. })
    }
}

/// A downstream function reached over HTTP.
#[derive(Debug, Clone)]
pub struct Downstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    base_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
    policy: DownstreamPolicy,
    breaker: CircuitBreaker,
    bulkhead: Semaphore,
    metrics: Metrics,
}

/// One attempt's result.
enum Attempt {
    Final(CallResponse),
    Retry {
        detail: String,
        cause: Option<Cause>,
        retry_after: Option<Duration>,
    },
}

impl Downstream {
    /// `base_url` is an absolute `http://` URL without a trailing slash.
    pub fn new(name: &str, base_url: &str, policy: DownstreamPolicy, metrics: Metrics) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(policy.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                base_url: base_url.trim_end_matches('/').to_owned(),
                client,
                breaker: CircuitBreaker::new(policy.breaker_failures, policy.breaker_open_for),
                bulkhead: Semaphore::new(policy.max_concurrent),
                policy,
                metrics,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sends `method path` with an optional JSON body, retrying transient failures. Only
    /// idempotent requests should be sent through here (all the workflow's calls are).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        trace: Option<&TraceContext>,
    ) -> Result<CallResponse, CallError> {
        let inner = &*self.inner;
        let body = match body.map(serde_json::to_vec).transpose() {
            Ok(b) => b.map(Bytes::from),
            Err(e) => {
                return Err(CallError::InvalidRequest {
                    downstream: inner.name.clone(),
                    cause: Cause::new(e),
                });
            }
        };
        let url = format!("{}{}", inner.base_url, path);
        let max_attempts = inner.policy.max_attempts.max(1);
        let mut last_detail = String::new();
        let mut last_cause = None;
        for attempt in 1..=max_attempts {
            if !inner.breaker.try_acquire() {
                inner
                    .metrics
                    .downstream_breaker_open
                    .with_label_values(&[&inner.name])
                    .set(1);
                return Err(CallError::CircuitOpen {
                    downstream: inner.name.clone(),
                });
            }
            let result = self.attempt(&method, &url, body.clone(), trace).await?;
            match result {
                Attempt::Final(response) => {
                    inner.breaker.record_success();
                    inner
                        .metrics
                        .downstream_breaker_open
                        .with_label_values(&[&inner.name])
                        .set(0);
                    return Ok(response);
                }
                Attempt::Retry {
                    detail,
                    cause,
                    retry_after,
                } => {
                    if inner.breaker.record_failure() {
                        tracing::warn!(downstream = %inner.name, "circuit breaker opened");
                        inner
                            .metrics
                            .downstream_breaker_open
                            .with_label_values(&[&inner.name])
                            .set(1);
                    }
                    last_detail = detail;
                    last_cause = cause;
                    if attempt < max_attempts {
                        inner
                            .metrics
                            .downstream_retries
                            .with_label_values(&[&inner.name])
                            .inc();
                        let delay = inner.policy.backoff.delay(attempt, retry_after);
                        tracing::debug!(downstream = %inner.name, attempt, delay_ms = delay.as_millis() as u64, error = %last_detail, "retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        Err(CallError::Exhausted {
            downstream: inner.name.clone(),
            attempts: max_attempts,
            detail: last_detail,
            cause: last_cause,
        })
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<Bytes>,
        trace: Option<&TraceContext>,
    ) -> Result<Attempt, CallError> {
        let inner = &*self.inner;
        let timeout = inner.policy.timeout;
        let started = Instant::now();
        let Ok(Ok(_permit)) = tokio::time::timeout(timeout, inner.bulkhead.acquire()).await else {
            return Err(CallError::BulkheadFull {
                downstream: inner.name.clone(),
            });
        };
        let mut builder = Request::builder().method(method.clone()).uri(url);
        if body.is_some() {
            builder = builder.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        // One client span per attempt, as the OpenTelemetry HTTP conventions count them;
        // exported only when OTLP export is on.
        let span = tracing::info_span!(
            "downstream call",
            otel.name = method.as_str(),
            otel.kind = "client",
            downstream = %inner.name,
            "http.request.method" = method.as_str(),
            "url.full" = url,
            "http.response.status_code" = tracing::field::Empty,
        );
        if let Some(trace) = trace {
            let outgoing = crate::telemetry::otlp::outgoing(&span, trace);
            builder = builder.header(TRACEPARENT, outgoing.to_string());
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CallError::InvalidRequest {
                downstream: inner.name.clone(),
                cause: Cause::new(e),
            })?;

        let exchange = async {
            let response = inner
                .client
                .request(request)
                .await
                .map_err(|e| (e.to_string(), Some(Cause::new(e))))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| (format!("reading the body: {e}"), None))?
                .to_bytes();
            Ok::<_, (String, Option<Cause>)>((parts, body))
        };
        let outcome = match tokio::time::timeout(timeout, exchange.instrument(span.clone())).await {
            Err(_) => Attempt::Retry {
                detail: format!("timed out after {} ms", timeout.as_millis()),
                cause: None,
                retry_after: None,
            },
            Ok(Err((detail, cause))) => Attempt::Retry {
                detail,
                cause,
                retry_after: None,
            },
            Ok(Ok((parts, _))) if is_retriable(parts.status) => Attempt::Retry {
                detail: format!("answered {}", parts.status),
                cause: None,
                retry_after: retry::retry_after(&parts.headers),
            },
            Ok(Ok((parts, body))) => Attempt::Final(CallResponse {
                status: parts.status,
                body,
            }),
        };
        if let Attempt::Final(r) = &outcome {
            span.record("http.response.status_code", r.status.as_u16());
        }
        let label = match &outcome {
            Attempt::Final(r) if r.status.is_success() => "success",
            Attempt::Final(_) => "client_error",
            Attempt::Retry { .. } => "transient_error",
        };
        inner
            .metrics
            .downstream_duration
            .with_label_values(&[&inner.name, label])
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }
}

/// Statuses worth retrying: timeouts, throttling and server errors.
pub fn is_retriable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass as they are), so
/// an id with `/`, `?` or spaces cannot change which route a call reaches.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1 client over TCP, with no delay on its sockets: what a reverse proxy
/// forwards with, and what the scale reports and the scaler's management API reads use.
pub fn proxy_client() -> Client<HttpConnector, axum::body::Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("a-b_c.d~1"), "a-b_c.d~1");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn retriable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retriable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 204, 400, 404, 409, 422] {
            assert!(!is_retriable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
