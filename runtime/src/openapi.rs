//! OpenAPI 3.1 documents, generated from the code.
//!
//! A function annotates each handler with `#[utoipa::path(...)]` and registers it with
//! [`crate::Routes::operations`] (through `utoipa_axum::routes!`), which serves the handler on
//! exactly the path and methods its annotation documents. [`function_document`] adds what the
//! host serves and answers for every function: the `/healthz`, `/readyz`, `/metrics` and
//! `/openapi.json` endpoints, the problem+json schema, and the error responses the host's
//! layers give any route (413 and 415 for bodies, 404 for unknown ids and paths, 500 and 503).
//! Each function serves its document at [`OPENAPI_PATH`]; `fabrikam openapi` writes them to
//! `docs/openapi/`.

use crate::contract::PRODUCT_TITLE;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem, Paths};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use crate::json::NamedEnum;
use crate::problem::{FieldError, PROBLEM_JSON, Problem};

pub use utoipa;

/// Where every function serves its document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The paths and schemas a function's routes document, before the host's additions.
#[derive(Clone, Default)]
pub struct RoutesApi {
    pub(crate) paths: Paths,
    pub(crate) schemas: Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>,
}

impl std::fmt::Debug for RoutesApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutesApi")
            .field("paths", &self.paths.paths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RoutesApi {
    pub(crate) fn add(&mut self, template: &str, item: PathItem) {
        match self.paths.paths.get_mut(template) {
            Some(existing) => existing.merge_operations(item),
            None => {
                self.paths.paths.insert(template.to_owned(), item);
            }
        }
    }

    /// The documented path templates.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.paths.keys().map(String::as_str)
    }

    /// The operations on paths under one of `prefixes` (matched as the gateway matches
    /// them: ignoring case, on whole segments), with every schema.
    pub fn only_under(&self, prefixes: &[String]) -> Self {
        let mut paths = self.paths.clone();
        paths.paths.retain(|template, _| {
            let template = template.to_ascii_lowercase();
            prefixes.iter().any(|prefix| {
                let prefix = prefix.to_ascii_lowercase();
                template
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        });
        Self {
            paths,
            schemas: self.schemas.clone(),
        }
    }

    /// Adds `other`'s operations and schemas (a gateway's document over several functions).
    pub fn merge(&mut self, other: Self) {
        for (template, item) in other.paths.paths {
            self.add(&template, item);
        }
        self.schemas.extend(other.schemas);
    }
}

/// The whole document of the function `name`: its routes plus what the host adds.
pub fn function_document(name: &str, api: &RoutesApi) -> OpenApi {
    let mut doc = routes_document(
        &format!("{PRODUCT_TITLE} {name}"),
        &format!(
            "The {name} function of the {PRODUCT_TITLE} drone-delivery system, as served on its own \
             port. Paths match case-insensitively and with a trailing slash; every error is \
             application/problem+json (RFC 9457)."
        ),
        api,
    );
    doc.paths.merge(host_paths());
    doc
}

/// `doc` as the JSON `/openapi.json` serves and `docs/openapi/` keeps: pretty, with a final
/// newline.
pub fn to_json(doc: &OpenApi) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    Ok(text)
}

/// A document of `api`'s routes alone (no host endpoints), with the host's error responses:
/// what a gateway in front of the functions serves.
pub fn routes_document(title: &str, description: &str, api: &RoutesApi) -> OpenApi {
    let mut paths = api.paths.clone();
    let operation_ids: Vec<String> = paths
        .paths
        .values_mut()
        .flat_map(operations_mut)
        .filter_map(|operation| operation.operation_id.clone())
        .collect();
    for (template, item) in &mut paths.paths {
        for operation in operations_mut(item) {
            add_host_responses(template, operation);
            keep_links_to(&operation_ids, operation);
        }
    }
    let mut components = ComponentsBuilder::new()
        .schema(Problem::name(), Problem::schema())
        .schema(FieldError::name(), FieldError::schema())
        .schemas_from_iter(api.schemas.clone());
    for (name, response) in problem_responses() {
        components = components.response(name, response);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .description(Some(description))
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The operations of a path item, in a fixed order.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Drops the links of `operation`'s responses to operations this document does not have: a
/// link from ingestion's POST to delivery's GET holds in the public API's document, not in
/// ingestion's own.
fn keep_links_to(operation_ids: &[String], operation: &mut Operation) {
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.links.retain(|_, link| match link {
                RefOr::T(link) => operation_ids.contains(&link.operation_id),
                RefOr::Ref(_) => true,
            });
        }
    }
}

/// The responses the host's layers can give any operation, added where the handler's
/// annotation does not name them already.
fn add_host_responses(template: &str, operation: &mut Operation) {
    let mut add = |status: &str, name: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| Ref::from_response_name(name).into());
    };
    if operation.request_body.is_some() {
        // The JSON body extractor: not JSON, too large, no JSON content type.
        add("400", BadRequest::response().0);
        add("413", PayloadTooLarge::response().0);
        add("415", UnsupportedMediaType::response().0);
    }
    if template.contains('{') {
        // Ids are checked (blank, too long, control characters); an id that names nothing,
        // or a path that matches no route (an empty id), is a 404.
        add("400", BadRequest::response().0);
        add("404", NotFound::response().0);
    }
    // Every handler reaches a store or the queue, and the host catches panics.
    add("500", Internal::response().0);
    add("503", Unavailable::response().0);
}

