//! The local system: every registered function in one process on loopback ports, sharing
//! one queue broker (embedded, or an AMQP 1.0 broker when one is configured), behind two
//! gateways ([`crate::gateway`]): the ingress, which serves the public routes only, as the
//! cluster's does, and the internal gateway, which serves every route, as the HTTP add-on's
//! interceptor does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use runtime::config::{ConfigError, Env, EnvReader, MapEnv};
use runtime::deploy::Deployment;
use runtime::host_config::SharedBroker;
use runtime::lifecycle::Shutdown;
use runtime::queue::embedded::EmbeddedBroker;
use runtime::{FunctionConfig, HostConfig, Registration, RunningFunction, StartError, start};
use tokio::task::JoinHandle;

use crate::functions;
use crate::gateway::{GatewayRoute, gateway_routes, serve_gateway};
use tokio::net::TcpListener;
use tracing::info;

/// Where `fabrikam dev` listens (`DEV_BIND`).
pub const DEV_BIND: &str = "DEV_BIND";
/// The ingress's port (`DEV_GATEWAY_PORT`, default 8080).
pub const DEV_GATEWAY_PORT: &str = "DEV_GATEWAY_PORT";
/// The internal gateway's port (`DEV_INTERNAL_PORT`, default 8090).
pub const DEV_INTERNAL_PORT: &str = "DEV_INTERNAL_PORT";
/// The first function's port; the others follow in registry order
/// (`DEV_FIRST_FUNCTION_PORT`, default 8081).
pub const DEV_FIRST_FUNCTION_PORT: &str = "DEV_FIRST_FUNCTION_PORT";

/// Where the local system listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevOptions {
    pub bind: IpAddr,
    /// The ingress: the public routes only (0 picks a free port).
    pub gateway_port: u16,
    /// Every route, as the cluster's interceptor (0 picks a free port).
    pub internal_port: u16,
    /// The first function port; each further function takes the next one (0 picks free
    /// ports).
    pub first_function_port: u16,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            gateway_port: 8080,
            internal_port: 8090,
            first_function_port: 8081,
        }
    }
}

impl DevOptions {
    /// `DEV_BIND`, `DEV_GATEWAY_PORT`, `DEV_INTERNAL_PORT`, `DEV_FIRST_FUNCTION_PORT`.
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        let d = Self::default();
        let first_function_port: u16 = r.parse(DEV_FIRST_FUNCTION_PORT, d.first_function_port);
        let count = u16::try_from(functions().len()).unwrap_or(u16::MAX);
        if first_function_port.checked_add(count).is_none() {
            r.problem(
                DEV_FIRST_FUNCTION_PORT,
                format!("must leave room for {count} ports"),
            );
        }
        Self {
            bind: r.parse(DEV_BIND, d.bind),
            gateway_port: r.parse(DEV_GATEWAY_PORT, d.gateway_port),
            internal_port: r.parse(DEV_INTERNAL_PORT, d.internal_port),
            first_function_port,
        }
    }

    /// The port the function at `index` in the registry is given (0: any free one).
    fn function_port(&self, index: usize) -> u16 {
        match (self.first_function_port, u16::try_from(index)) {
            (0, _) | (_, Err(_)) => 0,
            (first, Ok(offset)) => first.saturating_add(offset),
        }
    }
}

/// Every setting of the local system, read and validated at once.
#[derive(Clone)]
pub struct DevConfig {
    pub options: DevOptions,
    pub host: HostConfig,
    env: Arc<dyn Env>,
}

impl std::fmt::Debug for DevConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevConfig")
            .field("options", &self.options)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The environment with each function's callee variables pointing at the callees' local
/// addresses: what `fabrikam dev` wires the functions with. A variable the environment
/// sets itself wins (a callee running elsewhere), and is checked like any other.
pub(crate) struct Wired {
    urls: MapEnv,
    base: Arc<dyn Env>,
}

impl Env for Wired {
    fn var(&self, name: &str) -> Option<String> {
        self.base.var(name).or_else(|| self.urls.var(name))
    }
}

impl Wired {
    pub(crate) fn new(base: Arc<dyn Env>, addr_of: impl Fn(&str) -> Option<SocketAddr>) -> Self {
        let mut urls = MapEnv::new();
        for f in functions() {
            for (callee, variable) in f.deployment().callees() {
                if let Some(addr) = addr_of(callee) {
                    urls = urls.with(variable, format!("http://{addr}"));
                }
            }
        }
        Self { urls, base }
    }

    /// Each function's config, in registry order, every problem recorded in `r`.
    pub(crate) fn read(&self) -> Result<Vec<FunctionConfig>, ConfigError> {
        let mut r = EnvReader::new(self);
        let configs = functions().iter().map(|f| f.read_config(&mut r)).collect();
        r.finish().map(|()| configs)
    }
}

