//! JSON request bodies read leniently: 415 without a JSON content type, 413 over the limit,
//! 400 when the bytes are not JSON, all as problem+json.
//!
//! For bodies a plain `axum::Json<T>` cannot read as the contract asks: the reference's
//! clients send numbers and booleans as strings, and a 400 names every bad field, not the
//! first ([`crate::json::Validator`] reads the value). A body with neither need takes
//! `axum::Json`, whose rejections the host answers as problems too.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::problem::ApiError;

/// A request body parsed as JSON (read it with [`crate::json::Validator`]).
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    /// A problem; over the limit, axum's own 413, which the host answers as a problem
    /// naming the limit.
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !json {
            return Err(ApiError::UnsupportedMediaType.into_response());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                rejection.into_response()
            } else {
                ApiError::BadRequest(format!("cannot read the body: {rejection}")).into_response()
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("a JSON body is required".into()).into_response());
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}")).into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
