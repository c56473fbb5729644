//! The delivery function: HTTP trigger over the delivery store.
//!
//! - `GET /api/deliveries/{id}`, `GET /api/deliveries/public/{id}` -> 200 | 404
//! - `GET /api/deliveries/{id}/owner` -> 200 {userId, accountId} | 404
//! - `GET /api/deliveries/{id}/status` -> 200 {stage, lastKnownLocation, pickupETA,
//!   deliveryETA}, computed from the delivery and its tracking events
//! - `PUT /api/deliveries/{id}` -> 201 created | 204 replaced | 409 already completed | 410
//!   cancelled (also when the cancel came before the delivery existed)
//! - `PATCH /api/deliveries/{id}` {pickup, dropoff, deadline, pickupTime} -> 200 | 404 | 409
//!   | 410
//! - `DELETE /api/deliveries/{id}` -> 200 | 404 | 409: a `Cancelled` event; kept 7 days. On
//!   an unknown id, 404 and a tombstone kept as long, which refuses a later PUT
//! - `POST /api/deliveries/{id}/notifymerequests` {emailAddress, sms} -> 204 | 404
//! - `POST /api/deliveries/{id}/confirmations` -> 200 | 404 | 409: `Completed`; kept 7 days
//! - `GET /api/deliveries/summary?ownerId=&year=&month=` -> 200 {count}

pub mod model;
pub mod redis_store;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, FixedOffset};
use contracts::requests::{DeliveryDocument, DeliveryPatch, UserAccount};
use contracts::{ConfirmationType, Location, OwnerMonth, OwnerMonthQuery, read_location};
use runtime::deploy::{Deployment, Output, ProfileScaling, Scaling, Store};
use runtime::json::Validator;
use runtime::openapi;
use runtime::secrets::SecretWatch;
use runtime::store::Upsert;
use runtime::store::redis::RedisSettings;
use runtime::{
    ApiError, App, Bindings, EnvReader, FromEnv, Function, JsonBody, Registration, Routes,
    StartError, check_id,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub use model::{DeliveryStage, DeliveryStatus, NotifyMeRequest, StoredDelivery, TrackingEvent};
pub use redis_store::RedisDeliveryStore;
pub use store::{DeliveryStore, MemoryDeliveryStore, Put};

/// Configuration: how long deliveries are kept, the drone speed for ETAs, and the store.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub finished_ttl: Duration,
    pub active_ttl: Duration,
    pub speed_mph: f64,
    /// Redis when set; the embedded store otherwise.
    pub redis: Option<RedisSettings>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            finished_ttl: Duration::from_secs(7 * 24 * 3600),
            active_ttl: Duration::from_secs(30 * 24 * 3600),
            speed_mph: 40.0,
            redis: None,
        }
    }
}

impl FromEnv for DeliveryConfig {
    /// `FINISHED_DELIVERY_TTL_SECONDS` (default 7 days), `ACTIVE_DELIVERY_TTL_SECONDS`
    /// (default 30 days), `DRONE_SPEED_MPH` (default 40), and the `REDIS_*` settings.
    fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(400 * 24 * 3600));
        Self {
            finished_ttl: r.seconds("FINISHED_DELIVERY_TTL_SECONDS", d.finished_ttl, min, max),
            active_ttl: r.seconds("ACTIVE_DELIVERY_TTL_SECONDS", d.active_ttl, min, max),
            speed_mph: r.number_in("DRONE_SPEED_MPH", d.speed_mph, 1.0, 500.0),
            redis: RedisSettings::from_env(r),
        }
    }
}

impl DeliveryConfig {
    /// The store the settings choose; `access_key` is the [`REDIS_ACCESS_KEY`] secret when a
    /// secret source is configured.
    pub fn store(
        &self,
        access_key: Option<SecretWatch>,
    ) -> Result<Arc<dyn DeliveryStore>, StartError> {
        Ok(match (&self.redis, access_key) {
            (Some(settings), access_key) => {
                tracing::info!(server = %settings.server(), "delivery store: Redis");
                Arc::new(
                    RedisDeliveryStore::new(settings, access_key).map_err(|source| {
                        StartError::Store {
                            store: format!("Redis ({})", settings.server()),
                            source,
                        }
                    })?,
                )
            }
            (None, Some(_)) => {
                return Err(StartError::Conflict(format!(
                    "the secret {REDIS_ACCESS_KEY} is provided but REDIS_URL is not set"
                )));
            }
            (None, None) => Arc::new(MemoryDeliveryStore::default()),
        })
    }
}

