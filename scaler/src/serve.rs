//! Starting the scaler: its settings (flags or environment), the broker it reads, the
//! pollers, the replicas' expiry, and its two listeners (gRPC for KEDA, HTTP for the
//! replicas and the kubelet), all stopped by one [`Shutdown`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use runtime::config::{EnvReader, ProcessEnv};
use runtime::lifecycle::Shutdown;
use runtime::queue::amqp::Transport;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backlog::{Backlog, PollOptions, Poller, rabbitmq, servicebus};
use crate::grpc::ScalerService;
use crate::metrics::ScalerMetrics;
use crate::proto::external_scaler_server::ExternalScalerServer;
use crate::queues::{Freshness, Queues};

/// The scaler's settings. The broker is chosen as the functions choose theirs
/// (`SERVICEBUS_NAMESPACE` or `SERVICEBUS_CONNECTION_STRING[_FILE]`), or RabbitMQ's
/// management API for local runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ScalerArgs {
    /// The queues served: every queue function's queue in this namespace.
    #[arg(
        long = "queue",
        env = "SCALER_QUEUES",
        value_delimiter = ',',
        required = true
    )]
    pub queues: Vec<String>,
    /// RabbitMQ's management API (`http://127.0.0.1:15672/api`, guest/guest): read the
    /// backlog there instead of from Service Bus.
    #[arg(long, env = "RABBITMQ_MANAGEMENT_URL")]
    pub rabbitmq_management: Option<String>,
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// KEDA's gRPC port.
    #[arg(long, env = "SCALER_GRPC_PORT", default_value_t = 9090)]
    pub grpc_port: u16,
    /// Reports, probes and metrics.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Between two backlog reads of one queue (at most 1 s: a message at zero is seen
    /// within it).
    #[arg(long, env = "SCALER_POLL_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=1000))]
    pub poll_interval_ms: u64,
    /// Between two backlog reads of one queue while its replicas report (a message is then
    /// seen by a replica at once; the backlog only feeds the HPA, which syncs every 15 s).
    #[arg(long, env = "SCALER_POLL_WITH_REPLICAS_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=15))]
    pub poll_with_replicas_seconds: u64,
    /// A replica silent for this long is gone and its messages stop counting (replicas
    /// report at least every 2 s).
    #[arg(long, env = "SCALER_REPORT_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(3..=300))]
    pub report_timeout_seconds: u64,
    /// How often `true` is pushed to KEDA while a queue stays busy; below any cooldown.
    #[arg(long, env = "SCALER_KEEPALIVE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub keepalive_seconds: u64,
}

