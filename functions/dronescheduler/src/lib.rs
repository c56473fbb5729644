//! The dronescheduler function: assigns drones from a fleet to deliveries.
//!
//! - `PUT /api/DroneDeliveries/{deliveryId}` -> 200 {droneId, ...}: the least-loaded drone
//!   of the fleet for a new delivery; the same drone again for a known one (a re-plan
//!   updates the route and keeps the drone).
//! - `DELETE /api/DroneDeliveries/{deliveryId}` -> 200 | 404: frees the drone.
//! - `GET /api/DroneDeliveries/utilization?ownerId=&year=&month=` -> 200 {traveledMiles,
//!   assignedHours} summed over the owner's assignments in that month | 400 | 404.
//!
//! A drone works through the deliveries assigned to it in turn, so it may hold several;
//! new work goes to the drone with the fewest, which spreads load and never runs out.
//! Miles are the great-circle distance from pickup to dropoff; hours are miles over the
//! configured drone speed.

pub mod mongo_store;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, FixedOffset};
use contracts::requests::{DroneAssignment, PackageDetail};
use contracts::{Location, OwnerMonth, OwnerMonthQuery, PackageSize, read_location};
use runtime::deploy::{Deployment, Output, ProfileScaling, Scaling, Store};
use runtime::json::Validator;
use runtime::openapi;
use runtime::secrets::SecretWatch;
use runtime::store::mongo::{CONNECTION_STRING_SECRET, MongoSettings};
use runtime::store::to_completion;
use runtime::{
    ApiError, App, Bindings, EnvReader, FromEnv, Function, JsonBody, Registration, Routes,
    StartError, check_id,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub use mongo_store::MongoDroneStore;
pub use store::{DroneStore, MemoryDroneStore};

/// A drone's assignment to a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub delivery_id: String,
    pub drone_id: String,
    pub owner_id: Option<String>,
    pub pickup: Location,
    pub dropoff: Location,
    pub package_details: Vec<PackageDetail>,
    pub expedited: bool,
    /// The pickup time, or when the drone was assigned if none was given; utilization is
    /// counted in this month.
    pub scheduled_for: DateTime<FixedOffset>,
    /// Great-circle miles from pickup to dropoff.
    #[schema(minimum = 0.0)]
    pub miles: f64,
    /// Miles over the drone speed.
    #[schema(minimum = 0.0)]
    pub hours: f64,
}

/// What a PUT asks for. `None` fields keep their stored values on a re-plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub delivery_id: String,
    pub owner_id: Option<String>,
    pub pickup: Option<Location>,
    pub dropoff: Option<Location>,
    pub package_details: Option<Vec<PackageDetail>>,
    pub expedited: Option<bool>,
    pub pickup_time: Option<DateTime<FixedOffset>>,
}

/// Configuration: fleet size, drone speed and the store.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub fleet_size: u32,
    pub speed_mph: f64,
    /// MongoDB when a connection string is set (or the secret brings one); the embedded
    /// store otherwise.
    pub mongo: MongoSettings,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            fleet_size: 100,
            speed_mph: 40.0,
            mongo: MongoSettings::embedded("dronescheduler"),
        }
    }
}

impl FromEnv for SchedulerConfig {
    /// `DRONE_FLEET_SIZE` (1..=100000, default 100), `DRONE_SPEED_MPH` (default 40), and the
    /// `MONGODB_*` settings with the database from `DRONESCHEDULER_DATABASE` (default
    /// `dronescheduler`).
    fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        Self {
            fleet_size: r.number_in("DRONE_FLEET_SIZE", d.fleet_size, 1, 100_000),
            speed_mph: r.number_in("DRONE_SPEED_MPH", d.speed_mph, 1.0, 500.0),
            mongo: MongoSettings::from_env(r, "DRONESCHEDULER_DATABASE", "dronescheduler"),
        }
    }
}

