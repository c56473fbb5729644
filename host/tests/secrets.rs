//! Declared secrets from a CSI-style mount: start-up names every missing one, a rotation
//! (the driver's atomic `..data` swap) reaches a running function's next Redis connection,
//! and no secret value reaches the logs or the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime::config::EnvReader;
use runtime::lifecycle::Shutdown;
use runtime::queue::embedded::EmbeddedBroker;
use runtime::secrets::{SecretsSettings, SourceSettings};
use runtime::store::mongo::CONNECTION_STRING_SECRET;
use runtime::testing::secrets::MountedSecrets;
use runtime::testing::servers;
use runtime::{HostConfig, MapEnv, StartError, start};
use support::raw_get;
use tokio::net::TcpListener;

/// Every log line the test process writes, at every level.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs the capture as the process's subscriber (nextest runs each test in its own
    /// process), in JSON with span fields, as production logs.
    fn install() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn host_reading(mount: &MountedSecrets) -> HostConfig {
    let env = MapEnv::new();
    let mut r = EnvReader::new(&env);
    let mut host = HostConfig::from_env(&mut r);
    host.secrets = SecretsSettings {
        source: Some(SourceSettings::Directory(mount.dir().to_owned())),
        reload_every: Duration::from_millis(200),
    };
    host
}

/// Delivery's Redis access key, as its declaration names it.
const REDIS_ACCESS_KEY: &str = "Redis-AccessKey";

/// Starts the registered function `name` as the host does.
async fn start_function(
    name: &str,
    host: &HostConfig,
    env: &MapEnv,
    shutdown: Shutdown,
) -> Result<runtime::RunningFunction, StartError> {
    let function = host::functions().iter().find(|f| f.name() == name).unwrap();
    let mut r = EnvReader::new(env);
    let config = function.read_config(&mut r);
    r.finish().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = Arc::new(EmbeddedBroker::new(host.queue));
    start(function, host, config, listener, broker, shutdown).await
}

