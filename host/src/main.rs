//! `fabrikam`: the host's command line.
//! - `fabrikam dev`: the whole system on this machine, embedded queue and stores.
//! - `fabrikam manifests`: the Kubernetes and KEDA manifests of an environment.
//! - `fabrikam images`: one OCI image per function, without a container engine.
//! - `fabrikam functions`: the registered functions, one per line, for scripts.
//! - `fabrikam openapi`: the HTTP functions' OpenAPI documents, written to docs/openapi/.
//! - `fabrikam scale simulate`: a trace replayed through the KEDA and HPA rules.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use host::{images, manifests};
use runtime::config::ProcessEnv;
use runtime::deploy::Profile;
use runtime::lifecycle::{Shutdown, shutdown_on_signals};
use runtime::telemetry::init_telemetry;
use runtime::telemetry::startup::mark_process_start;

#[derive(Debug, Parser)]
#[command(
    name = "fabrikam",
    version,
    about = "The Fabrikam function host's tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every function and the gateway locally on embedded defaults (the default command).
    Dev,
    /// Render the functions' declarations into Kubernetes and KEDA objects.
    Manifests(ManifestsArgs),
    /// Build one OCI image per function from its static binary (see scripts/images).
    Images(ImagesArgs),
    /// Print the registered functions: one name per line, or their declarations.
    Functions(FunctionsArgs),
    /// Create a new function: a crate under functions/ that builds, is tested and is
    /// registered (then run scripts/generate).
    New(NewArgs),
    /// Route requests to functions running elsewhere by their declared path prefixes, as
    /// the cluster's interceptor (every prefix) or ingress (`--public`) does.
    Gateway(GatewayArgs),
    /// Write each HTTP function's OpenAPI 3.1 document, and the public API's, from the code.
    Openapi(OpenapiArgs),
    /// Print, as JSON, how to run each function as its own process: its port and its
    /// callees' URLs on the `DEV_*` ports, the gateways' arguments and the queues to declare
    /// (scripts/dev --processes runs it).
    Processes,
    /// What KEDA and the HPA do with the rendered ScaledObjects (../shared/SCALING.md).
    #[command(subcommand)]
    Scale(ScaleCommand),
    /// The queue functions' KEDA external scaler (the `fabrikam-scaler` image runs the
    /// same): backlog plus what the replicas hold, pushed to KEDA on StreamIsActive.
    Scaler(scaler::ScalerArgs),
}

#[derive(Debug, Subcommand)]
enum ScaleCommand {
    /// Replay a trace through the scaling rules in virtual time: replicas, queue age,
    /// held requests, cold starts and replica-seconds per function, with the explain log.
    Simulate(SimulateArgs),
    /// The settings (target per replica, maxReplicaCount, cooldown) that meet a target on
    /// a trace at the fewest replica-seconds, by simulating candidates.
    Recommend(RecommendArgs),
    /// Scale the registered functions on this machine as KEDA and the HPA would, from the
    /// profile's rendered objects: each function 0..N processes behind a local interceptor
    /// that holds requests at zero (scripts/dev --scale). Needs RabbitMQ (its management
    /// API for the queue's depth), Redis and a MongoDB-compatible server.
    Run(RunArgs),
}

/// Timings shortened for tests and the dev loop, in place of the objects' own (the log
/// says when they are).
#[derive(Debug, Args)]
struct TimingArgs {
    /// KEDA's pollingInterval, in seconds.
    #[arg(long, value_parser = parse_seconds)]
    polling_seconds: Option<Duration>,
    /// KEDA's cooldownPeriod, in seconds.
    #[arg(long, value_parser = parse_seconds)]
    cooldown_seconds: Option<Duration>,
    /// The HPA's sync period, in seconds (Kubernetes: 15).
    #[arg(long, value_parser = parse_seconds)]
    hpa_sync_seconds: Option<Duration>,
    /// The InterceptorRoutes' request-rate window, in seconds.
    #[arg(long, value_parser = parse_seconds)]
    rate_window_seconds: Option<Duration>,
}

