//! Which AMQP 1.0 peer to talk to and how to sign in, read from the environment.
//!
//! Three shapes, exactly one of which may be configured:
//! - `SERVICEBUS_CONNECTION_STRING` (or `SERVICEBUS_CONNECTION_STRING_FILE`, a mounted secret):
//!   Azure Service Bus with a SAS key, or the emulator (`UseDevelopmentEmulator=true`);
//! - `SERVICEBUS_NAMESPACE` (`<name>.servicebus.windows.net`): Azure Service Bus signed in
//!   with Entra (workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!   `AZURE_FEDERATED_TOKEN_FILE`, as the webhook injects them);
//! - `AMQP_URL` (`amqp://127.0.0.1:5672`): a generic AMQP 1.0 broker without claims-based
//!   security, such as RabbitMQ's AMQP 1.0 plugin; `AMQP_ADDRESS_PREFIX` maps a queue name
//!   to the broker's address (`/amq/queue/` for RabbitMQ).
//!
//! None of them: the embedded in-process queue.

use std::fmt;
use std::time::Duration;

use azure_core::http::Url;

use crate::config::EnvReader;

/// How this process reaches its queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The in-process queue (local runs and tests).
    Embedded,
    /// An AMQP 1.0 peer.
    Amqp(AmqpSettings),
}

/// One AMQP 1.0 peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `amqps://host` for Service Bus, `amqp://host:port` for the emulator and generic brokers.
    pub url: Url,
    pub auth: Auth,
    /// Prepended to a queue name to form its link address (empty for Service Bus).
    pub address_prefix: String,
    /// How long a generic broker's lock is taken to last (it has none of its own: it holds an
    /// unsettled message until the link settles it or drops). Service Bus tells its own.
    pub lock_duration: Duration,
}

/// How the connection signs in.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No claims-based security: a generic AMQP 1.0 broker.
    None,
    /// A shared access signature made from a key, put on `$cbs` per entity.
    SharedAccessKey { key_name: String, key: String },
    /// An Entra token for `https://servicebus.azure.net/.default`, put on `$cbs` per entity.
    Entra,
}

impl fmt::Debug for Auth {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::SharedAccessKey { key_name, .. } => f
                .debug_struct("SharedAccessKey")
                .field("key_name", key_name)
                .field("key", &"<redacted>")
                .finish(),
            Self::Entra => f.write_str("Entra"),
        }
    }
}

impl AmqpSettings {
    /// The host name the `$cbs` audiences name (`sb://<host>/<queue>`).
    pub fn audience_host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// Whether the peer is Service Bus (claims-based security, `$management`, annotations).
    pub fn is_service_bus(&self) -> bool {
        self.auth != Auth::None
    }
}

impl Transport {
    /// Reads the transport settings, recording every problem in `r`. `lock_duration` is the
    /// host's queue lock duration, used for generic brokers.
    pub fn from_env(r: &mut EnvReader<'_>, lock_duration: Duration) -> Self {
        let connection_string = match r.raw("SERVICEBUS_CONNECTION_STRING") {
            Some(s) => Some(("SERVICEBUS_CONNECTION_STRING", s)),
            None => r
                .secret_file("SERVICEBUS_CONNECTION_STRING_FILE")
                .map(|s| ("SERVICEBUS_CONNECTION_STRING_FILE", s)),
        };
        let namespace = r.raw("SERVICEBUS_NAMESPACE");
        let amqp_url = r.raw("AMQP_URL");
        let given: Vec<&str> = [
            connection_string.as_ref().map(|(name, _)| *name),
            namespace.as_ref().map(|_| "SERVICEBUS_NAMESPACE"),
            amqp_url.as_ref().map(|_| "AMQP_URL"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            r.problem(
                given[1],
                format!(
                    "set only one of {} to choose the queue transport",
                    given.join(", ")
                ),
            );
            return Self::Embedded;
        }
        let prefix = r.string("AMQP_ADDRESS_PREFIX", "");
        let settings = |url, auth| AmqpSettings {
            url,
            auth,
            address_prefix: prefix.clone(),
            lock_duration,
        };
        if let Some((name, s)) = connection_string {
            return match ConnectionString::parse(&s) {
                Ok(cs) => Self::Amqp(settings(cs.url, cs.auth)),
                Err(e) => {
                    r.problem(name, e.to_string());
                    Self::Embedded
                }
            };
        }
        if let Some(ns) = namespace {
            return match Url::parse(&format!("amqps://{ns}")) {
                Ok(url) if url.path() == "/" || url.path().is_empty() => {
                    Self::Amqp(settings(url, Auth::Entra))
                }
                _ => {
                    r.problem(
                        "SERVICEBUS_NAMESPACE",
                        format!(
                            "{ns:?} is not a host name such as fabrikam.servicebus.windows.net"
                        ),
                    );
                    Self::Embedded
                }
            };
        }
        if let Some(raw) = amqp_url {
            return match Url::parse(&raw) {
                Ok(url) if matches!(url.scheme(), "amqp" | "amqps") && url.has_host() => {
                    Self::Amqp(settings(url, Auth::None))
                }
                _ => {
                    r.problem(
                        "AMQP_URL",
                        format!("{raw:?} is not an amqp:// or amqps:// URL"),
                    );
                    Self::Embedded
                }
            };
        }
        Self::Embedded
    }
}

/// A Service Bus connection string, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub url: Url,
    pub auth: Auth,
}

