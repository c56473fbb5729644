//! The AMQP 1.0 transport: Azure Service Bus, its emulator, or a generic AMQP 1.0 broker,
//! on Microsoft's `azure_core_amqp`.
//!
//! One connection per process carries every link; see `connection.rs` for how it is
//! reopened after a drop without losing or double-settling messages.

mod auth;
mod codec;
mod connection;
mod management;
mod receiver;
mod sender;
pub mod settings;

use std::sync::Arc;

pub use auth::{CbsToken, JWT_TOKEN_TYPE, TokenSource, shared_access_signature};
pub use settings::{AmqpSettings, Auth, ConnectionString, Transport};

use self::connection::Connection;
use super::{Broker, QueueError, QueueReceiver, QueueSender};

/// Opens queues on one AMQP 1.0 peer.
#[derive(Debug, Clone)]
pub struct AmqpBroker {
    connection: Arc<Connection>,
    credit: u32,
    max_message_bytes: usize,
    max_delivery_count: u32,
}

impl AmqpBroker {
    /// A broker that connects on first use. `credit` bounds how many messages a receiver
    /// holds unsettled (the pump's handlers plus prefetch); `max_delivery_count` is the
    /// queues' (`QUEUE_MAX_DELIVERY_COUNT`, matching what infra/ sets on Service Bus), which
    /// tells a handler its last attempt.
    pub fn new(
        settings: AmqpSettings,
        credit: u32,
        max_message_bytes: usize,
        max_delivery_count: u32,
    ) -> Result<Self, QueueError> {
        crate::tls::install_provider();
        let tokens = TokenSource::for_auth(&settings.auth).map_err(QueueError::unavailable_from)?;
        Ok(Self {
            connection: Arc::new(Connection::new(settings, tokens)),
            credit,
            max_message_bytes,
            max_delivery_count,
        })
    }
}

impl Broker for AmqpBroker {
    fn sender(&self, queue: &str) -> Result<Arc<dyn QueueSender>, QueueError> {
        Ok(Arc::new(sender::AmqpQueueSender::new(
            self.connection.clone(),
            queue,
            self.max_message_bytes,
        )))
    }

    fn receiver(&self, queue: &str) -> Result<Arc<dyn QueueReceiver>, QueueError> {
        Ok(Arc::new(receiver::AmqpQueueReceiver::new(
            self.connection.clone(),
            queue,
            self.credit,
            self.max_delivery_count,
        )))
    }
}
