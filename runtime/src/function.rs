//! The [`Function`] trait: what a function crate implements for the host.
//!
//! A function names itself, declares what it needs from the cluster ([`Deployment`]), reads
//! its typed config, and builds an [`App`] (HTTP routes or a queue trigger) from the
//! [`Bindings`] the host hands it. Its binary's `main` is one call to [`crate::run`], and one
//! line in the function registry (`registry/Cargo.toml`) makes the local run, the manifests,
//! the images and the tests include it.

use std::future::Future;

use crate::app::App;
use crate::bindings::Bindings;
use crate::config::EnvReader;
use crate::deploy::Deployment;
use crate::start_error::StartError;

/// A function the host can run.
pub trait Function: 'static {
    /// The function's name: metrics label, log field, manifest and image name.
    const NAME: &'static str;

    /// What the function needs from the cluster: triggers, outputs (queues, other
    /// functions, stores and their secrets), resources and scaling. The host derives the
    /// rest from it: the secrets it reads before [`Function::build`], the queue a queue
    /// trigger receives from, the queue [`Bindings::queue_sender`] sends to, and the
    /// Kubernetes and KEDA objects `fabrikam manifests` renders.
    fn deployment() -> Deployment;

    /// The function's own configuration, read from the environment.
    type Config: FromEnv + Send + 'static;

    /// Builds the function's triggers from its config and the host's bindings.
    fn build(
        config: Self::Config,
        bindings: &Bindings,
    ) -> impl Future<Output = Result<App, StartError>> + Send;
}

/// A configuration read from environment variables, recording every problem in the reader
/// instead of stopping at the first.
pub trait FromEnv: Sized {
    fn from_env(env: &mut EnvReader<'_>) -> Self;
}

/// Functions with nothing to configure.
impl FromEnv for () {
    fn from_env(_: &mut EnvReader<'_>) -> Self {}
}
