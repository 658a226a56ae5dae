//! Running a tool call: its arguments become the REST request the tool stands for (query,
//! path, body, `Idempotency-Key`, `X-Connection-Id`), run in process through the REST API's
//! routes with the caller's principal, and the answer becomes the tool's result: the JSON
//! body as `structuredContent` with a short summary, or the REST error body (`code`,
//! `message`, `request_id`) as a tool error.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use ironbridge_core::write;
use ironbridge_model::{Entity, ErrorCode};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::tools::{self, Action, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ToolDef};
use super::{Caller, McpServer, ToolMode};
use crate::auth::{CONNECTION_ID_HEADER, Principal};
use crate::context::current_request_id;
use crate::error::ApiError;
use crate::idempotency::{IDEMPOTENCY_KEY, REPLAYED};
use crate::routes::records::{collection_path, item_path};

/// Largest REST answer a tool reads back.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A tool error with the REST error body of `err` (same code, message and request id).
pub fn tool_error(err: ApiError) -> CallToolResult {
    let status = err.code.status();
    let body = error_body(&err);
    if status >= 500 {
        tracing::error!(request_id = %current_request_id(), code = %err.code, cause = err.internal.as_deref().unwrap_or(""), "tool call failed");
    }
    CallToolResult::error(vec![ContentBlock::text(body.to_string())])
}

fn error_body(err: &ApiError) -> Value {
    let mut obj = Map::new();
    obj.insert("code".into(), err.code.as_str().into());
    obj.insert("type".into(), err.code.error_type().into());
    obj.insert("message".into(), err.message.clone().into());
    obj.insert("request_id".into(), current_request_id().into());
    if let Some(p) = &err.param {
        obj.insert("param".into(), p.clone().into());
    }
    if let Some(d) = &err.details {
        obj.insert("details".into(), d.clone());
    }
    json!({ "error": obj })
}

/// `ok`, or the error code of a tool error (for the audit log and metrics).
pub fn outcome_label(result: &CallToolResult) -> String {
    if result.is_error != Some(true) {
        return "ok".into();
    }
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .and_then(|t| serde_json::from_str::<Value>(&t.text).ok())
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "error".into())
}

fn invalid(param: &str, message: impl Into<String>) -> CallToolResult {
    tool_error(ApiError::new(ErrorCode::InvalidRequest, message).param(param))
}

/// Runs the tool `name` for `caller`.
pub async fn run(
    server: &McpServer,
    caller: &Caller,
    name: &str,
    args: JsonObject,
) -> Result<CallToolResult, ErrorData> {
    if caller.mode == ToolMode::Meta {
        match name {
            "search_tools" => return search(server, caller, &args),
            "describe_tool" => return describe_tool(server, caller, &args),
            "call_tool" => {
                let Some(inner) = args.get("name").and_then(Value::as_str) else {
                    return Ok(invalid("name", "`name` must be a tool's name."));
                };
                let inner_args = match args.get("arguments") {
                    None | Some(Value::Null) => JsonObject::new(),
                    Some(Value::Object(m)) => m.clone(),
                    Some(_) => return Ok(invalid("arguments", "`arguments` must be an object.")),
                };
                if matches!(inner, "search_tools" | "describe_tool" | "call_tool") {
                    return Ok(invalid(
                        "name",
                        "`call_tool` runs the connection's tools, not itself.",
                    ));
                }
                return Box::pin(run_tool(server, caller, inner, inner_args)).await;
            }
            _ => {}
        }
    }
    run_tool(server, caller, name, args).await
}

async fn run_tool(
    server: &McpServer,
    caller: &Caller,
    name: &str,
    args: JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let tools = server.tools_of(caller)?;
    let Some(def) = tools.iter().find(|t| t.tool.name == name).cloned() else {
        // A write tool the credential was not granted: a refusal it can read, not "no such tool".
        let granted = Caller {
            principal: caller.principal.clone().with_writes(),
            ..caller.clone()
        };
        if server
            .tools_of(&granted)?
            .iter()
            .any(|t| t.tool.name == name && t.action.writes())
        {
            return Ok(tool_error(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "`{name}` writes to the source system, and this credential's MCP access is read-only. Create a credential with `\"mcp_access\": \"read_write\"` to use write tools."
                ),
            )));
        }
        return Err(ErrorData::invalid_params(
            format!("Unknown tool: {name}"),
            None,
        ));
    };
    Ok(execute(server, caller, &def, args).await)
}