/// The function, for the host.
#[derive(Debug)]
pub struct Delivery;

/// What the function registry lists.
pub const FUNCTION: Registration = Registration::of::<Delivery>();

/// The path prefix of every route, and the part of it the public ingress serves.
pub const PREFIX: &str = "/api/deliveries";
pub const PUBLIC_PREFIX: &str = "/api/deliveries/public";

/// The Key Vault object holding the Redis access key (`infra/` writes it).
pub const REDIS_ACCESS_KEY: &str = "Redis-AccessKey";

impl Function for Delivery {
    const NAME: &'static str = "delivery";
    type Config = DeliveryConfig;

    /// Only a delivery's public view is reachable from outside; the rest is the workflow's.
    ///
    /// Scaling as `scripts/recommend-scaling` chose it (docs/scaling/recommended-dev.json and
    /// -prod.json, 2026-12-08, at the capacity `scripts/bench-capacity` measured): in dev a
    /// 60 s cooldown, the cheapest that keeps a held request under 5 s on the dev traces; in
    /// prod its two replicas carry the peak trace (600 a second) within the CPU limit, so
    /// its maximum is its minimum.
    fn deployment() -> Deployment {
        Deployment::http(Self::NAME, &[PREFIX])
            .public(&[PUBLIC_PREFIX])
            .output(Output::Redis {
                secret: REDIS_ACCESS_KEY.to_owned(),
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

    async fn build(config: DeliveryConfig, bindings: &Bindings) -> Result<App, StartError> {
        let access_key = bindings.store_secret(Store::Redis)?;
        Ok(App::http(routes(config.store(access_key)?, config)))
    }
}

#[derive(Debug, Clone)]
struct AppState {
    store: Arc<dyn DeliveryStore>,
    config: Arc<DeliveryConfig>,
}

/// The routes over `store`.
pub fn routes(store: Arc<dyn DeliveryStore>, config: DeliveryConfig) -> Routes {
    Routes::under(PREFIX)
        .operations(routes!(summary))
        .operations(routes!(get_public_delivery))
        .operations(routes!(
            get_delivery,
            put_delivery,
            patch_delivery,
            cancel_delivery
        ))
        .operations(routes!(get_owner))
        .operations(routes!(get_status))
        .operations(routes!(notify_me))
        .operations(routes!(confirm))
        .with_state(AppState {
            store,
            config: Arc::new(config),
        })
}

type AppStateOf = State<AppState>;

/// The delivery alone, or 404, for the routes that do not need its history (one key read,
/// not two).
async fn fetch(state: &AppState, id: &str) -> Result<StoredDelivery, ApiError> {
    check_id("id", id)?;
    found(id, state.store.get(id).await?)
}

/// The delivery and its history, or 404.
async fn load(
    state: &AppState,
    id: &str,
) -> Result<(StoredDelivery, Vec<TrackingEvent>), ApiError> {
    check_id("id", id)?;
    found(id, state.store.load(id).await?)
}

fn found<T>(id: &str, stored: Option<T>) -> Result<T, ApiError> {
    stored.ok_or_else(|| ApiError::NotFound(format!("delivery {id} does not exist")))
}

fn stage_of(events: &[TrackingEvent]) -> DeliveryStage {
    events.last().map_or(DeliveryStage::Created, |e| e.stage)
}

fn refuse_if_finished(id: &str, events: &[TrackingEvent]) -> Result<(), ApiError> {
    let stage = stage_of(events);
    if stage == DeliveryStage::Cancelled {
        return Err(cancelled(id));
    }
    if stage.is_finished() {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is already {stage}"
        )));
    }
    Ok(())
}

/// 410: the delivery was cancelled, so it can be neither scheduled nor changed.
fn cancelled(id: &str) -> ApiError {
    ApiError::Gone(format!("delivery {id} was cancelled"))
}

/// Reads a delivery (kept for 7 days once finished).
#[utoipa::path(get, path = "/{id}", tag = "delivery", operation_id = "getDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery.", body = DeliveryDocument),
        (status = 404, response = openapi::NotFound),
    ))]
async fn get_delivery(
    State(state): AppStateOf,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDocument>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    check_id("id", &id)?;
    found(&id, state.store.get(&id).await?).map(|stored| Json(stored.document))
}

/// The public route to a delivery, which the ingress serves to clients.
#[utoipa::path(get, path = "/public/{id}", tag = "delivery", operation_id = "getPublicDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery.", body = DeliveryDocument),
        (status = 404, response = openapi::NotFound),
    ))]
