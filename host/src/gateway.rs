//! The local gateways: a small reverse proxy that routes like the cluster's ingress (the
//! public prefixes) or the HTTP add-on's interceptor (every prefix), for local runs: one
//! entry port, requests sent to a function by path prefix (compared ignoring case).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::uri::Scheme;
use http::{Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use runtime::ApiError;
use runtime::client::proxy_client;
use runtime::deploy::Deployment;
use runtime::lifecycle::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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

/// The gateway's routes, from the functions' declarations: each HTTP function's path
/// prefixes, or only its public ones when `public_only` (as the cluster's ingress sends
/// them), to the address `upstream` gives it. An HTTP function without an address is an
/// error naming it.
pub fn gateway_routes(
    functions: &[Deployment],
    upstream: impl Fn(&str) -> Option<SocketAddr>,
    public_only: bool,
) -> Result<Vec<GatewayRoute>, String> {
    let mut routes = Vec::new();
    let mut missing = Vec::new();
    for f in functions {
        let Some((prefixes, public)) = f.http_trigger() else {
            continue;
        };
        let Some(addr) = upstream(&f.name) else {
            missing.push(f.name.as_str());
            continue;
        };
        let prefixes = if public_only { public } else { prefixes };
        routes.extend(prefixes.iter().map(|prefix| GatewayRoute {
            prefix: prefix.to_ascii_lowercase(),
            upstream: addr,
        }));
    }
    if missing.is_empty() {
        Ok(routes)
    } else {
        Err(format!(
            "no address for the HTTP functions {}",
            missing.join(", ")
        ))
    }
}

/// Serves `routes` on `listener` until `shutdown`.
pub(crate) fn serve_gateway(
    what: &'static str,
    listener: TcpListener,
    routes: Vec<GatewayRoute>,
    shutdown: Shutdown,
    grace: std::time::Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = runtime::http::serve(listener, gateway(routes), shutdown, grace).await {
            tracing::error!(error = %e, gateway = what, "gateway failed");
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use runtime::Registration;

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn gateway_routes_come_from_the_declarations_and_the_ingress_keeps_only_public_ones() {
        let functions: Vec<Deployment> = crate::functions()
            .iter()
            .map(Registration::deployment)
            .collect();
        let ports: Vec<(String, u16)> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), 9000 + i as u16))
            .collect();
        let upstream = |name: &str| ports.iter().find(|(n, _)| n == name).map(|(_, p)| addr(*p));
        let all = gateway_routes(&functions, upstream, false).unwrap();
        let prefixes: Vec<&str> = all.iter().map(|r| r.prefix.as_str()).collect();
        for f in &functions {
            for p in f
                .http_trigger()
                .map(|(p, _)| p.to_vec())
                .unwrap_or_default()
            {
                assert!(prefixes.contains(&p.as_str()), "{p} missing");
            }
        }
        let public = gateway_routes(&functions, upstream, true).unwrap();
        let public: Vec<&str> = public.iter().map(|r| r.prefix.as_str()).collect();
        assert!(public.contains(&"/api/deliveries/public"), "{public:?}");
        assert!(!public.contains(&"/api/packages"), "{public:?}");

        let e = gateway_routes(&functions, |_| None, false).unwrap_err();
        assert!(e.contains("delivery") && e.contains("package"), "{e}");
    }

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
