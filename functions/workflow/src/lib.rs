//! The workflow function: queue trigger driving the backend functions.
//!
//! Per message, by its `operation` property:
//! - `delivery`: `PUT package/{packageId}` -> `PUT dronescheduler/{deliveryId}` ->
//!   `PUT delivery/{deliveryId}` carrying the assigned drone.
//! - `cancel`: `DELETE delivery/{id}` and `DELETE dronescheduler/{id}`.
//! - `reschedule`: `PATCH delivery/{id}`, then re-plan the drone with the new route.
//!
//! Every step is idempotent (upserts, the same drone for the same delivery), so a
//! redelivered message ends in the same state. Failures are classified for the host's error
//! policy: transient ones (after the client's own retries) abandon the message for
//! redelivery; permanent ones dead-letter it with a reason. A delivery that fails for good
//! after its drone was assigned releases the drone first (compensation).

pub mod steps;

use std::sync::Arc;

use contracts::ServiceArea;
use runtime::client::{Downstream, DownstreamPolicy};
use runtime::deploy::{Deployment, Output, Replicas, Scaling};
use runtime::{App, Bindings, EnvReader, Function, StartError};

pub use steps::Processor;

/// Configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowConfig {
    pub queue: String,
    pub package_url: String,
    pub dronescheduler_url: String,
    pub delivery_url: String,
    pub downstream: DownstreamPolicy,
}

impl WorkflowConfig {
    /// `QUEUE_NAME`, `PACKAGE_SERVICE_URL`, `DRONESCHEDULER_SERVICE_URL`,
    /// `DELIVERY_SERVICE_URL` and the `DOWNSTREAM_*` resilience settings.
    pub fn from_env(r: &mut EnvReader<'_>) -> Self {
        Self {
            queue: r.string("QUEUE_NAME", contracts::DELIVERY_QUEUE),
            package_url: r.http_url("PACKAGE_SERVICE_URL", "http://package"),
            dronescheduler_url: r.http_url("DRONESCHEDULER_SERVICE_URL", "http://dronescheduler"),
            delivery_url: r.http_url("DELIVERY_SERVICE_URL", "http://delivery"),
            downstream: DownstreamPolicy::from_env(r),
        }
    }
}

/// The function, for the host.
#[derive(Debug)]
pub struct Workflow;

impl Function for Workflow {
    const NAME: &'static str = "workflow";
    type Config = WorkflowConfig;

    /// One replica per 20 waiting messages: each message is three downstream calls, so a
    /// replica at its default 16 handlers clears 20 in well under a second.
    fn deployment() -> Deployment {
        let call = |name: &str, variable: &str| Output::Function {
            name: name.to_owned(),
            variable: variable.to_owned(),
        };
        Deployment::queue(Self::NAME, contracts::DELIVERY_QUEUE)
            .output(call("package", "PACKAGE_SERVICE_URL"))
            .output(call("dronescheduler", "DRONESCHEDULER_SERVICE_URL"))
            .output(call("delivery", "DELIVERY_SERVICE_URL"))
            .scaling(Scaling {
                dev: Replicas { min: 0, max: 3 },
                prod: Replicas { min: 1, max: 20 },
                target_per_replica: 20,
                cooldown_seconds: 300,
            })
    }

    fn config(env: &mut EnvReader<'_>) -> WorkflowConfig {
        WorkflowConfig::from_env(env)
    }

    async fn build(config: WorkflowConfig, bindings: &Bindings) -> Result<App, StartError> {
        let processor = Arc::new(processor(&config, bindings));
        Ok(App::queue(&config.queue, move |message| {
            let processor = processor.clone();
            async move { processor.handle(message).await }
        }))
    }
}

/// The message processor with clients for the three backends.
pub fn processor(config: &WorkflowConfig, bindings: &Bindings) -> Processor {
    let client =
        |name: &str, url: &str| -> Downstream { bindings.downstream(name, url, config.downstream) };
    Processor {
        package: client("package", &config.package_url),
        dronescheduler: client("dronescheduler", &config.dronescheduler_url),
        delivery: client("delivery", &config.delivery_url),
        area: ServiceArea::default(),
    }
}
