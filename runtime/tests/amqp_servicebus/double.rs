//! A frame-level stand-in for Azure Service Bus, for what RabbitMQ cannot check: the
//! claims-based security exchange on `$cbs`, the `$management` renew-lock request and
//! response, the annotations Service Bus puts on what it delivers, the dead-letter error of a
//! `rejected` settlement, and the batch message format.
//!
//! It speaks real AMQP 1.0 (fe2o3-amqp's acceptor, the library under `azure_core_amqp`) and
//! plays Service Bus's side as its AMQP guides describe it:
//! - `put-token` on `$cbs` (AMQP CBS draft; "AMQP 1.0 in Azure Service Bus", *Claims-based
//!   authorization*): the token is checked as a SAS for the audience and key it names, and
//!   answered with `status-code` 202, or 401 when it does not verify;
//! - an entity's links attach only after a token for `sb://<host>/<queue>` was put; before
//!   that the link is closed with `amqp:unauthorized-access`;
//! - messages are delivered with `x-opt-enqueued-time`, `x-opt-locked-until`,
//!   `x-opt-lock-token` and `x-opt-sequence-number`, and the header's `delivery-count`;
//! - `accepted` completes, `modified` and `released` put the message back with its delivery
//!   count raised, `rejected` with `com.microsoft:dead-letter` moves it to
//!   `<queue>/$deadletterqueue` with the error's reason and description as properties;
//! - `com.microsoft:renew-lock` on `<queue>/$management` answers `statusCode` 200 with
//!   `expirations`, or 410 for a lock it does not hold ("AMQP request/response operations");
//! - a transfer with message format `0x80013700` is a batch: each `data` section is one
//!   encoded message.
//!
//! Everything it sees is written to a journal the tests read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::{Receiver, Sender};
use fe2o3_amqp_types::definitions::{self, AmqpError, ErrorCondition, Fields, Role};
use fe2o3_amqp_types::messaging::message::__private::Deserializable;
use fe2o3_amqp_types::messaging::{
    AmqpValue, ApplicationProperties, Body, Header, Message, MessageAnnotations, MessageId,
    Outcome, Properties, TargetArchetype,
};
use fe2o3_amqp_types::primitives::{Array, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use hmac::{KeyInit, Mac};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The message format of a Service Bus batch (its AMQP guide, *Message batching*).
pub const BATCH_FORMAT: u32 = 0x8001_3700;

/// A Service Bus namespace on 127.0.0.1 with one SAS rule.
pub struct ServiceBusDouble {
    pub port: u16,
    state: Arc<State>,
    listener: JoinHandle<()>,
}

impl Drop for ServiceBusDouble {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

struct State {
    key_name: String,
    key: String,
    /// How long a lock lasts from delivery or renewal.
    lock_duration: Duration,
    journal: Mutex<Journal>,
    queues: Mutex<HashMap<String, Queue>>,
    arrived: Notify,
}

/// What the double saw, in order.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    pub put_tokens: Vec<PutToken>,
    pub attaches: Vec<Attached>,
    pub transfers: Vec<Transfer>,
    pub deliveries: Vec<Delivered>,
    pub settlements: Vec<Settlement>,
    pub renewals: Vec<Renewal>,
}

#[derive(Debug, Clone)]
pub struct PutToken {
    pub name: String,
    pub token_type: String,
    pub expiration: Option<Timestamp>,
    pub reply_to: Option<String>,
    /// The target address of the link the response went out on.
    pub answered_on: Option<String>,
    pub status: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The node: the source address of a link the client receives on, the target address of
    /// one it sends on.
    pub node: String,
    /// The client's role on the link.
    pub client_role: &'static str,
    /// The address at the link's other end (a response link's reply-to target).
    pub other_end: Option<String>,
    pub authorized: bool,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub node: String,
    pub message_format: u32,
    /// The messages it carried: one, or a batch's.
    pub messages: Vec<Message<Body<Value>>>,
}

#[derive(Debug, Clone)]
pub struct Delivered {
    pub queue: String,
    pub message_id: String,
    pub lock_token: uuid::Uuid,
}

#[derive(Debug, Clone)]
pub struct Settlement {
    pub queue: String,
    pub lock_token: uuid::Uuid,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Renewal {
    pub node: String,
    pub lock_tokens: Vec<uuid::Uuid>,
    pub reply_to: Option<String>,
    pub answered_on: Option<String>,
    pub status: i32,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Stored>,
    locked: HashMap<uuid::Uuid, (Stored, SystemTime)>,
    sequence: i64,
}

#[derive(Clone)]
struct Stored {
    message: Message<Body<Value>>,
    enqueued: SystemTime,
    sequence: i64,
    /// Earlier failed deliveries.
    delivery_count: u32,
}

/// A request/response node's response links in one session, by their target address.
type ResponseLinks = Arc<tokio::sync::Mutex<HashMap<String, Vec<(Option<String>, Sender)>>>>;

impl ServiceBusDouble {
    pub async fn start(key_name: &str, key: &str, lock_duration: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            key_name: key_name.to_owned(),
            key: key.to_owned(),
            lock_duration,
            journal: Mutex::new(Journal::default()),
            queues: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        });
        let listener = tokio::spawn(serve(listener, state.clone()));
        Self {
            port,
            state,
            listener,
        }
    }

    /// A connection string for this namespace, in the emulator form (plain AMQP).
    pub fn connection_string(&self, key: &str) -> String {
        format!(
            "Endpoint=sb://127.0.0.1:{}/;SharedAccessKeyName={};SharedAccessKey={key};UseDevelopmentEmulator=true",
            self.port, self.state.key_name
        )
    }

    pub fn journal(&self) -> Journal {
        self.state.journal.lock().expect("journal").clone()
    }

    /// Puts `message` on `queue` as if enqueued at `enqueued` after `failed` deliveries.
    pub fn enqueue(
        &self,
        queue: &str,
        message: Message<Body<Value>>,
        enqueued: SystemTime,
        failed: u32,
    ) {
        self.state.store(queue, message, enqueued, failed);
    }

    /// Forgets every lock held on `queue`, as when they expire: the messages go back.
    pub fn expire_locks(&self, queue: &str) {
        let mut queues = self.state.queues.lock().expect("queues");
        if let Some(q) = queues.get_mut(queue) {
            let expired: Vec<Stored> = q.locked.drain().map(|(_, (s, _))| s).collect();
            q.ready.extend(expired);
        }
    }

    /// The messages waiting on `queue` (`<queue>/$deadletterqueue` for its dead letters).
    pub fn waiting(&self, queue: &str) -> Vec<Message<Body<Value>>> {
        let queues = self.state.queues.lock().expect("queues");
        queues
            .get(queue)
            .map(|q| q.ready.iter().map(|s| s.message.clone()).collect())
            .unwrap_or_default()
    }
}