async fn get_public_delivery(
    state: AppStateOf,
    id: Path<String>,
) -> Result<Json<DeliveryDocument>, ApiError> {
    get_delivery(state, id).await
}

/// Who the delivery is for.
#[utoipa::path(get, path = "/{id}/owner", tag = "delivery", operation_id = "getDeliveryOwner",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery's owner.", body = UserAccount),
        (status = 404, response = openapi::NotFound),
    ))]
async fn get_owner(
    State(state): AppStateOf,
    Path(id): Path<String>,
) -> Result<Json<UserAccount>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    Ok(Json(fetch(&state, &id).await?.document.owner))
}

/// Where the delivery stands, from its tracking events.
#[utoipa::path(get, path = "/{id}/status", tag = "delivery", operation_id = "getDeliveryStatus",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The stage, last known location and ETAs.", body = DeliveryStatus),
        (status = 404, response = openapi::NotFound),
    ))]
async fn get_status(
    State(state): AppStateOf,
    Path(id): Path<String>,
) -> Result<Json<DeliveryStatus>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    let (delivery, events) = load(&state, &id).await?;
    Ok(Json(DeliveryStatus::compute(
        &delivery,
        &events,
        state.config.speed_mph,
    )))
}

fn read_document(id: &str, body: &Value) -> Result<DeliveryDocument, ApiError> {
    let mut v = Validator::new();
    let doc = v.root(body).map(|root| {
        if let Some(body_id) = v.string(&root, &["id"], false)
            && body_id != id
        {
            v.error(Some(&root), "id", "must match the id in the path");
        }
        let owner = v.object(&root, &["owner"], true).map(|o| {
            let user_id = v.string(&o, &["userId"], true);
            let account_id = v.string(&o, &["accountId"], true);
            (user_id, account_id)
        });
        let pickup = read_location(&mut v, &root, "pickup", true);
        let dropoff = read_location(&mut v, &root, "dropoff", true);
        let deadline = v.string(&root, &["deadline"], false);
        let expedited = v.boolean(&root, "expedited").unwrap_or(false);
        let confirmation = v.named::<ConfirmationType>(&root, "confirmationRequired", true);
        let drone_id = v.string(&root, &["droneId"], false);
        let pickup_time = v.timestamp(&root, "pickupTime", false);
        match (owner, pickup, dropoff, confirmation) {
            (
                Some((Some(user_id), Some(account_id))),
                Some(pickup),
                Some(dropoff),
                Some(confirmation_required),
            ) => Some(DeliveryDocument {
                id: id.to_owned(),
                owner: UserAccount {
                    user_id,
                    account_id,
                },
                pickup,
                dropoff,
                deadline,
                expedited,
                confirmation_required,
                drone_id,
                pickup_time,
            }),
            _ => None,
        }
    });
    v.finish()?;
    doc.flatten()
        .ok_or_else(|| ApiError::BadRequest("the delivery is incomplete".into()))
}

/// The body of a PUT: the delivery document, whose `id` (when given) is the path's.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", example = json!({
    "owner": {"userId": "user-1", "accountId": "account-1"},
    "pickup": {"latitude": 47.64, "longitude": -122.13},
    "dropoff": {"latitude": 47.67, "longitude": -122.12},
    "confirmationRequired": "None", "expedited": false
}))]
#[allow(dead_code)] // Documents the body `read_document` reads field by field.
struct DeliveryBody {
    /// When given, the id in the path.
    id: Option<String>,
    owner: UserAccount,
    pickup: Location,
    dropoff: Location,
    deadline: Option<String>,
    expedited: Option<bool>,
    confirmation_required: ConfirmationType,
    drone_id: Option<String>,
    pickup_time: Option<DateTime<FixedOffset>>,
}

/// Stores a delivery: 201 when created (with a `Created` tracking event), 204 when it
/// replaced one.
#[utoipa::path(put, path = "/{id}", tag = "delivery", operation_id = "putDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    request_body(content = DeliveryBody),
    responses(
        (status = 201, description = "Created.",
            links(("GetDelivery" = (operation_id = "getDelivery", parameters(("id" = "$request.path.id")))))),
        (status = 204, description = "An existing delivery was replaced."),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
        (status = 410, response = openapi::Gone),
    ))]
