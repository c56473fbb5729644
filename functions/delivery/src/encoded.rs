//! The delivery document kept encoded, as `GET /api/deliveries/{id}` answers it.
//!
//! Serialising the document was the largest cost the function added to that read, the
//! busiest request it serves (callgrind, docs/BENCHMARKS.md). So the stores keep the JSON:
//! the memory store beside the document, and Redis as the stored value itself, which is the
//! document's JSON with `createdAt` appended as its last member. A read cuts that member off
//! instead of decoding the value and encoding the document again.

use axum::body::Bytes;
use runtime::store::StoreError;

use crate::model::StoredDelivery;
use contracts::requests::DeliveryDocument;

/// The member a stored value ends with, up to its value's opening quote.
const CREATED_AT_MEMBER: &str = ",\"createdAt\":\"";

/// The document as the API answers it.
pub fn document_json(document: &DeliveryDocument) -> Result<Bytes, StoreError> {
    serde_json::to_vec(document)
        .map(Bytes::from)
        .map_err(|e| StoreError::rejected(e.to_string()))
}

/// The value Redis stores: the document's JSON, then `createdAt` as its last member. The
/// same text as serialising the [`StoredDelivery`] (its document is flattened first), but
/// written so, not left to the serializer's field order, because reads depend on it.
pub fn stored_json(delivery: &StoredDelivery) -> Result<String, StoreError> {
    let rejected = |e: serde_json::Error| StoreError::rejected(e.to_string());
    let mut text = serde_json::to_string(&delivery.document).map_err(rejected)?;
    let created_at = serde_json::to_string(&delivery.created_at).map_err(rejected)?;
    if text.pop() != Some('}') {
        return Err(StoreError::rejected(
            "a delivery document must be a JSON object",
        ));
    }
    if text != "{" {
        text.push(',');
    }
    text.push_str("\"createdAt\":");
    text.push_str(&created_at);
    text.push('}');
    Ok(text)
}

/// The document's JSON from a value Redis stored under `key`: [`stored_json`]'s text with
/// its last member cut off. A value of another shape (written by hand, say) is decoded and
/// the document encoded again, so it is answered all the same; one that does not decode is
/// corrupt.
pub fn document_of_stored(key: &str, mut raw: String) -> Result<Bytes, StoreError> {
    if let Some(at) = raw.rfind(CREATED_AT_MEMBER) {
        // The member is the object's last, and its value a string with nothing escaped in
        // it (a date-time): then nothing before it can be a part of that member's value, and
        // a quote preceded by `,` cannot be inside a string of the document (it would be
        // escaped), so what precedes it is the document's members, whole.
        let value = &raw[at + CREATED_AT_MEMBER.len()..];
        let is_last_plain_string = value
            .strip_suffix("\"}")
            .is_some_and(|v| !v.contains(['"', '\\']));
        if is_last_plain_string {
            raw.truncate(at);
            raw.push('}');
            return Ok(Bytes::from(raw.into_bytes()));
        }
    }
    let stored: StoredDelivery =
        serde_json::from_str(&raw).map_err(|e| StoreError::corrupt(format!("{key}: {e}")))?;
    document_json(&stored.document)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::DateTime;

    use super::*;

    fn delivery(fixture: &str, created_at: &str) -> StoredDelivery {
        StoredDelivery {
            document: serde_json::from_str(fixture).unwrap(),
            created_at: DateTime::parse_from_rfc3339(created_at).unwrap(),
        }
    }

    const FULL: &str = include_str!("../tests/fixtures/delivery.json");
    /// Only what is required, with strings that need escaping, a nested `createdAt` text
    /// and a member of that name inside a string.
    const BARE: &str = r#"{"id":"d\"2,\"createdAt\":\"x\"}","owner":{"userId":"u\\1","accountId":"a\n"},
        "pickup":{"latitude":1.5,"longitude":-2.25},"dropoff":{"latitude":0,"longitude":0},
        "confirmationRequired":"None"}"#;

    #[test]
    fn the_stored_value_is_the_stored_delivery_serialised() {
        for (fixture, created_at) in [
            (FULL, "2026-11-21T09:59:59.123456789Z"),
            (BARE, "2026-01-02T03:04:05+05:30"),
        ] {
            let delivery = delivery(fixture, created_at);
            let stored = stored_json(&delivery).unwrap();
            assert_eq!(stored, serde_json::to_string(&delivery).unwrap());
            let back: StoredDelivery = serde_json::from_str(&stored).unwrap();
            assert_eq!(back, delivery);
        }
    }

    #[test]
    fn a_stored_value_gives_the_document_as_the_api_answers_it() {
        for (fixture, created_at) in [
            (FULL, "2026-11-21T09:59:59Z"),
            (BARE, "2026-01-02T03:04:05.5-08:00"),
        ] {
            let delivery = delivery(fixture, created_at);
            let stored = stored_json(&delivery).unwrap();
            let document = document_of_stored("k", stored).unwrap();
            assert_eq!(document, document_json(&delivery.document).unwrap());
        }
    }

    #[test]
    fn a_value_of_another_shape_is_decoded_and_one_that_does_not_decode_is_corrupt() {
        let delivery = delivery(FULL, "2026-11-21T09:59:59Z");
        let expected = document_json(&delivery.document).unwrap();
        // Members in name order, spaced out: as a person or another tool might write it.
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(FULL).unwrap();
        value.insert("createdAt".into(), "2026-11-21T09:59:59Z".into());
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert!(!pretty.ends_with("\"}"));
        assert_eq!(document_of_stored("k", pretty).unwrap(), expected);

        let error = document_of_stored("delivery:{d1}", "{\"id\":".into()).unwrap_err();
        assert!(error.to_string().contains("delivery:{d1}"), "{error}");
    }
}
