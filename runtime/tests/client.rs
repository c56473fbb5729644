//! The downstream client against a real loopback server: retries, circuit breaker, bulkhead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use http::Method;
use runtime::client::{Backoff, CallError, Downstream, DownstreamPolicy};
use runtime::telemetry::Metrics;
use runtime::trace::TraceContext;

/// A server whose `/flaky` fails `fail_first` times with 503, and `/slow` sleeps.
async fn server(fail_first: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/flaky",
            get(move |headers: http::HeaderMap| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < fail_first {
                        (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned())
                    } else {
                        let tp = headers
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        (StatusCode::OK, tp)
                    }
                }
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

fn policy() -> DownstreamPolicy {
    DownstreamPolicy {
        timeout: Duration::from_millis(200),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        breaker_failures: 100,
        breaker_open_for: Duration::from_secs(60),
        max_concurrent: 8,
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_trace_context_sent() {
    let (url, calls) = server(2).await;
    let metrics = Metrics::new("t").unwrap();
    let d = Downstream::new("svc", &url, policy(), metrics.clone());
    let trace = TraceContext::new_root();
    let r = d
        .call(Method::GET, "/flaky", None::<&()>, Some(&trace))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let sent = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(sent.contains(&trace.trace_id()), "{sent}");
    assert_eq!(
        metrics.downstream_retries.with_label_values(&["svc"]).get(),
        2
    );
}

#[tokio::test]
async fn client_errors_are_final_and_not_retried() {
    let (url, _) = server(0).await;
    let d = Downstream::new("svc", &url, policy(), Metrics::new("t").unwrap());
    let r = d
        .call(Method::GET, "/missing", None::<&()>, None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn exhausted_retries_and_timeouts_are_transient_errors() {
    let (url, calls) = server(usize::MAX).await;
    let d = Downstream::new("svc", &url, policy(), Metrics::new("t").unwrap());
    let e = d
        .call(Method::GET, "/flaky", None::<&()>, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, CallError::Exhausted { attempts: 3, .. }) && e.is_transient(),
        "{e:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let e = d
        .call(Method::GET, "/slow", None::<&()>, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn the_breaker_opens_and_fails_fast() {
    let (url, calls) = server(usize::MAX).await;
    let mut p = policy();
    p.breaker_failures = 2;
    p.max_attempts = 5;
    let d = Downstream::new("svc", &url, p, Metrics::new("t").unwrap());
    let e = d
        .call(Method::GET, "/flaky", None::<&()>, None)
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::CircuitOpen { .. }), "{e:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "calls stop once the circuit opens"
    );
    let e = d
        .call(Method::GET, "/flaky", None::<&()>, None)
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::CircuitOpen { .. }));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_bulkhead_bounds_concurrent_calls() {
    let (url, _) = server(0).await;
    let mut p = policy();
    p.max_concurrent = 1;
    p.timeout = Duration::from_millis(800);
    p.max_attempts = 1;
    let d = Downstream::new("svc", &url, p, Metrics::new("t").unwrap());
    let (a, b) = tokio::join!(d.call(Method::GET, "/slow", None::<&()>, None), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        d.call(Method::GET, "/slow", None::<&()>, None).await
    });
    assert!(a.is_ok());
    assert!(
        matches!(b, Err(CallError::BulkheadFull { .. })) || b.is_ok(),
        "{b:?}"
    );
    // With one slot, the second call waited for the first: both cannot overlap.
}

#[tokio::test]
async fn unreachable_downstreams_are_transient() {
    let d = Downstream::new(
        "svc",
        "http://127.0.0.1:9",
        policy(),
        Metrics::new("t").unwrap(),
    );
    let e = d
        .call(Method::GET, "/x", None::<&()>, None)
        .await
        .unwrap_err();
    assert!(e.is_transient());
}
