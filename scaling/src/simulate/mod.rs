//! Replays a trace through the scaling rules in virtual time: the same
//! [`Autoscaler`] the local run uses, in front of a model of pods, a broker queue and the
//! interceptor.
//!
//! The model, each part a stated assumption:
//! - **Work.** A unit (a request or a message) waits in its function's queue (the broker's,
//!   or the interceptor's while no replica is ready) until a replica has a free handler
//!   slot; then it takes the replica's CPU for `1 / per_second` (one replica serves
//!   `per_second` units at its CPU limit, first come first served), then makes its calls to
//!   other functions one after another, holding its slot until the last answers. A function
//!   that sends to a queue does so when its unit is done.
//! - **Pods.** A new pod's container starts `pod_start` after it is asked for; its process
//!   is up `cold_start` later; it is ready at the first startup-probe success after that
//!   (probes every `periodSeconds` from the container's start), or, with no startup probe,
//!   at the first readiness probe after it. A pod asked to stop takes no new work, finishes
//!   what it holds and exits; what is still running at `terminationGracePeriodSeconds` is cut
//!   off (a message goes back to the queue and is handled again, a request fails). Pods
//!   stopped in a scale-in are the ReplicaSet's choice: not ready first, then the newest.
//! - **Interceptor.** A request to an HTTP function with no ready replica is held, and
//!   answered 504 when the route's readiness timeout passes first.

mod report;
mod svg;
pub mod trace;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

pub use report::{FunctionReport, Report, Sample};
pub use svg::plot;
pub use trace::{Target, Trace};

use crate::autoscaler::{Autoscaler, Options, Replicas, Signals};
use crate::http_addon::Counters;
use crate::in_flight::{InFlightModel, InFlightReading};
use crate::objects::Workload;
use crate::servicebus::QueueCounts;

/// How work moves between the functions: what triggers each, and what each emits.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionFlow {
    pub name: String,
    /// HTTP path prefixes it serves (compared ignoring case, whole segments).
    pub path_prefixes: Vec<String>,
    /// The queue it consumes.
    pub queue: Option<String>,
    /// What one unit of its work sends on.
    pub emits: Vec<Emit>,
    /// Units one replica holds at once: the queue trigger's handler limit, or, for HTTP,
    /// connections (effectively unbounded).
    pub handler_slots: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// A message to this queue when the unit is done.
    Message(String),
    /// A request to this function, awaited before the unit is done.
    Call(String),
}

/// One replica's measured capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Units per second one replica handles at its CPU limit.
    pub per_second: f64,
    /// From the process starting to it answering `/readyz`.
    pub cold_start: Duration,
    /// How long a unit keeps its handler slot after its CPU work, waiting on something the
    /// flow does not model as a call (a slow downstream, a timer). Zero for CPU-bound work.
    pub latency: Duration,
}

/// Settings of the model that neither the objects nor the measurements carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    /// The simulation's time step: the autoscalers run every step.
    pub step: Duration,
    /// From a replica being asked for to its container starting: scheduling, image (cached)
    /// and container creation. Not measured here (no cluster): a visible parameter.
    pub pod_start: Duration,
    /// How long to go on after the trace's last segment, to see the scale-in.
    pub tail: Duration,
    /// Probe readiness this often from the process's start, in place of the Deployment's
    /// probes (the local run's replicas).
    pub readiness_probe: Option<Duration>,
    /// The broker reports a queue's counts as of its last statistics refresh, this often
    /// (RabbitMQ's management API: `collect_statistics_interval`, 5 s by default); `None`
    /// reads them as they are.
    pub queue_stats_interval: Option<Duration>,
    /// The host's scaler (`fabrikam scaler`): how often it reads a backlog, and how often it
    /// pushes `true` while a queue stays busy.
    pub scaler_poll: Duration,
    pub scaler_keepalive: Duration,
    /// A request held at zero wakes its function's rules at once, as the local run's
    /// interceptor does (`fabrikam scale run`), rather than at the add-on's next 500 ms
    /// sample and 200 ms push.
    pub wake_on_hold: bool,
    pub autoscaler: Options,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            step: Duration::from_millis(100),
            pod_start: Duration::from_secs(2),
            tail: Duration::from_secs(900),
            readiness_probe: None,
            queue_stats_interval: None,
            scaler_poll: Duration::from_secs(1),
            scaler_keepalive: Duration::from_secs(5),
            wake_on_hold: false,
            autoscaler: Options::default(),
        }
    }
}

