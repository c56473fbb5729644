//! The scaler called as KEDA calls it (SCALING.md §5): GetMetricSpec, GetMetrics and
//! IsActive at every tick, StreamIsActive held open and reconnected as KEDA does, with the
//! backlog from a stand-in of RabbitMQ's management API and in-flight reports over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use runtime::lifecycle::Shutdown;
use scaler::ScalerArgs;
use scaler::backlog::{Backlog, rabbitmq::Management};
use scaler::keda::{KedaClient, StreamEvent};
use scaler::serve::Bound;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// RabbitMQ's management API as far as the scaler reads it: a queue's ready messages.
#[derive(Debug, Clone, Default)]
struct Broker {
    ready: Arc<Mutex<HashMap<String, u64>>>,
    down: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
}

impl Broker {
    fn set(&self, queue: &str, ready: u64) {
        self.ready.lock().unwrap().insert(queue.to_owned(), ready);
    }
}

async fn queue_object(
    State(broker): State<Broker>,
    Path((_vhost, queue)): Path<(String, String)>,
) -> Response {
    broker.reads.fetch_add(1, Ordering::SeqCst);
    if broker.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match broker.ready.lock().unwrap().get(&queue) {
        Some(n) => axum::Json(serde_json::json!({
            "name": queue, "messages_ready": n, "messages_unacknowledged": 0
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_broker() -> (Broker, String) {
    let broker = Broker::default();
    broker.set("workflow", 0);
    let app = Router::new()
        .route("/api/queues/{vhost}/{queue}", get(queue_object))
        .with_state(broker.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (broker, format!("http://{addr}/api"))
}

fn args(management: &str, grpc_port: u16) -> ScalerArgs {
    ScalerArgs {
        queues: vec!["workflow".to_owned()],
        rabbitmq_management: Some(management.to_owned()),
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        grpc_port,
        http_port: 0,
        poll_interval_ms: 100,
        poll_with_replicas_seconds: 1,
        report_timeout_seconds: 3,
        keepalive_seconds: 1,
    }
}

struct Scaler {
    bound: Bound,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), scaler::ServeError>>,
}

async fn start_scaler(management: &str) -> Scaler {
    let args = args(management, 0);
    let backlog = Backlog::RabbitMq(Box::new(Management::new(management, "guest", "guest")));
    let shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(scaler::serve(args, backlog, shutdown.clone(), move |b| {
        let _ = tx.send(b);
    }));
    let bound = rx.await.expect("the scaler started");
    let scaler = Scaler {
        bound,
        shutdown,
        task,
    };
    scaler.until_ready().await;
    scaler
}

impl Scaler {
    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.bound.http)
    }

    fn keda(&self, metadata: &[(&str, &str)]) -> KedaClient {
        keda_at(self.bound.grpc, metadata)
    }

    async fn until_ready(&self) {
        until("the scaler is ready", || async {
            reqwest::get(self.http("/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    async fn report(&self, replica: &str, queue: &str, in_flight: u64) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.http("/v1/reports"))
            .json(&serde_json::json!({"replica": replica, "queue": queue, "inFlight": in_flight}))
            .send()
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

fn keda_at(addr: SocketAddr, metadata: &[(&str, &str)]) -> KedaClient {
    let metadata = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    KedaClient::new(
        &format!("http://{addr}"),
        "backend-dev",
        "workflow",
        metadata,
    )
    .unwrap()
}

const WORKFLOW: &[(&str, &str)] = &[("queueName", "workflow"), ("targetSize", "5")];
const TICK_TIMEOUT: Duration = Duration::from_secs(2);

async fn until<F, Fut>(what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_tick_sees_the_backlog_plus_what_the_replicas_hold() {
    let (broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;
    let keda = scaler.keda(WORKFLOW);

    let idle = keda.tick(TICK_TIMEOUT).await.unwrap();
    assert_eq!(idle.metric_name, "queue-workflow");
    assert_eq!(idle.target, 5.0);
    assert_eq!((idle.value, idle.active), (0.0, false));

    // Work in flight alone is activity: this is what the azure-servicebus scaler misses.
    assert_eq!(
        scaler.report("workflow-a", "workflow", 2).await.status(),
        204
    );
    let busy = keda.tick(TICK_TIMEOUT).await.unwrap();
    assert_eq!((busy.value, busy.active), (2.0, true));

    broker.set("workflow", 3);
    until("the backlog is read", || async {
        keda.tick(TICK_TIMEOUT).await.unwrap().value == 5.0
    })
    .await;
    assert_eq!(
        scaler.report("workflow-b", "workflow", 4).await.status(),
        204
    );
    assert_eq!(keda.tick(TICK_TIMEOUT).await.unwrap().value, 9.0);

    let metrics = scaler.metrics().await;
    assert!(
        metrics.contains("scaler_queue_in_flight{queue=\"workflow\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scaler_grpc_calls_total{method=\"GetMetrics\",outcome=\"ok\"}"),
        "{metrics}"
    );
    scaler.stop().await;
}

#[tokio::test]
async fn the_stream_pushes_when_work_arrives_and_keeps_pushing_while_it_runs() {
    let (broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let following = Shutdown::new();
    tokio::spawn(scaler.keda(WORKFLOW).follow(tx, following.clone()));
    // An idle queue pushes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(events.try_recv().is_err(), "nothing pushed while idle");

    // A message arrives at zero: pushed within a poll interval, not KEDA's next tick.
    let arrived = Instant::now();
    broker.set("workflow", 1);
    let StreamEvent::Active(at) = events.recv().await.unwrap() else {
        panic!("the stream ended")
    };
    assert!(
        at - arrived < Duration::from_secs(1),
        "pushed {:?} after the message arrived",
        at - arrived
    );

    // The message is taken and runs for 2.5 s: the backlog is 0, the replica holds it, and
    // the stream keeps saying so every keep-alive (1 s), which keeps LastActiveTime fresh.
    broker.set("workflow", 0);
    scaler.report("workflow-a", "workflow", 1).await;
    let running = Instant::now();
    let mut pushes = 0;
    while running.elapsed() < Duration::from_millis(2500) {
        if let Ok(Some(StreamEvent::Active(_))) =
            tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            pushes += 1;
        }
    }
    assert!(pushes >= 2, "{pushes} pushes while a handler ran for 2.5 s");

    // Settled: nothing waits or runs, so nothing is pushed.
    scaler.report("workflow-a", "workflow", 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while events.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(events.try_recv().is_err(), "pushed while idle");
    following.trigger();
    scaler.stop().await;
}

#[tokio::test]
async fn a_replica_that_stops_reporting_no_longer_counts() {
    let (_broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;
    let keda = scaler.keda(WORKFLOW);
    scaler.report("workflow-killed", "workflow", 4).await;
    assert_eq!(keda.tick(TICK_TIMEOUT).await.unwrap().value, 4.0);
    // Report timeout 3 s: the replica was killed without a last report.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let tick = keda.tick(TICK_TIMEOUT).await.unwrap();
    assert_eq!((tick.value, tick.active), (0.0, false));
    until("the replica is expired", || async {
        scaler
            .metrics()
            .await
            .contains("scaler_replicas_expired_total 1")
    })
    .await;
    scaler.stop().await;
}

#[tokio::test]
async fn a_broker_that_stops_answering_is_an_error_never_a_zero() {
    let (broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;
    let keda = scaler.keda(WORKFLOW);
    broker.set("workflow", 7);
    until("the backlog is read", || async {
        keda.tick(TICK_TIMEOUT).await.unwrap().value == 7.0
    })
    .await;

    broker.down.store(true, Ordering::SeqCst);
    until("the backlog is unknown", || async {
        keda.tick(TICK_TIMEOUT).await.is_err()
    })
    .await;
    let err = keda.tick(TICK_TIMEOUT).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(err.message().contains("503"), "{err}");
    let ready = reqwest::get(scaler.http("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    // KEDA's fallback takes over on errors; but work in flight is still known, and active.
    scaler.report("workflow-a", "workflow", 1).await;
    let mut client = scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!(
        "http://{}",
        scaler.bound.grpc
    ))
    .await
    .unwrap();
    let so = scaler::proto::ScaledObjectRef {
        name: "workflow".into(),
        namespace: "backend-dev".into(),
        scaler_metadata: WORKFLOW
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert!(client.is_active(so).await.unwrap().into_inner().result);

    broker.down.store(false, Ordering::SeqCst);
    scaler.until_ready().await;
    // The backed-off read may come after the 3 s report timeout; a live replica reports
    // again at least every 2 s, so this one does too.
    scaler.report("workflow-a", "workflow", 1).await;
    assert_eq!(keda.tick(TICK_TIMEOUT).await.unwrap().value, 8.0);
    // The failed reads were backed off, not repeated every 100 ms.
    let metrics = scaler.metrics().await;
    let failed = metric_value(
        &metrics,
        "scaler_broker_reads_total{outcome=\"failed\",queue=\"workflow\"}",
    );
    assert!(failed >= 1.0, "{metrics}");
    scaler.stop().await;
}

#[tokio::test]
async fn bad_triggers_and_reports_are_refused_by_name() {
    let (_broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;

    let err = scaler
        .keda(&[("targetSize", "5")])
        .tick(TICK_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "backend-dev/workflow: the trigger's metadata has no queueName"
    );
    let err = scaler
        .keda(&[("queueName", "billing"), ("targetSize", "5")])
        .tick(TICK_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("does not serve queue \"billing\""),
        "{err}"
    );

    let refused = scaler.report("a", "billing", 1).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let malformed = reqwest::Client::new()
        .post(scaler.http("/v1/reports"))
        .json(&serde_json::json!({"replica": "a", "queue": "workflow", "inFlight": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("not a report"),
        "{body}"
    );
    scaler.stop().await;
}

#[tokio::test]
async fn a_replica_that_leaves_stops_counting_at_once() {
    let (_broker, management) = start_broker().await;
    let scaler = start_scaler(&management).await;
    let keda = scaler.keda(WORKFLOW);
    scaler.report("workflow-a", "workflow", 3).await;
    assert_eq!(keda.tick(TICK_TIMEOUT).await.unwrap().value, 3.0);
    let last = |in_flight: u64| {
        reqwest::Client::new()
            .post(scaler.http("/v1/reports"))
            .json(&serde_json::json!({
                "replica": "workflow-a", "queue": "workflow", "inFlight": in_flight, "last": true
            }))
            .send()
    };
    // A replica leaves once it holds nothing.
    let refused = last(3).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(last(0).await.unwrap().status(), 204);
    // Gone from the count at once, not after the report timeout: the backlog is read at
    // the pace for no replicas again, so the next message at zero wakes within a second.
    let tick = keda.tick(TICK_TIMEOUT).await.unwrap();
    assert_eq!((tick.value, tick.active), (0.0, false));
    let metrics = scaler.metrics().await;
    assert_eq!(
        metric_value(&metrics, "scaler_queue_replicas{queue=\"workflow\"}"),
        0.0,
        "{metrics}"
    );
    scaler.stop().await;
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The scaler as a process, killed and restarted on the same port as a pod would be.
struct Process {
    child: std::process::Child,
}

impl Process {
    fn start(management: &str, grpc: u16) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_scaler"))
            .args(["--queue", "workflow", "--rabbitmq-management", management])
            .args(["--bind", "127.0.0.1", "--grpc-port", &grpc.to_string()])
            .args([
                "--http-port",
                "0",
                "--poll-interval-ms",
                "100",
                "--keepalive-seconds",
                "1",
            ])
            .env("LOG_FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(
            self.child.wait().unwrap().success(),
            "a clean stop on SIGTERM"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn next_event(
    events: &mut mpsc::UnboundedReceiver<StreamEvent>,
    within: Duration,
) -> StreamEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .expect("the follower runs")
}

// Two workers: waiting for the scaler process blocks one, while the other keeps the client's
// side of the connection going (the scaler's graceful stop waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_reopened_as_keda_reopens_it_after_the_scaler_restarts() {
    let (broker, management) = start_broker().await;
    broker.set("workflow", 1);
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let scaler = Process::start(&management, port);
    let (tx, mut events) = mpsc::unbounded_channel();
    let following = Shutdown::new();
    // KEDA's first attempt may find the scaler still starting: it then retries after 2 s.
    tokio::spawn(keda_at(addr, WORKFLOW).follow(tx, following.clone()));
    loop {
        match next_event(&mut events, Duration::from_secs(10)).await {
            StreamEvent::Active(_) => break,
            StreamEvent::Ended { .. } => {}
        }
    }

    // A rolling update: SIGTERM ends the stream cleanly (EOF), so KEDA waits 2 s.
    scaler.terminate();
    let ended = loop {
        if let StreamEvent::Ended { error, retry_in } =
            next_event(&mut events, Duration::from_secs(5)).await
        {
            break (error, retry_in);
        }
    };
    assert_eq!(
        ended,
        (None, Duration::from_secs(2)),
        "a clean end resets KEDA's delay"
    );
    // Nobody listens now: the retry fails, and KEDA doubles its delay.
    let StreamEvent::Ended { error, retry_in } =
        next_event(&mut events, Duration::from_secs(5)).await
    else {
        panic!("pushed with no scaler")
    };
    assert!(error.is_some());
    assert_eq!(retry_in, Duration::from_secs(4));

    // Back within that delay: the stream is reopened and pushes again.
    let scaler = Process::start(&management, port);
    match next_event(&mut events, Duration::from_secs(8)).await {
        StreamEvent::Active(_) => {}
        other => panic!("expected a push after the restart, got {other:?}"),
    }

    // A crash (SIGKILL) is an error, not an EOF: the delay keeps doubling.
    scaler.kill();
    let (error, retry_in) = loop {
        if let StreamEvent::Ended { error, retry_in } =
            next_event(&mut events, Duration::from_secs(5)).await
        {
            break (error, retry_in);
        }
    };
    assert!(error.is_some(), "a killed scaler is a stream error");
    assert_eq!(retry_in, Duration::from_secs(8));
    following.trigger();
}