impl TimingArgs {
    fn shortened(&self) -> host::scale::Shortened {
        host::scale::Shortened {
            polling_interval: self.polling_seconds,
            cooldown: self.cooldown_seconds,
            rate_window: self.rate_window_seconds,
        }
    }
}

/// A number of seconds on the command line (fractions allowed, never negative).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// An environment's input file: the one given, or `keda/input/PROFILE.json`.
fn input_path(input: &Option<PathBuf>, profile: Profile) -> PathBuf {
    input
        .clone()
        .unwrap_or_else(|| format!("keda/input/{}.json", profile.name()).into())
}

/// A trace file, with its path in any error.
fn read_trace(path: &std::path::Path) -> Result<scaling::simulate::Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    scaling::simulate::Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The profile whose rendered objects give the rules.
    #[arg(long, value_parser = parse_profile, default_value = "dev")]
    profile: Profile,
    /// The environment's input file [default: keda/input/PROFILE.json].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where the function binaries are [default: beside this one].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    #[command(flatten)]
    timings: TimingArgs,
    /// RabbitMQ's management API, for the queue's depth.
    #[arg(long, default_value = "http://127.0.0.1:15672/api")]
    management: String,
    /// Where each replica logs.
    #[arg(long, default_value = "target/scale")]
    log_dir: PathBuf,
    /// Scale the queue functions on `azure-servicebus` alone, without the host's scaler
    /// (what KEDA does while the scaler is down), to compare the two.
    #[arg(long)]
    without_scaler: bool,
    /// Reach the callee FUNCTION at URL (a fake, a proxy) rather than through the
    /// interceptor; repeatable.
    #[arg(long = "callee", value_name = "FUNCTION=URL", value_parser = parse_callee)]
    callees: Vec<(String, String)>,
}

/// `FUNCTION=URL` on the command line.
fn parse_callee(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, url)) if !name.is_empty() && url.starts_with("http") => {
            Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
        }
        _ => Err(format!(
            "{s:?} is not FUNCTION=URL (an http:// or https:// URL)"
        )),
    }
}

#[derive(Debug, Args)]
struct RecommendArgs {
    /// The profile whose rendered objects are the starting point.
    #[arg(long, value_parser = parse_profile)]
    profile: Profile,
    /// A trace to meet the target on; repeat it to meet the target on each.
    #[arg(long = "trace", required = true)]
    traces: Vec<PathBuf>,
    /// A queue function's queue age p99, in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    queue_age_p99: Duration,
    /// An HTTP function's held-request wait p99, in seconds.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    held_p99: Duration,
    /// One replica's measured capacity per function (scripts/bench-capacity).
    #[arg(long, default_value = "docs/scaling/capacity.json")]
    capacity: PathBuf,
    /// The environment's input file [default: keda/input/PROFILE.json].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Also write the recommendations as JSON here, with the target and the traces (the
    /// record the declarations are checked against).
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// The profile whose rendered objects are simulated.
    #[arg(long, value_parser = parse_profile)]
    profile: Profile,
    /// The trace: CSV lines `start_s,end_s,http:<path>|queue:<name>,per_second`.
    #[arg(long)]
    trace: PathBuf,
    /// One replica's measured capacity per function (scripts/bench-capacity).
    #[arg(long, default_value = "docs/scaling/capacity.json")]
    capacity: PathBuf,
    /// The environment's input file [default: keda/input/PROFILE.json].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Also write report.md, report.json, explain.log and one SVG plot per function here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Count locked messages in ActiveMessageCount (unverified on Service Bus; off).
    #[arg(long)]
    counts_locked: bool,
    /// Seconds from a replica asked for to its container starting (no cluster measures it
    /// here).
    #[arg(long, default_value = "2", value_parser = parse_seconds)]
    pod_start_seconds: Duration,
    /// Seconds simulated after the trace's end, to see the scale-in.
    #[arg(long, default_value_t = 900)]
    tail_seconds: u64,
    /// Pods as `fabrikam scale run` makes them: processes on this machine, started at once
    /// and ready when `/readyz` first answers (probed every 10 ms), instead of containers
    /// behind the Deployment's probes; and its interceptor, which wakes a function's rules
    /// the moment it holds a request.
    #[arg(long)]
    local_pods: bool,
    /// Each function at the rate measured on this machine (bounded by its local servers)
    /// rather than at its CPU limit: to compare with the local run.
    #[arg(long)]
    observed_capacity: bool,
    /// The broker publishes a queue's counts this often (RabbitMQ's management API: every
    /// 5 s by default), and the scaler reads the last ones; unset, it reads them as they are.
    #[arg(long, value_parser = parse_seconds)]
    queue_stats_seconds: Option<Duration>,
    #[command(flatten)]
    timings: TimingArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true))]
