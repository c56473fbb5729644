//! Every package route and status code, through the host's HTTP layers: one suite, run
//! against the embedded store (`embedded::*`) and a MongoDB-compatible server (`on_mongo::*`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::http::Method;
use package::{MemoryPackageStore, PackageConfig, routes};
use runtime::FromEnv;
use runtime::MapEnv;
use runtime::config::EnvReader;
use runtime::testing::{TestClient, servers};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Mongo,
}

/// The routes over a fresh store of one backend (on MongoDB, in a database of its own).
async fn client(backend: Backend) -> TestClient {
    let env = match backend {
        Backend::Embedded => MapEnv::new(),
        Backend::Mongo => MapEnv::new()
            .with("MONGODB_URI", servers::mongodb_uri())
            .with("PACKAGE_DATABASE", servers::unique_name("test_")),
    };
    let mut r = EnvReader::new(&env);
    let config = PackageConfig::from_env(&mut r);
    r.finish().unwrap();
    TestClient::new(routes(config.store(None).await.unwrap()))
}

runtime::per_backend!(Backend { embedded => Embedded, on_mongo => Mongo }:
    put_creates_then_replaces_and_get_reads_back,
    get_unknown_is_404_problem,
    put_rejects_bad_fields_naming_each,
    put_accepts_the_reference_integer_sizes,
    patch_updates_only_given_fields,
    patch_unknown_is_404_and_bad_or_empty_patch_is_400,
    summary_sums_the_owners_weights,
    concurrent_first_writes_create_once,
);

async fn put_creates_then_replaces_and_get_reads_back(backend: Backend) {
    let c = client(backend).await;
    let body = json!({"size": "small", "weight": 2.5, "tag": "fragile", "ownerId": "o1"});
    let stored = json!({"id": "p1", "size": "Small", "weight": 2.5, "tag": "fragile"});
    // 201 carries the stored package and where it lives, as the reference answered (its
    // workflow read that body).
    let created = c.json(Method::PUT, "/api/packages/p1", &body).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json(), stored);
    assert_eq!(created.header("location"), Some("/api/packages/p1"));
    let replaced = c.json(Method::PUT, "/api/packages/p1", &body).await;
    assert_eq!(replaced.status, 204);
    assert_eq!(replaced.header("location"), None);
    let r = c.get("/api/Packages/p1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), stored);
    // A trailing slash routes as without, as it did in the reference's frameworks.
    assert_eq!(c.get("/api/packages/p1/").await.json(), stored);
    assert_eq!(
        c.json(Method::PUT, "/api/packages/p1/", &body).await.status,
        204
    );
    let odd = c.json(Method::PUT, "/api/packages/a%20b%2Fc", &body).await;
    assert_eq!(odd.header("location"), Some("/api/packages/a%20b%2Fc"));
}

