//! The tools a caller sees, generated from the entity catalogue, the connection's system
//! descriptor (what it reads and writes) and the OpenAPI document (every input and output
//! schema is the document's own, made self-contained): nothing here is written per entity.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use axum::http::Method;
use ironbridge_core::system::{Registry, SystemDescriptor, WriteOp};
use ironbridge_model::Entity;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

use crate::routes::records::{collection_path, item_path};

/// Records per page when a tool call gives no `page_size`.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// The largest page a tool returns (agents' context is small).
pub const MAX_PAGE_SIZE: u32 = 100;

/// What a tool does, for the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A page of an entity's records.
    List(Entity),
    /// One record by id.
    Get(Entity),
    /// Create a record in the source system.
    Create(Entity),
    /// Update a record in the source system.
    Update(Entity),
    /// The connection, its status and health.
    ConnectionStatus,
    /// Queue a sync now.
    TriggerSync,
    /// The unified schema, mapping and write rules of an entity.
    DescribeEntity,
    /// A page of vehicle locations by time (`latest`: each vehicle's newest).
    Locations {
        /// The newest point of each vehicle rather than points by time.
        latest: bool,
    },
    /// A page of the connection's change feed.
    Changes,
    /// Meta mode: find tools by words.
    SearchTools,
    /// Meta mode: one tool's schemas.
    DescribeTool,
    /// Meta mode: call a tool by name.
    CallTool,
}

impl Action {
    /// Whether the tool changes data in the source system (needs a `read_write` grant).
    pub fn writes(self) -> bool {
        matches!(self, Action::Create(_) | Action::Update(_))
    }
}

/// A tool and what it does.
#[derive(Debug, Clone)]
pub struct ToolDef {
    /// The tool as listed.
    pub tool: Tool,
    /// What a call runs.
    pub action: Action,
}

/// What decides the tool list of a caller.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// The connection's system (a connection token); `None` for an organization key, which
    /// names a connection in every call and sees the tools of every system.
    pub system: Option<&'static SystemDescriptor>,
    /// Every system of this build.
    pub registry: &'a Registry,
    /// Write tools are listed (the credential was granted `read_write`).
    pub writes: bool,
}

impl Audience<'_> {
    fn systems(&self) -> Vec<&'static SystemDescriptor> {
        match self.system {
            Some(s) => vec![s],
            None => self.registry.systems().to_vec(),
        }
    }

    fn reads(&self, entity: Entity) -> bool {
        self.systems().iter().any(|s| s.read(entity).is_some())
    }

    fn writes_op(&self, entity: Entity, op: WriteOp) -> bool {
        self.writes && self.systems().iter().any(|s| s.writes(entity, op))
    }

    fn needs_connection_id(&self) -> bool {
        self.system.is_none()
    }
}

/// The OpenAPI document as JSON, parsed once.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(crate::openapi::document_json()).unwrap_or(Value::Null))
}

fn operation(method: &Method, path: &str) -> &'static Value {
    &document()["paths"][path][method.as_str().to_ascii_lowercase()]
}

/// Rewrites `#/components/schemas/X` references to `#/$defs/X` and collects the names.
fn rewrite_refs(value: &mut Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                names.insert(name.to_string());
                *r = format!("#/$defs/{name}");
            }
            for v in map.values_mut() {
                rewrite_refs(v, names);
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite_refs(v, names);
            }
        }
        _ => {}
    }
}

