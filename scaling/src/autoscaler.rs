//! One workload's autoscaling: KEDA's loop every `pollingInterval`, the HPA's sync every
//! 15 s while replicas are above 0, and for an HTTP workload the add-on's 500 ms samples and
//! 200 ms pushes (SCALING.md §0, §6), all on the clock the caller passes in.

use std::time::Duration;

use crate::explain::{Change, Rule};
use crate::hpa::{Hpa, Observed, SYNC_PERIOD};
use crate::http_addon::{AddonScaler, Counters, STREAM_PERIOD};
use crate::in_flight::{InFlightReading, InFlightScaler};
use crate::keda::{ScaleLoop, ScalerAnswer};
use crate::objects::{TriggerKind, Workload};
use crate::servicebus::{QueueCounts, ServiceBusScaler};

/// Settings of the model that the objects do not carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Whether Service Bus counts locked messages as active (SCALING.md §3; unverified).
    pub counts_locked: bool,
    /// The HPA controller's sync period (15 s in Kubernetes).
    pub hpa_sync: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            counts_locked: false,
            hpa_sync: SYNC_PERIOD,
        }
    }
}

/// The workload's replicas as the controllers see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicas {
    /// What was last asked for (`scale.spec.replicas`).
    pub spec: u32,
    /// Pods that exist and are not terminating.
    pub status: u32,
    /// Pods that are ready.
    pub ready: u32,
}

/// What the world shows the scalers, read only when a scaler queries it.
pub trait Signals {
    /// The queue's counts from the broker's management API (one read per call).
    fn queue(&mut self, queue: &str) -> Result<QueueCounts, String>;
    /// The interceptor's counters for the route.
    fn interceptor(&mut self, route: &str) -> Counters;
    /// The host's scaler's figures for `queue` (one GetMetrics call).
    fn in_flight(&mut self, queue: &str) -> Result<InFlightReading, String>;
}

#[derive(Debug, Clone)]
enum Scaler {
    ServiceBus {
        queue: String,
        scaler: ServiceBusScaler,
    },
    Addon {
        route: String,
        scaler: AddonScaler,
    },
    InFlight {
        queue: String,
        scaler: InFlightScaler,
    },
}

/// The controllers of one workload.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    pub workload: Workload,
    options: Options,
    keda: ScaleLoop,
    hpa: Hpa,
    scalers: Vec<Scaler>,
    next_tick: Duration,
    next_sync: Duration,
    next_stream: Duration,
    /// Management-API reads made, for the broker-load figure.
    pub broker_reads: u64,
}

impl Autoscaler {
    /// The controllers for `workload`, created at `now`; the first loop tick is at once.
    pub fn new(workload: Workload, options: Options, now: Duration) -> Self {
        let so = &workload.scaled_object;
        let mut scalers = Vec::new();
        for (i, t) in so.triggers.iter().enumerate() {
            match &t.kind {
                TriggerKind::ServiceBus {
                    queue,
                    message_count,
                    activation_message_count,
                } => {
                    let mut scaler = ServiceBusScaler::new(
                        i,
                        queue,
                        *message_count,
                        *activation_message_count,
                        t.metric_type,
                    );
                    scaler.counts_locked = options.counts_locked;
                    scalers.push(Scaler::ServiceBus {
                        queue: queue.clone(),
                        scaler,
                    });
                }
                TriggerKind::InFlight { queue, target, .. } => scalers.push(Scaler::InFlight {
                    queue: queue.clone(),
                    scaler: InFlightScaler::new(i, queue, *target, t.metric_type),
                }),
                TriggerKind::ExternalPush { .. } => {
                    if let Some(route) = &workload.route {
                        scalers.push(Scaler::Addon {
                            route: route.name.clone(),
                            scaler: AddonScaler::new(i, route),
                        });
                    }
                }
            }
        }
        Self {
            keda: ScaleLoop::new(so, now),
            hpa: Hpa::new(so.min_replicas, so.max_replicas, so.behavior.clone()),
            options,
            scalers,
            next_tick: now,
            next_sync: now + options.hpa_sync,
            next_stream: now,
            broker_reads: 0,
            workload,
        }
    }

    pub fn name(&self) -> &str {
        &self.workload.name
    }

    /// The time of the next event that could change something: the caller may sleep until
    /// then (or until a request arrives).
    pub fn next_event(&self) -> Duration {
        let mut next = self.next_tick.min(self.next_sync);
        if self
            .scalers
            .iter()
            .any(|s| matches!(s, Scaler::Addon { .. }))
        {
            next = next.min(self.next_stream);
        }
        next
    }

    /// Whether a step at `now` will query the broker (a loop tick or an HPA sync is due), so
    /// a caller whose read is asynchronous can make it first.
    pub fn queue_read_due(&self, now: Duration) -> bool {
        let reads_queue = self
            .scalers
            .iter()
            .any(|s| matches!(s, Scaler::ServiceBus { .. }));
        reads_queue && (now >= self.next_tick || now >= self.next_sync)
    }

