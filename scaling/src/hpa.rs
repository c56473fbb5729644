//! The HorizontalPodAutoscaler KEDA creates for a ScaledObject: what moves a workload
//! between 1 and N (SCALING.md §2). KEDA itself only writes 0 ↔ 1 ([`crate::keda`]).
//!
//! Sources: `kubernetes/kubernetes:pkg/controller/podautoscaler/horizontal.go`
//! (`reconcileAutoscaler`, `normalizeDesiredReplicas`, `stabilizeRecommendation`,
//! `convertDesiredReplicasWithRules`, `normalizeDesiredReplicasWithBehaviors`,
//! `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithBehaviors`) and
//! `replica_calculator.go` (`GetExternalPerPodMetricReplicas`, `GetExternalMetricReplicas`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::objects::MetricType;

/// The HPA controller's sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// `--horizontal-pod-autoscaler-tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// `--horizontal-pod-autoscaler-downscale-stabilization`: the legacy path's window.
pub const DOWNSCALE_STABILIZATION: Duration = Duration::from_secs(300);
/// The legacy path's scale-up cap: `max(scaleUpLimitFactor × current, scaleUpLimitMinimum)`.
const SCALE_UP_LIMIT_FACTOR: u32 = 2;
const SCALE_UP_LIMIT_MINIMUM: u32 = 4;

/// `spec.behavior` of the HPA, with the apiserver's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

/// One direction's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization: Duration,
    pub policies: Vec<Policy>,
    pub select: Select,
    /// Per-direction tolerance (Kubernetes 1.33+); the controller's flag when `None`.
    pub tolerance: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

/// `selectPolicy`: the policy allowing the most change (`Max`, the default), the least
/// (`Min`), or no change in that direction (`Disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

impl Rules {
    /// `scaleUp` when left out: no stabilisation; double or add 4 pods per 15 s, whichever
    /// is more.
    pub fn default_scale_up() -> Rules {
        Rules {
            stabilization: Duration::ZERO,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15),
                },
            ],
            select: Select::Max,
            tolerance: None,
        }
    }

    /// `scaleDown` when left out: a 5-minute window, then any number of pods at once.
    pub fn default_scale_down() -> Rules {
        Rules {
            stabilization: DOWNSCALE_STABILIZATION,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15),
            }],
            select: Select::Max,
            tolerance: None,
        }
    }
}

/// One metric's reading at a sync: KEDA's value for it (an error when the scaler failed and
/// no fallback applies), and its target.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReading {
    pub name: String,
    pub value: Result<f64, String>,
    pub target: f64,
    pub metric_type: MetricType,
}

/// The workload as the HPA sees it at a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// `scale.spec.replicas`: what was last asked for.
    pub spec_replicas: u32,
    /// `scale.status.replicas`: pods that exist, ready or not.
    pub status_replicas: u32,
    /// Pods Running and Ready.
    pub ready_pods: u32,
}

/// What one sync decided, and why, in words for the explain log.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// `None`: the HPA is idle at 0 replicas (ScalingDisabled) and read nothing.
    pub desired: Option<u32>,
    pub reason: String,
}

/// One HPA's state across syncs: its recommendations and the scale events of its own
/// changes (KEDA's 0 → 1 write is not among them).
#[derive(Debug, Clone)]
pub struct Hpa {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub behavior: Option<Behavior>,
    /// The controller's tolerance flag.
    pub tolerance: f64,
    recommendations: Vec<(Duration, u32)>,
    scale_up_events: Vec<(Duration, u32)>,
    scale_down_events: Vec<(Duration, u32)>,
}

impl Hpa {
    /// The HPA KEDA creates: `minReplicas = max(1, minReplicaCount)`.
    pub fn new(min_replica_count: u32, max_replicas: u32, behavior: Option<Behavior>) -> Self {
        Self {
            min_replicas: min_replica_count.max(1),
            max_replicas,
            behavior,
            tolerance: DEFAULT_TOLERANCE,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
        }
    }

