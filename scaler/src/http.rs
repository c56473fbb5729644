//! The scaler's HTTP side: the replicas' in-flight reports, and its own health, readiness
//! and metrics.
//!
//! - `POST /v1/reports` `{"replica": "<pod>", "queue": "<queue>", "inFlight": <n>}`: a
//!   replica holds `n` messages of `queue` now (204). A queue the scaler does not serve is
//!   404, a malformed report 400, both problem+json.
//! - `GET /healthz`: the process serves (200).
//! - `GET /readyz`: every served queue's backlog is known (200), else 503: until then KEDA
//!   would get errors, and its fallback is the right answer.
//! - `GET /metrics`: Prometheus text.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use runtime::{ApiError, JsonBody};
use serde::Deserialize;
use tokio::time::Instant;

use crate::metrics::ScalerMetrics;
use crate::queues::{LoadError, Queues};

/// One replica's report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Report {
    /// The pod's name (or, locally, the process's).
    pub replica: String,
    pub queue: String,
    /// Messages the replica holds: locked ahead of a handler or being handled, unsettled.
    pub in_flight: u64,
    /// The replica is leaving (it drained and is about to exit): it holds nothing and will
    /// not report again, so it no longer counts as a reporting replica. Without it the
    /// scaler would count it until the report timeout and keep reading the backlog at the
    /// slower pace meant for running replicas, delaying the next wake from zero.
    #[serde(default)]
    pub last: bool,
}

#[derive(Debug, Clone)]
struct Shared {
    queues: Arc<Queues>,
    metrics: ScalerMetrics,
}

pub fn router(queues: Arc<Queues>, metrics: ScalerMetrics) -> Router {
    Router::new()
        .route("/v1/reports", post(report))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(Shared { queues, metrics })
}

/// `body` is refused as `JsonBody` refuses it: a problem, or axum's 413 over the limit.
async fn report(State(shared): State<Shared>, body: Result<JsonBody, Response>) -> Response {
    let result = match body {
        Ok(JsonBody(value)) => record(&shared, value).map_err(IntoResponse::into_response),
        Err(refused) => Err(refused),
    };
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    shared.metrics.reports.with_label_values(&[outcome]).inc();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused,
    }
}

/// Records one report.
fn record(shared: &Shared, value: serde_json::Value) -> Result<(), ApiError> {
    let report: Report = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("not a report: {e}")))?;
    if report.replica.is_empty() {
        return Err(ApiError::field("replica", "is required"));
    }
    if report.last && report.in_flight != 0 {
        return Err(ApiError::field(
            "inFlight",
            "must be 0 in a last report: a replica leaves once it holds nothing",
        ));
    }
    let now = Instant::now();
    let queues = &shared.queues;
    if report.last {
        queues.leave(&report.queue, &report.replica, now)
    } else {
        queues.report(&report.queue, &report.replica, report.in_flight, now)
    }
    .map_err(|e| match e {
        LoadError::UnknownQueue { .. } => ApiError::NotFound(e.to_string()),
        LoadError::BacklogUnknown { .. } => ApiError::Internal(e.to_string()),
    })
}

async fn ready(State(shared): State<Shared>) -> Response {
    if shared.queues.all_known(Instant::now()) {
        "ready".into_response()
    } else {
        ApiError::Unavailable {
            detail: "a served queue's backlog has not been read (or not recently)".into(),
            retry_after: std::time::Duration::from_secs(1),
        }
        .into_response()
    }
}

async fn render_metrics(State(shared): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(&shared.queues),
    )
        .into_response()
}
