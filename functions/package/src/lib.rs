//! The package function: HTTP trigger over a package store.
//!
//! - `GET /api/packages/{id}` -> 200 {id, size, weight, tag} | 404
//! - `PUT /api/packages/{id}` {size, weight, tag, ownerId?} -> 201 (the stored package and
//!   its `Location`) | 204 | 400 | 429 | 503
//! - `PATCH /api/packages/{id}` -> 204 | 404 | 400, a partial update
//! - `GET /api/packages/summary/{ownerId}` -> 200 {totalWeight}, summed from stored packages

pub mod mongo_store;
pub mod store;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::PackageSize;
use contracts::requests::PackageUpsert;
use runtime::client::path_segment;
use runtime::deploy::{self, Deployment, Output, ProfileScaling, Scaling};
use runtime::json::Validator;
use runtime::openapi;
use runtime::secrets::SecretWatch;
use runtime::store::Upsert;
use runtime::store::mongo::{CONNECTION_STRING_SECRET, MongoSettings};
use runtime::{
    ApiError, App, Bindings, EnvReader, FromEnv, Function, JsonBody, Registration, Routes,
    StartError, check_id,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub use mongo_store::MongoPackageStore;
pub use store::{MemoryPackageStore, PackageStore};

/// A stored package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageRecord {
    pub id: String,
    pub size: PackageSize,
    pub weight: Option<f64>,
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

/// The fields a PATCH may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackagePatch {
    pub size: Option<PackageSize>,
    pub weight: Option<f64>,
    pub tag: Option<String>,
    pub owner_id: Option<String>,
}

impl PackagePatch {
    pub fn apply(self, record: &mut PackageRecord) {
        if let Some(size) = self.size {
            record.size = size;
        }
        if self.weight.is_some() {
            record.weight = self.weight;
        }
        if self.tag.is_some() {
            record.tag = self.tag;
        }
        if self.owner_id.is_some() {
            record.owner_id = self.owner_id;
        }
    }
}

/// Configuration: the store.
#[derive(Debug, Clone)]
pub struct PackageConfig {
    /// MongoDB when a connection string is set (or the secret brings one); the embedded
    /// store otherwise.
    pub mongo: MongoSettings,
}

impl Default for PackageConfig {
    fn default() -> Self {
        Self {
            mongo: MongoSettings::embedded("package"),
        }
    }
}

impl FromEnv for PackageConfig {
    /// The `MONGODB_*` settings, with the database from `PACKAGE_DATABASE` (default
    /// `package`).
    fn from_env(r: &mut EnvReader<'_>) -> Self {
        Self {
            mongo: MongoSettings::from_env(r, "PACKAGE_DATABASE", "package"),
        }
    }
}

impl PackageConfig {
    /// The store the settings choose; with MongoDB, connects and creates the indexes.
    /// `connection_string` is the [`CONNECTION_STRING_SECRET`] secret when a secret
    /// source is configured.
    pub async fn store(
        &self,
        connection_string: Option<SecretWatch>,
    ) -> Result<Arc<dyn PackageStore>, StartError> {
        let opened = self
            .mongo
            .open(Package::NAME, connection_string, async |db| {
                MongoPackageStore::open(db).await
            })
            .await?;
        Ok(match opened {
            Some(store) => Arc::new(store),
            None => Arc::new(MemoryPackageStore::default()),
        })
    }
}

/// The function, for the host.
#[derive(Debug)]
pub struct Package;

/// What the function registry lists.
pub const FUNCTION: Registration = Registration::of::<Package>();

/// The path prefix of every route.
pub const PREFIX: &str = "/api/packages";

impl Function for Package {
    const NAME: &'static str = "package";
    type Config = PackageConfig;

    /// Called by the workflow only; not public.
    ///
    /// Scaling as `scripts/recommend-scaling` chose it (docs/scaling/recommended-dev.json and
    /// -prod.json, 2026-12-08, at the capacity `scripts/bench-capacity` measured): in dev a
    /// 60 s cooldown, the cheapest that keeps a held request under 5 s on the dev traces; in
    /// prod its two replicas carry the peak trace (600 a second) within the CPU limit, so
    /// its maximum is its minimum.
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
                    max: 2,
                    target_per_replica: 50,
                    cooldown_seconds: 300,
                },
            })
    }

    async fn build(config: PackageConfig, bindings: &Bindings) -> Result<App, StartError> {
        let connection_string = bindings.store_secret(deploy::Store::MongoDb)?;
        Ok(App::http(routes(config.store(connection_string).await?)))
    }
}

/// The routes over `store`.
pub fn routes(store: Arc<dyn PackageStore>) -> Routes {
    Routes::under(PREFIX)
        .operations(routes!(get_package, put_package, patch_package))
        .operations(routes!(summary))
        .with_state(store)
}

type Store = State<Arc<dyn PackageStore>>;