/// A function of the simulation: its flow, capacity, autoscaler and pods.
struct Function {
    flow: FunctionFlow,
    capacity: Capacity,
    /// The functions its calls go to, by index, in order.
    calls: Vec<usize>,
    /// The functions that consume the queues it sends to, by index.
    sends: Vec<usize>,
    /// The Deployment's pod facts and the InterceptorRoute's, from the workload.
    pod_spec: crate::objects::Pods,
    route: Option<crate::objects::Route>,
    max_replicas: u32,
    spec: u32,
    pods: Vec<Pod>,
    /// Units waiting for a slot: the broker queue, or requests held by the interceptor.
    waiting: VecDeque<Unit>,
    request_count: u64,
    report: FunctionReport,
    /// Units in service, for the interceptor's concurrency and the broker's locked count.
    busy: u64,
    /// The most units in service at once since the scaler last looked: what the replicas
    /// report (each reports the most it held since its previous report, so a message
    /// handled between two reports is still seen).
    busy_peak: u64,
    /// The queue's counts as the broker last published them (with a statistics interval).
    published: QueueCounts,
    /// The host's scaler, when the workload has an `external-push` trigger to it.
    in_flight: Option<InFlightModel>,
}

#[derive(Debug, Clone)]
struct Unit {
    id: u64,
    arrived: Duration,
    /// The job waiting for this call: (function, unit).
    parent: Option<(usize, u64)>,
    /// Arrived while no replica was ready.
    cold: bool,
}

struct Job {
    unit: Unit,
    calls_left: VecDeque<usize>,
}

struct Pod {
    id: u64,
    created: Duration,
    ready_at: Duration,
    stopping: Option<Duration>,
    cpu_free_at: Duration,
    jobs: HashMap<u64, Job>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A unit's CPU work on a pod is done: (function, pod, unit).
    CpuDone(usize, u64, u64),
}

/// The simulation of one system.
pub struct Simulation {
    functions: Vec<Function>,
    /// Each function's controllers, beside it (stepped while the functions are read).
    autoscalers: Vec<Autoscaler>,
    options: SimOptions,
    events: BinaryHeap<Reverse<(Duration, Event)>>,
    next_unit: u64,
    next_pod: u64,
    now: Duration,
    changes: Vec<crate::explain::Change>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("functions", &self.functions.len())
            .field("now", &self.now)
            .finish()
    }
}

