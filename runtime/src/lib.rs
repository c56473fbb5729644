//! # runtime: a thin function host for the Fabrikam drone-delivery services
//!
//! The host runs small handler crates ("functions"). HTTP functions serve routes through an
//! ingress; queue functions consume a queue with peek-lock semantics. Each function is a
//! type implementing [`Function`]; its binary's `main` is one call to [`run`].
//!
//! ## Layout
//! A message or a request goes through one module per stage:
//!
//! ```text
//! trigger ---------> dispatch -------> layers -------------------------> handler -> outputs -> settle
//! http (routes,      dispatch::pump    dispatch::layers: trace, hold,    the         bindings:  dispatch::policy
//!  paths, bodies,    (fetch, lock,     metrics, interrupt, timeout,      function's  queue       (complete, abandon,
//!  health, serve)    renew, drain)     catch_panic; http::observe for    own code    sender,     dead-letter)
//! queue (embedded,                     requests                                      client,
//!  amqp)                                                                             store
//! ```
//!
//! - [`function`]: the [`Function`] trait a function crate implements; [`app`]: what it
//!   builds ([`App`]); [`bindings`]: what the host hands it ([`Bindings`]), all by the names
//!   its [`deploy`] declaration gives, resolved for this environment by [`wiring`].
//! - [`registry`]: a function without its type ([`Registration`]), for the function registry
//!   (`registry/`) that the local run, the manifests, the images and the tests read.
//! - [`launch`]: starting a function ([`start`]) and running one as a process ([`run`]);
//!   [`host_config`]: the settings every function shares, and the one choice of broker;
//!   [`start_error`]: why a start failed, with its causes.
//! - [`http`]: the HTTP trigger (routes under a declared prefix, case-insensitive paths, JSON
//!   bodies, health, readiness and metrics, graceful serve).
//! - [`queue`]: the transport traits, the [`queue::embedded`] Service Bus-like queue and the
//!   AMQP 1.0 transport ([`queue::amqp`]).
//! - [`dispatch`]: the pump, the per-message [`dispatch::layers`] and the error
//!   [`dispatch::policy`].
//! - [`client`]: calls to other functions with timeout, retries, circuit breaker, bulkhead.
//! - [`store`]: store errors classified once, the embedded stores' building block, Redis and
//!   MongoDB settings.
//! - [`problem`]: every HTTP error as problem+json, classified in one place; [`cause`]: the
//!   underlying errors kept as sources.
//! - [`json`]: reading request bodies so every bad field is named.
//! - [`config`], [`lifecycle`], [`telemetry`], [`trace`]: config from the environment,
//!   shutdown and readiness, logs and metrics, W3C trace context and fields a function adds
//!   to its spans.
//! - [`secrets`]: secrets from the CSI mount or Key Vault, redacted, followed through
//!   rotations.
//! - [`contract`]: what a function's image, its Deployment and the runtime agree on: the
//!   port, the user, the mounts, the variable names.
//!
//! ## Example
//! ```no_run
//! use axum::routing::get;
//! use runtime::{App, Bindings, EnvReader, FromEnv, Function, Routes, StartError};
//!
//! struct Hello;
//!
//! /// `GREETING`, default `hello`.
//! struct Greeting(String);
//!
//! impl FromEnv for Greeting {
//!     fn from_env(env: &mut EnvReader<'_>) -> Self {
//!         Greeting(env.string("GREETING", "hello"))
//!     }
//! }
//!
//! impl Function for Hello {
//!     const NAME: &'static str = "hello";
//!     type Config = Greeting;
//!
//!     fn deployment() -> runtime::deploy::Deployment {
//!         runtime::deploy::Deployment::http(Self::NAME, &["/api/hello"])
//!     }
//!
//!     async fn build(Greeting(greeting): Greeting, _: &Bindings) -> Result<App, StartError> {
//!         let routes = Routes::new().route("/api/hello", get(move || async move { greeting }));
//!         Ok(App::http(routes))
//!     }
//! }
//!
//! /// What the function registry lists.
//! pub const FUNCTION: runtime::Registration = runtime::Registration::of::<Hello>();
//!
//! fn main() -> std::process::ExitCode {
//!     runtime::run::<Hello>()
//! }
//! ```

pub mod app;
pub mod bindings;
pub mod cause;
pub mod client;
pub mod config;
pub mod contract;
pub mod deploy;
pub mod deployed;
pub mod dispatch;
pub mod function;
pub mod host_config;
pub mod http;
pub mod json;
pub mod launch;
pub mod lifecycle;
pub mod openapi;
pub mod problem;
pub mod queue;
pub mod registry;
pub mod secrets;
pub mod start_error;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod wiring;

/// Every binary built on the host allocates through mimalloc: a request costs dozens of
/// small allocations (headers, extensions, boxed futures, the response body), and glibc's
/// malloc and free were about a fifth of the host's instructions per request (callgrind,
/// docs/BENCHMARKS.md). Not in this crate's own unit tests: they link the crate twice (as
/// the test and as its own dev-dependency), and a program has one global allocator.
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use app::App;
pub use bindings::Bindings;
pub use config::{EnvReader, MapEnv};
pub use dispatch::MessageError;
pub use function::{FromEnv, Function};
pub use host_config::HostConfig;
pub use http::{JsonBody, Routes, check_id};
pub use launch::{RunningFunction, run, start};
pub use problem::ApiError;
pub use registry::{FunctionConfig, Registration};
pub use start_error::StartError;

#[cfg(feature = "test-util")]
pub mod testing;
