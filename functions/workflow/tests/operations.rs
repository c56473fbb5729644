//! Each operation against the real backends, and how each failure is settled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use runtime::MessageError;
use runtime::queue::ReceivedMessage;
use serde_json::json;
use support::{Backends, delivery_body, received};
use workflow::steps::reasons;

/// A cancel message for `id`.
fn cancel(id: &str) -> ReceivedMessage {
    received(Some("cancel"), &body(&json!({"deliveryId": id})))
}

/// Whether `id` holds no drone any more: releasing it finds nothing (404). Releases it if
/// it still held one.
async fn drone_already_released(b: &Backends, id: &str) -> bool {
    let path = format!("/api/dronedeliveries/{id}");
    b.delete(&b.config.dronescheduler_url, &path).await == 404
}

fn body(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test]
async fn a_delivery_message_stores_the_package_assigns_a_drone_and_schedules_the_delivery() {
    let b = Backends::start().await;
    let p = b.processor();
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();

    let (status, pkg) = b.get(&b.config.package_url, "/api/packages/pkg-d1").await;
    assert_eq!(
        (status, pkg["size"].as_str(), pkg["weight"].as_f64()),
        (200, Some("Medium"), Some(3.5))
    );
    let (status, delivery) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    assert_eq!(status, 200);
    let drone = delivery["droneId"].as_str().unwrap().to_owned();
    assert!(drone.starts_with("drone-"));
    assert_eq!(
        delivery["expedited"], true,
        "the reference dropped expedited"
    );
    assert_eq!(
        delivery["pickup"]["latitude"], 47.6062,
        "real locations, not random ones"
    );
    assert_eq!(delivery["dropoff"]["longitude"], -122.1215);
    assert_eq!(delivery["confirmationRequired"], "Picture");
    let (_, summary) = b
        .get(&b.config.package_url, "/api/packages/summary/owner-1")
        .await;
    assert_eq!(summary["totalWeight"], 3.5);
}

#[tokio::test]
async fn a_redelivered_message_gives_the_same_drone_and_one_delivery() {
    let b = Backends::start().await;
    let p = b.processor();
    let msg = body(&delivery_body("d1"));
    p.handle(received(Some("delivery"), &msg)).await.unwrap();
    let (_, first) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    p.handle(received(Some("delivery"), &msg)).await.unwrap();
    let (_, second) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    assert_eq!(first["droneId"], second["droneId"]);
    let (_, summary) = b
        .get(
            &b.config.delivery_url,
            "/api/deliveries/summary?ownerId=owner-1&year=2026&month=11",
        )
        .await;
    assert_eq!(summary["count"], 1);
    let (_, util) = b
        .get(
            &b.config.dronescheduler_url,
            "/api/dronedeliveries/utilization?ownerId=owner-1&year=2026&month=11",
        )
        .await;
    let miles = util["traveledMiles"].as_f64().unwrap();
    assert!(
        miles > 10.0 && miles < 12.0,
        "one assignment, not two: {miles}"
    );
}

