#![allow(clippy::unwrap_used)]

//! The fault scenario "scale-in during slow handlers" (keda#2901, keda#1615): 40 messages
//! whose handlers take 20 s each, and no load after them. With the `azure-servicebus`
//! trigger alone, locked messages do not count: the queue looks empty while handlers run,
//! and KEDA's cooldown takes the replicas to zero mid-work. With the host's scaler as an
//! `external-push` trigger beside it, in-flight work keeps the workload active until the
//! last message is settled.

use std::collections::BTreeMap;
use std::time::Duration;

use scaling::explain::Rule;
use scaling::objects::read_yaml;
use scaling::simulate::{Capacity, FunctionFlow, Report, SimOptions, Simulation, Trace};

/// The queue function's Deployment, with the grace a pod gets after SIGTERM.
fn deployment(grace_seconds: u32) -> String {
    format!(
        "kind: Deployment\nmetadata: {{ name: worker }}\nspec: {{ template: {{ spec: {{ terminationGracePeriodSeconds: {grace_seconds}, containers: [{{ name: worker, startupProbe: {{ periodSeconds: 1 }} }}] }} }} }}\n"
    )
}

/// A scale-to-zero workload with a short cooldown, as a developer environment has; the
/// HPA has its default (legacy) behaviour.
const SERVICEBUS_ONLY: &str = r#"
kind: ScaledObject
metadata: { name: worker }
spec:
  scaleTargetRef: { name: worker }
  pollingInterval: 5
  cooldownPeriod: 10
  maxReplicaCount: 4
  triggers:
    - { type: azure-servicebus, metadata: { queueName: jobs, messageCount: '5' } }
"#;

/// The same, with the host's scaler first and `azure-servicebus` kept as the fallback path.
const WITH_SCALER: &str = r#"
kind: ScaledObject
metadata: { name: worker }
spec:
  scaleTargetRef: { name: worker }
  pollingInterval: 5
  cooldownPeriod: 10
  maxReplicaCount: 4
  fallback: { failureThreshold: 3, replicas: 2 }
  triggers:
    - type: external-push
      metadata: { scalerAddress: 'fabrikam-scaler:9090', queueName: jobs, targetSize: '5' }
    - { type: azure-servicebus, metadata: { queueName: jobs, messageCount: '5' } }
"#;

fn run(scaled_object: &str, grace_seconds: u32) -> Report {
    let objects = format!("{}---\n{scaled_object}", deployment(grace_seconds));
    let flows = [FunctionFlow {
        name: "worker".into(),
        path_prefixes: vec![],
        queue: Some("jobs".into()),
        emits: vec![],
        handler_slots: 4,
    }];
    let capacity = BTreeMap::from([(
        "worker".to_owned(),
        Capacity {
            per_second: 1000.0,
            cold_start: Duration::from_millis(100),
            latency: Duration::from_secs(20),
        },
    )]);
    let options = SimOptions {
        tail: Duration::from_secs(300),
        ..SimOptions::default()
    };
    // 40 messages in the first second, then nothing.
    let trace = Trace::parse("0,1,queue:jobs,40\n").unwrap();
    Simulation::new(read_yaml(&objects).unwrap(), &flows, &capacity, options)
        .unwrap()
        .run(&trace)
        .unwrap()
}

#[test]
fn without_the_scaler_the_cooldown_scales_in_replicas_that_are_still_handling_messages() {
    let report = run(SERVICEBUS_ONLY, 30);
    let worker = &report.functions[0];
    assert_eq!(worker.completed, 40, "everything is handled in the end");
    assert!(
        worker.stopped_with_work > 0,
        "replicas were stopped mid-work: {worker:?}"
    );
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.to == 0 && c.rule == Rule::Cooldown),
        "{}",
        report.explain()
    );
    // The last four started at 57 s and end at 77 s; the replicas are stopped at the 70 s
    // tick. With a grace shorter than what is left of their handlers (5 s here), the
    // messages are cut off and handled a second time.
    let short_grace = run(SERVICEBUS_ONLY, 5);
    assert!(
        short_grace.functions[0].redelivered > 0,
        "{:?}",
        short_grace.functions[0]
    );
}

#[test]
fn with_the_scaler_replicas_stay_until_nothing_is_in_flight() {
    for grace in [30, 5] {
        let report = run(WITH_SCALER, grace);
        let worker = &report.functions[0];
        assert_eq!(worker.completed, 40);
        assert_eq!(
            (worker.stopped_with_work, worker.cut_off, worker.redelivered),
            (0, 0, 0),
            "grace {grace} s: {worker:?}\n{}",
            report.explain()
        );
        // The first message woke it at the scaler's poll (1 s), not KEDA's 5 s tick.
        let wake = report.changes.iter().find(|c| c.from == 0).unwrap();
        assert_eq!(wake.rule, Rule::PushActivation, "{}", report.explain());
        assert!(wake.at <= Duration::from_secs(1), "{:?}", wake.at);
        // And it still went back to zero once the work was done.
        let last = report.samples.last().unwrap();
        assert_eq!(last.by_function[0].0, 0, "{}", report.explain());
    }
}
