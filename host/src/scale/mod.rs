//! `fabrikam scale`: the scaling rules (the `scaling` crate) fed with this system: the
//! objects `fabrikam manifests` renders for a profile, how work flows between the
//! registered functions, and each function's measured capacity.

pub mod interceptor;
pub mod local;
pub mod recommend;
pub mod replicas;
pub mod scaler_process;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use runtime::deploy::{Deployment, Profile};
use runtime::dispatch::DispatchOptions;
use scaling::objects::Workload;
use scaling::simulate::{Capacity, Emit, FunctionFlow, Report};
use serde::Deserialize;

use crate::manifests::{self, Environment};

/// Timings shortened for tests and the dev loop, in place of the objects' own; every
/// change is said, so a log made with them cannot pass for the objects'.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shortened {
    pub polling_interval: Option<Duration>,
    pub cooldown: Option<Duration>,
    /// The InterceptorRoutes' request-rate window.
    pub rate_window: Option<Duration>,
}

impl Shortened {
    /// Applies these timings to `workload`; returns what changed, in words.
    pub fn apply(&self, workload: &mut Workload) -> Vec<String> {
        use scaling::explain::seconds;
        let mut said = Vec::new();
        let so = &mut workload.scaled_object;
        if let Some(p) = self.polling_interval {
            said.push(format!(
                "pollingInterval {} → {}",
                seconds(so.polling_interval),
                seconds(p)
            ));
            so.polling_interval = p;
        }
        if let Some(c) = self.cooldown {
            said.push(format!(
                "cooldownPeriod {} → {}",
                seconds(so.cooldown),
                seconds(c)
            ));
            so.cooldown = c;
        }
        let rate = workload
            .route
            .as_mut()
            .and_then(|r| r.request_rate.as_mut());
        if let (Some(w), Some(rate)) = (self.rate_window, rate) {
            said.push(format!(
                "requestRate window {} → {}",
                seconds(rate.window),
                seconds(w)
            ));
            rate.window = w;
        }
        said
    }
}

/// Requests one HTTP replica holds at once: hyper sets no limit, so the CPU is the bound.
const HTTP_SLOTS: u32 = 1024;

/// The workloads of `profile` as rendered from `functions` with the input file at
/// `input`: the same objects `fabrikam manifests` writes under `keda/<profile>/`.
pub fn rendered_workloads(
    profile: Profile,
    functions: &[Deployment],
    input: &Path,
) -> Result<(Vec<Workload>, Environment), String> {
    let env = manifests::read_input(input).map_err(|e| e.to_string())?;
    let files = manifests::render(profile, functions, &env).map_err(|e| e.to_string())?;
    let text: String = files.values().map(|f| format!("{f}\n---\n")).collect();
    let workloads = scaling::objects::read_yaml(&text).map_err(|e| e.to_string())?;
    Ok((workloads, env))
}

/// How work moves between `functions`: each function's trigger and what one unit of its
/// work sends on (its declared output queues, and a call to each callee). Queue names are
/// as `env` names them, as the rendered ScaledObjects do.
pub fn flows(functions: &[Deployment], env: &Environment) -> Vec<FunctionFlow> {
    let handler_slots = u32::try_from(DispatchOptions::default().max_concurrency).unwrap_or(16);
    functions
        .iter()
        .map(|f| {
            let mut emits: Vec<Emit> = f
                .output_queues()
                .map(|q| Emit::Message(env.queue(q)))
                .collect();
            emits.extend(f.callees().map(|(name, _)| Emit::Call(name.to_owned())));
            let queue = f.queue_trigger().map(|q| env.queue(q));
            FunctionFlow {
                name: f.name.clone(),
                path_prefixes: f
                    .http_trigger()
                    .map(|(prefixes, _)| prefixes.to_vec())
                    .unwrap_or_default(),
                handler_slots: if queue.is_some() {
                    handler_slots
                } else {
                    HTTP_SLOTS
                },
                queue,
                emits,
            }
        })
        .collect()
}

/// `docs/scaling/capacity.json`: one replica's capacity per function, as
/// `scripts/bench-capacity` measured it, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapacityFile {
    /// Machine, date, commit and command of the measurement.
    pub measured: BTreeMap<String, String>,
    pub functions: BTreeMap<String, MeasuredCapacity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeasuredCapacity {
    /// Units per second at the function's CPU limit.
    pub per_second: f64,
    /// Process start to `/readyz` answering 200, in milliseconds (p50 of the runs).
    pub cold_start_ms: f64,
    /// The same, p99.
    #[serde(default)]
    pub cold_start_p99_ms: Option<f64>,
    /// What was measured, in words (`PUT /api/packages/{n}`).
    #[serde(default)]
    pub operation: Option<String>,
    /// The CPU limit it was measured at.
    #[serde(default)]
    pub cpu_limit_millis: Option<u32>,
    /// The load generator's own figures.
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
    /// The CPU one unit took, from which `per_second` follows at the CPU limit.
    #[serde(default)]
    pub cpu_microseconds_per_unit: Option<f64>,
    /// The rate seen on this machine, which a local server may have bounded.
    #[serde(default)]
    pub observed_per_second: Option<f64>,
    #[serde(default)]
    pub bound_by: Option<String>,
}

