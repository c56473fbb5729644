//! `fabrikam openapi`: the OpenAPI documents of the registered HTTP functions, as each serves
//! at `/openapi.json`, and the public API's, as the ingress serves it, written to
//! `docs/openapi/` (or checked against it).
//!
//! Each function is built as `fabrikam dev` builds it, on the embedded queue and stores, so
//! the documents come from the routes the functions really register.

use std::sync::Arc;

use runtime::config::MapEnv;
use runtime::openapi::{self, RoutesApi};
use runtime::queue::embedded::EmbeddedBroker;
use runtime::telemetry::Metrics;
use runtime::{Bindings, StartError};

use crate::functions;
use crate::generated::Files;
use crate::local::Wired;

/// The public API's file name in `docs/openapi/`.
pub const PUBLIC: &str = "public";

/// One document: its file stem (a function's name, or [`PUBLIC`]) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub name: String,
    pub json: String,
}

/// One registered HTTP function's documented routes.
#[derive(Debug)]
pub struct FunctionApi {
    pub name: &'static str,
    /// The templates its routes were registered with.
    pub templates: Vec<String>,
    pub api: RoutesApi,
    /// Its public path prefixes (what the ingress routes to it).
    pub public: Vec<String>,
}

/// Builds every registered HTTP function on embedded defaults and takes its routes.
pub async fn function_apis() -> Result<Vec<FunctionApi>, StartError> {
    // Callees are never called while documenting; any address will do.
    let placeholder = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let configs = Wired::new(Arc::new(MapEnv::new()), |_| Some(placeholder)).read()?;
    let mut apis = Vec::new();
    for (function, config) in functions().iter().zip(configs) {
        let declaration = function.deployment();
        let Some((_, public)) = declaration.http_trigger() else {
            continue;
        };
        let public = public.to_vec();
        let bindings = Bindings::new(
            declaration,
            config.wiring.clone(),
            Arc::new(EmbeddedBroker::default()),
            Metrics::new(function.name())?,
        );
        let routes = function.build(config, &bindings).await?.into_routes();
        apis.push(FunctionApi {
            name: function.name(),
            templates: routes.templates().to_vec(),
            api: routes.api().clone(),
            public,
        });
    }
    Ok(apis)
}

/// Every function's document and the public API's, in file-name order.
pub fn documents(apis: &[FunctionApi]) -> Result<Vec<Document>, serde_json::Error> {
    let mut docs = Vec::new();
    let mut public = RoutesApi::default();
    for f in apis {
        docs.push(Document {
            name: f.name.to_owned(),
            json: openapi::to_json(&openapi::function_document(f.name, &f.api))?,
        });
        public.merge(f.api.only_under(&f.public));
    }
    let public = openapi::routes_document(
        "Fabrikam drone delivery: public API",
        "The routes the ingress serves to clients (`/api/deliveryrequests` on ingestion, \
         `/api/deliveries/public` on delivery). Paths match case-insensitively and with a \
         trailing slash; every error is application/problem+json (RFC 9457).",
        &public,
    );
    docs.push(Document {
        name: PUBLIC.to_owned(),
        json: openapi::to_json(&public)?,
    });
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(docs)
}

/// The documents as the files of `docs/openapi/` (see [`crate::generated`]).
pub fn files(docs: &[Document]) -> Files {
    docs.iter()
        .map(|doc| (format!("{}.json", doc.name), doc.json.clone()))
        .collect()
}
