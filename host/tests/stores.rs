//! The whole system on real stores: delivery on Redis, package and dronescheduler on a
//! MongoDB-compatible server; a Redis restart in the middle of the traffic; and Redis over
//! TLS with a password from a file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
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
use support::{call, client, dead_letter_count, eventually_within, raw_get, raw_request, sample};

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
        .with(
            "REDIS_KEY_PREFIX",
            format!("{}:", servers::unique_name("e2e:")),
        )
        .with("MONGODB_URI", servers::mongodb_uri())
        .with("PACKAGE_DATABASE", servers::unique_name("e2e_package_"))
        .with(
            "DRONESCHEDULER_DATABASE",
            servers::unique_name("e2e_drones_"),
        );
    let (system, shutdown) = started(env).await;
    let gw = client(system.internal);

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
    assert!(dead_letter_count(&system) == 0);
    shutdown.trigger();
    system.stopped().await;
}

/// A Redis server of the test's own on a free port, in a directory of its own; it can be
/// killed and started again on the same port and data.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Plain TCP, persisting every write (AOF, fsync always) so a restart keeps the data.
    fn persistent() -> Self {
        Self::start(|port, _| {
            [
                "--port",
                &port.to_string(),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]
            .map(String::from)
            .to_vec()
        })
    }

    /// TLS only, with a password, and a certificate for `localhost` from a test CA
    /// (`ca.pem` in its directory).
    fn tls(password: &str) -> Self {
        let password = password.to_owned();
        Self::start(move |port, dir| {
            make_certificates(dir);
            let file = |name: &str| dir.join(name).display().to_string();
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                file("cert.pem"),
                "--tls-key-file".into(),
                file("key.pem"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                password.clone(),
            ]
        })
    }

    fn start(args: impl FnOnce(u16, &Path) -> Vec<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(servers::unique_name("own-redis-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = args(port, &dir);
        args.extend(["--bind", "127.0.0.1", "--save", ""].map(String::from));
        let mut redis = Self {
            port,
            dir,
            args,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
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
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
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
    let mut redis = OwnRedis::persistent();
    let env = MapEnv::new()
        .with("REDIS_URL", redis.url())
        .with("REDIS_TIMEOUT_MS", "500")
        // Short holds and a short open circuit keep the test quick; the ten deliveries of a
        // message still span far longer than the outage.
        .with("QUEUE_RETRY_DELAY_MS", "200")
        .with("QUEUE_RETRY_DELAY_MAX_SECONDS", "2")
        .with("DOWNSTREAM_BREAKER_OPEN_MS", "500");
    let (system, shutdown) = started(env).await;
    let gw = client(system.internal);
    let limit = Duration::from_secs(30);

    let before: Vec<String> = request_deliveries(5, |i| format!("pkg-before-{i}"), &gw).await;
    for id in &before {
        eventually_within(&gw, &format!("/api/deliveries/{id}"), limit, |_| true).await;
    }

    redis.kill();
    // Accepting requests does not need Redis: the queue holds them.
    let during: Vec<String> = request_deliveries(5, |i| format!("pkg-during-{i}"), &gw).await;
    // Reads get a clear, retryable 503 while Redis is away.
    let read = raw_get(system.internal, &format!("/api/deliveries/{}", before[0])).await;
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
    assert!(dead_letter_count(&system) == 0, "nothing was dead-lettered");
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

/// A test CA (`ca.pem`) and a server certificate for `localhost` it signed (`cert.pem`,
/// `key.pem`): rustls refuses a self-signed CA certificate as a server's own.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
}

/// `fabrikam dev` with delivery on `redis` over TLS, trusting its certificate, with the
/// password read from a file; returns the process and its internal gateway address.
fn fabrikam_on_tls_redis(redis: &OwnRedis, password: &str) -> (KillOnDrop, std::net::SocketAddr) {
    let password_file = redis.dir.join(servers::unique_name("password-"));
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_fabrikam"))
            .arg("dev")
            .env("LOG_FORMAT", "json")
            .env("DEV_GATEWAY_PORT", "0")
            .env("DEV_INTERNAL_PORT", "0")
            .env("DEV_FIRST_FUNCTION_PORT", "0")
            .env("REDIS_URL", format!("rediss://localhost:{}", redis.port))
            .env("REDIS_PASSWORD_FILE", &password_file)
            .env("REDIS_TIMEOUT_MS", "1000")
            // rustls reads the trusted roots from here, as from the system's store.
            .env("SSL_CERT_FILE", redis.dir.join("ca.pem"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if line.contains("internal gateway listening") {
            let log: Value = serde_json::from_str(&line).unwrap();
            let addr = log["addr"].as_str().unwrap().parse().unwrap();
            // Keep reading, so the child's logging never meets a closed pipe.
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return (child, addr);
        }
    }
    panic!("fabrikam dev did not start");
}

/// A child process that is killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tls_redis_with_a_password_from_a_file() {
    let redis = OwnRedis::tls("s3cret-from-the-vault");
    let (right, gateway) = fabrikam_on_tls_redis(&redis, "s3cret-from-the-vault");
    let mut body = serde_json::from_str::<Value>(include_str!(
        "../../functions/delivery/tests/fixtures/delivery.json"
    ))
    .unwrap();
    body["id"] = "tls-1".into();
    let put = raw_request(gateway, "PUT", "/api/deliveries/tls-1", Some(&body)).await;
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(raw_get(gateway, "/api/deliveries/tls-1").await.status, 200);
    drop(right);

    let (_wrong, gateway) = fabrikam_on_tls_redis(&redis, "not-the-password");
    let refused = raw_get(gateway, "/api/deliveries/tls-1").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(!refused.body.contains("not-the-password"));
}
