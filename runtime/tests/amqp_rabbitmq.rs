//! The AMQP 1.0 transport against a real broker: RabbitMQ 3.10 with its AMQP 1.0 plugin, on
//! a private node (`scripts/rabbitmq-node`, port 5682) that these tests may kill and restart
//! without disturbing the shared broker on 5672. Each test declares its own quorum queue
//! (dead-lettering into `<queue>.deadletter`) through `scripts/rabbitmq-queue`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use runtime::queue::amqp::{AmqpBroker, AmqpSettings, Auth};
use runtime::queue::{Broker, OutgoingMessage, QueueError, QueueReceiver};
use runtime::testing::queues::receive_all;
use runtime::testing::servers::unique_name;

/// The private node's AMQP port; its management API is on +10000.
const NODE_PORT: u16 = 5682;

fn script(name: &str) -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/").to_owned() + name)
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `scripts/rabbitmq-node ACTION` on the private node (start is a no-op when it runs).
fn node(action: &str) {
    run(script("rabbitmq-node").args([
        action,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/rabbitmq-node"),
        &NODE_PORT.to_string(),
    ]));
}

/// A new queue on the private node, dead-lettering after `max_delivery_count` deliveries.
fn declared_queue_with_limit(max_delivery_count: u32) -> String {
    node("start");
    let queue = unique_name("amqp-test-");
    run(script("rabbitmq-queue")
        .arg(&queue)
        .env("RABBITMQ_MANAGEMENT_PORT", (NODE_PORT + 10_000).to_string())
        .env(
            "RABBITMQ_MAX_DELIVERY_COUNT",
            max_delivery_count.to_string(),
        ));
    queue
}

fn declared_queue() -> String {
    declared_queue_with_limit(10)
}

fn broker(credit: u32) -> AmqpBroker {
    let settings = AmqpSettings {
        url: format!("amqp://127.0.0.1:{NODE_PORT}")
            .parse()
            .expect("url"),
        auth: Auth::None,
        address_prefix: "/amq/queue/".to_owned(),
        lock_duration: Duration::from_secs(30),
    };
    AmqpBroker::new(settings, credit, 256 * 1024, 10).expect("broker")
}

async fn nothing_left(r: &dyn QueueReceiver) {
    let left = r
        .receive(10, Duration::from_millis(700))
        .await
        .expect("receive");
    assert!(left.is_empty(), "unexpected messages: {left:?}");
}

#[tokio::test]
async fn sent_messages_arrive_with_their_id_properties_and_body_and_complete_removes_them() {
    let queue = declared_queue();
    let b = broker(10);
    let sender = b.sender(&queue).expect("sender");
    for i in 0..3 {
        sender
            .send(
                OutgoingMessage::json(format!("m-{i}"), format!("{{\"n\":{i}}}"))
                    .with_property("operation", "delivery")
                    .with_property(
                        "traceparent",
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    ),
            )
            .await
            .expect("send");
    }
    let r = b.receiver(&queue).expect("receiver");
    let mut got = receive_all(r.as_ref(), 3).await;
    got.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(got.len(), 3);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.message_id, format!("m-{i}"));
        assert_eq!(m.content_type, "application/json");
        assert_eq!(m.body, format!("{{\"n\":{i}}}").into_bytes());
        assert_eq!(m.property("operation"), Some("delivery"));
        assert!(
            m.property("traceparent")
                .is_some_and(|t| t.starts_with("00-0af7"))
        );
        assert_eq!(m.delivery_count, 1);
        r.complete(&m.lock_token).await.expect("complete");
    }
    assert_eq!(
        r.complete(&got[0].lock_token).await,
        Err(QueueError::LockLost),
        "a message is settled once"
    );
    nothing_left(b.receiver(&queue).expect("receiver").as_ref()).await;
}

#[tokio::test]
async fn a_batch_to_a_broker_without_the_service_bus_batch_format_arrives_as_its_messages() {
    let queue = declared_queue();
    let b = broker(10);
    let batch = (0..4)
        .map(|i| OutgoingMessage::json(format!("b-{i}"), format!("{{\"n\":{i}}}")))
        .collect();
    b.sender(&queue)
        .expect("sender")
        .send_batch(batch)
        .await
        .expect("send batch");
    let r = b.receiver(&queue).expect("receiver");
    let mut got = receive_all(r.as_ref(), 4).await;
    got.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    let ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["b-0", "b-1", "b-2", "b-3"]);
    for m in &got {
        r.complete(&m.lock_token).await.expect("complete");
    }
    nothing_left(r.as_ref()).await;
}

