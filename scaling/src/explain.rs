//! The explain log: every replica change with the rule that made it and the values it saw.

use std::fmt;
use std::time::Duration;

/// Which rule changed the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// KEDA's loop saw a trigger active at 0 replicas (or below an idle count).
    Activation,
    /// An `external-push` scaler sent `true` on its stream at 0 replicas.
    PushActivation,
    /// KEDA's loop: nothing active for longer than the cooldown, N → 0 in one step.
    Cooldown,
    /// KEDA's loop: never active since creation and `initialCooldownPeriod` passed.
    InitialCooldown,
    /// KEDA's loop: replicas below `minReplicaCount` with no idle count.
    MinReplicas,
    /// The HPA's sync.
    Hpa,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Activation => "activation",
            Rule::PushActivation => "push activation",
            Rule::Cooldown => "cooldown",
            Rule::InitialCooldown => "initial cooldown",
            Rule::MinReplicas => "minReplicaCount",
            Rule::Hpa => "HPA",
        }
    }
}

/// One replica change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub at: Duration,
    pub workload: String,
    pub from: u32,
    pub to: u32,
    pub rule: Rule,
    /// The values the rule saw, in words.
    pub detail: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={} {} {}→{}: {}, {}",
            seconds(self.at),
            self.workload,
            self.from,
            self.to,
            self.rule.name(),
            self.detail
        )
    }
}

/// A time on the clock as the log writes it, to the millisecond: `30 s`, `12.5 s`,
/// `3.042 s`.
pub fn seconds(t: Duration) -> String {
    let ms = t.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        let text = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{} s", text.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_as_a_sentence() {
        let change = Change {
            at: Duration::from_secs(30),
            workload: "workflow".into(),
            from: 0,
            to: 1,
            rule: Rule::Activation,
            detail: "ActiveMessageCount 12 > activationMessageCount 0 at the loop tick".into(),
        };
        assert_eq!(
            change.to_string(),
            "t=30 s workflow 0→1: activation, ActiveMessageCount 12 > activationMessageCount 0 at the loop tick"
        );
        assert_eq!(seconds(Duration::from_millis(12_500)), "12.5 s");
        assert_eq!(seconds(Duration::from_millis(3_042)), "3.042 s");
        assert_eq!(seconds(Duration::from_millis(40)), "0.04 s");
    }
}
