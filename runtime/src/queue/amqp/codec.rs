//! Between the runtime's messages and AMQP 1.0 messages, following the Service Bus AMQP
//! mapping: the body is one `data` section, `message-id` and `content-type` are properties,
//! application properties are strings, and Service Bus adds its facts as message
//! annotations (`x-opt-enqueued-time`, `x-opt-locked-until`, `x-opt-lock-token`).

use std::collections::BTreeMap;
use std::time::Duration;

use azure_core_amqp::message::{
    AmqpAnnotationKey, AmqpApplicationProperties, AmqpMessageBody, AmqpMessageHeader,
    AmqpMessageId, AmqpMessageProperties,
};
use azure_core_amqp::{
    AmqpDescribedError, AmqpErrorCondition, AmqpMessage, AmqpOrderedMap, AmqpSimpleValue,
    AmqpSymbol, AmqpTimestamp, AmqpValue,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::queue::OutgoingMessage;

pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub const LOCKED_UNTIL: &str = "x-opt-locked-until";
pub const LOCK_TOKEN: &str = "x-opt-lock-token";
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// The AMQP message for `m`: durable, one `data` section.
pub fn to_amqp(m: &OutgoingMessage) -> AmqpMessage {
    let mut properties = AmqpApplicationProperties::new();
    for (name, value) in &m.properties {
        properties.insert(name.clone(), AmqpSimpleValue::String(value.clone()));
    }
    AmqpMessage {
        body: AmqpMessageBody::Binary(vec![m.body.to_vec()]),
        header: Some(AmqpMessageHeader {
            durable: true,
            ..AmqpMessageHeader::default()
        }),
        application_properties: Some(properties),
        properties: Some(AmqpMessageProperties {
            message_id: Some(AmqpMessageId::String(m.message_id.clone())),
            content_type: Some(AmqpSymbol::from(m.content_type.as_str())),
            ..AmqpMessageProperties::default()
        }),
        ..AmqpMessage::default()
    }
}

/// The message format of a Service Bus batch: the payload's `data` sections are each one
/// encoded message (Service Bus AMQP guide, "Message batching"; AMQP 1.0 §2.7.5 reserves
/// formats with a vendor prefix, 0x80013700 is Microsoft's).
pub const BATCH_FORMAT: u32 = 0x8001_3700;

/// What a `data` section adds to the message it wraps: descriptor and vbin32 length.
const SECTION_OVERHEAD: usize = 8;
/// The envelope's own header and properties (its message id), generously.
const ENVELOPE_OVERHEAD: usize = 256;

/// Packs `messages` into as few batch envelopes as keep each under `max_bytes`, in order.
/// Each envelope carries its first message's id, so duplicate detection covers a resend of
/// the envelope. A message too big to share an envelope goes in one of its own.
pub fn batches(
    messages: &[OutgoingMessage],
    max_bytes: usize,
) -> Result<Vec<AmqpMessage>, azure_core_amqp::AmqpError> {
    let mut envelopes = Vec::new();
    let mut sections: Vec<Vec<u8>> = Vec::new();
    let mut first_id = String::new();
    let mut size = ENVELOPE_OVERHEAD;
    for m in messages {
        let encoded = AmqpMessage::serialize(&to_amqp(m))?;
        let adds = encoded.len() + SECTION_OVERHEAD;
        if !sections.is_empty() && size + adds > max_bytes {
            envelopes.push(envelope(&first_id, std::mem::take(&mut sections)));
            size = ENVELOPE_OVERHEAD;
        }
        if sections.is_empty() {
            first_id.clone_from(&m.message_id);
        }
        size += adds;
        sections.push(encoded);
    }
    if !sections.is_empty() {
        envelopes.push(envelope(&first_id, sections));
    }
    Ok(envelopes)
}

fn envelope(message_id: &str, sections: Vec<Vec<u8>>) -> AmqpMessage {
    AmqpMessage {
        body: AmqpMessageBody::Binary(sections),
        header: Some(AmqpMessageHeader {
            durable: true,
            ..AmqpMessageHeader::default()
        }),
        properties: Some(AmqpMessageProperties {
            message_id: Some(AmqpMessageId::String(message_id.to_owned())),
            ..AmqpMessageProperties::default()
        }),
        ..AmqpMessage::default()
    }
}

/// The parts of a received message the runtime keeps. Apart from [`crate::queue::ReceivedMessage`]
/// so decoding stays free of the clock and of lock bookkeeping (the receiver adds both).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub message_id: String,
    pub content_type: String,
    pub body: Bytes,
    pub properties: BTreeMap<String, String>,
    /// 1 on first delivery (AMQP counts failed earlier deliveries from 0).
    pub delivery_count: u32,
    /// The header's first-acquirer flag: RabbitMQ 3.10 leaves the count at 0 and says only
    /// this (false on a redelivery).
    pub first_acquirer: bool,
    pub enqueued_at: DateTime<Utc>,
    /// How long the broker says the lock lasts from now, when it says.
    pub locked_for: Option<Duration>,
    /// The Service Bus lock token, when the broker sends one.
    pub lock_token: Option<Uuid>,
}

