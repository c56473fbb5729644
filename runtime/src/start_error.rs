//! [`StartError`]: why a function could not start, with the cause kept as its source.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::queue::QueueError;
use crate::secrets::SecretsError;
use crate::store::StoreError;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("queue {queue}")]
    Queue {
        queue: String,
        #[source]
        source: QueueError,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the listener's address")]
    ListenerAddress(#[source] std::io::Error),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The secret source cannot be set up (a Key Vault client or credential).
    #[error("secret source: {0}")]
    SecretSource(String),
    #[error("metrics")]
    Metrics(#[from] prometheus::Error),
    /// The function's store cannot be opened (unreachable, refused, misconfigured).
    #[error("{store}")]
    Store {
        /// Which store, and where: `MongoDB (host:port)`, `Redis`.
        store: String,
        #[source]
        source: StoreError,
    },
    /// The function uses something its declaration does not state (a secret, a queue, a
    /// callee), or states it in a way the host cannot serve.
    #[error("{function}: {problem}")]
    Declaration { function: String, problem: String },
    /// A setting is valid alone but not with another (both a variable and a secret give
    /// the same connection string).
    #[error("{0}")]
    Conflict(String),
}

impl StartError {
    /// The whole chain of causes in one line: `queue deliveries: queue unavailable: ...`.
    /// Log lines and the process's last words use it, so no cause is lost.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause() {
        let e = StartError::Store {
            store: "MongoDB (db:27017)".into(),
            source: StoreError::unavailable("MongoDB cannot be reached"),
        };
        assert_eq!(
            e.chain(),
            "MongoDB (db:27017): store unavailable: MongoDB cannot be reached"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
