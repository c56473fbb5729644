//! The ingestion function: HTTP trigger with a queue output.
//!
//! - `POST /api/deliveryrequests` -> 202 with the request echoed plus `deliveryId` and
//!   `Location: /api/deliveries/{id}`, sent only after the broker accepted the message.
//!   400 naming every bad field, 413 over the body limit, 415 without JSON, 422 when an
//!   `Idempotency-Key` is reused with another body, 503 + `Retry-After` when the queue is
//!   unreachable.
//! - `DELETE /api/deliveryrequests/{id}` -> 204, enqueues a `cancel`.
//! - `PATCH /api/deliveryrequests/{id}` -> 202, enqueues a `reschedule`.

pub mod idempotency;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use contracts::OPERATION;
use contracts::{
    CancelMessage, ConfirmationType, DeliveryMessage, Operation, PackageInfo, PackageSize,
    RescheduleMessage,
};
use runtime::deploy::{Deployment, Output};
use runtime::http::Json;
use runtime::json::Validator;
use runtime::queue::{OutgoingMessage, QueueSender};
use runtime::telemetry::Metrics;
use runtime::trace::{DIAGNOSTIC_ID, TRACEPARENT, TraceContext};
use runtime::{
    ApiError, App, Bindings, EnvReader, FromEnv, Function, JsonBody, Registration, Routes,
    StartError, check_id,
};
use serde::Serialize;
use serde_json::{Value, json};

pub use idempotency::{IdempotencyCache, delivery_id_for_key};

/// The request header that makes retries safe.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// An optional client request id, used in message ids when there is no idempotency key.
pub const REQUEST_ID: &str = "x-request-id";

/// Configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestionConfig {
    pub idempotency_ttl: Duration,
    pub idempotency_max_keys: usize,
}

impl Default for IngestionConfig {
    fn default() -> Self {
        Self {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_max_keys: 100_000,
        }
    }
}

impl FromEnv for IngestionConfig {
    /// `IDEMPOTENCY_TTL_SECONDS` (default 1 day), `IDEMPOTENCY_MAX_KEYS` (default 100000).
    fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        Self {
            idempotency_ttl: r.seconds(
                "IDEMPOTENCY_TTL_SECONDS",
                d.idempotency_ttl,
                Duration::from_secs(1),
                Duration::from_secs(7 * 24 * 3600),
            ),
            idempotency_max_keys: r.number_in(
                "IDEMPOTENCY_MAX_KEYS",
                d.idempotency_max_keys,
                1,
                10_000_000,
            ),
        }
    }
}

/// The function, for the host.
#[derive(Debug)]
pub struct Ingestion;

/// What the function registry lists.
pub const FUNCTION: Registration = Registration::of::<Ingestion>();

/// The path prefix of every route.
pub const PREFIX: &str = "/api/deliveryrequests";

impl Function for Ingestion {
    const NAME: &'static str = "ingestion";
    type Config = IngestionConfig;

    /// The public front door: every request path it serves is public.
    fn deployment() -> Deployment {
        Deployment::http(Self::NAME, &[PREFIX])
            .public(&[PREFIX])
            .output(Output::Queue {
                queue: contracts::DELIVERY_QUEUE.to_owned(),
            })
    }

    async fn build(config: IngestionConfig, bindings: &Bindings) -> Result<App, StartError> {
        let sender = bindings.queue_sender()?;
        Ok(App::http(routes(
            sender,
            &config,
            bindings.metrics().clone(),
        )))
    }
}

#[derive(Debug, Clone)]
struct AppState {
    sender: Arc<dyn QueueSender>,
    idempotency: Arc<IdempotencyCache>,
    metrics: Metrics,
}

/// The routes, sending to `sender`.
pub fn routes(sender: Arc<dyn QueueSender>, config: &IngestionConfig, metrics: Metrics) -> Routes {
    let state = AppState {
        sender,
        idempotency: Arc::new(IdempotencyCache::new(
            config.idempotency_ttl,
            config.idempotency_max_keys,
        )),
        metrics,
    };
    Routes::under(PREFIX)
        .route("", post(request_delivery))
        .route("/{id}", patch(reschedule).delete(cancel))
        .with_state(state)
}

