//! HTTP errors as `application/problem+json` (RFC 9457), classified in one place.
//!
//! Handlers return [`ApiError`]; store and queue errors convert into it here, so the mapping
//! from "what went wrong" to a status code lives in one file. 4xx bodies say what is wrong;
//! 5xx bodies hide internals, and the cause is logged once, here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::queue::QueueError;
use crate::store::StoreError;

use crate::contract::PRODUCT;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's JSON name, dotted for nested fields (`packageInfo.size`).
    pub name: String,
    /// What is wrong with it, e.g. "is required".
    pub reason: String,
}

impl FieldError {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:fabrikam:problem:validation",
    "title": "The request has invalid fields",
    "status": 400,
    "detail": "invalid: ownerId",
    "errors": [{"name": "ownerId", "reason": "is required"}]
}))]
pub struct Problem {
    /// A URN naming the kind of problem (`urn:fabrikam:problem:...`), or `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Everything an HTTP handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid fields: {0:?}")]
    Validation(Vec<FieldError>),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The resource existed and was ended for good (a cancelled delivery).
    #[error("gone: {0}")]
    Gone(String),
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("throttled")]
    TooManyRequests { retry_after: Duration },
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after: Duration,
    },
    /// A gateway waited for an upstream that did not become ready in time (the
    /// interceptor's hold at zero replicas).
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// An error answer of a status no other variant names, made by a library (see
    /// [`ApiError::from_status`]).
    #[error("{status}: {detail}")]
    Other { status: StatusCode, detail: String },
}

impl ApiError {
    pub fn field(name: &str, reason: &str) -> Self {
        Self::Validation(vec![FieldError::new(name, reason)])
    }

    /// An error answer made as plain text (an axum extractor's rejection: `detail` is its
    /// text) as the error of the same status. `body_limit` is the host's, for a 413.
    pub fn from_status(status: StatusCode, detail: String, body_limit: usize) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest(detail),
            StatusCode::NOT_FOUND => Self::NotFound(detail),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit: body_limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(detail),
            StatusCode::INTERNAL_SERVER_ERROR => Self::Internal(detail),
            status => Self::Other { status, detail },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Other { status, .. } => *status,
        }
    }

    fn problem(&self) -> Problem {
        let (kind, title): (&'static str, &'static str) = match self {
            Self::Validation(_) => ("validation", "The request has invalid fields"),
            Self::BadRequest(_) => ("bad-request", "The request is malformed"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::Gone(_) => ("gone", "Gone"),
            Self::Unprocessable(_) => ("unprocessable", "The request cannot be processed"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "The body is too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::TooManyRequests { .. } => ("throttled", "Too many requests"),
            Self::Unavailable { .. } => ("unavailable", "Temporarily unavailable"),
            Self::GatewayTimeout(_) => (
                "gateway-timeout",
                "The function did not become ready in time",
            ),
            Self::Internal(_) => ("internal", "Internal error"),
            // RFC 9457 §4.2.1: a problem with no more meaning than its status.
            Self::Other { status, .. } => {
                ("about:blank", status.canonical_reason().unwrap_or("Error"))
            }
        };
        let detail = match self {
            Self::Validation(errors) => Some(format!(
                "invalid: {}",
                errors
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::BadRequest(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Gone(d)
            | Self::Unprocessable(d)
            | Self::GatewayTimeout(d) => Some(d.clone()),
            Self::PayloadTooLarge { limit } => {
                Some(format!("the body must not exceed {limit} bytes"))
            }
            Self::UnsupportedMediaType => {
                Some("the body must be JSON (Content-Type: application/json)".into())
            }
            Self::Unavailable { detail, .. } => Some(detail.clone()),
            // A server error's text stays in the log, as `Internal`'s does.
            Self::Other { status, detail } if !status.is_server_error() && !detail.is_empty() => {
                Some(detail.clone())
            }
            Self::MethodNotAllowed
            | Self::TooManyRequests { .. }
            | Self::Internal(_)
            | Self::Other { .. } => None,
        };
        let errors = match self {
            Self::Validation(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            kind: if kind.is_empty() {
                "about:blank".to_owned()
            } else {
                format!("urn:{PRODUCT}:problem:{kind}")
            },
            title,
            status: self.status().as_u16(),
            detail,
            errors,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after } | Self::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // Logged once, here; the client sees no internals.
            Self::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            Self::Other { status, detail } if status.is_server_error() => {
                tracing::error!(error = %detail, status = status.as_u16(), "request failed");
            }
            _ => {}
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled { retry_after } => Self::TooManyRequests { retry_after },
            StoreError::Unavailable { detail, .. } => Self::Unavailable {
                detail: format!("the store is unavailable: {detail}"),
                retry_after: Duration::from_secs(2),
            },
            StoreError::Conflict { detail, .. } => Self::Conflict(detail),
            StoreError::Corrupt { detail, .. } => {
                Self::Internal(format!("stored data is unreadable: {detail}"))
            }
            StoreError::Rejected { detail, .. } => {
                Self::Internal(format!("the store rejected the operation: {detail}"))
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Unavailable { detail, .. } => Self::Unavailable {
                detail: format!("the queue is unreachable: {detail}"),
                retry_after: Duration::from_secs(5),
            },
            QueueError::MessageTooLarge { size, limit } => Self::PayloadTooLarge {
                limit: limit.min(size),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Response) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn validation_names_every_field() {
        let r = ApiError::Validation(vec![
            FieldError::new("ownerId", "is required"),
            FieldError::new("packageInfo.size", "must be one of Small, Medium, Large"),
        ])
        .into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_of(r).await;
        assert_eq!(body["errors"][0]["name"], "ownerId");
        assert_eq!(body["errors"][1]["name"], "packageInfo.size");
        assert_eq!(body["status"], 400);
    }

    #[tokio::test]
    async fn unavailable_queue_says_when_to_retry_and_hides_nothing_secret() {
        let r = ApiError::from(QueueError::unavailable("connection refused")).into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let r = ApiError::Internal("password=hunter2 at db".into()).into_response();
        assert_eq!(r.status(), 500);
        let body = body_of(r).await;
        assert!(!body.to_string().contains("hunter2"));
    }
}
