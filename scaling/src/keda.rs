//! KEDA's scale loop for one ScaledObject (SCALING.md §1): activity at every
//! `pollingInterval` tick or pushed `true`, `LastActiveTime`, the cooldown that takes a
//! workload from N to 0 in one step, and fallback (§1.5) on every query, the loop's and the
//! HPA's alike.
//!
//! Sources: `kedacore/keda:pkg/scaling/scale_handler.go` (`getScaledObjectState`,
//! `startPushScalers`), `pkg/scaling/executor/scale_scaledobjects.go` (`RequestScale`),
//! `pkg/fallback/fallback.go`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::explain::{Change, Rule, seconds};
use crate::hpa::MetricReading;
use crate::objects::{FallbackBehavior, MetricType, ScaledObject};

/// One metric a trigger serves, as `GetMetricSpec` names it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub name: String,
    pub target: f64,
    pub metric_type: MetricType,
}

/// What one trigger's scaler answered at a query: its metrics' values and whether it is
/// active, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerAnswer {
    pub metrics: Vec<MetricSpec>,
    pub reading: Result<Reading, String>,
}

/// A successful reading: one value per metric, in the order of `metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub values: Vec<f64>,
    pub active: bool,
    /// The comparison that made it active or not, e.g.
    /// `ActiveMessageCount 12 > activationMessageCount 0`.
    pub why: String,
}

/// What the loop decided at a tick or a push.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The change KEDA writes to the workload, if any.
    pub change: Option<Change>,
    /// What the loop concluded, for the log even when nothing changed.
    pub state: String,
}

/// One ScaledObject's loop state.
#[derive(Debug, Clone)]
pub struct ScaleLoop {
    workload: String,
    min: u32,
    idle: Option<u32>,
    cooldown: Duration,
    initial_cooldown: Duration,
    fallback: Option<crate::objects::Fallback>,
    /// When the object was created (the start of the run).
    created: Duration,
    last_active: Option<Duration>,
    /// Consecutive failures per metric, over every query.
    failures: BTreeMap<String, u32>,
}

impl ScaleLoop {
    pub fn new(so: &ScaledObject, created: Duration) -> Self {
        Self {
            workload: so.target.clone(),
            min: so.min_replicas,
            idle: so.idle_replicas,
            cooldown: so.cooldown,
            initial_cooldown: so.initial_cooldown,
            fallback: so.fallback,
            created,
            last_active: None,
            failures: BTreeMap::new(),
        }
    }

    pub fn last_active(&self) -> Option<Duration> {
        self.last_active
    }

    /// A loop tick at `now` with every trigger's answer (`getScaledObjectState`, then
    /// `RequestScale`).
    pub fn tick(
        &mut self,
        now: Duration,
        current: u32,
        ready: u32,
        answers: &[ScalerAnswer],
    ) -> Decision {
        let mut active = false;
        let mut error = false;
        let mut why = Vec::new();
        for answer in answers {
            match &answer.reading {
                Ok(reading) => {
                    for m in &answer.metrics {
                        self.failures.remove(&m.name);
                    }
                    active |= reading.active;
                    why.push(reading.why.clone());
                }
                Err(e) => {
                    error = true;
                    // v2.19+: a fallback in force also counts as active (keda#7239).
                    let served = answer
                        .metrics
                        .iter()
                        .map(|m| self.count_failure(m, current, ready))
                        .any(|v| v.is_ok());
                    if served {
                        active = true;
                        why.push(format!("fallback in force after a failed query ({e})"));
                    } else {
                        why.push(format!("the scaler failed: {e}"));
                    }
                }
            }
        }
        let why = why.join("; ");
        self.request_scale(
            now,
            current,
            active,
            error,
            &format!("{why} at the loop tick"),
        )
    }

    /// An `external-push` scaler sent `true`: `RequestScale` at once, as active, with no
    /// error. (`false` is ignored, keda v2.18 #6986.)
    pub fn push(&mut self, now: Duration, current: u32, why: &str) -> Decision {
        let mut decision = self.request_scale(
            now,
            current,
            true,
            false,
            &format!("{why}, pushed on StreamIsActive"),
        );
        if let Some(change) = &mut decision.change
            && change.rule == Rule::Activation
        {
            change.rule = Rule::PushActivation;
        }
        decision
    }