fn search(
    server: &McpServer,
    caller: &Caller,
    args: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let query = args
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches('s').to_string())
        .collect();
    let found: Vec<Value> = server
        .tools_of(caller)?
        .iter()
        .filter(|t| {
            let hay = format!(
                "{} {}",
                t.tool.name.replace('_', " "),
                t.tool.description.as_deref().unwrap_or("")
            )
            .to_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .map(|t| json!({"name": t.tool.name, "description": t.tool.description.as_deref().unwrap_or("").split(". ").next().unwrap_or("")}))
        .collect();
    let text = format!(
        "{} tools: {}",
        found.len(),
        found
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(structured(json!({ "tools": found }), text))
}

fn describe_tool(
    server: &McpServer,
    caller: &Caller,
    args: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let name = args.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(def) = server
        .tools_of(caller)?
        .iter()
        .find(|t| t.tool.name == name)
        .cloned()
    else {
        return Ok(tool_error(
            ApiError::new(
                ErrorCode::NotFound,
                format!("No tool `{name}`; `search_tools` lists them."),
            )
            .param("name"),
        ));
    };
    let out = json!({
        "name": def.tool.name,
        "description": def.tool.description,
        "input_schema": *def.tool.input_schema,
        "output_schema": def.tool.output_schema.as_deref(),
    });
    Ok(structured(out, format!("Schemas of `{name}`.")))
}

fn structured(value: Value, summary: String) -> CallToolResult {
    let mut result = CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(summary)];
    result
}

/// A path segment, percent-encoded.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON argument as a query value.
fn query_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A REST request the tool stands for.
struct RestCall {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    idempotency_key: Option<String>,
}

/// The REST answer.
struct Answer {
    status: StatusCode,
    body: Value,
    replayed: bool,
}

async fn send(
    server: &McpServer,
    caller: &Caller,
    connection_id: Option<&str>,
    call: RestCall,
) -> Result<Answer, CallToolResult> {
    let mut uri = call.path;
    if !call.query.is_empty() {
        uri.push('?');
        uri.push_str(&serde_urlencoded::to_string(&call.query).unwrap_or_default());
    }
    let body = match &call.body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let mut request = Request::builder()
        .method(call.method)
        .uri(&uri)
        .body(body)
        .map_err(|_| invalid("id", "The arguments do not make a valid request."))?;
    if call.body.is_some() {
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(conn) = connection_id {
        let value = HeaderValue::from_str(conn).map_err(|_| {
            invalid(
                "connection_id",
                "`connection_id` must be a connection id (`conn_…`).",
            )
        })?;
        request.headers_mut().insert(CONNECTION_ID_HEADER, value);
    }
    if let Some(key) = &call.idempotency_key {
        let value = HeaderValue::from_str(key).map_err(|_| {
            invalid(
                "idempotency_key",
                "`idempotency_key` must be 1 to 255 visible ASCII characters.",
            )
        })?;
        request.headers_mut().insert(IDEMPOTENCY_KEY.clone(), value);
    }
    request.extensions_mut().insert(caller.principal.clone());
    let response = match server.shared.rest.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let replayed = response.headers().contains_key(&REPLAYED);
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| tool_error(ApiError::internal(format!("reading an answer: {e}"))))?;
    let body = serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| tool_error(ApiError::internal(format!("an answer is not JSON: {e}"))))?;
    Ok(Answer {
        status,
        body,
        replayed,
    })
}

/// The REST error body as a tool error, or the success as the tool's result.
fn answer_result(answer: Answer, summary: impl FnOnce(&Value) -> String) -> CallToolResult {
    if !answer.status.is_success() {
        let text = if answer.body.get("error").is_some() {
            answer.body.to_string()
        } else {
            error_body(&ApiError::internal("an error answer without an error body")).to_string()
        };
        return CallToolResult::error(vec![ContentBlock::text(text)]);
    }
    let mut text = summary(&answer.body);
    if answer.replayed {
        text.push_str(" (Replayed: the answer of an earlier call with the same idempotency_key; nothing was written again.)");
    }
    structured(answer.body, text)
}

/// A record in a few words: its id and its first identifying fields.
fn brief(record: &Value) -> String {
    let mut parts = vec![record["id"].as_str().unwrap_or("?").to_string()];
    for key in [
        "number",
        "code",
        "name",
        "status",
        "total_amount",
        "currency",
    ] {
        match &record[key] {
            Value::String(s) if !s.is_empty() => parts.push(s.clone()),
            Value::Number(n) => parts.push(n.to_string()),
            _ => {}
        }
    }
    if record["remote_was_deleted"] == true {
        parts.push("deleted".into());
    }
    parts.join(" · ")
}

/// A GPS point in a few words: vehicle, time, position, speed.
/// One change of the feed in a line: its number, what happened, and the record's brief.
fn change_brief(change: &Value) -> String {
    let record = match &change["record"] {
        Value::Null => change["id"].as_str().unwrap_or("?").to_string(),
        record => brief(record),
    };
    format!(
        "#{} {} {}: {record}",
        change["seq"],
        change["change"].as_str().unwrap_or("?"),
        change["entity"].as_str().unwrap_or("?"),
    )
}

