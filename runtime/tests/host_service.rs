//! The host's wrapping of a function's routes, seen from outside: which route each request
//! is counted under, what a panicking handler answers, and the trace context handlers get.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Extension;
use axum::extract::Path;
use axum::routing::get;
use http::Method;
use runtime::Routes;
use runtime::testing::TestClient;
use runtime::trace::TraceContext;

fn client() -> TestClient {
    TestClient::new(
        Routes::under("/api/things")
            .route("/{id}", get(|Path(id): Path<String>| async move { id }))
            .route("/summary", get(|| async { "summary" }))
            .route(
                "/{id}/boom",
                get(|| async {
                    if true {
                        panic!("the handler failed");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/{id}/trace",
                get(|Extension(trace): Extension<TraceContext>| async move {
                    trace.trace_id_hex().to_string()
                }),
            ),
    )
}

/// The count of requests the host recorded under `route` and `status_class`.
fn counted(client: &TestClient, method: &str, route: &str, status_class: &str) -> u64 {
    let text = client.metrics().render();
    let labels = [
        format!("method=\"{method}\""),
        format!("route=\"{route}\""),
        format!("status_class=\"{status_class}\""),
    ];
    text.lines()
        .filter(|l| l.starts_with("fabrikam_http_requests_total{"))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn requests_are_counted_under_their_route_template_however_the_path_is_spelled() {
    let c = client();
    for path in ["/api/things/a1", "/API/Things/b2/", "/api/things/summary"] {
        assert_eq!(c.get(path).await.status, 200, "{path}");
    }
    assert_eq!(c.get("/api/things/c3").await.body, "c3");
    assert_eq!(c.get("/Api/Things/Summary").await.body, "summary");
    assert_eq!(counted(&c, "GET", "/api/things/{id}", "2xx"), 3);
    assert_eq!(
        counted(&c, "GET", "/api/things/summary", "2xx"),
        2,
        "a literal segment is its own route, not an {{id}}"
    );

    assert_eq!(c.get("/nothing/here").await.status, 404);
    assert_eq!(counted(&c, "GET", "unmatched", "4xx"), 1);
    let wrong_method = c.delete("/api/things/a1").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(counted(&c, "DELETE", "/api/things/{id}", "4xx"), 1);
    assert_eq!(c.get("/healthz").await.status, 200);
    assert_eq!(counted(&c, "GET", "/healthz", "2xx"), 1);
}

#[tokio::test]
async fn a_panicking_handler_answers_a_500_problem_and_is_counted_as_one() {
    let c = client();
    let r = c.get("/api/things/x/boom").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(counted(&c, "GET", "/api/things/{id}/boom", "5xx"), 1);
    // The host keeps serving.
    assert_eq!(c.get("/api/things/x").await.status, 200);
}

#[tokio::test]
async fn handlers_get_the_callers_trace_context_or_a_new_one() {
    let c = client();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = c
        .raw(
            Method::GET,
            "/api/things/x/trace",
            None,
            "",
            &[("traceparent", traceparent)],
        )
        .await;
    assert_eq!(r.body, "4bf92f3577b34da6a3ce929d0e0e4736");
    let fresh = c.get("/api/things/x/trace").await.body;
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, "4bf92f3577b34da6a3ce929d0e0e4736");
}
