//! Connecting to Redis and classifying its errors, for the functions whose store is Redis.
//!
//! The connection is a `redis` crate `ConnectionManager`: one multiplexed connection that
//! reconnects by itself with backoff after the server goes away, so a Redis restart costs
//! the requests made during the outage (a 503 each) and nothing after it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, RedisResult, ServerErrorKind};

use super::StoreError;
use crate::config::EnvReader;
use crate::secrets::{Secret, SecretWatch};

/// Where the Redis server is and how to sign in.
#[derive(Clone)]
pub struct RedisSettings {
    info: ConnectionInfo,
    /// Prepended to every key, so several environments (or test runs) can share a server.
    pub key_prefix: String,
    /// Longest wait for a connection or a reply before the call fails as unavailable.
    pub timeout: Duration,
}

impl fmt::Debug for RedisSettings {
    // Written by hand so the password can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("server", &self.server())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Reads `REDIS_URL` (`redis://host:6379` or `rediss://host:6380` for TLS),
    /// `REDIS_PASSWORD_FILE` (a file holding the password or access key; it wins over a
    /// password in the URL), `REDIS_KEY_PREFIX` (default none, or `<name>:` in the named
    /// environment [`crate::config::ENVIRONMENT_NAME`]) and `REDIS_TIMEOUT_MS`
    /// (default 2000). `None` when `REDIS_URL` is unset: the embedded store is used.
    pub fn from_env(r: &mut EnvReader<'_>) -> Option<Self> {
        let url = r.raw("REDIS_URL");
        let password = r.secret_file("REDIS_PASSWORD_FILE");
        let scope = r
            .raw(crate::config::ENVIRONMENT_NAME)
            .map(|name| format!("{name}:"))
            .unwrap_or_default();
        let key_prefix = r.string("REDIS_KEY_PREFIX", &scope);
        let timeout = r.millis(
            "REDIS_TIMEOUT_MS",
            Duration::from_secs(2),
            Duration::from_millis(50),
            Duration::from_secs(60),
        );
        let info = match parse_url(&url?) {
            Ok(info) => info,
            Err(why) => {
                r.problem("REDIS_URL", why);
                return None;
            }
        };
        let info = match password {
            Some(password) => {
                let redis = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(redis)
            }
            None => info,
        };
        Some(Self {
            info,
            key_prefix,
            timeout,
        })
    }

    /// `host:port`, and whether TLS is on, for logs (never the password).
    pub fn server(&self) -> String {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
            other => other.to_string(),
        }
    }

    /// A connection manager that connects on first use and reconnects after failures.
    ///
    /// With `password` (the declared secret, such as `Redis-AccessKey`), every connection
    /// signs in with its current value, replacing one from the URL or
    /// `REDIS_PASSWORD_FILE`; when it rotates, the live connection re-authenticates and
    /// reconnections use the new value.
    pub fn connect(&self, password: Option<SecretWatch>) -> Result<ConnectionManager, StoreError> {
        crate::tls::install_provider();
        let client = redis::Client::open(self.info.clone()).map_err(|e| classify(&e))?;
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // Reconnection is retried a few times per failed call; between calls the
            // manager starts over, so an outage of any length ends by itself.
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        if let Some(password) = password {
            let username = self
                .info
                .redis_settings()
                .username()
                .unwrap_or("default")
                .to_owned();
            config = config.set_credentials_provider(RotatingPassword { username, password });
        }
        ConnectionManager::new_lazy_with_config(client, config).map_err(|e| classify(&e))
    }
}

/// Credentials that follow a rotating secret, in the shape the redis crate's token-based
/// authentication takes: each subscription yields the current value, then every new one.
struct RotatingPassword {
    username: String,
    password: SecretWatch,
}

impl StreamingCredentialsProvider for RotatingPassword {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let mut watch = self.password.clone();
        watch.mark_seen();
        let auth = |username: &str, value: Secret| {
            Ok(BasicAuth::new(
                username.to_owned(),
                value.expose().to_owned(),
            ))
        };
        let first = auth(&self.username, watch.current());
        let rotations = futures_util::stream::unfold(
            (watch, self.username.clone()),
            move |(mut watch, username)| async move {
                let value = watch.changed().await?;
                Some((auth(&username, value), (watch, username)))
            },
        );
        Box::pin(futures_util::stream::once(async move { first }).chain(rotations))
    }
}