/// A self-contained JSON Schema of `schema` (a document schema or a `$ref` to one): the
/// components it refers to, transitively, go under `$defs`.
pub fn self_contained(schema: &Value) -> Map<String, Value> {
    let components = &document()["components"]["schemas"];
    let mut root = schema.clone();
    let mut wanted = BTreeSet::new();
    rewrite_refs(&mut root, &mut wanted);
    // A bare reference at the root is replaced by what it names (MCP wants `type: object`).
    if let Some(name) = root
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .map(str::to_string)
    {
        root = components[&name].clone();
        rewrite_refs(&mut root, &mut wanted);
    }
    let mut defs = Map::new();
    while let Some(name) = wanted.iter().find(|n| !defs.contains_key(*n)).cloned() {
        let mut def = components[&name].clone();
        rewrite_refs(&mut def, &mut wanted);
        defs.insert(name, def);
    }
    let mut out = match root {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if !defs.is_empty() {
        out.insert("$defs".into(), Value::Object(defs));
    }
    out
}

/// A self-contained schema of an object (an `allOf` of objects states its type too, as MCP
/// clients want `type: object` at the root).
fn object_schema(schema: &Value) -> Map<String, Value> {
    let mut out = self_contained(schema);
    out.entry("type").or_insert_with(|| "object".into());
    out
}

fn response_schema(method: &Method, path: &str, status: &str) -> Map<String, Value> {
    object_schema(
        &operation(method, path)["responses"][status]["content"]["application/json"]["schema"],
    )
}

fn body_schema(method: &Method, path: &str) -> Map<String, Value> {
    object_schema(&operation(method, path)["requestBody"]["content"]["application/json"]["schema"])
}

/// The query parameters of an operation as schema properties (their document schemas and
/// descriptions).
fn query_properties(method: &Method, path: &str) -> Map<String, Value> {
    let mut props = Map::new();
    for p in operation(method, path)["parameters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if p["in"] != "query" {
            continue;
        }
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        let mut schema = self_contained(&p["schema"]);
        if let Some(d) = p["description"].as_str() {
            schema.insert("description".into(), d.into());
        }
        props.insert(name.to_string(), Value::Object(schema));
    }
    props
}

fn object(properties: Map<String, Value>, required: &[&str]) -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), false.into());
    schema
}

/// Adds `connection_id` (required) for organization keys.
fn with_connection(mut schema: Map<String, Value>, audience: &Audience<'_>) -> Map<String, Value> {
    if !audience.needs_connection_id() {
        return schema;
    }
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.insert(
            "connection_id".into(),
            json!({"type": "string", "pattern": "^conn_", "description": "The connection whose data this call touches (`conn_…`): an organization API key names one in every call."}),
        );
    }
    let required = schema
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = required {
        list.push("connection_id".into());
    }
    schema
}

fn tool(
    name: String,
    title: String,
    description: String,
    input: Map<String, Value>,
    output: Map<String, Value>,
    annotations: ToolAnnotations,
) -> Tool {
    Tool::new(name, description, Arc::new(input))
        .with_title(title)
        .with_raw_output_schema(Arc::new(output))
        .with_annotations(annotations)
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new().read_only(true).open_world(false)
}

/// The `list_…` tool of an entity: the REST list's query parameters, pages bounded for
/// agents.
fn list_tool(entity: Entity) -> Tool {
    let spec = entity.spec();
    let path = collection_path(entity);
    let mut props = query_properties(&Method::GET, path);
    props.insert(
        "page_size".into(),
        json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
               "description": format!("Records per page: default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}.")}),
    );
    if let Some(Value::Object(cursor)) = props.get_mut("cursor") {
        cursor.insert(
            "description".into(),
            "`next_cursor` of the previous call, to get the next page (same other arguments)."
                .into(),
        );
    }
    let plural = spec.title.to_lowercase();
    tool(
        format!("list_{}", spec.plural),
        format!("List {plural}"),
        format!(
            "A page of the connection's {plural} (unified model, synced from the source system), ordered by id, or by change time with `modified_after`/`modified_before`. At most {MAX_PAGE_SIZE} per call (default {DEFAULT_PAGE_SIZE}); when `next_cursor` is not null, call again with `cursor` set to it for the next page. Source payloads are left out unless `include_remote_data` is true."
        ),
        object(props, &[]),
        response_schema(&Method::GET, path, "200"),
        read_only().idempotent(true),
    )
}

