//! The local system: all five functions in one process on loopback ports, sharing one
//! queue broker (embedded, or an AMQP 1.0 broker when one is configured), behind a gateway
//! that routes like the cluster's ingress.

pub mod images;
pub mod infra;
pub mod manifests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use runtime::config::{ConfigError, EnvReader};
use runtime::deploy::Deployment;
use runtime::function::{HostConfig, RunningFunction, StartError, start};
use runtime::gateway::{GatewayRoute, gateway};
use runtime::lifecycle::Shutdown;
use runtime::queue::Broker;
use runtime::queue::amqp::Transport;
use runtime::queue::embedded::EmbeddedBroker;
use runtime::{Function, MapEnv};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

/// Where the local system listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevOptions {
    pub bind: IpAddr,
    /// The single entry port (0 picks a free one).
    pub gateway_port: u16,
    /// The first function port; the five functions take it and the next four (0 picks
    /// free ports).
    pub first_function_port: u16,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            gateway_port: 8080,
            first_function_port: 8081,
        }
    }
}

impl DevOptions {
    /// `DEV_BIND`, `DEV_GATEWAY_PORT`, `DEV_FIRST_FUNCTION_PORT`.
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        let first_function_port: u16 = r.parse("DEV_FIRST_FUNCTION_PORT", d.first_function_port);
        if first_function_port > u16::MAX - 4 {
            r.problem("DEV_FIRST_FUNCTION_PORT", "must leave room for five ports");
        }
        Self {
            bind: r.parse("DEV_BIND", d.bind),
            gateway_port: r.parse("DEV_GATEWAY_PORT", d.gateway_port),
            first_function_port,
        }
    }
}

/// Every setting of the local system, read and validated at once.
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub options: DevOptions,
    pub host: HostConfig,
    pub ingestion: ingestion::IngestionConfig,
    pub workflow: workflow::WorkflowConfig,
    pub delivery: delivery::DeliveryConfig,
    pub package: package::PackageConfig,
    pub dronescheduler: dronescheduler::SchedulerConfig,
}

impl DevConfig {
    /// Reads everything, reporting every problem together.
    pub fn from_env(env: &dyn runtime::config::Env) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(env);
        let config = Self {
            options: DevOptions::from_env(&mut r),
            host: HostConfig::from_env(&mut r),
            ingestion: ingestion::Ingestion::config(&mut r),
            workflow: workflow::Workflow::config(&mut r),
            delivery: delivery::Delivery::config(&mut r),
            package: package::Package::config(&mut r),
            dronescheduler: dronescheduler::DroneScheduler::config(&mut r),
        };
        r.finish().map(|()| config)
    }

    /// Defaults with every port chosen by the OS: for tests.
    pub fn ephemeral() -> Self {
        Self::ephemeral_with(&MapEnv::new()).unwrap_or_else(|e| panic!("defaults are valid: {e}"))
    }

    /// The settings `env` gives, with every port chosen by the OS: for tests.
    pub fn ephemeral_with(env: &dyn runtime::config::Env) -> Result<Self, ConfigError> {
        let mut config = Self::from_env(env)?;
        config.options.gateway_port = 0;
        config.options.first_function_port = 0;
        Ok(config)
    }
}

/// The running local system.
#[derive(Debug)]
pub struct DevSystem {
    pub gateway: SocketAddr,
    pub functions: Vec<RunningFunction>,
    /// The embedded queue broker, when the transport is embedded (tests inspect it).
    pub embedded: Option<Arc<EmbeddedBroker>>,
    gateway_task: JoinHandle<()>,
}

impl DevSystem {
    /// The address a function listens on.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.functions
            .iter()
            .find(|f| f.name() == name)
            .map(RunningFunction::local_addr)
    }

    pub fn is_ready(&self) -> bool {
        self.functions.iter().all(RunningFunction::is_ready)
    }

    /// Resolves when every function has drained and stopped.
    pub async fn stopped(self) {
        for f in self.functions {
            f.stopped().await;
        }
        let _ = self.gateway_task.await;
    }
}

