//! `fabrikam scale recommend`: the scaling settings that meet a declared target on a trace
//! at the fewest replica-seconds, found by simulating candidates.
//!
//! Per function, in registry order, every candidate of a small grid (its target per replica,
//! its maxReplicaCount and its cooldown) is simulated with the other functions at their
//! settings so far; a candidate meets the target when the function's wait p99 (queue age for
//! a queue function, the hold for an HTTP one) is within it and nothing timed out, failed or
//! was cut off. The cheapest such candidate wins; with none, the function keeps its settings
//! and the answer says so. One pass, so a callee's choice is made with its callers' settled.

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
    let baseline = simulate(&current)?;
    let mut out = Vec::new();
    for flow in flows {
        let Some(index) = current.iter().position(|w| w.name == flow.name) else {
            continue;
        };
        let Some(base) = settings(&current[index]) else {
            continue;
        };
        let limit = if flow.queue.is_some() {
            target.queue_age_p99
        } else {
            target.held_p99
        };
        let current_figures = figures(&baseline, &flow.name, limit)
            .ok_or_else(|| format!("{} was not simulated", flow.name))?;
        let min_replicas = current[index].scaled_object.min_replicas.max(1);
        let grid: &[f64] = if flow.queue.is_some() {
            &QUEUE_TARGETS
        } else {
            &RATE_TARGETS
        };
        let candidates: Vec<Settings> = grid
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
        // Two at a time: this machine's two cores.
        let results: Vec<Result<(Settings, Figures), String>> = std::thread::scope(|scope| {
            let mut results = Vec::new();
            for pair in candidates.chunks(2) {
                let handles: Vec<_> = pair
                    .iter()
                    .map(|&s| {
                        let mut ws = current.clone();
                        apply(&mut ws[index], s);
                        let simulate = &simulate;
                        scope.spawn(move || -> Result<(Settings, Figures), String> {
                            let runs = simulate(&ws)?;
                            let f = figures(&runs, &flow.name, limit).ok_or("not simulated")?;
                            Ok((s, f))
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
        // The cheapest that meets the target; the settings now when they meet it and
        // nothing is cheaper (a change must buy something).
        let mut chosen: Option<(Settings, Figures)> =
            current_figures.met.then_some((base, current_figures));
        for r in results {
            let (s, f) = r?;
            if f.met
                && chosen.is_none_or(|(_, best)| f.replica_seconds < best.replica_seconds - 0.5)
            {
                chosen = Some((s, f));
            }
        }
        if let Some((s, _)) = chosen {
            apply(&mut current[index], s);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests;
    use std::path::Path;

    fn system() -> (Vec<Workload>, Vec<FunctionFlow>, BTreeMap<String, Capacity>) {
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
                let c = Capacity {
                    per_second: if f.queue.is_some() { 20.0 } else { 500.0 },
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
        // The settings now meet it too, at more replica-seconds (a 300 s cooldown): the
        // choice is cheaper than what meets the target already.
        assert!(workflow.current_figures.met);
        assert!(figures.replica_seconds < workflow.current_figures.replica_seconds);
        assert!(chosen.cooldown < workflow.current.cooldown, "{chosen:?}");
        let ingestion = found.iter().find(|r| r.function == "ingestion").unwrap();
        assert!(ingestion.chosen.is_none(), "{ingestion:?}");
        assert!(table(&found).contains("none of 75 candidates meets the target"));
    }
}
