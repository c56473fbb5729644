//! Functions and how the host runs them.
//!
//! A function crate implements [`Function`]: it names itself, reads its typed config, and
//! builds an [`App`] (HTTP routes and/or a queue trigger) from the [`Bindings`] the host
//! hands it (queues, downstream clients, metrics). Its `main` is one line: [`run`].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::client::{Downstream, DownstreamPolicy};
use crate::config::{ConfigError, EnvReader, ProcessEnv};
use crate::dispatch::{DispatchOptions, QueueHandler, run_pump};
use crate::http::{HostContext, Routes, host_service, serve};
use crate::lifecycle::{Readiness, Shutdown, shutdown_on_signals};
use crate::queue::amqp::{AmqpBroker, Transport};
use crate::queue::embedded::EmbeddedBroker;
use crate::queue::{Broker, QueueError, QueueReceiver, QueueSender, QueueSettings};
use crate::secrets::{SecretSource, SecretWatch, Secrets, SecretsError, SecretsSettings};
use crate::telemetry::startup::{Phase, mark_process_start};
use crate::telemetry::{LogFormat, Metrics, OtlpSettings, init_telemetry};

/// A function the host can run.
pub trait Function: 'static {
    /// The function's name: metrics label, log field, manifest name.
    const NAME: &'static str;

    /// The secrets the function needs, by Key Vault object name (the file name in the CSI
    /// mount, such as `Redis-AccessKey`). With a secret source configured, the host reads
    /// them all before [`Function::build`] and start-up fails naming every missing one;
    /// without one (local runs), functions use their own variables instead.
    const SECRETS: &'static [&'static str] = &[];

    /// What the function needs from the cluster: triggers, outputs, secrets (the same
    /// names as [`Function::SECRETS`]), resources and scaling. `fabrikam manifests` renders
    /// it into the Kubernetes and KEDA objects under `keda/`.
    fn deployment() -> crate::deploy::Deployment;

    /// The function's own configuration.
    type Config: Send + 'static;

    /// Reads the configuration, recording every problem in `env` instead of stopping.
    fn config(env: &mut EnvReader<'_>) -> Self::Config;

    /// Builds the function's triggers from its config and the host's bindings.
    fn build(
        config: Self::Config,
        bindings: &Bindings,
    ) -> impl Future<Output = Result<App, StartError>> + Send;
}

/// What a function serves: HTTP routes, a queue trigger, or both.
#[derive(Default)]
pub struct App {
    routes: Routes,
    queue_trigger: Option<QueueTrigger>,
}

struct QueueTrigger {
    queue: String,
    handler: Arc<dyn QueueHandler>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.routes.templates())
            .field(
                "queue_trigger",
                &self.queue_trigger.as_ref().map(|q| &q.queue),
            )
            .finish()
    }
}

impl App {
    /// An HTTP function.
    pub fn http(routes: Routes) -> Self {
        Self {
            routes,
            queue_trigger: None,
        }
    }

    /// A queue-triggered function (it still serves the health and metrics endpoints).
    pub fn queue(queue: &str, handler: impl QueueHandler) -> Self {
        Self {
            routes: Routes::new(),
            queue_trigger: Some(QueueTrigger {
                queue: queue.to_owned(),
                handler: Arc::new(handler),
            }),
        }
    }

    pub fn route_templates(&self) -> &[String] {
        self.routes.templates()
    }

    pub fn queue_name(&self) -> Option<&str> {
        self.queue_trigger.as_ref().map(|q| q.queue.as_str())
    }

    /// The routes, for tests that call them without a socket.
    pub fn into_routes(self) -> Routes {
        self.routes
    }
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("queue {queue}: {source}")]
    Queue { queue: String, source: QueueError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Other(String),
}

/// What the host gives a function to build with.
#[derive(Debug, Clone)]
pub struct Bindings {
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    secrets: Option<Arc<Secrets>>,
}

impl Bindings {
    /// Bindings without a secret source: [`Bindings::secret`] is always `None`.
    pub fn new(broker: Arc<dyn Broker>, metrics: Metrics) -> Self {
        Self {
            broker,
            metrics,
            secrets: None,
        }
    }

