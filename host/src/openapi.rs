//! `fabrikam openapi`: the OpenAPI documents of the registered HTTP functions, as each serves
//! at `/openapi.json`, and the public API's, as the ingress serves it, written to
//! `docs/openapi/` (or checked against it).
//!
//! Each function is built as `fabrikam dev` builds it, on the embedded queue and stores, so
//! the documents come from the routes the functions really register.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runtime::config::MapEnv;
use runtime::openapi::{self, RoutesApi};
use runtime::queue::embedded::EmbeddedBroker;
use runtime::telemetry::Metrics;
use runtime::{Bindings, StartError};

use crate::{Wired, functions};

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

/// The path of `doc` under `dir`.
pub fn file_of(dir: &Path, doc: &Document) -> PathBuf {
    dir.join(format!("{}.json", doc.name))
}

/// The files under `dir` that differ from `docs`, are missing, or are left over: empty when
/// the folder is what `write` would make it.
pub fn differences(dir: &Path, docs: &[Document]) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in docs {
        let path = file_of(dir, doc);
        match std::fs::read_to_string(&path) {
            Ok(text) if text == doc.json => {}
            Ok(_) => problems.push(format!("{} differs from the code", path.display())),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let known = docs.iter().any(|d| format!("{}.json", d.name) == name);
            if name.ends_with(".json") && !known {
                problems.push(format!(
                    "{} documents no registered HTTP function",
                    entry.path().display()
                ));
            }
        }
    }
    problems
}

/// Writes `docs` under `dir`, removing JSON files no function documents any more.
pub fn write(dir: &Path, docs: &[Document]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !docs.iter().any(|d| format!("{}.json", d.name) == name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for doc in docs {
        std::fs::write(file_of(dir, doc), &doc.json)?;
    }
    Ok(())
}
