//! The request/response link pair to a queue's `$management` node, for lock renewal.

use std::time::Duration;

use azure_core_amqp::{
    AmqpDeliveryApis, AmqpDeliveryOutcome, AmqpReceiver, AmqpReceiverApis, AmqpReceiverOptions,
    AmqpSendOutcome, AmqpSender, AmqpSenderApis, AmqpSenderOptions, AmqpSource, AmqpTarget,
    ReceiverCreditMode,
};
use chrono::Utc;
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use super::codec::{ManagementReply, correlation_id, renew_lock_reply, renew_lock_request};
use super::connection::{Connection, Live, OPEN_TIMEOUT, classify, outcome_name, unavailable};
use crate::queue::QueueError;

/// Longest wait for a management response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One queue's `$management` links. Requests are sent one at a time, so a response is
/// matched to its request by correlation id without a table of waiters.
pub struct Management {
    reply_to: String,
    links: Mutex<(AmqpSender, AmqpReceiver)>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

impl Management {
    pub async fn attach(
        connection: &Connection,
        live: &Live,
        queue: &str,
    ) -> Result<Self, QueueError> {
        let node = connection.address(queue, "/$management");
        let reply_to = format!("{queue}-management-{}", Uuid::new_v4());
        let sender = AmqpSender::new();
        let receiver = AmqpReceiver::new();
        let attach = async {
            sender
                .attach(
                    &live.session,
                    format!("{reply_to}-request"),
                    AmqpTarget::from(node.clone()),
                    Some(AmqpSenderOptions {
                        source: Some(AmqpSource::builder().with_address(reply_to.clone()).build()),
                        ..AmqpSenderOptions::default()
                    }),
                )
                .await?;
            receiver
                .attach(
                    &live.session,
                    AmqpSource::builder().with_address(node.clone()).build(),
                    Some(AmqpReceiverOptions {
                        name: Some(format!("{reply_to}-response")),
                        // The response link's target is the reply-to address the node
                        // answers to (Service Bus request/response docs).
                        target: Some(AmqpTarget::from(reply_to.clone())),
                        credit_mode: Some(ReceiverCreditMode::Auto(10)),
                        auto_accept: true,
                        ..AmqpReceiverOptions::default()
                    }),
                )
                .await
        };
        match tokio::time::timeout(OPEN_TIMEOUT, attach).await {
            Err(_) => Err(unavailable("attaching $management timed out")),
            Ok(Err(e)) => Err(connection.failed(live, &e)),
            Ok(Ok(())) => Ok(Self {
                reply_to,
                links: Mutex::new((sender, receiver)),
            }),
        }
    }

    /// Renews the lock `token`; returns when it now expires. A status other than 200 (410
    /// when the lock is gone) is a lost lock.
    pub async fn renew_lock(&self, token: Uuid) -> Result<Instant, QueueError> {
        let links = self.links.lock().await;
        let (sender, receiver) = &*links;
        let request_id = Uuid::new_v4();
        let request = renew_lock_request(request_id, &self.reply_to, &[token]);
        match sender.send(request, None).await {
            Ok(AmqpSendOutcome::Accepted) => {}
            Ok(other) => {
                return Err(unavailable(&format!(
                    "renew-lock refused: {}",
                    outcome_name(&other)
                )));
            }
            Err(e) => return Err(classify(&e)),
        }
        let wait = async {
            loop {
                let delivery = receiver.receive_delivery().await?;
                // Auto-accepted; settle anyway in case the peer sent it unsettled.
                let _ = receiver
                    .settle_delivery(&delivery, AmqpDeliveryOutcome::Accepted)
                    .await;
                let reply = delivery.message();
                if correlation_id(reply).as_deref() == Some(request_id.to_string().as_str()) {
                    return Ok::<_, azure_core_amqp::AmqpError>(renew_lock_reply(reply));
                }
            }
        };
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, wait)
            .await
            .map_err(|_| unavailable("no renew-lock response"))?
            .map_err(|e| classify(&e))?;
        match reply {
            ManagementReply::Renewed(expiries) => {
                let until = expiries.first().copied().ok_or(QueueError::LockLost)?;
                let left = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                Ok(Instant::now() + left)
            }
            ManagementReply::Failed {
                status,
                description,
            } => {
                tracing::warn!(status, description, "renew-lock failed");
                Err(QueueError::LockLost)
            }
        }
    }
}
