//! Reads what is left of a request body that a handler answered without reading (a 413 over
//! the limit, a 404, a refusal), instead of closing the connection on it. Closing a socket
//! with unread bytes makes the kernel send a reset, and a reset can destroy the answer
//! before the peer reads it: a proxy in front (the gateway, the interceptor, an ingress)
//! then sees a broken connection and answers 502/503 in place of the function's 413. This
//! is what web servers call a lingering close (NGINX's `lingering_close`); hyper has none,
//! so the body is drained here, bounded in bytes and time.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Most bytes read from an unwanted body before the connection is closed anyway.
pub const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest a connection is held to read an unwanted body.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// Wraps `req`'s body so that, dropped unread, it is drained in the background.
pub fn drain_unread_body(req: Request) -> Request {
    // A request with no body (most GETs) has nothing to drain: left as it is, unwrapped.
    if req.body().is_end_stream() {
        return req;
    }
    req.map(|body| Body::new(DrainOnDrop { inner: Some(body) }))
}

struct DrainOnDrop {
    /// `None` once the body has ended (nothing to drain) or was handed to the drain.
    inner: Option<Body>,
}

impl HttpBody for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.inner = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // Outside a runtime (never, when served) the body is simply dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

async fn drain(mut body: Body) {
    let read = async {
        let mut total = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            total += frame.data_ref().map_or(0, Bytes::len);
            if total > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, read).await;
}