/// Validates a Redis URL without echoing it (it may hold a password).
fn parse_url(url: &str) -> Result<ConnectionInfo, String> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(scheme, "redis" | "rediss") || !url.contains("://") {
        return Err(
            "must start with redis:// or rediss:// (TLS, port 6380 on Azure Cache \
                    for Redis)"
                .into(),
        );
    }
    // The parser's message may quote the URL, password included, so it is not passed on.
    let info = ConnectionInfo::from_str(url)
        .map_err(|_| "is not a valid Redis URL (redis://[:password@]host[:port][/db])")?;
    match info.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } if !host.is_empty() => {
            Ok(info)
        }
        _ => Err("must name a host".into()),
    }
}

/// Logs a failed call and classifies it (for `map_err`).
pub fn failed(e: RedisError) -> StoreError {
    let classified = classify(&e);
    tracing::warn!(error = %e, store = "redis", "store call failed");
    classified
}

/// Maps a Redis error to a store error: connection trouble and a server that is loading,
/// failing over or read-only are transient; anything else is a bug or a misconfiguration.
pub fn classify(e: &RedisError) -> StoreError {
    classification(e).caused_by(e.clone())
}

fn classification(e: &RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return StoreError::unavailable("Redis cannot be reached");
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
            StoreError::unavailable("Redis cannot be reached")
        }
        ErrorKind::AuthenticationFailed => StoreError::unavailable("Redis refused the credentials"),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => StoreError::unavailable("Redis is not accepting writes right now"),
        // Out of memory under `maxmemory` with a noeviction policy: back off.
        _ if e.code() == Some("OOM") => StoreError::Throttled {
            retry_after: Duration::from_secs(1),
        },
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::corrupt(format!("unexpected Redis reply: {e}"))
        }
        _ => StoreError::rejected(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn read(
        env: &MapEnv,
    ) -> (
        Option<RedisSettings>,
        Result<(), crate::config::ConfigError>,
    ) {
        let mut r = EnvReader::new(env);
        let settings = RedisSettings::from_env(&mut r);
        (settings, r.finish())
    }

    #[test]
    fn unset_means_embedded() {
        let (settings, result) = read(&MapEnv::new());
        assert!(settings.is_none());
        assert!(result.is_ok());
    }

    #[test]
    fn a_named_environment_scopes_the_keys_unless_a_prefix_is_given() {
        let env = MapEnv::from([
            ("REDIS_URL", "redis://h:6379"),
            ("FABRIKAM_ENVIRONMENT", "alice"),
        ]);
        assert_eq!(read(&env).0.unwrap().key_prefix, "alice:");
        let env = env.with("REDIS_KEY_PREFIX", "mine:");
        assert_eq!(read(&env).0.unwrap().key_prefix, "mine:");
        let env = MapEnv::from([("REDIS_URL", "redis://h:6379")]);
        assert_eq!(read(&env).0.unwrap().key_prefix, "");
    }

    #[test]
    fn plain_and_tls_urls_are_accepted() {
        for (url, server) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "rediss://cache.redis.cache.windows.net:6380/0",
                "rediss://cache.redis.cache.windows.net:6380",
            ),
        ] {
            let (settings, result) = read(&MapEnv::from([("REDIS_URL", url)]));
            assert!(result.is_ok(), "{url}: {result:?}");
            assert_eq!(settings.unwrap().server(), server);
        }
    }

    #[test]
    fn bad_urls_fail_naming_the_variable_without_echoing_a_password() {
        for url in [
            "http://x:6379",
            "localhost:6379",
            "redis://:hunter2@/",
            "redis://:hunter2@h:notaport",
        ] {
            let (_, result) = read(&MapEnv::from([("REDIS_URL", url)]));
            let e = result.expect_err(url);
            assert!(e.names("REDIS_URL"), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_password_file_wins_and_never_shows_in_debug_output() {
        let path = std::env::temp_dir().join(format!("redis-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "from-the-vault\n").unwrap();
        let env = MapEnv::new()
            .with("REDIS_URL", "rediss://:inline@cache:6380")
            .with("REDIS_PASSWORD_FILE", path.display().to_string());
        let (settings, result) = read(&env);
        std::fs::remove_file(&path).unwrap();
        result.unwrap();
        let settings = settings.unwrap();
        assert_eq!(
            settings.info.redis_settings().password(),
            Some("from-the-vault")
        );
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("from-the-vault") && !printed.contains("inline"),
            "{printed}"
        );
    }

    #[test]
    fn errors_are_classified() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(&refused), StoreError::Unavailable { .. }));
        let loading =
            RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(matches!(classify(&loading), StoreError::Unavailable { .. }));
        let wrong_type = RedisError::from((ErrorKind::UnexpectedReturnType, "not a list"));
        assert!(matches!(classify(&wrong_type), StoreError::Corrupt { .. }));
        let bad_command = RedisError::from((ErrorKind::Client, "no such command"));
        assert!(matches!(
            classify(&bad_command),
            StoreError::Rejected { .. }
        ));
    }
}
