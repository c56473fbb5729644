//! Connecting to MongoDB (Azure Cosmos DB for MongoDB in production) and classifying its
//! errors, for the functions whose store is MongoDB.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use mongodb::bson::Document;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, ConnectionString, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::StoreError;
use crate::config::EnvReader;
use crate::secrets::SecretWatch;
use crate::start_error::StartError;

/// The Key Vault object holding the Cosmos DB (MongoDB) connection string, for the
/// functions whose store is MongoDB (`infra/` writes it to each one's vault).
pub const CONNECTION_STRING_SECRET: &str = "MongoDb-ConnectionString";

/// Where the MongoDB server is and which database the function owns.
#[derive(Clone)]
pub struct MongoSettings {
    /// From `MONGODB_URI` or `MONGODB_URI_FILE`; `None` when neither is set (the
    /// connection string may then come from a declared secret).
    uri: Option<ConnectionString>,
    pub database: String,
    /// Longest wait for a usable server before a call fails as unavailable.
    pub timeout: Duration,
}

impl fmt::Debug for MongoSettings {
    // Written by hand: the connection string carries the account key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSettings")
            .field("hosts", &self.uri.as_ref().map(hosts))
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl MongoSettings {
    /// No server: the embedded store, unless a secret brings a connection string.
    pub fn embedded(database: &str) -> Self {
        Self {
            uri: None,
            database: database.to_owned(),
            timeout: Duration::from_secs(3),
        }
    }

    /// Reads `MONGODB_URI` or `MONGODB_URI_FILE` (a file holding the connection string,
    /// which carries the account key on Cosmos DB), the function's database name from
    /// `database_var` (default `default_database`, or `<default_database>-<name>` in the
    /// named environment [`crate::config::ENVIRONMENT_NAME`]) and `MONGODB_TIMEOUT_MS`
    /// (default 3000).
    pub fn from_env(r: &mut EnvReader<'_>, database_var: &str, default_database: &str) -> Self {
        let inline = r.raw("MONGODB_URI");
        let from_file = r.secret_file("MONGODB_URI_FILE");
        let default_database = match r.raw(crate::config::ENVIRONMENT_NAME) {
            Some(name) => format!("{default_database}-{name}"),
            None => default_database.to_owned(),
        };
        let database = r.string(database_var, &default_database);
        if !valid_database_name(&database) {
            r.problem(
                database_var,
                "must be 1 to 63 characters without spaces, dots, slashes or quotes",
            );
        }
        let timeout = r.millis(
            "MONGODB_TIMEOUT_MS",
            Duration::from_secs(3),
            Duration::from_millis(100),
            Duration::from_secs(120),
        );
        let uri = match (inline, from_file) {
            (Some(_), Some(_)) => {
                r.problem(
                    "MONGODB_URI",
                    "set either MONGODB_URI or MONGODB_URI_FILE, not both",
                );
                None
            }
            (Some(uri), None) => parse_uri(&uri)
                .map_err(|why| r.problem("MONGODB_URI", why))
                .ok(),
            (None, Some(uri)) => parse_uri(&uri)
                .map_err(|why| r.problem("MONGODB_URI_FILE", why))
                .ok(),
            (None, None) => None,
        };
        Self {
            uri,
            database,
            timeout,
        }
    }

    /// Whether the environment names a server (`MONGODB_URI` or `MONGODB_URI_FILE`).
    pub fn has_uri(&self) -> bool {
        self.uri.is_some()
    }

    /// Connects and runs the store's start-up (indexes, seeding) on the function's
    /// database; `Ok(None)` when no server is configured (the embedded store is used).
    ///
    /// The connection string comes from the environment or from `secret` (the declared
    /// secret, such as `MongoDb-ConnectionString`), not both. With the secret, every
    /// rotation connects a new client with the new string and later calls use it; calls
    /// already running finish on the old one.
    pub async fn open<T>(
        &self,
        app_name: &str,
        secret: Option<SecretWatch>,
        start: impl AsyncFnOnce(MongoDatabase) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StartError> {
        let uri = match (&self.uri, &secret) {
            (None, None) => return Ok(None),
            (Some(_), Some(s)) => {
                return Err(StartError::Conflict(format!(
                    "MONGODB_URI or MONGODB_URI_FILE is set and the secret {} provides the \
                     connection string too: keep one",
                    s.name()
                )));
            }
            (Some(uri), None) => uri.clone(),
            (None, Some(s)) => {
                parse_uri(s.current().expose()).map_err(|why| StartError::Store {
                    store: format!("MongoDB (the secret {})", s.name()),
                    source: StoreError::rejected(why),
                })?
            }
        };
        let servers = hosts(&uri);
        tracing::info!(hosts = %servers, database = %self.database, function = app_name, "store: MongoDB");
        let opened = async {
            let database = MongoDatabase::new(self.connect(uri, app_name).await?);
            if let Some(secret) = secret {
                tokio::spawn(
                    self.clone()
                        .follow(database.clone(), secret, app_name.to_owned()),
                );
            }
            start(database).await
        };
        opened.await.map(Some).map_err(|source| StartError::Store {
            store: format!("MongoDB ({servers})"),
            source,
        })
    }

    /// Reconnects `database` with each new value of `secret`, until the secret source stops.
    async fn follow(self, database: MongoDatabase, mut secret: SecretWatch, app_name: String) {
        while let Some(value) = secret.changed().await {
            let connected = match parse_uri(value.expose()) {
                Ok(uri) => self.connect(uri, &app_name).await,
                Err(why) => Err(StoreError::rejected(why)),
            };
            match connected {
                Ok(db) => {
                    database.replace(db);
                    tracing::info!(function = %app_name, secret = secret.name(), "MongoDB: new calls use the rotated connection string");
                }
                Err(e) => {
                    tracing::warn!(function = %app_name, secret = secret.name(), error = %e, "MongoDB: the rotated connection string is unusable; keeping the current client");
                }
            }
        }
    }

    /// The function's database on `uri`. The driver connects in the background and
    /// reconnects after failures; calls made while no server is reachable fail after
    /// `timeout`.
    async fn connect(&self, uri: ConnectionString, app_name: &str) -> Result<Database, StoreError> {
        crate::tls::install_provider();
        let mut options = ClientOptions::parse(uri).await.map_err(|e| classify(&e))?;
        without_retryable_writes_unless_asked(&mut options);
        options.app_name = Some(app_name.to_owned());
        options.server_selection_timeout = Some(self.timeout);
        options.connect_timeout = Some(self.timeout);
        let client = Client::with_options(options).map_err(|e| classify(&e))?;
        let database = client.database(&self.database);
        // The newest client per function and database: a rotation's new client replaces
        // the old one here, which goes once its last call has.
        crate::sync::lock(&CLIENTS).insert(format!("{app_name}/{}", self.database), client);
        Ok(database)
    }
}

/// Retryable writes off unless the connection string turns them on (`retryWrites=true`).
/// Cosmos DB for MongoDB (RU), the production target, does not support them (its connection
/// strings say `retrywrites=false`); on a server that does, each write carries a session and a
/// transaction number the server must keep a record of, which cost a MongoDB-compatible server
/// here 3-14 ms per write. The writes are idempotent (upserts by id, guarded increments), and
/// a failed one is retried whole by the caller or the message's redelivery.
fn without_retryable_writes_unless_asked(options: &mut ClientOptions) {
    options.retry_writes.get_or_insert(false);
}

/// The current client of each function and database this process connected, for
/// [`shutdown`].
static CLIENTS: std::sync::Mutex<std::collections::BTreeMap<String, Client>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Shuts down every MongoDB client this process connected, waiting for their operations
/// to end and closing their connections. The host calls it once its functions have
/// stopped, before the async runtime goes: a client whose pool worker is dropped with the
/// runtime while a request is still in flight panics inside the driver (an `unwrap` on a
/// closed channel in its connection requester).
pub async fn shutdown() {
    let clients = std::mem::take(&mut *crate::sync::lock(&CLIENTS));
    for client in clients.into_values() {
        client.shutdown().immediate(true).await;
    }
}

/// The function's database, on whichever client the current connection string made.
#[derive(Debug, Clone)]
pub struct MongoDatabase {
    current: Arc<RwLock<Database>>,
}

impl MongoDatabase {
    pub fn new(database: Database) -> Self {
        Self {
            current: Arc::new(RwLock::new(database)),
        }
    }

    /// A collection on the current client (cheap: handles share the client).
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .collection(name)
    }

    fn replace(&self, database: Database) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = database;
    }
}