impl SchedulerConfig {
    /// The store the settings choose; with MongoDB, connects, creates the indexes and
    /// seeds the fleet.
    /// `connection_string` is the [`CONNECTION_STRING_SECRET`] secret when a secret
    /// source is configured.
    pub async fn store(
        &self,
        connection_string: Option<SecretWatch>,
    ) -> Result<Arc<dyn DroneStore>, StartError> {
        let drones = fleet(self.fleet_size);
        let opened = self
            .mongo
            .open(DroneScheduler::NAME, connection_string, async |db| {
                MongoDroneStore::open(db, &drones).await
            })
            .await?;
        Ok(match opened {
            Some(store) => Arc::new(store),
            None => Arc::new(MemoryDroneStore::new(drones)),
        })
    }
}

/// The drone ids of a fleet of `n`: `drone-0001`, `drone-0002`, ...
pub fn fleet(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("drone-{i:04}")).collect()
}

/// The function, for the host.
#[derive(Debug)]
pub struct DroneScheduler;

/// What the function registry lists.
pub const FUNCTION: Registration = Registration::of::<DroneScheduler>();

/// The path prefix of every route.
pub const PREFIX: &str = "/api/dronedeliveries";

impl Function for DroneScheduler {
    const NAME: &'static str = "dronescheduler";
    type Config = SchedulerConfig;

    /// Called by the workflow only; not public.
    ///
    /// Scaling as `scripts/recommend-scaling` chose it (docs/scaling/recommended-dev.json and
    /// -prod.json, 2026-12-08, at the capacity `scripts/bench-capacity` measured): in dev a
    /// 60 s cooldown, the cheapest that keeps a held request under 5 s on the dev traces; in
    /// prod 10 requests a second per replica up to 8, the cheapest with which the workflow's
    /// queue age p99 stays within its 10 s target on the peak trace (8.9 s): at 158 a second
    /// per replica this is the slowest function, and its replicas show in its caller's queue.
    fn deployment() -> Deployment {
        Deployment::http(Self::NAME, &[PREFIX])
            .output(Output::MongoDb {
                secret: CONNECTION_STRING_SECRET.to_owned(),
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
                    max: 8,
                    target_per_replica: 10,
                    cooldown_seconds: 300,
                },
            })
    }

    async fn build(config: SchedulerConfig, bindings: &Bindings) -> Result<App, StartError> {
        let connection_string = bindings.store_secret(Store::MongoDb)?;
        Ok(App::http(routes(
            config.store(connection_string).await?,
            config,
        )))
    }
}

#[derive(Debug, Clone)]
struct AppState {
    store: Arc<dyn DroneStore>,
    speed_mph: f64,
}

/// The routes over `store`.
pub fn routes(store: Arc<dyn DroneStore>, config: SchedulerConfig) -> Routes {
    Routes::under(PREFIX)
        .operations(routes!(utilization))
        .operations(routes!(assign, release))
        .with_state(AppState {
            store,
            speed_mph: config.speed_mph,
        })
}

fn read_plan(delivery_id: &str, body: &serde_json::Value) -> Result<Plan, ApiError> {
    let mut v = Validator::new();
    let plan = v.root(body).map(|root| {
        if let Some(body_id) = v.string(&root, &["deliveryId"], false)
            && body_id != delivery_id
        {
            v.error(Some(&root), "deliveryId", "must match the id in the path");
        }
        let details = v.has(&root, "packageDetails").then(|| {
            v.objects(&root, "packageDetails", false)
                .iter()
                .filter_map(|d| {
                    let id = v.string(d, &["id"], true);
                    let size = v.named::<PackageSize>(d, "size", true);
                    Some(PackageDetail {
                        id: id?,
                        size: size?,
                    })
                })
                .collect()
        });
        Plan {
            delivery_id: delivery_id.to_owned(),
            owner_id: v.string(&root, &["ownerId"], false),
            pickup: read_location(&mut v, &root, "pickup", false),
            dropoff: read_location(&mut v, &root, "dropoff", false),
            package_details: details,
            expedited: v.boolean(&root, "expedited"),
            pickup_time: v.timestamp(&root, "pickupTime", false),
        }
    });
    v.finish()?;
    plan.ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))
}