    /// Bindings whose secrets come from `secrets`.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The declared secret `name`, following its rotations; `None` when no secret source
    /// is configured. Asking for a secret the function did not declare in
    /// [`Function::SECRETS`] is a start error, so a declaration cannot fall behind the code.
    pub fn secret(&self, name: &str) -> Result<Option<SecretWatch>, StartError> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        secrets.watch(name).map(Some).ok_or_else(|| {
            StartError::Other(format!(
                "the secret {name} is used but not declared in Function::SECRETS"
            ))
        })
    }

    /// An output queue.
    pub fn queue_sender(&self, queue: &str) -> Result<Arc<dyn QueueSender>, StartError> {
        self.broker
            .sender(queue)
            .map_err(|source| StartError::Queue {
                queue: queue.to_owned(),
                source,
            })
    }

    /// A client for another function.
    pub fn downstream(&self, name: &str, base_url: &str, policy: DownstreamPolicy) -> Downstream {
        Downstream::new(name, base_url, policy, self.metrics.clone())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn queue_receiver(&self, queue: &str) -> Result<Arc<dyn QueueReceiver>, StartError> {
        self.broker
            .receiver(queue)
            .map_err(|source| StartError::Queue {
                queue: queue.to_owned(),
                source,
            })
    }
}

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
}

impl HostConfig {
    /// Reads `HOST`, `PORT`, `HTTP_BODY_LIMIT_BYTES`, `SHUTDOWN_GRACE_SECONDS`, `QUEUE_*`,
    /// `LOG_FORMAT`, the `OTEL_*` export variables ([`OtlpSettings::from_env`]), the
    /// transport's variables ([`Transport::from_env`]) and the secret
    /// source's ([`SecretsSettings::from_env`]).
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let secs = Duration::from_secs;
        let grace = r.seconds("SHUTDOWN_GRACE_SECONDS", secs(20), secs(0), secs(600));
        let defaults = QueueSettings::default();
        let d = DispatchOptions::default();
        let queue = QueueSettings {
            lock_duration: r.seconds(
                "QUEUE_LOCK_DURATION_SECONDS",
                defaults.lock_duration,
                secs(5),
                secs(300),
            ),
            max_delivery_count: r.number_in(
                "QUEUE_MAX_DELIVERY_COUNT",
                defaults.max_delivery_count,
                1,
                2000,
            ),
            ..defaults
        };
        Self {
            bind: r.parse("HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port: r.parse("PORT", 8080),
            body_limit: r.number_in("HTTP_BODY_LIMIT_BYTES", 64 * 1024, 1024, 64 * 1024 * 1024),
            shutdown_grace: grace,
            dispatch: DispatchOptions {
                max_concurrency: r.number_in("QUEUE_MAX_CONCURRENCY", d.max_concurrency, 1, 10_000),
                prefetch: r.number_in("QUEUE_PREFETCH", d.prefetch, 0, 10_000),
                handler_timeout: r.seconds(
                    "QUEUE_HANDLER_TIMEOUT_SECONDS",
                    d.handler_timeout,
                    secs(1),
                    secs(3600),
                ),
                receive_wait: d.receive_wait,
                drain_grace: grace,
                redelivery_delay: crate::client::Backoff {
                    base: r.millis(
                        "QUEUE_RETRY_DELAY_MS",
                        d.redelivery_delay.base,
                        Duration::ZERO,
                        secs(60),
                    ),
                    max: r.seconds(
                        "QUEUE_RETRY_DELAY_MAX_SECONDS",
                        d.redelivery_delay.max,
                        secs(1),
                        secs(600),
                    ),
                },
            },
            transport: Transport::from_env(r, queue.lock_duration),
            queue,
            log_format: match r.choice("LOG_FORMAT", "auto", &["auto", "json", "text"]) {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => LogFormat::Auto,
            },
            otlp: OtlpSettings::from_env(r),
            secrets: SecretsSettings::from_env(r),
        }
    }
}

impl HostConfig {
    /// The broker the transport names. An AMQP broker connects on first use, so a broker
    /// that is down delays messages (the pump retries) rather than the start.
    pub fn broker(&self) -> Result<Arc<dyn Broker>, StartError> {
        match &self.transport {
            Transport::Embedded => Ok(Arc::new(EmbeddedBroker::new(self.queue))),
            Transport::Amqp(settings) => {
                let credit = self.dispatch.max_concurrency + self.dispatch.prefetch;
                let broker = AmqpBroker::new(
                    settings.clone(),
                    u32::try_from(credit).unwrap_or(u32::MAX),
                    self.queue.max_message_bytes,
                )
                .map_err(|source| StartError::Queue {
                    queue: "*".to_owned(),
                    source,
                })?;
                Ok(Arc::new(broker))
            }
        }
    }
}

/// A function running in this process.
#[derive(Debug)]
pub struct RunningFunction {
    name: &'static str,
    addr: SocketAddr,
    readiness: Readiness,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningFunction {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Resolves when every trigger has stopped (after shutdown and drain).
    pub async fn stopped(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                error!(function = self.name, error = %e, "a trigger task failed");
            }
        }
    }
}

