//! RabbitMQ's management API, the local stand-in for Service Bus's runtime properties: one
//! `GET /api/queues/<vhost>/<queue>` gives the ready messages (Service Bus's
//! ActiveMessageCount) and the unacknowledged ones (locked).
//!
//! Cost: the API answers from the management plugin's statistics, not from the queue
//! process, so a read costs the broker almost nothing at one a second. The price is
//! freshness: the figures are as old as the statistics, refreshed every
//! `collect_statistics_interval` (5 s by default; `scripts/services` and
//! `scripts/rabbitmq-node` set 1 s).

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::ReadError;

/// A queue's counts as the management API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Ready for delivery: the backlog.
    pub ready: u64,
    /// Delivered and not yet acknowledged: held by consumers.
    pub unacknowledged: u64,
}

/// A RabbitMQ management API (`http://127.0.0.1:15672/api`).
#[derive(Debug, Clone)]
pub struct Management {
    base: String,
    authorization: String,
    client: Client<HttpConnector, Body>,
}

impl Management {
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            base: base.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {credentials}"),
            client: runtime::client::proxy_client(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One read of `queue`'s counts (default virtual host), within `timeout`.
    pub async fn queue_counts(&self, queue: &str, timeout: Duration) -> Result<Counts, ReadError> {
        let url = format!("{}/queues/%2F/{}", self.base, encode(queue));
        let request = http::Request::get(&url)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .body(Body::empty())
            .map_err(|e| ReadError::failed(&url, e.to_string()))?;
        let read = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ReadError::failed(&url, e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ReadError::failed(&url, e.to_string()))?
                .to_bytes();
            if status == http::StatusCode::NOT_FOUND {
                return Err(ReadError::NoSuchQueue(queue.to_owned()));
            }
            if !status.is_success() {
                return Err(ReadError::failed(&url, format!("answered {status}")));
            }
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ReadError::failed(&url, format!("not a queue object: {e}")))?;
            Ok(counts(&value))
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ReadError::failed(&url, format!("no answer within {timeout:?}")))?
    }
}

/// The counts in a queue object; a queue the statistics have not covered yet has neither
/// field, and is empty.
fn counts(queue: &serde_json::Value) -> Counts {
    Counts {
        ready: queue["messages_ready"].as_u64().unwrap_or(0),
        unacknowledged: queue["messages_unacknowledged"].as_u64().unwrap_or(0),
    }
}

/// A queue name as one path segment.
fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_messages_are_the_backlog_and_unacknowledged_are_held() {
        let q = serde_json::json!({"messages_ready": 12, "messages_unacknowledged": 16});
        assert_eq!(
            counts(&q),
            Counts {
                ready: 12,
                unacknowledged: 16
            }
        );
        assert_eq!(
            counts(&serde_json::json!({"name": "new"})),
            Counts::default()
        );
        assert_eq!(encode("deliveries-alice"), "deliveries%2Dalice");
    }
}
