//! The whole local system with ingestion and workflow talking through a real AMQP 1.0
//! broker (RabbitMQ's AMQP 1.0 plugin, as `scripts/services` starts it) instead of the
//! embedded queue: what `scripts/dev --amqp` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use host::{DevConfig, start_dev};
use http::Method;
use runtime::MapEnv;
use runtime::lifecycle::Shutdown;
use runtime::testing::servers::{amqp_url, unique_name};
use serde_json::json;
use support::{call, client, eventually, request_sample_delivery};

#[tokio::test]
async fn a_request_becomes_a_scheduled_delivery_through_rabbitmq() {
    let queue = unique_name("e2e-deliveries-");
    let declared = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/rabbitmq-queue"
    ))
    .arg(&queue)
    .output()
    .expect("run rabbitmq-queue");
    assert!(declared.status.success(), "{declared:?}");
    let env = MapEnv::new()
        .with("AMQP_URL", amqp_url())
        .with("AMQP_ADDRESS_PREFIX", "/amq/queue/")
        .with("QUEUE_NAME", &queue);
    let shutdown = Shutdown::new();
    let system = start_dev(DevConfig::ephemeral_with(&env).unwrap(), shutdown.clone())
        .await
        .unwrap();
    assert!(system.embedded.is_none(), "the AMQP transport is in use");
    let gw = client(system.internal);

    let id = request_sample_delivery(&gw).await;
    let delivery = eventually(&gw, &format!("/api/deliveries/{id}"), |d| {
        d["droneId"].is_string()
    })
    .await;
    assert!(delivery["droneId"].as_str().unwrap().starts_with("drone-"));

    // A reschedule travels the same way.
    let change = json!({"dropOffLocation": "47.70,-122.00"});
    let patched = call(
        &gw,
        Method::PATCH,
        &format!("/api/deliveryrequests/{id}"),
        Some(&change),
    )
    .await;
    assert_eq!(patched.status, 202);
    eventually(&gw, &format!("/api/deliveries/{id}/status"), |s| {
        s["stage"] == "Rescheduled"
    })
    .await;

    shutdown.trigger();
    system.stopped().await;
}