/// The answer to a request, before it is turned into a response (and maybe replayed).
struct Accepted {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let mut response = if self.body.is_null() {
            self.status.into_response()
        } else {
            (self.status, Json(self.body)).into_response()
        };
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(v) => match v.to_str().map(str::trim) {
            Ok(k) if !k.is_empty() && k.len() <= 128 => Ok(Some(k.to_owned())),
            _ => Err(ApiError::field(
                "Idempotency-Key",
                "must be 1 to 128 visible ASCII characters",
            )),
        },
    }
}

/// Runs `work` once per idempotency key (when there is one) and replays its answer.
async fn once<F, Fut>(
    state: &AppState,
    key: Option<String>,
    fingerprint: String,
    work: F,
) -> Result<Accepted, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Accepted, ApiError>>,
{
    let Some(key) = key else {
        return work().await;
    };
    let slot = state.idempotency.slot(&key);
    let recorded = slot
        .get_or_try_init(|| async {
            let accepted = work().await?;
            Ok::<_, ApiError>(idempotency::Recorded {
                fingerprint: fingerprint.clone(),
                status: accepted.status.as_u16(),
                body: accepted.body,
                location: accepted.location,
            })
        })
        .await?;
    if recorded.fingerprint != fingerprint {
        return Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used for a different request".into(),
        ));
    }
    Ok(Accepted {
        status: StatusCode::from_u16(recorded.status).unwrap_or(StatusCode::ACCEPTED),
        body: recorded.body.clone(),
        location: recorded.location.clone(),
    })
}

/// Sends a message; `Ok` only once the broker has accepted it.
async fn enqueue(
    state: &AppState,
    operation: Operation,
    message_id: String,
    body: &impl Serialize,
    trace: &TraceContext,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let context = trace.child().to_string();
    let message = OutgoingMessage::json(message_id, bytes)
        .with_property(OPERATION, operation.as_str())
        .with_property(TRACEPARENT, context.clone())
        .with_property(DIAGNOSTIC_ID, context);
    match state.sender.send(message).await {
        Ok(()) => {
            state
                .metrics
                .queue_sent
                .with_label_values(&["accepted"])
                .inc();
            Ok(())
        }
        Err(e) => {
            state
                .metrics
                .queue_sent
                .with_label_values(&["failed"])
                .inc();
            tracing::warn!(error = %e, operation = operation.as_str(), "enqueue failed");
            Err(e.into())
        }
    }
}

fn message_id(
    key: Option<&str>,
    delivery_id: &str,
    operation: Operation,
    headers: &HeaderMap,
) -> String {
    match key {
        Some(k) => k.to_owned(),
        None => {
            let request_id = header(headers, REQUEST_ID)
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            format!("{delivery_id}:{}:{request_id}", operation.as_str())
        }
    }
}

/// Reads a delivery request, naming every bad field.
fn read_request(body: &Value, delivery_id: String) -> Result<DeliveryMessage, ApiError> {
    let mut v = Validator::new();
    let message = v.root(body).map(|root| {
        let owner_id = v.string(&root, &["ownerId"], true);
        let pickup_location = v
            .string(&root, &["pickupLocation"], false)
            .unwrap_or_default();
        let dropoff_location = v
            .string(&root, &["dropOffLocation", "dropoffLocation"], false)
            .unwrap_or_default();
        let pickup_time = v
            .timestamp(&root, "pickupTime", false)
            .unwrap_or_else(contracts::now);
        let deadline = v.string(&root, &["deadline"], false);
        let expedited = v.boolean(&root, "expedited").unwrap_or(false);
        let confirmation = v.named::<ConfirmationType>(&root, "confirmationRequired", true);
        let package = v.object(&root, &["packageInfo"], true).map(|p| {
            let package_id = v.string(&p, &["packageId"], true);
            let size = v.named::<PackageSize>(&p, "size", true);
            let weight = v.number(&p, "weight", 0.0, false);
            let tag = v.string(&p, &["tag"], false);
            (package_id, size, weight, tag)
        });
        match (owner_id, confirmation, package) {
            (
                Some(owner_id),
                Some(confirmation_required),
                Some((Some(package_id), Some(size), weight, tag)),
            ) => Some(DeliveryMessage {
                delivery_id,
                owner_id,
                pickup_location,
                dropoff_location,
                pickup_time,
                expedited,
                deadline,
                confirmation_required,
                package_info: PackageInfo {
                    package_id,
                    size,
                    weight,
                    tag,
                },
            }),
            _ => None,
        }
    });
    v.finish()?;
    message
        .flatten()
        .ok_or_else(|| ApiError::BadRequest("the delivery request is incomplete".into()))
}