impl CapacityFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Each function's capacity at its CPU limit (what a replica does in the cluster), or,
    /// with `observed`, the rate seen on this machine, which its local servers may have
    /// bounded (what the local run does).
    pub fn capacities(&self, observed: bool) -> BTreeMap<String, Capacity> {
        self.functions
            .iter()
            .map(|(name, c)| {
                let per_second = if observed {
                    c.observed_per_second.unwrap_or(c.per_second)
                } else {
                    c.per_second
                };
                (
                    name.clone(),
                    Capacity {
                        per_second,
                        cold_start: Duration::from_secs_f64(c.cold_start_ms.max(0.0) / 1000.0),
                        // Measured at the CPU limit: the units are CPU-bound.
                        latency: Duration::ZERO,
                    },
                )
            })
            .collect()
    }
}

/// The report as JSON, for scripts: each function's figures and every change.
pub fn json(report: &Report) -> serde_json::Value {
    let functions: Vec<serde_json::Value> = report
        .functions
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "arrivals": f.arrivals,
                "completed": f.completed,
                "waitP50Seconds": f.wait_p50,
                "waitP99Seconds": f.wait_p99,
                "waitMaxSeconds": f.wait_max,
                "activations": f.activations,
                "coldUnits": f.cold_units,
                "timeouts": f.timeouts,
                "failed": f.failed,
                "redelivered": f.redelivered,
                "stoppedWithWork": f.stopped_with_work,
                "cutOff": f.cut_off,
                "replicaSeconds": f.replica_seconds,
                "alwaysOnReplicaSeconds": f.always_on_replica_seconds,
                "maxPods": f.max_pods,
                "brokerReadsPerMinute": f.broker_reads_per_minute,
            })
        })
        .collect();
    let changes: Vec<serde_json::Value> = report
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "at": c.at.as_secs_f64(),
                "function": c.workload,
                "from": c.from,
                "to": c.to,
                "rule": c.rule.name(),
                "line": c.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "durationSeconds": report.duration.as_secs_f64(),
        "functions": functions,
        "changes": changes,
    })
}

/// The report as Markdown: the table, then the explain log.
pub fn markdown(report: &Report, title: &str) -> String {
    let mut out = format!("# {title}\n\n");
    out.push_str(&report.table());
    let _ = writeln!(out, "\n## Explain log\n\n```");
    out.push_str(&report.explain());
    out.push_str("```\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flows_follow_the_declarations() {
        let functions = manifests::declarations();
        let env = manifests::read_input(Path::new("../keda/input/dev.json")).unwrap();
        let flows = flows(&functions, &env);
        let of = |name: &str| flows.iter().find(|f| f.name == name).unwrap();
        assert_eq!(
            of("ingestion").emits,
            vec![Emit::Message("deliveries".into())]
        );
        let workflow = of("workflow");
        assert_eq!(workflow.queue.as_deref(), Some("deliveries"));
        assert_eq!(workflow.handler_slots, 16);
        assert_eq!(
            workflow.emits,
            vec![
                Emit::Call("package".into()),
                Emit::Call("dronescheduler".into()),
                Emit::Call("delivery".into())
            ]
        );
        assert!(
            of("delivery")
                .path_prefixes
                .contains(&"/api/deliveries".to_owned())
        );
    }

    #[test]
    fn the_workloads_are_read_from_the_rendered_objects() {
        let functions = manifests::declarations();
        let (workloads, _) = rendered_workloads(
            Profile::Dev,
            &functions,
            Path::new("../keda/input/dev.json"),
        )
        .unwrap();
        assert_eq!(workloads.len(), functions.len());
        let workflow = workloads.iter().find(|w| w.name == "workflow").unwrap();
        let declared = functions.iter().find(|f| f.name == "workflow").unwrap();
        assert_eq!(
            workflow.scaled_object.max_replicas,
            declared.scaling.dev.max
        );
        assert_eq!(
            workflow.scaled_object.cooldown,
            Duration::from_secs(u64::from(declared.scaling.dev.cooldown_seconds))
        );
        let ingestion = workloads.iter().find(|w| w.name == "ingestion").unwrap();
        assert!(ingestion.route.is_some());
    }
}