/// Why a connection string was refused; never carries the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("the connection string has no {0}")]
    Missing(&'static str),
    #[error("the connection string's Endpoint {0:?} is not an sb:// URL")]
    BadEndpoint(String),
    #[error("the connection string has a part without '=': {0:?}")]
    Malformed(String),
}

impl ConnectionString {
    /// Parses `Endpoint=sb://<host>/;SharedAccessKeyName=<name>;SharedAccessKey=<key>`, with
    /// `UseDevelopmentEmulator=true` selecting plain AMQP (the emulator) on the endpoint's
    /// port, 5672 when it names none.
    /// Keys are case-insensitive, as in the Azure SDKs.
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        let (mut endpoint, mut key_name, mut key, mut emulator) = (None, None, None, false);
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                // Only the part's name is shown: the part may be the key itself.
                ConnectionStringError::Malformed(part.chars().take(24).collect())
            })?;
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim().to_owned()),
                "sharedaccesskeyname" => key_name = Some(value.trim().to_owned()),
                "sharedaccesskey" => key = Some(value.trim().to_owned()),
                "usedevelopmentemulator" => emulator = value.trim().eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or(ConnectionStringError::Missing("Endpoint"))?;
        let parsed = Url::parse(&endpoint)
            .ok()
            .filter(|u| u.scheme() == "sb" && u.has_host())
            .ok_or_else(|| ConnectionStringError::BadEndpoint(endpoint.clone()))?;
        let host = parsed.host_str().unwrap_or_default();
        let key_name = key_name.ok_or(ConnectionStringError::Missing("SharedAccessKeyName"))?;
        let key = key.ok_or(ConnectionStringError::Missing("SharedAccessKey"))?;
        let url = if emulator {
            format!("amqp://{host}:{}", parsed.port().unwrap_or(5672))
        } else {
            format!("amqps://{host}")
        };
        let url = Url::parse(&url).map_err(|_| ConnectionStringError::BadEndpoint(endpoint))?;
        Ok(Self {
            url,
            auth: Auth::SharedAccessKey { key_name, key },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapEnv;

    const KEY: &str = "c2VjcmV0LWtleS1ub3QtdG8tYmUtbG9nZ2Vk";

    fn read(env: MapEnv) -> Result<Transport, String> {
        let mut r = EnvReader::new(&env);
        let t = Transport::from_env(&mut r, Duration::from_secs(60));
        r.finish().map(|()| t).map_err(|e| e.to_string())
    }

    #[test]
    fn nothing_configured_is_the_embedded_queue() {
        assert_eq!(read(MapEnv::new()), Ok(Transport::Embedded));
    }

    #[test]
    fn a_connection_string_selects_service_bus_over_tls_with_its_key() {
        let cs = format!(
            "Endpoint=sb://fabrikam.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"
        );
        let Ok(Transport::Amqp(s)) = read(MapEnv::new().with("SERVICEBUS_CONNECTION_STRING", cs))
        else {
            panic!("expected AMQP settings");
        };
        assert_eq!(s.url.as_str(), "amqps://fabrikam.servicebus.windows.net");
        assert_eq!(s.audience_host(), "fabrikam.servicebus.windows.net");
        assert!(s.is_service_bus());
        assert_eq!(
            s.auth,
            Auth::SharedAccessKey {
                key_name: "send".into(),
                key: KEY.into()
            }
        );
        assert!(
            !format!("{s:?}").contains(KEY),
            "Debug must not show the key"
        );
    }

    #[test]
    fn the_emulator_form_uses_plain_amqp_on_5672_or_the_endpoints_port() {
        let cs = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";
        let cs = ConnectionString::parse(cs).expect("valid");
        assert_eq!(cs.url.as_str(), "amqp://localhost:5672");
        let cs = "Endpoint=sb://127.0.0.1:5673/;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true";
        let cs = ConnectionString::parse(cs).expect("valid");
        assert_eq!(cs.url.as_str(), "amqp://127.0.0.1:5673");
    }

    #[test]
    fn a_connection_string_missing_a_part_names_it_without_showing_the_key() {
        for (cs, missing) in [
            (
                format!("SharedAccessKeyName=a;SharedAccessKey={KEY}"),
                "Endpoint",
            ),
            (
                format!("Endpoint=sb://x/;SharedAccessKey={KEY}"),
                "SharedAccessKeyName",
            ),
            (
                "Endpoint=sb://x/;SharedAccessKeyName=a".to_owned(),
                "SharedAccessKey",
            ),
        ] {
            let e = read(MapEnv::new().with("SERVICEBUS_CONNECTION_STRING", cs)).unwrap_err();
            assert!(e.contains(&format!("has no {missing}")), "{e}");
            assert!(!e.contains(KEY), "{e}");
        }
        let e =
            ConnectionString::parse("Endpoint=https://x/;SharedAccessKeyName=a;SharedAccessKey=k")
                .unwrap_err();
        assert!(matches!(e, ConnectionStringError::BadEndpoint(_)));
    }

    #[test]
    fn a_namespace_selects_entra_sign_in() {
        let Ok(Transport::Amqp(s)) =
            read(MapEnv::new().with("SERVICEBUS_NAMESPACE", "fabrikam.servicebus.windows.net"))
        else {
            panic!("expected AMQP settings");
        };
        assert_eq!(s.auth, Auth::Entra);
        assert_eq!(s.url.scheme(), "amqps");
        let e = read(MapEnv::new().with("SERVICEBUS_NAMESPACE", "fabrikam/queue")).unwrap_err();
        assert!(e.contains("SERVICEBUS_NAMESPACE"), "{e}");
    }

    #[test]
    fn a_generic_broker_has_no_claims_based_security_and_its_own_prefix() {
        let env = MapEnv::new()
            .with("AMQP_URL", "amqp://127.0.0.1:5672")
            .with("AMQP_ADDRESS_PREFIX", "/amq/queue/");
        let Ok(Transport::Amqp(s)) = read(env) else {
            panic!("expected AMQP settings");
        };
        assert!(!s.is_service_bus());
        assert_eq!(s.address_prefix, "/amq/queue/");
        assert_eq!(s.lock_duration, Duration::from_secs(60));
        let e = read(MapEnv::new().with("AMQP_URL", "http://x")).unwrap_err();
        assert!(e.contains("AMQP_URL"), "{e}");
    }

    #[test]
    fn two_transports_at_once_are_refused_naming_both() {
        let env = MapEnv::new()
            .with("AMQP_URL", "amqp://127.0.0.1")
            .with("SERVICEBUS_NAMESPACE", "x.servicebus.windows.net");
        let e = read(env).unwrap_err();
        assert!(
            e.contains("SERVICEBUS_NAMESPACE") && e.contains("AMQP_URL"),
            "{e}"
        );
    }
}