impl Simulation {
    /// A system of `workloads`, each with its flow and capacity (by name; every workload
    /// needs both).
    pub fn new(
        workloads: Vec<Workload>,
        flows: &[FunctionFlow],
        capacity: &BTreeMap<String, Capacity>,
        options: SimOptions,
    ) -> Result<Self, String> {
        let mut problems = Vec::new();
        let mut functions = Vec::new();
        let mut autoscalers = Vec::new();
        let mut workloads = workloads;
        for w in &workloads {
            if !flows.iter().any(|f| f.name == w.name) {
                problems.push(format!("{}: no flow (what triggers it)", w.name));
            }
        }
        // In the flows' order (the registry's), which the report keeps.
        for flow in flows {
            let Some(at) = workloads.iter().position(|w| w.name == flow.name) else {
                continue;
            };
            let w = workloads.swap_remove(at);
            match capacity.get(&w.name) {
                Some(cap) if cap.per_second > 0.0 => {
                    let min = w.scaled_object.min_replicas;
                    let autoscaler = Autoscaler::new(w.clone(), options.autoscaler, Duration::ZERO);
                    let in_flight = autoscaler.in_flight_queue().map(|_| {
                        InFlightModel::with(options.scaler_poll, options.scaler_keepalive)
                    });
                    autoscalers.push(autoscaler);
                    functions.push(Function {
                        flow: flow.clone(),
                        capacity: *cap,
                        calls: Vec::new(),
                        sends: Vec::new(),
                        pod_spec: w.deployment.clone(),
                        route: w.route.clone(),
                        max_replicas: w.scaled_object.max_replicas,
                        spec: min,
                        pods: Vec::new(),
                        waiting: VecDeque::new(),
                        request_count: 0,
                        report: FunctionReport::new(&flow.name),
                        busy: 0,
                        busy_peak: 0,
                        published: QueueCounts::default(),
                        in_flight,
                    });
                }
                Some(_) => problems.push(format!("{}: capacity must be above 0", w.name)),
                None => problems.push(format!("{}: no measured capacity", w.name)),
            }
        }
        for f in &functions {
            for emit in &f.flow.emits {
                if let Emit::Call(callee) = emit
                    && !functions.iter().any(|g| &g.flow.name == callee)
                {
                    problems.push(format!(
                        "{}: calls {callee}, which is not simulated",
                        f.flow.name
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let index_of = |name: &str| {
            functions
                .iter()
                .position(|g: &Function| g.flow.name == name)
        };
        let links: Vec<(Vec<usize>, Vec<usize>)> = functions
            .iter()
            .map(|f| {
                let mut calls = Vec::new();
                let mut sends = Vec::new();
                for emit in &f.flow.emits {
                    match emit {
                        Emit::Call(callee) => calls.extend(index_of(callee)),
                        Emit::Message(queue) => sends.extend(consumer(&functions, queue)),
                    }
                }
                (calls, sends)
            })
            .collect();
        for (f, (calls, sends)) in functions.iter_mut().zip(links) {
            f.calls = calls;
            f.sends = sends;
        }
        let mut sim = Self {
            autoscalers,
            functions,
            options,
            events: BinaryHeap::new(),
            next_unit: 0,
            next_pod: 0,
            now: Duration::ZERO,
            changes: Vec::new(),
        };
        // Replicas at the minimum from the start, ready (as after a rollout).
        for i in 0..sim.functions.len() {
            for _ in 0..sim.functions[i].spec {
                sim.add_pod(i, true);
            }
        }
        Ok(sim)
    }

    /// Runs `trace` to its end plus the tail and returns the report.
    pub fn run(mut self, trace: &Trace) -> Result<Report, String> {
        let targets = self.resolve(trace)?;
        let end = trace.end() + self.options.tail;
        let step = self.options.step;
        // Arrivals made so far per segment: each step makes those due by its end, so a
        // segment of `r` a second over `d` seconds makes exactly floor(r × d) (summing
        // fractions per step would lose one to rounding now and then).
        let mut made = vec![0u64; trace.segments.len()];
        let mut next_sample = Duration::ZERO;
        let mut samples = Vec::new();
        while self.now <= end {
            let step_end = self.now + step;
            // Arrivals in this step, spread evenly over it.
            for (i, segment) in trace.segments.iter().enumerate() {
                if step_end <= segment.start || self.now >= segment.end {
                    continue;
                }
                let elapsed = (step_end.min(segment.end) - segment.start).as_secs_f64();
                let due_by_now = (segment.per_second * elapsed + 1e-9).floor() as u64;
                let due = due_by_now.saturating_sub(made[i]);
                made[i] = due_by_now;
                let fi = targets[i];
                let gap = step / u32::try_from(due.max(1)).unwrap_or(u32::MAX);
                for k in 0..due {
                    let at = self.now + gap * u32::try_from(k).unwrap_or(u32::MAX);
                    self.process_events(at);
                    self.arrive(fi, at, None);
                }
            }
            self.process_events(step_end);
            self.now = step_end;
            self.housekeep();
            self.autoscale();
            if self.now >= next_sample {
                samples.push(self.sample());
                next_sample += Duration::from_secs(1);
            }
        }
        let duration = self.now;
        // Pods still running at the end are counted up to it.
        for f in &mut self.functions {
            for p in &f.pods {
                f.report.replica_seconds += (duration - p.created).as_secs_f64();
            }
        }
        let broker_minutes = duration.as_secs_f64() / 60.0;
        let functions = self
            .functions
            .into_iter()
            .zip(&self.autoscalers)
            .map(|(mut f, a)| {
                // KEDA's azure-servicebus reads, and the host's scaler's own.
                let reads = a.broker_reads + f.in_flight.as_ref().map_or(0, |m| m.reads);
                f.report.finish(
                    duration,
                    f.max_replicas,
                    reads as f64 / broker_minutes.max(1e-9),
                );
                f.report
            })
            .collect();
        Ok(Report {
            duration,
            functions,
            changes: self.changes,
            samples,
        })
    }

    /// The function each segment's arrivals go to.
    fn resolve(&self, trace: &Trace) -> Result<Vec<usize>, String> {
        let mut problems = Vec::new();
        let mut targets = Vec::new();
        for s in &trace.segments {
            let found = match &s.target {
                Target::Http(path) => self
                    .functions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| {
                        f.flow
                            .path_prefixes
                            .iter()
                            .filter(|p| serves(p, path))
                            .map(|p| (p.len(), i))
                            .max()
                    })
                    .max()
                    .map(|(_, i)| i),
                Target::Queue(q) => consumer(&self.functions, q),
            };
            match found {
                Some(i) => targets.push(i),
                None => problems.push(format!("no simulated function takes {:?}", s.target)),
            }
        }
        if problems.is_empty() {
            Ok(targets)
        } else {
            problems.dedup();
            Err(problems.join("\n"))
        }
    }

    fn arrive(&mut self, fi: usize, at: Duration, parent: Option<(usize, u64)>) {
        let id = self.next_unit;
        self.next_unit += 1;
        let f = &mut self.functions[fi];
        let cold = !f.pods.iter().any(|p| p.serving(at));
        f.request_count += 1;
        f.report.arrivals += 1;
        f.waiting.push_back(Unit {
            id,
            arrived: at,
            parent,
            cold,
        });
        self.dispatch(fi, at);
    }

    /// Starts waiting units on serving pods with a free slot, least loaded first.
    fn dispatch(&mut self, fi: usize, at: Duration) {
        loop {
            let f = &mut self.functions[fi];
            if f.waiting.is_empty() {
                return;
            }
            let slots = f.flow.handler_slots as usize;
            let Some(pod) = f
                .pods
                .iter_mut()
                .filter(|p| p.serving(at) && p.jobs.len() < slots)
                .min_by_key(|p| p.jobs.len())
            else {
                return;
            };
            let Some(unit) = f.waiting.pop_front() else {
                return;
            };
            f.report.waits.push((at - unit.arrived).as_secs_f64());
            if unit.cold {
                f.report.cold_units += 1;
            }
            let cpu = Duration::from_secs_f64(1.0 / f.capacity.per_second);
            let start = at.max(pod.cpu_free_at);
            pod.cpu_free_at = start + cpu;
            let (pod_id, unit_id) = (pod.id, unit.id);
            pod.jobs.insert(
                unit.id,
                Job {
                    unit,
                    calls_left: f.calls.iter().copied().collect(),
                },
            );
            f.busy += 1;
            f.busy_peak = f.busy_peak.max(f.busy);
            let done = pod.cpu_free_at + f.capacity.latency;
            self.events
                .push(Reverse((done, Event::CpuDone(fi, pod_id, unit_id))));
        }
    }

    fn process_events(&mut self, until: Duration) {
        while let Some(Reverse((at, _))) = self.events.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, event))) = self.events.pop() else {
                break;
            };
            match event {
                Event::CpuDone(fi, pod, unit) => self.advance_job(fi, pod, unit, at),
            }
        }
    }

