#![allow(clippy::unwrap_used)]

//! The test vectors of `../shared/SCALING.md` §6, run through the whole autoscaler from
//! objects written as YAML, as `fabrikam manifests` writes them.

use std::time::Duration;

use scaling::autoscaler::{Autoscaler, Options, Replicas, Signals};
use scaling::explain::{Change, Rule};
use scaling::http_addon::Counters;
use scaling::in_flight::InFlightReading;
use scaling::objects::read_yaml;
use scaling::servicebus::QueueCounts;

/// A queue whose active count follows a function of time, and an interceptor likewise.
struct World<Q: Fn(Duration) -> u64, H: Fn(Duration) -> Counters> {
    now: Duration,
    queue: Q,
    http: H,
    failing: bool,
}

impl<Q: Fn(Duration) -> u64, H: Fn(Duration) -> Counters> Signals for World<Q, H> {
    fn queue(&mut self, _: &str) -> Result<QueueCounts, String> {
        if self.failing {
            return Err("no CountDetails element (throttled)".into());
        }
        Ok(QueueCounts {
            active: (self.queue)(self.now),
            locked: 0,
        })
    }

    fn interceptor(&mut self, _: &str) -> Counters {
        (self.http)(self.now)
    }

    /// SCALING.md's vectors use no external scaler of ours.
    fn in_flight(&mut self, queue: &str) -> Result<InFlightReading, String> {
        Err(format!("no scaler follows {queue} in these vectors"))
    }
}

/// A world whose queue holds `queue(t)` messages and whose interceptor sees nothing.
fn queue_world<Q: Fn(Duration) -> u64>(queue: Q) -> World<Q, fn(Duration) -> Counters> {
    World {
        now: Duration::ZERO,
        queue,
        http: |_| Counters::default(),
        failing: false,
    }
}

fn queue_objects(scaled_object_spec: &str) -> String {
    format!(
        "kind: Deployment\nmetadata: {{ name: w }}\nspec: {{ template: {{ spec: {{ containers: [{{ name: w }}] }} }} }}\n---\n\
         kind: ScaledObject\nmetadata: {{ name: w }}\nspec:\n  scaleTargetRef: {{ name: w }}\n{scaled_object_spec}"
    )
}

/// Runs the autoscaler every 100 ms until `end`, with every change applied at once (pods
/// ready the moment they are asked for), and returns the changes.
fn run<Q: Fn(Duration) -> u64, H: Fn(Duration) -> Counters>(
    autoscaler: &mut Autoscaler,
    world: &mut World<Q, H>,
    start: u32,
    end: Duration,
) -> Vec<Change> {
    let mut replicas = start;
    let mut log = Vec::new();
    let mut now = Duration::ZERO;
    while now <= end {
        world.now = now;
        let r = Replicas {
            spec: replicas,
            status: replicas,
            ready: replicas,
        };
        for change in autoscaler.step(now, r, world) {
            replicas = change.to;
            log.push(change);
        }
        now += Duration::from_millis(100);
    }
    log
}

fn moves(log: &[Change]) -> Vec<(u64, u32, Rule)> {
    log.iter().map(|c| (c.at.as_secs(), c.to, c.rule)).collect()
}

