//! The Service Bus-only parts of the AMQP transport, at the frame level, against the double
//! in `double.rs`: `$cbs` sign-in, annotations, settlement outcomes with the dead-letter
//! error, `$management` lock renewal, and batch sends. What RabbitMQ can check (a real broker,
//! restarts, credit) is in `amqp_rabbitmq.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod double;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp_types::messaging::{Body, Outcome};
use fe2o3_amqp_types::primitives::{SimpleValue, Symbol, Value};
use runtime::queue::amqp::{AmqpBroker, AmqpSettings, ConnectionString};
use runtime::queue::{Broker, OutgoingMessage, QueueError};
use runtime::testing::queues::receive_all;
use tokio::time::Instant;

use double::{BATCH_FORMAT, ServiceBusDouble, dead_letter_info, message};

const KEY_NAME: &str = "RootManageSharedAccessKey";
const KEY: &str = "c2VydmljZWJ1cy1kb3VibGUta2V5";
const LOCK: Duration = Duration::from_secs(30);

fn broker(double: &ServiceBusDouble, key: &str, max_message_bytes: usize) -> AmqpBroker {
    let cs = ConnectionString::parse(&double.connection_string(key)).expect("connection string");
    let settings = AmqpSettings {
        url: cs.url,
        auth: cs.auth,
        address_prefix: String::new(),
        lock_duration: Duration::from_secs(300),
    };
    AmqpBroker::new(settings, 10, max_message_bytes, 10).expect("broker")
}

async fn start() -> ServiceBusDouble {
    ServiceBusDouble::start(KEY_NAME, KEY, LOCK).await
}

