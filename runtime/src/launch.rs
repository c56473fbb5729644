//! Starting functions in this process: [`start`] one registered function on a listener
//! (what `fabrikam dev` does for each), and [`run`] a function as a process's only one
//! (what each function binary's `main` does).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::bindings::Bindings;
use crate::config::{EnvReader, ProcessEnv};
use crate::deploy::Deployment;
use crate::dispatch::report::report_in_flight;
use crate::dispatch::{InFlight, run_pump};
use crate::function::Function;
use crate::host_config::HostConfig;
use crate::http::{HostContext, host_service, serve};
use crate::lifecycle::{Readiness, Shutdown, shutdown_on_signals};
use crate::queue::Broker;
use crate::registry::{FunctionConfig, Registration};
use crate::secrets::{SecretSource, Secrets};
use crate::start_error::StartError;
use crate::telemetry::startup::{Phase, mark_process_start};
use crate::telemetry::{Metrics, init_telemetry};

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

/// Starts the registered function on `listener`: reads its declared secrets, builds it,
/// serves HTTP and receives from its declared queue trigger. Every trigger stops when
/// `shutdown` trips, after draining.
pub async fn start(
    function: &Registration,
    host: &HostConfig,
    config: FunctionConfig,
    listener: TcpListener,
    broker: Arc<dyn Broker>,
    shutdown: Shutdown,
) -> Result<RunningFunction, StartError> {
    let name = function.name();
    let declaration = function.deployment();
    let addr = listener.local_addr().map_err(StartError::ListenerAddress)?;
    let metrics = Metrics::new(name)?;
    metrics.record_phase(Phase::ConfigLoaded);
    let secrets = load_secrets(name, &declaration, host).await?;
    metrics.record_phase(Phase::SecretsLoaded);
    let mut bindings = Bindings::new(
        declaration.clone(),
        config.wiring.clone(),
        broker,
        metrics.clone(),
    );
    if let Some(secrets) = &secrets {
        bindings = bindings.with_secrets(secrets.clone());
    }
    let app = function.build(config, &bindings).await?;
    metrics.record_phase(Phase::AppBuilt);
    let (routes, handler) = app.into_parts();
    check_routes(&declaration, routes.templates())?;
    let queue = match (bindings.queue_receiver()?, handler) {
        (Some(receiver), Some(handler)) => Some((receiver, handler)),
        (None, None) => None,
        (Some((queue, _)), None) => {
            return Err(StartError::Declaration {
                function: name.to_owned(),
                problem: format!("declares the queue trigger {queue} but built no queue handler"),
            });
        }
        (None, Some(_)) => {
            return Err(StartError::Declaration {
                function: name.to_owned(),
                problem: "built a queue handler but declares no queue trigger".to_owned(),
            });
        }
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
        routes,
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
                error!(function = name, error = %e, "HTTP server failed");
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
    info!(function = name, %addr, "HTTP trigger listening");

    if let Some(((queue_name, receiver), handler)) = queue {
        let options = host.dispatch;
        let in_flight = InFlight::default();
        if let Some(reports) = host.scaler_reports.clone() {
            tasks.push(tokio::spawn(report_in_flight(
                reports,
                receiver.queue().to_owned(),
                in_flight.follow(),
            )));
        }
        tasks.push(tokio::spawn(async move {
            run_pump(
                receiver,
                handler,
                options,
                metrics,
                shutdown,
                in_flight,
                move || {
                    info!(function = name, queue = %queue_name, "queue trigger receiving");
                    trigger_ready();
                },
            )
            .await;
        }));
    }

    Ok(RunningFunction {
        name,
        addr,
        readiness,
        tasks,
    })
}

/// Every route must lie under a declared path prefix: the cluster routes only those to the
/// function, so a route outside them would be served locally and never in the cluster.
fn check_routes(declaration: &Deployment, templates: &[String]) -> Result<(), StartError> {
    let prefixes = declaration
        .http_trigger()
        .map(|(p, _)| p.to_vec())
        .unwrap_or_default();
    let outside: Vec<&str> = templates
        .iter()
        .filter(|t| {
            !prefixes
                .iter()
                .any(|p| t.as_str() == p || t.starts_with(&format!("{p}/")))
        })
        .map(String::as_str)
        .collect();
    if outside.is_empty() {
        Ok(())
    } else {
        Err(StartError::Declaration {
            function: declaration.name.clone(),
            problem: format!(
                "serves {} outside its declared path prefixes {prefixes:?}",
                outside.join(", ")
            ),
        })
    }
}

/// Reads the declared secrets from the configured source; `None` without one.
async fn load_secrets(
    name: &str,
    declaration: &Deployment,
    host: &HostConfig,
) -> Result<Option<Arc<Secrets>>, StartError> {
    let Some(settings) = &host.secrets.source else {
        return Ok(None);
    };
    let source = SecretSource::open(settings).map_err(StartError::SecretSource)?;
    let declared: Vec<&str> = declaration.secrets.iter().map(String::as_str).collect();
    let secrets = Secrets::load(source, &declared, host.secrets.reload_every).await?;
    info!(function = name, secrets = ?secrets.names().collect::<Vec<_>>(), "secrets loaded");
    Ok(Some(Arc::new(secrets)))
}

/// Closes what the functions' stores hold open, once they have stopped and before the
/// async runtime goes (see [`crate::store::mongo::shutdown`]).
pub async fn close_stores() {
    #[cfg(feature = "mongodb")]
    crate::store::mongo::shutdown().await;
}

/// Runs `F` as this process's only function: reads and validates all config before binding
/// a port, serves until SIGTERM/SIGINT, drains, and exits 0. Config problems exit 2, each
/// naming its variable.
pub fn run<F: Function>() -> ExitCode {
    run_registered(&Registration::of::<F>())
}

fn run_registered(function: &Registration) -> ExitCode {
    mark_process_start();
    let name = function.name();
    let env = ProcessEnv;
    let mut reader = EnvReader::new(&env);
    let host = HostConfig::from_env(&mut reader);
    let config = function.read_config(&mut reader);
    if !crate::deployed::local(&mut reader) {
        crate::deployed::check(&mut reader, &function.deployment(), &host);
    }
    if let Err(e) = reader.finish() {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    // Declared before the async runtime so it is dropped after it: the spans of the drain
    // are exported too.
    let _telemetry = init_telemetry(host.log_format, host.otlp.as_ref(), name);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::new(host.bind, host.port);
        let failed = |e: StartError| {
            error!(function = name, error = %e.chain(), "cannot start");
            ExitCode::FAILURE
        };
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(source) => return failed(StartError::Bind { addr, source }),
        };
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        let broker = match host.broker() {
            Ok(b) => b.broker,
            Err(e) => return failed(e),
        };
        match start(function, &host, config, listener, broker, shutdown).await {
            Ok(running) => {
                running.stopped().await;
                close_stores().await;
                info!(function = name, "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}
