//! Test helpers (feature `test-util`): call a function's routes through the full host
//! service (paths, body limit, problem+json, metrics) without a socket.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::http::{HostContext, Routes, host_service};
use crate::lifecycle::Readiness;
use crate::telemetry::Metrics;

/// Calls routes in-process.
#[derive(Clone)]
pub struct TestClient {
    service: BoxCloneSyncService<Request, Response, Infallible>,
    metrics: Metrics,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestClient")
    }
}

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The names of the fields a problem+json body reports.
    pub fn problem_fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestClient {
    /// Routes behind the host's layers with a 64 KiB body limit.
    pub fn new(routes: Routes) -> Self {
        Self::with_body_limit(routes, 64 * 1024)
    }

    pub fn with_body_limit(routes: Routes, body_limit: usize) -> Self {
        let metrics = Metrics::new("test").unwrap_or_else(|e| panic!("metrics: {e}"));
        let readiness = Readiness::new(0);
        let service = host_service(
            routes,
            HostContext {
                metrics: metrics.clone(),
                readiness,
                body_limit,
            },
        );
        Self {
            service: BoxCloneSyncService::new(service),
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub async fn send(&self, request: Request) -> TestResponse {
        let Ok(response) = self.service.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A request with a raw body and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Body::from(body.into()))
            .unwrap_or_else(|e| panic!("bad test request: {e}"));
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.raw(Method::GET, path, None, Bytes::new(), &[]).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.raw(Method::DELETE, path, None, Bytes::new(), &[])
            .await
    }

    /// A JSON request.
    pub async fn json(&self, method: Method, path: &str, body: &serde_json::Value) -> TestResponse {
        self.json_with(method, path, body, &[]).await
    }

    pub async fn json_with(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.raw(method, path, Some("application/json"), bytes, headers)
            .await
    }
}

/// Helpers for tests of queue transports.
pub mod queues {
    use std::time::Duration;

    use crate::queue::{LockToken, QueueError, QueueReceiver, ReceivedMessage};

    /// A message as the host hands it to a queue handler on its first delivery: a JSON
    /// `body` with the given application properties.
    pub fn message(body: &serde_json::Value, properties: &[(&str, &str)]) -> ReceivedMessage {
        ReceivedMessage {
            message_id: format!("test-{}", uuid::Uuid::new_v4()),
            content_type: "application/json".to_owned(),
            body: bytes::Bytes::from(body.to_string()),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            delivery_count: 1,
            last_attempt: false,
            enqueued_at: chrono::Utc::now(),
            lock_token: LockToken("test".to_owned()),
            locked_until: tokio::time::Instant::now() + Duration::from_secs(60),
        }
    }

    /// Receives until `want` messages arrived or 20 s passed, riding out the broker being
    /// briefly unavailable (a reconnect); whatever arrived is returned for the test to judge.
    pub async fn receive_all(r: &dyn QueueReceiver, want: usize) -> Vec<ReceivedMessage> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while got.len() < want && tokio::time::Instant::now() < deadline {
            match r
                .receive(want - got.len(), Duration::from_millis(500))
                .await
            {
                Ok(batch) => got.extend(batch),
                Err(QueueError::Unavailable { .. }) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
        got
    }
}

/// The real servers that backend-parameterised suites run against: Redis on
/// `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and the MongoDB-compatible server on
/// `TEST_MONGODB_URI` (default `mongodb://127.0.0.1:27017/?directConnection=true`).
/// `scripts/services` starts both; `scripts/test` runs it first.
pub mod servers {
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;

    /// The Redis URL, after checking that something listens there.
    pub fn redis_url() -> String {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        require("Redis", &url);
        url
    }

    /// The MongoDB URI, after checking that something listens there.
    pub fn mongodb_uri() -> String {
        let uri = std::env::var("TEST_MONGODB_URI")
            .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".to_owned());
        require("MongoDB", &uri);
        uri
    }

    /// The AMQP 1.0 broker's URL (RabbitMQ with its AMQP 1.0 plugin, as `scripts/services`
    /// starts it), after checking that something listens there.
    pub fn amqp_url() -> String {
        let url =
            std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672".to_owned());
        require("RabbitMQ (AMQP 1.0)", &url);
        url
    }

    /// A name no other test run uses (a key prefix, a database name).
    pub fn unique_name(prefix: &str) -> String {
        format!("{prefix}{}", uuid::Uuid::new_v4().simple())
    }

    /// `scheme://[user@]host:port[/...]` -> the first `host:port`.
    fn address(url: &str) -> Option<SocketAddr> {
        let rest = url.split_once("://")?.1;
        let authority = rest.split(['/', '?']).next()?;
        let host_port = authority.rsplit('@').next()?.split(',').next()?;
        host_port.to_socket_addrs().ok()?.next()
    }

    fn require(service: &str, url: &str) {
        let reachable = address(url)
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
        assert!(
            reachable,
            "{service} is not reachable for the backend suite: run `scripts/services` \
             (scripts/test does) or point TEST_REDIS_URL / TEST_MONGODB_URI at a server"
        );
    }
}

/// Runs each behaviour of a suite once per backend: `per_backend!(Backend { embedded =>
/// Embedded, on_redis => Redis }: a, b)` makes the tests `embedded::a`, `on_redis::a`, ...,
/// each calling `a(Backend::...)`.
#[macro_export]
macro_rules! per_backend {
    ($backend:ident { $($module:ident => $variant:ident),+ $(,)? }: $($name:ident),+ $(,)?) => {
        $crate::per_backend!(@modules $backend [$($name),+] $($module $variant)+);
    };
    (@modules $backend:ident $names:tt $($module:ident $variant:ident)+) => {
        $($crate::per_backend!(@module $backend $module $variant $names);)+
    };
    (@module $backend:ident $module:ident $variant:ident [$($name:ident),+]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::$backend::$variant).await
                }
            )+
        }
    };
}

