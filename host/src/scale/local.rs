//! `fabrikam scale run` (`scripts/dev --scale`): each function as 0..N processes on this
//! machine, moved by the same rules the simulator replays ([`scaling::autoscaler`]) on the
//! dev profile's rendered objects, on the wall clock: the queue's depth from RabbitMQ's
//! management API, the HTTP functions' traffic from the local interceptor, which holds a
//! request while its function has no ready replica. Every replica change is printed as the
//! explain log says it; scale-in is SIGTERM and the function's own drain.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime::deploy::Deployment;
use runtime::lifecycle::Shutdown;
use scaler::keda::{KedaClient, StreamEvent};
use scaling::autoscaler::{Autoscaler, Options, Signals};
use scaling::explain::{Change, seconds};
use scaling::http_addon::Counters;
use scaling::in_flight::InFlightReading;
use scaling::objects::TriggerKind;
use scaling::objects::Workload;
use scaling::servicebus::QueueCounts;
use std::collections::HashMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::Shortened;
use super::interceptor::{self, Upstream};
use super::replicas::ReplicaSet;
use super::scaler_process::ScalerProcess;
use scaler::backlog::rabbitmq::Management;

/// How often the rules and the replicas are looked at; a starting replica's `/readyz` is
/// probed at each.
const TICK: Duration = Duration::from_millis(10);
/// How often a starting replica's readiness is probed (the simulator's `--local-pods`).
pub const READINESS_PROBE: Duration = TICK;
/// The longest a read of the management API may take.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one of KEDA's calls to the scaler may take.
const KEDA_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The hold at zero when an InterceptorRoute sets no readiness timeout (the add-on's
/// default with a fallback; without one it has no dedicated limit).
const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how the local run works.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where the function binaries are (cargo's target/debug or target/release).
    pub bin_dir: PathBuf,
    pub bind: IpAddr,
    /// The ingress (public prefixes) and the interceptor for every prefix.
    pub ingress_port: u16,
    pub internal_port: u16,
    /// Shortened timings for tests and the dev loop, in place of the objects' own.
    pub shortened: Shortened,
    /// The HPA's sync period, in place of Kubernetes' 15 s.
    pub hpa_sync: Option<Duration>,
    /// RabbitMQ's management API.
    pub management: String,
    pub log_dir: PathBuf,
    /// Whether the queue functions scale on the host's scaler (started beside the
    /// replicas, called over KEDA's gRPC contract), or on `azure-servicebus` alone.
    pub scaler: bool,
    /// Callees reached at a URL of their own (a fake, a proxy) rather than through the
    /// interceptor: (function, base URL).
    pub callees: Vec<(String, String)>,
}

/// One function of the run.
struct Scaled {
    autoscaler: Autoscaler,
    replicas: ReplicaSet,
    upstream: Option<Arc<Upstream>>,
    queue: Option<String>,
    /// KEDA's client of the host's scaler, for a queue function scaled by it.
    keda: Option<KedaClient>,
}

/// What the rules read on the wall clock: the broker's counts read just before the step,
/// and the interceptor's counters.
struct LocalSignals<'a> {
    queue: Option<Result<QueueCounts, String>>,
    upstream: Option<&'a Upstream>,
    /// The scaler's answer, asked over gRPC just before the step.
    in_flight: Option<Result<InFlightReading, String>>,
}

impl Signals for LocalSignals<'_> {
    fn queue(&mut self, _: &str) -> Result<QueueCounts, String> {
        self.queue
            .clone()
            .unwrap_or_else(|| Err("the queue was not read".to_owned()))
    }

    fn interceptor(&mut self, _: &str) -> Counters {
        self.upstream.map(Upstream::counters).unwrap_or_default()
    }

    fn in_flight(&mut self, _: &str) -> Result<InFlightReading, String> {
        self.in_flight
            .clone()
            .unwrap_or_else(|| Err("the scaler was not asked".to_owned()))
    }
}