    /// One sync at `now` (`reconcileAutoscaler`). The caller applies `desired` to the
    /// workload when it differs from `observed.spec_replicas`.
    pub fn sync(
        &mut self,
        now: Duration,
        observed: Observed,
        metrics: &[MetricReading],
    ) -> SyncOutcome {
        let current = observed.spec_replicas;
        let outcome = if current == 0 && self.min_replicas != 0 {
            return SyncOutcome {
                desired: None,
                reason: "ScalingDisabled at 0 replicas".to_owned(),
            };
        } else if current > self.max_replicas {
            SyncOutcome {
                desired: Some(self.max_replicas),
                reason: format!(
                    "{current} replicas are above maxReplicas {}",
                    self.max_replicas
                ),
            }
        } else if current < self.min_replicas {
            SyncOutcome {
                desired: Some(self.min_replicas),
                reason: format!(
                    "{current} replicas are below minReplicas {}",
                    self.min_replicas
                ),
            }
        } else {
            match self.proposal(observed, metrics) {
                Ok((proposal, mut reason)) => {
                    let (desired, why) = match &self.behavior {
                        None => self.normalize_legacy(now, current, proposal),
                        Some(_) => self.normalize_with_behavior(now, current, proposal),
                    };
                    if !why.is_empty() {
                        let _ = write!(reason, "; {why}");
                    }
                    SyncOutcome {
                        desired: Some(desired),
                        reason,
                    }
                }
                Err(reason) => SyncOutcome {
                    desired: Some(current),
                    reason,
                },
            }
        };
        if let Some(desired) = outcome.desired {
            self.record_scale_event(now, current, desired);
        }
        outcome
    }

    /// The largest proposal over the metrics (`computeReplicasForMetrics`). With a failed
    /// metric, a scale-down is not made: the error stands instead.
    fn proposal(
        &self,
        observed: Observed,
        metrics: &[MetricReading],
    ) -> Result<(u32, String), String> {
        let mut best: Option<u32> = None;
        let mut words = Vec::new();
        let mut failed = Vec::new();
        for m in metrics {
            match &m.value {
                Ok(value) => {
                    let p = self.metric_proposal(observed, *value, m);
                    words.push(format!(
                        "{} {} / target {} → {p}",
                        m.name,
                        num(*value),
                        num(m.target)
                    ));
                    best = Some(best.map_or(p, |b| b.max(p)));
                }
                Err(e) => failed.push(format!("{}: {e}", m.name)),
            }
        }
        let current = observed.spec_replicas;
        match best {
            None => Err(format!(
                "no metric could be read ({}); no change",
                failed.join("; ")
            )),
            Some(p) if !failed.is_empty() && p < current => Err(format!(
                "{}; a metric failed ({}), so no scale-down",
                words.join(", "),
                failed.join("; ")
            )),
            Some(p) => Ok((p, format!("HPA proposes {p} ({})", words.join(", ")))),
        }
    }

    fn metric_proposal(&self, observed: Observed, total: f64, m: &MetricReading) -> u32 {
        let (up, down) = self.tolerances();
        let within = |ratio: f64| (1.0 - down) <= ratio && ratio <= (1.0 + up);
        match m.metric_type {
            // `GetExternalPerPodMetricReplicas`: against the pods that exist, ready or not.
            MetricType::AverageValue => {
                let status = f64::from(observed.status_replicas);
                let ratio = total / (m.target * status);
                if observed.status_replicas > 0 && within(ratio) {
                    observed.status_replicas
                } else {
                    ceil_u32(total / m.target)
                }
            }
            // `GetExternalMetricReplicas`: the whole value, scaled by the ready pods.
            MetricType::Value => {
                let ratio = total / m.target;
                if observed.spec_replicas == 0 {
                    ceil_u32(ratio)
                } else if within(ratio) {
                    observed.spec_replicas
                } else {
                    ceil_u32(ratio * f64::from(observed.ready_pods))
                }
            }
        }
    }