/// Reads `m`; `now` fills in what a generic broker does not annotate.
pub fn from_amqp(m: &AmqpMessage, delivery_tag: &[u8], now: DateTime<Utc>) -> Decoded {
    let props = m.properties.as_ref();
    let message_id = props
        .and_then(|p| p.message_id.as_ref())
        .map(message_id_text)
        .unwrap_or_default();
    let content_type = props
        .and_then(|p| p.content_type.as_ref())
        .map(|s| s.0.clone())
        .unwrap_or_default();
    let body = match &m.body {
        AmqpMessageBody::Binary(sections) => Bytes::from(sections.concat()),
        AmqpMessageBody::Value(AmqpValue::String(s)) => Bytes::from(s.clone().into_bytes()),
        AmqpMessageBody::Value(AmqpValue::Binary(b)) => Bytes::from(b.clone()),
        _ => Bytes::new(),
    };
    let properties = m
        .application_properties
        .as_ref()
        .map(|p| {
            p.0.iter()
                .filter_map(|(k, v)| simple_text(v).map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let delivery_count = m.header.as_ref().map_or(0, |h| h.delivery_count) + 1;
    let first_acquirer = m.header.as_ref().is_some_and(|h| h.first_acquirer);
    let annotation = |name: &str| {
        m.message_annotations.as_ref().and_then(|a| {
            a.0.iter()
                .find(|(k, _)| matches!(k, AmqpAnnotationKey::Symbol(s) if s.0 == name))
                .map(|(_, v)| v)
        })
    };
    let time = |v: Option<&AmqpValue>| match v {
        Some(AmqpValue::TimeStamp(t)) => t.0.map(DateTime::<Utc>::from),
        _ => None,
    };
    let enqueued_at = time(annotation(ENQUEUED_TIME)).unwrap_or(now);
    let locked_for = time(annotation(LOCKED_UNTIL))
        .map(|until| (until - now).to_std().unwrap_or(Duration::ZERO));
    let lock_token = match annotation(LOCK_TOKEN) {
        Some(AmqpValue::Uuid(u)) => Some(*u),
        // Service Bus makes the delivery tag from a .NET Guid, whose byte order is
        // little-endian in its first three fields.
        _ => <[u8; 16]>::try_from(delivery_tag)
            .ok()
            .map(Uuid::from_bytes_le),
    };
    Decoded {
        message_id,
        content_type,
        body,
        properties,
        delivery_count,
        first_acquirer,
        enqueued_at,
        locked_for,
        lock_token,
    }
}

fn message_id_text(id: &AmqpMessageId) -> String {
    match id {
        AmqpMessageId::String(s) => s.clone(),
        AmqpMessageId::Uuid(u) => u.to_string(),
        AmqpMessageId::Ulong(n) => n.to_string(),
        AmqpMessageId::Binary(b) => hex(b),
    }
}

/// Lower-case hex of `bytes` (binary message ids, delivery tags), in one allocation.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn simple_text(v: &AmqpSimpleValue) -> Option<String> {
    Some(match v {
        AmqpSimpleValue::String(s) => s.clone(),
        AmqpSimpleValue::Symbol(s) => s.0.clone(),
        AmqpSimpleValue::Boolean(b) => b.to_string(),
        AmqpSimpleValue::Int(n) => n.to_string(),
        AmqpSimpleValue::Long(n) => n.to_string(),
        AmqpSimpleValue::UInt(n) => n.to_string(),
        AmqpSimpleValue::ULong(n) => n.to_string(),
        AmqpSimpleValue::Uuid(u) => u.to_string(),
        _ => return None,
    })
}

/// The `rejected` error that makes Service Bus dead-letter a message with a reason and a
/// description (its AMQP protocol guide, "Settling"). Generic brokers dead-letter a
/// rejected message by their own configuration and ignore the error's info.
pub fn dead_letter_error(reason: &str, description: &str) -> AmqpDescribedError {
    let mut info = AmqpOrderedMap::new();
    info.insert(
        AmqpSymbol::from(DEAD_LETTER_REASON),
        AmqpValue::String(reason.to_owned()),
    );
    info.insert(
        AmqpSymbol::from(DEAD_LETTER_DESCRIPTION),
        AmqpValue::String(description.to_owned()),
    );
    AmqpDescribedError::new(
        AmqpErrorCondition::DeadLetter,
        Some(description.to_owned()),
        info,
    )
}

pub const RENEW_LOCK: &str = "com.microsoft:renew-lock";
/// The application property of a Service Bus management request that names its operation
/// (the management protocol's own key).
pub const MANAGEMENT_OPERATION: &str = "operation";

/// The `$management` request that renews the locks of `tokens` (Service Bus AMQP
/// request/response operations, "Message renew lock"): `operation` in the application
/// properties, and an `amqp-value` map whose `lock-tokens` is an array of uuid.
pub fn renew_lock_request(request_id: Uuid, reply_to: &str, tokens: &[Uuid]) -> AmqpMessage {
    let mut properties = AmqpApplicationProperties::new();
    properties.insert(
        MANAGEMENT_OPERATION.to_owned(),
        AmqpSimpleValue::String(RENEW_LOCK.to_owned()),
    );
    let mut body = AmqpOrderedMap::new();
    body.insert(
        AmqpValue::String("lock-tokens".to_owned()),
        AmqpValue::Array(tokens.iter().copied().map(AmqpValue::Uuid).collect()),
    );
    AmqpMessage {
        body: AmqpMessageBody::Value(AmqpValue::Map(body)),
        application_properties: Some(properties),
        properties: Some(AmqpMessageProperties {
            message_id: Some(AmqpMessageId::Uuid(request_id)),
            reply_to: Some(reply_to.to_owned()),
            ..AmqpMessageProperties::default()
        }),
        ..AmqpMessage::default()
    }
}

/// What a `$management` response says.
#[derive(Debug, Clone, PartialEq)]
pub enum ManagementReply {
    /// Status 200 with the new lock expiries, one per token in request order.
    Renewed(Vec<DateTime<Utc>>),
    /// Any other status (410 Gone: the lock was lost).
    Failed { status: i32, description: String },
}

/// The request id a response answers (its `correlation-id`).
pub fn correlation_id(m: &AmqpMessage) -> Option<String> {
    m.properties
        .as_ref()
        .and_then(|p| p.correlation_id.as_ref())
        .map(message_id_text)
}

/// Reads a renew-lock response: `statusCode` and `statusDescription` application
/// properties, and an `amqp-value` map whose `expirations` is an array of timestamps.
pub fn renew_lock_reply(m: &AmqpMessage) -> ManagementReply {
    let prop = |name: &str| {
        m.application_properties
            .as_ref()
            .and_then(|p| p.0.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v))
    };
    let status = match prop("statusCode") {
        Some(AmqpSimpleValue::Int(n)) => *n,
        Some(AmqpSimpleValue::Long(n)) => i32::try_from(*n).unwrap_or(-1),
        Some(AmqpSimpleValue::UInt(n)) => i32::try_from(*n).unwrap_or(-1),
        _ => -1,
    };
    let description = prop("statusDescription")
        .and_then(simple_text)
        .unwrap_or_default();
    if status != 200 {
        return ManagementReply::Failed {
            status,
            description,
        };
    }
    let expirations = match &m.body {
        AmqpMessageBody::Value(AmqpValue::Map(map)) => map
            .iter()
            .find(|(k, _)| {
                matches!(k, AmqpValue::String(s) if s == "expirations")
                    || matches!(k, AmqpValue::Symbol(s) if s.0 == "expirations")
            })
            .map(|(_, v)| v.clone()),
        _ => None,
    };
    match expirations {
        Some(AmqpValue::Array(items) | AmqpValue::List(azure_core_amqp::AmqpList(items))) => {
            ManagementReply::Renewed(
                items
                    .iter()
                    .filter_map(|v| match v {
                        AmqpValue::TimeStamp(AmqpTimestamp(Some(t))) => {
                            Some(DateTime::<Utc>::from(*t))
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }
        _ => ManagementReply::Failed {
            status,
            description: "the response has no expirations".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core_amqp::message::AmqpAnnotations;
    use std::time::SystemTime;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    #[test]
    fn an_outgoing_message_maps_to_one_data_section_with_string_properties() {
        let m = OutgoingMessage::json("req-1", &b"{\"a\":1}"[..])
            .with_property("kind", "delivery")
            .with_property("traceparent", "00-abc-def-01");
        let a = to_amqp(&m);
        assert_eq!(a.body, AmqpMessageBody::Binary(vec![b"{\"a\":1}".to_vec()]));
        let p = a.properties.as_ref().expect("properties");
        assert_eq!(p.message_id, Some(AmqpMessageId::String("req-1".into())));
        assert_eq!(p.content_type, Some(AmqpSymbol::from("application/json")));
        assert!(a.header.as_ref().is_some_and(|h| h.durable));
        let back = from_amqp(&a, &[1], at(1_800_000_000));
        assert_eq!(back.message_id, "req-1");
        assert_eq!(back.body, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(back.properties, m.properties);
        assert_eq!(back.delivery_count, 1);
    }

    #[test]
    fn a_batch_packs_encoded_messages_as_data_sections_under_the_size_limit() {
        let messages: Vec<OutgoingMessage> = (0..4)
            .map(|i| OutgoingMessage::json(format!("m-{i}"), "x".repeat(100)))
            .collect();
        let one = batches(&messages, 64 * 1024).expect("encode");
        assert_eq!(one.len(), 1);
        let AmqpMessageBody::Binary(sections) = &one[0].body else {
            panic!("data sections");
        };
        assert_eq!(sections.len(), 4);
        assert_eq!(
            sections[2],
            AmqpMessage::serialize(&to_amqp(&messages[2])).expect("encode"),
            "each section is one whole encoded message"
        );
        let id = one[0]
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        assert_eq!(id, Some(AmqpMessageId::String("m-0".into())));

        let encoded = sections[0].len() + SECTION_OVERHEAD;
        let split = batches(&messages, ENVELOPE_OVERHEAD + 2 * encoded).expect("encode");
        assert_eq!(split.len(), 2, "two per envelope");
        let ids: Vec<_> = split
            .iter()
            .map(|e| e.properties.as_ref().and_then(|p| p.message_id.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                Some(AmqpMessageId::String("m-0".into())),
                Some(AmqpMessageId::String("m-2".into()))
            ]
        );
        assert_eq!(
            batches(&messages, 1).expect("encode").len(),
            4,
            "alone when nothing fits"
        );
        assert!(batches(&[], 1024).expect("encode").is_empty());
    }

    #[test]
    fn service_bus_annotations_give_enqueued_time_lock_expiry_and_lock_token() {
        let now = at(1_800_000_000);
        let token = Uuid::parse_str("d2f6b8b4-3b1c-4c5e-9a57-7f0e3a9c1b22").expect("uuid");
        let mut a = to_amqp(&OutgoingMessage::json("m", &b"{}"[..]));
        let ts = |s: i64| {
            AmqpValue::TimeStamp(AmqpTimestamp(Some(
                SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64),
            )))
        };
        let mut ann = AmqpAnnotations::new();
        ann.insert(AmqpSymbol::from(ENQUEUED_TIME), ts(1_799_999_990));
        ann.insert(AmqpSymbol::from(LOCKED_UNTIL), ts(1_800_000_060));
        ann.insert(AmqpSymbol::from(LOCK_TOKEN), AmqpValue::Uuid(token));
        a.message_annotations = Some(ann);
        a.header = Some(AmqpMessageHeader {
            delivery_count: 2,
            ..AmqpMessageHeader::default()
        });
        let d = from_amqp(&a, &[0; 16], now);
        assert_eq!(d.enqueued_at, at(1_799_999_990));
        assert_eq!(d.locked_for, Some(Duration::from_secs(60)));
        assert_eq!(d.lock_token, Some(token));
        assert_eq!(d.delivery_count, 3, "two failed deliveries before this one");
    }

    #[test]
    fn without_an_annotation_the_lock_token_is_the_delivery_tag_read_as_a_dotnet_guid() {
        let token = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").expect("uuid");
        let tag = token.to_bytes_le();
        let a = to_amqp(&OutgoingMessage::json("m", &b"{}"[..]));
        assert_eq!(from_amqp(&a, &tag, at(0)).lock_token, Some(token));
        assert_eq!(from_amqp(&a, &[7, 7], at(0)).lock_token, None);
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn dead_letter_carries_the_service_bus_condition_reason_and_description() {
        let e = dead_letter_error("MaxDeliveryCountExceeded", "tried 10 times");
        assert_eq!(e.condition, AmqpErrorCondition::DeadLetter);
        assert_eq!(e.condition.to_string(), "com.microsoft:dead-letter");
        assert_eq!(
            e.info.get(&AmqpSymbol::from(DEAD_LETTER_REASON)),
            Some(&AmqpValue::String("MaxDeliveryCountExceeded".into()))
        );
        assert_eq!(
            e.info.get(&AmqpSymbol::from(DEAD_LETTER_DESCRIPTION)),
            Some(&AmqpValue::String("tried 10 times".into()))
        );
    }

    #[test]
    fn a_renew_lock_request_has_the_documented_shape() {
        let id = Uuid::new_v4();
        let tokens = [Uuid::new_v4(), Uuid::new_v4()];
        let m = renew_lock_request(id, "renew-reply-1", &tokens);
        let ap = m.application_properties.as_ref().expect("properties");
        assert_eq!(
            ap.0.get(MANAGEMENT_OPERATION),
            Some(&AmqpSimpleValue::String("com.microsoft:renew-lock".into()))
        );
        let p = m.properties.as_ref().expect("properties");
        assert_eq!(p.reply_to.as_deref(), Some("renew-reply-1"));
        assert_eq!(p.message_id, Some(AmqpMessageId::Uuid(id)));
        let AmqpMessageBody::Value(AmqpValue::Map(body)) = &m.body else {
            panic!("amqp-value map body");
        };
        assert_eq!(
            body.get(&AmqpValue::String("lock-tokens".into())),
            Some(&AmqpValue::Array(
                tokens.iter().copied().map(AmqpValue::Uuid).collect()
            ))
        );
    }

    #[test]
    fn renew_lock_replies_give_expiries_or_the_status() {
        let mut props = AmqpApplicationProperties::new();
        props.insert("statusCode".into(), AmqpSimpleValue::Int(200));
        let mut body = AmqpOrderedMap::new();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_060);
        body.insert(
            AmqpValue::String("expirations".into()),
            AmqpValue::Array(vec![AmqpValue::TimeStamp(AmqpTimestamp(Some(t)))]),
        );
        let ok = AmqpMessage {
            body: AmqpMessageBody::Value(AmqpValue::Map(body)),
            application_properties: Some(props),
            ..AmqpMessage::default()
        };
        assert_eq!(
            renew_lock_reply(&ok),
            ManagementReply::Renewed(vec![at(1_800_000_060)])
        );
        let mut props = AmqpApplicationProperties::new();
        props.insert("statusCode".into(), AmqpSimpleValue::Int(410));
        props.insert(
            "statusDescription".into(),
            AmqpSimpleValue::String("lock lost".into()),
        );
        let gone = AmqpMessage {
            application_properties: Some(props),
            ..AmqpMessage::default()
        };
        assert_eq!(
            renew_lock_reply(&gone),
            ManagementReply::Failed {
                status: 410,
                description: "lock lost".into()
            }
        );
    }
}