fn problem_response(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(Problem::name())))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build().into()
}

/// Declares the reusable problem+json responses: one type per status, named in handlers'
/// `responses(...)` as `response = runtime::openapi::NotFound`.
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident = $description:literal $(, $retry:ident)?;)+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl<'s> ToResponse<'s> for $name {
                fn response() -> (&'s str, RefOr<Response>) {
                    (stringify!($name), problem_response($description, problem_responses!(@retry $($retry)?)))
                }
            }
        )+

        fn problem_responses() -> Vec<(&'static str, RefOr<Response>)> {
            vec![$(<$name as ToResponse<'static>>::response()),+]
        }
    };
    (@retry retry_after) => { true };
    (@retry) => { false };
}

problem_responses! {
    /// 400: the request is malformed or names invalid fields (each in `errors`).
    BadRequest = "The request is malformed or has invalid fields; `errors` names each one.";
    /// 404.
    NotFound = "No such resource, or no route for this path.";
    /// 409.
    Conflict = "The resource's state does not allow this.";
    /// 410.
    Gone = "The resource existed and was ended for good.";
    /// 413.
    PayloadTooLarge = "The body is larger than the host's limit.";
    /// 415.
    UnsupportedMediaType = "The body is not declared as JSON (Content-Type application/json or *+json).";
    /// 422.
    Unprocessable = "The request cannot be processed as asked.";
    /// 429, with `Retry-After`.
    TooManyRequests = "The store is throttling; retry after the given seconds.", retry_after;
    /// 500.
    Internal = "An unexpected failure; the body hides its cause, which is logged.";
    /// 503, with `Retry-After`.
    Unavailable = "A store or the queue is unreachable, or the function is draining; retry after the given seconds.", retry_after;
}

/// The host's own endpoints, documented once here for every function.
fn host_paths() -> Paths {
    Paths::builder()
        .path_from::<__path_healthz>()
        .path_from::<__path_readyz>()
        .path_from::<__path_metrics>()
        .path_from::<__path_openapi_json>()
        .build()
}

// The host serves these endpoints from closures in `crate::http::host_service`; these
// bodiless functions only carry their documentation.

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "host",
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain", example = "ok")))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness: every trigger is running and the function is not draining.
#[utoipa::path(get, path = "/readyz", tag = "host",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain", example = "ready"),
        (status = 503, response = Unavailable),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// The function's metrics, in the Prometheus text format (docs/METRICS.md lists them).
#[utoipa::path(get, path = "/metrics", tag = "host",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "host",
    responses((status = 200, description = "The function's OpenAPI 3.1 document.", body = Object, content_type = "application/json")))]
#[allow(dead_code)]
fn openapi_json() {}

/// The schema of a [`crate::named_enum!`]: its names, as responses write them. Requests may
/// also give a name in any case or the reference's integer index, which the description says.
pub fn named_enum_schema<E: NamedEnum>() -> RefOr<utoipa::openapi::schema::Schema> {
    let names: Vec<&str> = E::VARIANTS.iter().map(|(name, _)| *name).collect();
    let indexes: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name}={i}"))
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(format!(
            "Written as the name. Requests may also give the name in any case, or the \
             reference implementation's integer ({}).",
            indexes.join(", ")
        )))
        .into()
}

/// An id in a path, as [`crate::check_id`] accepts it: at most [`crate::http::MAX_ID_LEN`]
/// characters, not blank, no control characters. Handlers name it in their parameters as
/// `("id" = inline(openapi::Id), Path, description = "...")`.
#[derive(Debug, Clone, Copy)]
pub struct Id;

/// No control characters (C0, DEL, C1), and at least one character that is not whitespace.
pub const ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

impl PartialSchema for Id {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::http::MAX_ID_LEN))
            .pattern(Some(ID_PATTERN))
            .into()
    }
}