impl State {
    fn store(&self, queue: &str, message: Message<Body<Value>>, enqueued: SystemTime, failed: u32) {
        let mut queues = self.queues.lock().expect("queues");
        let q = queues.entry(queue.to_owned()).or_default();
        q.sequence += 1;
        let stored = Stored {
            message,
            enqueued,
            sequence: q.sequence,
            delivery_count: failed,
        };
        q.ready.push_back(stored);
        drop(queues);
        self.arrived.notify_waiters();
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().expect("journal")
    }

    fn authorized(&self, node: &str) -> bool {
        let entity = node.split('/').next().unwrap_or(node);
        let audience = format!("sb://127.0.0.1/{entity}");
        self.journal()
            .put_tokens
            .iter()
            .any(|t| t.status == 202 && t.name == audience)
    }

    /// Checks a `SharedAccessSignature sr=..&sig=..&se=..&skn=..` token for `audience`,
    /// independently of the code under test.
    fn verify_sas(&self, audience: &str, token: &str) -> bool {
        let Some(fields) = token.strip_prefix("SharedAccessSignature ") else {
            return false;
        };
        let field = |name: &str| {
            fields
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")[..]))
        };
        let (Some(sr), Some(sig), Some(se), Some(skn)) =
            (field("sr"), field("sig"), field("se"), field("skn"))
        else {
            return false;
        };
        let decoded_sr = percent_decode(sr);
        let expiry: u64 = se.parse().unwrap_or(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.as_bytes()).expect("hmac key");
        mac.update(format!("{sr}\n{se}").as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        decoded_sr == audience
            && skn == self.key_name
            && expiry > now
            && percent_decode(sig) == expected
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let acceptor = ConnectionAcceptor::builder()
        .container_id("servicebus-double")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    while let Ok((stream, _)) = listener.accept().await {
        let Ok(mut connection) = acceptor.accept(stream).await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let sessions = SessionAcceptor::new();
            while let Ok(session) = sessions.accept(&mut connection).await {
                tokio::spawn(serve_session(session, state.clone()));
            }
        });
    }
}