    /// A job's CPU work or one of its calls is done: the next call, or the job is done.
    fn advance_job(&mut self, fi: usize, pod_id: u64, unit_id: u64, at: Duration) {
        let Some(pod) = self.functions[fi].pods.iter_mut().find(|p| p.id == pod_id) else {
            return;
        };
        let Some(job) = pod.jobs.get_mut(&unit_id) else {
            return;
        };
        if let Some(callee) = job.calls_left.pop_front() {
            self.arrive(callee, at, Some((fi, unit_id)));
            return;
        }
        let Some(job) = pod.jobs.remove(&unit_id) else {
            return;
        };
        let f = &mut self.functions[fi];
        f.busy -= 1;
        f.report.completed += 1;
        for consumer in f.sends.clone() {
            self.arrive(consumer, at, None);
        }
        if let Some((parent_fn, parent_unit)) = job.unit.parent
            && let Some(parent_pod) = self.functions[parent_fn]
                .pods
                .iter()
                .find(|p| p.jobs.contains_key(&parent_unit))
                .map(|p| p.id)
        {
            self.advance_job(parent_fn, parent_pod, parent_unit, at);
        }
        self.dispatch(fi, at);
    }

    /// Pods that became ready take work; stopping pods that are empty exit, and those past
    /// their grace are cut off; held requests past the readiness timeout get 504.
    fn housekeep(&mut self) {
        let now = self.now;
        for fi in 0..self.functions.len() {
            let grace = self.functions[fi].pod_spec.termination_grace;
            let is_queue = self.functions[fi].flow.queue.is_some();
            let mut cut = Vec::new();
            let f = &mut self.functions[fi];
            f.pods.retain_mut(|p| match p.stopping {
                Some(_) if p.jobs.is_empty() => {
                    f.report.replica_seconds += (now - p.created).as_secs_f64();
                    false
                }
                Some(since) if now >= since + grace => {
                    f.report.cut_off += p.jobs.len() as u64;
                    cut.extend(p.jobs.drain().map(|(_, j)| j.unit));
                    f.report.replica_seconds += (now - p.created).as_secs_f64();
                    false
                }
                _ => true,
            });
            f.busy -= cut.len() as u64;
            for unit in cut {
                if is_queue {
                    // The lock lapses and the broker delivers it again.
                    f.report.redelivered += 1;
                    f.waiting.push_back(Unit {
                        cold: false,
                        ..unit
                    });
                } else {
                    f.report.failed += 1;
                }
            }
            let timeout = f.route.as_ref().and_then(|r| r.readiness_timeout);
            if let Some(timeout) = timeout
                && !f.pods.iter().any(|p| p.serving(now))
            {
                let before = f.waiting.len();
                f.waiting.retain(|u| u.arrived + timeout > now);
                let timed_out = (before - f.waiting.len()) as u64;
                f.report.timeouts += timed_out;
            }
            self.dispatch(fi, now);
        }
    }

