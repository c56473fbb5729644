//! OTLP export: one delivery through `fabrikam dev` arrives at a collector as one trace,
//! with HTTP server and client spans and a queue consumer span carrying the OpenTelemetry
//! semantic-convention attributes, each span linked to its caller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use support::process::{post_traced_delivery, spawn_dev, wait_for_gateway};

mod support;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// The collector's side of OTLP/HTTP: decodes every export into `Exported` spans.
async fn collect(State(spans): State<Arc<Mutex<Vec<Exported>>>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("a valid OTLP export");
    let mut spans = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(Exported {
                service: service.clone(),
                kind: span.kind(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                attributes: attributes(&span.attributes),
            });
        }
    }
    ""
}

/// Starts the collector on a port the OS picks; its address and what it has received.
fn start_collector() -> (String, Arc<Mutex<Vec<Exported>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = Router::new()
        .route("/v1/traces", routing::post(collect))
        .with_state(spans.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (addr, spans)
}

/// The server span of `route` in the trace, once exported.
fn server_span<'a>(spans: &'a [Exported], route: &str) -> Option<&'a Exported> {
    spans.iter().find(|s| {
        s.trace_id == TRACE_ID
            && s.kind == SpanKind::Server
            && s.attributes.get("http.route").map(String::as_str) == Some(route)
    })
}

#[cfg(unix)]
#[test]
fn one_delivery_is_one_exported_trace_with_semantic_attributes() {
    let (collector, received) = start_collector();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fabrikam"));
    command
        .arg("dev")
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_SERVICE_NAME", "fabrikam-otlp-test")
        // Export every 200 ms instead of every 5 s, so the test does not wait on the batch.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200");
    let (mut child, lines) = spawn_dev(command);
    let gateway = wait_for_gateway(&lines, Instant::now() + Duration::from_secs(15))
        .expect("the system starts");
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    assert_eq!(post_traced_delivery(&gateway, &traceparent), 202);

    // The workflow calls package, drone scheduler and delivery; wait for the last server
    // spans to be exported.
    let wanted = [
        "/api/deliveryrequests",
        "/api/packages/{id}",
        "/api/dronedeliveries/{delivery_id}",
        "/api/deliveries/{id}",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = received.lock().unwrap().clone();
        let consumer = spans
            .iter()
            .any(|s| s.trace_id == TRACE_ID && s.kind == SpanKind::Consumer);
        if consumer && wanted.iter().all(|r| server_span(&spans, r).is_some()) {
            break spans;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let routes: Vec<_> = spans
                .iter()
                .map(|s| (&s.name, &s.trace_id, s.attributes.get("http.route")))
                .collect();
            panic!("not every span arrived; got {routes:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let ours: Vec<&Exported> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    assert!(ours.iter().all(|s| s.service == "fabrikam-otlp-test"));
    let ids: Vec<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();

    // The caller's span is the ingestion request's parent.
    let ingestion = server_span(&spans, "/api/deliveryrequests").unwrap();
    assert_eq!(ingestion.parent, CALLER_SPAN);
    assert_eq!(ingestion.name, "POST /api/deliveryrequests");
    assert_eq!(ingestion.attributes["http.request.method"], "POST");
    assert_eq!(ingestion.attributes["http.response.status_code"], "202");
    assert_eq!(ingestion.attributes["function"], "ingestion");

    // The workflow's consumer span continues the trace from the message's traceparent.
    let consumer = ours.iter().find(|s| s.kind == SpanKind::Consumer).unwrap();
    assert_eq!(consumer.attributes["messaging.operation.type"], "process");
    assert_eq!(consumer.attributes["messaging.system"], "embedded");
    let queue = &consumer.attributes["messaging.destination.name"];
    assert_eq!(consumer.name, format!("process {queue}"));
    assert!(!consumer.attributes["messaging.message.id"].is_empty());
    assert!(!consumer.attributes["delivery_id"].is_empty());

    // Every downstream server span's parent is an exported client span of the workflow.
    for route in &wanted[1..] {
        let server = server_span(&spans, route).unwrap();
        let client = ours
            .iter()
            .find(|s| s.span_id == server.parent)
            .unwrap_or_else(|| panic!("the parent of {route} was not exported"));
        assert_eq!(client.kind, SpanKind::Client, "{route}");
        assert!(!client.attributes["downstream"].is_empty(), "{route}");
        assert!(
            client.attributes["url.full"].starts_with("http://"),
            "{route}"
        );
        assert!(
            ids.contains(&client.parent.as_str()),
            "{route}: client span orphaned"
        );
    }
}
