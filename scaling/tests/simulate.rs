#![allow(clippy::unwrap_used)]

//! The simulator on a small system written as YAML: an HTTP function that enqueues, a queue
//! function that calls a second HTTP function.

use std::collections::BTreeMap;
use std::time::Duration;

use scaling::explain::Rule;
use scaling::objects::read_yaml;
use scaling::simulate::{Capacity, Emit, FunctionFlow, SimOptions, Simulation, Trace, plot};

const OBJECTS: &str = r#"
kind: Deployment
metadata: { name: front }
spec: { template: { spec: { terminationGracePeriodSeconds: 30, containers: [{ name: front, startupProbe: { periodSeconds: 2 }, readinessProbe: { periodSeconds: 5 } }] } } }
---
kind: InterceptorRoute
metadata: { name: front }
spec:
  rules: [{ paths: [{ value: /api/front }] }]
  scalingMetric: { requestRate: { targetValue: 50, granularity: 1s, window: 1m } }
  timeouts: { readiness: 30s }
---
kind: ScaledObject
metadata: { name: front }
spec:
  scaleTargetRef: { name: front }
  maxReplicaCount: 2
  triggers: [{ type: external-push, metadata: { interceptorRoute: front } }]
---
kind: Deployment
metadata: { name: worker }
spec: { template: { spec: { containers: [{ name: worker, startupProbe: { periodSeconds: 2 } }] } } }
---
kind: ScaledObject
metadata: { name: worker }
spec:
  scaleTargetRef: { name: worker }
  maxReplicaCount: 3
  pollingInterval: 15
  triggers: [{ type: azure-servicebus, metadata: { queueName: jobs, messageCount: '20' } }]
---
kind: Deployment
metadata: { name: back }
spec: { template: { spec: { containers: [{ name: back }] } } }
---
kind: InterceptorRoute
metadata: { name: back }
spec:
  rules: [{ paths: [{ value: /api/back }] }]
  scalingMetric: { requestRate: { targetValue: 50, granularity: 1s, window: 1m } }
---
kind: ScaledObject
metadata: { name: back }
spec:
  scaleTargetRef: { name: back }
  maxReplicaCount: 2
  triggers: [{ type: external-push, metadata: { interceptorRoute: back } }]
"#;

fn flows() -> Vec<FunctionFlow> {
    vec![
        FunctionFlow {
            name: "front".into(),
            path_prefixes: vec!["/api/front".into()],
            queue: None,
            emits: vec![Emit::Message("jobs".into())],
            handler_slots: 1024,
        },
        FunctionFlow {
            name: "worker".into(),
            path_prefixes: vec![],
            queue: Some("jobs".into()),
            emits: vec![Emit::Call("back".into())],
            handler_slots: 16,
        },
        FunctionFlow {
            name: "back".into(),
            path_prefixes: vec!["/api/back".into()],
            queue: None,
            emits: vec![],
            handler_slots: 1024,
        },
    ]
}

fn capacity() -> BTreeMap<String, Capacity> {
    let c = |per_second, ms| Capacity {
        per_second,
        cold_start: Duration::from_millis(ms),
        latency: Duration::ZERO,
    };
    BTreeMap::from([
        ("front".to_owned(), c(400.0, 50)),
        ("worker".to_owned(), c(20.0, 80)),
        ("back".to_owned(), c(300.0, 50)),
    ])
}

fn simulation() -> Simulation {
    Simulation::new(
        read_yaml(OBJECTS).unwrap(),
        &flows(),
        &capacity(),
        SimOptions::default(),
    )
    .unwrap()
}

fn simulate(trace: &str) -> scaling::simulate::Report {
    simulation().run(&Trace::parse(trace).unwrap()).unwrap()
}

#[test]
fn a_burst_after_idle_wakes_every_function_and_loses_nothing() {
    // 300 requests in 10 s after 10 idle minutes.
    let report = simulate("600,610,http:/api/front,30\n");
    let [front, worker, back] = &report.functions[..] else {
        panic!("three functions");
    };
    assert_eq!(front.arrivals, 300);
    assert_eq!(
        (front.completed, worker.completed, back.completed),
        (300, 300, 300)
    );
    assert_eq!(front.timeouts + front.failed + worker.redelivered, 0);
    // Each woke from zero once, and the first requests waited for the cold start: the
    // container 2 s after the push, the startup probe's first success at 2 s after that.
    assert_eq!(
        (front.activations, worker.activations, back.activations),
        (1, 1, 1)
    );
    assert!(front.cold_units > 0);
    let first_wake = report
        .changes
        .iter()
        .find(|c| c.workload == "front")
        .unwrap();
    assert_eq!(first_wake.rule, Rule::PushActivation);
    assert!(
        front.wait_max >= 4.0 && front.wait_max < 5.0,
        "{}",
        front.wait_max
    );
    // The worker drains at 20/s per replica: the HPA takes it past one replica.
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.workload == "worker" && c.rule == Rule::Hpa && c.to > 1)
    );
    // Everything is back at zero by the end (cooldown 300 s after the last activity).
    let last = report.samples.last().unwrap();
    assert!(
        last.by_function
            .iter()
            .all(|(spec, ready, _, _)| *spec == 0 && *ready == 0)
    );
    // Scaling to zero costs a fraction of keeping the maximum all the time.
    assert!(worker.replica_seconds < 0.5 * worker.always_on_replica_seconds);
}