async fn serve_session(mut session: ListenerSessionHandle, state: Arc<State>) {
    let links = LinkAcceptor::new();
    let responses: ResponseLinks = Arc::default();
    while let Some(attach) = session.next_incoming_attach().await {
        let source = attach.source.as_ref().and_then(|s| s.address.clone());
        let target = attach.target.as_ref().and_then(|t| match t.as_ref() {
            TargetArchetype::Target(t) => t.address.clone(),
        });
        let (node, other_end, client_role) = match attach.role {
            Role::Sender => (target.clone().unwrap_or_default(), source, "sender"),
            Role::Receiver => (source.clone().unwrap_or_default(), target, "receiver"),
        };
        let authorized = node == "$cbs" || state.authorized(&node);
        state.journal().attaches.push(Attached {
            node: node.clone(),
            client_role,
            other_end: other_end.clone(),
            authorized,
        });
        let Ok(link) = links.accept_incoming_attach(attach, &mut session).await else {
            continue;
        };
        if !authorized {
            let refused = definitions::Error::new(
                ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
                Some(format!("no token was put for {node}")),
                None,
            );
            match link {
                LinkEndpoint::Sender(s) => drop(s.close_with_error(refused).await),
                LinkEndpoint::Receiver(r) => drop(r.close_with_error(refused).await),
            }
            continue;
        }
        let is_node = node == "$cbs" || node.ends_with("/$management");
        match link {
            // The client receives from a request/response node: a response link.
            LinkEndpoint::Sender(s) if is_node => {
                responses
                    .lock()
                    .await
                    .entry(node)
                    .or_default()
                    .push((other_end, s));
            }
            LinkEndpoint::Receiver(r) if is_node => {
                tokio::spawn(answer_requests(r, node, state.clone(), responses.clone()));
            }
            LinkEndpoint::Receiver(r) => {
                tokio::spawn(take_messages(r, node, state.clone()));
            }
            LinkEndpoint::Sender(s) => {
                tokio::spawn(deliver(s, node, state.clone()));
            }
        }
    }
}

/// Stores what the client sends to a queue: one message, or each of a batch's.
async fn take_messages(mut link: Receiver, queue: String, state: Arc<State>) {
    while let Ok(delivery) = link.recv::<Body<Value>>().await {
        let format = delivery.message_format().unwrap_or(0);
        let _ = link.accept(&delivery).await;
        let message = delivery.into_message();
        let messages = if format == BATCH_FORMAT {
            unbatch(&message)
        } else {
            vec![message]
        };
        state.journal().transfers.push(Transfer {
            node: queue.clone(),
            message_format: format,
            messages: messages.clone(),
        });
        for m in messages {
            state.store(&queue, m, SystemTime::now(), 0);
        }
    }
}

fn unbatch(envelope: &Message<Body<Value>>) -> Vec<Message<Body<Value>>> {
    let Body::Data(sections) = &envelope.body else {
        panic!("a batch carries data sections, got {:?}", envelope.body);
    };
    sections
        .iter()
        .map(|section| {
            serde_amqp::from_slice::<Deserializable<Message<Body<Value>>>>(&section.0)
                .expect("each data section of a batch is one encoded message")
                .0
        })
        .collect()
}

/// Delivers a queue's messages with Service Bus's annotations, and applies settlements.
async fn deliver(mut link: Sender, queue: String, state: Arc<State>) {
    loop {
        let next = loop {
            let arrived = state.arrived.notified();
            let taken = state
                .queues
                .lock()
                .expect("queues")
                .get_mut(&queue)
                .and_then(|q| q.ready.pop_front());
            match taken {
                Some(m) => break m,
                None => {
                    tokio::select! {
                        () = arrived => {}
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        };
        let lock_token = uuid::Uuid::new_v4();
        let locked_until = SystemTime::now() + state.lock_duration;
        let mut message = next.message.clone();
        message.header = Some(Header {
            delivery_count: next.delivery_count,
            ..message.header.unwrap_or_default()
        });
        message.message_annotations = Some(
            MessageAnnotations::builder()
                .insert(
                    Symbol::from("x-opt-enqueued-time"),
                    Value::Timestamp(timestamp(next.enqueued)),
                )
                .insert(
                    Symbol::from("x-opt-locked-until"),
                    Value::Timestamp(timestamp(locked_until)),
                )
                .insert(
                    Symbol::from("x-opt-lock-token"),
                    Value::Uuid(lock_token.into_bytes().into()),
                )
                .insert(
                    Symbol::from("x-opt-sequence-number"),
                    Value::Long(next.sequence),
                )
                .build(),
        );
        state
            .queues
            .lock()
            .expect("queues")
            .entry(queue.clone())
            .or_default()
            .locked
            .insert(lock_token, (next.clone(), locked_until));
        let message_id = match message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone())
        {
            Some(MessageId::String(s)) => s,
            other => format!("{other:?}"),
        };
        state.journal().deliveries.push(Delivered {
            queue: queue.clone(),
            message_id,
            lock_token,
        });
        let sendable = Sendable::builder().message(message).settled(false).build();
        let Ok(settled) = link.send_batchable(sendable).await else {
            put_back(&state, &queue, lock_token, false);
            return;
        };
        let state = state.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            match settled.await {
                Ok(outcome) => settle(&state, &queue, lock_token, outcome),
                // The link or connection dropped: the lock is released, delivered again.
                Err(_) => put_back(&state, &queue, lock_token, false),
            }
        });
    }
}