async fn put_delivery(
    State(state): AppStateOf,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    check_id("id", &id)?;
    let document = read_document(&id, &body)?;
    let existing = state.store.load(&id).await?;
    if let Some((_, events)) = &existing {
        refuse_if_finished(&id, events)?;
    }
    let pickup = document.pickup;
    let created_at = existing.map_or_else(contracts::now, |(e, _)| e.created_at);
    let ttl = state.config.active_ttl;
    let outcome = state
        .store
        .put(
            StoredDelivery {
                document,
                created_at,
            },
            ttl,
        )
        .await?;
    Ok(match outcome {
        Put::Cancelled => return Err(cancelled(&id)),
        Put::Stored(Upsert::Created) => {
            let event = TrackingEvent {
                stage: DeliveryStage::Created,
                at: created_at,
                location: Some(pickup),
            };
            state.store.append_event(&id, event, ttl).await?;
            StatusCode::CREATED
        }
        Put::Stored(Upsert::Updated) => StatusCode::NO_CONTENT,
    })
}

/// Reschedules: changes the fields given and records a `Rescheduled` event.
#[utoipa::path(patch, path = "/{id}", tag = "delivery", operation_id = "patchDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    request_body(content = DeliveryPatch, description = "At least one field."),
    responses(
        (status = 200, description = "The delivery as changed.", body = DeliveryDocument),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 410, response = openapi::Gone),
    ))]
async fn patch_delivery(
    State(state): AppStateOf,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<DeliveryDocument>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    let mut v = Validator::new();
    let patch = v
        .root(&body)
        .map(|root| contracts::requests::DeliveryPatch {
            pickup: read_location(&mut v, &root, "pickup", false),
            dropoff: read_location(&mut v, &root, "dropoff", false),
            deadline: v.string(&root, &["deadline"], false),
            pickup_time: v.timestamp(&root, "pickupTime", false),
        });
    v.finish()?;
    let patch = patch.unwrap_or_default();
    if patch == contracts::requests::DeliveryPatch::default() {
        return Err(ApiError::BadRequest(
            "nothing to change: give at least one of pickup, dropoff, deadline, pickupTime".into(),
        ));
    }
    let (mut delivery, events) = load(&state, &id).await?;
    refuse_if_finished(&id, &events)?;
    let doc = &mut delivery.document;
    doc.pickup = patch.pickup.unwrap_or(doc.pickup);
    doc.dropoff = patch.dropoff.unwrap_or(doc.dropoff);
    doc.deadline = patch.deadline.or(doc.deadline.take());
    doc.pickup_time = patch.pickup_time.or(doc.pickup_time);
    let event = TrackingEvent {
        stage: DeliveryStage::Rescheduled,
        at: contracts::now(),
        location: Some(doc.pickup),
    };
    let ttl = state.config.active_ttl;
    state.store.put(delivery.clone(), ttl).await?;
    state.store.append_event(&id, event, ttl).await?;
    Ok(Json(delivery.document))
}

/// Cancels: a `Cancelled` event; the data is kept 7 days. Cancelling a delivery not stored
/// yet leaves a mark so that it is never scheduled, and answers 404.
#[utoipa::path(delete, path = "/{id}", tag = "delivery", operation_id = "cancelDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery's status, Cancelled.", body = DeliveryStatus),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    ))]
async fn cancel_delivery(
    State(state): AppStateOf,
    Path(id): Path<String>,
) -> Result<Json<DeliveryStatus>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    check_id("id", &id)?;
    let loaded = match state.store.load(&id).await? {
        Some(loaded) => Some(loaded),
        // Not stored yet: its delivery message may still come (redelivered after a failure),
        // so leave a tombstone that refuses it. Created meanwhile: cancel what is there.
        None if state
            .store
            .tombstone(&id, state.config.finished_ttl)
            .await? =>
        {
            None
        }
        None => state.store.load(&id).await?,
    };
    let Some((delivery, mut events)) = loaded else {
        return Err(ApiError::NotFound(format!(
            "delivery {id} does not exist; it is marked cancelled, so it will not be scheduled"
        )));
    };
    match stage_of(&events) {
        DeliveryStage::Cancelled => {}
        DeliveryStage::Completed => {
            return Err(ApiError::Conflict(format!(
                "delivery {id} is already Completed"
            )));
        }
        _ => {
            let event = TrackingEvent {
                stage: DeliveryStage::Cancelled,
                at: contracts::now(),
                location: None,
            };
            finish(&state, &id, &mut events, event).await?;
        }
    }
    Ok(Json(DeliveryStatus::compute(
        &delivery,
        &events,
        state.config.speed_mph,
    )))
}