/// Runs until `shutdown`, then stops every replica (SIGTERM, each within its grace).
pub async fn run(
    functions: &[Deployment],
    workloads: Vec<Workload>,
    options: LocalOptions,
    shutdown: Shutdown,
) -> Result<(), String> {
    for (name, _) in &options.callees {
        if !functions
            .iter()
            .any(|f| f.callees().any(|(c, _)| c == name))
        {
            return Err(format!(
                "--callee {name}: no registered function calls {name}"
            ));
        }
    }
    let ingress_listener = bind(options.bind, options.ingress_port).await?;
    let internal_listener = bind(options.bind, options.internal_port).await?;
    let internal_addr = internal_listener.local_addr().map_err(|e| e.to_string())?;
    let ingress_addr = ingress_listener.local_addr().map_err(|e| e.to_string())?;
    let internal_url = format!("http://{internal_addr}");

    let autoscaler_options = Options {
        hpa_sync: options.hpa_sync.unwrap_or(scaling::hpa::SYNC_PERIOD),
        ..Options::default()
    };
    let mut workloads = workloads;
    let start = Instant::now();
    let scaler = if options.scaler {
        start_scaler(&workloads, &options, start).await?
    } else {
        for w in &mut workloads {
            let before = w.scaled_object.triggers.len();
            w.scaled_object
                .triggers
                .retain(|t| !matches!(t.kind, TriggerKind::InFlight { .. }));
            if w.scaled_object.triggers.len() < before {
                println!(
                    "{}: without the host's scaler for this run: azure-servicebus alone",
                    w.name
                );
            }
        }
        None
    };
    let mut scaled: Vec<Scaled> = Vec::new();
    let mut ingress_routes = Vec::new();
    let mut internal_routes = Vec::new();
    let mut problems = Vec::new();
    for mut workload in workloads {
        let Some(declaration) = functions.iter().find(|f| f.name == workload.name) else {
            problems.push(format!(
                "{}: scaled, but not a registered function",
                workload.name
            ));
            continue;
        };
        let said = options.shortened.apply(&mut workload);
        if !said.is_empty() {
            println!(
                "{}: timings shortened for this run: {}",
                workload.name,
                said.join(", ")
            );
        }
        if let Some(s) = options.hpa_sync {
            println!(
                "{}: HPA sync every {} (Kubernetes: 15 s)",
                workload.name,
                seconds(s)
            );
        }
        let binary = options.bin_dir.join(&workload.name);
        if !binary.is_file() {
            problems.push(format!(
                "{}: no binary at {}",
                workload.name,
                binary.display()
            ));
            continue;
        }
        let mut env = vec![(
            "TOKIO_WORKER_THREADS".to_owned(),
            crate::processes::worker_threads(declaration.resources.cpu_limit_millis).to_string(),
        )];
        if let Some(process) = &scaler {
            env.push((
                runtime::dispatch::report::SCALER_URL.to_owned(),
                format!("http://{}", process.addresses.http),
            ));
        }
        // Callees through the interceptor, which wakes them from zero, as in the cluster;
        // or where `--callee` points them.
        env.extend(declaration.callees().map(|(callee, variable)| {
            let url = options
                .callees
                .iter()
                .find(|(name, _)| name == callee)
                .map_or(&internal_url, |(_, url)| url);
            (variable.to_owned(), url.clone())
        }));
        let replicas = ReplicaSet::new(
            &workload.name,
            binary,
            env,
            options.bind,
            workload.deployment.termination_grace,
            options.log_dir.clone(),
        );
        let upstream = workload.route.as_ref().map(|route| {
            Arc::new(Upstream::new(
                &workload.name,
                replicas.endpoints(),
                route.readiness_timeout.unwrap_or(DEFAULT_READINESS_TIMEOUT),
            ))
        });
        if let (Some(upstream), Some((prefixes, public))) = (&upstream, declaration.http_trigger())
        {
            let route = |p: &String| interceptor::Route {
                prefix: p.to_ascii_lowercase(),
                upstream: upstream.clone(),
            };
            internal_routes.extend(prefixes.iter().map(route));
            ingress_routes.extend(public.iter().map(route));
        }
        let queue = workload
            .scaled_object
            .triggers
            .iter()
            .find_map(|t| match &t.kind {
                scaling::objects::TriggerKind::ServiceBus { queue, .. }
                | scaling::objects::TriggerKind::InFlight { queue, .. } => Some(queue.clone()),
                scaling::objects::TriggerKind::ExternalPush { .. } => None,
            });
        let keda = match (&scaler, in_flight_trigger(&workload)) {
            (Some(process), Some((queue, target))) => Some(
                KedaClient::new(
                    &format!("http://{}", process.addresses.grpc),
                    "local",
                    &workload.name,
                    HashMap::from([
                        (scaler::grpc::QUEUE_NAME.to_owned(), queue),
                        (scaler::grpc::TARGET_SIZE.to_owned(), target.to_string()),
                    ]),
                )
                .map_err(|e| format!("{}: the scaler's address: {e}", workload.name))?,
            ),
            _ => None,
        };
        scaled.push(Scaled {
            autoscaler: Autoscaler::new(workload, autoscaler_options, start.elapsed()),
            replicas,
            upstream,
            queue,
            keda,
        });
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }

    // KEDA holds StreamIsActive open to the scaler for each workload it scales.
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<(usize, StreamEvent)>();
    for (i, s) in scaled.iter().enumerate() {
        if let Some(keda) = s.keda.clone() {
            let (tx, mut rx) = mpsc::unbounded_channel();
            tokio::spawn(keda.follow(tx, shutdown.clone()));
            let push_tx = push_tx.clone();
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    if push_tx.send((i, event)).is_err() {
                        return;
                    }
                }
            });
        }
    }

    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let grace = Duration::from_secs(5);
    for (listener, routes) in [
        (ingress_listener, ingress_routes),
        (internal_listener, internal_routes),
    ] {
        let router = interceptor::router(routes, held_tx.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = runtime::http::serve(listener, router, shutdown, grace).await {
                tracing::error!(error = %e, "the interceptor failed");
            }
        });
    }
    // The wall clock at t=0, so a client can place the log's times on its own clock.
    let epoch_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .saturating_sub(start.elapsed().as_millis());
    println!(
        "==> scaling locally: ingress http://{ingress_addr}, every route http://{internal_addr}; \
         replicas' logs in {}; t=0 is {epoch_ms} ms after the Unix epoch; Ctrl-C stops",
        options.log_dir.display()
    );

    let management = Management::new(&options.management, "guest", "guest");
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut woken: Option<String> = None;
        let mut pushed: Option<usize> = None;
        tokio::select! {
            _ = ticker.tick() => {}
            Some(name) = held_rx.recv() => woken = Some(name),
            Some((i, event)) = push_rx.recv() => match event {
                StreamEvent::Active(_) => pushed = Some(i),
                StreamEvent::Ended { error, retry_in } => println!(
                    "t={} {}: StreamIsActive ended ({}); KEDA reopens it in {}",
                    seconds(start.elapsed()),
                    scaled[i].autoscaler.name(),
                    error.as_deref().unwrap_or("cleanly"),
                    seconds(retry_in)
                ),
            },
            () = shutdown.wait() => break,
        }
        let now = start.elapsed();
        if let Some(i) = pushed {
            let s = &mut scaled[i];
            let changes =
                s.autoscaler
                    .push(now, s.replicas.replicas(), "the host's scaler is active");
            apply(s, &changes);
        }
        for s in &mut scaled {
            let replicas = s.replicas.replicas();
            let changes = if woken.as_deref() == Some(s.autoscaler.name()) {
                let mut signals = LocalSignals {
                    queue: None,
                    upstream: s.upstream.as_deref(),
                    in_flight: None,
                };
                s.autoscaler.wake(now, replicas, &mut signals)
            } else {
                let queue = match (&s.queue, s.autoscaler.queue_read_due(now)) {
                    (Some(q), true) => Some(
                        management
                            .queue_counts(q, MANAGEMENT_TIMEOUT)
                            .await
                            .map(|c| QueueCounts {
                                active: c.ready,
                                locked: c.unacknowledged,
                            })
                            .map_err(|e| e.to_string()),
                    ),
                    _ => None,
                };
                // KEDA's three calls (GetMetricSpec, GetMetrics, IsActive) for the tick.
                let in_flight = match (&s.keda, s.autoscaler.in_flight_read_due(now)) {
                    (Some(keda), true) => Some(
                        keda.tick(KEDA_CALL_TIMEOUT)
                            .await
                            .map(|t| InFlightReading::Total(t.value.max(0.0) as u64))
                            .map_err(|e| format!("the scaler: {}", e.message())),
                    ),
                    _ => None,
                };
                let mut signals = LocalSignals {
                    queue,
                    upstream: s.upstream.as_deref(),
                    in_flight,
                };
                s.autoscaler.step(now, replicas, &mut signals)
            };
            apply(s, &changes);
            for event in s.replicas.tick().await {
                println!("  t={} {event}", seconds(start.elapsed()));
            }
        }
    }

    println!("==> stopping every replica");
    for s in &mut scaled {
        for event in s.replicas.scale_to(0) {
            println!("  {event}");
        }
    }
    while scaled.iter().any(|s| s.replicas.processes() > 0) {
        tokio::time::sleep(TICK).await;
        for s in &mut scaled {
            for event in s.replicas.tick().await {
                println!("  {event}");
            }
        }
    }
    // Last, so the replicas' final reports reach it.
    if let Some(process) = scaler {
        process.stop().await;
    }
    Ok(())
}