struct NewArgs {
    /// The function's name: lower-case letters, digits and '-'.
    name: String,
    /// An HTTP-triggered function, under /api/NAME.
    #[arg(long, group = "kind")]
    http: bool,
    /// A queue-triggered function, on the queue NAME.
    #[arg(long, group = "kind")]
    queue: bool,
    /// The workspace root.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
}

#[derive(Debug, Args)]
struct OpenapiArgs {
    /// Where to write.
    #[arg(long, default_value = "docs/openapi")]
    out: PathBuf,
    /// Write nothing; fail if the folder differs from what would be written.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Args)]
struct FunctionsArgs {
    /// Every declaration as JSON (triggers, outputs, secrets, resources, scaling).
    #[arg(long, conflicts_with = "infra")]
    json: bool,
    /// What infra/main.bicep loads: the contents of infra/functions.json.
    #[arg(long)]
    infra: bool,
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Where a function listens, as NAME=HOST:PORT (one per HTTP function).
    #[arg(long = "upstream", value_name = "NAME=HOST:PORT", value_parser = parse_upstream)]
    upstreams: Vec<(String, std::net::SocketAddr)>,
    /// Only the public prefixes, as the ingress.
    #[arg(long)]
    public: bool,
}

fn parse_upstream(s: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=HOST:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not HOST:PORT: {e}"))?;
    Ok((name.to_owned(), addr))
}

#[derive(Debug, Args)]
struct ManifestsArgs {
    /// The environment profile.
    #[arg(long, value_parser = parse_profile)]
    profile: Profile,
    /// The environment's input file [default: keda/input/PROFILE.json].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where to write [default: keda/PROFILE].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write nothing; fail if the folder differs from what would be written.
    #[arg(long)]
    check: bool,
    /// Replace a function's declaration with one read from this JSON file (repeatable).
    #[arg(long = "declaration", value_name = "FILE")]
    declarations: Vec<PathBuf>,
    /// Reference each function's image by the digest in this images.json
    /// (from `fabrikam images`) instead of by the input's tag.
    #[arg(long, value_name = "IMAGES_JSON")]
    images: Option<PathBuf>,
    /// Take the infra values (ids, registry, namespaces, vaults) from this file of
    /// `infra/main.bicep`'s deployment outputs instead of the input's.
    #[arg(long, value_name = "OUTPUTS_JSON")]
    outputs: Option<PathBuf>,
    /// Render the named developer environment of the dev profile: its own namespace
    /// (`<namespace>-NAME`) and public host (`NAME.<publicHost>`).
    #[arg(long, value_name = "NAME")]
    environment: Option<String>,
    /// Also write the input the manifests were rendered from (after --outputs and
    /// --environment) to this file.
    #[arg(long, value_name = "FILE")]
    write_input: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ImagesArgs {
    /// The folder with one static binary per function, named after it.
    #[arg(long)]
    binaries: PathBuf,
    /// The target triple the binaries were built for (the SBOM lists its crates).
    #[arg(long, default_value = "x86_64-unknown-linux-musl")]
    target: String,
    #[arg(long, default_value = "target/images")]
    out: PathBuf,
    /// The tag every image gets.
    #[arg(long)]
    tag: String,
    /// The commit's time: the only date the images carry.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: u64,
    /// org.opencontainers.image.source: where the code is.
    #[arg(long)]
    source: String,
    /// org.opencontainers.image.revision: the commit.
    #[arg(long)]
    revision: String,
    /// The CA certificates to ship.
    #[arg(long, default_value = images::CA_BUNDLE)]
    ca_bundle: PathBuf,
    /// The Debian ca-certificates version of --ca-bundle, for the SBOM.
    #[arg(long)]
    ca_version: String,
    /// The workspace root, for Cargo.lock and `cargo tree`.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::parse(s).ok_or_else(|| "the profile must be dev or prod".to_owned())
}

/// Why a command stopped. `main` maps it to the exit status and the message, once for
/// every command.
#[derive(Debug)]
enum Failure {
    /// Bad arguments, input or configuration, found before anything ran: exit status 2.
    Input(String),
    /// The command ran and failed: exit status 1.
    Run(String),
}

impl Failure {
    fn input(e: impl std::fmt::Display) -> Self {
        Self::Input(e.to_string())
    }

