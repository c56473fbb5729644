//! # scaler: the host's own KEDA external-push scaler
//!
//! KEDA's `azure-servicebus` scaler sees only the messages waiting on a queue: a workflow
//! busy with slow handlers looks idle, its replicas are scaled in mid-work, and at zero a
//! message waits up to a polling interval before anything wakes (SCALING.md §3, §1.3).
//! Each replica of the host knows exactly what it holds; this scaler adds that up.
//!
//! For every queue function of one namespace it serves KEDA's external scaler contract
//! ([`grpc`], `proto/externalscaler.proto`) with the metric **backlog + in flight**:
//! - the backlog is read from the broker ([`backlog`]), at most once a second per queue;
//! - in flight is what the replicas report ([`http`], `POST /v1/reports`), on every change
//!   and at least every few seconds; a replica that stops reporting is dropped after a
//!   timeout ([`queues`]).
//!
//! Activity is that sum above zero, pushed to KEDA on `StreamIsActive` the moment a queue
//! becomes busy and again every keep-alive while it stays busy.

pub mod backlog;
pub mod grpc;
pub mod http;
pub mod keda;
pub mod metrics;
pub mod queues;
pub mod serve;

pub use serve::{ScalerArgs, ServeError, run, serve};

/// KEDA's external scaler messages, server and client, generated from
/// `proto/externalscaler.proto`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}
