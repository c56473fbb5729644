//! A small reverse proxy that routes like the cluster's ingress, for local runs: one entry
//! port, requests sent to a function by path prefix (compared ignoring case).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::uri::Scheme;
use http::{Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::problem::ApiError;

/// Path prefix to upstream address.
#[derive(Debug, Clone)]
pub struct GatewayRoute {
    /// Lower-case prefix ending without a slash, e.g. `/api/deliveries`.
    pub prefix: String,
    /// Where the function listens.
    pub upstream: std::net::SocketAddr,
}

#[derive(Debug, Clone)]
struct Gateway {
    routes: Arc<Vec<GatewayRoute>>,
    client: Client<HttpConnector, Body>,
}

/// Headers that describe one connection, not the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A router that forwards every request to the route with the longest matching prefix.
pub fn gateway(mut routes: Vec<GatewayRoute>) -> axum::Router {
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let state = Gateway {
        routes: Arc::new(routes),
        client: proxy_client(),
    };
    axum::Router::new().fallback(forward).with_state(state)
}

/// Whether the lower-case `prefix` serves `path`: ignoring case, on whole segments.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && matches!(
            path.as_bytes().get(prefix.len()),
            None | Some(b'/') | Some(b'?')
        )
}

async fn forward(State(gw): State<Gateway>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(route) = gw.routes.iter().find(|r| prefix_matches(&r.prefix, &path)) else {
        return ApiError::NotFound(format!("no function serves {path}")).into_response();
    };
    proxy(&gw.client, route.upstream, &route.prefix, req).await
}

/// The HTTP client a proxy forwards with.
pub fn proxy_client() -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Forwards `req` to `upstream` as a reverse proxy does (hop-by-hop headers dropped, `Host`
/// set), passing the answer through; an unreachable upstream is a 503 naming `what`.
pub async fn proxy(
    client: &Client<HttpConnector, Body>,
    upstream: std::net::SocketAddr,
    what: &str,
    mut req: Request,
) -> Response {
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    let Ok(authority) = upstream.to_string().parse() else {
        return ApiError::Internal(format!("bad upstream address {upstream}")).into_response();
    };
    parts.authority = Some(authority);
    let Ok(uri) = Uri::from_parts(parts) else {
        return ApiError::BadRequest("cannot forward this URI".into()).into_response();
    };
    *req.uri_mut() = uri;
    for h in HOP_BY_HOP {
        req.headers_mut().remove(*h);
    }
    if let Ok(host) = upstream.to_string().parse() {
        req.headers_mut().insert(header::HOST, host);
    }
    match client.request(req).await {
        Ok(response) => response.map(Body::new),
        Err(e) => ApiError::Unavailable {
            detail: format!("the function behind {what} is unreachable: {e}"),
            retry_after: std::time::Duration::from_secs(1),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments_ignoring_case() {
        assert!(prefix_matches("/api/deliveries", "/api/Deliveries/1"));
        assert!(prefix_matches("/api/deliveries", "/api/deliveries"));
        assert!(!prefix_matches("/api/deliveries", "/api/deliveriesx"));
        assert!(!prefix_matches(
            "/api/deliveryrequests",
            "/api/deliveries/1"
        ));
    }
}
