//! The HTTP trigger.
//!
//! A function builds its routes with [`Routes`]: an `axum::Router` that also records each
//! path template, so the host can check them against the function's declaration and match
//! paths as the reference's clients spell them ([`paths`]), and each documented operation
//! for its OpenAPI document ([`crate::openapi`]). Handlers are axum handlers, with axum's
//! own extractors (`Path`, `Query`, `Json`, `State`). The host adds `/healthz`, `/readyz`,
//! `/metrics` and `/openapi.json`, the body limit, problem+json for every error answer
//! (`problems.rs`), panic catching, trace context and request metrics (`observe.rs`), then
//! serves until shutdown ([`serve`]).
//!
//! A request passes, outermost first: the reference's path policy ([`paths`]), the
//! observation (`observe.rs`), the error answers as problems (`problems.rs`), axum's router.

pub mod body;
mod drain;
mod observe;
pub mod paths;
mod problems;

use std::convert::Infallible;
use std::future::IntoFuture;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use tokio::net::TcpListener;
use tower::Layer as _;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::lifecycle::{Readiness, Shutdown};
use crate::openapi::{OPENAPI_PATH, RoutesApi, function_document, to_json};
use crate::problem::ApiError;
use crate::telemetry::Metrics;

pub use body::JsonBody;
pub use paths::{MatchedTemplate, PathTemplates, ReferencePaths};

/// A function's routes: an axum router, plus the templates it was built with and the
/// operations they document.
pub struct Routes<S = ()> {
    router: Router<S>,
    /// Each route's template, as declared (with the prefix), once.
    templates: Vec<String>,
    /// Prepended to every template (see [`Routes::under`]).
    prefix: String,
    api: RoutesApi,
}

impl<S> std::fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("templates", &self.templates)
            .field("prefix", &self.prefix)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::under("")
    }

    /// Routes under the path prefix `prefix`: each template is written relative to it
    /// (`""` is the prefix itself), so a function states its prefix once, in its
    /// declaration, and builds its routes from the same constant.
    pub fn under(prefix: &str) -> Self {
        Self {
            router: Router::new(),
            templates: Vec::new(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            api: RoutesApi::default(),
        }
    }

    /// Adds an undocumented route, as `axum::Router::route` does. Functions register their
    /// handlers with [`Routes::operations`] instead, so that what they serve is what their
    /// OpenAPI document says; `host/tests/openapi.rs` fails for a registered function with
    /// an undocumented route. Write literal segments in lower case; requests match them in
    /// any case ([`paths`]). A parameter is a whole segment, `{name}`, read with
    /// `axum::extract::Path`.
    ///
    /// # Panics
    /// When the template repeats a method already routed on it (as axum's router does), or
    /// has a segment the reference's path policy cannot match (`/files/{name}.txt`,
    /// `{*rest}`): at start-up, before anything serves.
    pub fn route(mut self, template: &str, method_router: MethodRouter<S>) -> Self {
        let template = format!("{}{template}", self.prefix);
        self.add(template, method_router);
        self
    }

    /// Adds documented handlers: `utoipa_axum::routes!(get_thing, put_thing)`, each
    /// annotated with `#[utoipa::path(...)]` whose `path` is relative to the prefix. Each
    /// handler is served on the path and methods its annotation names, and the annotation
    /// becomes its operation in the function's OpenAPI document.
    ///
    /// # Panics
    /// As [`Routes::route`].
    pub fn operations(mut self, (schemas, paths, method_router): UtoipaMethodRouter<S>) -> Self {
        for (path, item) in paths.paths {
            let template = format!("{}{path}", self.prefix);
            self.add(template.clone(), method_router.clone());
            self.api.add(&template, item);
        }
        self.api.schemas.extend(schemas);
        self
    }

    /// A template already routed gains the new methods (axum's `Router::route` merges
    /// them; a method routed twice panics).
    fn add(&mut self, template: String, method_router: MethodRouter<S>) {
        // Checked here, so a template the path policy cannot match stops the function where
        // it is declared.
        paths::check_template(&template);
        self.router = std::mem::take(&mut self.router).route(&template, method_router);
        if !self.templates.contains(&template) {
            self.templates.push(template);
        }
    }

    /// Supplies the state, giving routes ready to serve.
    pub fn with_state(self, state: S) -> Routes<()> {
        Routes {
            router: self.router.with_state(state),
            templates: self.templates,
            prefix: self.prefix,
            api: self.api,
        }
    }
}