#[test]
fn the_report_and_plot_say_what_happened() {
    let report = simulate("0,5,http:/api/front,2\n");
    let table = report.table();
    assert!(table.lines().count() == 5, "{table}");
    assert!(table.contains("| front | 10 | 10 |"), "{table}");
    let log = report.explain();
    assert!(log.contains("front 0→1: push activation"), "{log}");
    assert!(
        log.contains("worker 0→1: activation, ActiveMessageCount"),
        "{log}"
    );
    assert!(log.contains("→0: cooldown"), "{log}");
    let svg = plot(&report, 1, "worker");
    assert!(
        svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
        "{svg}"
    );
    assert_eq!(svg.matches("<polyline").count(), 3);
}

#[test]
fn a_trace_naming_nothing_simulated_is_refused() {
    let e = simulation()
        .run(&Trace::parse("0,1,http:/api/nowhere,1\n0,1,queue:other,1\n").unwrap())
        .unwrap_err();
    assert_eq!(e.lines().count(), 2, "{e}");
    let mut missing = capacity();
    missing.remove("back");
    let e = Simulation::new(
        read_yaml(OBJECTS).unwrap(),
        &flows(),
        &missing,
        SimOptions::default(),
    )
    .unwrap_err();
    assert!(e.contains("back: no measured capacity"), "{e}");
}

#[test]
fn a_segment_of_one_second_at_one_a_second_makes_exactly_one_arrival() {
    // Summing a tenth per 100 ms step reaches 0.9999… and used to make none.
    let trace: String = (0..10)
        .map(|k| format!("{},{},http:/api/front,1\n", 60 * k, 60 * k + 1))
        .collect();
    let report = simulate(&trace);
    assert_eq!(report.functions[0].arrivals, 10);
    let report = simulate("0,7,http:/api/front,0.5\n");
    assert_eq!(report.functions[0].arrivals, 3);
}

#[test]
fn the_queue_read_as_the_broker_last_published_it_wakes_the_worker_later() {
    // Messages put straight on the queue at t=601 s: the worker's loop ticks every 15 s
    // (t=615 s sees them). With counts published every 20 s (t=600, 620, ...), the tick at
    // 615 s still reads the empty queue of t=600 s, and the one at 630 s wakes it.
    let run = |stats: Option<Duration>| {
        let options = SimOptions {
            queue_stats_interval: stats,
            ..SimOptions::default()
        };
        let sim =
            Simulation::new(read_yaml(OBJECTS).unwrap(), &flows(), &capacity(), options).unwrap();
        let report = sim
            .run(&Trace::parse("601,602,queue:jobs,5\n").unwrap())
            .unwrap();
        let wake = report
            .changes
            .iter()
            .find(|c| c.workload == "worker" && c.from == 0)
            .unwrap()
            .at;
        wake.as_secs()
    };
    assert_eq!(run(None), 615);
    assert_eq!(run(Some(Duration::from_secs(20))), 630);
}

#[test]
fn a_held_request_wakes_its_function_at_once_only_with_the_local_interceptor() {
    // One request at t=600.2 s, between two of the add-on's 500 ms samples (600.0, 600.5):
    // the add-on wakes the function at a sample after it; the local run's interceptor
    // (`wake_on_hold`) in the step the request is held.
    let run = |wake_on_hold: bool| {
        let options = SimOptions {
            wake_on_hold,
            ..SimOptions::default()
        };
        let sim =
            Simulation::new(read_yaml(OBJECTS).unwrap(), &flows(), &capacity(), options).unwrap();
        let report = sim
            .run(&Trace::parse("600.2,600.3,http:/api/front,10\n").unwrap())
            .unwrap();
        report
            .changes
            .iter()
            .find(|c| c.workload == "front" && c.from == 0)
            .unwrap()
            .at
    };
    let (sampled, at_once) = (run(false), run(true));
    assert!(
        at_once <= Duration::from_millis(600_300),
        "woken at {at_once:?}"
    );
    assert!(at_once < sampled, "{at_once:?} against {sampled:?}");
    assert!(sampled >= Duration::from_millis(600_500), "{sampled:?}");
}
