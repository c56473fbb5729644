//! The whole system on real stores: delivery on Redis, package and dronescheduler on a
//! MongoDB-compatible server; and a Redis restart in the middle of the traffic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use host::{DevConfig, DevSystem, start_dev};
use http::Method;
use runtime::MapEnv;
use runtime::lifecycle::Shutdown;
use runtime::testing::servers;
use serde_json::Value;
use support::{call, client, eventually_within, raw_get, sample};

async fn request_delivery(gw: &runtime::client::Downstream, package_id: &str) -> String {
    let mut body = sample();
    body["packageInfo"]["packageId"] = package_id.into();
    let accepted = call(gw, Method::POST, "/api/deliveryrequests", Some(&body)).await;
    assert_eq!(accepted.status, 202);
    accepted.json::<Value>().unwrap()["deliveryId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn started(env: MapEnv) -> (DevSystem, Shutdown) {
    let shutdown = Shutdown::new();
    let config = DevConfig::ephemeral_with(&env).unwrap();
    let system = start_dev(config, shutdown.clone()).await.unwrap();
    (system, shutdown)
}

#[tokio::test]
async fn a_request_is_scheduled_through_redis_and_mongodb() {
    let env = MapEnv::new()
        .with("REDIS_URL", servers::redis_url())
        .with("REDIS_KEY_PREFIX", servers::unique_name("e2e:"))
        .with("MONGODB_URI", servers::mongodb_uri())
        .with("PACKAGE_DATABASE", servers::unique_name("e2e_package_"))
        .with(
            "DRONESCHEDULER_DATABASE",
            servers::unique_name("e2e_drones_"),
        );
    let (system, shutdown) = started(env).await;
    let gw = client(system.gateway);

    let id = request_delivery(&gw, "pkg-e2e").await;
    let limit = Duration::from_secs(10);
    let delivery = eventually_within(&gw, &format!("/api/deliveries/{id}"), limit, |d| {
        d["droneId"].is_string()
    })
    .await;
    let package = call(&gw, Method::GET, "/api/packages/pkg-e2e", None).await;
    assert_eq!(package.status, 200);
    let assignment = call(
        &gw,
        Method::PUT,
        &format!("/api/dronedeliveries/{id}"),
        Some(&serde_json::json!({})),
    )
    .await;
    assert_eq!(
        assignment.json::<Value>().unwrap()["droneId"],
        delivery["droneId"],
        "the scheduler's stored assignment is the delivery's drone"
    );
    assert!(system.broker.queue("deliveries").dead_letters().is_empty());
    shutdown.trigger();
    system.stopped().await;
}

/// A Redis server of the test's own, persisting every write (AOF, fsync always) so that it
/// can be killed and started again on the same port and data.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(servers::unique_name("redis-restart-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services installs it)");
        self.child = Some(child);
        wait_listening(self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

fn wait_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not start on port {port}");
}

#[tokio::test]
async fn a_redis_restart_loses_no_accepted_delivery() {
    let mut redis = OwnRedis::start();
    let env = MapEnv::new()
        .with("REDIS_URL", redis.url())
        .with("REDIS_TIMEOUT_MS", "500")
        // Short holds and a short open circuit keep the test quick; the ten deliveries of a
        // message still span far longer than the outage.
        .with("QUEUE_RETRY_DELAY_MS", "200")
        .with("QUEUE_RETRY_DELAY_MAX_SECONDS", "2")
        .with("DOWNSTREAM_BREAKER_OPEN_MS", "500");
    let (system, shutdown) = started(env).await;
    let gw = client(system.gateway);
    let limit = Duration::from_secs(30);

    let before: Vec<String> = request_deliveries(5, |i| format!("pkg-before-{i}"), &gw).await;
    for id in &before {
        eventually_within(&gw, &format!("/api/deliveries/{id}"), limit, |_| true).await;
    }

    redis.kill();
    // Accepting requests does not need Redis: the queue holds them.
    let during: Vec<String> = request_deliveries(5, |i| format!("pkg-during-{i}"), &gw).await;
    // Reads get a clear, retryable 503 while Redis is away.
    let read = raw_get(system.gateway, &format!("/api/deliveries/{}", before[0])).await;
    assert_eq!(read.status, 503, "{read:?}");
    assert_eq!(read.headers["content-type"], "application/problem+json");
    assert!(read.headers.contains_key("retry-after"), "{read:?}");
    assert!(read.body.contains("unavailable"), "{read:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    redis.spawn();
    let restarted = std::time::Instant::now();
    // Work resumes by itself: everything accepted before and during the outage is there.
    for id in before.iter().chain(&during) {
        let d = eventually_within(&gw, &format!("/api/deliveries/{id}"), limit, |d| {
            d["droneId"].is_string()
        })
        .await;
        assert_eq!(d["id"], id.as_str());
    }
    eprintln!(
        "all deliveries readable {:?} after the restart",
        restarted.elapsed()
    );
    assert!(
        system.broker.queue("deliveries").dead_letters().is_empty(),
        "nothing was dead-lettered"
    );
    shutdown.trigger();
    system.stopped().await;
}

/// Requests `n` deliveries, one package id each.
async fn request_deliveries(
    n: usize,
    package: impl Fn(usize) -> String,
    gw: &runtime::client::Downstream,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(request_delivery(gw, &package(i)).await);
    }
    ids
}