/// The `get_…` tool of an entity.
fn get_tool(entity: Entity) -> Tool {
    let spec = entity.spec();
    let path = item_path(entity);
    let mut props = Map::new();
    props.insert(
        "id".into(),
        json!({"type": "string", "pattern": format!("^{}_", spec.id_prefix),
               "description": format!("Ironbridge id of the {} (`{}_…`).", spec.label, spec.id_prefix)}),
    );
    props.extend(query_properties(&Method::GET, path));
    tool(
        format!("get_{}", spec.name),
        format!("Get a {}", spec.label),
        format!(
            "One {} of the connection by its Ironbridge id, in the unified model.",
            spec.label
        ),
        object(props, &["id"]),
        response_schema(&Method::GET, path, "200"),
        read_only().idempotent(true),
    )
}

fn idempotency_property() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": crate::idempotency::MAX_KEY_LEN, "pattern": "^[!-~]+$",
           "description": "Makes the call safe to retry: for 24 hours, a call with the same key and arguments answers the first answer and writes nothing again (a UUID is a good choice). Always give one."})
}

/// The `create_…` tool of an entity: its REST body, plus an idempotency key.
fn create_tool(entity: Entity) -> Tool {
    let spec = entity.spec();
    let path = collection_path(entity);
    let mut input = body_schema(&Method::POST, path);
    if let Some(Value::Object(props)) = input.get_mut("properties") {
        props.insert("idempotency_key".into(), idempotency_property());
    }
    tool(
        format!("create_{}", spec.name),
        format!("Create a {}", spec.label),
        format!(
            "Create a {} in the source system through the unified model (checked against the system's write rules first; `describe_entity` shows them). Give an `idempotency_key`: a retry with it never writes twice.",
            spec.label
        ),
        input,
        response_schema(&Method::POST, path, "201"),
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(true),
    )
}

/// The `update_…` tool of an entity: `id`, its REST patch body and an idempotency key.
fn update_tool(entity: Entity) -> Tool {
    let spec = entity.spec();
    let path = item_path(entity);
    let mut input = body_schema(&Method::PATCH, path);
    if let Some(Value::Object(props)) = input.get_mut("properties") {
        props.insert(
            "id".into(),
            json!({"type": "string", "pattern": format!("^{}_", spec.id_prefix),
                   "description": format!("Ironbridge id of the {} (`{}_…`).", spec.label, spec.id_prefix)}),
        );
        props.insert("idempotency_key".into(), idempotency_property());
    }
    let required = input
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = required {
        list.push("id".into());
    }
    tool(
        format!("update_{}", spec.name),
        format!("Update a {}", spec.label),
        format!(
            "Update a {} in the source system; fields left out stay unchanged.",
            spec.label
        ),
        input,
        response_schema(&Method::PATCH, path, "200"),
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(true),
    )
}

/// Path of the vehicle locations, or of each vehicle's latest one.
pub fn locations_path(latest: bool) -> &'static str {
    if latest {
        "/v1/vehicle-locations/latest"
    } else {
        "/v1/vehicle-locations"
    }
}

/// The `list_vehicle_locations` / `latest_vehicle_locations` tools: GPS points from their
/// own storage, pages bounded for agents like record lists.
fn locations_tool(latest: bool) -> Tool {
    let path = locations_path(latest);
    let mut props = query_properties(&Method::GET, path);
    props.insert(
        "page_size".into(),
        json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
               "description": format!("Points per page: default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}.")}),
    );
    let (name, title, description) = if latest {
        (
            "latest_vehicle_locations",
            "Latest vehicle locations",
            "Where each of the connection's vehicles is: its newest GPS point (time, latitude, longitude, speed in km/h, heading, address where known), by vehicle id; `vehicle_id` for one vehicle.",
        )
    } else {
        (
            "list_vehicle_locations",
            "List vehicle locations",
            "The connection's GPS points oldest first, filtered by `vehicle_id` (`vhc_…`) and a time range (`recorded_after`, `recorded_before`, RFC 3339): where a vehicle was and when. When `next_cursor` is not null, call again with `cursor` set to it (same other arguments).",
        )
    };
    tool(
        name.into(),
        title.into(),
        format!(
            "{description} At most {MAX_PAGE_SIZE} points per call (default {DEFAULT_PAGE_SIZE})."
        ),
        object(props, &[]),
        response_schema(&Method::GET, path, "200"),
        read_only().idempotent(true),
    )
}

