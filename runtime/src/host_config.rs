//! [`HostConfig`]: the settings every function shares, read and validated before any port
//! is bound, and the one place the queue broker is chosen from them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::EnvReader;
use crate::dispatch::DispatchOptions;
use crate::dispatch::report::ReportOptions;
use crate::queue::amqp::{AmqpBroker, Transport};
use crate::queue::embedded::EmbeddedBroker;
use crate::queue::{Broker, QueueSettings};
use crate::secrets::SecretsSettings;
use crate::start_error::StartError;
use crate::telemetry::{LogFormat, OtlpSettings};

// The names are the deployment contract's ([`crate::contract::env`]), which the manifests
// and the process runners write.
pub use crate::contract::env::{
    HOST, HTTP_BODY_LIMIT_BYTES, LOG_FORMAT, PORT, QUEUE_HANDLER_TIMEOUT_SECONDS,
    QUEUE_LOCK_DURATION_SECONDS, QUEUE_MAX_CONCURRENCY, QUEUE_MAX_DELIVERY_COUNT, QUEUE_PREFETCH,
    QUEUE_RETRY_DELAY_MAX_SECONDS, QUEUE_RETRY_DELAY_MS, SHUTDOWN_GRACE_SECONDS,
};
const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Settings every function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub body_limit: usize,
    pub shutdown_grace: Duration,
    pub dispatch: DispatchOptions,
    /// Settings of embedded queues (lock duration, max delivery count...).
    pub queue: QueueSettings,
    /// Where the queues live: embedded, or an AMQP 1.0 peer (Service Bus, RabbitMQ).
    pub transport: Transport,
    pub log_format: LogFormat,
    /// Trace export over OTLP; `None` (off) unless an endpoint is configured.
    pub otlp: Option<OtlpSettings>,
    /// Where declared secrets come from (none locally).
    pub secrets: SecretsSettings,
    /// The scaler a queue trigger reports its messages in flight to (`SCALER_URL`).
    pub scaler_reports: Option<ReportOptions>,
}

impl HostConfig {
    /// Reads `HOST`, `PORT`, `HTTP_BODY_LIMIT_BYTES`, `SHUTDOWN_GRACE_SECONDS`, `QUEUE_*`,
    /// `LOG_FORMAT`, `SCALER_URL` and `POD_NAME` ([`ReportOptions::from_env`]), the `OTEL_*` export variables ([`OtlpSettings::from_env`]), the
    /// transport's variables ([`Transport::from_env`]) and the secret
    /// source's ([`SecretsSettings::from_env`]).
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let secs = Duration::from_secs;
        let grace = r.seconds(
            SHUTDOWN_GRACE_SECONDS,
            crate::contract::DRAIN_GRACE,
            secs(0),
            secs(600),
        );
        let defaults = QueueSettings::default();
        let d = DispatchOptions::default();
        let queue = QueueSettings {
            lock_duration: r.seconds(
                QUEUE_LOCK_DURATION_SECONDS,
                defaults.lock_duration,
                secs(5),
                secs(300),
            ),
            max_delivery_count: r.number_in(
                QUEUE_MAX_DELIVERY_COUNT,
                defaults.max_delivery_count,
                1,
                2000,
            ),
            ..defaults
        };
        Self {
            bind: r.parse(HOST, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port: r.parse(PORT, crate::contract::PORT),
            body_limit: r.number_in(
                HTTP_BODY_LIMIT_BYTES,
                DEFAULT_BODY_LIMIT,
                1024,
                64 * 1024 * 1024,
            ),
            shutdown_grace: grace,
            dispatch: DispatchOptions {
                max_concurrency: r.number_in(QUEUE_MAX_CONCURRENCY, d.max_concurrency, 1, 10_000),
                prefetch: r.number_in(QUEUE_PREFETCH, d.prefetch, 0, 10_000),
                handler_timeout: r.seconds(
                    QUEUE_HANDLER_TIMEOUT_SECONDS,
                    d.handler_timeout,
                    secs(1),
                    secs(3600),
                ),
                receive_wait: d.receive_wait,
                drain_grace: grace,
                redelivery_delay: crate::client::Backoff {
                    base: r.millis(
                        QUEUE_RETRY_DELAY_MS,
                        d.redelivery_delay.base,
                        Duration::ZERO,
                        secs(60),
                    ),
                    max: r.seconds(
                        QUEUE_RETRY_DELAY_MAX_SECONDS,
                        d.redelivery_delay.max,
                        secs(1),
                        secs(600),
                    ),
                },
            },
            transport: Transport::from_env(r, queue.lock_duration),
            queue,
            log_format: match r.choice(LOG_FORMAT, "auto", &["auto", "json", "text"]) {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => LogFormat::Auto,
            },
            otlp: OtlpSettings::from_env(r),
            secrets: SecretsSettings::from_env(r),
            scaler_reports: ReportOptions::from_env(r),
        }
    }
}

/// The broker the functions of one process share.
#[derive(Debug, Clone)]
pub struct SharedBroker {
    pub broker: Arc<dyn Broker>,
    /// The same broker when it is the embedded one (tests inspect its queues).
    pub embedded: Option<Arc<EmbeddedBroker>>,
}

impl HostConfig {
    /// The broker the transport names. An AMQP broker connects on first use, so a broker
    /// that is down delays messages (the pump retries) rather than the start.
    pub fn broker(&self) -> Result<SharedBroker, StartError> {
        match &self.transport {
            Transport::Embedded => {
                let embedded = Arc::new(EmbeddedBroker::new(self.queue));
                Ok(SharedBroker {
                    broker: embedded.clone(),
                    embedded: Some(embedded),
                })
            }
            Transport::Amqp(settings) => {
                let credit = self.dispatch.max_concurrency + self.dispatch.prefetch;
                let broker = AmqpBroker::new(
                    settings.clone(),
                    u32::try_from(credit).unwrap_or(u32::MAX),
                    self.queue.max_message_bytes,
                    self.queue.max_delivery_count,
                )
                .map_err(|source| StartError::Queue {
                    queue: "*".to_owned(),
                    source,
                })?;
                Ok(SharedBroker {
                    broker: Arc::new(broker),
                    embedded: None,
                })
            }
        }
    }
}