impl Routes<()> {
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// The documented operations and their schemas.
    pub fn api(&self) -> &RoutesApi {
        &self.api
    }
}

/// What the host needs to wrap a function's routes.
#[derive(Debug, Clone)]
pub struct HostContext {
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub body_limit: usize,
}

/// The complete service for one function: its routes (if any) plus the host's endpoints,
/// behind the body limit, the error answers as problems, the observation and the
/// reference's path policy (the module's documentation gives the order).
///
/// # Panics
/// When a host endpoint's path is one of the function's own (axum refuses the overlap): a
/// bug in the function, found at start-up.
pub fn host_service(
    routes: Routes<()>,
    ctx: HostContext,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let mut router = routes.router;
    let mut templates = routes.templates;
    for (template, handlers) in host_routes(&ctx, routes.api) {
        // Not under the function's prefix.
        router = router.route(template, handlers);
        templates.push(template.to_owned());
    }
    // The fallbacks answer as every other error does; a 405 keeps the `Allow` header axum
    // adds to it. The method fallback reaches only the routes added before it.
    let router = router
        .fallback(|| async { ApiError::NotFound("no route for this path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    // The limit is a request extension that axum's body extractors read: set once from
    // outside the router, not with `Router::layer`, which would wrap every route in it.
    let router = DefaultBodyLimit::max(ctx.body_limit).layer(router);
    let service = axum::middleware::map_response_with_state(ctx.body_limit, problems::as_problem)
        .layer(router);
    let templates = PathTemplates::new(&templates);
    let service = observe::Observe::new(service, templates.len(), ctx.metrics);
    ReferencePaths::new(templates).layer(service)
}

/// `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
fn host_routes(ctx: &HostContext, api: RoutesApi) -> [(&'static str, MethodRouter); 4] {
    // Built and serialized on the first request, not at start-up (a cold start serves
    // traffic first). It cannot fail (every map key is a string), but if it did the route
    // would say so rather than the host refuse to serve.
    let openapi = Arc::new((ctx.metrics.function().to_owned(), api, OnceLock::new()));
    let metrics = ctx.metrics.clone();
    let readiness = ctx.readiness.clone();
    [
        ("/healthz", get(|| async { "ok" })),
        (
            OPENAPI_PATH,
            get(move || {
                let (name, api, document) = &*openapi;
                let document = document
                    .get_or_init(|| {
                        to_json(&function_document(name, api))
                            .map(bytes::Bytes::from)
                            .map_err(|e| e.to_string())
                    })
                    .clone();
                async move {
                    match document {
                        Ok(json) => ([(http::header::CONTENT_TYPE, "application/json")], json)
                            .into_response(),
                        Err(e) => {
                            ApiError::Internal(format!("the OpenAPI document: {e}")).into_response()
                        }
                    }
                }
            }),
        ),
        (
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        "ready".into_response()
                    } else {
                        ApiError::Unavailable {
                            detail: "not ready: starting or draining".into(),
                            retry_after: Duration::from_secs(1),
                        }
                        .into_response()
                    }
                }
            }),
        ),
        (
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        text,
                    )
                }
            }),
        ),
    ]
}

/// Serves until `shutdown` trips, then lets in-flight requests finish for up to `grace`.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    shutdown: Shutdown,
    grace: Duration,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let signal = shutdown.clone();
    // Outermost: a body the handler left unread is drained, not reset (drain.rs).
    let service = tower::ServiceBuilder::new()
        .map_request(drain::drain_unread_body)
        .service(service);
    let server = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(async move { signal.wait().await })
    .into_future();
    tokio::pin!(server);
    let drain_deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = &mut server => r,
        _ = drain_deadline => {
            tracing::warn!("HTTP drain grace over; closing remaining connections");
            Ok(())
        }
    }
}

/// Longest id accepted in a path.
pub const MAX_ID_LEN: usize = 200;

/// Checks an id taken from a path: not blank, at most [`MAX_ID_LEN`] characters, no control
/// characters. `name` is the parameter's name for the error.
pub fn check_id(name: &str, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::field(name, "must not be blank"));
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(ApiError::field(
            name,
            &format!("must be at most {MAX_ID_LEN} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::field(name, "must not contain control characters"));
    }
    Ok(())
}