/// Asks to be notified of the delivery's progress.
#[utoipa::path(post, path = "/{id}/notifymerequests", tag = "delivery", operation_id = "notifyMe",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    request_body(content = NotifyMeRequest),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    ))]
async fn notify_me(
    State(state): AppStateOf,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    let mut v = Validator::new();
    let request = v.root(&body).map(|root| {
        let email_address = v.string(&root, &["emailAddress"], false);
        if email_address.as_deref().is_some_and(|e| !e.contains('@')) {
            v.error(Some(&root), "emailAddress", "must be an email address");
        }
        let sms = v.string(&root, &["sms"], false);
        if email_address.is_none() && sms.is_none() {
            v.error(
                Some(&root),
                "emailAddress",
                "give an emailAddress or an sms number",
            );
        }
        NotifyMeRequest { email_address, sms }
    });
    v.finish()?;
    let Some(request) = request else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    load(&state, &id).await?;
    state.store.add_notification(&id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a confirmation.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", example = json!({
    "dateTime": "2026-11-30T10:00:00Z", "confirmationType": "Picture",
    "geoCoordinates": {"latitude": 47.67, "longitude": -122.12}
}))]
#[allow(dead_code)] // Documents the body `confirm` reads field by field.
struct ConfirmationBody {
    date_time: DateTime<FixedOffset>,
    /// Where; the dropoff when absent.
    geo_coordinates: Option<Location>,
    confirmation_type: ConfirmationType,
    confirmation_blob: Option<String>,
}

/// Confirms the delivery: `Completed`; the data is kept 7 days.
#[utoipa::path(post, path = "/{id}/confirmations", tag = "delivery", operation_id = "confirmDelivery",
    params(("id" = inline(openapi::Id), Path, description = "The delivery id.")),
    request_body(content = ConfirmationBody),
    responses(
        (status = 200, description = "The delivery's status, Completed.", body = DeliveryStatus),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    ))]
async fn confirm(
    State(state): AppStateOf,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<DeliveryStatus>, ApiError> {
    runtime::trace::annotate("delivery_id", &id);
    let mut v = Validator::new();
    let confirmation = v.root(&body).map(|root| {
        let at = v.timestamp(&root, "dateTime", true);
        let location = read_location(&mut v, &root, "geoCoordinates", false);
        let kind = v.named::<ConfirmationType>(&root, "confirmationType", true);
        v.string(&root, &["confirmationBlob"], false);
        (at, location, kind)
    });
    v.finish()?;
    let Some((Some(at), location, Some(_))) = confirmation else {
        return Err(ApiError::BadRequest(
            "the confirmation is incomplete".into(),
        ));
    };
    let (delivery, mut events) = load(&state, &id).await?;
    match stage_of(&events) {
        DeliveryStage::Completed => {}
        DeliveryStage::Cancelled => {
            return Err(ApiError::Conflict(format!("delivery {id} was Cancelled")));
        }
        _ => {
            let event = TrackingEvent {
                stage: DeliveryStage::Completed,
                at,
                location: location.or(Some(delivery.document.dropoff)),
            };
            finish(&state, &id, &mut events, event).await?;
        }
    }
    Ok(Json(DeliveryStatus::compute(
        &delivery,
        &events,
        state.config.speed_mph,
    )))
}

/// Records a finishing event (Cancelled or Completed): from now on the delivery expires
/// after the finished TTL.
async fn finish(
    state: &AppState,
    id: &str,
    events: &mut Vec<TrackingEvent>,
    event: TrackingEvent,
) -> Result<(), ApiError> {
    state
        .store
        .append_event(id, event.clone(), state.config.finished_ttl)
        .await?;
    events.push(event);
    Ok(())
}

/// A count of deliveries.
#[derive(Serialize, ToSchema)]
struct DeliveryCount {
    count: u64,
}

/// Counts an owner's deliveries scheduled in a month.
#[utoipa::path(get, path = "/summary", tag = "delivery", operation_id = "deliverySummary",
    params(OwnerMonthQuery),
    responses(
        (status = 200, description = "The number of deliveries.", body = DeliveryCount),
        (status = 400, response = openapi::BadRequest),
    ))]
async fn summary(
    State(state): AppStateOf,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryCount>, ApiError> {
    let period = OwnerMonth::from_query(&q)?;
    let count = state
        .store
        .count_for_owner_month(&period.owner_id, &period.key())
        .await?;
    Ok(Json(DeliveryCount { count }))
}
