//! The error policy: what happens to a message after its handler ran. The only place that
//! decides between complete, abandon and dead-letter.

use super::MessageError;

/// What the handler run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled(Result<(), MessageError>),
    /// The handler panicked: treated as transient, so a poison message still ends in the
    /// dead-letter queue after the max delivery count instead of being dropped.
    Panicked,
    /// The handler ran past its timeout.
    TimedOut,
    /// The host is shutting down and the grace period ran out.
    Interrupted,
}

/// How to settle the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Complete,
    Abandon { why: String },
    DeadLetter { reason: String, description: String },
}

impl Settlement {
    /// Low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Complete => "completed",
            Self::Abandon { .. } => "abandoned",
            Self::DeadLetter { .. } => "dead_lettered",
        }
    }
}

/// Maps an outcome to a settlement.
pub fn settlement_for(outcome: Outcome) -> Settlement {
    match outcome {
        Outcome::Handled(Ok(())) => Settlement::Complete,
        Outcome::Handled(Err(MessageError::Transient(why))) => Settlement::Abandon { why },
        Outcome::Handled(Err(MessageError::Permanent {
            reason,
            description,
        })) => Settlement::DeadLetter {
            reason,
            description,
        },
        Outcome::Panicked => Settlement::Abandon {
            why: "the handler panicked".into(),
        },
        Outcome::TimedOut => Settlement::Abandon {
            why: "the handler timed out".into(),
        },
        Outcome::Interrupted => Settlement::Abandon {
            why: "the host shut down before the handler finished".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_maps_to_its_settlement() {
        assert_eq!(
            settlement_for(Outcome::Handled(Ok(()))),
            Settlement::Complete
        );
        assert!(matches!(
            settlement_for(Outcome::Handled(Err(MessageError::Transient("503".into())))),
            Settlement::Abandon { .. }
        ));
        assert_eq!(
            settlement_for(Outcome::Handled(Err(MessageError::permanent(
                "UnknownOperation",
                "frobnicate"
            )))),
            Settlement::DeadLetter {
                reason: "UnknownOperation".into(),
                description: "frobnicate".into()
            }
        );
        for o in [Outcome::Panicked, Outcome::TimedOut, Outcome::Interrupted] {
            assert!(matches!(settlement_for(o), Settlement::Abandon { .. }));
        }
    }
}
