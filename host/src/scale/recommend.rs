//! `fabrikam scale recommend`: the scaling settings that meet a declared target on a trace
//! at the fewest replica-seconds, found by simulating candidates.
//!
//! Per function, in registry order, every candidate of a small grid (its target per replica,
//! its maxReplicaCount and its cooldown) is simulated with the other functions at their
//! settings so far. A function meets the target when its wait p99 (queue age for a queue
//! function, the hold for an HTTP one) is within it and nothing of it timed out, failed or
//! was cut off. A candidate must meet the target for its own function, and is judged on the
//! whole system: first how many functions meet theirs, then the replica-seconds of all of
//! them. A callee's settings show in its callers' queue age, not in its own hold, so judging
//! a callee alone would pick the fewest replicas and move the wait upstream. A change must
//! buy something: it is taken only when more functions meet their target, or it saves at
//! least [`SAVING`] of the function's replica-seconds; among candidates that cost about the
//! same, the one that changes fewest settings wins. With none, the function keeps its
//! settings and the answer says so.

use std::collections::BTreeMap;
use std::time::Duration;

use scaling::objects::{TriggerKind, Workload};
use scaling::simulate::{Capacity, FunctionFlow, FunctionReport, SimOptions, Simulation, Trace};

/// What the settings must achieve on the trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// A queue function's queue age p99.
    pub queue_age_p99: Duration,
    /// An HTTP function's held-request wait p99.
    pub held_p99: Duration,
}

/// One function's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `messageCount` (queue) or the request-rate `targetValue` (HTTP).
    pub target_per_replica: f64,
    pub max_replicas: u32,
    pub cooldown: Duration,
}

/// What was chosen for a function, and what it achieves.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub function: String,
    pub current: Settings,
    pub current_figures: Figures,
    pub chosen: Option<(Settings, Figures)>,
    pub candidates: usize,
}

/// The figures a setting gave the function on the trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub wait_p99: f64,
    pub replica_seconds: f64,
    pub cold_units: u64,
    pub met: bool,
}

const QUEUE_TARGETS: [f64; 5] = [5.0, 10.0, 20.0, 50.0, 100.0];
const RATE_TARGETS: [f64; 5] = [10.0, 25.0, 50.0, 100.0, 200.0];
const MAX_REPLICAS: [u32; 5] = [1, 2, 3, 5, 8];
const COOLDOWNS: [u64; 3] = [60, 120, 300];

/// The share of a function's replica-seconds a change of its settings must save.
pub const SAVING: f64 = 0.01;

/// The settings `w` has.
pub fn settings(w: &Workload) -> Option<Settings> {
    let so = &w.scaled_object;
    let target = so.triggers.iter().find_map(|t| match &t.kind {
        TriggerKind::ServiceBus { message_count, .. } => Some(*message_count),
        TriggerKind::InFlight { target, .. } => Some(*target),
        TriggerKind::ExternalPush { .. } => w
            .route
            .as_ref()
            .and_then(|r| r.request_rate.map(|rate| rate.target)),
    })?;
    Some(Settings {
        target_per_replica: target,
        max_replicas: so.max_replicas,
        cooldown: so.cooldown,
    })
}

fn apply(w: &mut Workload, s: Settings) {
    let so = &mut w.scaled_object;
    so.max_replicas = s.max_replicas;
    so.cooldown = s.cooldown;
    for t in &mut so.triggers {
        match &mut t.kind {
            TriggerKind::ServiceBus { message_count, .. } => *message_count = s.target_per_replica,
            TriggerKind::InFlight { target, .. } => *target = s.target_per_replica,
            TriggerKind::ExternalPush { .. } => {}
        }
    }
    if let Some(rate) = w.route.as_mut().and_then(|r| r.request_rate.as_mut()) {
        rate.target = s.target_per_replica;
    }
}

/// `name`'s figures over every trace's run: the worst wait p99, the summed cost; the
/// target is met only when it is met on every trace.
fn figures(runs: &[Vec<FunctionReport>], name: &str, limit: Duration) -> Option<Figures> {
    let mut total = Figures {
        wait_p99: 0.0,
        replica_seconds: 0.0,
        cold_units: 0,
        met: true,
    };
    for reports in runs {
        let f = reports.iter().find(|r| r.name == name)?;
        total.wait_p99 = total.wait_p99.max(f.wait_p99);
        total.replica_seconds += f.replica_seconds;
        total.cold_units += f.cold_units;
        total.met &= f.wait_p99 <= limit.as_secs_f64() && f.timeouts + f.failed + f.cut_off == 0;
    }
    Some(total)
}

