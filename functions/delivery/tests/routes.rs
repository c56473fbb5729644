//! Every delivery route and status code, through the host's HTTP layers: one suite, run
//! against the embedded store (`embedded::*`) and against a real Redis (`on_redis::*`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use delivery::{DeliveryConfig, DeliveryStore, MemoryDeliveryStore, RedisDeliveryStore, routes};
use redis::AsyncCommands;
use runtime::MapEnv;
use runtime::config::EnvReader;
use runtime::store::redis::RedisSettings;
use runtime::testing::{TestClient, servers};
use serde_json::{Value, json};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/delivery.json")).unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

/// The routes over a fresh store of one backend (on Redis, under a key prefix of its own).
struct Harness {
    client: TestClient,
    store: Arc<dyn DeliveryStore>,
    redis: Option<RedisSettings>,
}

impl Harness {
    async fn new(backend: Backend, config: DeliveryConfig) -> Self {
        let (store, redis): (Arc<dyn DeliveryStore>, _) = match backend {
            Backend::Embedded => (Arc::new(MemoryDeliveryStore::default()), None),
            Backend::Redis => {
                let env = MapEnv::new().with("REDIS_URL", servers::redis_url()).with(
                    "REDIS_KEY_PREFIX",
                    format!("{}:", servers::unique_name("test:")),
                );
                let mut r = EnvReader::new(&env);
                let settings = RedisSettings::from_env(&mut r).unwrap();
                r.finish().unwrap();
                (
                    Arc::new(RedisDeliveryStore::new(&settings, None).unwrap()),
                    Some(settings),
                )
            }
        };
        Self {
            client: TestClient::new(routes(store.clone(), config)),
            store,
            redis,
        }
    }

    /// Every Redis key this harness wrote, with its remaining TTL in ms (-1: none).
    async fn redis_keys(&self) -> Vec<(String, i64)> {
        let settings = self.redis.as_ref().unwrap();
        let mut connection = settings.connect(None).unwrap();
        let keys: Vec<String> = connection
            .keys(format!("{}*", settings.key_prefix))
            .await
            .unwrap();
        let mut out = Vec::new();
        for key in keys {
            let ttl: i64 = connection.pttl(&key).await.unwrap();
            out.push((key, ttl));
        }
        out.sort();
        out
    }
}

runtime::per_backend!(Backend { embedded => Embedded, on_redis => Redis }:
    put_is_201_then_204_and_get_reads_it_back_publicly_too,
    unknown_deliveries_are_404_everywhere,
    put_names_every_bad_field,
    owner_and_status_come_from_stored_data,
    patch_reschedules_and_changes_the_status,
    delete_cancels_keeps_data_for_seven_days_and_blocks_later_changes,
    a_cancel_before_the_delivery_exists_refuses_its_later_put,
    confirmation_completes_the_delivery,
    notify_me_is_204_and_validates,
    summary_counts_the_owners_deliveries_of_the_month,
    finished_deliveries_carry_a_ttl,
);

async fn created(c: &TestClient, id: &str) {
    let mut body = fixture();
    body["id"] = json!(id);
    assert_eq!(
        c.json(Method::PUT, &format!("/api/deliveries/{id}"), &body)
            .await
            .status,
        201
    );
}

async fn put_is_201_then_204_and_get_reads_it_back_publicly_too(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    created(c, "d1").await;
    assert_eq!(
        c.json(Method::PUT, "/api/deliveries/d1", &fixture())
            .await
            .status,
        204
    );
    for path in ["/api/deliveries/d1", "/api/Deliveries/public/d1"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["droneId"], "drone-0001");
        assert_eq!(r.json()["confirmationRequired"], "FingerPrint");
        assert_eq!(r.json()["owner"]["accountId"], "account-1");
    }
}

async fn unknown_deliveries_are_404_everywhere(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    for path in [
        "/api/deliveries/x",
        "/api/deliveries/public/x",
        "/api/deliveries/x/owner",
        "/api/deliveries/x/status",
    ] {
        assert_eq!(c.get(path).await.status, 404, "{path}");
    }
    assert_eq!(c.delete("/api/deliveries/x").await.status, 404);
    assert_eq!(
        c.json(
            Method::PATCH,
            "/api/deliveries/x",
            &json!({"deadline": "soon"})
        )
        .await
        .status,
        404
    );
    let notify = c
        .json(
            Method::POST,
            "/api/deliveries/x/notifymerequests",
            &json!({"emailAddress": "a@b.c"}),
        )
        .await;
    assert_eq!(notify.status, 404);
    let confirm = json!({"dateTime": "2026-11-21T11:00:00Z", "confirmationType": "Picture"});
    assert_eq!(
        c.json(Method::POST, "/api/deliveries/x/confirmations", &confirm)
            .await
            .status,
        404
    );
}