impl DevConfig {
    /// Reads everything, every function's config included, reporting every problem
    /// together.
    pub fn from_env<E: Env + Clone + 'static>(env: &E) -> Result<Self, ConfigError> {
        let env: Arc<dyn Env> = Arc::new(env.clone());
        let mut r = EnvReader::new(env.as_ref());
        let options = DevOptions::from_env(&mut r);
        let host = HostConfig::from_env(&mut r);
        let outcome = r.finish();
        // The functions' own settings, wired to where their callees will listen (a
        // placeholder address when the ports are chosen later), are checked now too.
        let placeholder = |callee: &str| {
            let index = functions().iter().position(|f| f.name() == callee)?;
            let port = options.function_port(index).max(1);
            Some(SocketAddr::new(options.bind, port))
        };
        let functions = Wired::new(env.clone(), placeholder).read();
        match (outcome, functions) {
            (Ok(()), Ok(_)) => Ok(Self { options, host, env }),
            (Err(e), Ok(_)) | (Ok(()), Err(e)) => Err(e),
            (Err(mut a), Err(b)) => {
                a.problems.extend(b.problems);
                Err(a)
            }
        }
    }

    /// Defaults with every port chosen by the OS: for tests.
    pub fn ephemeral() -> Self {
        Self::ephemeral_with(&MapEnv::new()).unwrap_or_else(|e| panic!("defaults are valid: {e}"))
    }

    /// The settings `env` gives, with every port chosen by the OS: for tests.
    pub fn ephemeral_with<E: Env + Clone + 'static>(env: &E) -> Result<Self, ConfigError> {
        let mut config = Self::from_env(env)?;
        config.options.gateway_port = 0;
        config.options.internal_port = 0;
        config.options.first_function_port = 0;
        Ok(config)
    }
}

/// The running local system.
#[derive(Debug)]
pub struct DevSystem {
    /// The ingress: public routes only.
    pub gateway: SocketAddr,
    /// Every route of every function.
    pub internal: SocketAddr,
    pub functions: Vec<RunningFunction>,
    /// The embedded queue broker, when the transport is embedded (tests inspect it).
    pub embedded: Option<Arc<EmbeddedBroker>>,
    gateway_tasks: Vec<JoinHandle<()>>,
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
        for task in self.gateway_tasks {
            let _ = task.await;
        }
    }
}

async fn bind(bind: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(bind, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts every registered function and the two gateways; everything stops when
/// `shutdown` trips.
pub async fn start_dev(config: DevConfig, shutdown: Shutdown) -> Result<DevSystem, StartError> {
    let o = config.options;
    let mut listeners = Vec::new();
    for (index, f) in functions().iter().enumerate() {
        let listener = bind(o.bind, o.function_port(index)).await?;
        let addr = listener.local_addr().map_err(StartError::ListenerAddress)?;
        listeners.push((f, listener, addr));
    }
    let addr_of = |name: &str| {
        listeners
            .iter()
            .find(|(f, _, _)| f.name() == name)
            .map(|(_, _, addr)| *addr)
    };
    let configs = Wired::new(config.env.clone(), addr_of).read()?;
    let declarations: Vec<Deployment> = functions().iter().map(Registration::deployment).collect();
    let public = gateway_routes(&declarations, addr_of, true);
    let internal = gateway_routes(&declarations, addr_of, false);
    let (Ok(public), Ok(internal)) = (public, internal) else {
        return Err(StartError::Conflict(
            "a function listens nowhere the gateway can reach".to_owned(),
        ));
    };
    let gateway_listener = bind(o.bind, o.gateway_port).await?;
    let internal_listener = bind(o.bind, o.internal_port).await?;

    let SharedBroker { broker, embedded } = config.host.broker()?;
    let mut running = Vec::new();
    for ((function, listener, _), function_config) in listeners.into_iter().zip(configs) {
        running.push(
            start(
                function,
                &config.host,
                function_config,
                listener,
                broker.clone(),
                shutdown.clone(),
            )
            .await?,
        );
    }

    let gateway_addr = gateway_listener
        .local_addr()
        .map_err(StartError::ListenerAddress)?;
    let internal_addr = internal_listener
        .local_addr()
        .map_err(StartError::ListenerAddress)?;
    let describe = |routes: &[GatewayRoute]| {
        routes
            .iter()
            .map(|r| r.prefix.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let grace = config.host.shutdown_grace;
    info!(addr = %internal_addr, routes = %describe(&internal), "internal gateway listening: every route");
    info!(addr = %gateway_addr, routes = %describe(&public), "gateway listening: the public routes, as the ingress");
    let gateway_tasks = vec![
        serve_gateway(
            "internal",
            internal_listener,
            internal,
            shutdown.clone(),
            grace,
        ),
        serve_gateway("ingress", gateway_listener, public, shutdown.clone(), grace),
    ];
    Ok(DevSystem {
        gateway: gateway_addr,
        internal: internal_addr,
        functions: running,
        embedded,
        gateway_tasks,
    })
}
