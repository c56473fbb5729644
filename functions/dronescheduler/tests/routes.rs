//! Every dronescheduler route and status code, through the host's HTTP layers: one suite,
//! run against the embedded store (`embedded::*`) and a MongoDB-compatible server
//! (`on_mongo::*`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use chrono::{Datelike, Utc};
use dronescheduler::{SchedulerConfig, fleet, routes};
use runtime::FromEnv;
use runtime::MapEnv;
use runtime::config::EnvReader;
use runtime::testing::{TestClient, servers};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Mongo,
}

/// The routes over a fresh fleet of `drones` (on MongoDB, in a database of its own).
async fn client(backend: Backend, drones: u32) -> TestClient {
    client_in(backend, drones, &servers::unique_name("test_")).await
}

async fn client_in(backend: Backend, drones: u32, database: &str) -> TestClient {
    let env = MapEnv::new().with("DRONE_FLEET_SIZE", drones.to_string());
    let env = match backend {
        Backend::Embedded => env,
        Backend::Mongo => env
            .with("MONGODB_URI", servers::mongodb_uri())
            .with("DRONESCHEDULER_DATABASE", database),
    };
    let mut r = EnvReader::new(&env);
    let config = SchedulerConfig::from_env(&mut r);
    r.finish().unwrap();
    TestClient::new(routes(config.store(None).await.unwrap(), config))
}

runtime::per_backend!(Backend { embedded => Embedded, on_mongo => Mongo }:
    assigns_a_fleet_drone_and_the_same_one_again,
    new_deliveries_spread_over_the_least_loaded_drones,
    replan_keeps_the_drone_and_changes_the_route,
    bad_plans_are_400_naming_fields,
    delete_frees_the_drone_then_404,
    utilization_sums_stored_assignments_of_the_month,
    utilization_counts_by_pickup_time_month,
    concurrent_assignments_never_double_book,
);

fn plan(id: &str, owner: &str) -> Value {
    json!({
        "deliveryId": id,
        "ownerId": owner,
        "pickup": {"altitude": 0, "latitude": 47.6062, "longitude": -122.3321},
        "dropoff": {"altitude": 0, "latitude": 47.6740, "longitude": -122.1215},
        "packageDetails": [{"id": "pkg-1", "size": "Small"}],
        "expedited": true
    })
}

async fn assigns_a_fleet_drone_and_the_same_one_again(backend: Backend) {
    let c = client(backend, 3).await;
    let first = c
        .json(Method::PUT, "/api/DroneDeliveries/d1", &plan("d1", "o1"))
        .await;
    assert_eq!(first.status, 200);
    let drone = first.json()["droneId"].as_str().unwrap().to_owned();
    assert!(fleet(3).contains(&drone));
    for _ in 0..3 {
        let again = c
            .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
            .await;
        assert_eq!(
            again.json()["droneId"],
            drone.as_str(),
            "redelivery keeps the drone"
        );
    }
}

async fn new_deliveries_spread_over_the_least_loaded_drones(backend: Backend) {
    let c = client(backend, 3).await;
    let mut drones = Vec::new();
    for i in 0..3 {
        let id = format!("d{i}");
        drones.push(
            c.json(
                Method::PUT,
                &format!("/api/dronedeliveries/{id}"),
                &plan(&id, "o"),
            )
            .await
            .json()["droneId"]
                .clone(),
        );
    }
    drones.sort_by_key(|d| d.to_string());
    drones.dedup();
    assert_eq!(drones.len(), 3);
}

async fn replan_keeps_the_drone_and_changes_the_route(backend: Backend) {
    let c = client(backend, 2).await;
    let first = c
        .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
        .await
        .json();
    let replan = json!({"deliveryId": "d1", "dropoff": {"latitude": 47.7, "longitude": -122.0}});
    let second = c
        .json(Method::PUT, "/api/dronedeliveries/d1", &replan)
        .await;
    assert_eq!(second.status, 200);
    let second = second.json();
    assert_eq!(second["droneId"], first["droneId"]);
    assert_eq!(second["dropoff"]["latitude"], 47.7);
    assert_eq!(
        second["pickup"], first["pickup"],
        "absent fields keep their stored values"
    );
    assert_ne!(second["miles"], first["miles"]);
}