/// Polls `path` until it answers `status`, for up to 15 seconds.
async fn until_status(addr: std::net::SocketAddr, path: &str, status: u16) {
    let started = tokio::time::Instant::now();
    loop {
        let now = raw_get(addr, path).await.status;
        if now == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{path}: still {now}, waiting for {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn start_up_fails_naming_the_missing_secret() {
    let mount = MountedSecrets::new(&[("Unrelated", "x")]);
    let env = MapEnv::new().with("REDIS_URL", servers::redis_url());
    let e = start_function("delivery", &host_reading(&mount), &env, Shutdown::new())
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("missing Redis-AccessKey")
            && message.contains(&mount.dir().display().to_string()),
        "{message}"
    );
}

/// A Redis ACL user of its own, so the test can change its password without touching the
/// shared server's.
struct RedisUser {
    name: String,
    admin: redis::aio::MultiplexedConnection,
}

impl RedisUser {
    async fn create(password: &str) -> Self {
        let client = redis::Client::open(servers::redis_url()).unwrap();
        let admin = client.get_multiplexed_async_connection().await.unwrap();
        let user = Self {
            name: servers::unique_name("rotation-"),
            admin,
        };
        user.set_password(password).await;
        user
    }

    /// Replaces the user's passwords with `password` and drops its connections, as a
    /// regenerated access key does.
    async fn set_password(&self, password: &str) {
        let mut admin = self.admin.clone();
        redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                &self.name,
                "on",
                "resetpass",
                &format!(">{password}"),
            ])
            .arg(&["~*", "+@all"])
            .exec_async(&mut admin)
            .await
            .unwrap();
        let _: redis::Value = redis::cmd("CLIENT")
            .arg(&["KILL", "USER", &self.name])
            .query_async(&mut admin)
            .await
            .unwrap();
    }

    async fn delete(&self) {
        let mut admin = self.admin.clone();
        let _: redis::Value = redis::cmd("ACL")
            .arg(&["DELUSER", &self.name])
            .query_async(&mut admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_rotated_access_key_is_used_for_the_next_connection_and_never_logged() {
    let logs = CapturedLogs::install();
    let (first, second) = (
        format!("planted-first-{}", uuid::Uuid::new_v4()),
        format!("planted-second-{}", uuid::Uuid::new_v4()),
    );
    let user = RedisUser::create(&first).await;
    let mount = MountedSecrets::new(&[(REDIS_ACCESS_KEY, first.as_str())]);
    let url = servers::redis_url().replacen("redis://", &format!("redis://{}@", user.name), 1);
    let env = MapEnv::new()
        .with("REDIS_URL", url)
        .with("REDIS_KEY_PREFIX", servers::unique_name("rot:"));
    let shutdown = Shutdown::new();
    let running = start_function("delivery", &host_reading(&mount), &env, shutdown.clone())
        .await
        .unwrap();
    let addr = running.local_addr();

    // Signed in with the mounted key: an unknown delivery is a 404 from Redis, not a 503.
    assert_eq!(raw_get(addr, "/api/deliveries/nope").await.status, 404);

    // The key is regenerated on the server: the old one no longer signs in.
    user.set_password(&second).await;
    assert_eq!(raw_get(addr, "/api/deliveries/nope").await.status, 503);

    // The driver writes the new key; within a reload the next connection uses it.
    mount.rotate(&[(REDIS_ACCESS_KEY, second.as_str())]);
    until_status(addr, "/api/deliveries/nope", 404).await;

    let metrics = raw_get(addr, "/metrics").await.body;
    let rotations = runtime::testing::metrics::sample(
        &metrics,
        "fabrikam_secret_reloads_total",
        &[
            ("secret", REDIS_ACCESS_KEY),
            ("outcome", "rotated"),
            ("function", "delivery"),
        ],
    );
    assert_eq!(rotations, Some(1.0), "{metrics}");
    let secrets_loaded = metrics.contains(r#"phase="secrets_loaded""#);
    assert!(secrets_loaded, "{metrics}");

    shutdown.trigger();
    running.stopped().await;
    user.delete().await;

    let text = logs.text();
    assert!(
        text.contains("secret rotated") && text.contains(REDIS_ACCESS_KEY),
        "the rotation is logged by name: {text}"
    );
    for planted in [&first, &second] {
        assert!(
            !text.contains(planted.as_str()),
            "a secret reached the logs"
        );
        assert!(
            !metrics.contains(planted.as_str()),
            "a secret reached the metrics"
        );
    }
}

#[tokio::test]
async fn a_rotated_connection_string_moves_the_store_to_a_new_client() {
    let good = servers::mongodb_uri();
    let unreachable = "mongodb://127.0.0.1:9/?directConnection=true";
    let mount = MountedSecrets::new(&[(CONNECTION_STRING_SECRET, good.as_str())]);
    let env = MapEnv::new()
        .with("PACKAGE_DATABASE", servers::unique_name("rot_"))
        .with("MONGODB_TIMEOUT_MS", "300");
    let shutdown = Shutdown::new();
    let running = start_function("package", &host_reading(&mount), &env, shutdown.clone())
        .await
        .unwrap();
    let addr = running.local_addr();
    assert_eq!(raw_get(addr, "/api/packages/nope").await.status, 404);

    // Each rotation takes effect for the calls after it: first to a server that is not
    // there, then back.
    mount.rotate(&[(CONNECTION_STRING_SECRET, unreachable)]);
    until_status(addr, "/api/packages/nope", 503).await;
    mount.rotate(&[(CONNECTION_STRING_SECRET, good.as_str())]);
    until_status(addr, "/api/packages/nope", 404).await;

    shutdown.trigger();
    running.stopped().await;
}

#[tokio::test]
async fn a_connection_string_in_both_the_environment_and_the_secrets_is_refused() {
    let mount = MountedSecrets::new(&[(CONNECTION_STRING_SECRET, "mongodb://a")]);
    let env = MapEnv::new().with("MONGODB_URI", servers::mongodb_uri());
    let e = start_function("package", &host_reading(&mount), &env, Shutdown::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("keep one"), "{e}");
}