fn point_brief(point: &Value) -> String {
    let mut parts = vec![
        point["vehicle_id"].as_str().unwrap_or("?").to_string(),
        point["recorded_at"].as_str().unwrap_or("?").to_string(),
    ];
    if let (Some(lat), Some(lon)) = (point["latitude"].as_f64(), point["longitude"].as_f64()) {
        parts.push(format!("{lat:.5},{lon:.5}"));
    }
    if let Some(kph) = point["speed_kph"].as_f64() {
        parts.push(format!("{kph:.0} km/h"));
    }
    if let Some(address) = point["address"].as_str() {
        parts.push(address.to_string());
    }
    parts.join(" · ")
}

/// What a paged list tool reads and how it sums an item up.
struct Page<'a> {
    path: &'a str,
    plural: &'a str,
    tool: &'a str,
    brief: fn(&Value) -> String,
}

/// A page of a REST list for a list tool: `page_size` bounded for agents, the other
/// arguments as the query, and a text that says how to get the next page.
async fn list(
    server: &McpServer,
    caller: &Caller,
    conn: Option<&str>,
    page: &Page<'_>,
    mut args: JsonObject,
) -> Result<CallToolResult, CallToolResult> {
    let page_size = match args.remove("page_size") {
        None | Some(Value::Null) => DEFAULT_PAGE_SIZE as u64,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_PAGE_SIZE as u64).contains(&n) => n,
            _ => {
                return Ok(invalid(
                    "page_size",
                    format!("`page_size` must be an integer from 1 to {MAX_PAGE_SIZE}."),
                ));
            }
        },
    };
    let mut query = vec![("page_size".to_string(), page_size.to_string())];
    query.extend(
        args.iter()
            .filter_map(|(k, v)| Some((k.clone(), query_value(v)?))),
    );
    let call = RestCall {
        method: Method::GET,
        path: page.path.to_string(),
        query,
        body: None,
        idempotency_key: None,
    };
    let Page {
        plural,
        tool,
        brief,
        ..
    } = *page;
    send(server, caller, conn, call).await.map(|answer| {
        answer_result(answer, |body| {
            let data = body["data"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut text = format!("{} {plural} on this page", data.len());
            if let Some(total) = body["total_count"].as_u64() {
                text.push_str(&format!(" ({total} in all)"));
            }
            text.push_str(":\n");
            for r in data {
                text.push_str("- ");
                text.push_str(&brief(r));
                text.push('\n');
            }
            match body["next_cursor"].as_str() {
                // A feed's end: its cursor is where later items will come.
                Some(c) if data.is_empty() => text.push_str(&format!(
                    "Nothing more yet: call {tool} again later with the same arguments and \"cursor\": \"{c}\" for what comes next."
                )),
                Some(c) => text.push_str(&format!(
                    "More: call {tool} again with the same arguments and \"cursor\": \"{c}\"."
                )),
                None => text.push_str("This is the last page."),
            }
            text
        })
    })
}

