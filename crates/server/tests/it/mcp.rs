//! The MCP server: Streamable HTTP at `/mcp` spoken as raw JSON-RPC (initialize, tools/list,
//! tools/call), its tools generated per connection, pages bounded, tool errors carrying the
//! REST error's code and request id, scopes (read-only unless granted), tenancy, meta mode,
//! and the stdio transport in process.

use std::collections::HashSet;
use std::sync::Arc;

use ironbridge_server::mcp::{ToolMode, serve_io};
use ironbridge_server::{AppState, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Res, TestApp};

const PROTOCOL: &str = "2025-06-18";

/// One JSON-RPC request to `/mcp` (with `?query` when given).
async fn rpc(app: &TestApp, token: &str, query: &str, method: &str, params: Value) -> Res {
    let mut req = app
        .client
        .post(app.url(&format!("/mcp{query}")))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if method != "initialize" {
        req = req.header("MCP-Protocol-Version", PROTOCOL);
    }
    app.send(req).await
}

async fn tools(app: &TestApp, token: &str) -> Vec<Value> {
    let res = rpc(app, token, "", "tools/list", json!({})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["result"]["tools"].as_array().unwrap().clone()
}

fn names(tools: &[Value]) -> HashSet<String> {
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Calls a tool; returns the HTTP answer and the tool's result.
pub(crate) async fn call(app: &TestApp, token: &str, tool: &str, args: Value) -> (Res, Value) {
    let res = rpc(
        app,
        token,
        "",
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let result = res.body["result"].clone();
    (res, result)
}

/// The error object of a tool error (its text is the REST error body).
pub(crate) fn tool_error(result: &Value) -> Value {
    assert_eq!(result["isError"], true, "not a tool error: {result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    let body: Value = serde_json::from_str(text).expect("the error text is the REST error body");
    body["error"].clone()
}

pub(crate) fn ok(result: &Value) -> &Value {
    assert_ne!(result["isError"], true, "tool error: {result}");
    &result["structuredContent"]
}

/// A sandbox connection whose token has `mcp_access`.
async fn connection(app: &TestApp, key: &str, access: &str) -> (String, String) {
    let res = app
        .post(
            key,
            "/v1/connections",
            json!({"system": "sandbox", "name": "ERP", "mcp_access": access}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["connection"]["mcp_access"], access);
    (
        res.body["connection"]["id"].as_str().unwrap().to_string(),
        res.body["token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn initialize_and_tools_generated_from_the_catalogue() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, token) = app.connection(&key, json!({})).await;

    let init = rpc(
        &app,
        &token,
        "",
        "initialize",
        json!({"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.text);
    assert_eq!(init.body["result"]["serverInfo"]["name"], "ironbridge");
    assert!(init.body["result"]["capabilities"]["tools"].is_object());
    assert!(init.header("x-request-id").unwrap().starts_with("req_"));

    let listed = tools(&app, &token).await;
    let got = names(&listed);
    for want in [
        "connection_status",
        "trigger_sync",
        "describe_entity",
        "list_purchase_orders",
        "get_purchase_order",
        "list_vendors",
        "get_vendor",
        "list_items",
        "get_item",
        "list_locations",
        "get_location",
        "list_changes",
    ] {
        assert!(got.contains(want), "{want} missing from {got:?}");
    }
    // The change feed, paged for agents, its cursor kept even at the end.
    let (_, result) = call(&app, &token, "list_changes", json!({"page_size": 100})).await;
    let feed = ok(&result);
    let n = feed["data"].as_array().unwrap().len();
    assert!(n > 0 && feed["data"][0]["change"] == "created", "{feed}");
    let cursor = feed["next_cursor"].as_str().unwrap().to_string();
    let mut cursor = cursor;
    loop {
        let (_, result) = call(
            &app,
            &token,
            "list_changes",
            json!({"page_size": 100, "cursor": cursor}),
        )
        .await;
        let page = ok(&result).clone();
        cursor = page["next_cursor"].as_str().unwrap().to_string();
        if page["data"].as_array().unwrap().is_empty() {
            let text = result["content"][0]["text"].as_str().unwrap();
            assert!(text.contains("Nothing more yet"), "{text}");
            break;
        }
    }
    // Read-only by default: no write tool is listed.
    assert!(
        !got.iter()
            .any(|n| n.starts_with("create_") || n.starts_with("update_")),
        "{got:?}"
    );
    for t in &listed {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
    }
    let list = listed
        .iter()
        .find(|t| t["name"] == "list_purchase_orders")
        .unwrap();
    let props = &list["inputSchema"]["properties"];
    assert_eq!(props["page_size"]["maximum"], 100);
    // The REST filters, as the OpenAPI document states them.
    for p in [
        "cursor",
        "modified_after",
        "modified_before",
        "include_remote_data",
    ] {
        assert!(props[p].is_object(), "{p}: {props}");
    }
    // Output schemas are self-contained.
    let output = list["outputSchema"].to_string();
    assert!(!output.contains("#/components/"), "{output}");
    assert!(list["outputSchema"]["$defs"]["PurchaseOrder"].is_object());

    // Granted writes: the sandbox's write tools appear (purchase orders only).
    let (_, writer) = connection(&app, &key, "read_write").await;
    let got = names(&tools(&app, &writer).await);
    assert!(got.contains("create_purchase_order"), "{got:?}");
    assert!(got.contains("update_purchase_order"), "{got:?}");
    assert!(!got.contains("create_vendor"), "{got:?}");
}

#[tokio::test]
async fn lists_page_within_bounds_and_get_reads_one() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, token) = app.connection(&key, json!({})).await;
    let (rest, _) = app.all(&token, "/v1/purchase-orders").await;
    assert!(rest.len() > 100, "the sandbox has more than a page");

    let (_, first) = call(&app, &token, "list_purchase_orders", json!({})).await;
    let page = ok(&first);
    assert_eq!(page["data"].as_array().unwrap().len(), 25);
    let cursor = page["next_cursor"].as_str().unwrap();
    let text = first["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(cursor),
        "the summary says how to get more: {text}"
    );
    assert!(
        page["data"][0].get("remote_data").is_none(),
        "raw payloads are left out"
    );

    let mut seen = Vec::new();
    let mut args = json!({"page_size": 100});
    loop {
        let (_, result) = call(&app, &token, "list_purchase_orders", args.clone()).await;
        let page = ok(&result);
        assert!(page["data"].as_array().unwrap().len() <= 100);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => args = json!({"page_size": 100, "cursor": c}),
            None => break,
        }
    }
    let rest_ids: Vec<String> = rest
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, rest_ids, "every order once, in the REST order");

    // Bounds: a page over 100 is a bad argument, with the request's id.
    let (res, result) = call(
        &app,
        &token,
        "list_purchase_orders",
        json!({"page_size": 101}),
    )
    .await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["param"], "page_size");
    assert_eq!(err["request_id"], res.header("x-request-id").unwrap());

    // A bad filter is the REST API's own refusal.
    let (_, result) = call(
        &app,
        &token,
        "list_purchase_orders",
        json!({"modified_after": "yesterday"}),
    )
    .await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
    assert_eq!(err["param"], "modified_after");

    // One record, exactly as the REST API reads it.
    let id = rest_ids[3].as_str();
    let (_, result) = call(&app, &token, "get_purchase_order", json!({"id": id})).await;
    let one = app.get(&token, &format!("/v1/purchase-orders/{id}")).await;
    assert_eq!(ok(&result), &one.body);

    let (res, result) = call(
        &app,
        &token,
        "get_purchase_order",
        json!({"id": "po_doesnotexist"}),
    )
    .await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "NOT_FOUND");
    assert_eq!(err["request_id"], res.header("x-request-id").unwrap());

    // Describe: schema, the mapping in force and the write rules.
    let (_, result) = call(
        &app,
        &token,
        "describe_entity",
        json!({"entity": "purchase_order"}),
    )
    .await;
    let described = ok(&result);
    assert_eq!(described["system"], "sandbox");
    assert!(
        described["schema"]["$defs"]["PurchaseOrderLine"].is_object(),
        "{described}"
    );
    assert!(
        !described["mapping"]["fields"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        described["writes"]["operations"]["create"], true,
        "{described}"
    );
}

#[tokio::test]
async fn writes_need_a_grant_and_replay_under_their_key() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, reader) = app.connection(&key, json!({})).await;
    let (_, writer) = connection(&app, &key, "read_write").await;
    let vendors = app.get(&writer, "/v1/vendors?page_size=50").await.body["data"].clone();
    let vendor = vendors
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["status"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = app.get(&writer, "/v1/items?page_size=50").await.body["data"].clone();
    let item = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "active" && i["quantity_available"].as_str() != Some("0"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let order = json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": "2"}]});

    // Read-only token: refused, nothing written.
    let mut args = order.clone();
    args["idempotency_key"] = json!("k-1");
    let (_, result) = call(&app, &reader, "create_purchase_order", args.clone()).await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "PERMISSION_DENIED");
    assert!(err["request_id"].as_str().unwrap().starts_with("req_"));

    // Granted: written once, replayed under the same key.
    let (_, first) = call(&app, &writer, "create_purchase_order", args.clone()).await;
    let created = ok(&first).clone();
    assert!(
        created["id"].as_str().unwrap().starts_with("po_"),
        "{created}"
    );
    let (_, again) = call(&app, &writer, "create_purchase_order", args.clone()).await;
    assert_eq!(ok(&again), &created);
    assert!(
        again["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Replayed"),
        "{again}"
    );
    // The same key with other arguments is the REST API's refusal.
    let mut other = args.clone();
    other["memo"] = json!("changed");
    let (_, result) = call(&app, &writer, "create_purchase_order", other).await;
    assert_eq!(
        tool_error(&result)["code"],
        "IDEMPOTENCY_KEY_REUSED",
        "{result}"
    );

    // A bad argument names the field.
    let (_, result) = call(
        &app,
        &writer,
        "create_purchase_order",
        json!({"line_items": [{"item_id": item, "quantity": "1"}]}),
    )
    .await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "VALIDATION_ERROR");
    assert_eq!(err["param"], "vendor_id");

    // Metrics count the calls, by tool and outcome.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ironbridge_mcp_tool_calls_total{tool=\"create_purchase_order\",outcome=\"PERMISSION_DENIED\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn().await;
    let (_, key_a) = app.org(5).await;
    let (_, key_b) = app.org(5).await;
    let (conn_a, token_a) = app.connection(&key_a, json!({})).await;
    let (_, token_b) = app.connection(&key_b, json!({})).await;
    let po_a = app
        .get(&token_a, "/v1/purchase-orders?page_size=1")
        .await
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // B's token on A's record: not found (the sandbox of B has the same seed, not the same ids).
    let (_, result) = call(&app, &token_b, "get_purchase_order", json!({"id": po_a})).await;
    assert_eq!(tool_error(&result)["code"], "NOT_FOUND");
    // B's organization key naming A's connection: not found.
    let listed = names(&tools(&app, &key_b).await);
    assert!(listed.contains("list_purchase_orders"));
    let (_, result) = call(
        &app,
        &key_b,
        "list_purchase_orders",
        json!({"connection_id": conn_a}),
    )
    .await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "NOT_FOUND", "{err}");
    let (_, result) = call(
        &app,
        &key_b,
        "describe_entity",
        json!({"connection_id": conn_a, "entity": "vendor"}),
    )
    .await;
    assert_eq!(tool_error(&result)["code"], "NOT_FOUND");
    // A's own key reaches it, and must say which connection.
    let (_, result) = call(
        &app,
        &key_a,
        "get_purchase_order",
        json!({"connection_id": conn_a, "id": po_a}),
    )
    .await;
    assert_eq!(ok(&result)["id"], po_a.as_str());
    let (_, result) = call(&app, &key_a, "get_purchase_order", json!({"id": po_a})).await;
    let err = tool_error(&result);
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["param"], "connection_id");

    // No credential, a bad one: the REST API's 401.
    let res = rpc(&app, "", "", "tools/list", json!({})).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body["error"]["code"], "AUTHENTICATION_FAILED");
    let res = rpc(&app, "ibc_nope", "", "tools/list", json!({})).await;
    assert_eq!(res.status, 401);

    // No secret in a result: the status shows neither the token nor its prefix.
    let (_, result) = call(&app, &token_a, "connection_status", json!({})).await;
    let status = ok(&result);
    assert_eq!(status["id"], conn_a.as_str());
    let text = result.to_string();
    assert!(!text.contains(&token_a), "{text}");
    assert!(!text.contains(&token_a[..8]), "{text}");
    assert!(status.get("token_prefix").is_none());

    // An unknown tool is a protocol error, not a tool result.
    let res = rpc(
        &app,
        &token_a,
        "",
        "tools/call",
        json!({"name": "drop_tables", "arguments": {}}),
    )
    .await;
    assert!(res.body["error"]["code"].is_i64(), "{}", res.text);
}