/// Path of the change feed.
pub const CHANGES_PATH: &str = "/v1/changes";

/// The `list_changes` tool: the connection's change feed, from a cursor an agent keeps.
fn changes_tool() -> Tool {
    let mut props = query_properties(&Method::GET, CHANGES_PATH);
    props.insert(
        "page_size".into(),
        json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
               "description": format!("Changes per page: default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}.")}),
    );
    tool(
        "list_changes".into(),
        "List changes".into(),
        format!(
            "What changed on the connection: every record created, updated or deleted, in the order the changes were stored (`seq`), each with the record or, for a deletion, its tombstone; `entity` for one entity's changes. A record changed several times appears once, at its latest change. `next_cursor` is always returned: call again with `cursor` set to it for the next page, or later for what changed since. At most {MAX_PAGE_SIZE} per call (default {DEFAULT_PAGE_SIZE})."
        ),
        object(props, &[]),
        response_schema(&Method::GET, CHANGES_PATH, "200"),
        read_only().idempotent(true),
    )
}

fn connection_status_tool() -> Tool {
    let mut output = response_schema(&Method::GET, "/v1/connection", "200");
    // The token's visible start is not shown to agents.
    if let Some(Value::Object(props)) = output.get_mut("properties") {
        props.remove("token_prefix");
    }
    if let Some(Value::Array(required)) = output.get_mut("required") {
        required.retain(|r| r != "token_prefix");
    }
    tool(
        "connection_status".into(),
        "Connection status".into(),
        "The connection: its system, status (online, offline, syncing, reauthorization required, disconnected), health (last successful call, errors, circuit state) and per-entity sync state with record counts.".into(),
        object(Map::new(), &[]),
        output,
        read_only().idempotent(true),
    )
}

fn trigger_sync_tool() -> Tool {
    let mut props = Map::new();
    props.insert(
        "full".into(),
        json!({"type": "boolean", "description": "Read everything again and mark records the source no longer has as deleted (slower); an incremental sync otherwise."}),
    );
    tool(
        "trigger_sync".into(),
        "Trigger a sync".into(),
        "Queue a sync of the connection now (or get the one already queued). It runs in the background; follow it with `connection_status`.".into(),
        object(props, &[]),
        response_schema(&Method::POST, "/v1/sync", "202"),
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(true)
            .open_world(true),
    )
}

fn describe_entity_tool(entities: &[Entity]) -> Tool {
    let names: Vec<&str> = entities.iter().map(|e| e.as_str()).collect();
    let mut props = Map::new();
    props.insert(
        "entity".into(),
        json!({"type": "string", "enum": names, "description": "The entity."}),
    );
    tool(
        "describe_entity".into(),
        "Describe an entity".into(),
        "The unified schema of an entity, the field mapping in force on this connection (how each unified field is read from the source's records) and what a create or update takes on its system.".into(),
        object(props, &["entity"]),
        object(
            Map::from_iter([
                ("entity".to_string(), json!({"type": "string"})),
                ("system".to_string(), json!({"type": "string"})),
                ("schema".to_string(), json!({"type": "object", "description": "JSON Schema of the unified record."})),
                ("mapping".to_string(), json!({"type": ["object", "null"], "description": "The mapping in force: the system's default mapping (custom per-connection mappings are not offered yet)."})),
                ("writes".to_string(), json!({"type": "object", "description": "What a create or update takes (as `GET /v1/meta/{entity}`)."})),
            ]),
            &["entity", "system", "schema", "writes"],
        ),
        read_only().idempotent(true),
    )
}