async fn execute(
    server: &McpServer,
    caller: &Caller,
    def: &ToolDef,
    mut args: JsonObject,
) -> CallToolResult {
    let connection_id = match &caller.principal {
        Principal::Admin { .. } => match args.remove("connection_id") {
            Some(Value::String(id)) => Some(id),
            _ => {
                return tool_error(
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        "An organization API key must name the connection: give `connection_id` (`conn_…`).",
                    )
                    .param("connection_id"),
                );
            }
        },
        Principal::Connection(_) => None,
    };
    let conn = connection_id.as_deref();
    let tool_name = def.tool.name.to_string();
    let result = match def.action {
        Action::List(entity) => {
            let plural = entity.spec().title.to_lowercase();
            let page = Page {
                path: collection_path(entity),
                plural: &plural,
                tool: &tool_name,
                brief,
            };
            list(server, caller, conn, &page, args).await
        }
        Action::Locations { latest } => {
            let page = Page {
                path: tools::locations_path(latest),
                plural: "vehicle locations",
                tool: &tool_name,
                brief: point_brief,
            };
            list(server, caller, conn, &page, args).await
        }
        Action::Changes => {
            let page = Page {
                path: tools::CHANGES_PATH,
                plural: "changes",
                tool: &tool_name,
                brief: change_brief,
            };
            list(server, caller, conn, &page, args).await
        }
        Action::Get(entity) => {
            let Some(Value::String(id)) = args.remove("id") else {
                return invalid(
                    "id",
                    format!("`id` is required: the {}'s id.", entity.spec().label),
                );
            };
            let call = RestCall {
                method: Method::GET,
                path: item_path(entity).replace("{id}", &segment(&id)),
                query: args
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), query_value(v)?)))
                    .collect(),
                body: None,
                idempotency_key: None,
            };
            let label = entity.spec().label;
            send(server, caller, conn, call)
                .await
                .map(|answer| answer_result(answer, |body| format!("The {label} {}.", brief(body))))
        }
        Action::Create(entity) | Action::Update(entity) => {
            let key = match args.remove("idempotency_key") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => Some(k),
                Some(_) => {
                    return invalid("idempotency_key", "`idempotency_key` must be a string.");
                }
            };
            let (method, path, verb) = if let Action::Update(_) = def.action {
                let Some(Value::String(id)) = args.remove("id") else {
                    return invalid(
                        "id",
                        format!("`id` is required: the {}'s id.", entity.spec().label),
                    );
                };
                (
                    Method::PATCH,
                    item_path(entity).replace("{id}", &segment(&id)),
                    "Updated",
                )
            } else {
                (Method::POST, collection_path(entity).to_string(), "Created")
            };
            let call = RestCall {
                method,
                path,
                query: Vec::new(),
                body: Some(Value::Object(args)),
                idempotency_key: key,
            };
            let label = entity.spec().label;
            send(server, caller, conn, call).await.map(|answer| {
                answer_result(answer, |body| {
                    format!("{verb} the {label} {}.", brief(body))
                })
            })
        }
        Action::ConnectionStatus => {
            if !args.is_empty() {
                return invalid("arguments", "`connection_status` takes no arguments.");
            }
            send(server, caller, conn, get("/v1/connection"))
                .await
                .map(|mut answer| {
                    if let Value::Object(m) = &mut answer.body {
                        m.remove("token_prefix");
                    }
                    answer_result(answer, |c| {
                        format!(
                            "Connection {} ({}) is {}; circuit {}.",
                            c["id"].as_str().unwrap_or("?"),
                            c["system"].as_str().unwrap_or("?"),
                            c["status"].as_str().unwrap_or("?"),
                            c["health"]["circuit_state"].as_str().unwrap_or("?")
                        )
                    })
                })
        }
        Action::TriggerSync => {
            let call = RestCall {
                method: Method::POST,
                path: "/v1/sync".into(),
                query: Vec::new(),
                body: Some(Value::Object(args)),
                idempotency_key: None,
            };
            send(server, caller, conn, call).await.map(|answer| {
                answer_result(answer, |b| {
                    format!(
                        "Sync job {} is {}{}.",
                        b["job"]["id"].as_str().unwrap_or("?"),
                        b["job"]["status"].as_str().unwrap_or("?"),
                        if b["already_queued"] == true {
                            " (one was already queued)"
                        } else {
                            ""
                        }
                    )
                })
            })
        }
        Action::DescribeEntity => describe_entity(server, caller, conn, &args).await,
        Action::SearchTools | Action::DescribeTool | Action::CallTool => Ok(invalid(
            "name",
            "Meta tools are served with `?tools=meta` only.",
        )),
    };
    result.unwrap_or_else(|e| e)
}

fn get(path: &str) -> RestCall {
    RestCall {
        method: Method::GET,
        path: path.into(),
        query: Vec::new(),
        body: None,
        idempotency_key: None,
    }
}

/// The unified schema, the mapping in force and the write rules of an entity on the
/// caller's connection (found through the REST API, so tenancy is its own).
async fn describe_entity(
    server: &McpServer,
    caller: &Caller,
    conn: Option<&str>,
    args: &JsonObject,
) -> Result<CallToolResult, CallToolResult> {
    let entity = args
        .get("entity")
        .and_then(Value::as_str)
        .and_then(Entity::parse)
        .ok_or_else(|| {
            let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
            invalid(
                "entity",
                format!("`entity` must be one of {}.", known.join(", ")),
            )
        })?;
    let answer = send(server, caller, conn, get("/v1/connection")).await?;
    if !answer.status.is_success() {
        return Ok(answer_result(answer, |_| String::new()));
    }
    let system_id = answer.body["system"].as_str().unwrap_or_default();
    let system = server
        .shared
        .state
        .runtimes
        .registry()
        .get(system_id)
        .ok_or_else(|| tool_error(ApiError::internal(format!("unknown system {system_id}"))))?;
    let schema_name = (entity.spec().schema.name)();
    let schema =
        tools::self_contained(&json!({"$ref": format!("#/components/schemas/{schema_name}")}));
    let mapping = system
        .mapping(entity)
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(Value::Null);
    let writes = serde_json::to_value(write::meta(system, entity)).unwrap_or(Value::Null);
    let out = json!({
        "entity": entity.as_str(),
        "system": system_id,
        "schema": Value::Object(schema),
        "mapping": mapping,
        "writes": writes,
    });
    let text = format!(
        "The {} on {}: unified schema, the default mapping of {} ({} fields) and its write rules.",
        entity.spec().label,
        system.name,
        system.name,
        out["mapping"]["fields"].as_array().map_or(0, Vec::len)
    );
    Ok(structured(out, text))
}