    fn tolerances(&self) -> (f64, f64) {
        let of = |rules: Option<&Rules>| rules.and_then(|r| r.tolerance).unwrap_or(self.tolerance);
        let b = self.behavior.as_ref();
        (of(b.map(|b| &b.scale_up)), of(b.map(|b| &b.scale_down)))
    }

    /// `behavior` unset: the highest recommendation of the last 5 minutes, then at most
    /// `max(2 × current, 4)` up.
    fn normalize_legacy(&mut self, now: Duration, current: u32, proposal: u32) -> (u32, String) {
        let window_start = now.saturating_sub(DOWNSCALE_STABILIZATION);
        self.recommendations.retain(|(at, _)| *at >= window_start);
        let stabilized = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .fold(proposal, u32::max);
        self.recommendations.push((now, proposal));
        let mut why = String::new();
        if stabilized != proposal {
            why = format!(
                "held at {stabilized}, the highest recommendation of the last 300 s (legacy path)"
            );
        }
        let up_limit = (SCALE_UP_LIMIT_FACTOR * current).max(SCALE_UP_LIMIT_MINIMUM);
        let max_allowed = self.max_replicas.min(up_limit);
        let desired = if stabilized < self.min_replicas {
            self.min_replicas
        } else if stabilized > max_allowed {
            why = if max_allowed == self.max_replicas {
                format!("capped at maxReplicas {}", self.max_replicas)
            } else {
                format!("capped at max(2 × {current}, 4) = {up_limit} per sync (legacy path)")
            };
            max_allowed
        } else {
            stabilized
        };
        (desired, why)
    }

    /// `behavior` set: the stabilisation windows, then the policies' limits.
    fn normalize_with_behavior(
        &mut self,
        now: Duration,
        current: u32,
        proposal: u32,
    ) -> (u32, String) {
        let Some(behavior) = self.behavior.clone() else {
            return self.normalize_legacy(now, current, proposal);
        };
        // `stabilizeRecommendationWithBehaviors`.
        let up_start = now.saturating_sub(behavior.scale_up.stabilization);
        let down_start = now.saturating_sub(behavior.scale_down.stabilization);
        let mut up_rec = proposal;
        let mut down_rec = proposal;
        for (at, r) in &self.recommendations {
            if *at > up_start {
                up_rec = up_rec.min(*r);
            }
            if *at > down_start {
                down_rec = down_rec.max(*r);
            }
        }
        let keep_from = now.saturating_sub(
            behavior
                .scale_up
                .stabilization
                .max(behavior.scale_down.stabilization),
        );
        self.recommendations.retain(|(at, _)| *at > keep_from);
        self.recommendations.push((now, proposal));
        let stabilized = current.max(up_rec).min(down_rec);
        let mut why = String::new();
        if stabilized != proposal {
            why = if stabilized > proposal {
                format!(
                    "held at {stabilized} by the scaleDown stabilization window of {} s",
                    behavior.scale_down.stabilization.as_secs()
                )
            } else {
                format!(
                    "held at {stabilized} by the scaleUp stabilization window of {} s",
                    behavior.scale_up.stabilization.as_secs()
                )
            };
        }
        // `convertDesiredReplicasWithBehaviorRate`.
        let desired = if stabilized > current {
            let limit = self
                .scale_up_limit(now, current, &behavior.scale_up)
                .max(current);
            let max_allowed = self.max_replicas.min(limit);
            if stabilized > max_allowed {
                why = if max_allowed == self.max_replicas {
                    format!("capped at maxReplicas {}", self.max_replicas)
                } else if behavior.scale_up.select == Select::Disabled {
                    "scaleUp selectPolicy Disabled".to_owned()
                } else {
                    format!("capped at {max_allowed} by the scaleUp policies")
                };
                max_allowed
            } else {
                stabilized
            }
        } else if stabilized < current {
            let limit = self
                .scale_down_limit(now, current, &behavior.scale_down)
                .min(current);
            let min_allowed = self.min_replicas.max(limit);
            if stabilized < min_allowed {
                why = if min_allowed == self.min_replicas {
                    format!("held at minReplicas {}", self.min_replicas)
                } else if behavior.scale_down.select == Select::Disabled {
                    "scaleDown selectPolicy Disabled".to_owned()
                } else {
                    format!("held at {min_allowed} by the scaleDown policies")
                };
                min_allowed
            } else {
                stabilized
            }
        } else {
            stabilized
        };
        (desired, why)
    }

