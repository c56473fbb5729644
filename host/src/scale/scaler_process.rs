//! The host's scaler as its own process beside the replicas (`fabrikam scaler`, this same
//! binary), kept running as its Deployment keeps its pod: started on free ports, ready when
//! its `/healthz` answers, and started again when it exits, so a run can lose it under
//! load and show KEDA falling back to `azure-servicebus` and coming back. A process rather
//! than a task in the run: only a process can be killed -9 as a pod is.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runtime::lifecycle::Shutdown;
use scaling::explain::seconds;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::replicas::{probe, terminate};

/// How long the scaler has to answer `/healthz` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The pause before it is started again: the kubelet's first restart is immediate, but
/// the run should not spin on a scaler that cannot start.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// How long it has to stop after SIGTERM (its pod's grace).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the scaler answers.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// KEDA's calls.
    pub grpc: SocketAddr,
    /// The replicas' reports, `/healthz`, `/readyz`, `/metrics`.
    pub http: SocketAddr,
}

/// The running scaler and the task that keeps it running.
#[derive(Debug)]
pub struct ScalerProcess {
    pub addresses: Addresses,
    stop: Shutdown,
    supervisor: JoinHandle<()>,
}

/// How to start it.
struct Spawn {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl Spawn {
    fn start(&self) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))
    }
}

impl ScalerProcess {
    /// Starts `fabrikam scaler` for `queues`, reading their backlog from RabbitMQ's
    /// management API, and waits until it answers. `epoch` is the run's t=0, for the log.
    pub async fn start(
        queues: &[String],
        management: &str,
        bind: IpAddr,
        log_dir: &Path,
        epoch: Instant,
    ) -> Result<Self, String> {
        let addresses = Addresses {
            grpc: free_port(bind)?,
            http: free_port(bind)?,
        };
        let binary = std::env::current_exe().map_err(|e| format!("cannot find fabrikam: {e}"))?;
        let mut args = vec!["scaler".to_owned()];
        for queue in queues {
            args.extend(["--queue".to_owned(), queue.clone()]);
        }
        args.extend(
            [
                "--rabbitmq-management",
                management,
                "--bind",
                &bind.to_string(),
                "--grpc-port",
                &addresses.grpc.port().to_string(),
                "--http-port",
                &addresses.http.port().to_string(),
            ]
            .map(str::to_owned),
        );
        std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let spawn = Spawn {
            binary,
            args,
            log: log_dir.join("scaler.log"),
        };
        let mut child = spawn.start()?;
        say_started(&child, epoch);
        if let Err(e) = until_healthy(&mut child, addresses.http).await {
            return Err(format!(
                "the host's scaler did not start: {e}; its log: {}",
                spawn.log.display()
            ));
        }
        let stop = Shutdown::new();
        let supervisor = tokio::spawn(supervise(spawn, child, epoch, stop.clone()));
        Ok(ScalerProcess {
            addresses,
            stop,
            supervisor,
        })
    }

    /// SIGTERM, then SIGKILL after its grace; returns once it is gone.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.supervisor.await;
    }
}

/// Keeps the scaler running until `stop`: an exit is said and followed by a new start on
/// the same ports, as the kubelet restarts a container behind the same Service.
async fn supervise(spawn: Spawn, mut child: Child, epoch: Instant, stop: Shutdown) {
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                println!(
                    "  t={} the host's scaler exited unasked ({status}); started again in {}, \
                     as its Deployment would",
                    seconds(epoch.elapsed()),
                    seconds(RESTART_AFTER)
                );
                tokio::select! {
                    () = tokio::time::sleep(RESTART_AFTER) => {}
                    () = stop.wait() => return,
                }
                match spawn.start() {
                    Ok(c) => {
                        child = c;
                        say_started(&child, epoch);
                    }
                    Err(e) => println!("  t={} the host's scaler: {e}", seconds(epoch.elapsed())),
                }
            }
            () = stop.wait() => {
                terminate(&child);
                if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                return;
            }
        }
    }
}

fn say_started(child: &Child, epoch: Instant) {
    println!(
        "  t={} the host's scaler started (pid {})",
        seconds(epoch.elapsed()),
        child.id().unwrap_or(0)
    );
}

/// Waits for `/healthz` to answer 200; an exit before that is the error.
async fn until_healthy(child: &mut Child, http: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let client = runtime::client::proxy_client();
    let url = format!("http://{http}/healthz");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        if probe(&client, &url).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "no answer from {url} in {}",
        seconds(START_TIMEOUT)
    ))
}

/// A free port: bound, read, released; the scaler binds it a moment later (as the
/// replicas' ports are chosen).
fn free_port(bind: IpAddr) -> Result<SocketAddr, String> {
    std::net::TcpListener::bind(SocketAddr::new(bind, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on {bind}: {e}"))
}