fn autoscaler(yaml: &str) -> Autoscaler {
    let workload = read_yaml(yaml).unwrap().remove(0);
    Autoscaler::new(workload, Options::default(), Duration::ZERO)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_hundred_messages_activate_at_the_first_tick_then_ramp_1_4_8_16_20() {
    let mut a = autoscaler(&queue_objects(
        "  triggers: [{ type: azure-servicebus, metadata: { queueName: q } }]\n",
    ));
    let mut world = queue_world(|_| 100);
    let log = run(&mut a, &mut world, 0, secs(90));
    assert_eq!(
        moves(&log),
        vec![
            (0, 1, Rule::Activation),
            (15, 4, Rule::Hpa),
            (30, 8, Rule::Hpa),
            (45, 16, Rule::Hpa),
            (60, 20, Rule::Hpa),
        ]
    );
    assert_eq!(
        log[0].to_string(),
        "t=0 s w 0→1: activation, ActiveMessageCount 100 > activationMessageCount 0 at the loop tick"
    );
}

#[test]
fn a_drained_queue_goes_from_n_to_zero_at_the_first_tick_after_cooldown() {
    // The workflow's polling interval, 15 s, in phase with the HPA's sync.
    let mut a = autoscaler(&queue_objects(
        "  pollingInterval: 15\n  triggers: [{ type: azure-servicebus, metadata: { queueName: q } }]\n",
    ));
    // Busy until t=100 s; the last tick that sees it is t=90 s.
    let mut world = queue_world(|t: Duration| if t < secs(100) { 100 } else { 0 });
    let log = run(&mut a, &mut world, 0, secs(500));
    let last = log.last().unwrap();
    // 90 + 300 = 390 is not past the cooldown (the comparison is strict); the tick at 405
    // is. The HPA's 5-minute window held 20 until that same moment (its last 20 was the
    // sync at 90 s), so the workload goes from 20 to 0 in one step. (At one instant the
    // loop runs before the HPA; with other phases the HPA may reach 1 first.)
    assert_eq!(
        (last.at, last.from, last.to, last.rule),
        (secs(405), 20, 0, Rule::Cooldown)
    );
    assert!(log.iter().all(|c| c.rule != Rule::Hpa || c.to >= c.from));
}

#[test]
fn activation_above_the_target_keeps_zero_at_zero_but_not_above() {
    let spec = "  triggers: [{ type: azure-servicebus, metadata: { queueName: q, messageCount: '5', activationMessageCount: '10' } }]\n";
    let mut a = autoscaler(&queue_objects(spec));
    let mut world = queue_world(|_| 8);
    assert!(
        run(&mut a, &mut world, 0, secs(3600)).is_empty(),
        "8 ≤ 10 never activates"
    );

    // At 3 replicas of a new object (initialCooldownPeriod 300 s), 8 waiting: the HPA
    // proposes ceil(8 / 5) = 2, and KEDA takes it to 0 once the initial cooldown has passed,
    // since 8 never activates.
    let spec = "  initialCooldownPeriod: 300\n  triggers: [{ type: azure-servicebus, metadata: { queueName: q, messageCount: '5', activationMessageCount: '10' } }]\n";
    let mut a = autoscaler(&queue_objects(spec));
    let mut world = queue_world(|_| 8);
    let log = run(&mut a, &mut world, 3, secs(700));
    assert_eq!(
        moves(&log),
        vec![(15, 2, Rule::Hpa), (330, 0, Rule::InitialCooldown)]
    );
}

#[test]
fn a_fallback_serves_its_replicas_after_the_threshold_of_failures() {
    let spec = "  maxReplicaCount: 10\n  fallback: { failureThreshold: 3, replicas: 6 }\n  triggers: [{ type: azure-servicebus, metadata: { queueName: q } }]\n";
    let mut a = autoscaler(&queue_objects(spec));
    let mut world = queue_world(|_| 5);
    run(&mut a, &mut world, 0, secs(10));
    world.failing = true;
    // Queries from then on fail: loop ticks at 30, 60, 90 s and HPA syncs every 15 s.
    let mut replicas = 1;
    let mut reached = None;
    let mut now = secs(15);
    while now <= secs(200) {
        world.now = now;
        let r = Replicas {
            spec: replicas,
            status: replicas,
            ready: replicas,
        };
        for c in a.step(now, r, &mut world) {
            replicas = c.to;
            if c.to == 6 && reached.is_none() {
                reached = Some(c.at);
            }
        }
        now += secs(15);
    }
    // 4th failed query: the HPA at t=45 s (queries at 15, 30 loop, 30 HPA, 45 HPA...):
    // it serves 6 × 5 = 30, and the legacy path's cap brings 1 → 4 → 6.
    assert_eq!(replicas, 6);
    assert!(reached.is_some());
}

#[test]
fn a_short_request_every_minute_on_a_concurrency_route_is_never_seen() {
    let yaml = "kind: Deployment\nmetadata: { name: h }\nspec: { template: { spec: { containers: [{ name: h }] } } }\n---\n\
        kind: InterceptorRoute\nmetadata: { name: h }\nspec:\n  scalingMetric: { concurrency: { targetValue: 100 } }\n---\n\
        kind: ScaledObject\nmetadata: { name: h }\nspec:\n  scaleTargetRef: { name: h }\n  triggers: [{ type: external-push, metadata: { interceptorRoute: h } }]\n";
    let mut a = autoscaler(yaml);
    // One request in flight for the first second (seen by the samples at 0 and 500 ms),
    // then a 50 ms request at 60 s × k + 120 ms: always between two 500 ms samples.
    let mut world = World {
        now: Duration::ZERO,
        queue: |_| 0,
        http: |t: Duration| {
            let ms = t.as_millis();
            let short = (120..170).contains(&(ms % 60_000));
            Counters {
                concurrency: u64::from(ms < 1_000 || short),
                request_count: 1 + (ms / 60_000) as u64,
            }
        },
        failing: false,
    };
    let log = run(&mut a, &mut world, 1, secs(900));
    // The last push of `true` was at 0.8 s; the first tick after 300.8 s is at 330 s. The
    // requests after it are never sampled, so nothing wakes the workload again: each of
    // them would be a cold start (http-add-on#1352).
    assert_eq!(moves(&log), vec![(330, 0, Rule::Cooldown)]);
}
