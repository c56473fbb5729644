//! Every dronescheduler route and status code, through the host's HTTP layers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::http::Method;
use chrono::{Datelike, Utc};
use dronescheduler::{MemoryDroneStore, SchedulerConfig, fleet, routes};
use runtime::testing::TestClient;
use serde_json::{Value, json};

fn client(drones: u32) -> TestClient {
    let config = SchedulerConfig {
        fleet_size: drones,
        speed_mph: 40.0,
    };
    TestClient::new(routes(
        Arc::new(MemoryDroneStore::new(fleet(drones))),
        config,
    ))
}

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

#[tokio::test]
async fn assigns_a_fleet_drone_and_the_same_one_again() {
    let c = client(3);
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

#[tokio::test]
async fn new_deliveries_spread_over_the_least_loaded_drones() {
    let c = client(3);
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

#[tokio::test]
async fn replan_keeps_the_drone_and_changes_the_route() {
    let c = client(2);
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

#[tokio::test]
async fn bad_plans_are_400_naming_fields() {
    let c = client(2);
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

#[tokio::test]
async fn delete_frees_the_drone_then_404() {
    let c = client(1);
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

#[tokio::test]
async fn utilization_sums_stored_assignments_of_the_month() {
    let c = client(2);
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

#[tokio::test]
async fn utilization_counts_by_pickup_time_month() {
    let c = client(1);
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
