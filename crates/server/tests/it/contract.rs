//! The API contract is what the OpenAPI document says: every operation refuses query
//! parameters it does not declare, declared bounds and required bodies match the server, and
//! every answer, even one refused before routing, is the error envelope with a request id.

use serde_json::{Value, json};

use crate::support::{Res, TestApp};

/// An app with an organization, a sandbox connection and a webhook endpoint; returns the
/// app, the admin key, the connection id and token, and the endpoint id.
async fn app_with_everything() -> (TestApp, String, String, String, String) {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 3})).await;
    let res = app
        .post(
            &key,
            "/v1/webhook-endpoints",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let endpoint = res.body["endpoint"]["id"].as_str().unwrap().to_string();
    (app, key, conn, token, endpoint)
}

fn document() -> Value {
    serde_json::from_str(ironbridge_server::openapi::document_json()).unwrap()
}

/// Every operation of the document: (method, path template, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

/// Sends `method path` as the admin key naming the connection (which every operation takes:
/// admin operations ignore the header), with `body` as JSON when given.
async fn call(
    app: &TestApp,
    key: &str,
    conn: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Res {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(key)
        .header("x-connection-id", conn);
    if let Some(body) = body {
        req = req.json(&body);
    }
    app.send(req).await
}

#[tokio::test]
async fn every_operation_refuses_an_undeclared_query_parameter_by_name() {
    let (app, key, conn, _, endpoint) = app_with_everything().await;
    let doc = document();
    let ops = operations(&doc);
    assert_eq!(ops.len(), 104, "the walk covers every operation");
    for (method, template, _) in ops {
        let path = template.replace(
            "{id}",
            if template.contains("webhook-endpoints") {
                &endpoint
            } else {
                "x"
            },
        );
        let res = call(
            &app,
            &key,
            &conn,
            &method,
            &format!("{path}?zz_unknown=1"),
            None,
        )
        .await;
        let err = res.assert_error(400, "INVALID_REQUEST");
        assert_eq!(err["param"], "zz_unknown", "{method} {template}");
        // Nothing was done: a refused write leaves no trace (the endpoint still exists).
    }
    let res = app
        .get(&key, &format!("/v1/webhook-endpoints/{endpoint}"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Declared parameters pass; the message of a refusal lists them.
    let res = app.get(&key, "/v1/connections?page_sise=5").await;
    let err = res.assert_error(400, "INVALID_REQUEST");
    assert_eq!(err["param"], "page_sise");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cursor, page_size")
    );
    let res = app.get(&key, "/v1/organization?expand=all").await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "expand");
}

#[tokio::test]
async fn declared_page_size_bounds_are_the_servers() {
    let (app, key, conn, token, endpoint) = app_with_everything().await;
    // A batch whose operation list is paged (never run: no worker here).
    let res = app
        .post(
            &token,
            "/v1/batches",
            json!({"operations": [{"action": "create", "entity": "purchase-orders", "data": {}}]}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
    let batch = res.body["id"].as_str().unwrap().to_string();
    // A flow with a run whose items are paged (never run either).
    let res = app
        .post(
            &key,
            "/v1/flows",
            json!({"key": "paged", "name": "Paged", "trigger": {"type": "manual"},
                "steps": [{"type": "filter", "id": "all", "condition": "true"}]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app.post(&key, "/v1/flows/paged/runs", json!({})).await;
    assert_eq!(res.status, 202, "{}", res.body);
    let run = res.body["id"].as_str().unwrap().to_string();
    let doc = document();
    let mut checked = 0;
    for (method, template, op) in operations(&doc) {
        let Some(param) = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "page_size")
        else {
            continue;
        };
        let schema = &param["schema"];
        let min = schema["minimum"]
            .as_i64()
            .unwrap_or_else(|| panic!("{template}: no minimum"));
        let max = schema["maximum"]
            .as_i64()
            .unwrap_or_else(|| panic!("{template}: no maximum"));
        assert_eq!(min, 1, "{template}");
        let path = if template.starts_with("/v1/batches/") {
            template.replace("{id}", &batch)
        } else if template.starts_with("/v1/flows/") {
            template.replace("{flow}", "paged")
        } else if template.starts_with("/v1/flow-runs/") {
            template.replace("{id}", &run)
        } else if template.starts_with("/v1/connections/") {
            template.replace("{id}", &conn)
        } else {
            template.replace("{id}", &endpoint)
        };
        for refused in [min - 1, max + 1] {
            let res = call(
                &app,
                &key,
                &conn,
                &method,
                &format!("{path}?page_size={refused}"),
                None,
            )
            .await;
            let err = res.assert_error(400, "INVALID_REQUEST");
            assert_eq!(err["param"], "page_size", "{template} page_size={refused}");
        }
        for accepted in [min, max] {
            let res = call(
                &app,
                &key,
                &conn,
                &method,
                &format!("{path}?page_size={accepted}"),
                None,
            )
            .await;
            assert_eq!(
                res.status, 200,
                "{template} page_size={accepted}: {}",
                res.body
            );
        }
        checked += 1;
    }
    // Connections, events, endpoints, deliveries, attempts, and each entity's list.
    assert!(checked >= 9, "only {checked} lists checked");
}

#[tokio::test]
async fn a_body_is_required_exactly_when_the_document_says_so() {
    let (app, key, conn, _, endpoint) = app_with_everything().await;
    let doc = document();
    let mut checked = 0;
    for (method, template, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let required = body["required"].as_bool().unwrap_or(false);
        let path = template.replace("{id}", &endpoint);
        // No body at all, as a generated client sends for an optional one left out.
        let res = call(&app, &key, &conn, &method, &path, None).await;
        if required {
            let err = res.assert_error(422, "VALIDATION_ERROR");
            assert!(
                err["message"].as_str().unwrap().contains("is required"),
                "{method} {template}: {}",
                res.body
            );
        } else {
            // A write the sandbox does not support is refused as such, never for the body.
            let unsupported =
                res.status == 422 && res.body["error"]["code"] == "UNSUPPORTED_OPERATION";
            assert!(
                unsupported || ![400, 415, 422].contains(&res.status),
                "{method} {template} refuses a missing optional body: {}",
                res.body
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 30);
    // The optional bodies of `POST /v1/sync` and the reconnect were declared required.
    let sync = &doc["paths"]["/v1/sync"]["post"]["requestBody"];
    assert_eq!(sync["required"], false);
    assert_eq!(
        sync["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SyncIn"
    );
    let res = app
        .send(
            app.client
                .post(app.url("/v1/sync"))
                .bearer_auth(&key)
                .header("x-connection-id", &conn),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.body);
}

#[tokio::test]
async fn unknown_event_types_are_refused_in_filters_and_the_known_ones_listed() {
    let (app, key, _, _, endpoint) = app_with_everything().await;
    let res = app.get(&key, "/v1/events?type=sync.complete").await;
    let err = res.assert_error(400, "INVALID_REQUEST");
    assert_eq!(err["param"], "type");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("sync.completed") && message.contains("connection.disconnected"));
    let res = app.get(&key, "/v1/events?type=sync.completed").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let deliveries = format!("/v1/webhook-endpoints/{endpoint}/deliveries");
    let res = app
        .get(&key, &format!("{deliveries}?event_type=nope"))
        .await;
    let err = res.assert_error(400, "INVALID_REQUEST");
    assert_eq!(err["param"], "event_type");
    assert!(err["message"].as_str().unwrap().contains("webhook.test"));
    let res = app
        .get(&key, &format!("{deliveries}?event_type=webhook.test"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // The document lists the same types.
    let doc = document();
    let param = doc["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "type")
        .unwrap()
        .clone();
    let listed: Vec<&str> = param["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let known: Vec<&str> = ironbridge_model::webhooks::EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(listed, known);
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_refused_in_the_envelope() {
    let (app, key, _, token, endpoint) = app_with_everything().await;
    let _ = endpoint;
    for (who, path) in [
        (&token, "/v1/purchase-orders/%FF"),
        (&key, "/v1/connections/%FF%FE"),
        (&key, "/v1/webhook-endpoints/%C3%28/deliveries"),
    ] {
        let res = app.get(who, path).await;
        let err = res.assert_error(400, "INVALID_REQUEST");
        assert_eq!(err["param"], "id", "{path}");
    }
    let res = app
        .patch(&token, "/v1/purchase-orders/%FF", json!({"memo": "x"}))
        .await;
    assert_eq!(res.assert_error(400, "INVALID_REQUEST")["param"], "id");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (app, key, _, token, _) = app_with_everything().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = app
            .send(
                app.client
                    .get(app.url("/v1/organization"))
                    .header("authorization", format!("{scheme} {key}")),
            )
            .await;
        assert_eq!(res.status, 200, "{scheme}: {}", res.body);
        let res = app
            .send(
                app.client
                    .get(app.url("/v1/connection"))
                    .header("authorization", format!("{scheme} {token}")),
            )
            .await;
        assert_eq!(res.status, 200, "{scheme}: {}", res.body);
    }
    // Other schemes, and a scheme with no token, are still refused.
    for value in [
        format!("Basic {key}"),
        format!("Bearer{key}"),
        "Bearer ".to_string(),
    ] {
        let res = app
            .send(
                app.client
                    .get(app.url("/v1/organization"))
                    .header("authorization", value.clone()),
            )
            .await;
        res.assert_error(401, "AUTHENTICATION_FAILED");
    }
}

/// Sends raw bytes and reads the whole answer (the server closes after these refusals).
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer before it has read everything; a reset then is no failure.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn assert_envelope(status: u16, head: &str, body: &Value, expected: u16, code: &str) {
    assert_eq!(status, expected, "{head}\n{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let id = body["error"]["request_id"].as_str().unwrap();
    assert!(id.starts_with("req_"));
    assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("ironbridge-version: 2026-11-23"), "{head}");
}

#[tokio::test]
async fn refusals_before_routing_are_in_the_envelope_with_a_request_id() {
    let (app, key, _, _, _) = app_with_everything().await;
    // A request line over 64 KB: hyper's own 414.
    let long = format!(
        "GET /v1/organization?cursor={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, head, body) = raw(&app, long.as_bytes()).await;
    assert_envelope(status, &head, &body, 414, "URI_TOO_LONG");
    // More headers than hyper reads: its own 431.
    let mut many = String::from("GET /v1/organization HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-Filler-{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    let (status, head, body) = raw(&app, many.as_bytes()).await;
    assert_envelope(status, &head, &body, 431, "REQUEST_HEADERS_TOO_LARGE");
    // One huge header, past the head buffer.
    let huge = format!(
        "GET /v1/organization HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let (status, head, body) = raw(&app, huge.as_bytes()).await;
    assert_envelope(status, &head, &body, 431, "REQUEST_HEADERS_TOO_LARGE");
    // Unparseable HTTP: hyper's own 400.
    let (status, head, body) =
        raw(&app, b"GET /v1/organization HTTP/1.1\r\nBad Header\r\n\r\n").await;
    assert_envelope(status, &head, &body, 400, "INVALID_REQUEST");
    // The connection still serves well-formed requests afterwards.
    let res = app.get(&key, "/v1/organization").await;
    assert_eq!(res.status, 200);
}

/// The schema of `name` in the component `component` of the document.
fn property(doc: &Value, component: &str, name: &str) -> Value {
    doc["components"]["schemas"][component]["properties"][name].clone()
}

#[tokio::test]
async fn amounts_are_read_by_the_documented_grammar() {
    let (app, _, _, token, _) = app_with_everything().await;
    let vendors = app.all(&token, "/v1/vendors?page_size=100").await.0;
    let vendor = vendors.iter().find(|v| v["status"] == "active").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = app.all(&token, "/v1/items?page_size=100").await.0;
    let item = items
        .iter()
        .find(|i| i["item_type"] == "inventory" && i["quantity_available"] != "0")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let order = |quantity: Value, price: Value| json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": quantity, "unit_price": price}]});
    // Forms the lenient decimal parser read but the document's pattern forbids.
    for bad in [
        "1e1",
        "+1",
        "1_0",
        " 1",
        ".5",
        "1000000000000000",
        "1.00000000001",
    ] {
        let res = app
            .post(
                &token,
                "/v1/purchase-orders",
                order(json!(bad), Value::Null),
            )
            .await;
        let err = res.assert_error(400, "INVALID_REQUEST");
        assert_eq!(err["param"], "line_items[0].quantity", "{bad}");
    }
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            order(json!(1e300), Value::Null),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "line_items[0].quantity"
    );
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            order(json!("1"), json!("1e1")),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "line_items[0].unit_price"
    );
    // The documented forms: a decimal string, or a number.
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            order(json!("2.5"), json!("12.50")),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = app
        .post(&token, "/v1/purchase-orders", order(json!(2), json!(12.5)))
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    // The document states the same grammar and the id prefixes.
    let doc = document();
    let quantity = property(&doc, "PurchaseOrderLineIn", "quantity");
    assert_eq!(
        quantity["anyOf"][0]["pattern"],
        ironbridge_model::amount::PATTERN
    );
    assert_eq!(quantity["anyOf"][1]["exclusiveMinimum"], 0.0);
    assert_eq!(
        property(&doc, "PurchaseOrderLineIn", "item_id")["pattern"],
        "^itm_"
    );
    assert_eq!(
        property(&doc, "PurchaseOrderIn", "vendor_id")["pattern"],
        "^vnd_"
    );
    assert_eq!(
        property(&doc, "PurchaseOrderIn", "line_items")["minItems"],
        1
    );
}

#[tokio::test]
async fn webhook_lists_and_overlaps_are_as_the_document_says() {
    let (app, key, _, _, endpoint) = app_with_everything().await;
    // Empty lists are refused; the document says at least one.
    for field in ["event_types", "connection_ids"] {
        let res = app
            .post(
                &key,
                "/v1/webhook-endpoints",
                json!({"url": "http://127.0.0.1:9/hook", field: []}),
            )
            .await;
        assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], field);
        let schema = property(&document(), "WebhookEndpointIn", field);
        assert_eq!(schema["minItems"], 1, "{field}");
    }
    let doc = document();
    let listed: Vec<Value> = property(&doc, "WebhookEndpointIn", "event_types")["items"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    let known: Vec<Value> = ironbridge_model::webhooks::EVENT_TYPES
        .iter()
        .map(|t| json!(t.name))
        .collect();
    assert_eq!(listed, known);
    assert_eq!(
        property(&doc, "WebhookEndpointPatch", "event_types")["items"]["enum"],
        json!(known)
    );
    assert_eq!(
        property(&doc, "WebhookSecretRotateIn", "secret")["pattern"],
        ironbridge_model::webhooks::SECRET_PATTERN
    );
    // JSON Schema counts 60.0 an integer, so the server reads it as 60; a fraction is refused.
    let rotate = format!("/v1/webhook-endpoints/{endpoint}/secret/rotate");
    let res = app.post(&key, &rotate, json!({"overlap_secs": 60.0})).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = app.post(&key, &rotate, json!({"overlap_secs": 60.5})).await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "overlap_secs"
    );
    let res = app.post(&key, &rotate, json!({"overlap_secs": -1})).await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "overlap_secs"
    );
}

#[tokio::test]
async fn the_time_window_examples_make_an_accepted_request() {
    let (app, _, _, token, _) = app_with_everything().await;
    let doc = document();
    let params = doc["paths"]["/v1/vendors"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let example = |name: &str| {
        params.iter().find(|p| p["name"] == name).unwrap()["schema"]["examples"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (after, before) = (example("modified_after"), example("modified_before"));
    let res = app
        .get(
            &token,
            &format!("/v1/vendors?modified_after={after}&modified_before={before}"),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // The reversed window is refused, as the description says.
    let res = app
        .get(
            &token,
            &format!("/v1/vendors?modified_after={before}&modified_before={after}"),
        )
        .await;
    assert_eq!(
        res.assert_error(400, "INVALID_REQUEST")["param"],
        "modified_after"
    );
}