    fn autoscale(&mut self) {
        let now = self.now;
        let refresh = self.options.queue_stats_interval.is_none_or(|every| {
            let every = every.as_millis().max(1);
            now.as_millis() % every < self.options.step.as_millis()
        });
        if refresh {
            for f in &mut self.functions {
                f.published = QueueCounts {
                    active: f.waiting.len() as u64,
                    locked: f.busy,
                };
            }
        }
        for fi in 0..self.functions.len() {
            let mut changes = Vec::new();
            let before_push = self.replicas(fi);
            let f = &mut self.functions[fi];
            let live = QueueCounts {
                // The scaler reads the broker's published backlog; replicas report the most
                // they held since their last report.
                active: f.published.active,
                locked: f.busy_peak,
            };
            f.busy_peak = f.busy;
            let running = f.pods.len() as u32;
            if let Some(model) = &mut f.in_flight {
                model.observe(now, live, running);
                if let Some(why) = model.push(now) {
                    changes = self.autoscalers[fi].push(now, before_push, &why);
                    if let Some(last) = changes.last() {
                        f.spec = last.to;
                    }
                }
            }
            if self.options.wake_on_hold {
                let f = &self.functions[fi];
                let held = f.flow.queue.is_none() && !f.waiting.is_empty();
                let replicas = self.replicas(fi);
                if held && replicas.spec == 0 {
                    let mut signals = SimSignals {
                        functions: &self.functions,
                    };
                    let woke = self.autoscalers[fi].wake(now, replicas, &mut signals);
                    if let Some(last) = woke.last() {
                        self.functions[fi].spec = last.to;
                    }
                    changes.extend(woke);
                }
            }
            let replicas = self.replicas(fi);
            let mut signals = SimSignals {
                functions: &self.functions,
            };
            changes.extend(self.autoscalers[fi].step(now, replicas, &mut signals));
            for change in changes {
                if change.from == 0 && change.to > 0 {
                    self.functions[fi].report.activations += 1;
                }
                self.functions[fi].spec = change.to;
                self.changes.push(change);
            }
            self.reconcile(fi);
        }
    }

    fn replicas(&self, fi: usize) -> Replicas {
        let f = &self.functions[fi];
        let live: Vec<&Pod> = f.pods.iter().filter(|p| p.stopping.is_none()).collect();
        Replicas {
            spec: f.spec,
            status: live.len() as u32,
            ready: live.iter().filter(|p| p.ready_at <= self.now).count() as u32,
        }
    }