#[tokio::test]
async fn messages_without_operation_are_deliveries_and_unknown_operations_dead_letter() {
    let b = Backends::start().await;
    let p = b.processor();
    p.handle(received(None, &body(&delivery_body("d1"))))
        .await
        .unwrap();
    assert_eq!(
        b.get(&b.config.delivery_url, "/api/deliveries/d1").await.0,
        200
    );
    let err = p
        .handle(received(Some("teleport"), &body(&delivery_body("d2"))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MessageError::Permanent { ref reason, .. } if reason == reasons::UNKNOWN_OPERATION),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreadable_bodies_dead_letter_as_malformed() {
    let b = Backends::start().await;
    let p = b.processor();
    for (op, raw) in [
        ("delivery", b"not json".to_vec()),
        ("cancel", body(&json!({"id": 1}))),
        ("delivery", body(&json!({"deliveryId": "x"}))),
    ] {
        let err = p.handle(received(Some(op), &raw)).await.unwrap_err();
        assert!(
            matches!(err, MessageError::Permanent { ref reason, .. } if reason == reasons::MALFORMED_MESSAGE),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn transient_delivery_failures_abandon_and_keep_the_drone() {
    let b = Backends::start().await;
    let p = b.processor();
    b.faults.fail_delivery_put(503, u32::MAX);
    let err = p
        .handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap_err();
    assert!(matches!(err, MessageError::Transient(_)), "{err:?}");
    // The drone stays assigned: the redelivery will reuse it.
    b.faults.fail_delivery_put(503, 0);
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();
    assert_eq!(
        b.get(&b.config.delivery_url, "/api/deliveries/d1").await.0,
        200
    );
}

#[tokio::test]
async fn a_transient_failure_on_the_last_attempt_releases_the_drone() {
    let b = Backends::start().await;
    let p = b.processor();
    b.faults.fail_delivery_put(503, u32::MAX);
    let mut last = received(Some("delivery"), &body(&delivery_body("d1")));
    last.last_attempt = true;
    let err = p.handle(last).await.unwrap_err();
    // Still transient, so the broker dead-letters it as over its delivery count...
    assert!(matches!(err, MessageError::Transient(_)), "{err:?}");
    // ...and nothing is left holding the drone.
    assert!(
        drone_already_released(&b, "d1").await,
        "the drone was released"
    );
}

#[tokio::test]
async fn a_permanent_delivery_failure_releases_the_drone_then_dead_letters() {
    let b = Backends::start().await;
    let p = b.processor();
    b.faults.fail_delivery_put(422, u32::MAX);
    let err = p
        .handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap_err();
    let MessageError::Permanent {
        reason,
        description,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(reason, reasons::DELIVERY_REJECTED);
    assert!(description.contains("released"), "{description}");
    assert!(
        drone_already_released(&b, "d1").await,
        "the drone was already freed"
    );
}

#[tokio::test]
async fn cancel_cancels_the_delivery_and_frees_the_drone() {
    let b = Backends::start().await;
    let p = b.processor();
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();
    p.handle(cancel("d1")).await.unwrap();
    let (_, status) = b
        .get(&b.config.delivery_url, "/api/deliveries/d1/status")
        .await;
    assert_eq!(status["stage"], "Cancelled");
    assert!(drone_already_released(&b, "d1").await);
    // A redelivered cancel is harmless.
    p.handle(cancel("d1")).await.unwrap();
    // So is the original delivery message arriving again after the cancel: the delivery
    // stays cancelled, its drone goes back, and the message completes (no dead letter).
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();
    let (_, status) = b
        .get(&b.config.delivery_url, "/api/deliveries/d1/status")
        .await;
    assert_eq!(status["stage"], "Cancelled");
    assert!(drone_already_released(&b, "d1").await);
}

#[tokio::test]
async fn a_cancel_that_overtakes_its_delivery_message_keeps_it_unscheduled() {
    let b = Backends::start().await;
    let p = b.processor();
    // The delivery message failed once and waits for redelivery; the cancel goes first.
    p.handle(cancel("d1")).await.unwrap();
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();
    let (status, _) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    assert_eq!(status, 404, "a cancelled delivery is never scheduled");
    assert!(drone_already_released(&b, "d1").await, "and holds no drone");
}

#[tokio::test]
async fn reschedule_patches_the_delivery_and_replans_the_same_drone() {
    let b = Backends::start().await;
    let p = b.processor();
    p.handle(received(Some("delivery"), &body(&delivery_body("d1"))))
        .await
        .unwrap();
    let (_, before) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    let change =
        json!({"deliveryId": "d1", "dropoffLocation": "47.70,-122.00", "deadline": "Friday"});
    p.handle(received(Some("reschedule"), &body(&change)))
        .await
        .unwrap();
    let (_, after) = b.get(&b.config.delivery_url, "/api/deliveries/d1").await;
    assert_eq!(after["dropoff"]["latitude"], 47.7);
    assert_eq!(after["deadline"], "Friday");
    assert_eq!(after["droneId"], before["droneId"]);
    let (_, status) = b
        .get(&b.config.delivery_url, "/api/deliveries/d1/status")
        .await;
    assert_eq!(status["stage"], "Rescheduled");
    let unknown = p
        .handle(received(
            Some("reschedule"),
            &body(&json!({"deliveryId": "nope", "deadline": "x"})),
        ))
        .await;
    assert!(
        matches!(unknown, Err(MessageError::Permanent { .. })),
        "{unknown:?}"
    );
}