/// A stored package, as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Package, example = json!({"id": "pkg-1", "size": "Small", "weight": 2.5, "tag": "fragile"}))]
struct PackageView<'a> {
    id: &'a str,
    size: PackageSize,
    /// Kilograms.
    #[schema(minimum = 0.0)]
    weight: Option<f64>,
    tag: Option<&'a str>,
}

impl<'a> From<&'a PackageRecord> for PackageView<'a> {
    fn from(r: &'a PackageRecord) -> Self {
        Self {
            id: &r.id,
            size: r.size,
            weight: r.weight,
            tag: r.tag.as_deref(),
        }
    }
}

/// Reads a package.
#[utoipa::path(get, path = "/{id}", tag = "package", operation_id = "getPackage",
    params(("id" = inline(openapi::Id), Path, description = "The package id.")),
    responses(
        (status = 200, description = "The package.", body = PackageView),
        (status = 404, response = openapi::NotFound),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn get_package(State(store): Store, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    match store.get(&id).await? {
        Some(record) => Ok(Json(PackageView::from(&record)).into_response()),
        None => Err(ApiError::NotFound(format!("package {id} does not exist"))),
    }
}

/// Creates or replaces a package: 201 with the stored package and its `Location` (what the
/// reference answered, and its workflow read the body), or 204 when it replaced one.
#[utoipa::path(put, path = "/{id}", tag = "package", operation_id = "putPackage",
    params(("id" = inline(openapi::Id), Path, description = "The package id.")),
    request_body(content = PackageUpsert, description = "The package. Numbers and booleans may also come as JSON strings, as the reference's binder read them."),
    responses(
        (status = 201, description = "Created.", body = PackageView,
            headers(("Location" = String, description = "The package's URL.")),
            links(("GetPackage" = (operation_id = "getPackage", parameters(("id" = "$request.path.id")))))),
        (status = 204, description = "An existing package was replaced."),
        (status = 400, response = openapi::BadRequest),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn put_package(
    State(store): Store,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = read_package(&id, &body, true)?;
    let Some(PackagePatch {
        size: Some(size),
        weight,
        tag,
        owner_id,
    }) = fields
    else {
        return Err(ApiError::field("size", "is required"));
    };
    let record = PackageRecord {
        id,
        size,
        weight,
        tag,
        owner_id,
    };
    Ok(match store.upsert(record.clone()).await? {
        Upsert::Created => {
            let location = format!("/api/packages/{}", path_segment(&record.id));
            let mut response =
                (StatusCode::CREATED, Json(PackageView::from(&record))).into_response();
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Upsert::Updated => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Checks the id and reads the package fields of a PUT or PATCH body (PUT requires
/// `size`), reporting every bad field at once; `None` when the body is not an object.
fn read_package(
    id: &str,
    body: &serde_json::Value,
    size_required: bool,
) -> Result<Option<PackagePatch>, ApiError> {
    check_id("id", id)?;
    let mut v = Validator::new();
    let fields = v.root(body).map(|root| PackagePatch {
        size: v.named::<PackageSize>(&root, "size", size_required),
        weight: v.number(&root, "weight", 0.0, false),
        tag: v.string(&root, &["tag"], false),
        owner_id: v.string(&root, &["ownerId"], false),
    });
    v.finish()?;
    Ok(fields)
}

/// Changes the fields given, leaving the others alone.
#[utoipa::path(patch, path = "/{id}", tag = "package", operation_id = "patchPackage",
    params(("id" = inline(openapi::Id), Path, description = "The package id.")),
    request_body(content = PackagePatchBody, description = "At least one field."),
    responses(
        (status = 204, description = "Updated."),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn patch_package(
    State(store): Store,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    let patch = read_package(&id, &body, false)?.unwrap_or_default();
    if patch == PackagePatch::default() {
        return Err(ApiError::BadRequest(
            "nothing to update: give at least one of size, weight, tag, ownerId".into(),
        ));
    }
    if store.patch(&id, patch).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("package {id} does not exist")))
    }
}

/// The body of a PATCH: every field optional, at least one given.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase", min_properties = 1, example = json!({"weight": 3.0}))]
#[allow(dead_code)] // Documents the body `read_package` reads field by field.
struct PackagePatchBody {
    size: Option<PackageSize>,
    /// Kilograms.
    #[schema(minimum = 0.0)]
    weight: Option<f64>,
    tag: Option<String>,
    owner_id: Option<String>,
}

/// An owner's packages, summed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Summary {
    /// Kilograms, over every package of the owner.
    total_weight: f64,
}

/// Sums the weight of an owner's packages.
#[utoipa::path(get, path = "/summary/{owner_id}", tag = "package", operation_id = "packageSummary",
    params(("owner_id" = inline(openapi::Id), Path, description = "The owner.")),
    responses(
        (status = 200, description = "The owner's total weight (0 without packages).", body = Summary),
        (status = 429, response = openapi::TooManyRequests),
    ))]
async fn summary(
    State(store): Store,
    Path(owner_id): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    check_id("ownerId", &owner_id)?;
    let total_weight = store.total_weight(&owner_id).await?;
    Ok(Json(Summary { total_weight }))
}
