//! The host's wrapping of a function's routes, seen from outside: which route each request
//! is counted under and handled by, the path parameters handlers read, what a panicking
//! handler answers, and the trace context handlers get.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::Path;
use axum::extract::{Json, Query};
use axum::routing::{any, get, post};
use http::Method;
use runtime::Routes;
use runtime::testing::TestClient;
use runtime::trace::TraceContext;
use serde::Deserialize;

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

#[tokio::test]
async fn a_method_the_route_does_not_serve_is_a_405_problem_with_its_allow_header() {
    let c = TestClient::new(
        Routes::under("/api/things")
            .route("/{id}", get(|| async { "got" }).put(|| async { "put" }))
            .route("/{id}", post(|| async { "posted" }))
            .route("/{id}/any", any(|| async { "anything" })),
    );
    let r = c.delete("/api/things/a").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let allow = r.header("allow").unwrap();
    for method in ["GET", "HEAD", "PUT", "POST"] {
        assert!(allow.contains(method), "{allow}");
    }
    assert_eq!(
        c.raw(Method::POST, "/api/things/a", None, "", &[])
            .await
            .body,
        "posted",
        "a template routed twice serves the methods of both"
    );
    assert_eq!(
        c.delete("/api/things/a/any").await.body,
        "anything",
        "a route's own fallback answers every method"
    );
    let head = c.raw(Method::HEAD, "/api/things/a", None, "", &[]).await;
    assert_eq!(head.status, 200, "HEAD is served by GET");
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Color {
    Red,
    Blue,
}

#[derive(Debug, Deserialize)]
struct Shelf {
    aisle: u16,
    name: String,
}

fn parameters_client() -> TestClient {
    TestClient::new(
        Routes::under("/api")
            .route("/words/{word}", get(|Path(w): Path<String>| async move { w }))
            .route(
                "/aisles/{aisle}/shelves/{name}",
                get(|Path(shelf): Path<Shelf>| async move {
                    format!("{}:{}", shelf.aisle, shelf.name)
                }),
            )
            .route(
                "/aisles/{aisle}/bins/{bin}",
                get(|Path((aisle, bin)): Path<(u16, String)>| async move {
                    format!("{aisle}/{bin}")
                }),
            )
            .route(
                "/maps/{a}/{b}",
                get(|Path(map): Path<BTreeMap<String, String>>| async move {
                    format!("{map:?}")
                }),
            )
            .route(
                "/colors/{color}",
                get(|Path(color): Path<Color>| async move { format!("{color:?}") }),
            )
            .route(
                "/typo/{aisle}",
                get(|Path(shelf): Path<Shelf>| async move { shelf.name }),
            ),
    )
}

#[tokio::test]
async fn handlers_read_path_parameters_decoded_by_position_or_by_name() {
    let c = parameters_client();
    assert_eq!(
        c.get("/api/words/caf%C3%A9%20au%2Flait").await.body,
        "café au/lait"
    );
    assert_eq!(
        c.get("/API/Words/AbC").await.body,
        "AbC",
        "the id keeps its case"
    );
    assert_eq!(c.get("/api/aisles/7/shelves/top").await.body, "7:top");
    assert_eq!(c.get("/api/aisles/7/bins/b%2D2").await.body, "7/b-2");
    assert_eq!(c.get("/api/maps/x/y").await.body, r#"{"a": "x", "b": "y"}"#);
}

/// axum's `Path` rejects a value that does not fit its type with a plain-text 400; the host
/// answers it as a problem, axum's text (which names the parameter, or its place in a tuple,
/// and the value) as the detail.
#[tokio::test]
async fn a_parameter_that_does_not_fit_its_type_is_a_400_problem_saying_which() {
    let c = parameters_client();
    for (path, named) in [
        ("/api/aisles/seven/shelves/top", "`aisle`"),
        ("/api/aisles/70000/bins/b", "`70000`"),
        ("/api/words/%FF", "word"),
        ("/api/colors/green", "green"),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json()["status"], 400, "{path}");
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(named), "{path}: {detail}");
    }
    assert_eq!(c.get("/api/colors/blue").await.body, "Blue");
}

/// A struct field no parameter has is a 400 too, as axum answers it (the old host extractor
/// called it a 500); the detail names the field.
#[tokio::test]
async fn a_handler_whose_path_type_does_not_fit_its_route_is_a_problem_naming_the_field() {
    let c = parameters_client();
    let r = c.get("/api/typo/3").await;
    assert_eq!(r.status, 400, "the struct wants a `name` the route has not");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("name"),
        "{}",
        r.json()
    );
}

#[test]
#[should_panic(expected = "not a parameter the host can route")]
fn a_template_the_host_cannot_route_stops_the_function_at_start_up() {
    let _ = TestClient::new(Routes::under("/api").route("/files/{name}.txt", get(|| async { "" })));
}

#[derive(Debug, Deserialize)]
struct Page {
    size: u8,
}

#[derive(Debug, Deserialize)]
struct Note {
    text: String,
}

/// A function written as an axum guide writes it: axum's `Query` and `Json`, whose
/// rejections (plain text in axum) the host answers as problems of the same status.
fn axum_client(body_limit: usize) -> TestClient {
    TestClient::with_body_limit(
        Routes::under("/api")
            .route(
                "/pages",
                get(|Query(page): Query<Page>| async move { page.size.to_string() }),
            )
            .route(
                "/notes",
                post(|Json(note): Json<Note>| async move {
                    Json(serde_json::json!({"saved": note.text}))
                }),
            )
            .route(
                "/teapot",
                get(|| async { (http::StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .route(
                "/chosen",
                get(|| async {
                    (
                        http::StatusCode::CONFLICT,
                        Json(serde_json::json!({"mine": true})),
                    )
                }),
            ),
        body_limit,
    )
}

#[tokio::test]
async fn axum_extractors_work_and_their_rejections_are_problems() {
    let c = axum_client(64);
    assert_eq!(c.get("/api/pages?size=7").await.body, "7");
    let note = serde_json::json!({"text": "hi"});
    let r = c.json(Method::POST, "/API/Notes/", &note).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["saved"], "hi");

    let cases = [
        (c.get("/api/pages?size=300").await, 400, "size"),
        (
            c.json(Method::POST, "/api/notes", &serde_json::json!({"txt": 1}))
                .await,
            422,
            "text",
        ),
        (
            c.raw(Method::POST, "/api/notes", None, "{}", &[]).await,
            415,
            "JSON",
        ),
        (
            c.json(
                Method::POST,
                "/api/notes",
                &serde_json::json!({"text": "x".repeat(100)}),
            )
            .await,
            413,
            "64 bytes",
        ),
        (c.get("/api/teapot").await, 418, "short and stout"),
    ];
    for (r, status, says) in cases {
        assert_eq!(r.status, status, "{:?}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{status}"
        );
        assert_eq!(r.json()["status"], status);
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(says), "{status}: {detail}");
    }

    let r = c.get("/api/chosen").await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "a body the handler chose stays"
    );
    assert_eq!(r.json(), serde_json::json!({"mine": true}));
}