#[tokio::test]
async fn an_abandoned_message_is_delivered_again() {
    let queue = declared_queue();
    let b = broker(10);
    b.sender(&queue)
        .expect("sender")
        .send(OutgoingMessage::json("again", "{}"))
        .await
        .expect("send");
    let r = b.receiver(&queue).expect("receiver");
    let first = receive_all(r.as_ref(), 1).await;
    assert_eq!(first.len(), 1);
    r.abandon(&first[0].lock_token).await.expect("abandon");
    let second = receive_all(r.as_ref(), 1).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, "again");
    assert_ne!(second[0].lock_token, first[0].lock_token);
    r.complete(&second[0].lock_token).await.expect("complete");
    nothing_left(r.as_ref()).await;
}

/// RabbitMQ 3.10 refuses the `modified` outcome by closing the session, which took the locks
/// of every other message the receiver held: abandon must not cost the others their
/// settlement.
#[tokio::test]
async fn abandoning_one_message_leaves_the_others_settleable() {
    let queue = declared_queue();
    let b = broker(10);
    let sender = b.sender(&queue).expect("sender");
    for id in ["a", "b", "c"] {
        sender
            .send(OutgoingMessage::json(id, "{}"))
            .await
            .expect("send");
    }
    let r = b.receiver(&queue).expect("receiver");
    let mut held = receive_all(r.as_ref(), 3).await;
    held.sort_by(|x, y| x.message_id.cmp(&y.message_id));
    r.abandon(&held[0].lock_token).await.expect("abandon");
    for m in &held[1..] {
        r.complete(&m.lock_token)
            .await
            .expect("the others are still held");
    }
    let again = receive_all(r.as_ref(), 1).await;
    assert_eq!(again[0].message_id, "a");
    assert_eq!(again[0].delivery_count, 2, "a redelivery");
    r.complete(&again[0].lock_token).await.expect("complete");
    nothing_left(r.as_ref()).await;
}

/// A message that keeps failing stops at the queue's delivery limit, in the dead-letter
/// queue, as on Service Bus: it does not loop forever.
#[tokio::test]
async fn a_message_abandoned_up_to_the_delivery_limit_is_dead_lettered() {
    let queue = declared_queue_with_limit(3);
    let b = broker(10);
    b.sender(&queue)
        .expect("sender")
        .send(OutgoingMessage::json("poison", "{}"))
        .await
        .expect("send");
    let r = b.receiver(&queue).expect("receiver");
    for attempt in 1..=3 {
        let got = receive_all(r.as_ref(), 1).await;
        // RabbitMQ says only whether a delivery is the first: later ones count as 2.
        assert_eq!(got[0].delivery_count, attempt.min(2));
        r.abandon(&got[0].lock_token).await.expect("abandon");
    }
    nothing_left(r.as_ref()).await;
    let dlq = b
        .receiver(&format!("{queue}.deadletter"))
        .expect("dlq receiver");
    let dead = receive_all(dlq.as_ref(), 1).await;
    assert_eq!(dead[0].message_id, "poison");
    dlq.complete(&dead[0].lock_token).await.expect("complete");
}

/// Thousands of messages through one receiver, each handed out once and all of them in the
/// end. With unbounded (u32::MAX) windows RabbitMQ 3.10's session crashed on its window
/// arithmetic (`out_of_bound_serial_addition`), dropping completions, and their messages came
/// back a second time; and deliveries the SDK refused as over its credit stayed stuck until
/// the link was retired (see the receiver's module docs).
#[tokio::test]
async fn thousands_of_completions_on_one_session_each_settle_once() {
    const MESSAGES: usize = 3000;
    let queue = declared_queue();
    let b = broker(100);
    let sender = b.sender(&queue).expect("sender");
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|i| OutgoingMessage::json(format!("w-{i}"), "{}"))
            .collect();
        sender.send_batch(batch).await.expect("send batch");
    }
    let r = b.receiver(&queue).expect("receiver");
    let mut seen = std::collections::HashSet::new();
    // A link whose credit ran dry is replaced after a few silent seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < MESSAGES {
        let got = r
            .receive(100, Duration::from_secs(5))
            .await
            .expect("receive");
        assert!(
            !got.is_empty() || tokio::time::Instant::now() < deadline,
            "only {} of {MESSAGES} arrived",
            seen.len()
        );
        for m in got {
            assert!(seen.insert(m.message_id.clone()), "{} twice", m.message_id);
            r.complete(&m.lock_token).await.expect("complete");
        }
    }
    nothing_left(r.as_ref()).await;
}

