//! A function's replicas as processes on this machine, as a ReplicaSet keeps pods: started
//! up to the asked-for count, each ready when its `/readyz` answers 200, stopped with
//! SIGTERM (the newest first, as the ReplicaSet picks) and killed if still running after
//! the pod's `terminationGracePeriodSeconds`. The ready ones are published to the
//! interceptor as its endpoints.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use scaling::autoscaler::Replicas;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Something that happened to a replica, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEvent {
    Started {
        pod: String,
        pid: u32,
        addr: SocketAddr,
    },
    Ready {
        pod: String,
        after: Duration,
    },
    Stopping {
        pod: String,
    },
    Exited {
        pod: String,
        after_stop: Option<Duration>,
        status: String,
    },
    Killed {
        pod: String,
        grace: Duration,
    },
}

impl std::fmt::Display for PodEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PodEvent::Started { pod, pid, addr } => {
                write!(f, "{pod} started (pid {pid}) on {addr}")
            }
            PodEvent::Ready { pod, after } => {
                write!(f, "{pod} ready {} ms after it started", after.as_millis())
            }
            PodEvent::Stopping { pod } => write!(f, "{pod} sent SIGTERM"),
            PodEvent::Exited {
                pod,
                after_stop: Some(d),
                status,
            } => {
                write!(
                    f,
                    "{pod} exited ({status}) {} ms after SIGTERM",
                    d.as_millis()
                )
            }
            PodEvent::Exited {
                pod,
                after_stop: None,
                status,
            } => write!(f, "{pod} exited unasked ({status})"),
            PodEvent::Killed { pod, grace } => {
                write!(
                    f,
                    "{pod} killed: still running {} s after SIGTERM",
                    grace.as_secs()
                )
            }
        }
    }
}

struct Pod {
    name: String,
    addr: SocketAddr,
    child: Child,
    started: Instant,
    ready: bool,
    stopping: Option<Instant>,
}

/// One function's replicas.
pub struct ReplicaSet {
    pub function: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    bind: IpAddr,
    grace: Duration,
    log_dir: PathBuf,
    spec: u32,
    pods: Vec<Pod>,
    next: u64,
    endpoints: watch::Sender<Vec<SocketAddr>>,
    client: Client<HttpConnector, Body>,
}

impl std::fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("function", &self.function)
            .field("spec", &self.spec)
            .field("pods", &self.pods.len())
            .finish()
    }
}

impl ReplicaSet {
    /// Replicas of the binary at `binary`, each with `env` on top of this process's
    /// environment and its own `HOST`/`PORT`.
    pub fn new(
        function: &str,
        binary: PathBuf,
        env: Vec<(String, String)>,
        bind: IpAddr,
        grace: Duration,
        log_dir: PathBuf,
    ) -> Self {
        let (endpoints, _) = watch::channel(Vec::new());
        Self {
            function: function.to_owned(),
            binary,
            env,
            bind,
            grace,
            log_dir,
            spec: 0,
            pods: Vec::new(),
            next: 1,
            endpoints,
            client: runtime::client::proxy_client(),
        }
    }

    /// The ready replicas' addresses, as they change.
    pub fn endpoints(&self) -> watch::Receiver<Vec<SocketAddr>> {
        self.endpoints.subscribe()
    }

    pub fn replicas(&self) -> Replicas {
        let live = self.pods.iter().filter(|p| p.stopping.is_none());
        let (status, ready) = live.fold((0, 0), |(s, r), p| (s + 1, r + u32::from(p.ready)));
        Replicas {
            spec: self.spec,
            status,
            ready,
        }
    }

    /// Processes that exist, stopping ones included.
    pub fn processes(&self) -> usize {
        self.pods.len()
    }

    /// Asks for `n` replicas: starts or stops processes to match.
    pub fn scale_to(&mut self, n: u32) -> Vec<PodEvent> {
        self.spec = n;
        self.reconcile()
    }

