//! The host's router: hands a request to the handlers of the route its path matched.
//!
//! The observation ([`super::observe`]) matches every request's path against the route
//! templates anyway, for its span and metrics, and records the match ([`MatchedRoute`]);
//! routing on that match spares a second matcher (axum's `Router`) and its copy of the path
//! parameters (callgrind: about 2,000 instructions a request; docs/BENCHMARKS.md). Handlers
//! read the parameters with [`super::Path`]. Each route's methods are still an axum
//! `MethodRouter`, so handlers, extractors, `HEAD` for `GET` and the `Allow` header of a
//! 405 are axum's.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use http::header::{ALLOW, CONTENT_TYPE};
use pin_project_lite::pin_project;
use tower::Service;

use super::path::MatchedRoute;
use crate::problem::ApiError;
use crate::sync::lock;

/// Routes each request to the service at its matched route's index; a request no route
/// matched is a 404 problem.
#[derive(Debug)]
pub(super) struct Dispatch<R> {
    /// One per route, at its template's index in [`super::PathTemplates`].
    ///
    /// Behind a lock because `Service::call` takes `&mut self`, though a method router does
    /// not change when called (axum's own router calls it through `&self`, which it keeps
    /// private). The server clones the whole service for every request, and cloning a
    /// method router copies each of its handlers' boxes: the lock, held only while the
    /// handler's future is made, costs a tenth of that (callgrind).
    routes: Arc<[Mutex<R>]>,
}

impl<R> Dispatch<R> {
    pub(super) fn new(routes: Vec<R>) -> Self {
        Self {
            routes: routes.into_iter().map(Mutex::new).collect(),
        }
    }
}

impl<R> Clone for Dispatch<R> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
        }
    }
}

impl<R> Service<Request> for Dispatch<R>
where
    R: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Dispatched<R::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each route is made ready when it is called (axum's method routers always are).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let index = req.extensions().get::<MatchedRoute>().map(|m| m.index);
        match index.and_then(|i| self.routes.get(i)) {
            Some(route) => Dispatched::Routed {
                inner: lock(route).call(req),
            },
            None => Dispatched::Answered {
                response: Some(ApiError::NotFound("no route for this path".into()).into_response()),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Dispatch`].
    #[project = DispatchedProjection]
    pub(super) enum Dispatched<F> {
        Routed { #[pin] inner: F },
        // Taken when polled.
        Answered { response: Option<Response> },
    }
}

impl<F> Future for Dispatched<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchedProjection::Routed { inner } => inner
                .poll(cx)
                .map(|answered| answered.map(method_not_allowed_as_problem)),
            // Polled again after it answered: a caller's contract breach, not a panic.
            DispatchedProjection::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}

/// A route's method router answers a method it does not serve with a bare 405 and its
/// `Allow` header; the host answers every error as a problem, keeping that header. A 405
/// that already has a body (a handler's own) is left alone.
fn method_not_allowed_as_problem(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(CONTENT_TYPE)
    {
        return response;
    }
    let mut problem = ApiError::MethodNotAllowed.into_response();
    if let Some(allow) = response.headers().get(ALLOW) {
        problem.headers_mut().insert(ALLOW, allow.clone());
    }
    problem
}
