//! The whole local system, end to end through the gateway, as the README walks through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::Method;
use serde_json::json;
use support::{call, client, dead_letter_count, eventually, request_sample_delivery, start_local};

#[tokio::test]
async fn a_request_becomes_a_scheduled_delivery_then_is_rescheduled_and_cancelled() {
    let (shutdown, system, gw) = start_local().await;
    let id = request_sample_delivery(&gw).await;

    let delivery = eventually(&gw, &format!("/api/Deliveries/{id}"), |d| {
        d["droneId"].is_string()
    })
    .await;
    assert!(delivery["droneId"].as_str().unwrap().starts_with("drone-"));
    let status = eventually(&gw, &format!("/api/deliveries/{id}/status"), |_| true).await;
    assert_eq!(status["stage"], "Created");
    let package = call(&gw, Method::GET, "/api/packages/pkg-1", None).await;
    assert_eq!(package.status, 200);

    let change = json!({"dropOffLocation": "47.70,-122.00"});
    assert_eq!(
        call(
            &gw,
            Method::PATCH,
            &format!("/api/deliveryrequests/{id}"),
            Some(&change)
        )
        .await
        .status,
        202
    );
    let status = eventually(&gw, &format!("/api/deliveries/{id}/status"), |s| {
        s["stage"] == "Rescheduled"
    })
    .await;
    assert!(status["deliveryETA"].is_string());
    let moved = eventually(&gw, &format!("/api/deliveries/{id}"), |d| {
        d["dropoff"]["latitude"] == 47.7
    })
    .await;
    assert_eq!(
        moved["droneId"], delivery["droneId"],
        "rescheduling keeps the drone"
    );

    assert_eq!(
        call(
            &gw,
            Method::DELETE,
            &format!("/api/deliveryrequests/{id}"),
            None
        )
        .await
        .status,
        204
    );
    eventually(&gw, &format!("/api/deliveries/{id}/status"), |s| {
        s["stage"] == "Cancelled"
    })
    .await;

    assert!(dead_letter_count(&system) == 0);
    shutdown.trigger();
    system.stopped().await;
}

#[tokio::test]
async fn every_function_serves_health_readiness_and_metrics() {
    let (shutdown, system, _) = start_local().await;
    for _ in 0..100 {
        if system.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(system.is_ready(), "every trigger reports ready");
    for name in host::functions().iter().map(runtime::Registration::name) {
        let c = client(system.addr_of(name).unwrap());
        assert_eq!(
            call(&c, Method::GET, "/healthz", None).await.status,
            200,
            "{name}"
        );
        assert_eq!(
            call(&c, Method::GET, "/readyz", None).await.status,
            200,
            "{name}"
        );
        let metrics = call(&c, Method::GET, "/metrics", None).await;
        let text = String::from_utf8(metrics.body.to_vec()).unwrap();
        assert!(
            text.contains(&format!("function=\"{name}\"")),
            "{name}: {text}"
        );
    }
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!system.is_ready(), "readiness turns false while draining");
    system.stopped().await;
}

/// The gateway is the cluster's ingress: it serves the declared public routes (a delivery
/// request, a delivery's public view) and nothing else; the internal gateway, like the
/// HTTP add-on's interceptor, serves every route.
#[tokio::test]
async fn the_gateway_serves_only_public_routes_and_the_internal_one_every_route() {
    let (shutdown, system, internal) = start_local().await;
    let public = client(system.gateway);
    let id = request_sample_delivery(&public).await;
    eventually(&internal, &format!("/api/deliveries/{id}"), |d| {
        d["droneId"].is_string()
    })
    .await;

    let view = call(
        &public,
        Method::GET,
        &format!("/api/deliveries/public/{id}"),
        None,
    )
    .await;
    assert_eq!(view.status, 200);
    for private in [
        format!("/api/deliveries/{id}"),
        format!("/api/deliveries/{id}/status"),
        "/api/packages/pkg-1".to_owned(),
        "/api/dronedeliveries/utilization?ownerId=o&year=2026&month=1".to_owned(),
    ] {
        // The gateway's own 404 says no function serves the path; a function's does not.
        let refused = call(&public, Method::GET, &private, None).await;
        assert_eq!(refused.status, 404, "{private}");
        assert!(
            String::from_utf8_lossy(&refused.body).contains("no function serves"),
            "{private}"
        );
        let served = call(&internal, Method::GET, &private, None).await;
        assert!(
            !String::from_utf8_lossy(&served.body).contains("no function serves"),
            "{private}"
        );
    }
    shutdown.trigger();
    system.stopped().await;
}

/// A body over the limit is answered 413 by the function, and the gateway passes that
/// answer through every time: the function reads the rest of the body instead of
/// resetting the connection on it, which used to turn the 413 into the gateway's 503.
#[tokio::test]
async fn an_oversized_body_is_answered_413_through_the_gateway_every_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (shutdown, system, _) = start_local().await;
    let body = vec![b' '; 3 * 1024 * 1024];
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let stream = tokio::net::TcpStream::connect(system.gateway)
            .await
            .unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /api/deliveryrequests HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let body = body.clone();
        // As a client does: sending while the answer may already be coming back.
        let sending = tokio::spawn(async move {
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&body).await;
            writer
        });
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        let _ = sending.await;
        let text = String::from_utf8_lossy(&answer);
        statuses.push(text.split(' ').nth(1).unwrap_or("none").to_owned());
    }
    assert!(statuses.iter().all(|s| s == "413"), "{statuses:?}");
    shutdown.trigger();
    system.stopped().await;
}