/// The body of a PUT: what to plan. On a re-plan, absent fields keep their stored values.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", example = json!({
    "deliveryId": "d-1", "ownerId": "owner-1",
    "pickup": {"altitude": 0.0, "latitude": 47.64, "longitude": -122.13},
    "dropoff": {"altitude": 0.0, "latitude": 47.67, "longitude": -122.12},
    "packageDetails": [{"id": "pkg-1", "size": "Small"}], "expedited": false
}))]
#[allow(dead_code)] // Documents the body `read_plan` reads field by field.
struct PlanBody {
    /// When given, the id in the path.
    delivery_id: Option<String>,
    owner_id: Option<String>,
    pickup: Option<Location>,
    dropoff: Option<Location>,
    package_details: Option<Vec<PackageDetail>>,
    expedited: Option<bool>,
    /// The month utilization is counted in; the time of the request when absent.
    pickup_time: Option<DateTime<FixedOffset>>,
}

/// Assigns a drone to the delivery: the least-loaded drone of the fleet for a new one, the
/// same drone again for a known one (a re-plan updates the route and keeps the drone).
#[utoipa::path(put, path = "/{delivery_id}", tag = "dronescheduler", operation_id = "assignDrone",
    params(("delivery_id" = inline(openapi::Id), Path, description = "The delivery.")),
    request_body(content = PlanBody),
    responses(
        (status = 200, description = "The assignment.", body = Assignment),
        (status = 400, response = openapi::BadRequest),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn assign(
    State(state): State<AppState>,
    Path(delivery_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Assignment>, ApiError> {
    runtime::trace::annotate("delivery_id", &delivery_id);
    check_id("deliveryId", &delivery_id)?;
    let plan = read_plan(&delivery_id, &body)?;
    // A claim of a drone and its assignment are two writes: finish both even if the
    // caller goes away.
    let assignment =
        to_completion(async move { state.store.assign(plan, state.speed_mph).await }).await?;
    Ok(Json(assignment))
}

/// Frees the drone assigned to the delivery.
#[utoipa::path(delete, path = "/{delivery_id}", tag = "dronescheduler", operation_id = "releaseDrone",
    params(("delivery_id" = inline(openapi::Id), Path, description = "The delivery.")),
    responses(
        (status = 200, description = "The drone that was freed.", body = DroneAssignment),
        (status = 404, response = openapi::NotFound),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn release(
    State(state): State<AppState>,
    Path(delivery_id): Path<String>,
) -> Result<Json<DroneAssignment>, ApiError> {
    runtime::trace::annotate("delivery_id", &delivery_id);
    check_id("deliveryId", &delivery_id)?;
    let id = delivery_id.clone();
    match to_completion(async move { state.store.release(&id).await }).await? {
        Some(drone_id) => Ok(Json(DroneAssignment {
            drone_id,
            delivery_id,
        })),
        None => Err(ApiError::NotFound(format!(
            "no drone is assigned to delivery {delivery_id}"
        ))),
    }
}

/// An owner's use of the drones in a month.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Utilization {
    #[schema(minimum = 0.0)]
    traveled_miles: f64,
    #[schema(minimum = 0.0)]
    assigned_hours: f64,
}

/// Sums the miles and hours of an owner's assignments scheduled in a month.
#[utoipa::path(get, path = "/utilization", tag = "dronescheduler", operation_id = "droneUtilization",
    params(OwnerMonthQuery),
    responses(
        (status = 200, description = "Miles and hours, rounded to hundredths.", body = Utilization),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn utilization(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Utilization>, ApiError> {
    let period = OwnerMonth::from_query(&q)?;
    let in_month = state
        .store
        .owner_month_assignments(&period.owner_id, &period.key())
        .await?;
    if in_month.is_empty() {
        return Err(ApiError::NotFound(format!(
            "owner {} has no drone assignments in {}",
            period.owner_id,
            period.key()
        )));
    }
    Ok(Json(Utilization {
        traveled_miles: round2(in_month.iter().map(|a| a.miles).sum()),
        assigned_hours: round2(in_month.iter().map(|a| a.hours).sum()),
    }))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