    fn run(e: impl std::fmt::Display) -> Self {
        Self::Run(e.to_string())
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    mark_process_start();
    let cli = Cli::parse();
    let (name, outcome) = match cli.command.unwrap_or(Command::Dev) {
        Command::Dev => ("fabrikam", dev()),
        Command::Manifests(args) => ("fabrikam manifests", manifests(args)),
        Command::Images(args) => ("fabrikam images", images(args)),
        Command::Gateway(args) => ("fabrikam gateway", gateway(args)),
        Command::New(args) => ("fabrikam new", new_function(&args)),
        Command::Functions(args) => ("fabrikam functions", functions(&args)),
        Command::Processes => ("fabrikam processes", processes()),
        Command::Openapi(args) => ("fabrikam openapi", openapi(&args)),
        Command::Scale(ScaleCommand::Simulate(args)) => {
            ("fabrikam scale simulate", simulate(&args))
        }
        Command::Scale(ScaleCommand::Run(args)) => ("fabrikam scale run", scale_run(args)),
        Command::Scale(ScaleCommand::Recommend(args)) => {
            ("fabrikam scale recommend", recommend(&args))
        }
        Command::Scaler(args) => ("fabrikam scaler", run_scaler(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_scaler(args: scaler::ScalerArgs) -> Outcome {
    let _telemetry = init_telemetry(runtime::telemetry::LogFormat::Auto, None, "fabrikam-scaler");
    async_runtime()?.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        scaler::run(args, shutdown).await.map_err(Failure::run)
    })
}

fn scale_run(args: RunArgs) -> Outcome {
    let mut reader = runtime::EnvReader::new(&ProcessEnv);
    let dev = host::DevOptions::from_env(&mut reader);
    reader.finish().map_err(Failure::input)?;
    let input = input_path(&args.input, args.profile);
    let functions = manifests::declarations();
    let (workloads, _) = host::scale::rendered_workloads(args.profile, &functions, &input)
        .map_err(Failure::input)?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf))
            .ok_or_else(|| {
                Failure::input("cannot tell where the function binaries are; pass --bin-dir")
            })?,
    };
    let options = host::scale::local::LocalOptions {
        bin_dir,
        bind: dev.bind,
        ingress_port: dev.gateway_port,
        internal_port: dev.internal_port,
        shortened: args.timings.shortened(),
        hpa_sync: args.timings.hpa_sync_seconds,
        management: args.management.clone(),
        log_dir: args.log_dir.clone(),
        scaler: !args.without_scaler,
        callees: args.callees.clone(),
    };
    let _telemetry = init_telemetry(runtime::telemetry::LogFormat::Text, None, "fabrikam-scale");
    async_runtime()?.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        host::scale::local::run(&functions, workloads, options, shutdown)
            .await
            .map_err(Failure::run)
    })
}

