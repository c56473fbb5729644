//! The local interceptor: the gateway in front of functions that scale to zero, as the KEDA
//! HTTP add-on's interceptor is (SCALING.md §4.2). Per function it counts the requests in
//! it (held or being answered) and every request that entered; it holds a request while the
//! function has no ready replica, up to the route's readiness timeout (then 504); it
//! forwards each held request the moment a replica is ready, and passes every answer
//! through.
//!
//! One difference from the add-on, on purpose: a request held at zero wakes the
//! autoscaler at once (`held`), where the add-on's scaler would see it at its next 500 ms
//! sample and push within 200 ms. The simulator models the add-on's periods.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::gateway::{prefix_matches, proxy};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use runtime::ApiError;
use runtime::client::proxy_client;
use scaling::http_addon::Counters;
use tokio::sync::{mpsc, watch};

/// One function behind the interceptor: its counters and its ready replicas.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    concurrency: AtomicU64,
    request_count: AtomicU64,
    endpoints: watch::Receiver<Vec<SocketAddr>>,
    next: AtomicUsize,
    readiness_timeout: Duration,
}

impl Upstream {
    /// `endpoints` is the function's ready replicas, as its replica set publishes them.
    pub fn new(
        name: &str,
        endpoints: watch::Receiver<Vec<SocketAddr>>,
        readiness_timeout: Duration,
    ) -> Self {
        Self {
            name: name.to_owned(),
            concurrency: AtomicU64::new(0),
            request_count: AtomicU64::new(0),
            endpoints,
            next: AtomicUsize::new(0),
            readiness_timeout,
        }
    }

    /// What the add-on's scaler would read from the interceptor.
    pub fn counters(&self) -> Counters {
        Counters {
            concurrency: self.concurrency.load(Ordering::Relaxed),
            request_count: self.request_count.load(Ordering::Relaxed),
        }
    }

    /// A ready replica, round robin; `None` when there is none.
    fn pick(&self) -> Option<SocketAddr> {
        let endpoints = self.endpoints.borrow();
        if endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        Some(endpoints[i])
    }
}

/// A path prefix (lower case) and the upstream serving it.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub upstream: Arc<Upstream>,
}

#[derive(Debug, Clone)]
struct Interceptor {
    routes: Arc<Vec<Route>>,
    client: Client<HttpConnector, Body>,
    /// Told the name of a function that holds a request and has no ready replica.
    held: mpsc::UnboundedSender<String>,
}

/// The interceptor's router over `routes` (longest prefix first).
pub fn router(mut routes: Vec<Route>, held: mpsc::UnboundedSender<String>) -> axum::Router {
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let state = Interceptor {
        routes: Arc::new(routes),
        client: proxy_client(),
        held,
    };
    axum::Router::new().fallback(intercept).with_state(state)
}

/// Decrements the concurrency when the request leaves, whichever way it leaves.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn intercept(State(it): State<Interceptor>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(route) = it.routes.iter().find(|r| prefix_matches(&r.prefix, &path)) else {
        return ApiError::NotFound(format!("no function serves {path}")).into_response();
    };
    let upstream = &route.upstream;
    upstream.request_count.fetch_add(1, Ordering::Relaxed);
    upstream.concurrency.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&upstream.concurrency);
    let addr = match upstream.pick() {
        Some(addr) => addr,
        None => {
            let _ = it.held.send(upstream.name.clone());
            match wait_for_ready(upstream).await {
                Some(addr) => addr,
                None => {
                    return ApiError::GatewayTimeout(format!(
                        "{} had no ready replica within {} s",
                        upstream.name,
                        upstream.readiness_timeout.as_secs()
                    ))
                    .into_response();
                }
            }
        }
    };
    proxy(&it.client, addr, &route.prefix, req).await
}

/// Waits for a ready replica, up to the readiness timeout.
async fn wait_for_ready(upstream: &Upstream) -> Option<SocketAddr> {
    let mut endpoints = upstream.endpoints.clone();
    let wait = async {
        loop {
            if let Some(addr) = upstream.pick() {
                return Some(addr);
            }
            if endpoints.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout(upstream.readiness_timeout, wait)
        .await
        .ok()
        .flatten()
}
