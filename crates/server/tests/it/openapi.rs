//! The OpenAPI document covers every API route, and the docs page is served from the binary.

use std::collections::BTreeSet;

use ironbridge_server::routes::{api_routes, ops_routes};

use crate::support::TestApp;

fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(ironbridge_server::openapi::document_json()).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_api_route_is_in_the_document_and_nothing_else() {
    let routed: BTreeSet<(String, String)> = api_routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let documented = documented();
    for route in &routed {
        assert!(
            documented.contains(route),
            "route {route:?} is missing from the OpenAPI document"
        );
    }
    for op in &documented {
        assert!(
            routed.contains(op),
            "documented operation {op:?} has no route"
        );
    }
    // Everything outside /v1 is operations or docs, and stays out of the API document.
    let ops: Vec<&str> = ops_routes().iter().map(|r| r.path).collect();
    assert!(ops.iter().all(|p| !p.starts_with("/v1")));
    assert!(routed.iter().all(|(_, p)| p.starts_with("/v1/")));
}

#[test]
fn every_operation_documents_its_errors_parameters_and_security() {
    let doc: serde_json::Value =
        serde_json::from_str(ironbridge_server::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "429", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            assert!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                "{method} {path} lacks security"
            );
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "duplicate operationId"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty())
                    || op["description"].is_string(),
                "{method} {path} is undocumented"
            );
            if path.contains("{id}") {
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "id" && p["in"] == "path"),
                    "{method} {path} lacks the id parameter"
                );
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "PurchaseOrder",
        "PurchaseOrderLine",
        "Vendor",
        "Item",
        "Location",
        "ErrorResponse",
        "ConnectionOut",
        "PurchaseOrderList",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let list = &doc["paths"]["/v1/purchase-orders"]["get"]["parameters"];
    for p in [
        "cursor",
        "page_size",
        "modified_after",
        "modified_before",
        "include_deleted",
        "include_remote_data",
    ] {
        assert!(
            list.as_array().unwrap().iter().any(|x| x["name"] == p),
            "list parameter {p} undocumented"
        );
    }
}

#[tokio::test]
async fn the_document_and_docs_page_are_served_without_a_cdn() {
    let app = TestApp::spawn().await;
    let res = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["info"]["title"], "Ironbridge API");
    let page = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/docs/swagger-ui-bundle.js") && !page.contains("https://"));
    let script = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().len() > 100_000);
    let css = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
}