fn settle(state: &State, queue: &str, lock_token: uuid::Uuid, outcome: Outcome) {
    state.journal().settlements.push(Settlement {
        queue: queue.to_owned(),
        lock_token,
        outcome: outcome.clone(),
    });
    match outcome {
        Outcome::Accepted(_) => {
            take_lock(state, queue, lock_token);
        }
        Outcome::Modified(_) | Outcome::Released(_) => put_back(state, queue, lock_token, true),
        Outcome::Rejected(rejected) => {
            let Some(stored) = take_lock(state, queue, lock_token) else {
                return;
            };
            let mut message = stored.message;
            let dead_letter = rejected.error.as_ref().filter(|e| {
                e.condition == ErrorCondition::Custom(Symbol::from("com.microsoft:dead-letter"))
            });
            if let Some(info) = dead_letter.and_then(|e| e.info.as_ref()) {
                let props = message
                    .application_properties
                    .get_or_insert_with(ApplicationProperties::default);
                for (k, v) in info.iter() {
                    if let Value::String(s) = v {
                        props.0.insert(k.0.clone(), SimpleValue::String(s.clone()));
                    }
                }
            }
            state.store(
                &format!("{queue}/$deadletterqueue"),
                message,
                stored.enqueued,
                stored.delivery_count + 1,
            );
        }
    }
}

fn take_lock(state: &State, queue: &str, lock_token: uuid::Uuid) -> Option<Stored> {
    state
        .queues
        .lock()
        .expect("queues")
        .get_mut(queue)
        .and_then(|q| q.locked.remove(&lock_token))
        .map(|(s, _)| s)
}

fn put_back(state: &State, queue: &str, lock_token: uuid::Uuid, failed: bool) {
    if let Some(mut stored) = take_lock(state, queue, lock_token) {
        stored.delivery_count += u32::from(failed);
        let mut queues = state.queues.lock().expect("queues");
        queues
            .entry(queue.to_owned())
            .or_default()
            .ready
            .push_front(stored);
        drop(queues);
        state.arrived.notify_waiters();
    }
}

