//! The steps of each operation and how their failures are classified.

use contracts::OPERATION;
use contracts::requests::{
    DeliveryDocument, DeliveryPatch, DroneAssignment, DroneDeliveryRequest, PackageDetail,
    PackageUpsert, UserAccount,
};
use contracts::{CancelMessage, DeliveryMessage, Operation, RescheduleMessage, ServiceArea};
use http::{Method, StatusCode};
use runtime::MessageError;
use runtime::client::{CallError, CallResponse, Downstream, path_segment};
use runtime::queue::ReceivedMessage;
use runtime::trace::TraceContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, info, warn};

/// Dead-letter reasons.
pub mod reasons {
    pub const MALFORMED_MESSAGE: &str = "MalformedMessage";
    pub const UNKNOWN_OPERATION: &str = "UnknownOperation";
    pub const PACKAGE_REJECTED: &str = "PackageRejected";
    pub const DRONE_SCHEDULING_REJECTED: &str = "DroneSchedulingRejected";
    pub const DELIVERY_REJECTED: &str = "DeliveryRejected";
    pub const INVALID_RESPONSE: &str = "InvalidDownstreamResponse";
}

/// Processes messages against the backends.
#[derive(Debug, Clone)]
pub struct Processor {
    pub package: Downstream,
    pub dronescheduler: Downstream,
    pub delivery: Downstream,
    pub area: ServiceArea,
}

/// A step that did not succeed.
enum StepError {
    /// Try the message again later.
    Transient(String),
    /// The downstream refused the request for good.
    Rejected { status: StatusCode, detail: String },
}

impl Processor {
    /// Handles one message; the error says how the host should settle it.
    pub async fn handle(&self, message: ReceivedMessage) -> Result<(), MessageError> {
        let trace = message
            .trace_context()
            .unwrap_or_else(TraceContext::new_root);
        // A message without the property comes from a reference-era producer, which only
        // ever sent new deliveries.
        let operation = match message.property(OPERATION) {
            None => Operation::Delivery,
            Some(name) => Operation::parse(name).ok_or_else(|| {
                MessageError::permanent(
                    reasons::UNKNOWN_OPERATION,
                    format!("operation {name:?} is not delivery, cancel or reschedule"),
                )
            })?,
        };
        // The operation and the delivery id go on the message's span (the current one here),
        // so the pump's own lines about this message, such as its settlement, carry them too.
        runtime::trace::annotate(OPERATION, operation.as_str());
        let span = tracing::info_span!("workflow", operation = operation.as_str(), trace_id = %trace.trace_id_hex());
        match operation {
            Operation::Delivery => {
                let m = decode::<DeliveryMessage>(&message)?;
                runtime::trace::annotate("delivery_id", &m.delivery_id);
                let drone_path = format!("/api/dronedeliveries/{}", path_segment(&m.delivery_id));
                match self.deliver(m, &trace).instrument(span).await {
                    Err(MessageError::Transient(detail)) if message.last_attempt => {
                        Err(self.give_up(&drone_path, detail, &trace).await)
                    }
                    other => other,
                }
            }
            Operation::Cancel => {
                let m = decode::<CancelMessage>(&message)?;
                runtime::trace::annotate("delivery_id", &m.delivery_id);
                self.cancel(m, &trace).instrument(span).await
            }
            Operation::Reschedule => {
                let m = decode::<RescheduleMessage>(&message)?;
                runtime::trace::annotate("delivery_id", &m.delivery_id);
                self.reschedule(m, &trace).instrument(span).await
            }
        }
    }