/// Why the scaler could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed: {0}")]
    Grpc(#[source] tonic::transport::Error),
    #[error("the HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
    #[error("cannot register the metrics: {0}")]
    Metrics(#[source] prometheus::Error),
}

impl ScalerArgs {
    /// The broker to read, from the flags and the environment: a broker the scaler cannot
    /// read fails here, at start-up.
    pub fn backlog(&self) -> Result<Backlog, ServeError> {
        if let Some(url) = &self.rabbitmq_management {
            return Ok(Backlog::RabbitMq(Box::new(rabbitmq::Management::new(
                url, "guest", "guest",
            ))));
        }
        let mut r = EnvReader::new(&ProcessEnv);
        let transport = Transport::from_env(&mut r, Duration::from_secs(60));
        r.finish().map_err(|e| ServeError::Config(e.to_string()))?;
        let settings = match transport {
            Transport::Amqp(settings) => settings,
            Transport::Embedded => {
                return Err(ServeError::Config(
                    "no broker to read: set SERVICEBUS_NAMESPACE (or SERVICEBUS_CONNECTION_STRING) for Service Bus, or --rabbitmq-management for RabbitMQ".into(),
                ));
            }
        };
        match servicebus::RuntimeProperties::new(&settings).map_err(ServeError::Config)? {
            Some(properties) => Ok(Backlog::ServiceBus(properties)),
            None => Err(ServeError::Config(format!(
                "AMQP_URL {} is a generic AMQP broker, which has no runtime properties: give its management API with --rabbitmq-management",
                settings.url
            ))),
        }
    }

    fn check(&self) -> Result<(), ServeError> {
        let mut seen = std::collections::BTreeSet::new();
        for q in &self.queues {
            if q.trim().is_empty() {
                return Err(ServeError::Config("--queue: a queue name is empty".into()));
            }
            if !seen.insert(q) {
                return Err(ServeError::Config(format!("--queue: {q} is given twice")));
            }
        }
        if self.grpc_port == self.http_port && self.grpc_port != 0 {
            return Err(ServeError::Config(format!(
                "the gRPC and HTTP ports are both {}",
                self.grpc_port
            )));
        }
        Ok(())
    }
}

/// Where a started scaler listens.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Runs the scaler until `shutdown` trips. `on_bound` is told where it listens (ports 0
/// pick free ones, for tests and the local run).
pub async fn serve(
    args: ScalerArgs,
    backlog: Backlog,
    shutdown: Shutdown,
    on_bound: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    args.check()?;
    let metrics = ScalerMetrics::new().map_err(ServeError::Metrics)?;
    let poll = PollOptions {
        interval: Duration::from_millis(args.poll_interval_ms),
        with_replicas: Duration::from_secs(args.poll_with_replicas_seconds),
        max_backoff: Duration::from_secs(30),
    };
    let freshness = Freshness {
        report_timeout: Duration::from_secs(args.report_timeout_seconds),
        // Three missed reads, or one at the slower pace: one slow answer is not an outage.
        backlog_timeout: (poll.interval * 3).max(poll.with_replicas) + Duration::from_secs(2),
    };
    let queues = Arc::new(Queues::new(&args.queues, freshness));

    let listen = |port| async move {
        let addr = SocketAddr::new(args.bind, port);
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })
    };
    let grpc_listener = listen(args.grpc_port).await?;
    let http_listener = listen(args.http_port).await?;
    let local = |l: &TcpListener, port| {
        l.local_addr()
            .unwrap_or_else(|_| SocketAddr::new(args.bind, port))
    };
    let bound = Bound {
        grpc: local(&grpc_listener, args.grpc_port),
        http: local(&http_listener, args.http_port),
    };
    info!(
        queues = %args.queues.join(","),
        backlog = %backlog.describe(),
        grpc = %bound.grpc,
        http = %bound.http,
        poll_ms = args.poll_interval_ms,
        "scaler started"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for queue in &args.queues {
        let poller = Poller {
            backlog: backlog.clone(),
            queues: queues.clone(),
            options: poll,
            metrics: metrics.clone(),
        };
        tasks.spawn(poller.run(queue.clone()));
    }
    tasks.spawn(expire_silent_replicas(queues.clone(), metrics.clone()));

    let service = ScalerService {
        queues: queues.clone(),
        keepalive: Duration::from_secs(args.keepalive_seconds),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    let grpc = tonic::transport::Server::builder()
        .add_service(ExternalScalerServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            {
                let shutdown = shutdown.clone();
                async move { shutdown.wait().await }
            },
        );
    let http = axum::serve(http_listener, crate::http::router(queues, metrics))
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        });
    on_bound(bound);

    let result = tokio::try_join!(async { grpc.await.map_err(ServeError::Grpc) }, async {
        http.await.map_err(ServeError::Http)
    },);
    tasks.abort_all();
    result.map(|_| info!("scaler stopped"))
}

/// Runs the scaler on the broker its settings name until `shutdown` trips: what the
/// `fabrikam-scaler` image and `fabrikam scaler` run.
pub async fn run(args: ScalerArgs, shutdown: Shutdown) -> Result<(), ServeError> {
    let backlog = args.backlog()?;
    serve(args, backlog, shutdown, |_| {}).await
}

/// Drops replicas that stopped reporting, once a second.
async fn expire_silent_replicas(queues: Arc<Queues>, metrics: ScalerMetrics) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (queue, replica) in queues.expire(Instant::now()) {
            metrics.replicas_expired.inc();
            warn!(
                queue,
                replica, "replica stopped reporting; its messages no longer count"
            );
        }
    }
}