    /// The queue whose host scaler this workload follows (an `external-push` trigger to
    /// `fabrikam scaler`), if any: the caller feeds its pushes to [`Self::push`].
    pub fn in_flight_queue(&self) -> Option<&str> {
        self.scalers.iter().find_map(|s| match s {
            Scaler::InFlight { queue, .. } => Some(queue.as_str()),
            _ => None,
        })
    }

    /// Whether a step at `now` will ask the host's scaler (a loop tick or an HPA sync is
    /// due), so a caller whose call is asynchronous can make it first.
    pub fn in_flight_read_due(&self, now: Duration) -> bool {
        self.in_flight_queue().is_some() && (now >= self.next_tick || now >= self.next_sync)
    }

    /// The host's scaler pushed `true` on StreamIsActive: KEDA requests the scale at once
    /// (0→1, or a fresh `LastActiveTime`).
    pub fn push(&mut self, now: Duration, replicas: Replicas, why: &str) -> Vec<Change> {
        self.keda
            .push(now, replicas.spec, why)
            .change
            .into_iter()
            .collect()
    }

    /// A request is held at the interceptor: the add-on's scalers sample the counters now
    /// and push at once if active, instead of at their next 500 ms sample and 200 ms push.
    pub fn wake(
        &mut self,
        now: Duration,
        replicas: Replicas,
        signals: &mut dyn Signals,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for s in &mut self.scalers {
            if let Scaler::Addon { route, scaler } = s {
                scaler.ping(now, signals.interceptor(route));
                let (active, why) = scaler.is_active(now);
                if active
                    && let Some(change) = self
                        .keda
                        .push(now, replicas.spec, &format!("{why} (a held request)"))
                        .change
                {
                    changes.push(change);
                }
            }
        }
        changes
    }

    /// Runs every event due at `now`, in the order the real controllers would, and returns
    /// the changes made: the caller applies the last one's `to` as the new spec.
    pub fn step(
        &mut self,
        now: Duration,
        mut replicas: Replicas,
        signals: &mut dyn Signals,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut apply = |replicas: &mut Replicas, change: Change| {
            replicas.spec = change.to;
            changes.push(change);
        };
        // The add-on's samples (500 ms) come first: what the stream and the loop report is
        // the last sample.
        for s in &mut self.scalers {
            if let Scaler::Addon { route, scaler } = s
                && scaler.ping_due(now)
            {
                scaler.ping(now, signals.interceptor(route));
            }
        }
        if now >= self.next_stream {
            self.next_stream = now + STREAM_PERIOD;
            for s in &self.scalers {
                if let Scaler::Addon { scaler, .. } = s {
                    let (active, why) = scaler.is_active(now);
                    if active && let Some(change) = self.keda.push(now, replicas.spec, &why).change
                    {
                        apply(&mut replicas, change);
                    }
                }
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + self.workload.scaled_object.polling_interval;
            let answers = self.answers(now, signals);
            if let Some(change) = self
                .keda
                .tick(now, replicas.spec, replicas.ready, &answers)
                .change
            {
                apply(&mut replicas, change);
            }
        }
        if now >= self.next_sync {
            self.next_sync = now + self.options.hpa_sync;
            // At 0 the HPA is idle and reads nothing (SCALING.md §2.1).
            if replicas.spec > 0 || self.hpa.min_replicas == 0 {
                let answers = self.answers(now, signals);
                let readings = self
                    .keda
                    .hpa_readings(replicas.spec, replicas.ready, &answers);
                let observed = Observed {
                    spec_replicas: replicas.spec,
                    status_replicas: replicas.status,
                    ready_pods: replicas.ready,
                };
                let outcome = self.hpa.sync(now, observed, &readings);
                let from = replicas.spec;
                if let Some(to) = outcome.desired
                    && to != from
                {
                    apply(
                        &mut replicas,
                        Change {
                            at: now,
                            workload: self.workload.name.clone(),
                            from,
                            to,
                            rule: Rule::Hpa,
                            detail: format!("{} at the sync", outcome.reason),
                        },
                    );
                }
            }
        }
        changes
    }

    fn answers(&mut self, now: Duration, signals: &mut dyn Signals) -> Vec<ScalerAnswer> {
        let mut answers = Vec::new();
        for s in &self.scalers {
            match s {
                Scaler::ServiceBus { queue, scaler } => {
                    self.broker_reads += 1;
                    answers.push(scaler.answer(signals.queue(queue)));
                }
                Scaler::Addon { scaler, .. } => answers.push(scaler.answer(now)),
                Scaler::InFlight { queue, scaler } => {
                    answers.push(scaler.answer(signals.in_flight(queue)));
                }
            }
        }
        answers
    }
}