/// Starts `F` on `listener`: builds it, serves HTTP, runs its queue trigger. Every trigger
/// stops when `shutdown` trips, after draining.
pub async fn start<F: Function>(
    host: &HostConfig,
    config: F::Config,
    listener: TcpListener,
    broker: Arc<dyn Broker>,
    shutdown: Shutdown,
) -> Result<RunningFunction, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Other(source.to_string()))?;
    let metrics = Metrics::new(F::NAME)?;
    metrics.record_phase(Phase::ConfigLoaded);
    let secrets = load_secrets::<F>(host).await?;
    metrics.record_phase(Phase::SecretsLoaded);
    let mut bindings = Bindings::new(broker, metrics.clone());
    if let Some(secrets) = &secrets {
        bindings = bindings.with_secrets(secrets.clone());
    }
    let app = F::build(config, &bindings).await?;
    metrics.record_phase(Phase::AppBuilt);
    let queue = match app.queue_trigger {
        Some(t) => Some((bindings.queue_receiver(&t.queue)?, t)),
        None => None,
    };
    let mut tasks = Vec::new();
    // Rotations are followed only once everything that can fail has, so a failed start leaves
    // nothing running.
    if let Some(secrets) = secrets {
        tasks.push(tokio::spawn({
            let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
            async move { secrets.follow_rotations(metrics, shutdown).await }
        }));
    }
    let readiness = Readiness::new(1 + usize::from(queue.is_some()));

    tasks.push(tokio::spawn({
        let readiness = readiness.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.wait().await;
            readiness.set_draining();
        }
    }));

    let service = host_service(
        app.routes,
        HostContext {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            body_limit: host.body_limit,
        },
    );
    let grace = host.shutdown_grace;
    tasks.push(tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(e) = serve(listener, service, shutdown, grace).await {
                error!(function = F::NAME, error = %e, "HTTP server failed");
            }
        }
    }));
    // Readiness plus the phase metric, for each trigger as it becomes ready.
    let trigger_ready = {
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        move || {
            if readiness.trigger_ready() {
                metrics.record_phase(Phase::TriggersReady);
            }
        }
    };
    trigger_ready();
    info!(function = F::NAME, %addr, "HTTP trigger listening");

    if let Some((receiver, trigger)) = queue {
        let options = host.dispatch;
        let queue_name = trigger.queue.clone();
        tasks.push(tokio::spawn(async move {
            run_pump(
                receiver,
                trigger.handler,
                options,
                metrics,
                shutdown,
                move || {
                    info!(function = F::NAME, queue = %queue_name, "queue trigger receiving");
                    trigger_ready();
                },
            )
            .await;
        }));
    }

    Ok(RunningFunction {
        name: F::NAME,
        addr,
        readiness,
        tasks,
    })
}

/// Reads `F`'s declared secrets from the configured source; `None` without one.
async fn load_secrets<F: Function>(host: &HostConfig) -> Result<Option<Arc<Secrets>>, StartError> {
    let Some(settings) = &host.secrets.source else {
        return Ok(None);
    };
    let source = SecretSource::open(settings).map_err(StartError::Other)?;
    let secrets = Secrets::load(source, F::SECRETS, host.secrets.reload_every).await?;
    info!(function = F::NAME, secrets = ?secrets.names().collect::<Vec<_>>(), "secrets loaded");
    Ok(Some(Arc::new(secrets)))
}

/// Runs `F` as this process's only function: reads and validates all config before binding
/// a port, serves until SIGTERM/SIGINT, drains, and exits 0. Config problems exit 2, each
/// naming its variable.
pub fn run<F: Function>() -> ExitCode {
    mark_process_start();
    let env = ProcessEnv;
    let mut reader = EnvReader::new(&env);
    let host = HostConfig::from_env(&mut reader);
    let config = F::config(&mut reader);
    if let Err(e) = reader.finish() {
        eprintln!("{}: {e}", F::NAME);
        return ExitCode::from(2);
    }
    // Declared before the async runtime so it is dropped after it: the spans of the drain
    // are exported too.
    let _telemetry = init_telemetry(host.log_format, host.otlp.as_ref(), F::NAME);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", F::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::new(host.bind, host.port);
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(source) => {
                error!(function = F::NAME, error = %StartError::Bind { addr, source }, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        let broker = match host.broker() {
            Ok(b) => b,
            Err(e) => {
                error!(function = F::NAME, error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        match start::<F>(&host, config, listener, broker, shutdown).await {
            Ok(running) => {
                running.stopped().await;
                info!(function = F::NAME, "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!(function = F::NAME, error = %e, "cannot start");
                ExitCode::FAILURE
            }
        }
    })
}
