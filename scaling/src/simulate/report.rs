//! What a simulation found, per function, and how it reads as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::explain::Change;

/// One function's figures over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionReport {
    pub name: String,
    pub arrivals: u64,
    pub completed: u64,
    /// Seconds each unit waited for a handler: a message's queue age, a request's hold.
    pub waits: Vec<f64>,
    pub wait_p50: f64,
    pub wait_p99: f64,
    pub wait_max: f64,
    /// Scale-ups from 0.
    pub activations: u64,
    /// Units that arrived while no replica was ready: each waited for a cold start.
    pub cold_units: u64,
    /// Requests answered 504 after the route's readiness timeout.
    pub timeouts: u64,
    /// Requests cut off when their replica's grace ran out.
    pub failed: u64,
    /// Messages handled again because their replica was cut off.
    pub redelivered: u64,
    /// Units a replica held when it was asked to stop (SIGTERM).
    pub stopped_with_work: u64,
    /// Units still running when their replica's grace ran out.
    pub cut_off: u64,
    /// Pods existing (starting, ready or stopping), integrated over time: the cost.
    pub replica_seconds: f64,
    /// The same for maxReplicaCount replicas all the time.
    pub always_on_replica_seconds: f64,
    pub max_pods: u32,
    /// The `azure-servicebus` scaler's management-API reads per minute.
    pub broker_reads_per_minute: f64,
}

/// The state of every function at one moment, in the order of [`Report::functions`]:
/// (spec replicas, ready replicas, units waiting, units in service).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Duration,
    pub by_function: Vec<(u32, u32, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub duration: Duration,
    pub functions: Vec<FunctionReport>,
    pub changes: Vec<Change>,
    /// One sample a second.
    pub samples: Vec<Sample>,
}

impl FunctionReport {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            arrivals: 0,
            completed: 0,
            waits: Vec::new(),
            wait_p50: 0.0,
            wait_p99: 0.0,
            wait_max: 0.0,
            activations: 0,
            cold_units: 0,
            timeouts: 0,
            failed: 0,
            redelivered: 0,
            stopped_with_work: 0,
            cut_off: 0,
            replica_seconds: 0.0,
            always_on_replica_seconds: 0.0,
            max_pods: 0,
            broker_reads_per_minute: 0.0,
        }
    }

    pub(crate) fn finish(
        &mut self,
        duration: Duration,
        max_replicas: u32,
        broker_reads_per_minute: f64,
    ) {
        self.waits.sort_by(f64::total_cmp);
        self.wait_p50 = percentile(&self.waits, 0.50);
        self.wait_p99 = percentile(&self.waits, 0.99);
        self.wait_max = self.waits.last().copied().unwrap_or(0.0);
        self.always_on_replica_seconds = f64::from(max_replicas) * duration.as_secs_f64();
        self.broker_reads_per_minute = broker_reads_per_minute;
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    /// The per-function table, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| function | arrivals | done | wait p50 / p99 / max | from 0 | waited for a cold start | 504 | held work at SIGTERM | cut off | replica-seconds | vs always at max |\n\
             |---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for f in &self.functions {
            let share = if f.always_on_replica_seconds > 0.0 {
                format!(
                    "{:.1}%",
                    100.0 * f.replica_seconds / f.always_on_replica_seconds
                )
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {} | {:.0} | {share} |",
                f.name,
                f.arrivals,
                f.completed,
                secs(f.wait_p50),
                secs(f.wait_p99),
                secs(f.wait_max),
                f.activations,
                f.cold_units,
                f.timeouts,
                f.stopped_with_work,
                f.cut_off,
                f.replica_seconds,
            );
        }
        out
    }

    /// The explain log, one change a line.
    pub fn explain(&self) -> String {
        self.changes.iter().map(|c| format!("{c}\n")).collect()
    }
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
