//! The workflow function: queue trigger driving the backend functions.
//!
//! Per message, by its `operation` property:
//! - `delivery`: `PUT package/{packageId}` -> `PUT dronescheduler/{deliveryId}` ->
//!   `PUT delivery/{deliveryId}` carrying the assigned drone.
//! - `cancel`: `DELETE delivery/{id}` and `DELETE dronescheduler/{id}`. A cancel that
//!   overtakes its delivery message leaves a tombstone in delivery; the late delivery
//!   message then finds the delivery gone (410), gives its drone back and completes.
//! - `reschedule`: `PATCH delivery/{id}`, then re-plan the drone with the new route.
//!
//! Every step is idempotent (upserts, the same drone for the same delivery), so a
//! redelivered message ends in the same state. Failures are classified for the host's error
//! policy: transient ones (after the client's own retries) abandon the message for
//! redelivery; permanent ones dead-letter it with a reason. A delivery that fails for good
//! after its drone was assigned releases the drone first (compensation), and so does one
//! that fails transiently on its last attempt (`ReceivedMessage::last_attempt`), which the
//! broker dead-letters next.

pub mod steps;

use std::sync::Arc;

use contracts::ServiceArea;
use runtime::client::DownstreamPolicy;
use runtime::deploy::{Deployment, Output, ProfileScaling, Scaling};
use runtime::{App, Bindings, EnvReader, FromEnv, Function, Registration, StartError};

pub use steps::Processor;

/// Configuration: the resilience of the calls to the backends. Where the backends are
/// comes from the variables the declaration names (`PACKAGE_SERVICE_URL`, ...), which the
/// host reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkflowConfig {
    pub downstream: DownstreamPolicy,
}

impl FromEnv for WorkflowConfig {
    /// The `DOWNSTREAM_*` resilience settings.
    fn from_env(r: &mut EnvReader<'_>) -> Self {
        Self {
            downstream: DownstreamPolicy::from_env(r),
        }
    }
}

/// The function, for the host.
#[derive(Debug)]
pub struct Workflow;

/// What the function registry lists.
pub const FUNCTION: Registration = Registration::of::<Workflow>();

/// The backends it calls, and the variable holding each one's URL.
const BACKENDS: [(&str, &str); 3] = [
    ("package", "PACKAGE_SERVICE_URL"),
    ("dronescheduler", "DRONESCHEDULER_SERVICE_URL"),
    ("delivery", "DELIVERY_SERVICE_URL"),
];

impl Function for Workflow {
    const NAME: &'static str = "workflow";
    type Config = WorkflowConfig;

    /// Scaling as `scripts/recommend-scaling` chose it (docs/scaling/recommended-dev.json and
    /// -prod.json, 2026-12-08, at the capacity `scripts/bench-capacity` measured): one
    /// replica per 20 messages waiting or held; in dev a 60 s cooldown, the cheapest that
    /// keeps queue age p99 under 30 s on the dev traces (16.3 s); in prod one replica
    /// (642 deliveries a second at its CPU limit) carries the peak trace's 600 a second
    /// within the 10 s target (8.9 s), so its maximum is its minimum.
    fn deployment() -> Deployment {
        BACKENDS.iter().fold(
            Deployment::queue(Self::NAME, contracts::DELIVERY_QUEUE).scaling(Scaling {
                dev: ProfileScaling {
                    min: 0,
                    max: 3,
                    target_per_replica: 20,
                    cooldown_seconds: 60,
                },
                prod: ProfileScaling {
                    min: 1,
                    max: 1,
                    target_per_replica: 20,
                    cooldown_seconds: 300,
                },
            }),
            |d, (name, variable)| {
                d.output(Output::Function {
                    name: (*name).to_owned(),
                    variable: (*variable).to_owned(),
                })
            },
        )
    }

    async fn build(config: WorkflowConfig, bindings: &Bindings) -> Result<App, StartError> {
        let processor = Arc::new(processor(config.downstream, bindings)?);
        Ok(App::queue(move |message| {
            let processor = processor.clone();
            async move { processor.handle(message).await }
        }))
    }
}

/// The message processor with clients for the three backends, where `bindings` says they
/// are.
pub fn processor(policy: DownstreamPolicy, bindings: &Bindings) -> Result<Processor, StartError> {
    let client = |name: &str| bindings.downstream(name, policy);
    Ok(Processor {
        package: client("package")?,
        dronescheduler: client("dronescheduler")?,
        delivery: client("delivery")?,
        area: ServiceArea::default(),
    })
}