fn recommend(args: &RecommendArgs) -> Outcome {
    use host::scale::recommend::{Target, recommend, record, table};
    let input = input_path(&args.input, args.profile);
    let functions = manifests::declarations();
    let (workloads, env) = host::scale::rendered_workloads(args.profile, &functions, &input)
        .map_err(Failure::input)?;
    let capacity = host::scale::CapacityFile::read(&args.capacity).map_err(Failure::input)?;
    let traces = args
        .traces
        .iter()
        .map(|path| read_trace(path))
        .collect::<Result<Vec<_>, String>>()
        .map_err(Failure::input)?;
    let target = Target {
        queue_age_p99: args.queue_age_p99,
        held_p99: args.held_p99,
    };
    let flows = host::scale::flows(&functions, &env);
    let found = recommend(
        &workloads,
        &flows,
        &capacity.capacities(false),
        &traces,
        scaling::simulate::SimOptions::default(),
        target,
    )
    .map_err(Failure::input)?;
    let names: Vec<String> = args
        .traces
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if let Some(path) = &args.record {
        let value = serde_json::json!({
            "profile": args.profile.name(),
            "target": {
                "queueAgeP99Seconds": args.queue_age_p99.as_secs_f64(),
                "heldP99Seconds": args.held_p99.as_secs_f64(),
            },
            "traces": names,
            "capacity": args.capacity.display().to_string(),
            "functions": record(&found),
        });
        let text = serde_json::to_string_pretty(&value).map_err(Failure::run)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    print!(
        "# Recommended on {} ({} profile): queue age p99 ≤ {}, held p99 ≤ {}\n\n{}",
        names.join(" and "),
        args.profile.name(),
        scaling::explain::seconds(args.queue_age_p99),
        scaling::explain::seconds(args.held_p99),
        table(&found)
    );
    Ok(())
}

/// Every problem of a simulation, its input's or its own, is the input's: it ran nothing.
fn simulate(args: &SimulateArgs) -> Outcome {
    try_simulate(args).map_err(Failure::Input)
}

fn try_simulate(args: &SimulateArgs) -> Result<(), String> {
    use scaling::simulate::{SimOptions, Simulation};
    let input = input_path(&args.input, args.profile);
    let functions = manifests::declarations();
    let (mut workloads, env) = host::scale::rendered_workloads(args.profile, &functions, &input)?;
    let shortened = args.timings.shortened();
    for w in &mut workloads {
        let said = shortened.apply(w);
        if !said.is_empty() {
            println!(
                "{}: timings shortened for this run: {}",
                w.name,
                said.join(", ")
            );
        }
    }
    let capacity = host::scale::CapacityFile::read(&args.capacity)?;
    let trace = read_trace(&args.trace)?;
    let mut options = SimOptions {
        pod_start: args.pod_start_seconds,
        tail: Duration::from_secs(args.tail_seconds),
        queue_stats_interval: args.queue_stats_seconds,
        ..SimOptions::default()
    };
    options.autoscaler.counts_locked = args.counts_locked;
    if let Some(sync) = args.timings.hpa_sync_seconds {
        options.autoscaler.hpa_sync = sync;
    }
    if args.local_pods {
        options.pod_start = Duration::ZERO;
        options.readiness_probe = Some(host::scale::local::READINESS_PROBE);
        options.wake_on_hold = true;
    }
    let flows = host::scale::flows(&functions, &env);
    let simulation = Simulation::new(
        workloads,
        &flows,
        &capacity.capacities(args.observed_capacity),
        options,
    )?;
    let report = simulation.run(&trace)?;
    let title = format!(
        "{} on the {} profile",
        args.trace.display(),
        args.profile.name()
    );
    let markdown = host::scale::markdown(&report, &title);
    print!("{markdown}");
    if let Some(out) = &args.out {
        let write = |name: &str, text: &str| {
            std::fs::write(out.join(name), text)
                .map_err(|e| format!("{}: {e}", out.join(name).display()))
        };
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        write("report.md", &markdown)?;
        write("explain.log", &report.explain())?;
        let json =
            serde_json::to_string_pretty(&host::scale::json(&report)).map_err(|e| e.to_string())?;
        write("report.json", &json)?;
        for (i, f) in report.functions.iter().enumerate() {
            let plot = scaling::simulate::plot(&report, i, &format!("{} · {title}", f.name));
            write(&format!("{}.svg", f.name), &plot)?;
        }
    }
    Ok(())
}

fn openapi(args: &OpenapiArgs) -> Outcome {
    let apis = async_runtime()?
        .block_on(host::openapi::function_apis())
        .map_err(Failure::run)?;
    let docs = host::openapi::documents(&apis).map_err(Failure::run)?;
    let files = host::openapi::files(&docs);
    if args.check {
        let problems = host::generated::differences(&files, &args.out);
        if problems.is_empty() {
            return Ok(());
        }
        return Err(Failure::Run(format!(
            "{}\nrun `cargo run -p host -- openapi` and commit the result",
            problems.join("\n")
        )));
    }
    host::generated::write(&files, &args.out)
        .map_err(|e| Failure::Run(format!("{}: {e}", args.out.display())))?;
    for name in files.keys() {
        println!("{}", args.out.join(name).display());
    }
    Ok(())
}

fn processes() -> Outcome {
    let mut reader = runtime::EnvReader::new(&ProcessEnv);
    let options = host::DevOptions::from_env(&mut reader);
    reader.finish().map_err(Failure::input)?;
    let plan = host::processes::plan(&manifests::declarations(), &options);
    let text = serde_json::to_string_pretty(&plan).map_err(Failure::run)?;
    println!("{text}");
    Ok(())
}

fn dev() -> Outcome {
    let config = host::DevConfig::from_env(&ProcessEnv).map_err(Failure::input)?;
    // Kept until the async runtime is gone, so the last spans are exported.
    let _telemetry = init_telemetry(
        config.host.log_format,
        config.host.otlp.as_ref(),
        "fabrikam-dev",
    );
    async_runtime()?.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        match host::start_dev(config, shutdown).await {
            Ok(system) => {
                system.stopped().await;
                runtime::launch::close_stores().await;
                tracing::info!("stopped");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                Err(Failure::run(e))
            }
        }
    })
}

