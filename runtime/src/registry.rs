//! [`Registration`]: a function as the host tooling sees it, without its type. The function
//! registry (`registry/Cargo.toml`, one line per function) gathers one per function crate
//! (each crate's `pub const FUNCTION`), and everything that handles "every function" reads
//! that list: `fabrikam dev`, the gateway, the manifests, the images, the infra function
//! list and the tests.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use crate::app::App;
use crate::bindings::Bindings;
use crate::config::EnvReader;
use crate::deploy::Deployment;
use crate::function::{FromEnv, Function};
use crate::start_error::StartError;
use crate::wiring::Wiring;

type BuildFuture<'a> = Pin<Box<dyn Future<Output = Result<App, StartError>> + Send + 'a>>;

/// One registered function.
#[derive(Clone, Copy)]
pub struct Registration {
    name: &'static str,
    deployment: fn() -> Deployment,
    read_config: fn(&mut EnvReader<'_>) -> Box<dyn Any + Send>,
    build: for<'a> fn(Box<dyn Any + Send>, &'a Bindings) -> BuildFuture<'a>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .finish()
    }
}

/// A function's configuration as read from the environment: its own settings (opaque to
/// the host) and where its declared queues and callees are.
pub struct FunctionConfig {
    name: &'static str,
    own: Box<dyn Any + Send>,
    pub wiring: Wiring,
}

impl std::fmt::Debug for FunctionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionConfig")
            .field("function", &self.name)
            .field("wiring", &self.wiring)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The registration of `F`; each function crate exports it as
    /// `pub const FUNCTION: Registration = Registration::of::<MyFunction>();`.
    pub const fn of<F: Function>() -> Self {
        Self {
            name: F::NAME,
            deployment: F::deployment,
            read_config: read_config::<F>,
            build: build::<F>,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn deployment(&self) -> Deployment {
        (self.deployment)()
    }

    /// Reads the function's config and wiring, recording every problem in `r`.
    pub fn read_config(&self, r: &mut EnvReader<'_>) -> FunctionConfig {
        let wiring = Wiring::from_env(r, &self.deployment());
        FunctionConfig {
            name: self.name,
            own: (self.read_config)(r),
            wiring,
        }
    }

    /// Builds the function's app from a config read by this registration.
    pub async fn build(
        &self,
        config: FunctionConfig,
        bindings: &Bindings,
    ) -> Result<App, StartError> {
        if config.name != self.name {
            return Err(StartError::Declaration {
                function: self.name.to_owned(),
                problem: format!("was handed the config of {}", config.name),
            });
        }
        (self.build)(config.own, bindings).await
    }
}

fn read_config<F: Function>(r: &mut EnvReader<'_>) -> Box<dyn Any + Send> {
    Box::new(F::Config::from_env(r))
}

fn build<F: Function>(config: Box<dyn Any + Send>, bindings: &Bindings) -> BuildFuture<'_> {
    Box::pin(async move {
        let config = config
            .downcast::<F::Config>()
            .map_err(|_| StartError::Declaration {
                function: F::NAME.to_owned(),
                problem: "was handed a config of another type".to_owned(),
            })?;
        F::build(*config, bindings).await
    })
}
