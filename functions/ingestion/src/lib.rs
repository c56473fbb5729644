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
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset};
use contracts::OPERATION;
use contracts::{
    CancelMessage, ConfirmationType, DeliveryMessage, Operation, PackageInfo, PackageSize,
    RescheduleMessage,
};
use runtime::deploy::{Deployment, Output, ProfileScaling, Scaling};
use runtime::json::Validator;
use runtime::openapi;
use runtime::queue::{OutgoingMessage, QueueSender};
use runtime::telemetry::Metrics;
use runtime::trace::{DIAGNOSTIC_ID, TRACEPARENT, TraceContext};
use runtime::{
    ApiError, App, Bindings, EnvReader, FromEnv, Function, JsonBody, Registration, Routes,
    StartError, check_id,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

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
    ///
    /// Scaling as `scripts/recommend-scaling` chose it (docs/scaling/recommended-dev.json and
    /// -prod.json, 2026-12-08, at the capacity `scripts/bench-capacity` measured): in dev a
    /// 60 s cooldown, the cheapest that keeps a held request under 5 s on the dev traces; in
    /// prod its two replicas carry the peak trace (600 a second) within the CPU limit, so
    /// its maximum is its minimum.
    fn deployment() -> Deployment {
        Deployment::http(Self::NAME, &[PREFIX])
            .public(&[PREFIX])
            .output(Output::Queue {
                queue: contracts::DELIVERY_QUEUE.to_owned(),
            })
            .scaling(Scaling {
                dev: ProfileScaling {
                    min: 0,
                    max: 2,
                    target_per_replica: 50,
                    cooldown_seconds: 60,
                },
                prod: ProfileScaling {
                    min: 2,
                    max: 2,
                    target_per_replica: 50,
                    cooldown_seconds: 300,
                },
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
        .operations(routes!(request_delivery))
        .operations(routes!(reschedule, cancel))
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
/// The body of a delivery request (read field by field by `read_request`, which accepts
/// what the reference's Jackson binder accepted: numbers and booleans as JSON strings,
/// `dropoffLocation` for `dropOffLocation`, names in any case; unknown fields are ignored).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", example = json!({
    "ownerId": "owner-1", "pickupLocation": "47.64,-122.13", "dropOffLocation": "47.67,-122.12",
    "pickupTime": "2026-11-30T10:00:00Z", "deadline": "LinkedIn", "expedited": false,
    "confirmationRequired": "None",
    "packageInfo": {"packageId": "pkg-1", "size": "Small", "weight": 2.5, "tag": "fragile"}
}))]
#[allow(dead_code)] // Documentation only.
struct DeliveryRequestBody {
    #[schema(pattern = "\\S")]
    owner_id: String,
    /// `lat,lon`, `alt,lat,lon`, or free text mapped into the service area.
    pickup_location: Option<String>,
    /// Also accepted as `dropoffLocation`.
    drop_off_location: Option<String>,
    /// The time of the request when absent.
    pickup_time: Option<DateTime<FixedOffset>>,
    deadline: Option<String>,
    expedited: Option<bool>,
    confirmation_required: ConfirmationType,
    package_info: PackageInfo,
}

/// A delivery request as accepted: the request as read, with the delivery id the server
/// made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeliveryAccepted<'a> {
    delivery_id: &'a str,
    owner_id: &'a str,
    pickup_location: &'a str,
    #[serde(rename = "dropOffLocation")]
    dropoff_location: &'a str,
    pickup_time: DateTime<FixedOffset>,
    deadline: Option<&'a str>,
    expedited: bool,
    confirmation_required: ConfirmationType,
    package_info: &'a PackageInfo,
}

fn echo(m: &DeliveryMessage) -> Value {
    serde_json::to_value(DeliveryAccepted {
        delivery_id: &m.delivery_id,
        owner_id: &m.owner_id,
        pickup_location: &m.pickup_location,
        dropoff_location: &m.dropoff_location,
        pickup_time: m.pickup_time,
        deadline: m.deadline.as_deref(),
        expedited: m.expedited,
        confirmation_required: m.confirmation_required,
        package_info: &m.package_info,
    })
    .unwrap_or(Value::Null)
}

/// The body of a reschedule: at least one field.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", min_properties = 1, example = json!({"deadline": "tomorrow"}))]
#[allow(dead_code)] // Documentation only.
struct RescheduleBody {
    pickup_location: Option<String>,
    /// Also accepted as `dropoffLocation`.
    drop_off_location: Option<String>,
    deadline: Option<String>,
    pickup_time: Option<DateTime<FixedOffset>>,
}

/// Requests a delivery. The answer comes only after the queue accepted the message.
#[utoipa::path(post, path = "", tag = "ingestion", operation_id = "requestDelivery",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key answers the same response and enqueues once; reusing it for another request is a 422.", min_length = 1, max_length = 128),
        ("X-Request-Id" = Option<String>, Header, description = "Part of the queue message's id when no Idempotency-Key is given."),),
    request_body(content = DeliveryRequestBody),
    responses(
        (status = 202, description = "Accepted and enqueued.", body = DeliveryAccepted,
            headers(("Location" = String, description = "Where the delivery will be readable: `/api/deliveries/{id}`.")),
            links(("GetPublicDelivery" = (operation_id = "getPublicDelivery", parameters(("id" = "$response.body#/deliveryId")))))),
        (status = 400, response = openapi::BadRequest),
        (status = 422, response = openapi::Unprocessable),
    ))]
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

/// Cancels a delivery: enqueues a `cancel`.
#[utoipa::path(delete, path = "/{id}", tag = "ingestion", operation_id = "cancelDeliveryRequest",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key answers the same response and enqueues once; reusing it for another request is a 422.", min_length = 1, max_length = 128),
        ("X-Request-Id" = Option<String>, Header, description = "Part of the queue message's id when no Idempotency-Key is given."),),
    responses(
        (status = 204, description = "The cancellation is enqueued."),
        (status = 400, response = openapi::BadRequest),
        (status = 422, response = openapi::Unprocessable),
    ))]
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

/// Reschedules a delivery: enqueues a `reschedule` with the fields given.
#[utoipa::path(patch, path = "/{id}", tag = "ingestion", operation_id = "rescheduleDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key answers the same response and enqueues once; reusing it for another request is a 422.", min_length = 1, max_length = 128),
        ("X-Request-Id" = Option<String>, Header, description = "Part of the queue message's id when no Idempotency-Key is given."),),
    request_body(content = RescheduleBody),
    responses(
        (status = 202, description = "The reschedule is enqueued.", body = RescheduleMessage,
            headers(("Location" = String, description = "The delivery: `/api/deliveries/{id}`."))),
        (status = 400, response = openapi::BadRequest),
        (status = 422, response = openapi::Unprocessable),
    ))]
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