async fn bind(bind: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(bind, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn port(first: u16, offset: u16) -> u16 {
    if first == 0 { 0 } else { first + offset }
}

/// The gateway's routes, from the functions' declarations: each HTTP function's path
/// prefixes, or only its public ones when `public_only` (as the cluster's ingress sends
/// them), to the address `upstream` gives it. An HTTP function without an address is an
/// error naming it.
pub fn gateway_routes(
    functions: &[Deployment],
    upstream: impl Fn(&str) -> Option<SocketAddr>,
    public_only: bool,
) -> Result<Vec<GatewayRoute>, String> {
    let mut routes = Vec::new();
    let mut missing = Vec::new();
    for f in functions {
        let Some((prefixes, public)) = f.http_trigger() else {
            continue;
        };
        let Some(addr) = upstream(&f.name) else {
            missing.push(f.name.as_str());
            continue;
        };
        let prefixes = if public_only { public } else { prefixes };
        routes.extend(prefixes.iter().map(|prefix| GatewayRoute {
            prefix: prefix.to_ascii_lowercase(),
            upstream: addr,
        }));
    }
    if missing.is_empty() {
        Ok(routes)
    } else {
        Err(format!(
            "no address for the HTTP functions {}",
            missing.join(", ")
        ))
    }
}

/// Starts all five functions and the gateway; everything stops when `shutdown` trips.
pub async fn start_dev(mut config: DevConfig, shutdown: Shutdown) -> Result<DevSystem, StartError> {
    let o = config.options;
    let listeners = [
        bind(o.bind, port(o.first_function_port, 0)).await?,
        bind(o.bind, port(o.first_function_port, 1)).await?,
        bind(o.bind, port(o.first_function_port, 2)).await?,
        bind(o.bind, port(o.first_function_port, 3)).await?,
        bind(o.bind, port(o.first_function_port, 4)).await?,
    ];
    let gateway_listener = bind(o.bind, o.gateway_port).await?;
    let addr = |l: &TcpListener| l.local_addr().map_err(|e| StartError::Other(e.to_string()));
    let [ingestion_l, delivery_l, package_l, scheduler_l, workflow_l] = listeners;
    let (ingestion_a, delivery_a, package_a, scheduler_a) = (
        addr(&ingestion_l)?,
        addr(&delivery_l)?,
        addr(&package_l)?,
        addr(&scheduler_l)?,
    );
    config.workflow.package_url = format!("http://{package_a}");
    config.workflow.dronescheduler_url = format!("http://{scheduler_a}");
    config.workflow.delivery_url = format!("http://{delivery_a}");

    let (broker, embedded): (Arc<dyn Broker>, _) = match &config.host.transport {
        Transport::Embedded => {
            let embedded = Arc::new(EmbeddedBroker::new(config.host.queue));
            (embedded.clone(), Some(embedded))
        }
        Transport::Amqp(_) => (config.host.broker()?, None),
    };
    let host = &config.host;
    let s = || shutdown.clone();
    let functions = vec![
        start::<ingestion::Ingestion>(
            host,
            config.ingestion.clone(),
            ingestion_l,
            broker.clone(),
            s(),
        )
        .await?,
        start::<delivery::Delivery>(host, config.delivery, delivery_l, broker.clone(), s()).await?,
        start::<package::Package>(host, config.package, package_l, broker.clone(), s()).await?,
        start::<dronescheduler::DroneScheduler>(
            host,
            config.dronescheduler,
            scheduler_l,
            broker.clone(),
            s(),
        )
        .await?,
        start::<workflow::Workflow>(
            host,
            config.workflow.clone(),
            workflow_l,
            broker.clone(),
            s(),
        )
        .await?,
    ];

    let route = |prefix: &str, upstream: SocketAddr| GatewayRoute {
        prefix: prefix.to_owned(),
        upstream,
    };
    let routes = vec![
        route("/api/deliveryrequests", ingestion_a),
        route("/api/deliveries", delivery_a),
        route("/api/packages", package_a),
        route("/api/dronedeliveries", scheduler_a),
    ];
    let gateway_addr = addr(&gateway_listener)?;
    let grace = host.shutdown_grace;
    let gateway_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(e) =
                runtime::http::serve(gateway_listener, gateway(routes), shutdown, grace).await
            {
                tracing::error!(error = %e, "gateway failed");
            }
        }
    });
    info!(addr = %gateway_addr, "gateway listening: /api/deliveryrequests -> ingestion, /api/deliveries -> delivery, /api/packages -> package, /api/dronedeliveries -> dronescheduler");
    Ok(DevSystem {
        gateway: gateway_addr,
        functions,
        embedded,
        gateway_task,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn gateway_routes_come_from_the_declarations_and_the_ingress_keeps_only_public_ones() {
        let functions = manifests::declarations();
        let ports: Vec<(String, u16)> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), 9000 + i as u16))
            .collect();
        let upstream = |name: &str| ports.iter().find(|(n, _)| n == name).map(|(_, p)| addr(*p));
        let all = gateway_routes(&functions, upstream, false).unwrap();
        let prefixes: Vec<&str> = all.iter().map(|r| r.prefix.as_str()).collect();
        for f in &functions {
            for p in f
                .http_trigger()
                .map(|(p, _)| p.to_vec())
                .unwrap_or_default()
            {
                assert!(prefixes.contains(&p.as_str()), "{p} missing");
            }
        }
        let public = gateway_routes(&functions, upstream, true).unwrap();
        let public: Vec<&str> = public.iter().map(|r| r.prefix.as_str()).collect();
        assert!(public.contains(&"/api/deliveries/public"), "{public:?}");
        assert!(!public.contains(&"/api/packages"), "{public:?}");

        let e = gateway_routes(&functions, |_| None, false).unwrap_err();
        assert!(e.contains("delivery") && e.contains("package"), "{e}");
    }
}
