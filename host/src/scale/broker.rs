//! What KEDA's `azure-servicebus` scaler reads from Service Bus, read here from RabbitMQ's
//! management API: the queue's ready messages (Service Bus's ActiveMessageCount) and its
//! unacknowledged ones (locked). The management API refreshes these figures every few
//! seconds (`collect_statistics_interval`, 5 s by default), so they can lag the queue; the
//! explain log shows the values the rules saw.

use axum::body::Body;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use scaling::servicebus::QueueCounts;

/// A RabbitMQ management API (`http://127.0.0.1:15672/api`, guest/guest on loopback).
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
            client: runtime::gateway::proxy_client(),
        }
    }

    /// One read of `queue`'s counts (default virtual host).
    pub async fn queue_counts(&self, queue: &str) -> Result<QueueCounts, String> {
        let url = format!("{}/queues/%2F/{}", self.base, encode(queue));
        let request = http::Request::get(&url)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let read = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{url} answered {status}"));
            }
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            Ok(counts(&value))
        };
        tokio::time::timeout(std::time::Duration::from_secs(2), read)
            .await
            .map_err(|_| format!("{url} did not answer within 2 s"))?
    }
}

/// The counts in a queue object; a queue the statistics have not covered yet has neither
/// field, and is empty.
fn counts(queue: &serde_json::Value) -> QueueCounts {
    QueueCounts {
        active: queue["messages_ready"].as_u64().unwrap_or(0),
        locked: queue["messages_unacknowledged"].as_u64().unwrap_or(0),
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
    fn ready_messages_are_active_and_unacknowledged_are_locked() {
        let q = serde_json::json!({"messages_ready": 12, "messages_unacknowledged": 16});
        assert_eq!(
            counts(&q),
            QueueCounts {
                active: 12,
                locked: 16
            }
        );
        assert_eq!(
            counts(&serde_json::json!({"name": "new"})),
            QueueCounts::default()
        );
        assert_eq!(encode("deliveries-alice"), "deliveries%2Dalice");
    }
}