fn manifests(args: ManifestsArgs) -> Outcome {
    let profile = args.profile;
    let input = input_path(&args.input, profile);
    let out = args
        .out
        .unwrap_or_else(|| format!("keda/{}", profile.name()).into());
    if args.environment.is_some() && profile != Profile::Dev {
        return Err(Failure::input(
            "--environment renders from the dev profile only",
        ));
    }
    let rendered = manifests::read_input(&input).and_then(|mut env| {
        let mut functions = manifests::declarations();
        for path in &args.declarations {
            manifests::replace_declaration(&mut functions, manifests::read_declaration(path)?);
        }
        if let Some(path) = &args.outputs {
            manifests::apply_outputs(&mut env, path, &functions)?;
        }
        if let Some(name) = &args.environment {
            env.for_developer(name)
                .map_err(|e| manifests::ManifestError(vec![e]))?;
        }
        if let Some(path) = &args.images {
            manifests::pin_images(&mut env, path)?;
        }
        let files = manifests::render(profile, &functions, &env)?;
        if let Some(path) = &args.write_input {
            manifests::write_input(&env, path)?;
        }
        Ok(files)
    });
    let files = rendered.map_err(|e| Failure::Run(format!("cannot generate:\n{e}")))?;
    if args.check {
        let differences = manifests::differences(&files, &out);
        if differences.is_empty() {
            return Ok(());
        }
        return Err(Failure::Run(format!(
            "{} is not what the declarations give (run `fabrikam manifests --profile {}`):\n{}",
            out.display(),
            profile.name(),
            differences.join("\n")
        )));
    }
    manifests::write(&files, &out)
        .map_err(|e| Failure::Run(format!("cannot write {}: {e}", out.display())))?;
    println!("wrote {} files to {}", files.len(), out.display());
    Ok(())
}