/// Waits up to 10 s for `check` to hold on the double's journal.
async fn eventually(
    double: &ServiceBusDouble,
    what: &str,
    check: impl Fn(&double::Journal) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(&double.journal()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            double.journal()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secs_since_epoch(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("fits")
}

fn text(v: Option<&SimpleValue>) -> Option<&str> {
    match v {
        Some(SimpleValue::String(s)) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn a_sas_token_for_the_queue_is_put_on_cbs_before_its_link_attaches() {
    let double = start().await;
    let b = broker(&double, KEY, 256 * 1024);
    b.sender("orders")
        .expect("sender")
        .send(
            OutgoingMessage::json("m-1", &b"{\"n\":1}"[..])
                .with_property("operation", "delivery")
                .with_property(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .with_property(
                    "Diagnostic-Id",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
        )
        .await
        .expect("send");

    let j = double.journal();
    assert_eq!(j.put_tokens.len(), 1, "{j:#?}");
    let put = &j.put_tokens[0];
    assert_eq!(put.name, "sb://127.0.0.1/orders");
    assert_eq!(put.token_type, "servicebus.windows.net:sastoken");
    assert_eq!(put.status, 202, "the double verified the SAS signature");
    let expires = put
        .expiration
        .as_ref()
        .expect("an expiration")
        .milliseconds()
        / 1000;
    assert!(
        expires > secs_since_epoch(SystemTime::now()),
        "expires in the future"
    );
    assert!(put.reply_to.is_some(), "put-token names its reply-to");
    assert_eq!(
        put.answered_on, put.reply_to,
        "the $cbs response link's target is the request's reply-to"
    );
    assert!(
        j.attaches.iter().all(|a| a.authorized),
        "no entity link attached before its token: {:#?}",
        j.attaches
    );
    assert!(
        j.attaches
            .iter()
            .any(|a| a.node == "orders" && a.client_role == "sender")
    );

    assert_eq!(j.transfers.len(), 1);
    assert_eq!(
        j.transfers[0].node, "orders",
        "Service Bus addresses a queue by its name"
    );
    assert_eq!(j.transfers[0].message_format, 0);
    let sent = &j.transfers[0].messages[0];
    let props = sent.properties.as_ref().expect("properties");
    assert_eq!(
        props.message_id,
        Some(fe2o3_amqp_types::messaging::MessageId::String("m-1".into()))
    );
    assert_eq!(props.content_type, Some(Symbol::from("application/json")));
    assert!(sent.header.as_ref().is_some_and(|h| h.durable));
    let app = &sent
        .application_properties
        .as_ref()
        .expect("application properties")
        .0;
    assert_eq!(text(app.get("operation")), Some("delivery"));
    assert!(text(app.get("traceparent")).is_some_and(|t| t.starts_with("00-0af7")));
    assert!(text(app.get("Diagnostic-Id")).is_some_and(|t| t.starts_with("00-0af7")));
    match &sent.body {
        Body::Data(sections) => {
            assert_eq!(sections.len(), 1, "one data section");
            assert_eq!(sections[0].0.as_ref(), b"{\"n\":1}");
        }
        other => panic!("expected a data body, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_key_fails_the_send_clearly_without_attaching_or_showing_the_key() {
    let double = start().await;
    let wrong = "bm90LXRoZS1yaWdodC1rZXk=";
    let b = broker(&double, wrong, 256 * 1024);
    let err = b
        .sender("orders")
        .expect("sender")
        .send(OutgoingMessage::json("m-1", &b"{}"[..]))
        .await
        .expect_err("the double refuses the token");
    assert!(matches!(err, QueueError::Unavailable { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(!shown.contains(wrong), "the error shows the key: {shown}");
    let j = double.journal();
    assert!(j.put_tokens.iter().all(|t| t.status == 401), "{j:#?}");
    assert!(!j.put_tokens.is_empty());
    assert!(
        j.attaches.iter().all(|a| a.node == "$cbs"),
        "{:#?}",
        j.attaches
    );
    assert!(j.transfers.is_empty());
}

#[tokio::test]
async fn deliveries_read_service_bus_annotations_and_settle_with_the_documented_outcomes() {
    let double = start().await;
    let enqueued = SystemTime::now() - Duration::from_secs(60);
    double.enqueue(
        "orders",
        message("complete-me", b"{}", &[("operation", "delivery")]),
        enqueued,
        0,
    );
    double.enqueue("orders", message("abandon-me", b"{}", &[]), enqueued, 2);
    double.enqueue("orders", message("dead-letter-me", b"{}", &[]), enqueued, 0);
    let b = broker(&double, KEY, 256 * 1024);
    let r = b.receiver("orders").expect("receiver");
    let got = receive_all(r.as_ref(), 3).await;
    assert_eq!(got.len(), 3);
    let by_id = |id: &str| got.iter().find(|m| m.message_id == id).expect(id);

    let first = by_id("complete-me");
    assert_eq!(first.delivery_count, 1);
    assert_eq!(first.property("operation"), Some("delivery"));
    let enqueued_secs = secs_since_epoch(enqueued);
    assert!(
        (first.enqueued_at.timestamp() - enqueued_secs).abs() <= 1,
        "x-opt-enqueued-time"
    );
    let left = first.locked_until.saturating_duration_since(Instant::now());
    assert!(
        left > LOCK - Duration::from_secs(5) && left <= LOCK,
        "x-opt-locked-until gives the lock ({left:?}), not the 300 s configured for generic brokers"
    );
    assert_eq!(
        by_id("abandon-me").delivery_count,
        3,
        "two failed deliveries before"
    );

    r.complete(&first.lock_token).await.expect("complete");
    r.abandon(&by_id("abandon-me").lock_token)
        .await
        .expect("abandon");
    r.dead_letter(
        &by_id("dead-letter-me").lock_token,
        "MaxDeliveryCountExceeded",
        "tried 10 times",
    )
    .await
    .expect("dead-letter");
    eventually(&double, "three settlements", |j| j.settlements.len() == 3).await;

    let j = double.journal();
    assert!(j.deliveries.iter().all(|d| d.queue == "orders"));
    assert!(
        j.settlements.iter().all(|s| s.queue == "orders"),
        "settled on the queue's link"
    );
    let outcome_of = |id: &str| {
        let token = j
            .deliveries
            .iter()
            .find(|d| d.message_id == id)
            .expect(id)
            .lock_token;
        j.settlements
            .iter()
            .find(|s| s.lock_token == token)
            .expect("settled")
            .outcome
            .clone()
    };
    assert!(matches!(outcome_of("complete-me"), Outcome::Accepted(_)));
    match outcome_of("abandon-me") {
        Outcome::Modified(m) => {
            assert_eq!(m.delivery_failed, Some(true));
            assert_ne!(
                m.undeliverable_here,
                Some(true),
                "may come back to this receiver"
            );
        }
        other => panic!("abandon should be modified, got {other:?}"),
    }
    let (condition, info) = dead_letter_info(&outcome_of("dead-letter-me")).expect("an error");
    assert_eq!(condition, "com.microsoft:dead-letter");
    assert_eq!(
        info.get(&Symbol::from("DeadLetterReason")),
        Some(&Value::String("MaxDeliveryCountExceeded".into()))
    );
    assert_eq!(
        info.get(&Symbol::from("DeadLetterErrorDescription")),
        Some(&Value::String("tried 10 times".into()))
    );

    let again = receive_all(r.as_ref(), 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, "abandon-me");
    assert_eq!(
        again[0].delivery_count, 4,
        "abandon counted as a failed delivery"
    );
    r.complete(&again[0].lock_token).await.expect("complete");

    let dead = double.waiting("orders/$deadletterqueue");
    assert_eq!(dead.len(), 1);
    let dead_props = &dead[0]
        .application_properties
        .as_ref()
        .expect("properties")
        .0;
    assert_eq!(
        text(dead_props.get("DeadLetterReason")),
        Some("MaxDeliveryCountExceeded")
    );
    assert!(double.waiting("orders").is_empty());
}

#[tokio::test]
async fn renewing_a_lock_asks_the_management_node_with_its_lock_token() {
    let double = start().await;
    double.enqueue("orders", message("slow", b"{}", &[]), SystemTime::now(), 0);
    let b = broker(&double, KEY, 256 * 1024);
    let r = b.receiver("orders").expect("receiver");
    let got = receive_all(r.as_ref(), 1).await;
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let renewed = r.renew_lock(&got[0].lock_token).await.expect("renew");
    assert!(
        renewed > got[0].locked_until + Duration::from_secs(1),
        "the new expiry comes from the response"
    );

    let j = double.journal();
    assert_eq!(j.renewals.len(), 1, "{j:#?}");
    let renewal = &j.renewals[0];
    assert_eq!(renewal.node, "orders/$management");
    assert_eq!(
        renewal.lock_tokens,
        vec![j.deliveries[0].lock_token],
        "x-opt-lock-token"
    );
    assert_eq!(renewal.status, 200);
    assert!(renewal.reply_to.is_some());
    let response_link = j
        .attaches
        .iter()
        .find(|a| a.node == "orders/$management" && a.client_role == "receiver")
        .expect("a response link");
    assert!(response_link.authorized);
    // azure_core_amqp 1.2.0-beta.1 attaches receivers without the target it is given, so
    // the response link has no address; the double answers on the node's only response
    // link. The README records this gap; once fixed, the target must be the reply-to.
    assert!(
        response_link.other_end.is_none() || response_link.other_end == renewal.reply_to,
        "{response_link:?} vs reply-to {:?}",
        renewal.reply_to
    );

    r.complete(&got[0].lock_token).await.expect("complete");
    assert_eq!(
        r.renew_lock(&got[0].lock_token).await,
        Err(QueueError::LockLost)
    );
}

#[tokio::test]
async fn a_lock_the_broker_no_longer_holds_renews_as_lost() {
    let double = start().await;
    double.enqueue("orders", message("gone", b"{}", &[]), SystemTime::now(), 0);
    let b = broker(&double, KEY, 256 * 1024);
    let r = b.receiver("orders").expect("receiver");
    let got = receive_all(r.as_ref(), 1).await;
    double.expire_locks("orders");
    assert_eq!(
        r.renew_lock(&got[0].lock_token).await,
        Err(QueueError::LockLost)
    );
    let j = double.journal();
    assert_eq!(j.renewals.last().map(|r| r.status), Some(410));
}

#[tokio::test]
async fn a_batch_goes_out_in_the_service_bus_batch_format_and_arrives_as_its_messages() {
    let double = start().await;
    let b = broker(&double, KEY, 256 * 1024);
    let batch: Vec<OutgoingMessage> = (0..5)
        .map(|i| {
            OutgoingMessage::json(format!("b-{i}"), format!("{{\"n\":{i}}}"))
                .with_property("operation", "delivery")
        })
        .collect();
    b.sender("orders")
        .expect("sender")
        .send_batch(batch)
        .await
        .expect("send batch");

    let j = double.journal();
    assert_eq!(j.transfers.len(), 1, "one transfer for the batch");
    assert_eq!(j.transfers[0].message_format, BATCH_FORMAT);
    let ids: Vec<String> = j.transfers[0]
        .messages
        .iter()
        .map(
            |m| match m.properties.as_ref().and_then(|p| p.message_id.clone()) {
                Some(fe2o3_amqp_types::messaging::MessageId::String(s)) => s,
                other => panic!("message id {other:?}"),
            },
        )
        .collect();
    assert_eq!(ids, ["b-0", "b-1", "b-2", "b-3", "b-4"]);

    let r = b.receiver("orders").expect("receiver");
    let mut got = receive_all(r.as_ref(), 5).await;
    got.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(got.len(), 5);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.body, format!("{{\"n\":{i}}}").into_bytes());
        assert_eq!(m.property("operation"), Some("delivery"));
        r.complete(&m.lock_token).await.expect("complete");
    }
}

#[tokio::test]
async fn a_batch_larger_than_a_message_may_be_is_split_and_an_oversized_message_refused() {
    let double = start().await;
    let b = broker(&double, KEY, 1024);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(300));
    let batch: Vec<OutgoingMessage> = (0..6)
        .map(|i| OutgoingMessage::json(format!("s-{i}"), body.clone()))
        .collect();
    let sender = b.sender("orders").expect("sender");
    sender.send_batch(batch).await.expect("send batch");
    let j = double.journal();
    assert!(j.transfers.len() > 1, "split into several transfers");
    let carried: usize = j.transfers.iter().map(|t| t.messages.len()).sum();
    assert_eq!(carried, 6, "every message sent once");
    assert_eq!(double.waiting("orders").len(), 6);

    let too_big = OutgoingMessage::json("huge", "x".repeat(2048));
    let err = sender
        .send_batch(vec![OutgoingMessage::json("ok", "{}"), too_big])
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            QueueError::MessageTooLarge {
                size: 2048,
                limit: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        double.waiting("orders").len(),
        6,
        "nothing of a refused batch is sent"
    );
}