/// The full tool list of an audience, in a stable order.
pub fn catalogue(audience: &Audience<'_>) -> Vec<ToolDef> {
    let mut out = Vec::new();
    let mut push = |mut tool: Tool, action: Action| {
        tool.input_schema = Arc::new(with_connection((*tool.input_schema).clone(), audience));
        out.push(ToolDef { tool, action });
    };
    push(connection_status_tool(), Action::ConnectionStatus);
    push(trigger_sync_tool(), Action::TriggerSync);
    // Points (vehicle locations) have routes of their own, not a record list and get.
    let readable: Vec<Entity> = Entity::ALL
        .iter()
        .copied()
        .filter(|&e| audience.reads(e) && e.spec().storage == ironbridge_model::Storage::Records)
        .collect();
    push(describe_entity_tool(&readable), Action::DescribeEntity);
    if !readable.is_empty() {
        push(changes_tool(), Action::Changes);
    }
    for &entity in &readable {
        push(list_tool(entity), Action::List(entity));
        push(get_tool(entity), Action::Get(entity));
    }
    if audience.reads(Entity::VEHICLE_LOCATION) {
        push(locations_tool(false), Action::Locations { latest: false });
        push(locations_tool(true), Action::Locations { latest: true });
    }
    for &entity in Entity::ALL {
        if audience.writes_op(entity, WriteOp::Create) {
            push(create_tool(entity), Action::Create(entity));
        }
        if audience.writes_op(entity, WriteOp::Update) {
            push(update_tool(entity), Action::Update(entity));
        }
    }
    out
}

/// The tools of meta mode: for agents with many tools already, three that reach the rest.
pub fn meta_tools() -> Vec<ToolDef> {
    let name_prop =
        json!({"type": "string", "description": "A tool's name, as `search_tools` lists it."});
    vec![
        ToolDef {
            tool: tool(
                "search_tools".into(),
                "Search tools".into(),
                "Find the tools of this connection by words (entity, verb: `purchase order list`); an empty query lists them all. Answers names and one-line descriptions; `describe_tool` gives a tool's arguments, `call_tool` runs it.".into(),
                object(Map::from_iter([("query".to_string(), json!({"type": "string", "description": "Words to look for in tool names and descriptions."}))]), &[]),
                object(Map::from_iter([("tools".to_string(), json!({"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}}, "required": ["name", "description"]}}))]), &["tools"]),
                read_only().idempotent(true),
            ),
            action: Action::SearchTools,
        },
        ToolDef {
            tool: tool(
                "describe_tool".into(),
                "Describe a tool".into(),
                "A tool's description, input schema (its arguments) and output schema.".into(),
                object(Map::from_iter([("name".to_string(), name_prop.clone())]), &["name"]),
                object(Map::from_iter([
                    ("name".to_string(), json!({"type": "string"})),
                    ("description".to_string(), json!({"type": "string"})),
                    ("input_schema".to_string(), json!({"type": "object"})),
                    ("output_schema".to_string(), json!({"type": ["object", "null"]})),
                ]), &["name", "input_schema"]),
                read_only().idempotent(true),
            ),
            action: Action::DescribeTool,
        },
        ToolDef {
            tool: Tool::new(
                "call_tool",
                "Run a tool by name with its arguments (see `describe_tool`); answers what the tool answers.",
                Arc::new(object(Map::from_iter([
                    ("name".to_string(), name_prop),
                    ("arguments".to_string(), json!({"type": "object", "description": "The tool's arguments."})),
                ]), &["name"])),
            )
            .with_title("Call a tool")
            .with_annotations(ToolAnnotations::new().open_world(true)),
            action: Action::CallTool,
        },
    ]
}

/// The input schema of a tool, for checks of its own.
pub fn input_properties(tool: &Tool) -> Option<&JsonObject> {
    tool.input_schema
        .get("properties")
        .and_then(Value::as_object)
}