#[tokio::test]
async fn meta_mode_reaches_every_tool_through_three() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, token) = app.connection(&key, json!({})).await;
    let res = rpc(&app, &token, "?tools=meta", "tools/list", json!({})).await;
    let listed = names(res.body["result"]["tools"].as_array().unwrap());
    assert_eq!(
        listed,
        HashSet::from([
            "search_tools".to_string(),
            "describe_tool".to_string(),
            "call_tool".to_string()
        ])
    );
    let call_meta = |name: &'static str, args: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            rpc(
                app,
                &token,
                "?tools=meta",
                "tools/call",
                json!({"name": name, "arguments": args}),
            )
            .await
            .body["result"]
                .clone()
        }
    };
    let found = call_meta("search_tools", json!({"query": "purchase orders list"})).await;
    let found = names(ok(&found)["tools"].as_array().unwrap());
    assert!(found.contains("list_purchase_orders"), "{found:?}");
    assert!(!found.contains("list_vendors"), "{found:?}");
    let described = call_meta("describe_tool", json!({"name": "get_vendor"})).await;
    assert_eq!(ok(&described)["input_schema"]["required"], json!(["id"]));
    let page = call_meta(
        "call_tool",
        json!({"name": "list_vendors", "arguments": {"page_size": 3}}),
    )
    .await;
    assert_eq!(ok(&page)["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn stdio_serves_the_same_tools() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let (_, token) = app.connection(&key, json!({})).await;
    let state = AppState::new(
        app.store.clone(),
        app.keys.clone(),
        Arc::new(app.clock.clone()),
        app.runtimes.clone(),
        app.webhooks.clone(),
        ServerConfig::default(),
        app.shutdown.child_token(),
    );
    let principal = ironbridge_server::auth::identify_token(&state, &token)
        .await
        .unwrap();
    assert!(
        ironbridge_server::auth::identify_token(&state, "ibc_wrong")
            .await
            .is_err()
    );
    let (client, server) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server);
    let served = tokio::spawn(serve_io(
        state,
        principal,
        ToolMode::All,
        server_read,
        server_write,
    ));
    let (client_read, mut client_write) = tokio::io::split(client);
    let mut lines = BufReader::new(client_read).lines();
    let mut ask = async |msg: Value| -> Option<Value> {
        client_write
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        // A notification has no answer.
        msg.get("id")?;
        let line = lines.next_line().await.unwrap().unwrap();
        Some(serde_json::from_str(&line).unwrap())
    };
    let init = ask(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await.unwrap();
    assert_eq!(init["result"]["serverInfo"]["name"], "ironbridge");
    ask(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    let listed = ask(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await
        .unwrap();
    let got = names(listed["result"]["tools"].as_array().unwrap());
    assert!(got.contains("list_purchase_orders"), "{got:?}");
    assert!(!got.contains("create_purchase_order"), "{got:?}");
    let page = ask(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "list_purchase_orders", "arguments": {"page_size": 5}}})).await.unwrap();
    assert_eq!(
        ok(&page["result"])["data"].as_array().unwrap().len(),
        5,
        "{page}"
    );
    let missing = ask(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "get_purchase_order", "arguments": {"id": "po_none"}}})).await.unwrap();
    let err = tool_error(&missing["result"]);
    assert_eq!(err["code"], "NOT_FOUND");
    assert!(err["request_id"].as_str().unwrap().starts_with("req_"));
    served.abort();
}
