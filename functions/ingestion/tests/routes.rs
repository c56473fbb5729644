//! Every ingestion route and status code, with the embedded queue as the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use ingestion::{IngestionConfig, routes};
use runtime::queue::embedded::EmbeddedQueue;
use runtime::queue::{QueueReceiver, QueueSettings, ReceivedMessage};
use runtime::telemetry::Metrics;
use runtime::testing::TestClient;
use serde_json::{Value, json};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/delivery_request.json")).unwrap()
}

fn setup() -> (TestClient, Arc<EmbeddedQueue>) {
    let queue = Arc::new(EmbeddedQueue::new("deliveries", QueueSettings::default()));
    let metrics = Metrics::new("ingestion").unwrap();
    (
        TestClient::new(routes(queue.clone(), &IngestionConfig::default(), metrics)),
        queue,
    )
}

async fn drain(q: &EmbeddedQueue) -> Vec<ReceivedMessage> {
    q.receive(100, Duration::ZERO).await.unwrap()
}

#[tokio::test]
async fn accepted_request_is_echoed_and_enqueued_with_its_properties() {
    let (c, q) = setup();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = c
        .json_with(
            Method::POST,
            "/api/deliveryrequests",
            &fixture(),
            &[("traceparent", trace)],
        )
        .await;
    assert_eq!(r.status, 202);
    let body = r.json();
    let id = body["deliveryId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a server-made UUID");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/deliveries/{id}").as_str())
    );
    assert_eq!(body["ownerId"], "user-1");
    assert_eq!(body["packageInfo"]["size"], "Small");

    let messages = drain(&q).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.property("operation"), Some("delivery"));
    assert_eq!(m.content_type, "application/json");
    let tp = m.property("traceparent").unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the caller's trace continues: {tp}"
    );
    assert_eq!(m.property("Diagnostic-Id"), Some(tp));
    assert!(m.message_id.starts_with(&format!("{id}:delivery:")));
    let sent: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(sent["deliveryId"], id.as_str());
    assert_eq!(sent["dropoffLocation"], "my dropoff");
    assert_eq!(sent["pickupTime"], "2026-11-21T10:00:00Z");
    assert_eq!(sent["expedited"], true);
    assert_eq!(sent["confirmationRequired"], "FingerPrint");
    assert_eq!(
        sent["packageInfo"],
        json!({"packageId": "pkg-1", "size": "Small", "weight": 2.5, "tag": "fragile"})
    );
}

#[tokio::test]
async fn client_delivery_ids_are_ignored_and_reference_forms_accepted() {
    let (c, q) = setup();
    let mut body = fixture();
    body["deliveryId"] = json!("client-chosen");
    body["dropoffLocation"] = body
        .as_object_mut()
        .unwrap()
        .remove("dropOffLocation")
        .unwrap();
    body["confirmationRequired"] = json!(2);
    body["packageInfo"]["size"] = json!("large");
    let r = c.json(Method::POST, "/api/deliveryrequests", &body).await;
    assert_eq!(r.status, 202);
    assert_ne!(r.json()["deliveryId"], "client-chosen");
    assert_eq!(r.json()["confirmationRequired"], "Picture");
    assert_eq!(r.json()["packageInfo"]["size"], "Large");
    assert_eq!(r.json()["dropOffLocation"], "my dropoff");
    assert_eq!(drain(&q).await.len(), 1);
}