    /// `calculateScaleUpLimitWithScalingRules`.
    fn scale_up_limit(&self, now: Duration, current: u32, rules: &Rules) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let limits = rules.policies.iter().map(|p| {
            let start = self.period_start(now, current, p.period);
            match p.kind {
                PolicyKind::Pods => start + i64::from(p.value),
                PolicyKind::Percent => {
                    (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
                }
            }
        });
        let limit = match rules.select {
            Select::Min => limits.min(),
            _ => limits.max(),
        };
        clamp_u32(limit.unwrap_or(i64::from(current)))
    }

    /// `calculateScaleDownLimitWithBehaviors`. Percent truncates toward zero, as the
    /// controller's `int32(float64(start) * (1 - value/100))` does (SCALING.md §2.4 writes
    /// `ceil`; the code is what runs).
    fn scale_down_limit(&self, now: Duration, current: u32, rules: &Rules) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let limits = rules.policies.iter().map(|p| {
            let start = self.period_start(now, current, p.period);
            match p.kind {
                PolicyKind::Pods => start - i64::from(p.value),
                PolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
            }
        });
        // Max allows the most change, which down is the lowest limit.
        let limit = match rules.select {
            Select::Min => limits.max(),
            _ => limits.min(),
        };
        clamp_u32(limit.unwrap_or(i64::from(current)))
    }

    /// The replicas at the start of a policy's period: the current ones less what this HPA
    /// added in it, plus what it removed.
    fn period_start(&self, now: Duration, current: u32, period: Duration) -> i64 {
        let within = |events: &[(Duration, u32)]| -> i64 {
            events
                .iter()
                .filter(|(at, _)| *at + period > now)
                .map(|(_, n)| i64::from(*n))
                .sum()
        };
        i64::from(current) - within(&self.scale_up_events) + within(&self.scale_down_events)
    }

    fn record_scale_event(&mut self, now: Duration, from: u32, to: u32) {
        let Some(behavior) = &self.behavior else {
            return;
        };
        let longest = behavior
            .scale_up
            .policies
            .iter()
            .chain(&behavior.scale_down.policies)
            .map(|p| p.period)
            .max()
            .unwrap_or_default();
        let keep = |events: &mut Vec<(Duration, u32)>| events.retain(|(at, _)| *at + longest > now);
        keep(&mut self.scale_up_events);
        keep(&mut self.scale_down_events);
        if to > from {
            self.scale_up_events.push((now, to - from));
        } else if to < from {
            self.scale_down_events.push((now, from - to));
        }
    }
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