/// How the whole system fared on the traces: how many functions met their target, and the
/// replica-seconds of all of them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Standing {
    meeting: usize,
    replica_seconds: f64,
}

fn limit_of(flow: &FunctionFlow, target: Target) -> Duration {
    if flow.queue.is_some() {
        target.queue_age_p99
    } else {
        target.held_p99
    }
}

fn standing(runs: &[Vec<FunctionReport>], flows: &[FunctionFlow], target: Target) -> Standing {
    let mut out = Standing {
        meeting: 0,
        replica_seconds: 0.0,
    };
    for flow in flows {
        if let Some(f) = figures(runs, &flow.name, limit_of(flow, target)) {
            out.meeting += usize::from(f.met);
            out.replica_seconds += f.replica_seconds;
        }
    }
    out
}

/// How many of `s`'s settings differ from `base`'s.
fn changes(s: &Settings, base: &Settings) -> usize {
    usize::from(s.target_per_replica != base.target_per_replica)
        + usize::from(s.max_replicas != base.max_replicas)
        + usize::from(s.cooldown != base.cooldown)
}

/// Searches every function's settings, in `flows`' order, for settings that meet `target`
/// on every one of `traces`.
pub fn recommend(
    workloads: &[Workload],
    flows: &[FunctionFlow],
    capacity: &BTreeMap<String, Capacity>,
    traces: &[Trace],
    options: SimOptions,
    target: Target,
) -> Result<Vec<Recommendation>, String> {
    let mut current: Vec<Workload> = workloads.to_vec();
    let simulate = |ws: &[Workload]| -> Result<Vec<Vec<FunctionReport>>, String> {
        traces
            .iter()
            .map(|trace| {
                Ok(Simulation::new(ws.to_vec(), flows, capacity, options)?
                    .run(trace)?
                    .functions)
            })
            .collect()
    };
    // The system as settled so far: each function's settings now are judged against it.
    let mut baseline = simulate(&current)?;
    let mut out = Vec::new();
    for flow in flows {
        let Some(index) = current.iter().position(|w| w.name == flow.name) else {
            continue;
        };
        let Some(base) = settings(&current[index]) else {
            continue;
        };
        let limit = limit_of(flow, target);
        let current_figures = figures(&baseline, &flow.name, limit)
            .ok_or_else(|| format!("{} was not simulated", flow.name))?;
        let current_standing = standing(&baseline, flows, target);
        let min_replicas = current[index].scaled_object.min_replicas.max(1);
        let grid: &[f64] = if flow.queue.is_some() {
            &QUEUE_TARGETS
        } else {
            &RATE_TARGETS
        };
        let mut candidates: Vec<Settings> = grid
            .iter()
            .flat_map(|&t| {
                MAX_REPLICAS.iter().flat_map(move |&max| {
                    COOLDOWNS.iter().map(move |&c| Settings {
                        target_per_replica: t,
                        max_replicas: max,
                        cooldown: Duration::from_secs(c),
                    })
                })
            })
            // A maximum below the minimum is not a ScaledObject KEDA accepts.
            .filter(|s| s.max_replicas >= min_replicas)
            .collect();
        // Closest to the settings now first: of candidates that cost about the same, the
        // first seen is kept.
        candidates.sort_by_key(|s| changes(s, &base));
        // Two at a time: this machine's two cores.
        let results: Vec<Result<(Settings, Figures, Standing), String>> =
            std::thread::scope(|scope| {
                let mut results = Vec::new();
                for pair in candidates.chunks(2) {
                    let handles: Vec<_> = pair
                        .iter()
                        .map(|&s| {
                            let mut ws = current.clone();
                            apply(&mut ws[index], s);
                            let simulate = &simulate;
                            scope.spawn(move || -> Result<(Settings, Figures, Standing), String> {
                                let runs = simulate(&ws)?;
                                let f = figures(&runs, &flow.name, limit).ok_or("not simulated")?;
                                Ok((s, f, standing(&runs, flows, target)))
                            })
                        })
                        .collect();
                    for h in handles {
                        results.push(
                            h.join()
                                .unwrap_or_else(|_| Err("a simulation panicked".into())),
                        );
                    }
                }
                results
            });
        // The settings now while they meet the target and nothing buys more.
        let saving = SAVING * current_figures.replica_seconds;
        let better = |a: Standing, b: Standing| {
            a.meeting > b.meeting
                || (a.meeting == b.meeting && a.replica_seconds < b.replica_seconds - saving)
        };
        let mut chosen: Option<(Settings, Figures, Standing)> =
            current_figures
                .met
                .then_some((base, current_figures, current_standing));
        for r in results {
            let (s, f, st) = r?;
            if f.met && chosen.is_none_or(|(_, _, best)| better(st, best)) {
                chosen = Some((s, f, st));
            }
        }
        let chosen = chosen.map(|(s, f, _)| (s, f));
        if let Some((s, _)) = chosen.filter(|(s, _)| *s != base) {
            apply(&mut current[index], s);
            baseline = simulate(&current)?;
        }
        out.push(Recommendation {
            function: flow.name.clone(),
            current: base,
            current_figures,
            chosen,
            candidates: candidates.len(),
        });
    }
    Ok(out)
}