/// The queue and target of the workload's `external-push` trigger to the host's scaler.
fn in_flight_trigger(w: &Workload) -> Option<(String, f64)> {
    w.scaled_object.triggers.iter().find_map(|t| match &t.kind {
        TriggerKind::InFlight { queue, target, .. } => Some((queue.clone(), *target)),
        _ => None,
    })
}

/// Starts the host's scaler (its own process) for every queue an `external-push` trigger
/// names, reading their backlog from the management API: the replicas report to it and
/// the KEDA emulation calls it over gRPC, as in the cluster. `None` when no workload has
/// such a trigger.
async fn start_scaler(
    workloads: &[Workload],
    options: &LocalOptions,
    epoch: Instant,
) -> Result<Option<ScalerProcess>, String> {
    let queues: Vec<String> = workloads
        .iter()
        .filter_map(|w| in_flight_trigger(w).map(|(q, _)| q))
        .collect();
    if queues.is_empty() {
        return Ok(None);
    }
    let process = ScalerProcess::start(
        &queues,
        &options.management,
        options.bind,
        &options.log_dir,
        epoch,
    )
    .await?;
    println!(
        "==> the host's scaler: gRPC {} (KEDA's calls), reports to http://{}; its log: {}",
        process.addresses.grpc,
        process.addresses.http,
        options.log_dir.join("scaler.log").display()
    );
    Ok(Some(process))
}

fn apply(s: &mut Scaled, changes: &[Change]) {
    for change in changes {
        println!("{change}");
        for event in s.replicas.scale_to(change.to) {
            println!("  t={} {event}", seconds(change.at));
        }
    }
}

async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, String> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