/// The 202 body: the request as understood, plus the delivery id.
fn echo(m: &DeliveryMessage) -> Value {
    json!({
        "deliveryId": m.delivery_id,
        "ownerId": m.owner_id,
        "pickupLocation": m.pickup_location,
        "dropOffLocation": m.dropoff_location,
        "pickupTime": m.pickup_time,
        "deadline": m.deadline,
        "expedited": m.expedited,
        "confirmationRequired": m.confirmation_required,
        "packageInfo": m.package_info,
    })
}

async fn request_delivery(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let delivery_id = match &key {
        Some(k) => delivery_id_for_key(k),
        None => uuid::Uuid::new_v4().to_string(),
    };
    runtime::trace::annotate("delivery_id", &delivery_id);
    let message = read_request(&body, delivery_id.clone())?;
    let fingerprint = format!("POST\n{body}");
    let id = message_id(key.as_deref(), &delivery_id, Operation::Delivery, &headers);
    let accepted = once(&state, key, fingerprint, || async {
        enqueue(&state, Operation::Delivery, id, &message, &trace).await?;
        tracing::info!("delivery request accepted");
        Ok(Accepted {
            status: StatusCode::ACCEPTED,
            body: echo(&message),
            location: Some(format!("/api/deliveries/{}", message.delivery_id)),
        })
    })
    .await?;
    Ok(accepted.into_response())
}

async fn cancel(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(delivery_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    runtime::trace::annotate("delivery_id", &delivery_id);
    check_id("id", &delivery_id)?;
    let key = idempotency_key(&headers)?;
    let id = message_id(key.as_deref(), &delivery_id, Operation::Cancel, &headers);
    let fingerprint = format!("DELETE\n{delivery_id}");
    let message = CancelMessage {
        delivery_id: delivery_id.clone(),
    };
    let accepted = once(&state, key, fingerprint, || async {
        enqueue(&state, Operation::Cancel, id, &message, &trace).await?;
        tracing::info!("cancellation accepted");
        Ok(Accepted {
            status: StatusCode::NO_CONTENT,
            body: Value::Null,
            location: None,
        })
    })
    .await?;
    Ok(accepted.into_response())
}

async fn reschedule(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(delivery_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    runtime::trace::annotate("delivery_id", &delivery_id);
    check_id("id", &delivery_id)?;
    let key = idempotency_key(&headers)?;
    let mut v = Validator::new();
    let message = v.root(&body).map(|root| RescheduleMessage {
        delivery_id: delivery_id.clone(),
        pickup_location: v.string(&root, &["pickupLocation"], false),
        dropoff_location: v.string(&root, &["dropOffLocation", "dropoffLocation"], false),
        deadline: v.string(&root, &["deadline"], false),
        pickup_time: v.timestamp(&root, "pickupTime", false),
    });
    v.finish()?;
    let message =
        message.ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    if message.pickup_location.is_none()
        && message.dropoff_location.is_none()
        && message.deadline.is_none()
        && message.pickup_time.is_none()
    {
        return Err(ApiError::BadRequest(
            "nothing to change: give at least one of pickupLocation, dropOffLocation, deadline, pickupTime".into(),
        ));
    }
    let id = message_id(
        key.as_deref(),
        &delivery_id,
        Operation::Reschedule,
        &headers,
    );
    let fingerprint = format!("PATCH\n{delivery_id}\n{body}");
    let accepted = once(&state, key, fingerprint, || async {
        enqueue(&state, Operation::Reschedule, id, &message, &trace).await?;
        tracing::info!("reschedule accepted");
        Ok(Accepted {
            status: StatusCode::ACCEPTED,
            body: serde_json::to_value(&message).unwrap_or(Value::Null),
            location: Some(format!("/api/deliveries/{delivery_id}")),
        })
    })
    .await?;
    Ok(accepted.into_response())
}
