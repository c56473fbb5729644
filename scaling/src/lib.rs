//! How KEDA, the HPA it creates, the Service Bus scaler and the HTTP add-on move a
//! workload's replicas, as code on a virtual clock (`../shared/SCALING.md` is the source
//! of every rule; each module cites the controller code it follows).
//!
//! The input is the rendered objects ([`objects::read_yaml`] on `fabrikam manifests`'
//! output), never a second copy of the numbers. The [`autoscaler::Autoscaler`] ties the
//! rules together for one workload: the caller tells it the time and what the broker and
//! the interceptor show, and it answers with the replica changes, each an
//! [`explain::Change`] naming the rule and the values it saw. The simulator
//! ([`simulate`]) drives it through a trace in virtual time.
//!
//! Layout:
//! - [`objects`]: ScaledObject, InterceptorRoute and Deployment, with the controllers'
//!   defaults;
//! - [`keda`]: KEDA's loop (activation, `LastActiveTime`, cooldown, fallback);
//! - [`hpa`]: the HPA's sync (proposals, tolerance, both normalisation paths);
//! - [`servicebus`], [`http_addon`], [`in_flight`]: the scalers (the last is the host's
//!   own, `fabrikam scaler`);
//! - [`autoscaler`]: the clocks of all of them for one workload;
//! - [`explain`]: the log of changes;
//! - [`simulate`]: traces, the replica and queue model, the report and its plots.

pub mod autoscaler;
mod duration;
pub mod explain;
pub mod hpa;
pub mod http_addon;
pub mod in_flight;
pub mod keda;
pub mod objects;
pub mod servicebus;
pub mod simulate;