impl ToSchema for Id {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};
    use utoipa_axum::routes;

    use super::*;
    use crate::http::Routes;

    /// Stores a thing.
    #[utoipa::path(put, path = "/{id}", operation_id = "putThing",
        params(("id" = inline(Id), Path, description = "The thing.")),
        request_body(content = Value),
        responses(
            (status = 204, description = "Stored.",
                links(
                    ("Read" = (operation_id = "getThing", parameters(("id" = "$request.path.id")))),
                    ("Elsewhere" = (operation_id = "notHere"))
                )),
        ))]
    async fn put_thing() {}

    /// Reads a thing.
    #[utoipa::path(get, path = "/{id}", operation_id = "getThing",
        params(("id" = inline(Id), Path, description = "The thing.")),
        responses((status = 200, description = "The thing.", body = String)))]
    async fn get_thing() {}

    /// Lists things.
    #[utoipa::path(get, path = "", operation_id = "listThings",
        responses((status = 200, description = "Things.", body = Vec<String>)))]
    async fn list_things() {}

    fn document() -> Value {
        let routes: Routes = Routes::under("/api/things")
            .operations(routes!(put_thing, get_thing))
            .operations(routes!(list_things));
        serde_json::to_value(function_document("things", routes.api())).unwrap()
    }

    fn statuses(doc: &Value, path: &str, method: &str) -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn operations_are_documented_under_the_prefix_with_the_host_endpoints() {
        let doc = document();
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            paths,
            [
                "/api/things",
                "/api/things/{id}",
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/readyz"
            ]
        );
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Fabrikam things");
    }

    #[test]
    fn the_host_adds_the_errors_its_layers_answer() {
        let doc = document();
        // A body: 400, 413, 415. An id in the path: 400 and 404. Everywhere: 500, 503.
        assert_eq!(
            statuses(&doc, "/api/things/{id}", "put"),
            ["204", "400", "404", "413", "415", "500", "503"]
        );
        assert_eq!(
            statuses(&doc, "/api/things/{id}", "get"),
            ["200", "400", "404", "500", "503"]
        );
        assert_eq!(statuses(&doc, "/api/things", "get"), ["200", "500", "503"]);
        assert_eq!(
            doc["paths"]["/api/things"]["get"]["responses"]["503"]["$ref"],
            "#/components/responses/Unavailable"
        );
        let unavailable = &doc["components"]["responses"]["Unavailable"];
        assert_eq!(
            unavailable["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert!(unavailable["headers"]["Retry-After"].is_object());
        assert!(doc["components"]["schemas"]["Problem"]["properties"]["type"].is_object());
        // The host's own endpoints keep only what they answer.
        assert_eq!(statuses(&doc, "/readyz", "get"), ["200", "503"]);
    }

    #[test]
    fn links_to_operations_elsewhere_are_dropped() {
        let doc = document();
        let links = &doc["paths"]["/api/things/{id}"]["put"]["responses"]["204"]["links"];
        assert_eq!(links["Read"]["operationId"], "getThing");
        assert!(links.get("Elsewhere").is_none(), "{links}");
    }

    #[test]
    fn path_ids_are_documented_as_check_id_accepts_them() {
        let doc = document();
        let schema = &doc["paths"]["/api/things/{id}"]["get"]["parameters"][0]["schema"];
        assert_eq!(schema["maxLength"], crate::http::MAX_ID_LEN);
        assert_eq!(schema["minLength"], 1);
        assert_eq!(schema["pattern"], ID_PATTERN);
    }

    type Service = tower::util::BoxCloneSyncService<
        axum::extract::Request,
        axum::response::Response,
        std::convert::Infallible,
    >;

    async fn status_of(service: &Service, method: &str, path: &str) -> (u16, Vec<u8>) {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let request = axum::extract::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    #[tokio::test]
    async fn operations_registered_apart_on_one_path_are_all_served_and_the_document_too() {
        let routes: Routes = Routes::under("/api/things")
            .operations(routes!(get_thing))
            .operations(routes!(put_thing));
        let service = crate::http::host_service(
            routes,
            crate::http::HostContext {
                metrics: crate::telemetry::Metrics::new("things").unwrap(),
                readiness: crate::lifecycle::Readiness::new(0),
                body_limit: 1024,
            },
        );
        let service = Service::new(service);
        assert_eq!(status_of(&service, "GET", "/api/things/a").await.0, 200);
        assert_eq!(status_of(&service, "PUT", "/api/things/a").await.0, 200);
        let (status, body) = status_of(&service, "GET", "/openapi.json").await;
        assert_eq!(status, 200);
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let methods: Vec<&String> = doc["paths"]["/api/things/{id}"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(methods, ["get", "put"]);
        assert_eq!(doc["info"]["title"], "Fabrikam things");
    }

    crate::named_enum! {
        enum Shade { Light, Dark }
    }

    #[test]
    fn named_enums_are_string_enums_of_their_names() {
        let schema = serde_json::to_value(Shade::schema()).unwrap();
        assert_eq!(schema["enum"], json!(["Light", "Dark"]));
        assert!(
            schema["description"]
                .as_str()
                .unwrap()
                .contains("Light=0, Dark=1")
        );
        assert_eq!(<Shade as ToSchema>::name(), "Shade");
    }
}