/// The recommendations as a Markdown table.
pub fn table(recommendations: &[Recommendation]) -> String {
    let mut out = String::from(
        "| function | settings now (target/replica, max, cooldown) | wait p99 | replica-seconds | recommended | wait p99 | replica-seconds |\n\
         |---|---|---:|---:|---|---:|---:|\n",
    );
    let show = |s: &Settings| {
        format!(
            "{} / {} / {} s",
            s.target_per_replica,
            s.max_replicas,
            s.cooldown.as_secs()
        )
    };
    for r in recommendations {
        let now = &r.current_figures;
        let (chosen, wait, cost) = match &r.chosen {
            Some((s, f)) => (
                if *s == r.current {
                    format!("keep {}", show(s))
                } else {
                    show(s)
                },
                format!("{:.2} s", f.wait_p99),
                format!("{:.0}", f.replica_seconds),
            ),
            None => (
                format!("none of {} candidates meets the target", r.candidates),
                "-".into(),
                "-".into(),
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {:.2} s{} | {:.0} | {chosen} | {wait} | {cost} |\n",
            r.function,
            show(&r.current),
            now.wait_p99,
            if now.met { "" } else { " (misses)" },
            now.replica_seconds,
        ));
    }
    out
}

/// The recommendations as a record: per function, its settings now and the chosen ones
/// (null when none meets the target), each with what it achieves. `scripts/recommend-scaling`
/// keeps one per profile in docs/scaling/, and a host test checks that every declaration
/// carries its function's chosen settings.
pub fn record(recommendations: &[Recommendation]) -> serde_json::Value {
    let settings = |s: &Settings, f: &Figures| {
        serde_json::json!({
            "targetPerReplica": s.target_per_replica,
            "maxReplicaCount": s.max_replicas,
            "cooldownSeconds": s.cooldown.as_secs(),
            "waitP99Seconds": (f.wait_p99 * 100.0).round() / 100.0,
            "replicaSeconds": f.replica_seconds.round(),
            "coldStarts": f.cold_units,
            "meetsTarget": f.met,
        })
    };
    recommendations
        .iter()
        .map(|r| {
            let chosen = r.chosen.as_ref().map(|(s, f)| settings(s, f));
            let value = serde_json::json!({
                "now": settings(&r.current, &r.current_figures),
                "chosen": chosen,
                "candidates": r.candidates,
            });
            (r.function.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests;
    use std::path::Path;

    fn system() -> (Vec<Workload>, Vec<FunctionFlow>, BTreeMap<String, Capacity>) {
        system_with(|_| None)
    }

    /// The dev profile's system with the test's capacities: a queue function 20 a second,
    /// an HTTP function 500, or what `per_second` says for it.
    fn system_with(
        per_second: impl Fn(&str) -> Option<f64>,
    ) -> (Vec<Workload>, Vec<FunctionFlow>, BTreeMap<String, Capacity>) {
        let functions = manifests::declarations();
        let (workloads, env) = crate::scale::rendered_workloads(
            runtime::deploy::Profile::Dev,
            &functions,
            Path::new("../keda/input/dev.json"),
        )
        .unwrap();
        let flows = crate::scale::flows(&functions, &env);
        let capacity = flows
            .iter()
            .map(|f| {
                let default = if f.queue.is_some() { 20.0 } else { 500.0 };
                let c = Capacity {
                    per_second: per_second(&f.name).unwrap_or(default),
                    cold_start: Duration::from_millis(50),
                    latency: Duration::ZERO,
                };
                (f.name.clone(), c)
            })
            .collect();
        (workloads, flows, capacity)
    }

    #[test]
    fn the_cheapest_settings_that_meet_the_target_are_chosen_and_impossible_targets_say_so() {
        let (workloads, flows, capacity) = system();
        // 600 deliveries in a minute: one workflow replica at 20 a second falls behind.
        let trace = Trace::parse("0,60,http:/api/deliveryrequests,10\n").unwrap();
        let options = SimOptions {
            tail: Duration::from_secs(60),
            ..SimOptions::default()
        };
        let target = Target {
            queue_age_p99: Duration::from_secs(30),
            // Below any cold start: no HTTP setting can meet it from zero.
            held_p99: Duration::ZERO,
        };
        let found = recommend(&workloads, &flows, &capacity, &[trace], options, target).unwrap();
        let workflow = found.iter().find(|r| r.function == "workflow").unwrap();
        let (chosen, figures) = workflow.chosen.unwrap();
        assert!(figures.met && figures.wait_p99 <= 30.0, "{figures:?}");
        // The settings now meet it too, at more replica-seconds: the choice is cheaper than
        // what meets the target already, by at least the saving a change must buy.
        assert!(workflow.current_figures.met);
        assert_ne!(chosen, workflow.current);
        assert!(
            figures.replica_seconds <= workflow.current_figures.replica_seconds * (1.0 - SAVING),
            "{figures:?}"
        );
        let ingestion = found.iter().find(|r| r.function == "ingestion").unwrap();
        assert!(ingestion.chosen.is_none(), "{ingestion:?}");
        assert!(table(&found).contains("none of 75 candidates meets the target"));
        let record = record(&found);
        assert_eq!(record["ingestion"]["chosen"], serde_json::Value::Null);
        assert_eq!(
            record["workflow"]["chosen"]["cooldownSeconds"],
            chosen.cooldown.as_secs()
        );
    }

    #[test]
    fn a_callee_is_judged_by_what_its_settings_do_to_its_callers() {
        // Dronescheduler serves 15 a second per replica; 25 deliveries a second need two, but
        // at 50 a second per replica its rate never asks for a second. Its own hold is the
        // same at one replica or two, so judged alone its settings now (one replica, the
        // cheapest for it) would stay, and the workflow's messages would pile up behind it
        // past their target. The workflow keeps up alone, so dronescheduler is the one
        // bottleneck.
        let (workloads, flows, capacity) = system_with(|name| match name {
            "dronescheduler" => Some(15.0),
            "workflow" => Some(200.0),
            _ => None,
        });
        let trace = Trace::parse("0,300,http:/api/deliveryrequests,25\n").unwrap();
        let options = SimOptions {
            tail: Duration::from_secs(60),
            ..SimOptions::default()
        };
        let target = Target {
            queue_age_p99: Duration::from_secs(60),
            held_p99: Duration::from_secs(10),
        };
        let found = recommend(&workloads, &flows, &capacity, &[trace], options, target).unwrap();
        let scheduler = found
            .iter()
            .find(|r| r.function == "dronescheduler")
            .unwrap();
        let (chosen, _) = scheduler.chosen.unwrap();
        assert!(
            chosen.max_replicas >= 2 && chosen.target_per_replica < 25.0,
            "{chosen:?}"
        );
        // Dearer for dronescheduler; it buys the workflow's target, and the workflow then
        // needs one replica where it ran three.
        assert!(
            scheduler.chosen.unwrap().1.replica_seconds > scheduler.current_figures.replica_seconds
        );
        let workflow = found.iter().find(|r| r.function == "workflow").unwrap();
        let (settings, figures) = workflow.chosen.unwrap();
        assert!(figures.met, "{figures:?}");
        assert!(
            figures.replica_seconds < workflow.current_figures.replica_seconds / 2.0,
            "{settings:?} {figures:?}"
        );
    }
}
