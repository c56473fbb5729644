//! Every error answer as problem+json, whoever wrote it.
//!
//! Handlers answer errors with [`ApiError`], which is a problem already. axum's own
//! extractors (`Path`, `Query`, `Json`, the body limit) reject a request with a plain-text
//! answer; function authors use them as any axum guide does, so the host turns those
//! answers into problems here, with the same status, the text as the detail, and every
//! other header kept (a 405's `Allow`). An error answer with a body of another type (JSON a
//! handler chose to send) is left as it is.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::problem::{ApiError, PROBLEM_JSON};

/// More than any rejection's text; a longer body keeps no detail rather than be read whole.
const LONGEST_DETAIL: usize = 4 * 1024;

/// For `axum::middleware::map_response_with_state`, with the host's body limit as the state
/// (a 413 names it).
pub(super) async fn as_problem(State(body_limit): State<usize>, response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let detail = match to_bytes(body, LONGEST_DETAIL).await {
        Ok(text) => String::from_utf8_lossy(&text).trim().to_owned(),
        Err(_) => String::new(),
    };
    let problem = ApiError::from_status(status, detail, body_limit).into_response();
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(PROBLEM_JSON));
    parts.status = problem_parts.status;
    Response::from_parts(parts, Body::new(problem_body))
}