async fn get_unknown_is_404_problem(backend: Backend) {
    let r = client(backend).await.get("/api/packages/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

async fn put_rejects_bad_fields_naming_each(backend: Backend) {
    let r = client(backend)
        .await
        .json(
            Method::PUT,
            "/api/packages/p1",
            &json!({"size": "Huge", "weight": -1, "tag": [5]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.problem_fields(), ["size", "weight", "tag"]);
    let r = client(backend)
        .await
        .json(Method::PUT, "/api/packages/p1", &json!({}))
        .await;
    assert_eq!(r.problem_fields(), ["size"]);
}

async fn put_accepts_the_reference_integer_sizes(backend: Backend) {
    let c = client(backend).await;
    assert_eq!(
        c.json(Method::PUT, "/api/packages/p2", &json!({"size": 2}))
            .await
            .status,
        201
    );
    assert_eq!(c.get("/api/packages/p2").await.json()["size"], "Large");
}

async fn patch_updates_only_given_fields(backend: Backend) {
    let c = client(backend).await;
    c.json(
        Method::PUT,
        "/api/packages/p1",
        &json!({"size": "Small", "weight": 1, "tag": "a"}),
    )
    .await;
    let r = c
        .json(Method::PATCH, "/api/packages/p1", &json!({"weight": 4}))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get("/api/packages/p1").await.json(),
        json!({"id": "p1", "size": "Small", "weight": 4.0, "tag": "a"})
    );
}

async fn patch_unknown_is_404_and_bad_or_empty_patch_is_400(backend: Backend) {
    let c = client(backend).await;
    assert_eq!(
        c.json(Method::PATCH, "/api/packages/none", &json!({"weight": 1}))
            .await
            .status,
        404
    );
    c.json(Method::PUT, "/api/packages/p1", &json!({"size": "Small"}))
        .await;
    let r = c
        .json(Method::PATCH, "/api/packages/p1", &json!({"size": "giant"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem_fields()),
        (400, vec!["size".to_owned()])
    );
    assert_eq!(
        c.json(Method::PATCH, "/api/packages/p1", &json!({}))
            .await
            .status,
        400
    );
}

async fn summary_sums_the_owners_weights(backend: Backend) {
    let c = client(backend).await;
    c.json(
        Method::PUT,
        "/api/packages/a",
        &json!({"size": "Small", "weight": 1.5, "ownerId": "o1"}),
    )
    .await;
    c.json(
        Method::PUT,
        "/api/packages/b",
        &json!({"size": "Large", "weight": 3, "ownerId": "o1"}),
    )
    .await;
    c.json(
        Method::PUT,
        "/api/packages/c",
        &json!({"size": "Large", "weight": 100, "ownerId": "o2"}),
    )
    .await;
    assert_eq!(
        c.get("/api/packages/summary/o1").await.json(),
        json!({"totalWeight": 4.5})
    );
    assert_eq!(
        c.get("/api/packages/summary/nobody").await.json(),
        json!({"totalWeight": 0.0})
    );
}

#[tokio::test]
async fn non_json_and_oversized_bodies_are_refused() {
    let c = TestClient::with_body_limit(routes(Arc::new(MemoryPackageStore::default())), 1024);
    let r = c
        .raw(
            Method::PUT,
            "/api/packages/p1",
            Some("text/plain"),
            "size=Small",
            &[],
        )
        .await;
    assert_eq!(r.status, 415);
    let big = json!({"size": "Small", "tag": "x".repeat(4096)});
    assert_eq!(
        c.json(Method::PUT, "/api/packages/p1", &big).await.status,
        413
    );
    let r = c
        .raw(
            Method::PUT,
            "/api/packages/p1",
            Some("application/json"),
            "{not json",
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.get("/api/packages/p1").await.status,
        404,
        "nothing was stored"
    );
}

/// A store that fails every call the way a throttling or unreachable database would.
#[derive(Debug)]
struct FailingStore(runtime::store::StoreError);

#[async_trait::async_trait]
impl package::PackageStore for FailingStore {
    async fn get(
        &self,
        _: &str,
    ) -> Result<Option<package::PackageRecord>, runtime::store::StoreError> {
        Err(self.0.clone())
    }
    async fn upsert(
        &self,
        _: package::PackageRecord,
    ) -> Result<runtime::store::Upsert, runtime::store::StoreError> {
        Err(self.0.clone())
    }
    async fn patch(
        &self,
        _: &str,
        _: package::PackagePatch,
    ) -> Result<bool, runtime::store::StoreError> {
        Err(self.0.clone())
    }
    async fn total_weight(&self, _: &str) -> Result<f64, runtime::store::StoreError> {
        Err(self.0.clone())
    }
}

#[tokio::test]
async fn a_throttling_store_gives_429_and_an_unreachable_one_503_both_with_retry_after() {
    use runtime::store::StoreError;
    let throttled = TestClient::new(routes(Arc::new(FailingStore(StoreError::Throttled {
        retry_after: std::time::Duration::from_secs(3),
    }))));
    let r = throttled
        .json(Method::PUT, "/api/packages/p1", &json!({"size": "Small"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("retry-after")),
        (429, Some("3"))
    );
    let down = TestClient::new(routes(Arc::new(FailingStore(StoreError::unavailable(
        "connection refused",
    )))));
    let r = down
        .json(Method::PUT, "/api/packages/p1", &json!({"size": "Small"}))
        .await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

async fn concurrent_first_writes_create_once(backend: Backend) {
    let c = client(backend).await;
    let body = json!({"size": "medium", "weight": 1.0, "tag": "t"});
    let puts: Vec<_> = (0..8)
        .map(|_| {
            let (c, body) = (c.clone(), body.clone());
            tokio::spawn(async move { c.json(Method::PUT, "/api/packages/race", &body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for put in puts {
        statuses.push(put.await.unwrap().status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 204), "{statuses:?}");
}