/// A secrets mount laid out the way the Secrets Store CSI driver (and Kubernetes' atomic
/// writer) writes it, so tests rotate secrets exactly as the driver does.
// A mount that cannot be written is a broken test machine: stop the test there.
#[allow(clippy::expect_used)]
pub mod secrets {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `<dir>/..<version>/<name>` files, `<dir>/..data -> ..<version>`, and
    /// `<dir>/<name> -> ..data/<name>`; removed on drop.
    #[derive(Debug)]
    pub struct MountedSecrets {
        dir: PathBuf,
        version: AtomicUsize,
    }

    impl MountedSecrets {
        /// A fresh mount holding `objects` (name, contents).
        pub fn new(objects: &[(&str, &str)]) -> Self {
            let dir = std::env::temp_dir().join(format!("secrets-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("create the mount directory");
            let mount = Self {
                dir,
                version: AtomicUsize::new(0),
            };
            mount.rotate(objects);
            mount
        }

        pub fn dir(&self) -> &Path {
            &self.dir
        }

        /// Writes a new version holding `objects` and swaps `..data` to it in one rename,
        /// then removes the old version, as the driver does on rotation.
        pub fn rotate(&self, objects: &[(&str, &str)]) {
            let n = self.version.fetch_add(1, Ordering::SeqCst);
            let version = format!("..2026_11_21_00_00_{n:02}.{}", std::process::id());
            let version_dir = self.dir.join(&version);
            std::fs::create_dir(&version_dir).expect("create a version directory");
            for (name, contents) in objects {
                std::fs::write(version_dir.join(name), contents).expect("write an object");
            }
            let data = self.dir.join("..data");
            let old = std::fs::read_link(&data).ok();
            let staged = self.dir.join("..data_tmp");
            let _ = std::fs::remove_file(&staged);
            std::os::unix::fs::symlink(&version, &staged).expect("stage the ..data link");
            std::fs::rename(&staged, &data).expect("swap ..data");
            for (name, _) in objects {
                let link = self.dir.join(name);
                if std::fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                        .expect("link an object");
                }
            }
            if let Some(old) = old {
                let _ = std::fs::remove_dir_all(self.dir.join(old));
            }
        }
    }

    impl Drop for MountedSecrets {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reading a Prometheus text page.
pub mod metrics {
    /// The value of the sample of `metric` whose labels include every pair in `labels`,
    /// whatever their order on the line.
    pub fn sample(page: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        page.lines().find_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (label_set, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let all = labels.iter().all(|(k, v)| {
                label_set
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            if all { value.trim().parse().ok() } else { None }
        })
    }
}

/// The bindings the host would give `F`, on the embedded broker, with its queues and
/// callees where `env` puts them (`env` sets the callee URL variables its declaration
/// names) and no secret source.
pub fn bindings<F: crate::Function>(env: &crate::config::MapEnv) -> crate::Bindings {
    let declaration = F::deployment();
    let mut reader = crate::config::EnvReader::new(env);
    let wiring = crate::wiring::Wiring::from_env(&mut reader, &declaration);
    if let Err(e) = reader.finish() {
        panic!("the test's environment for {}: {e}", F::NAME);
    }
    crate::Bindings::new(
        declaration,
        wiring,
        std::sync::Arc::new(crate::queue::embedded::EmbeddedBroker::default()),
        Metrics::new(F::NAME).unwrap_or_else(|e| panic!("metrics: {e}")),
    )
}