/// Answers `put-token` on `$cbs` and `com.microsoft:renew-lock` on `<queue>/$management`.
async fn answer_requests(
    mut link: Receiver,
    node: String,
    state: Arc<State>,
    responses: ResponseLinks,
) {
    while let Ok(delivery) = link.recv::<Body<Value>>().await {
        let _ = link.accept(&delivery).await;
        let request = delivery.into_message();
        let property = |name: &str| {
            request
                .application_properties
                .as_ref()
                .and_then(|p| p.0.get(name).cloned())
        };
        let text = |v: Option<SimpleValue>| match v {
            Some(SimpleValue::String(s)) => s,
            Some(SimpleValue::Symbol(s)) => s.0,
            _ => String::new(),
        };
        let operation = text(property("operation"));
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        let message_id = request
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        let (status_name, status, body) = match (node.as_str(), operation.as_str()) {
            ("$cbs", "put-token") => {
                let name = text(property("name"));
                let token = match &request.body {
                    Body::Value(v) => match &v.0 {
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                let status = if state.verify_sas(&name, &token) {
                    202
                } else {
                    401
                };
                let expiration = match property("expiration") {
                    Some(SimpleValue::Timestamp(t)) => Some(t),
                    _ => None,
                };
                state.journal().put_tokens.push(PutToken {
                    name,
                    token_type: text(property("type")),
                    expiration,
                    reply_to: reply_to.clone(),
                    answered_on: None,
                    status,
                });
                ("status-code", status, Value::Null)
            }
            (_, "com.microsoft:renew-lock") => {
                let tokens = lock_tokens(&request.body);
                let queue = node.trim_end_matches("/$management").to_owned();
                let until = SystemTime::now() + state.lock_duration;
                let mut expirations = Vec::new();
                {
                    let mut queues = state.queues.lock().expect("queues");
                    let q = queues.entry(queue).or_default();
                    for t in &tokens {
                        if let Some(lock) = q.locked.get_mut(t) {
                            lock.1 = until;
                            expirations.push(Value::Timestamp(timestamp(until)));
                        }
                    }
                }
                let status = if expirations.len() == tokens.len() && !tokens.is_empty() {
                    200
                } else {
                    410
                };
                state.journal().renewals.push(Renewal {
                    node: node.clone(),
                    lock_tokens: tokens,
                    reply_to: reply_to.clone(),
                    answered_on: None,
                    status,
                });
                let body = if status == 200 {
                    let mut map = OrderedMap::new();
                    map.insert(
                        Value::String("expirations".to_owned()),
                        Value::Array(Array::from(expirations)),
                    );
                    Value::Map(map)
                } else {
                    Value::Null
                };
                ("statusCode", status, body)
            }
            _ => ("statusCode", 501, Value::Null),
        };
        let response = Message::builder()
            .properties(Properties {
                correlation_id: message_id,
                to: reply_to.clone(),
                ..Properties::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert(status_name, SimpleValue::Int(status))
                    .build(),
            )
            .body(Body::from(AmqpValue(body)))
            .build();
        let answered_on = respond(&responses, &node, reply_to.as_deref(), response).await;
        let mut journal = state.journal();
        if node == "$cbs" {
            if let Some(t) = journal.put_tokens.last_mut() {
                t.answered_on = answered_on;
            }
        } else if let Some(r) = journal.renewals.last_mut() {
            r.answered_on = answered_on;
        }
    }
}

/// Sends `response` on the node's response link whose target is the request's `reply-to`,
/// else on its only response link (what a peer that pairs request and response links by
/// node does). Returns the target address of the link it used.
async fn respond(
    responses: &ResponseLinks,
    node: &str,
    reply_to: Option<&str>,
    response: Message<Body<Value>>,
) -> Option<String> {
    let mut links = responses.lock().await;
    let candidates = links.get_mut(node)?;
    let index = candidates
        .iter()
        .position(|(target, _)| target.as_deref() == reply_to && reply_to.is_some())
        .or(if candidates.len() == 1 { Some(0) } else { None })?;
    let (target, link) = &mut candidates[index];
    let sendable = Sendable::builder().message(response).settled(true).build();
    let _ = link.send_batchable(sendable).await;
    Some(target.clone().unwrap_or_default())
}

fn lock_tokens(body: &Body<Value>) -> Vec<uuid::Uuid> {
    let Body::Value(v) = body else {
        return Vec::new();
    };
    let Value::Map(map) = &v.0 else {
        return Vec::new();
    };
    match map.get(&Value::String("lock-tokens".to_owned())) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Uuid(u) => Some(uuid::Uuid::from_bytes(*u.as_ref())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let ms = t.duration_since(UNIX_EPOCH).expect("clock").as_millis();
    Timestamp::from_milliseconds(i64::try_from(ms).expect("ms fit"))
}

/// A message as a client would put it on a queue: one `data` section, a message id, and
/// string application properties.
pub fn message(id: &str, body: &[u8], properties: &[(&str, &str)]) -> Message<Body<Value>> {
    let mut props = ApplicationProperties::builder();
    for (k, v) in properties {
        props = props.insert(*k, SimpleValue::String((*v).to_owned()));
    }
    Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String(id.to_owned())),
            content_type: Some(Symbol::from("application/json")),
            ..Properties::default()
        })
        .application_properties(props.build())
        .data(serde_amqp::primitives::Binary::from(body.to_vec()))
        .build()
        .map_body(Body::from)
}

/// The field of the dead-letter `info` map a settlement carried.
pub fn dead_letter_info(outcome: &Outcome) -> Option<(String, Fields)> {
    match outcome {
        Outcome::Rejected(r) => r.error.as_ref().map(|e| {
            (
                condition_text(&e.condition),
                e.info.as_deref().cloned().unwrap_or_default(),
            )
        }),
        _ => None,
    }
}

fn condition_text(c: &ErrorCondition) -> String {
    match c {
        ErrorCondition::Custom(s) => s.0.clone(),
        other => format!("{other:?}"),
    }
}