async fn bad_plans_are_400_naming_fields(backend: Backend) {
    let c = client(backend, 2).await;
    let r = c
        .json(
            Method::PUT,
            "/api/dronedeliveries/d1",
            &json!({"deliveryId": "other", "pickup": {"latitude": 91}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.problem_fields(),
        ["deliveryId", "pickup.latitude", "pickup.longitude"]
    );
    let r = c
        .json(
            Method::PUT,
            "/api/dronedeliveries/d2",
            &json!({"expedited": false}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem_fields()),
        (400, vec!["pickup".to_owned(), "dropoff".to_owned()])
    );
}

async fn delete_frees_the_drone_then_404(backend: Backend) {
    let c = client(backend, 1).await;
    let drone = c
        .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o"))
        .await
        .json()["droneId"]
        .clone();
    let r = c.delete("/api/DroneDeliveries/d1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["droneId"], drone);
    assert_eq!(c.delete("/api/dronedeliveries/d1").await.status, 404);
}

async fn utilization_sums_stored_assignments_of_the_month(backend: Backend) {
    let c = client(backend, 2).await;
    c.json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
        .await;
    c.json(Method::PUT, "/api/dronedeliveries/d2", &plan("d2", "o1"))
        .await;
    c.json(Method::PUT, "/api/dronedeliveries/d3", &plan("d3", "o2"))
        .await;
    let now = Utc::now();
    let path = format!(
        "/api/dronedeliveries/utilization?ownerId=o1&year={}&month={}",
        now.year(),
        now.month()
    );
    let r = c.get(&path).await;
    assert_eq!(r.status, 200);
    let miles = r.json()["traveledMiles"].as_f64().unwrap();
    let hours = r.json()["assignedHours"].as_f64().unwrap();
    assert!((miles - 2.0 * 10.9).abs() < 0.6, "{miles}");
    assert!((hours - miles / 40.0).abs() < 0.02, "{hours}");

    let empty = format!(
        "/api/dronedeliveries/utilization?ownerId=nobody&year={}&month={}",
        now.year(),
        now.month()
    );
    assert_eq!(c.get(&empty).await.status, 404);
    let bad = c
        .get("/api/dronedeliveries/utilization?ownerId=o1&year=abc&month=13")
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.problem_fields()),
        (400, vec!["year".to_owned(), "month".to_owned()])
    );
}

async fn utilization_counts_by_pickup_time_month(backend: Backend) {
    let c = client(backend, 1).await;
    let mut p = plan("d1", "o1");
    p["pickupTime"] = json!("2025-02-10T10:00:00Z");
    c.json(Method::PUT, "/api/dronedeliveries/d1", &p).await;
    assert_eq!(
        c.get("/api/dronedeliveries/utilization?ownerId=o1&year=2025&month=2")
            .await
            .status,
        200
    );
    assert_eq!(
        c.get("/api/dronedeliveries/utilization?ownerId=o1&year=2025&month=3")
            .await
            .status,
        404
    );
}

/// Assigns every id at once (each id `copies` times) and returns each id's drone.
/// Assigns delivery `id` (owner `o1`); the drone it got.
async fn assign(c: &TestClient, id: &str) -> String {
    let r = c
        .json(
            Method::PUT,
            &format!("/api/dronedeliveries/{id}"),
            &plan(id, "o1"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["droneId"].as_str().unwrap().to_owned()
}

async fn assign_concurrently(
    c: &TestClient,
    ids: &[String],
    copies: usize,
) -> std::collections::HashMap<String, String> {
    let calls: Vec<_> = ids
        .iter()
        .flat_map(|id| std::iter::repeat_n(id.clone(), copies))
        .map(|id| {
            let c = c.clone();
            tokio::spawn(async move {
                let drone = assign(&c, &id).await;
                (id, drone)
            })
        })
        .collect();
    let mut drone_of = std::collections::HashMap::new();
    for call in calls {
        let (id, drone) = call.await.unwrap();
        let first = drone_of.entry(id.clone()).or_insert_with(|| drone.clone());
        assert_eq!(*first, drone, "{id} got two drones");
    }
    drone_of
}

async fn concurrent_assignments_never_double_book(backend: Backend) {
    let c = client(backend, 20).await;
    // Racing requests for one delivery agree on its drone...
    let raced: Vec<String> = (0..20).map(|i| format!("raced{i}")).collect();
    assign_concurrently(&c, &raced, 2).await;
    // ...and give back every claim they lost: once all are released, twenty new deliveries
    // at once land on twenty different drones.
    for id in &raced {
        assert_eq!(
            c.delete(&format!("/api/dronedeliveries/{id}")).await.status,
            200
        );
    }
    let fresh: Vec<String> = (0..20).map(|i| format!("fresh{i}")).collect();
    let drone_of = assign_concurrently(&c, &fresh, 1).await;
    let mut drones: Vec<_> = drone_of.values().collect();
    drones.sort();
    drones.dedup();
    assert_eq!(drones.len(), 20, "one delivery per drone: {drone_of:?}");
}

#[tokio::test]
async fn mongo_replicas_share_assignments_and_load() {
    let database = servers::unique_name("test_");
    let a = client_in(Backend::Mongo, 2, &database).await;
    let first = a
        .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
        .await
        .json();
    // A second replica starting on the same database seeds nothing twice.
    let b = client_in(Backend::Mongo, 2, &database).await;
    let again = b
        .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
        .await
        .json();
    assert_eq!(again["droneId"], first["droneId"]);
    let second = b
        .json(Method::PUT, "/api/dronedeliveries/d2", &plan("d2", "o1"))
        .await
        .json();
    assert_ne!(second["droneId"], first["droneId"], "the load is shared");
    assert_eq!(a.delete("/api/dronedeliveries/d2").await.status, 200);
    assert_eq!(b.delete("/api/dronedeliveries/d2").await.status, 404);
}

/// The fleet's drone documents in `database`.
async fn drones(database: &str) -> Vec<mongodb::bson::Document> {
    use mongodb::bson::Document;
    let client = mongodb::Client::with_uri_str(servers::mongodb_uri())
        .await
        .unwrap();
    let mut cursor = client
        .database(database)
        .collection::<Document>("drones")
        .find(Document::new())
        .await
        .unwrap();
    let mut drones = Vec::new();
    while cursor.advance().await.unwrap() {
        drones.push(cursor.deserialize_current().unwrap());
    }
    drones
}

/// Every drone's load against the deliveries it is assigned: `(load, assigned)` summed
/// over the fleet of `database`.
async fn load_and_assignments(database: &str) -> (i64, u64) {
    use mongodb::bson::Document;
    let load = drones(database)
        .await
        .iter()
        .map(|d| d.get_i64("load").unwrap())
        .sum();
    let assigned = mongodb::Client::with_uri_str(servers::mongodb_uri())
        .await
        .unwrap()
        .database(database)
        .collection::<Document>("assignments")
        .count_documents(Document::new())
        .await
        .unwrap();
    (load, assigned)
}

#[tokio::test]
async fn a_put_whose_caller_goes_away_leaves_no_load_without_an_assignment() {
    let database = servers::unique_name("test_");
    let c = client_in(Backend::Mongo, 5, &database).await;
    // Callers that give up at every point of the request, some between the drone's claim
    // and the assignment's insert.
    for i in 0..60u64 {
        let id = format!("gone{i}");
        let (path, body) = (format!("/api/dronedeliveries/{id}"), plan(&id, "o1"));
        let put = c.json(Method::PUT, &path, &body);
        let _ = tokio::time::timeout(std::time::Duration::from_micros(i * 150), put).await;
    }
    // The work a caller left behind finishes on its own: wait until the counts hold still.
    let mut seen = (-1, 0);
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = load_and_assignments(&database).await;
        if now == seen {
            break;
        }
        seen = now;
    }
    let (load, assigned) = seen;
    assert_eq!(
        load,
        i64::try_from(assigned).unwrap(),
        "load without an assignment"
    );
    // And a claim left by a process that died between the two writes is taken up again
    // by the next attempt for that delivery, not claimed twice.
    let db = mongodb::Client::with_uri_str(servers::mongodb_uri())
        .await
        .unwrap()
        .database(&database);
    db.collection::<mongodb::bson::Document>("drones")
        .update_one(
            mongodb::bson::doc! {"_id": "drone-0003"},
            mongodb::bson::doc! {"$inc": {"load": 1}, "$push": {"holding": "orphan"}},
        )
        .await
        .unwrap();
    let r = c
        .json(
            Method::PUT,
            "/api/dronedeliveries/orphan",
            &plan("orphan", "o1"),
        )
        .await;
    assert_eq!(r.json()["droneId"], "drone-0003");
    let (load, assigned) = load_and_assignments(&database).await;
    assert_eq!(load, i64::try_from(assigned).unwrap());
    // ...or given back by a release even with no assignment to delete.
    db.collection::<mongodb::bson::Document>("drones")
        .update_one(
            mongodb::bson::doc! {"_id": "drone-0002"},
            mongodb::bson::doc! {"$inc": {"load": 1}, "$push": {"holding": "never"}},
        )
        .await
        .unwrap();
    assert_eq!(c.delete("/api/dronedeliveries/never").await.status, 200);
    let (load, assigned) = load_and_assignments(&database).await;
    assert_eq!(load, i64::try_from(assigned).unwrap());
}

/// How many holds the fleet of `database` carries, over all drones.
async fn holds(database: &str) -> usize {
    drones(database)
        .await
        .iter()
        .map(|d| d.get_array("holding").map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn holds_are_dropped_once_written_and_a_release_gives_the_load_back_once() {
    let database = servers::unique_name("test_");
    let c = client_in(Backend::Mongo, 3, &database).await;
    let mut drone_of = Vec::new();
    for i in 0..12 {
        drone_of.push(assign(&c, &format!("d{i}")).await);
    }
    // The drones' documents do not grow with the deliveries they were given.
    assert_eq!(holds(&database).await, 0);
    assert_eq!(load_and_assignments(&database).await, (12, 12));
    // A redelivered PUT (a re-plan) keeps the drone, holds nothing and adds no load, though
    // a whole plan claims a drone before its insert finds the assignment there.
    let again = c
        .json(Method::PUT, "/api/dronedeliveries/d1", &plan("d1", "o1"))
        .await;
    assert_eq!(again.json()["droneId"], drone_of[1].as_str());
    assert_eq!(holds(&database).await, 0);
    assert_eq!(load_and_assignments(&database).await, (12, 12));
    for i in 0..3 {
        assert_eq!(
            c.delete(&format!("/api/dronedeliveries/d{i}")).await.status,
            200
        );
    }
    assert_eq!(c.delete("/api/dronedeliveries/d0").await.status, 404);
    assert_eq!(load_and_assignments(&database).await, (9, 9));

    let db = mongodb::Client::with_uri_str(servers::mongodb_uri())
        .await
        .unwrap()
        .database(&database);
    let drones = db.collection::<mongodb::bson::Document>("drones");
    // A release that died after holding the drone again: the next one finishes it, once.
    drones
        .update_one(
            mongodb::bson::doc! {"_id": &drone_of[5]},
            mongodb::bson::doc! {"$push": {"holding": "d5"}},
        )
        .await
        .unwrap();
    assert_eq!(c.delete("/api/dronedeliveries/d5").await.status, 200);
    assert_eq!(load_and_assignments(&database).await, (8, 8));
    // One that died after deleting the assignment: the hold it left gives the load back.
    drones
        .update_one(
            mongodb::bson::doc! {"_id": &drone_of[6]},
            mongodb::bson::doc! {"$push": {"holding": "d6"}},
        )
        .await
        .unwrap();
    db.collection::<mongodb::bson::Document>("assignments")
        .delete_one(mongodb::bson::doc! {"_id": "d6"})
        .await
        .unwrap();
    let r = c.delete("/api/dronedeliveries/d6").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["droneId"], drone_of[6].as_str());
    assert_eq!(load_and_assignments(&database).await, (7, 7));
    assert_eq!(holds(&database).await, 0);
}