#[tokio::test]
async fn requests_shaped_as_the_reference_clients_sent_them_mean_the_same() {
    let (c, q) = setup();
    let requests: Value =
        serde_json::from_str(include_str!("fixtures/reference_client_requests.json")).unwrap();

    let r = c
        .json(
            Method::POST,
            "/api/deliveryrequests",
            &requests["jacksonObjectMapper"],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    let sent: Value = serde_json::from_slice(&drain(&q).await[0].body).unwrap();
    assert_eq!(
        sent["pickupTime"], "2025-11-27T10:00:00Z",
        "epoch milliseconds"
    );
    assert_eq!(sent["expedited"], false);
    assert_eq!(sent["dropoffLocation"], "Austin");
    assert_eq!(
        sent["packageInfo"],
        json!({"packageId": "0f0c4c8e-7b4a-4c57-9a53-1d5c1d0c6a7b", "size": "Large", "weight": 0.0})
    );

    let r = c
        .json(
            Method::POST,
            "/api/deliveryrequests",
            &requests["scalarsAsStrings"],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    let sent: Value = serde_json::from_slice(&drain(&q).await[0].body).unwrap();
    assert_eq!(sent["ownerId"], "1234");
    assert_eq!(sent["expedited"], true);
    assert_eq!(sent["pickupTime"], "2025-11-27T10:00:00Z");
    assert_eq!(sent["packageInfo"]["weight"], 2.5);
}

#[tokio::test]
async fn what_the_reference_bound_but_failed_on_later_stays_a_400() {
    let (c, q) = setup();
    let mut body = fixture();
    body["packageInfo"]["weight"] = json!("-1");
    body["packageInfo"]["size"] = json!("Huge");
    body["expedited"] = json!("maybe");
    let r = c.json(Method::POST, "/api/deliveryrequests", &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.problem_fields(),
        ["expedited", "packageInfo.size", "packageInfo.weight"]
    );
    assert!(drain(&q).await.is_empty());
}

#[tokio::test]
async fn missing_and_bad_fields_are_400_naming_each_and_nothing_is_sent() {
    let (c, q) = setup();
    let r = c
        .json(
            Method::POST,
            "/api/deliveryrequests",
            &json!({"pickupTime": "noon", "packageInfo": {"size": "XL", "weight": -2}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.problem_fields(),
        [
            "ownerId",
            "pickupTime",
            "confirmationRequired",
            "packageInfo.packageId",
            "packageInfo.size",
            "packageInfo.weight"
        ]
    );
    let r = c
        .json(Method::POST, "/api/deliveryrequests", &json!([1]))
        .await;
    assert_eq!(r.status, 400);
    assert!(drain(&q).await.is_empty());
}

#[tokio::test]
async fn wrong_content_type_is_415_and_oversized_is_413() {
    let queue = Arc::new(EmbeddedQueue::new("deliveries", QueueSettings::default()));
    let c = TestClient::with_body_limit(
        routes(
            queue.clone(),
            &IngestionConfig::default(),
            Metrics::new("i").unwrap(),
        ),
        2048,
    );
    let r = c
        .raw(
            Method::POST,
            "/api/deliveryrequests",
            Some("text/plain"),
            fixture().to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 415);
    let r = c
        .raw(
            Method::POST,
            "/api/deliveryrequests",
            None,
            fixture().to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 415);
    let mut big = fixture();
    big["deadline"] = json!("x".repeat(4096));
    let r = c.json(Method::POST, "/api/deliveryrequests", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.json()["detail"],
        "the body must not exceed 2048 bytes",
        "the problem names the limit in force"
    );
    assert!(drain(&queue).await.is_empty());
}

#[tokio::test]
async fn idempotency_key_returns_the_same_delivery_and_enqueues_once() {
    let (c, q) = setup();
    let key = [("Idempotency-Key", "retry-me-1")];
    let first = c
        .json_with(Method::POST, "/api/deliveryrequests", &fixture(), &key)
        .await;
    let second = c
        .json_with(Method::POST, "/api/deliveryrequests", &fixture(), &key)
        .await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (202, 202));
    assert_eq!(first.json()["deliveryId"], second.json()["deliveryId"]);
    assert_eq!(first.header("location"), second.header("location"));
    let messages = drain(&q).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id, "retry-me-1");

    let mut other = fixture();
    other["ownerId"] = json!("someone-else");
    let reused = c
        .json_with(Method::POST, "/api/deliveryrequests", &other, &key)
        .await;
    assert_eq!(reused.status, 422);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_enqueue_once() {
    let (c, q) = setup();
    let calls = (0..8).map(|_| {
        let c = c.clone();
        async move {
            c.json_with(
                Method::POST,
                "/api/deliveryrequests",
                &fixture(),
                &[("Idempotency-Key", "k")],
            )
            .await
            .json()["deliveryId"]
                .clone()
        }
    });
    let ids: Vec<Value> = futures_join_all(calls).await;
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(drain(&q).await.len(), 1);
}

async fn futures_join_all<F: std::future::Future<Output = Value> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<Value> {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn unreachable_queue_is_503_with_retry_after_and_the_retry_succeeds() {
    let (c, q) = setup();
    q.set_available(false);
    let key = [("Idempotency-Key", "during-outage")];
    let r = c
        .json_with(Method::POST, "/api/deliveryrequests", &fixture(), &key)
        .await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    q.set_available(true);
    let r = c
        .json_with(Method::POST, "/api/deliveryrequests", &fixture(), &key)
        .await;
    assert_eq!(r.status, 202, "a failed attempt is not replayed");
    assert_eq!(drain(&q).await.len(), 1);
}

#[tokio::test]
async fn delete_enqueues_a_cancel() {
    let (c, q) = setup();
    let r = c.delete("/api/DeliveryRequests/d-42").await;
    assert_eq!(r.status, 204);
    let m = drain(&q).await.remove(0);
    assert_eq!(m.property("operation"), Some("cancel"));
    assert_eq!(
        serde_json::from_slice::<Value>(&m.body).unwrap(),
        json!({"deliveryId": "d-42"})
    );
}

#[tokio::test]
async fn patch_enqueues_a_reschedule_with_only_given_fields() {
    let (c, q) = setup();
    let r = c
        .json(
            Method::PATCH,
            "/api/deliveryrequests/d-42",
            &json!({"dropOffLocation": "47.7,-122.1", "deadline": "Friday"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let m = drain(&q).await.remove(0);
    assert_eq!(m.property("operation"), Some("reschedule"));
    assert_eq!(
        serde_json::from_slice::<Value>(&m.body).unwrap(),
        json!({"deliveryId": "d-42", "dropoffLocation": "47.7,-122.1", "deadline": "Friday"})
    );
    assert_eq!(
        c.json(Method::PATCH, "/api/deliveryrequests/d-42", &json!({}))
            .await
            .status,
        400
    );
    let bad = c
        .json(
            Method::PATCH,
            "/api/deliveryrequests/d-42",
            &json!({"pickupTime": true}),
        )
        .await;
    assert_eq!(bad.problem_fields(), ["pickupTime"]);
    assert!(drain(&q).await.is_empty());
}
