//! Helpers shared by the host's end-to-end tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod process;

use std::time::Duration;

use http::Method;
use runtime::client::{Backoff, CallResponse, Downstream, DownstreamPolicy};
use runtime::telemetry::Metrics;
use serde_json::Value;

/// The whole local system on embedded defaults and free ports, and a client of its gateway.
pub async fn start_local() -> (runtime::lifecycle::Shutdown, host::DevSystem, Downstream) {
    let shutdown = runtime::lifecycle::Shutdown::new();
    let system = host::start_dev(host::DevConfig::ephemeral(), shutdown.clone())
        .await
        .unwrap();
    let gw = client(system.internal);
    (shutdown, system, gw)
}

pub fn client(addr: std::net::SocketAddr) -> Downstream {
    let policy = DownstreamPolicy {
        max_attempts: 1,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        ..DownstreamPolicy::default()
    };
    Downstream::new(
        "test",
        &format!("http://{addr}"),
        policy,
        Metrics::new("t").unwrap(),
    )
}

pub async fn call(
    c: &Downstream,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> CallResponse {
    c.call(method, path, body, None).await.unwrap()
}

/// Polls until `check` holds for the JSON at `path`, for up to a second.
pub async fn eventually(c: &Downstream, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually_within(c, path, Duration::from_secs(1), check).await
}

/// Polls until `check` holds for the JSON at `path`, for up to `limit`; failed calls
/// (a 5xx while a store restarts) count as "not yet".
pub async fn eventually_within(
    c: &Downstream,
    path: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = tokio::time::Instant::now();
    loop {
        let last = match c.call(Method::GET, path, None::<&Value>, None).await {
            Ok(r) => {
                let body: Value = r.json().unwrap_or(Value::Null);
                if r.status == 200 && check(&body) {
                    return body;
                }
                format!("{} {body}", r.status)
            }
            Err(e) => e.to_string(),
        };
        assert!(
            started.elapsed() < limit,
            "{path} never satisfied the check; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn sample() -> Value {
    serde_json::from_str(include_str!(
        "../../../functions/ingestion/tests/fixtures/delivery_request.json"
    ))
    .unwrap()
}

/// A plain HTTP/1.1 answer, for checking statuses and headers the client treats as errors.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// One `GET` on a fresh connection, read to the end.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str) -> RawResponse {
    raw_request(addr, "GET", path, None).await
}

/// One request on a fresh connection (a JSON body when given), read to the end.
pub async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    json: Option<&Value>,
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = json.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The dead letters of the local system's embedded `deliveries` queue.
pub fn dead_letter_count(system: &host::DevSystem) -> usize {
    system
        .embedded
        .as_ref()
        .expect("the embedded queue")
        .queue("deliveries")
        .dead_letters()
        .len()
}

/// POSTs the sample delivery request through the gateway; returns the new delivery's id.
pub async fn request_sample_delivery(gw: &Downstream) -> String {
    let accepted = call(
        gw,
        http::Method::POST,
        "/api/deliveryrequests",
        Some(&sample()),
    )
    .await;
    assert_eq!(accepted.status, 202);
    accepted.json::<Value>().unwrap()["deliveryId"]
        .as_str()
        .unwrap()
        .to_owned()
}