/// Parses a connection string without echoing it: the parser's message may quote the
/// string, key included.
fn parse_uri(raw: &str) -> Result<ConnectionString, String> {
    ConnectionString::parse(raw).map_err(|_| {
        "is not a MongoDB connection string (mongodb://host:port/?options or \
         mongodb+srv://host/?options)"
            .to_owned()
    })
}

/// The hosts, for logs (never the credentials).
fn hosts(uri: &ConnectionString) -> String {
    match &uri.host_info {
        mongodb::options::HostInfo::HostIdentifiers(hosts) => hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        mongodb::options::HostInfo::DnsRecord(name) => format!("srv:{name}"),
        _ => "unknown".into(),
    }
}

/// Creates the index named `name` on `keys`; a no-op when it exists, so every replica may
/// run it at start-up.
pub async fn ensure_index<T: Send + Sync>(
    collection: &Collection<T>,
    keys: Document,
    name: &str,
) -> Result<(), StoreError> {
    let index = IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).build())
        .build();
    collection.create_index(index).await.map_err(failed)?;
    Ok(())
}

fn valid_database_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name
            .chars()
            .any(|c| matches!(c, ' ' | '.' | '/' | '\\' | '"' | '$' | '\0'))
}

/// Logs a failed call and classifies it (for `map_err`).
pub fn failed(e: Error) -> StoreError {
    let classified = classify(&e);
    tracing::warn!(error = %e, store = "mongodb", "store call failed");
    classified
}

/// Maps a driver error to a store error: duplicate keys are conflicts, Cosmos DB's request
/// rate limit (code 16500, HTTP 429) is throttling with its suggested wait, lost servers
/// and elections are transient, and the rest is a bug or a misconfiguration.
pub fn classify(e: &Error) -> StoreError {
    classification(e).caused_by(e.clone())
}