#[tokio::test]
async fn a_dead_lettered_message_lands_in_the_dead_letter_queue() {
    let queue = declared_queue();
    let b = broker(10);
    b.sender(&queue)
        .expect("sender")
        .send(OutgoingMessage::json("poison", "{\"bad\":true}"))
        .await
        .expect("send");
    let r = b.receiver(&queue).expect("receiver");
    let got = receive_all(r.as_ref(), 1).await;
    r.dead_letter(&got[0].lock_token, "ValidationFailed", "no packageInfo")
        .await
        .expect("dead-letter");
    nothing_left(r.as_ref()).await;
    let dlq = b
        .receiver(&format!("{queue}.deadletter"))
        .expect("dlq receiver");
    let dead = receive_all(dlq.as_ref(), 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, "poison");
    assert_eq!(dead[0].body, b"{\"bad\":true}".to_vec());
    dlq.complete(&dead[0].lock_token).await.expect("complete");
}

#[tokio::test]
async fn a_receiver_never_holds_more_unsettled_messages_than_its_credit() {
    let queue = declared_queue();
    let sending = broker(10);
    let sender = sending.sender(&queue).expect("sender");
    for i in 0..12 {
        sender
            .send(OutgoingMessage::json(format!("p-{i}"), "{}"))
            .await
            .expect("send");
    }
    let first = broker(5);
    let r1 = first.receiver(&queue).expect("receiver");
    let held = r1
        .receive(12, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(
        held.len(),
        5,
        "the credit bounds what the broker hands over"
    );
    // Nothing more arrives while those five stay unsettled...
    let more = r1
        .receive(12, Duration::from_millis(700))
        .await
        .expect("receive");
    assert!(more.is_empty(), "got {} past the credit", more.len());
    // ...so another consumer gets the other seven.
    let second = broker(10);
    let r2 = second.receiver(&queue).expect("receiver");
    let rest = receive_all(r2.as_ref(), 7).await;
    assert_eq!(rest.len(), 7);
    for m in held.iter() {
        r1.complete(&m.lock_token).await.expect("complete");
    }
    for m in rest.iter() {
        r2.complete(&m.lock_token).await.expect("complete");
    }
}

/// Kills the broker (kill -9) and starts it again: `.config/nextest.toml` runs the tests that
/// use RabbitMQ one at a time so this one disturbs no other.
#[tokio::test]
async fn after_the_broker_restarts_no_message_is_lost() {
    let queue = declared_queue();
    node("sync");
    let b = broker(10);
    let sender = b.sender(&queue).expect("sender");
    for id in ["before-1", "before-2"] {
        sender
            .send(OutgoingMessage::json(id, "{}"))
            .await
            .expect("send");
    }
    let r: Arc<dyn QueueReceiver> = b.receiver(&queue).expect("receiver");
    let held = receive_all(r.as_ref(), 2).await;
    assert_eq!(held.len(), 2);
    r.complete(&held[0].lock_token)
        .await
        .expect("complete before the restart");

    node("kill");
    node("start");

    // The lock on the message held across the restart is gone. Settling it reports a lost
    // lock once the link has noticed the drop; before that, the disposition goes into the
    // dead socket (AMQP settles first-mode dispositions without an answer). Either way the
    // broker never got it, and delivers the message again below: nothing is lost.
    let _ = r.complete(&held[1].lock_token).await;
    // Sending works again on a new connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match sender.send(OutgoingMessage::json("after", "{}")).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("send after restart: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("send after restart: {e}"),
        }
    }
    // The held message comes back, with the new one. AMQP is at-least-once: in our runs
    // RabbitMQ 3.10 also delivered again the message acknowledged a second before it
    // stopped, so that one may reappear; anything else may not.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains("before-2") && seen.contains("after")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {seen:?} came back"
        );
        for m in r
            .receive(3, Duration::from_millis(500))
            .await
            .unwrap_or_default()
        {
            r.complete(&m.lock_token)
                .await
                .expect("complete after the restart");
            seen.insert(m.message_id);
        }
    }
    seen.remove("before-1");
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["after", "before-2"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nothing_left(b.receiver(&queue).expect("receiver").as_ref()).await;
}