    async fn deliver(&self, m: DeliveryMessage, trace: &TraceContext) -> Result<(), MessageError> {
        let id = path_segment(&m.delivery_id);
        let package = PackageUpsert {
            size: m.package_info.size,
            weight: m.package_info.weight,
            tag: m.package_info.tag.clone(),
            owner_id: Some(m.owner_id.clone()),
        };
        let package_path = format!("/api/packages/{}", path_segment(&m.package_info.package_id));
        call(
            &self.package,
            Method::PUT,
            &package_path,
            Some(&package),
            trace,
        )
        .await
        .map_err(|e| settle(e, reasons::PACKAGE_REJECTED, "storing the package"))?;

        let pickup = self.area.locate(&m.pickup_location);
        let dropoff = self.area.locate(&m.dropoff_location);
        let plan = DroneDeliveryRequest {
            delivery_id: m.delivery_id.clone(),
            owner_id: Some(m.owner_id.clone()),
            pickup: Some(pickup),
            dropoff: Some(dropoff),
            package_details: vec![PackageDetail {
                id: m.package_info.package_id.clone(),
                size: m.package_info.size,
            }],
            expedited: Some(m.expedited),
            pickup_time: Some(m.pickup_time),
        };
        let drone_path = format!("/api/dronedeliveries/{id}");
        let assigned: DroneAssignment = call(
            &self.dronescheduler,
            Method::PUT,
            &drone_path,
            Some(&plan),
            trace,
        )
        .await
        .map_err(|e| settle(e, reasons::DRONE_SCHEDULING_REJECTED, "assigning a drone"))
        .and_then(|r| parse(&r, "dronescheduler"))?;

        let document = DeliveryDocument {
            id: m.delivery_id.clone(),
            owner: UserAccount {
                user_id: m.owner_id.clone(),
                account_id: m.owner_id.clone(),
            },
            pickup,
            dropoff,
            deadline: m.deadline.clone(),
            expedited: m.expedited,
            confirmation_required: m.confirmation_required,
            drone_id: Some(assigned.drone_id.clone()),
            pickup_time: Some(m.pickup_time),
        };
        let delivery_path = format!("/api/deliveries/{id}");
        match call(
            &self.delivery,
            Method::PUT,
            &delivery_path,
            Some(&document),
            trace,
        )
        .await
        {
            Ok(_) => {
                info!(drone_id = %assigned.drone_id, "delivery scheduled");
                Ok(())
            }
            Err(StepError::Transient(detail)) => Err(MessageError::Transient(format!(
                "storing the delivery: {detail}"
            ))),
            // Cancelled while this message waited (its cancel overtook it): nothing to
            // schedule, and the drone just assigned goes back.
            Err(StepError::Rejected {
                status: StatusCode::GONE,
                ..
            }) => {
                self.release_drone(&drone_path, trace).await?;
                info!(drone_id = %assigned.drone_id, "delivery was cancelled before it was scheduled; drone released");
                Ok(())
            }
            Err(StepError::Rejected { status, detail }) => {
                // Compensation: the drone was assigned for a delivery that will never be
                // stored, so free it before giving up on the message.
                warn!(drone_id = %assigned.drone_id, %status, "delivery rejected; releasing the drone");
                self.release_drone(&drone_path, trace).await?;
                Err(MessageError::permanent(
                    reasons::DELIVERY_REJECTED,
                    format!(
                        "delivery answered {status} ({detail}); drone {} was released",
                        assigned.drone_id
                    ),
                ))
            }
        }
    }

    /// The last attempt failed transiently: the broker dead-letters the message next, and
    /// nothing would ever free a drone assigned by an earlier attempt (or by this one, if
    /// its answer was lost). Release it now; the error stays transient so the broker counts
    /// the delivery and dead-letters the message as over its delivery count.
    async fn give_up(
        &self,
        drone_path: &str,
        detail: String,
        trace: &TraceContext,
    ) -> MessageError {
        match self.release_drone(drone_path, trace).await {
            Ok(()) => {
                warn!(error = %detail, "last attempt failed; drone released before the message is dead-lettered");
                MessageError::Transient(format!(
                    "{detail}; last attempt, so the drone was released"
                ))
            }
            Err(e) => {
                tracing::error!(error = %detail, release_error = %e, "last attempt failed and the drone could not be released");
                MessageError::Transient(format!(
                    "{detail}; last attempt, and releasing the drone failed too: {e}"
                ))
            }
        }
    }

    async fn release_drone(
        &self,
        drone_path: &str,
        trace: &TraceContext,
    ) -> Result<(), MessageError> {
        // If the drone cannot be freed now, retry the whole message: every step before is
        // idempotent, and it will come back here.
        delete(&self.dronescheduler, drone_path, trace)
            .await
            .map_err(|e| {
                let detail = match e {
                    StepError::Transient(d) | StepError::Rejected { detail: d, .. } => d,
                };
                MessageError::Transient(format!("releasing the drone: {detail}"))
            })
    }

