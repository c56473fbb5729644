//! The three backend functions on loopback ports, with faults injectable in front of
//! delivery.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::OPERATION;
use http::{Method, StatusCode};
use runtime::client::{Backoff, Downstream, DownstreamPolicy};
use runtime::http::{HostContext, Routes, host_service, serve};
use runtime::lifecycle::{Readiness, Shutdown};
use runtime::queue::{OutgoingMessage, ReceivedMessage};
use runtime::telemetry::Metrics;
use serde_json::Value;
use tokio::net::TcpListener;
use workflow::Processor;

/// Faults for `PUT /api/deliveries/...`: answer `status` for the next `times` calls
/// (`u32::MAX` = always).
#[derive(Debug, Default)]
pub struct Faults {
    pub status: AtomicU16,
    pub times: AtomicU32,
}

impl Faults {
    pub fn fail_delivery_put(&self, status: u16, times: u32) {
        self.status.store(status, Ordering::SeqCst);
        self.times.store(times, Ordering::SeqCst);
    }
}

async fn inject(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    if req.method() == Method::PUT && req.uri().path().starts_with("/api/deliveries/") {
        let left = faults.times.load(Ordering::SeqCst);
        if left > 0 {
            if left != u32::MAX {
                faults.times.store(left - 1, Ordering::SeqCst);
            }
            let status = StatusCode::from_u16(faults.status.load(Ordering::SeqCst)).unwrap();
            return (status, "injected fault").into_response();
        }
    }
    next.run(req).await
}

/// Where the three backends listen, and the call policy the workflow uses for them.
pub struct BackendUrls {
    pub package_url: String,
    pub dronescheduler_url: String,
    pub delivery_url: String,
    pub downstream: DownstreamPolicy,
}

pub struct Backends {
    pub config: BackendUrls,
    pub faults: Arc<Faults>,
    pub client: Downstream,
    pub shutdown: Shutdown,
}

async fn start(routes: Routes, faults: Option<Arc<Faults>>, shutdown: &Shutdown) -> String {
    let ctx = HostContext {
        metrics: Metrics::new("backend").unwrap(),
        readiness: Readiness::new(0),
        body_limit: 64 * 1024,
    };
    let service = host_service(routes, ctx);
    let mut app = Router::new().fallback_service(service);
    if let Some(f) = faults {
        app = app.layer(axum::middleware::from_fn_with_state(f, inject));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        app,
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    url
}

pub fn fast_policy() -> DownstreamPolicy {
    DownstreamPolicy {
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        breaker_failures: 1000,
        breaker_open_for: Duration::from_secs(1),
        max_concurrent: 16,
    }
}

impl Backends {
    pub async fn start() -> Self {
        let shutdown = Shutdown::new();
        let faults = Arc::new(Faults::default());
        let package = start(
            package::routes(Arc::new(package::MemoryPackageStore::default())),
            None,
            &shutdown,
        )
        .await;
        let sched_config = dronescheduler::SchedulerConfig {
            fleet_size: 5,
            ..dronescheduler::SchedulerConfig::default()
        };
        let drones = Arc::new(dronescheduler::MemoryDroneStore::new(
            dronescheduler::fleet(5),
        ));
        let dronescheduler = start(
            dronescheduler::routes(drones, sched_config),
            None,
            &shutdown,
        )
        .await;
        let deliveries = Arc::new(delivery::MemoryDeliveryStore::default());
        let delivery = start(
            delivery::routes(deliveries, delivery::DeliveryConfig::default()),
            Some(faults.clone()),
            &shutdown,
        )
        .await;
        let config = BackendUrls {
            package_url: package,
            dronescheduler_url: dronescheduler,
            delivery_url: delivery.clone(),
            downstream: fast_policy(),
        };
        let client = Downstream::new(
            "test",
            "http://unused",
            fast_policy(),
            Metrics::new("t").unwrap(),
        );
        Self {
            config,
            faults,
            client,
            shutdown,
        }
    }

    /// The processor as the host builds it, its declared callees at the test servers.
    pub fn processor(&self) -> Processor {
        let env = runtime::MapEnv::from([
            ("PACKAGE_SERVICE_URL", self.config.package_url.as_str()),
            (
                "DRONESCHEDULER_SERVICE_URL",
                self.config.dronescheduler_url.as_str(),
            ),
            ("DELIVERY_SERVICE_URL", self.config.delivery_url.as_str()),
        ]);
        let bindings = runtime::testing::bindings::<workflow::Workflow>(&env);
        workflow::processor(self.config.downstream, &bindings).unwrap()
    }

    /// `GET base+path` as (status, JSON).
    pub async fn get(&self, base: &str, path: &str) -> (u16, Value) {
        let d = Downstream::new("probe", base, fast_policy(), Metrics::new("p").unwrap());
        let r = d.call(Method::GET, path, None::<&()>, None).await.unwrap();
        (r.status.as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub async fn delete(&self, base: &str, path: &str) -> u16 {
        let d = Downstream::new("probe", base, fast_policy(), Metrics::new("p").unwrap());
        d.call(Method::DELETE, path, None::<&()>, None)
            .await
            .unwrap()
            .status
            .as_u16()
    }
}

pub fn delivery_body(id: &str) -> Value {
    serde_json::json!({
        "deliveryId": id,
        "ownerId": "owner-1",
        "pickupLocation": "47.6062,-122.3321",
        "dropoffLocation": "0,47.6740,-122.1215",
        "pickupTime": "2026-11-21T10:00:00Z",
        "expedited": true,
        "deadline": "LinkedIn",
        "confirmationRequired": "Picture",
        "packageInfo": {"packageId": format!("pkg-{id}"), "size": "Medium", "weight": 3.5, "tag": "t"}
    })
}

pub fn outgoing(operation: &str, body: &Value) -> OutgoingMessage {
    OutgoingMessage::json(uuid(), serde_json::to_vec(body).unwrap())
        .with_property(OPERATION, operation)
}

/// A received message as the host would hand it over.
pub fn received(operation: Option<&str>, body: &[u8]) -> ReceivedMessage {
    let mut properties = std::collections::BTreeMap::new();
    if let Some(op) = operation {
        properties.insert(OPERATION.to_owned(), op.to_owned());
    }
    ReceivedMessage {
        message_id: uuid(),
        content_type: "application/json".into(),
        body: bytes::Bytes::copy_from_slice(body),
        properties,
        delivery_count: 1,
        last_attempt: false,
        enqueued_at: chrono_now(),
        lock_token: runtime::queue::LockToken("t".into()),
        locked_until: tokio::time::Instant::now() + Duration::from_secs(60),
    }
}

fn uuid() -> String {
    format!("m-{}", rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