    /// The ReplicaSet: pods up to the spec, or stopped down to it.
    fn reconcile(&mut self, fi: usize) {
        let now = self.now;
        let live = self.functions[fi]
            .pods
            .iter()
            .filter(|p| p.stopping.is_none())
            .count() as u32;
        let spec = self.functions[fi].spec;
        for _ in live..spec {
            self.add_pod(fi, false);
        }
        if live > spec {
            let f = &mut self.functions[fi];
            let mut victims: Vec<(bool, Duration, u64)> = f
                .pods
                .iter()
                .filter(|p| p.stopping.is_none())
                .map(|p| (p.ready_at <= now, p.created, p.id))
                .collect();
            // Not ready first, then the newest.
            victims.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            for (_, _, id) in victims.into_iter().take((live - spec) as usize) {
                if let Some(p) = f.pods.iter_mut().find(|p| p.id == id) {
                    p.stopping = Some(now);
                    f.report.stopped_with_work += p.jobs.len() as u64;
                }
            }
        }
    }

    fn add_pod(&mut self, fi: usize, ready_now: bool) {
        let now = self.now;
        let f = &mut self.functions[fi];
        let pods = &f.pod_spec;
        let container = now + self.options.pod_start;
        let up = container + f.capacity.cold_start;
        let ready_at = if ready_now {
            now
        } else {
            // Probes run every period from the container's start; readiness is the startup
            // probe's first success, or the readiness probe's.
            let period = self
                .options
                .readiness_probe
                .or(pods.startup_period)
                .unwrap_or(pods.readiness_period);
            container + round_up(up - container, period)
        };
        f.pods.push(Pod {
            id: self.next_pod,
            created: now,
            ready_at,
            stopping: None,
            cpu_free_at: now,
            jobs: HashMap::new(),
        });
        self.next_pod += 1;
    }

    fn sample(&mut self) -> Sample {
        let now = self.now;
        let mut by_function = Vec::new();
        for f in &mut self.functions {
            let pods = f.pods.len() as u32;
            let ready = f.pods.iter().filter(|p| p.serving(now)).count() as u32;
            f.report.max_pods = f.report.max_pods.max(pods);
            by_function.push((f.spec, ready, f.waiting.len() as u64, f.busy));
        }
        Sample {
            at: now,
            by_function,
        }
    }
}

impl Pod {
    fn serving(&self, now: Duration) -> bool {
        self.stopping.is_none() && self.ready_at <= now
    }
}

/// The function that consumes `queue`, by index.
fn consumer(functions: &[Function], queue: &str) -> Option<usize> {
    functions
        .iter()
        .position(|f| f.flow.queue.as_deref() == Some(queue))
}

/// The smallest whole number of `period`s at or after `d` (a probe at 0, then every period).
fn round_up(d: Duration, period: Duration) -> Duration {
    if period.is_zero() {
        return d;
    }
    let n = d.as_nanos().div_ceil(period.as_nanos());
    period * n as u32
}

/// Whether `prefix` serves `path`: ignoring case, on whole segments.
fn serves(prefix: &str, path: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && matches!(
            path.as_bytes().get(prefix.len()),
            None | Some(b'/') | Some(b'?')
        )
}

struct SimSignals<'a> {
    functions: &'a [Function],
}

impl Signals for SimSignals<'_> {
    fn queue(&mut self, queue: &str) -> Result<QueueCounts, String> {
        let f = self
            .functions
            .iter()
            .find(|f| f.flow.queue.as_deref() == Some(queue));
        Ok(f.map(|f| f.published).unwrap_or_default())
    }

    fn in_flight(&mut self, queue: &str) -> Result<InFlightReading, String> {
        let f = self
            .functions
            .iter()
            .find(|f| f.flow.queue.as_deref() == Some(queue));
        f.and_then(|f| f.in_flight.as_ref())
            .map(InFlightModel::reading)
            .ok_or_else(|| format!("no scaler follows queue {queue}"))
    }

    fn interceptor(&mut self, route: &str) -> Counters {
        let f = self
            .functions
            .iter()
            .find(|f| f.route.as_ref().is_some_and(|r| r.name == route));
        f.map(|f| Counters {
            concurrency: f.waiting.len() as u64 + f.busy,
            request_count: f.request_count,
        })
        .unwrap_or_default()
    }
}