    async fn cancel(&self, m: CancelMessage, trace: &TraceContext) -> Result<(), MessageError> {
        let id = path_segment(&m.delivery_id);
        // A delivery that was never stored may still hold a drone, so release it either way.
        delete(&self.delivery, &format!("/api/deliveries/{id}"), trace)
            .await
            .map_err(|e| settle(e, reasons::DELIVERY_REJECTED, "cancelling the delivery"))?;
        self.release_drone(&format!("/api/dronedeliveries/{id}"), trace)
            .await?;
        info!("delivery cancelled");
        Ok(())
    }

    async fn reschedule(
        &self,
        m: RescheduleMessage,
        trace: &TraceContext,
    ) -> Result<(), MessageError> {
        let id = path_segment(&m.delivery_id);
        let patch = DeliveryPatch {
            pickup: m.pickup_location.as_deref().map(|t| self.area.locate(t)),
            dropoff: m.dropoff_location.as_deref().map(|t| self.area.locate(t)),
            deadline: m.deadline.clone(),
            pickup_time: m.pickup_time,
        };
        call(
            &self.delivery,
            Method::PATCH,
            &format!("/api/deliveries/{id}"),
            Some(&patch),
            trace,
        )
        .await
        .map_err(|e| settle(e, reasons::DELIVERY_REJECTED, "rescheduling the delivery"))?;
        if patch.pickup.is_some() || patch.dropoff.is_some() || patch.pickup_time.is_some() {
            let replan = DroneDeliveryRequest {
                delivery_id: m.delivery_id.clone(),
                owner_id: None,
                pickup: patch.pickup,
                dropoff: patch.dropoff,
                package_details: Vec::new(),
                expedited: None,
                pickup_time: patch.pickup_time,
            };
            call(
                &self.dronescheduler,
                Method::PUT,
                &format!("/api/dronedeliveries/{id}"),
                Some(&replan),
                trace,
            )
            .await
            .map_err(|e| {
                settle(
                    e,
                    reasons::DRONE_SCHEDULING_REJECTED,
                    "re-planning the drone",
                )
            })?;
        }
        info!("delivery rescheduled");
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(message: &ReceivedMessage) -> Result<T, MessageError> {
    serde_json::from_slice(&message.body).map_err(|e| {
        MessageError::permanent(
            reasons::MALFORMED_MESSAGE,
            format!("the body cannot be read: {e}"),
        )
    })
}

fn parse<T: DeserializeOwned>(
    response: &CallResponse,
    downstream: &str,
) -> Result<T, MessageError> {
    response.json().map_err(|e| {
        MessageError::permanent(
            reasons::INVALID_RESPONSE,
            format!("{downstream} answered an unreadable body: {e}"),
        )
    })
}

/// One call: a 2xx is success, another final status is a rejection, and a [`CallError`]
/// (retries exhausted, circuit open, bulkhead full) is transient.
async fn call(
    downstream: &Downstream,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
    trace: &TraceContext,
) -> Result<CallResponse, StepError> {
    match downstream.call(method, path, body, Some(trace)).await {
        Ok(r) if r.status.is_success() => Ok(r),
        Ok(r) => Err(StepError::Rejected {
            status: r.status,
            detail: r.snippet(),
        }),
        Err(e @ CallError::InvalidRequest { .. }) => Err(StepError::Rejected {
            status: StatusCode::BAD_REQUEST,
            detail: e.to_string(),
        }),
        Err(e) => Err(StepError::Transient(e.to_string())),
    }
}

/// A DELETE where 404 counts as done: the thing is already gone, which is what was asked.
async fn delete(
    downstream: &Downstream,
    path: &str,
    trace: &TraceContext,
) -> Result<(), StepError> {
    match call(downstream, Method::DELETE, path, None::<&()>, trace).await {
        Ok(_)
        | Err(StepError::Rejected {
            status: StatusCode::NOT_FOUND,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A failed step as a message error: transient stays transient, a rejection dead-letters.
fn settle(e: StepError, reason: &str, doing: &str) -> MessageError {
    match e {
        StepError::Transient(detail) => MessageError::Transient(format!("{doing}: {detail}")),
        StepError::Rejected { status, detail } => {
            MessageError::permanent(reason, format!("{doing}: answered {status} ({detail})"))
        }
    }
}