fn classification(e: &Error) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => by_code(c.code, &c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => by_code(w.code, &w.message),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => by_code(w.code, &w.message),
        ErrorKind::InsertMany(m) => match m.write_errors.as_ref().and_then(|w| w.first()) {
            Some(w) => by_code(w.code, &w.message),
            None => StoreError::unavailable("the write was not acknowledged"),
        },
        ErrorKind::BsonDeserialization(d) => StoreError::corrupt(d.to_string()),
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => StoreError::unavailable("MongoDB cannot be reached"),
        ErrorKind::Authentication { .. } => {
            StoreError::unavailable("MongoDB refused the credentials")
        }
        _ => StoreError::rejected(e.to_string()),
    }
}

/// Server codes that say "try again": host and network trouble, elections, shutdown,
/// a timed-out operation.
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

fn by_code(code: i32, message: &str) -> StoreError {
    match code {
        11000..=11002 => StoreError::conflict("a record with this key exists"),
        16500 | 429 => StoreError::Throttled {
            retry_after: retry_after(message).unwrap_or(Duration::from_secs(1)),
        },
        c if TRANSIENT_CODES.contains(&c) => {
            StoreError::unavailable(format!("MongoDB is not serving (code {c})"))
        }
        c => StoreError::rejected(format!("code {c}: {message}")),
    }
}

/// Cosmos DB puts its suggested wait in the message: `RetryAfterMs=123`.
fn retry_after(message: &str) -> Option<Duration> {
    let (_, rest) = message.split_once("RetryAfterMs=")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn read(env: &MapEnv) -> (MongoSettings, Result<(), crate::config::ConfigError>) {
        let mut r = EnvReader::new(env);
        let settings = MongoSettings::from_env(&mut r, "PACKAGE_DATABASE", "package");
        (settings, r.finish())
    }

    #[tokio::test]
    async fn retryable_writes_are_off_unless_the_connection_string_asks() {
        for (uri, expected) in [
            ("mongodb://127.0.0.1:27017/", Some(false)),
            ("mongodb://127.0.0.1:27017/?retryWrites=true", Some(true)),
            ("mongodb://127.0.0.1:27017/?retrywrites=false", Some(false)),
        ] {
            let mut options = ClientOptions::parse(uri).await.unwrap();
            without_retryable_writes_unless_asked(&mut options);
            assert_eq!(options.retry_writes, expected, "{uri}");
        }
    }

    #[test]
    fn unset_means_embedded() {
        let (settings, result) = read(&MapEnv::new());
        assert!(!settings.has_uri());
        result.unwrap();
    }

    #[test]
    fn a_uri_and_a_database_are_read() {
        let env = MapEnv::from([
            (
                "MONGODB_URI",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            ),
            ("PACKAGE_DATABASE", "pkg_test"),
        ]);
        let (settings, result) = read(&env);
        result.unwrap();
        assert_eq!(settings.database, "pkg_test");
        assert_eq!(settings.uri.as_ref().map(hosts).unwrap(), "127.0.0.1:27017");
    }

    #[test]
    fn a_named_environment_gets_its_own_database_unless_one_is_named() {
        let env = MapEnv::from([("FABRIKAM_ENVIRONMENT", "alice")]);
        assert_eq!(read(&env).0.database, "package-alice");
        let env = env.with("PACKAGE_DATABASE", "pkg");
        assert_eq!(read(&env).0.database, "pkg");
        assert_eq!(read(&MapEnv::new()).0.database, "package");
    }

    #[test]
    fn bad_settings_fail_naming_each_variable_without_echoing_the_key() {
        let env = MapEnv::from([
            ("MONGODB_URI", "mongo://user:hunter2@host"),
            ("PACKAGE_DATABASE", "has.dot"),
        ]);
        let (_, result) = read(&env);
        let e = result.unwrap_err();
        assert!(e.names("MONGODB_URI") && e.names("PACKAGE_DATABASE"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn debug_output_hides_the_credentials() {
        let env = MapEnv::from([("MONGODB_URI", "mongodb://user:hunter2@db:10255/?ssl=true")]);
        let (settings, _) = read(&env);
        let printed = format!("{settings:?}");
        assert!(
            printed.contains("db:10255") && !printed.contains("hunter2"),
            "{printed}"
        );
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            by_code(11000, "E11000 duplicate key"),
            StoreError::Conflict { .. }
        ));
        assert_eq!(
            by_code(16500, "Request rate is large. RetryAfterMs=250, Details"),
            StoreError::Throttled {
                retry_after: Duration::from_millis(250)
            }
        );
        assert_eq!(
            by_code(16500, "Request rate is large"),
            StoreError::Throttled {
                retry_after: Duration::from_secs(1)
            }
        );
        assert!(matches!(
            by_code(189, "stepped down"),
            StoreError::Unavailable { .. }
        ));
        assert!(matches!(
            by_code(2, "bad value"),
            StoreError::Rejected { .. }
        ));
    }
}