fn images(args: ImagesArgs) -> Outcome {
    let options = images::Options {
        workspace: args.workspace,
        binaries: args.binaries,
        target: args.target,
        out: args.out,
        tag: args.tag,
        source_date_epoch: args.source_date_epoch,
        source: args.source,
        revision: args.revision,
        ca_bundle: args.ca_bundle,
        ca_version: args.ca_version,
    };
    let functions = manifests::declarations();
    let mut names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    // The queue functions' KEDA scaler ships beside them (keda/<profile>/scaler.yaml).
    if functions.iter().any(|f| f.queue_trigger().is_some()) {
        names.push(images::SCALER_IMAGE);
    }
    let catalog = images::build(&names, &options).map_err(Failure::run)?;
    for image in &catalog.images {
        println!(
            "{}:{}@{} {:.2} MiB",
            image.name,
            image.tag,
            image.digest,
            image.compressed_size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

fn gateway(args: GatewayArgs) -> Outcome {
    let functions = manifests::declarations();
    let upstream = |name: &str| {
        args.upstreams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
    };
    let unknown: Vec<&str> = args
        .upstreams
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !functions.iter().any(|f| f.name == *n))
        .collect();
    if !unknown.is_empty() {
        return Err(Failure::Input(format!(
            "not functions: {}",
            unknown.join(", ")
        )));
    }
    let routes = host::gateway_routes(&functions, upstream, args.public).map_err(Failure::input)?;
    let mut reader = runtime::EnvReader::new(&ProcessEnv);
    let host = runtime::HostConfig::from_env(&mut reader);
    reader.finish().map_err(Failure::input)?;
    let _telemetry = init_telemetry(host.log_format, host.otlp.as_ref(), "fabrikam-gateway");
    async_runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::Run(format!("cannot listen on {}: {e}", args.listen)))?;
        let shutdown = Shutdown::new();
        shutdown_on_signals(shutdown.clone());
        for route in &routes {
            tracing::info!(prefix = %route.prefix, upstream = %route.upstream, "gateway route");
        }
        tracing::info!(addr = %args.listen, "gateway listening");
        let app = host::gateway::gateway(routes);
        runtime::http::serve(listener, app, shutdown, host.shutdown_grace)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "gateway failed");
                Failure::run(e)
            })
    })
}

fn functions(args: &FunctionsArgs) -> Outcome {
    let functions = manifests::declarations();
    let text = if args.infra {
        host::infra::functions_json(&functions)
    } else if args.json {
        serde_json::to_string_pretty(&functions).map(|mut t| {
            t.push('\n');
            t
        })
    } else {
        Ok(functions.iter().map(|f| format!("{}\n", f.name)).collect())
    };
    print!("{}", text.map_err(Failure::run)?);
    Ok(())
}

fn new_function(args: &NewArgs) -> Outcome {
    let kind = if args.http {
        host::scaffold::Kind::Http
    } else {
        host::scaffold::Kind::Queue
    };
    let written =
        host::scaffold::create(&args.workspace, &args.name, kind).map_err(Failure::run)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!(
        "\nnext: scripts/generate (keda/ and infra/functions.json), cargo test -p {}, \
         scripts/dev; docs/writing-a-function.md",
        args.name
    );
    Ok(())
}

/// The multi-threaded tokio runtime the long-running commands serve on.
fn async_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the async runtime: {e}")))
}
