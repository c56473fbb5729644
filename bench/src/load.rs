//! The load generator: saturating reads, and end-to-end deliveries at a fixed rate or at
//! saturation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Why a run could not be made.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for BenchError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How end-to-end requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many deliveries per second, each timed from its scheduled start.
    Rate(u32),
    /// This many workers, each sending its next request when the last one is readable.
    Saturate(usize),
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Bytes), String> {
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// Sorted latencies in, `(p50, p99)` in milliseconds out.
fn percentiles(latencies: &mut [Duration]) -> (f64, f64) {
    if latencies.is_empty() {
        return (0.0, 0.0);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Saturating GETs of `url` from `connections` keep-alive connections for `duration`.
pub async fn get(url: &str, connections: usize, duration: Duration) -> Result<Value, BenchError> {
    let client = client();
    // One request first, so a wrong URL fails loudly instead of producing a rate of errors.
    let (status, _) = send(&client, Method::GET, url, None).await?;
    if status != StatusCode::OK {
        return Err(format!("{url} answered {status}").into());
    }
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (client, url, errors) = (client.clone(), url.to_owned(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match send(&client, Method::GET, &url, None).await {
                    Ok((StatusCode::OK, _)) => latencies.push(sent.elapsed()),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut latencies);
    Ok(json!({
        "requests": latencies.len(),
        "errors": errors.load(Ordering::Relaxed),
        "rps": latencies.len() as f64 / elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
    }))
}

fn delivery_request(n: u64) -> Value {
    json!({
        "ownerId": format!("bench-owner-{}", n % 100),
        "pickupLocation": "47.6062,-122.3321",
        "dropOffLocation": "47.6740,-122.1215",
        "pickupTime": "2026-11-21T10:00:00Z",
        "deadline": "LinkedIn",
        "expedited": true,
        "confirmationRequired": "FingerPrint",
        "packageInfo": {"packageId": format!("bench-pkg-{n}"), "size": "Small", "weight": 2.5, "tag": "bench"}
    })
}

/// One delivery: accepted, then polled until readable. The interval from `start`.
async fn one_delivery(
    client: &HttpClient,
    gateway: &str,
    n: u64,
    start: Instant,
) -> Result<Duration, String> {
    let (status, body) = send(
        client,
        Method::POST,
        &format!("{gateway}/api/deliveryrequests"),
        Some(&delivery_request(n)),
    )
    .await?;
    if status != StatusCode::ACCEPTED {
        return Err(format!("POST answered {status}"));
    }
    let accepted: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let id = accepted["deliveryId"].as_str().ok_or("no deliveryId")?;
    // The delivery's public view: the gateway is the ingress, which serves only that.
    let url = format!("{gateway}/api/deliveries/public/{id}");
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = send(client, Method::GET, &url, None).await?;
        if status == StatusCode::OK {
            return Ok(start.elapsed());
        }
        if Instant::now() > give_up {
            return Err(format!("{id} never became readable"));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Deliveries through the gateway for `duration`, paced by `pace`.
pub async fn e2e(gateway: &str, duration: Duration, pace: Pace) -> Result<Value, BenchError> {
    let client = client();
    let gateway = gateway.trim_end_matches('/').to_owned();
    one_delivery(&client, &gateway, u64::MAX, Instant::now()).await?;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    let record = |latencies: Arc<Mutex<Vec<Duration>>>, errors: Arc<AtomicU64>| {
        move |result: Result<Duration, String>| async move {
            match result {
                Ok(latency) => latencies.lock().await.push(latency),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    match pace {
        Pace::Rate(rate) => {
            let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                let scheduled = ticks.tick().await;
                if scheduled >= deadline {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (client, gateway) = (client.clone(), gateway.clone());
                let done = record(latencies.clone(), errors.clone());
                tasks.push(tokio::spawn(async move {
                    done(one_delivery(&client, &gateway, n, scheduled).await).await;
                }));
            }
        }
        Pace::Saturate(workers) => {
            for _ in 0..workers.max(1) {
                let (client, gateway, counter) = (client.clone(), gateway.clone(), counter.clone());
                let done = record(latencies.clone(), errors.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        done.clone()(one_delivery(&client, &gateway, n, Instant::now()).await)
                            .await;
                    }
                }));
            }
        }
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    let (p50, p99) = percentiles(&mut latencies);
    Ok(json!({
        "pace": match pace { Pace::Rate(r) => format!("{r}/s"), Pace::Saturate(c) => format!("saturation, {c} workers") },
        "completed": latencies.len(),
        "errors": errors.load(Ordering::Relaxed),
        "per_s": latencies.len() as f64 / elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
    }))
}

/// Which package request [`packages`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageOp {
    /// `PUT /api/packages/{prefix}-{n}`: each a new id, so each an insert (201).
    Put,
    /// `GET /api/packages/{prefix}-{n}`: the ids a `Put` run with the same prefix stored.
    Get,
}

/// Exactly `count` package requests of `op` on ids `PREFIX-n`, from `connections`
/// keep-alive connections.
pub async fn packages(
    base: &str,
    prefix: &str,
    op: PackageOp,
    connections: usize,
    count: u64,
) -> Result<Value, BenchError> {
    let url = format!("{}/api/packages/{prefix}-{{n}}", base.trim_end_matches('/'));
    let run = match op {
        PackageOp::Put => Numbered {
            method: Method::PUT,
            url,
            body: Some(r#"{"size": "Small", "weight": 2.5, "tag": "bench"}"#.to_owned()),
            expected: Some(StatusCode::CREATED),
        },
        PackageOp::Get => Numbered {
            method: Method::GET,
            url,
            body: None,
            expected: Some(StatusCode::OK),
        },
    };
    numbered(run, connections, count).await
}

/// One kind of request, numbered: `{n}` in the URL and the body becomes the request's
/// number (0, 1, ...), so each can name a new id.
#[derive(Debug, Clone)]
pub struct Numbered {
    pub method: Method,
    pub url: String,
    pub body: Option<String>,
    /// The status that counts as a success; any 2xx when `None`.
    pub expected: Option<StatusCode>,
}

/// Exactly `count` requests of `run` from `connections` keep-alive connections: the rate
/// and the latencies of the successes, and how many were not.
pub async fn numbered(run: Numbered, connections: usize, count: u64) -> Result<Value, BenchError> {
    let client = client();
    let run = Arc::new(run);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (client, run, next, errors) =
            (client.clone(), run.clone(), next.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let number = n.to_string();
                let url = run.url.replace("{n}", &number);
                let body = run
                    .body
                    .as_ref()
                    .map(|b| serde_json::from_str::<Value>(&b.replace("{n}", &number)));
                let body = match body.transpose() {
                    Ok(body) => body,
                    Err(e) => return Err(format!("the body is not JSON: {e}")),
                };
                let sent = Instant::now();
                match send(&client, run.method.clone(), &url, body.as_ref()).await {
                    Ok((status, _))
                        if run.expected.map_or(status.is_success(), |e| status == e) =>
                    {
                        latencies.push(sent.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut latencies);
    Ok(json!({
        "requests": latencies.len(),
        "errors": errors.load(Ordering::Relaxed),
        "seconds": elapsed,
        "rps": latencies.len() as f64 / elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
    }))
}