fn clamp_u32(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

/// A metric value as the explain log prints it: whole numbers without a fraction.
pub(crate) fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(value: f64, target: f64) -> MetricReading {
        MetricReading {
            name: "s0-m".into(),
            value: Ok(value),
            target,
            metric_type: MetricType::AverageValue,
        }
    }

    fn at(spec: u32) -> Observed {
        Observed {
            spec_replicas: spec,
            status_replicas: spec,
            ready_pods: spec,
        }
    }

    /// Runs syncs every 15 s from t=15 s, applying each decision, and returns the replica
    /// counts after each.
    fn ramp(hpa: &mut Hpa, start: u32, value: f64, target: f64, syncs: usize) -> Vec<u32> {
        let mut replicas = start;
        (1..=syncs)
            .map(|i| {
                let now = SYNC_PERIOD * i as u32;
                let out = hpa.sync(now, at(replicas), &[metric(value, target)]);
                replicas = out.desired.unwrap();
                replicas
            })
            .collect()
    }

    #[test]
    fn average_value_is_the_ceiling_of_total_over_target() {
        let mut hpa = Hpa::new(0, 100, None);
        let out = hpa.sync(SYNC_PERIOD, at(1), &[metric(101.0, 20.0)]);
        // ceil(101 / 20) = 6, capped at max(2 × 1, 4) = 4 on the legacy path.
        assert_eq!(out.desired, Some(4));
        assert!(out.reason.contains("HPA proposes 6"), "{}", out.reason);
        assert!(out.reason.contains("max(2 × 1, 4)"), "{}", out.reason);
    }

    #[test]
    fn within_the_tolerance_of_one_tenth_nothing_changes() {
        let mut hpa = Hpa::new(0, 100, None);
        // 4 replicas, target 10: 44 is a ratio of 1.1, within; 45 is not.
        assert_eq!(
            hpa.sync(SYNC_PERIOD, at(4), &[metric(44.0, 10.0)]).desired,
            Some(4)
        );
        let mut hpa = Hpa::new(0, 100, None);
        assert_eq!(
            hpa.sync(SYNC_PERIOD, at(4), &[metric(45.0, 10.0)]).desired,
            Some(5)
        );
        // The proposal is against status replicas (pods that exist, ready or not).
        let mut hpa = Hpa::new(0, 100, None);
        let observed = Observed {
            spec_replicas: 4,
            status_replicas: 4,
            ready_pods: 1,
        };
        assert_eq!(
            hpa.sync(SYNC_PERIOD, observed, &[metric(40.0, 10.0)])
                .desired,
            Some(4)
        );
    }

    #[test]
    fn at_zero_replicas_the_hpa_is_idle() {
        let mut hpa = Hpa::new(0, 10, None);
        let out = hpa.sync(SYNC_PERIOD, at(0), &[metric(100.0, 5.0)]);
        assert_eq!(out.desired, None);
    }

    #[test]
    fn the_legacy_ramp_from_one_toward_twenty_is_4_8_16_20() {
        // SCALING.md §2.4 and §6: 100 messages, target 5, from 1 replica.
        let mut hpa = Hpa::new(0, 100, None);
        assert_eq!(ramp(&mut hpa, 1, 100.0, 5.0, 5), vec![4, 8, 16, 20, 20]);
    }

    #[test]
    fn the_default_behavior_ramp_from_one_toward_twenty_is_5_10_20() {
        let behavior = Behavior {
            scale_up: Rules::default_scale_up(),
            scale_down: Rules::default_scale_down(),
        };
        let mut hpa = Hpa::new(0, 100, Some(behavior));
        // Pods 4 from 1 is 5 (more than 100 % of 1 is 2); then 10 (100 % of 5), then 20.
        assert_eq!(ramp(&mut hpa, 1, 100.0, 5.0, 4), vec![5, 10, 20, 20]);
    }

    #[test]
    fn the_legacy_path_holds_the_highest_recommendation_for_five_minutes() {
        let mut hpa = Hpa::new(0, 100, None);
        let mut replicas = 8;
        let mut history = Vec::new();
        for i in 1..=25u32 {
            let value = if i == 1 { 40.0 } else { 5.0 };
            replicas = hpa
                .sync(SYNC_PERIOD * i, at(replicas), &[metric(value, 5.0)])
                .desired
                .unwrap();
            history.push(replicas);
        }
        // Recommended 8 at t=15 s; 1 from then on; the 8 leaves the window after 300 s.
        assert!(history[..20].iter().all(|r| *r == 8), "{history:?}");
        assert_eq!(history[21], 1, "{history:?}");
    }

    #[test]
    fn scale_down_policies_limit_each_period() {
        // The workflow's: 120 s window, then one pod per 60 s.
        let behavior = Behavior {
            scale_up: Rules::default_scale_up(),
            scale_down: Rules {
                stabilization: Duration::from_secs(120),
                policies: vec![Policy {
                    kind: PolicyKind::Pods,
                    value: 1,
                    period: Duration::from_secs(60),
                }],
                select: Select::Max,
                tolerance: None,
            },
        };
        let mut hpa = Hpa::new(0, 10, Some(behavior));
        let mut replicas = 3;
        let mut changes = Vec::new();
        for i in 1..=30u32 {
            let now = SYNC_PERIOD * i;
            let value = if i == 1 { 60.0 } else { 0.0 };
            let next = hpa
                .sync(now, at(replicas), &[metric(value, 20.0)])
                .desired
                .unwrap();
            if next != replicas {
                changes.push((now.as_secs(), next));
            }
            replicas = next;
        }
        // 3 was recommended at t=15 s and holds while it is inside the 120 s window (up
        // to t=135 s, the window's start being exclusive); then one pod per 60 s, and the
        // HPA stops at its minReplicas of 1 (KEDA, not the HPA, takes it to 0).
        assert_eq!(changes, vec![(135, 2), (195, 1)]);
    }

    #[test]
    fn percent_scale_down_truncates_and_select_min_takes_the_smaller_change() {
        let rules = Rules {
            stabilization: Duration::ZERO,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period: Duration::from_secs(60),
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 1,
                    period: Duration::from_secs(60),
                },
            ],
            select: Select::Max,
            tolerance: None,
        };
        let hpa = Hpa::new(1, 10, None);
        // 5 × 0.5 = 2.5 truncates to 2; Pods allows 4; Max (most change) takes 2.
        assert_eq!(hpa.scale_down_limit(Duration::ZERO, 5, &rules), 2);
        let min = Rules {
            select: Select::Min,
            ..rules.clone()
        };
        assert_eq!(hpa.scale_down_limit(Duration::ZERO, 5, &min), 4);
        let disabled = Rules {
            select: Select::Disabled,
            ..rules
        };
        assert_eq!(hpa.scale_down_limit(Duration::ZERO, 5, &disabled), 5);
    }

    #[test]
    fn a_failed_metric_blocks_a_scale_down_but_not_a_scale_up() {
        let mut hpa = Hpa::new(0, 10, None);
        let failed = MetricReading {
            name: "s1-x".into(),
            value: Err("scaler down".into()),
            target: 5.0,
            metric_type: MetricType::AverageValue,
        };
        let down = hpa.sync(SYNC_PERIOD, at(4), &[metric(0.0, 5.0), failed.clone()]);
        assert_eq!(down.desired, Some(4));
        assert!(down.reason.contains("no scale-down"), "{}", down.reason);
        let up = hpa.sync(SYNC_PERIOD * 2, at(4), &[metric(40.0, 5.0), failed]);
        assert_eq!(up.desired, Some(8));
    }

    #[test]
    fn value_metrics_scale_by_ready_pods() {
        let mut hpa = Hpa::new(0, 100, None);
        let m = MetricReading {
            metric_type: MetricType::Value,
            ..metric(30.0, 10.0)
        };
        let observed = Observed {
            spec_replicas: 2,
            status_replicas: 2,
            ready_pods: 2,
        };
        // ratio 3 × 2 ready = 6, capped by max(2 × 2, 4) = 4.
        assert_eq!(hpa.sync(SYNC_PERIOD, observed, &[m]).desired, Some(4));
    }

    #[test]
    fn replicas_outside_min_and_max_are_corrected_first() {
        let mut hpa = Hpa::new(2, 5, None);
        assert_eq!(
            hpa.sync(SYNC_PERIOD, at(7), &[metric(0.0, 1.0)]).desired,
            Some(5)
        );
        assert_eq!(
            hpa.sync(SYNC_PERIOD * 2, at(1), &[metric(100.0, 1.0)])
                .desired,
            Some(2)
        );
    }
}
