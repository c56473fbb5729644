//! JSON response bodies: a value serialised when answered ([`Json`]), or a document a store
//! keeps already encoded ([`EncodedJson`]).
//!
//! [`Json`] is like `axum::Json`, but serialised into a `Vec` sized for a typical document
//! instead of a growing `BytesMut` written through `io::Write` piece by piece: on the read
//! path that serialisation was the largest cost the host added to a request (callgrind,
//! docs/BENCHMARKS.md).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use crate::problem::ApiError;

/// Room for most documents the functions return, so serialising rarely reallocates.
const TYPICAL_DOCUMENT: usize = 512;

/// A value answered as `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(TYPICAL_DOCUMENT);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            // Only a value that cannot be JSON (a map with non-string keys) gets here: a bug.
            Err(e) => {
                ApiError::Internal(format!("cannot serialise the response: {e}")).into_response()
            }
        }
    }
}

/// A document already encoded as JSON, answered as `application/json` as it is.
///
/// For a read that serves what a store keeps encoded: serialising the delivery document on
/// each read was the largest single cost the host added to its GET, about a third of it
/// (callgrind, docs/BENCHMARKS.md). The store vouches that the bytes are the JSON the
/// route documents; nothing here parses them again.
#[derive(Debug, Clone, Default)]
pub struct EncodedJson(pub Bytes);

impl IntoResponse for EncodedJson {
    fn into_response(self) -> Response {
        // Built directly: axum's `(headers, body)` goes through its generic header parts
        // (about 250 instructions more a request, callgrind).
        let mut response = Response::new(axum::body::Body::from(self.0));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn a_value_is_answered_as_json() {
        let response = Json(serde_json::json!({"id": "a\"b", "n": 1.5})).into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"id":"a\"b","n":1.5}"#);
    }

    #[tokio::test]
    async fn an_encoded_document_is_answered_as_it_is() {
        let encoded = Bytes::from_static(br#"{"id":"a","n":1.50}"#);
        let response = EncodedJson(encoded.clone()).into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, encoded);
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_json_is_a_problem_not_a_panic() {
        let bad: HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let response = Json(bad).into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    }
}