    fn reconcile(&mut self) -> Vec<PodEvent> {
        let mut events = Vec::new();
        let live = self.pods.iter().filter(|p| p.stopping.is_none()).count() as u32;
        for _ in live..self.spec {
            match self.start() {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::error!(function = %self.function, error = %e, "cannot start a replica")
                }
            }
        }
        if live > self.spec {
            // Not ready first, then the newest (the ReplicaSet's order; nothing looks at
            // the work a replica holds).
            let mut victims: Vec<usize> = (0..self.pods.len())
                .filter(|&i| self.pods[i].stopping.is_none())
                .collect();
            victims.sort_by_key(|&i| (self.pods[i].ready, std::cmp::Reverse(self.pods[i].started)));
            for &i in victims.iter().take((live - self.spec) as usize) {
                let pod = &mut self.pods[i];
                pod.stopping = Some(Instant::now());
                pod.ready = false;
                terminate(&pod.child);
                events.push(PodEvent::Stopping {
                    pod: pod.name.clone(),
                });
            }
            self.publish();
        }
        events
    }

    fn start(&mut self) -> std::io::Result<PodEvent> {
        // A free port: bound, read, released; the replica binds it a moment later.
        let addr = std::net::TcpListener::bind(SocketAddr::new(self.bind, 0))?.local_addr()?;
        let name = format!("{}-{}", self.function, self.next);
        self.next += 1;
        std::fs::create_dir_all(&self.log_dir)?;
        let log = std::fs::File::create(self.log_dir.join(format!("{name}.log")))?;
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(runtime::contract::env::HOST, addr.ip().to_string())
            .env(runtime::contract::env::PORT, addr.port().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        self.pods.push(Pod {
            name: name.clone(),
            addr,
            child,
            started: Instant::now(),
            ready: false,
            stopping: None,
        });
        Ok(PodEvent::Started {
            pod: name,
            pid,
            addr,
        })
    }

    /// Probes the replicas that are not ready yet, reaps those that exited, kills those
    /// past their grace, and starts replacements for any that died unasked.
    pub async fn tick(&mut self) -> Vec<PodEvent> {
        let mut events = Vec::new();
        let probes: Vec<_> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.ready && p.stopping.is_none())
            .map(|(i, p)| {
                let client = self.client.clone();
                let url = format!("http://{}/readyz", p.addr);
                async move { (i, probe(&client, &url).await) }
            })
            .collect();
        let mut became_ready = false;
        for (i, ready) in futures_util::future::join_all(probes).await {
            if ready {
                let pod = &mut self.pods[i];
                pod.ready = true;
                became_ready = true;
                events.push(PodEvent::Ready {
                    pod: pod.name.clone(),
                    after: pod.started.elapsed(),
                });
            }
        }
        let mut exited_unasked = false;
        let grace = self.grace;
        self.pods.retain_mut(|pod| {
            match pod.child.try_wait() {
                Ok(Some(status)) => {
                    exited_unasked |= pod.stopping.is_none();
                    events.push(PodEvent::Exited {
                        pod: pod.name.clone(),
                        after_stop: pod.stopping.map(|s| s.elapsed()),
                        status: status.to_string(),
                    });
                    return false;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(pod = %pod.name, error = %e, "cannot check the replica"),
            }
            if let Some(since) = pod.stopping
                && since.elapsed() > grace
            {
                let _ = pod.child.start_kill();
                events.push(PodEvent::Killed {
                    pod: pod.name.clone(),
                    grace,
                });
                return false;
            }
            true
        });
        if became_ready || exited_unasked {
            self.publish();
        }
        if exited_unasked {
            events.extend(self.reconcile());
        }
        events
    }

    fn publish(&self) {
        let ready: Vec<SocketAddr> = self
            .pods
            .iter()
            .filter(|p| p.ready && p.stopping.is_none())
            .map(|p| p.addr)
            .collect();
        self.endpoints.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready.clone();
            changed
        });
    }
}

/// One probe: 200 from `url` in time.
pub(super) async fn probe(client: &Client<HttpConnector, Body>, url: &str) -> bool {
    let Ok(request) = http::Request::get(url).body(Body::empty()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, client.request(request)).await,
        Ok(Ok(response)) if response.status() == http::StatusCode::OK
    )
}

/// SIGTERM, as the kubelet sends it. Through `kill(1)`: the standard library sends only
/// SIGKILL, and the workspace forbids the `unsafe` a direct `kill(2)` call needs.
pub(super) fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if !matches!(sent, Ok(s) if s.success()) {
            tracing::warn!(pid, "cannot send SIGTERM");
        }
    }
}