async fn put_names_every_bad_field(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    let body = json!({"id": "other", "owner": {"userId": "u"}, "pickup": {"latitude": 1}, "confirmationRequired": "Smell"});
    let r = c.json(Method::PUT, "/api/deliveries/d1", &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.problem_fields(),
        [
            "id",
            "owner.accountId",
            "pickup.longitude",
            "dropoff",
            "confirmationRequired"
        ]
    );
}

async fn owner_and_status_come_from_stored_data(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    created(c, "d1").await;
    assert_eq!(
        c.get("/api/deliveries/d1/owner").await.json(),
        json!({"userId": "user-1", "accountId": "account-1"})
    );
    let status = c.get("/api/deliveries/d1/status").await.json();
    assert_eq!(status["stage"], "Created");
    assert_eq!(status["lastKnownLocation"]["latitude"], 47.6062);
    assert_eq!(status["pickupETA"], "2026-11-21T10:00:00Z");
    // 10.9 miles at 40 mph is about 16 minutes of flight.
    let eta = status["deliveryETA"].as_str().unwrap();
    assert!(eta.starts_with("2026-11-21T10:16"), "{eta}");
}

async fn patch_reschedules_and_changes_the_status(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    created(c, "d1").await;
    let r = c
        .json(
            Method::PATCH,
            "/api/deliveries/d1",
            &json!({"pickup": {"latitude": 47.7, "longitude": -122.2}, "deadline": "tomorrow"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pickup"]["latitude"], 47.7);
    assert_eq!(
        r.json()["dropoff"]["latitude"],
        47.674,
        "unpatched fields stay"
    );
    let status = c.get("/api/deliveries/d1/status").await.json();
    assert_eq!(status["stage"], "Rescheduled");
    assert_eq!(status["lastKnownLocation"]["latitude"], 47.7);
    // A read answers the patched document, not the one first stored.
    assert_eq!(c.get("/api/deliveries/d1").await.json(), r.json());
    assert_eq!(
        c.json(Method::PATCH, "/api/deliveries/d1", &json!({}))
            .await
            .status,
        400
    );
    let bad = c
        .json(
            Method::PATCH,
            "/api/deliveries/d1",
            &json!({"dropoff": {"latitude": "north"}}),
        )
        .await;
    assert_eq!(
        bad.problem_fields(),
        ["dropoff.latitude", "dropoff.longitude"]
    );
}

async fn delete_cancels_keeps_data_for_seven_days_and_blocks_later_changes(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    let store = &h.store;
    created(c, "d1").await;
    let r = c.delete("/api/deliveries/d1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stage"], "Cancelled");
    assert_eq!(
        c.get("/api/deliveries/d1/status").await.json()["stage"],
        "Cancelled"
    );
    assert_eq!(
        c.delete("/api/deliveries/d1").await.status,
        200,
        "cancelling twice is harmless"
    );
    let ttl = store.ttl("d1").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_secs(7 * 24 * 3600) && ttl > Duration::from_secs(7 * 24 * 3600 - 60)
    );
    assert_eq!(
        c.json(Method::PUT, "/api/deliveries/d1", &fixture())
            .await
            .status,
        410
    );
    let confirm = json!({"dateTime": "2026-11-21T11:00:00Z", "confirmationType": "Picture"});
    assert_eq!(
        c.json(Method::POST, "/api/deliveries/d1/confirmations", &confirm)
            .await
            .status,
        409
    );
}

async fn a_cancel_before_the_delivery_exists_refuses_its_later_put(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    let r = c.delete("/api/deliveries/d1").await;
    assert_eq!(r.status, 404);
    let put = c.json(Method::PUT, "/api/deliveries/d1", &fixture()).await;
    assert_eq!(put.status, 410, "{:?}", put.body);
    assert_eq!(c.get("/api/deliveries/d1").await.status, 404);
    // Other deliveries are untouched.
    created(c, "d2").await;
}

async fn confirmation_completes_the_delivery(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    let store = &h.store;
    created(c, "d1").await;
    let confirm = json!({
        "dateTime": "2026-11-21T10:20:00Z",
        "geoCoordinates": {"altitude": 0, "latitude": 47.675, "longitude": -122.12},
        "confirmationType": "FingerPrint",
        "confirmationBlob": "base64..."
    });
    let r = c
        .json(Method::POST, "/api/deliveries/d1/confirmations", &confirm)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stage"], "Completed");
    assert_eq!(r.json()["lastKnownLocation"]["latitude"], 47.675);
    assert_eq!(r.json()["deliveryETA"], "2026-11-21T10:20:00Z");
    assert!(store.ttl("d1").await.unwrap().unwrap() <= Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.delete("/api/deliveries/d1").await.status, 409);
    let bad = c
        .json(
            Method::POST,
            "/api/deliveries/d1/confirmations",
            &json!({"dateTime": "yesterday"}),
        )
        .await;
    assert_eq!(bad.problem_fields(), ["dateTime", "confirmationType"]);
}

async fn notify_me_is_204_and_validates(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    created(c, "d1").await;
    let r = c
        .json(
            Method::POST,
            "/api/deliveries/d1/notifymerequests",
            &json!({"emailAddress": "me@example.com", "sms": "+15550100"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .json(
            Method::POST,
            "/api/deliveries/d1/notifymerequests",
            &json!({"emailAddress": "nope"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem_fields()),
        (400, vec!["emailAddress".to_owned()])
    );
    assert_eq!(
        c.json(
            Method::POST,
            "/api/deliveries/d1/notifymerequests",
            &json!({})
        )
        .await
        .status,
        400
    );
}

async fn summary_counts_the_owners_deliveries_of_the_month(backend: Backend) {
    let h = Harness::new(backend, DeliveryConfig::default()).await;
    let c = &h.client;
    for id in ["a", "b", "c"] {
        created(c, id).await;
    }
    let mut other_month = fixture();
    other_month["id"] = json!("d");
    other_month["pickupTime"] = json!("2026-10-31T23:00:00Z");
    c.json(Method::PUT, "/api/deliveries/d", &other_month).await;
    c.json(Method::PUT, "/api/deliveries/a", &fixture()).await;
    let r = c
        .get("/api/deliveries/summary?ownerId=user-1&year=2026&month=11")
        .await;
    assert_eq!(
        r.json(),
        json!({"count": 3}),
        "a replaced delivery counts once"
    );
    assert_eq!(
        c.get("/api/deliveries/summary?ownerId=user-1&year=2026&month=10")
            .await
            .json(),
        json!({"count": 1})
    );
    assert_eq!(
        c.get("/api/deliveries/summary?ownerId=nobody&year=2026&month=11")
            .await
            .json(),
        json!({"count": 0})
    );
    let bad = c.get("/api/deliveries/summary?year=2026").await;
    assert_eq!(
        (bad.status.as_u16(), bad.problem_fields()),
        (400, vec!["ownerId".to_owned(), "month".to_owned()])
    );
}

#[tokio::test(start_paused = true)]
async fn embedded_finished_deliveries_are_purged_when_they_expire() {
    let store = Arc::new(MemoryDeliveryStore::default());
    let config = DeliveryConfig {
        finished_ttl: Duration::from_secs(60),
        ..DeliveryConfig::default()
    };
    let c = TestClient::new(routes(store.clone(), config));
    for i in 0..200 {
        let id = format!("d{i}");
        created(&c, &id).await;
        assert_eq!(c.delete(&format!("/api/deliveries/{id}")).await.status, 200);
        assert!(
            store.ttl(&id).await.unwrap().is_some(),
            "every finished delivery carries a TTL"
        );
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(c.get("/api/deliveries/d0").await.status, 404);
    assert_eq!(store.held(), 0, "expired deliveries are purged");
}

async fn finished_deliveries_carry_a_ttl(backend: Backend) {
    let finished_ttl = Duration::from_secs(3600);
    let config = DeliveryConfig {
        finished_ttl,
        ..DeliveryConfig::default()
    };
    let h = Harness::new(backend, config).await;
    let c = &h.client;
    for i in 0..50 {
        let id = format!("d{i}");
        created(c, &id).await;
        c.json(
            Method::POST,
            &format!("/api/deliveries/{id}/notifymerequests"),
            &json!({"sms": "+15550100"}),
        )
        .await;
        assert_eq!(c.delete(&format!("/api/deliveries/{id}")).await.status, 200);
        let ttl = h
            .store
            .ttl(&id)
            .await
            .unwrap()
            .expect("a finished delivery has a TTL");
        assert!(ttl <= finished_ttl && ttl > finished_ttl - Duration::from_secs(60));
    }
    if h.redis.is_some() {
        // Document, events and notify-me keys per delivery, plus the owner's month index.
        let keys = h.redis_keys().await;
        assert_eq!(keys.len(), 50 * 3 + 1, "{keys:?}");
        for (key, ttl) in keys {
            assert!(ttl > 0, "{key} has no TTL");
        }
    }
}