    /// `RequestScale`, in its own order (SCALING.md §1.3).
    fn request_scale(
        &mut self,
        now: Duration,
        current: u32,
        active: bool,
        error: bool,
        why: &str,
    ) -> Decision {
        let change = |to: u32, rule: Rule, detail: String| Decision {
            change: Some(Change {
                at: now,
                workload: self.workload.clone(),
                from: current,
                to,
                rule,
                detail,
            }),
            state: String::new(),
        };
        let stay = |state: String| Decision {
            change: None,
            state,
        };
        if active {
            if (self.idle.is_some() && current < self.min) || current == 0 {
                self.last_active = Some(now);
                return change(self.min.max(1), Rule::Activation, why.to_owned());
            }
            if error {
                return stay(format!(
                    "active with a trigger error (PartialTriggerError): {why}; LastActiveTime not refreshed"
                ));
            }
            self.last_active = Some(now);
            return stay(format!("active: {why}; LastActiveTime = {}", seconds(now)));
        }
        if error {
            return match self.fallback {
                Some(f) if f.replicas != 0 => stay(format!("{why}; the HPA applies the fallback")),
                _ => stay(format!("{why}; no fallback, no change (TriggerError)")),
            };
        }
        let above_idle = self.idle.is_some_and(|idle| current > idle);
        if above_idle || (current > 0 && self.min == 0) {
            let to = self.idle.unwrap_or(self.min);
            return match self.last_active {
                None if self.created + self.initial_cooldown < now => change(
                    to,
                    Rule::InitialCooldown,
                    format!(
                        "never active since creation at {}, initialCooldownPeriod {} passed: {why}",
                        seconds(self.created),
                        seconds(self.initial_cooldown)
                    ),
                ),
                Some(last) if last + self.cooldown < now => change(
                    to,
                    Rule::Cooldown,
                    format!(
                        "cooldown {} passed since the last active tick t={} (HPA scaleDown policies bypassed): {why}",
                        seconds(self.cooldown),
                        seconds(last)
                    ),
                ),
                _ => stay(format!("inactive: {why}; ScalerCooldown")),
            };
        }
        if self.idle.is_none() && current < self.min {
            return change(
                self.min,
                Rule::MinReplicas,
                format!("{current} replicas are below minReplicaCount {}", self.min),
            );
        }
        stay(format!("inactive: {why}"))
    }

    /// The values the HPA reads at a sync, each through the fallback (failures are counted on
    /// HPA queries too).
    pub fn hpa_readings(
        &mut self,
        current: u32,
        ready: u32,
        answers: &[ScalerAnswer],
    ) -> Vec<MetricReading> {
        let mut readings = Vec::new();
        for answer in answers {
            for (i, m) in answer.metrics.iter().enumerate() {
                let value = match &answer.reading {
                    Ok(r) => {
                        self.failures.remove(&m.name);
                        Ok(r.values.get(i).copied().unwrap_or(0.0))
                    }
                    Err(e) => self
                        .count_failure(m, current, ready)
                        .map_err(|()| e.clone()),
                };
                readings.push(MetricReading {
                    name: m.name.clone(),
                    value,
                    target: m.target,
                    metric_type: m.metric_type,
                });
            }
        }
        readings
    }

