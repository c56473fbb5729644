//! [`Bindings`]: what the host hands a function to build with. Everything a function
//! reaches comes from here, by the name its declaration gives it: the queue it sends to,
//! the functions it calls, the secrets of its stores. Asking for something the declaration
//! does not state is a start error, so the declaration cannot fall behind the code.

use std::sync::Arc;

use crate::client::{Downstream, DownstreamPolicy};
use crate::deploy::{Deployment, Store};
use crate::queue::{Broker, QueueReceiver, QueueSender};
use crate::secrets::{SecretWatch, Secrets};
use crate::start_error::StartError;
use crate::telemetry::Metrics;
use crate::wiring::Wiring;

/// A queue's name here and its receiver.
pub(crate) type NamedReceiver = (String, Arc<dyn QueueReceiver>);

/// What the host gives a function to build with.
#[derive(Debug, Clone)]
pub struct Bindings {
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    secrets: Option<Arc<Secrets>>,
    declaration: Arc<Deployment>,
    wiring: Wiring,
}

impl Bindings {
    /// Bindings for the function `declaration` describes, its queues and callees where
    /// `wiring` says, without a secret source ([`Bindings::secret`] is then `None`).
    pub fn new(
        declaration: Deployment,
        wiring: Wiring,
        broker: Arc<dyn Broker>,
        metrics: Metrics,
    ) -> Self {
        Self {
            broker,
            metrics,
            secrets: None,
            declaration: Arc::new(declaration),
            wiring,
        }
    }

    /// Bindings whose secrets come from `secrets`.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    fn undeclared(&self, problem: String) -> StartError {
        StartError::Declaration {
            function: self.declaration.name.clone(),
            problem,
        }
    }

    /// The declared secret `name`, following its rotations; `None` when no secret source
    /// is configured (local runs).
    pub fn secret(&self, name: &str) -> Result<Option<SecretWatch>, StartError> {
        if !self.declaration.secrets.iter().any(|s| s == name) {
            return Err(self.undeclared(format!(
                "uses the secret {name}, which its deployment() does not declare"
            )));
        }
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        secrets
            .watch(name)
            .map(Some)
            .ok_or_else(|| self.undeclared(format!("the secret {name} was not loaded")))
    }

    /// The secret of the declared Redis or MongoDB output (its access key or connection
    /// string); `None` without a secret source.
    pub fn store_secret(&self, store: Store) -> Result<Option<SecretWatch>, StartError> {
        let Some(name) = self.declaration.store_secret(store) else {
            return Err(self.undeclared(format!(
                "uses a {store:?} store, which its deployment() does not declare as an output"
            )));
        };
        let name = name.to_owned();
        self.secret(&name)
    }

    /// A sender to the function's only output queue.
    pub fn queue_sender(&self) -> Result<Arc<dyn QueueSender>, StartError> {
        let outputs: Vec<&str> = self.declaration.output_queues().collect();
        let [queue] = outputs[..] else {
            return Err(self.undeclared(format!(
                "asks for its output queue, but declares {}",
                if outputs.is_empty() {
                    "none".to_owned()
                } else {
                    outputs.join(", ")
                }
            )));
        };
        let name = self.wiring.queue(queue).unwrap_or(queue).to_owned();
        self.broker
            .sender(&name)
            .map_err(|source| StartError::Queue {
                queue: name,
                source,
            })
    }

    /// A client for the declared callee `name`, at the URL its declared variable gives.
    pub fn downstream(
        &self,
        name: &str,
        policy: DownstreamPolicy,
    ) -> Result<Downstream, StartError> {
        let url = self.wiring.callee(name).ok_or_else(|| {
            self.undeclared(format!(
                "calls {name}, which its deployment() does not declare as an output"
            ))
        })?;
        Ok(Downstream::new(name, url, policy, self.metrics.clone()))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn declaration(&self) -> &Deployment {
        &self.declaration
    }

    /// The receiver of the declared queue trigger, with its name here.
    pub(crate) fn queue_receiver(&self) -> Result<Option<NamedReceiver>, StartError> {
        let Some(queue) = self.declaration.queue_trigger() else {
            return Ok(None);
        };
        let name = self.wiring.queue(queue).unwrap_or(queue).to_owned();
        let receiver = self
            .broker
            .receiver(&name)
            .map_err(|source| StartError::Queue {
                queue: name.clone(),
                source,
            })?;
        Ok(Some((name, receiver)))
    }
}
