//! KEDA's side of the external scaler contract, for the local run's KEDA emulation and the
//! tests: the calls KEDA makes and the order it makes them in (SCALING.md §5,
//! `pkg/scalers/external_scaler.go`).
//!
//! - At every loop tick and HPA read: `GetMetricSpec`, then `GetMetrics`, then `IsActive`
//!   ([`KedaClient::tick`]).
//! - For an `external-push` trigger, `StreamIsActive` held open ([`KedaClient::follow`]):
//!   the first call at once; after the stream ends, the next after 2 s, doubling per
//!   failure to at most 60 s, and back to 2 s after a stream that ended cleanly (EOF).

use std::collections::HashMap;
use std::time::Duration;

use runtime::lifecycle::Shutdown;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::proto::external_scaler_client::ExternalScalerClient;
use crate::proto::{GetMetricsRequest, ScaledObjectRef};

/// KEDA's first reconnect delay and its cap.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(2);
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);

/// What one loop tick learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub metric_name: String,
    /// Messages per replica (`targetSizeFloat`).
    pub target: f64,
    /// Backlog + in flight (`metricValueFloat`).
    pub value: f64,
    pub active: bool,
}

/// Something that happened on the StreamIsActive stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A `true` (KEDA ignores `false`, and so do we).
    Active(Instant),
    /// The stream ended; the next attempt is in `retry_in`.
    Ended {
        error: Option<String>,
        retry_in: Duration,
    },
}

/// One ScaledObject's trigger, as KEDA calls it.
#[derive(Debug, Clone)]
pub struct KedaClient {
    client: ExternalScalerClient<Channel>,
    so: ScaledObjectRef,
}

impl KedaClient {
    /// A client of the scaler at `address` (`http://host:port`) for the ScaledObject
    /// `namespace/name` with its trigger's `metadata`. Connects on first use, as KEDA's
    /// connection pool does, so a scaler that is down shows up as failed calls.
    pub fn new(
        address: &str,
        namespace: &str,
        name: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(address.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        Ok(Self {
            client: ExternalScalerClient::new(channel),
            so: ScaledObjectRef {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                scaler_metadata: metadata,
            },
        })
    }

    /// One loop tick: `GetMetricSpec`, `GetMetrics`, `IsActive`, in KEDA's order, each
    /// within `timeout`.
    pub async fn tick(&self, timeout: Duration) -> Result<Tick, tonic::Status> {
        let mut client = self.client.clone();
        let deadline = |what: &str| {
            tonic::Status::deadline_exceeded(format!("{what} took longer than {timeout:?}"))
        };
        let spec = tokio::time::timeout(timeout, client.get_metric_spec(self.so.clone()))
            .await
            .map_err(|_| deadline("GetMetricSpec"))??
            .into_inner();
        let spec = spec
            .metric_specs
            .into_iter()
            .next()
            .ok_or_else(|| tonic::Status::internal("GetMetricSpec returned no metric"))?;
        let request = GetMetricsRequest {
            scaled_object_ref: Some(self.so.clone()),
            metric_name: spec.metric_name.clone(),
        };
        let metrics = tokio::time::timeout(timeout, client.get_metrics(request))
            .await
            .map_err(|_| deadline("GetMetrics"))??
            .into_inner();
        let value = metrics
            .metric_values
            .iter()
            .find(|m| m.metric_name == spec.metric_name)
            .map(|m| m.metric_value_float)
            .ok_or_else(|| tonic::Status::internal("GetMetrics returned no value"))?;
        let active = tokio::time::timeout(timeout, client.is_active(self.so.clone()))
            .await
            .map_err(|_| deadline("IsActive"))??
            .into_inner()
            .result;
        Ok(Tick {
            metric_name: spec.metric_name,
            target: spec.target_size_float,
            value,
            active,
        })
    }

    /// Holds StreamIsActive open until `shutdown`, reconnecting as KEDA does, and sends
    /// every `true` and every end of the stream to `events`.
    pub async fn follow(self, events: mpsc::UnboundedSender<StreamEvent>, shutdown: Shutdown) {
        let mut retry = RECONNECT_FIRST;
        loop {
            let ended = tokio::select! {
                ended = self.stream_once(&events) => ended,
                () = shutdown.wait() => return,
            };
            let error = match ended {
                // A stream that ended with an OK status resets the delay (KEDA's HEAD; v2.14
                // and earlier did not).
                Ok(()) => {
                    retry = RECONNECT_FIRST;
                    None
                }
                Err(status) => Some(status.to_string()),
            };
            debug!(
                ?error,
                retry_ms = retry.as_millis() as u64,
                "StreamIsActive ended"
            );
            if events
                .send(StreamEvent::Ended {
                    error,
                    retry_in: retry,
                })
                .is_err()
            {
                return;
            }
            let wait = retry;
            retry = (retry * 2).min(RECONNECT_MAX);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    async fn stream_once(
        &self,
        events: &mpsc::UnboundedSender<StreamEvent>,
    ) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        let mut stream = client.stream_is_active(self.so.clone()).await?.into_inner();
        while let Some(response) = stream.message().await? {
            if response.result && events.send(StreamEvent::Active(Instant::now())).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}
