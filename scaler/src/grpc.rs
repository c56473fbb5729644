//! KEDA's `ExternalScaler` service (SCALING.md §5) over [`Queues`].
//!
//! A ScaledObject names its queue and the messages one replica should carry in its
//! trigger's metadata (`queueName`, `targetSize`); KEDA sends that metadata with every
//! call. The metric is backlog + in flight; activity is that sum above zero, so in-flight
//! work alone keeps a workload active. `StreamIsActive` pushes `true` on the edge where a
//! queue becomes busy, and again every keep-alive while it stays busy, which keeps KEDA's
//! `LastActiveTime` fresh: the cooldown cannot start while a handler runs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runtime::lifecycle::Shutdown;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::metrics::ScalerMetrics;
use crate::proto::external_scaler_server::ExternalScaler;
use crate::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use crate::queues::{Load, LoadError, Queues};

/// The trigger metadata key naming the queue.
pub const QUEUE_NAME: &str = "queueName";
/// The trigger metadata key giving the messages (waiting or in flight) per replica.
pub const TARGET_SIZE: &str = "targetSize";

/// The metric's name for `queue`; KEDA prefixes it with the trigger's index for the HPA.
pub fn metric_name(queue: &str) -> String {
    format!("queue-{queue}")
}

/// What a ScaledObject asks about.
#[derive(Debug, Clone, PartialEq)]
struct Trigger {
    queue: String,
    target: f64,
}

impl Trigger {
    fn from_ref(r: &ScaledObjectRef) -> Result<Self, Status> {
        let name = format!("{}/{}", r.namespace, r.name);
        let queue = r
            .scaler_metadata
            .get(QUEUE_NAME)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{name}: the trigger's metadata has no {QUEUE_NAME}"
                ))
            })?;
        let target = match r.scaler_metadata.get(TARGET_SIZE) {
            None => {
                return Err(Status::invalid_argument(format!(
                    "{name}: the trigger's metadata has no {TARGET_SIZE}"
                )));
            }
            Some(raw) => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "{name}: {TARGET_SIZE} {raw:?} is not a number above 0"
                    ))
                })?,
        };
        Ok(Self {
            queue: queue.clone(),
            target,
        })
    }
}

fn status(e: LoadError) -> Status {
    match e {
        LoadError::UnknownQueue { .. } => Status::not_found(e.to_string()),
        LoadError::BacklogUnknown { .. } => Status::unavailable(e.to_string()),
    }
}

/// The service KEDA calls.
#[derive(Debug, Clone)]
pub struct ScalerService {
    pub queues: Arc<Queues>,
    /// How often `true` is pushed while a queue stays busy.
    pub keepalive: Duration,
    pub metrics: ScalerMetrics,
    pub shutdown: Shutdown,
}

impl ScalerService {
    fn counted<T>(&self, method: &str, result: Result<T, Status>) -> Result<Response<T>, Status> {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .calls
            .with_label_values(&[method, outcome])
            .inc();
        if let Err(e) = &result {
            debug!(method, error = %e.message(), "external scaler call refused");
        }
        result.map(Response::new)
    }

    fn load(&self, trigger: &Trigger) -> Result<Load, Status> {
        self.queues
            .load(&trigger.queue, Instant::now())
            .map_err(status)
    }
}

type ActivityStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let result = Trigger::from_ref(request.get_ref()).and_then(|t| {
            match self.queues.load(&t.queue, Instant::now()) {
                Ok(load) => Ok(load.is_active()),
                // Without the backlog, work in flight still proves activity.
                Err(LoadError::BacklogUnknown { .. })
                    if self.queues.in_flight(&t.queue, Instant::now()) > 0 =>
                {
                    Ok(true)
                }
                Err(e) => Err(status(e)),
            }
        });
        self.counted("IsActive", result.map(|result| IsActiveResponse { result }))
    }

    type StreamIsActiveStream = ActivityStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let opened = Trigger::from_ref(request.get_ref()).and_then(|t| {
            let load = self.queues.watch(&t.queue).map_err(status)?;
            Ok((t, load))
        });
        let (trigger, load) = match opened {
            Ok(opened) => opened,
            Err(e) => return self.counted("StreamIsActive", Err(e)),
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(push_activity(
            trigger.queue,
            load,
            tx,
            self.keepalive,
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        let stream: ActivityStream = Box::pin(ReceiverStream::new(rx));
        self.counted("StreamIsActive", Ok(stream))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let result = Trigger::from_ref(request.get_ref()).and_then(|t| {
            // Refuse a queue this scaler does not serve here already, where the HPA is set up.
            self.queues.watch(&t.queue).map_err(status)?;
            Ok(GetMetricSpecResponse {
                metric_specs: vec![MetricSpec {
                    metric_name: metric_name(&t.queue),
                    target_size: t.target.ceil() as i64,
                    target_size_float: t.target,
                }],
            })
        });
        self.counted("GetMetricSpec", result)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        let result = request
            .scaled_object_ref
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("the request has no scaledObjectRef"))
            .and_then(Trigger::from_ref)
            .and_then(|t| {
                let name = metric_name(&t.queue);
                if !names_metric(&request.metric_name, &name) {
                    return Err(Status::not_found(format!(
                        "no metric {:?} for queue {:?} (it is {name:?})",
                        request.metric_name, t.queue
                    )));
                }
                let value = self.load(&t)?.metric().unwrap_or(0);
                Ok(GetMetricsResponse {
                    metric_values: vec![MetricValue {
                        metric_name: name,
                        metric_value: i64::try_from(value).unwrap_or(i64::MAX),
                        metric_value_float: value as f64,
                    }],
                })
            });
        self.counted("GetMetrics", result)
    }
}

/// Whether `asked` is `ours`, or `ours` with the `s<index>-` prefix KEDA gives it for the HPA
/// (KEDA strips the prefix before calling; older releases did not).
fn names_metric(asked: &str, ours: &str) -> bool {
    if asked.is_empty() || asked == ours {
        return true;
    }
    asked
        .strip_prefix('s')
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(index, rest)| index.chars().all(|c| c.is_ascii_digit()) && rest == ours)
}

/// Feeds one StreamIsActive: `true` when the queue becomes busy, and every `keepalive`
/// while it stays busy. Ends when KEDA hangs up or the scaler shuts down.
async fn push_activity(
    queue: String,
    mut load: watch::Receiver<Load>,
    tx: mpsc::Sender<Result<IsActiveResponse, Status>>,
    keepalive: Duration,
    metrics: ScalerMetrics,
    shutdown: Shutdown,
) {
    metrics.streams.inc();
    let mut was_active = false;
    let mut last_push = Instant::now();
    loop {
        let active = load.borrow_and_update().is_active();
        let push_now = active && (!was_active || last_push.elapsed() >= keepalive);
        was_active = active;
        if push_now {
            if tx
                .send(Ok(IsActiveResponse { result: true }))
                .await
                .is_err()
            {
                break;
            }
            metrics.pushes.with_label_values(&[&queue]).inc();
            last_push = Instant::now();
        }
        tokio::select! {
            changed = load.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(last_push + keepalive), if active => {}
            _ = tx.closed() => break,
            _ = shutdown.wait() => break,
        }
    }
    metrics.streams.dec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_is_named_with_or_without_keda_s_index_prefix() {
        assert!(names_metric("queue-workflow", "queue-workflow"));
        assert!(names_metric("s0-queue-workflow", "queue-workflow"));
        assert!(names_metric("s12-queue-workflow", "queue-workflow"));
        assert!(names_metric("", "queue-workflow"));
        assert!(!names_metric("s0-queue-delivery", "queue-workflow"));
        assert!(!names_metric("sx-queue-workflow", "queue-workflow"));
    }

    fn so(metadata: &[(&str, &str)]) -> ScaledObjectRef {
        ScaledObjectRef {
            name: "workflow".into(),
            namespace: "backend-dev".into(),
            scaler_metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn trigger_metadata_is_checked_and_named_in_the_error() {
        let t = Trigger::from_ref(&so(&[("queueName", "deliveries"), ("targetSize", "5")]));
        assert_eq!(
            t.unwrap(),
            Trigger {
                queue: "deliveries".into(),
                target: 5.0
            }
        );
        let e = Trigger::from_ref(&so(&[("targetSize", "5")])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "backend-dev/workflow: the trigger's metadata has no queueName"
        );
        let e = Trigger::from_ref(&so(&[("queueName", "q"), ("targetSize", "0")])).unwrap_err();
        assert!(e.message().contains("\"0\" is not a number above 0"), "{e}");
        assert!(Trigger::from_ref(&so(&[("queueName", "q")])).is_err());
    }
}
