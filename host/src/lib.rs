//! `fabrikam`: the local run of every function ([`local`]) behind its gateways
//! ([`gateway`]), the images, the manifests and infra's inputs, generated from the
//! functions' declarations, the scaling rules run locally ([`scale`]), and the scaffold.

pub mod gateway;
pub mod generated;
pub mod images;
pub mod infra;
pub mod local;
pub mod manifests;
pub mod openapi;
pub mod processes;
pub mod scaffold;
pub mod scale;

use runtime::Registration;

pub use gateway::gateway_routes;
pub use local::{
    DEV_BIND, DEV_FIRST_FUNCTION_PORT, DEV_GATEWAY_PORT, DEV_INTERNAL_PORT, DevConfig, DevOptions,
    DevSystem, start_dev,
};

/// Every registered function, in registry order.
pub fn functions() -> &'static [Registration] {
    registry::FUNCTIONS
}
