//! The OpenAPI documents: the committed ones (docs/openapi/) are what the code generates,
//! every route a function serves is in its document, and each function serves its document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use host::generated::differences;
use host::openapi::{PUBLIC, documents, files, function_apis};
use serde_json::Value;
use support::{raw_get, start_local};

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi")
}

#[tokio::test]
async fn the_committed_documents_are_what_the_code_generates() {
    let docs = documents(&function_apis().await.unwrap()).unwrap();
    let problems = differences(&files(&docs), &docs_dir());
    assert!(
        problems.is_empty(),
        "docs/openapi/ has drifted from the code; run `cargo run -p host -- openapi` and \
         commit the result:\n{}",
        problems.join("\n")
    );
    let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    for f in ["ingestion", "delivery", "package", "dronescheduler", PUBLIC] {
        assert!(names.contains(&f), "{f} has no document: {names:?}");
    }
}

#[tokio::test]
async fn every_route_a_function_serves_is_documented() {
    for f in function_apis().await.unwrap() {
        let served: BTreeSet<&str> = f.templates.iter().map(String::as_str).collect();
        let documented: BTreeSet<&str> = f.api.paths().collect();
        assert_eq!(served, documented, "{}: served vs documented paths", f.name);
    }
}

#[tokio::test]
async fn the_public_document_has_only_what_the_ingress_serves_with_unique_operation_ids() {
    let docs = documents(&function_apis().await.unwrap()).unwrap();
    let public = docs.iter().find(|d| d.name == PUBLIC).unwrap();
    let doc: Value = serde_json::from_str(&public.json).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/deliveries/public/{id}",
            "/api/deliveryrequests",
            "/api/deliveryrequests/{id}"
        ]
    );
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
    // The link from a delivery request to the delivery it makes holds in this document.
    let link = &doc["paths"]["/api/deliveryrequests"]["post"]["responses"]["202"]["links"]["GetPublicDelivery"];
    assert_eq!(link["operationId"], "getPublicDelivery");
    assert!(ids.contains("getPublicDelivery"));
}

#[tokio::test]
async fn each_function_serves_its_committed_document_at_openapi_json() {
    let (shutdown, system, _) = start_local().await;
    for f in function_apis().await.unwrap() {
        let addr = system.addr_of(f.name).unwrap();
        let served = raw_get(addr, "/openapi.json").await;
        assert_eq!(served.status, 200, "{}", f.name);
        assert_eq!(served.headers["content-type"], "application/json");
        let served: Value = serde_json::from_str(&served.body).unwrap();
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(docs_dir().join(format!("{}.json", f.name))).unwrap(),
        )
        .unwrap();
        assert_eq!(served, committed, "{} serves another document", f.name);
    }
    shutdown.trigger();
    system.stopped().await;
}