    /// Counts a failed query of `m`; the fallback's value once failures pass the threshold
    /// (strictly greater), else `Err`.
    fn count_failure(&mut self, m: &MetricSpec, current: u32, ready: u32) -> Result<f64, ()> {
        let failures = self.failures.entry(m.name.clone()).or_default();
        *failures += 1;
        let Some(f) = self.fallback else {
            return Err(());
        };
        if *failures <= f.failure_threshold {
            return Err(());
        }
        let replicas = match f.behavior {
            FallbackBehavior::Static => f.replicas,
            FallbackBehavior::CurrentReplicas => current,
            FallbackBehavior::CurrentReplicasIfHigher => current.max(f.replicas),
            FallbackBehavior::CurrentReplicasIfLower => current.min(f.replicas),
        };
        Ok(match m.metric_type {
            MetricType::AverageValue => m.target * f64::from(replicas),
            MetricType::Value => m.target * f64::from(replicas) / f64::from(ready.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Fallback, Trigger, TriggerKind};

    fn so(min: u32, cooldown: u64, initial: u64) -> ScaledObject {
        ScaledObject {
            name: "w".into(),
            target: "w".into(),
            polling_interval: Duration::from_secs(30),
            cooldown: Duration::from_secs(cooldown),
            initial_cooldown: Duration::from_secs(initial),
            min_replicas: min,
            max_replicas: 10,
            idle_replicas: None,
            fallback: None,
            behavior: None,
            triggers: vec![Trigger {
                metric_type: MetricType::AverageValue,
                kind: TriggerKind::ServiceBus {
                    queue: "q".into(),
                    message_count: 5.0,
                    activation_message_count: 0.0,
                },
            }],
        }
    }

    fn answer(value: f64, active: bool) -> ScalerAnswer {
        ScalerAnswer {
            metrics: vec![MetricSpec {
                name: "s0-m".into(),
                target: 5.0,
                metric_type: MetricType::AverageValue,
            }],
            reading: Ok(Reading {
                values: vec![value],
                active,
                why: format!("value {value}"),
            }),
        }
    }

    fn failed() -> ScalerAnswer {
        ScalerAnswer {
            reading: Err("throttled".into()),
            ..answer(0.0, false)
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn activity_at_zero_scales_to_one_and_stamps_last_active_time() {
        let mut l = ScaleLoop::new(&so(0, 300, 0), Duration::ZERO);
        let d = l.tick(secs(30), 0, 0, &[answer(12.0, true)]);
        let change = d.change.unwrap();
        assert_eq!(
            (change.from, change.to, change.rule),
            (0, 1, Rule::Activation)
        );
        assert_eq!(l.last_active(), Some(secs(30)));
        // Active above zero: only the clock moves; KEDA leaves 1↔N to the HPA.
        let d = l.tick(secs(60), 3, 3, &[answer(50.0, true)]);
        assert!(d.change.is_none());
        assert_eq!(l.last_active(), Some(secs(60)));
    }

    #[test]
    fn the_cooldown_takes_n_to_zero_in_one_step_strictly_after_it_passed() {
        let mut l = ScaleLoop::new(&so(0, 300, 0), Duration::ZERO);
        l.tick(secs(30), 0, 0, &[answer(1.0, true)]);
        // At exactly last + cooldown nothing happens: the comparison is strict.
        assert!(
            l.tick(secs(330), 3, 3, &[answer(0.0, false)])
                .change
                .is_none()
        );
        let change = l
            .tick(secs(360), 3, 3, &[answer(0.0, false)])
            .change
            .unwrap();
        assert_eq!(
            (change.from, change.to, change.rule),
            (3, 0, Rule::Cooldown)
        );
        assert!(
            change.detail.contains("since the last active tick t=30 s"),
            "{}",
            change.detail
        );
        assert!(change.detail.contains("bypassed"));
    }

    #[test]
    fn never_active_means_the_initial_cooldown_decides() {
        // With 0 a running Deployment goes to 0 at the first tick (http-add-on#887).
        let mut l = ScaleLoop::new(&so(0, 300, 0), Duration::ZERO);
        let change = l
            .tick(secs(30), 2, 2, &[answer(0.0, false)])
            .change
            .unwrap();
        assert_eq!((change.to, change.rule), (0, Rule::InitialCooldown));
        let mut l = ScaleLoop::new(&so(0, 300, 120), Duration::ZERO);
        assert!(
            l.tick(secs(120), 2, 2, &[answer(0.0, false)])
                .change
                .is_none()
        );
        assert_eq!(
            l.tick(secs(150), 2, 2, &[answer(0.0, false)])
                .change
                .unwrap()
                .to,
            0
        );
    }

    #[test]
    fn min_replicas_of_one_never_goes_to_zero_and_is_restored() {
        let mut l = ScaleLoop::new(&so(1, 300, 0), Duration::ZERO);
        assert!(
            l.tick(secs(900), 1, 1, &[answer(0.0, false)])
                .change
                .is_none()
        );
        let change = l
            .tick(secs(930), 0, 0, &[answer(0.0, false)])
            .change
            .unwrap();
        assert_eq!((change.to, change.rule), (1, Rule::MinReplicas));
    }

    #[test]
    fn a_push_activates_at_once_and_refreshes_the_clock_above_zero() {
        let mut l = ScaleLoop::new(&so(0, 300, 0), Duration::ZERO);
        let change = l
            .push(Duration::from_millis(700), 0, "concurrency 1 > 0")
            .change
            .unwrap();
        assert_eq!((change.to, change.rule), (1, Rule::PushActivation));
        assert!(l.push(secs(200), 1, "rate 0.5 > 0").change.is_none());
        assert_eq!(l.last_active(), Some(secs(200)));
        assert!(
            l.tick(secs(480), 1, 1, &[answer(0.0, false)])
                .change
                .is_none()
        );
        assert_eq!(
            l.tick(secs(510), 1, 1, &[answer(0.0, false)])
                .change
                .unwrap()
                .to,
            0
        );
    }

    #[test]
    fn a_trigger_error_changes_nothing_without_a_fallback() {
        let mut l = ScaleLoop::new(&so(0, 300, 0), Duration::ZERO);
        l.tick(secs(30), 0, 0, &[answer(1.0, true)]);
        let d = l.tick(secs(600), 2, 2, &[failed()]);
        assert!(d.change.is_none());
        assert!(d.state.contains("TriggerError"), "{}", d.state);
    }

    #[test]
    fn fallback_serves_target_times_replicas_after_more_than_threshold_failures() {
        // SCALING.md §6: failureThreshold 3, replicas 6, target 5: the 4th consecutive
        // failed query serves 30, so the HPA proposes 6.
        let mut object = so(0, 300, 0);
        object.fallback = Some(Fallback {
            failure_threshold: 3,
            replicas: 6,
            behavior: FallbackBehavior::Static,
        });
        let mut l = ScaleLoop::new(&object, Duration::ZERO);
        for _ in 0..3 {
            assert!(l.hpa_readings(2, 2, &[failed()])[0].value.is_err());
        }
        let fourth = l.hpa_readings(2, 2, &[failed()]);
        assert_eq!(fourth[0].value, Ok(30.0));
        let mut hpa = crate::hpa::Hpa::new(0, 10, None);
        let observed = crate::hpa::Observed {
            spec_replicas: 2,
            status_replicas: 2,
            ready_pods: 2,
        };
        assert_eq!(
            hpa.sync(secs(15), observed, &fourth).desired,
            Some(4),
            "capped at max(2 × 2, 4) on the legacy path"
        );
        assert_eq!(
            hpa.sync(
                secs(30),
                crate::hpa::Observed {
                    spec_replicas: 4,
                    status_replicas: 4,
                    ready_pods: 4
                },
                &l.hpa_readings(4, 4, &[failed()])
            )
            .desired,
            Some(6)
        );
        // One success resets the count.
        l.hpa_readings(6, 6, &[answer(0.0, false)]);
        assert!(l.hpa_readings(6, 6, &[failed()])[0].value.is_err());
    }

    #[test]
    fn a_fallback_in_force_counts_as_active_and_wakes_from_zero() {
        let mut object = so(0, 300, 0);
        object.fallback = Some(Fallback {
            failure_threshold: 0,
            replicas: 2,
            behavior: FallbackBehavior::Static,
        });
        let mut l = ScaleLoop::new(&object, Duration::ZERO);
        let change = l.tick(secs(30), 0, 0, &[failed()]).change.unwrap();
        assert_eq!(change.to, 1);
        assert!(change.detail.contains("fallback"), "{}", change.detail);
    }
}
