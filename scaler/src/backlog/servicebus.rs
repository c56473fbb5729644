//! Service Bus's runtime properties of a queue, read the way KEDA's `azure-servicebus`
//! scaler reads them: `GET https://<namespace>/<queue>?api-version=2021-05` on the
//! management (ATOM) API, whose `CountDetails` holds `ActiveMessageCount`.
//!
//! Cost: Microsoft calls acquiring the counters "an expensive operation inside the message
//! broker" (message-counters.md), and management requests are throttled per namespace
//! (Standard tier: 1,000 credits a second, 10 per management call; Premium by messaging
//! units). One read a second per queue is 10 credits a second; a throttled or failed read
//! backs the poller off ([`super::Poller`]), so the scaler never reads faster than the
//! namespace allows.
//!
//! Sign-in is the scaler's own identity (workload identity in the cluster; the Entra role
//! needed to read runtime properties is Azure Service Bus Data Owner on the queue), or a
//! connection string's key with Manage rights.

use std::time::Duration;

use runtime::queue::amqp::{AmqpSettings, JWT_TOKEN_TYPE, TokenSource};

use super::ReadError;

/// The management API's version, as KEDA's scaler and the Azure SDKs ask for it.
const API_VERSION: &str = "2021-05";

/// Reads queues' runtime properties from one namespace.
#[derive(Debug, Clone)]
pub struct RuntimeProperties {
    /// `https://<namespace host>`.
    base: String,
    tokens: TokenSource,
    client: reqwest::Client,
}

impl RuntimeProperties {
    /// A reader for the namespace `settings` name, signed in as they say. `None` when the
    /// settings are a generic AMQP broker, which has no runtime properties.
    pub fn new(settings: &AmqpSettings) -> Result<Option<Self>, String> {
        let Some(tokens) = TokenSource::for_auth(&settings.auth).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let host = settings.url.host_str().unwrap_or_default();
        let base = match settings.url.port() {
            // The emulator's connection string names its AMQP port; its management API is
            // HTTP on 5300.
            Some(_) => format!("http://{host}:5300"),
            None => format!("https://{host}"),
        };
        Ok(Some(Self::with_base(base, tokens)?))
    }

    /// A reader of the management API at `base` (tests point it at a stand-in).
    pub fn with_base(base: String, tokens: TokenSource) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            client,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `queue`'s ActiveMessageCount, within `timeout`.
    pub async fn active_messages(&self, queue: &str, timeout: Duration) -> Result<u64, ReadError> {
        let url = format!("{}/{queue}?api-version={API_VERSION}", self.base);
        let resource = format!("{}/{queue}", self.base);
        let token = self
            .tokens
            .token(&resource)
            .await
            .map_err(|e| ReadError::failed(&url, e.to_string()))?;
        let authorization = if token.token_type == JWT_TOKEN_TYPE {
            format!("Bearer {}", token.token.secret())
        } else {
            // A shared access signature is sent as it is made ("SharedAccessSignature sr=...").
            token.token.secret().to_owned()
        };
        let response = self
            .client
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ReadError::failed(&url, e.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .text()
            .await
            .map_err(|e| ReadError::failed(&url, e.to_string()))?;
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        {
            return Err(ReadError::Throttled {
                url,
                retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
            });
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ReadError::NoSuchQueue(queue.to_owned()));
        }
        if !status.is_success() {
            return Err(ReadError::failed(&url, format!("answered {status}")));
        }
        active_message_count(&body).ok_or_else(|| {
            // A queue that does not exist is answered 200 with an empty feed; a throttled
            // read has been seen to lack the element too (KEDA's "no CountDetails element").
            if body.contains("<feed") && !body.contains("<entry") {
                ReadError::NoSuchQueue(queue.to_owned())
            } else {
                ReadError::failed(&url, "the answer has no CountDetails/ActiveMessageCount")
            }
        })
    }
}

/// The text of the first element named `ActiveMessageCount` (in any namespace prefix), as a
/// number. Written by hand rather than with an XML crate: the document is Service Bus's own
/// fixed ATOM entry and one integer is read from it, so a parser would add a dependency to
/// every build for a single lookup.
fn active_message_count(xml: &str) -> Option<u64> {
    let name = "ActiveMessageCount>";
    let mut rest = xml;
    while let Some(at) = rest.find(name) {
        let before = &rest[..at];
        let after = &rest[at + name.len()..];
        // An opening tag: `<ActiveMessageCount>` or `<prefix:ActiveMessageCount>`.
        let tag_start = before.rfind('<')?;
        let prefix = &before[tag_start + 1..];
        let is_open = !prefix.starts_with('/')
            && prefix
                .strip_suffix(':')
                .map_or(prefix.is_empty(), |p| !p.is_empty() && !p.contains(' '));
        if is_open {
            let end = after.find('<')?;
            return after[..end].trim().parse().ok();
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Service Bus answers with (trimmed), as KEDA's scaler and the SDKs parse it.
    const ENTRY: &str = r#"<entry xmlns="http://www.w3.org/2005/Atom"><id>https://fabrikam.servicebus.windows.net/deliveries?api-version=2021-05</id><title type="text">deliveries</title><content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><LockDuration>PT1M</LockDuration><MessageCount>19</MessageCount><CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus"><d2p1:ActiveMessageCount>17</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>2</d2p1:DeadLetterMessageCount><d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount></CountDetails></QueueDescription></content></entry>"#;

    #[test]
    fn the_active_count_is_read_from_count_details() {
        assert_eq!(active_message_count(ENTRY), Some(17));
        assert_eq!(
            active_message_count("<CountDetails><ActiveMessageCount> 4 </ActiveMessageCount>"),
            Some(4)
        );
    }

    #[test]
    fn a_document_without_the_count_has_none() {
        let feed =
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Queues</title></feed>"#;
        assert_eq!(active_message_count(feed), None);
        assert_eq!(
            active_message_count("<d2p1:ActiveMessageCount>many</d2p1:ActiveMessageCount>"),
            None
        );
    }
}
