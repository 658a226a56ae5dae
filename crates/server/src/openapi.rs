//! The OpenAPI 3.1 document, generated from the handlers' annotations and the model's types.
//! Errors every endpoint can answer (401, 403, 429, 500, 503, ...) are added to each operation
//! here rather than repeated on every handler.

use std::sync::OnceLock;

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    api_keys, batches, certificates, changes, connections, dispatch, events, field_mappings, fleet,
    flows, link_tokens, meta, organization, purchase_orders, records, sync, systems, warehouse,
    webhooks, writes,
};
use ironbridge_model::Entity;
use utoipa::openapi::tag::TagBuilder;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ironbridge API",
        version = "2026-11-23",
        description = "One API for the business systems your customers run: ERPs, warehouse and fleet systems.\n\n\
            Management endpoints take an organization's admin API key (`ibk_…`); data endpoints take a connection's token \
            (`ibc_…`), or an admin key plus `X-Connection-Id`. Send either as `Authorization: Bearer …`.\n\n\
            Every response carries `X-Request-Id` and `Ironbridge-Version`; pin a version with the `Ironbridge-Version` \
            request header. Errors share one body: `{\"error\": {code, type, message, request_id, param?, details?}}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        organization::get_organization,
        api_keys::list_api_keys, api_keys::create_api_key, api_keys::revoke_api_key,
        connections::list_connections, connections::create_connection, connections::get_connection,
        connections::disconnect_connection, connections::reconnect_connection, connections::delete_connection_data,
        connections::get_current_connection,
        field_mappings::list_mappings, field_mappings::get_mappings, field_mappings::set_mapping,
        field_mappings::delete_mapping, field_mappings::history, field_mappings::revert,
        field_mappings::remote_fields,
        sync::start_sync, sync::get_sync_job,
        events::list_events,
        changes::list_changes,
        webhooks::list_endpoints, webhooks::create_endpoint, webhooks::get_endpoint, webhooks::update_endpoint,
        webhooks::delete_endpoint, webhooks::get_secret, webhooks::rotate_secret, webhooks::test_endpoint,
        webhooks::recover, webhooks::list_deliveries, webhooks::list_attempts, webhooks::get_delivery,
        webhooks::replay_delivery, webhooks::list_event_types,
        systems::list_systems,
        certificates::create_certificate, certificates::get_certificate, certificates::download_certificate,
        link_tokens::create_link_token, link_tokens::exchange_public_token,
        crate::dashboard::create_dashboard_user,
        purchase_orders::create_purchase_order, purchase_orders::update_purchase_order,
        writes::create_vendor, writes::update_vendor, writes::create_item, writes::update_item,
        warehouse::create_outbound_order, warehouse::update_outbound_order,
        fleet::list_vehicle_locations, fleet::latest_vehicle_locations,
        dispatch::create_dispatch_route, dispatch::update_dispatch_route,
        meta::get_meta,
        batches::create_batch, batches::list_batches, batches::get_batch, batches::cancel_batch,
        batches::list_operations,
        flows::list_flows, flows::create_flow, flows::get_flow, flows::put_flow, flows::delete_flow,
        flows::list_versions, flows::start_run, flows::list_runs, flows::dry_run_flow,
        flows::dry_run_document, flows::get_run, flows::cancel_run, flows::list_items,
    ),
    components(schemas(ironbridge_model::error::ErrorResponse, ironbridge_model::error::ErrorObject)),
    modifiers(&Security, &Entities, &Systems, &OptionalBodies, &EventTypes, &ChangeEntities, &IdempotencyKeys, &CommonErrors, &TaggedVariants),
    tags(
        (name = "Organization", description = "The calling organization and its connection credits."),
        (name = "API keys", description = "Admin API keys for the management endpoints."),
        (name = "Connections", description = "Connections to customers' systems, their tokens, status and health."),
        (name = "Field mappings", description = "Per-connection field mappings: see how each source field reaches the unified model, remap unified and line fields, add custom fields from any source field with a typed conversion, preview a change on stored records, and revert to any earlier version. Changes apply to every answer at once, with no resync."),
        (name = "Certificates", description = "Key pairs Ironbridge generates for machine-to-machine auth (NetSuite)."),
        (name = "Link", description = "Hosted Link pages in which an end customer connects their own system: single-use link tokens, and the one-time exchange of a finished Link's public token for the connection's token."),
        (name = "Dashboard", description = "Accounts of the people who sign in to the organization's dashboard (`/dashboard`): connections, sync history, webhook deliveries, events and the API request log."),
        (name = "Systems", description = "The capability matrix: systems, entities and operations supported."),
        (name = "Meta", description = "What writes take on a connection: operations, fields, types, required and read-only fields, enums, custom fields. Writes are validated against the same description."),
        (name = "Sync", description = "On-demand syncs and their jobs. Connections are also synced on a schedule."),
        (name = "Changes", description = "The change feed: every record of a connection created, updated or deleted, in the order the changes were stored, from a cursor followed forever with no change missed or repeated."),
        (name = "Events", description = "What happened: syncs completed or failed, connection status changes, disconnections."),
        (name = "Batches", description = "Bulk writes: up to 10,000 creates and updates on one connection, run in the background in batches of a chosen size, each operation written exactly once, with per-operation results and a `batch.completed` webhook."),
        (name = "Flows", description = "Declarative workflows between your connections: a JSON document (its JSON Schema is `FlowIn`) whose trigger (record changes from the change feed, events, a cron schedule, or a manual run) yields items that steps filter and reshape with jq, enrich with reads, write through the unified write path (each item exactly once, with batch size, delay and an error policy) and send as signed `flow.event` webhooks. Runs are durable jobs with per-step counts and per-item inputs, outputs and errors."),
        (name = "Webhooks", description = "Signed deliveries of every event (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), retried on a schedule, with a delivery log, replay and recovery."),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_key",
            bearer("An organization's admin API key (`ibk_…`)."),
        );
        components.add_security_scheme(
            "connection_token",
            bearer("A connection's API token (`ibc_…`)."),
        );
    }
}

/// Every entity of the catalogue: its list and get operations, its schemas and its tag.
struct Entities;

impl Modify for Entities {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let (paths, schemas) = records::openapi_paths();
        for (path, item) in paths {
            let entry = openapi.paths.paths.entry(path.to_string()).or_default();
            if item.get.is_some() {
                entry.get = item.get;
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
        let tags = openapi.tags.get_or_insert_with(Vec::new);
        for entity in Entity::ALL {
            let spec = entity.spec();
            if !tags.iter().any(|t| t.name == spec.title) {
                tags.push(
                    TagBuilder::new()
                        .name(spec.title)
                        .description(Some(spec.description))
                        .build(),
                );
            }
        }
    }
}

/// The registered systems, as the values `SystemId` takes.
struct Systems;

impl Modify for Systems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let ids: Vec<&str> = ironbridge_engine::registry::BUILTIN
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        let components = openapi.components.get_or_insert_with(Default::default);
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object))) =
            components.schemas.get_mut("SystemId")
        {
            object.enum_values = Some(ids.into_iter().map(Into::into).collect());
        }
        // Only systems that authenticate with a generated certificate take one.
        let users: Vec<&str> = ironbridge_engine::registry::BUILTIN
            .iter()
            .filter(|s| crate::routes::certificates::uses_certificates(s))
            .map(|s| s.id.as_str())
            .collect();
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object))) =
            components.schemas.get_mut("CertificateIn")
        {
            object.properties.insert(
                "system".to_string(),
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(users))
                    .description(Some("The system the certificate is for: one that authenticates with a certificate Ironbridge generates."))
                    .into(),
            );
        }
    }
}

/// A request body is optional exactly when its schema requires no field: the server reads an
/// empty body as `{}`. utoipa writes `Option<T>` bodies as `oneOf: [T, null]`, but a JSON
/// `null` is not an object and is refused, so the document says what the server does: the
/// body may be left out, and when sent it is a `T`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{OneOf, Schema};
        use utoipa::openapi::{RefOr, Required};
        let schemas = openapi
            .components
            .as_ref()
            .map(|c| c.schemas.clone())
            .unwrap_or_default();
        let requires_nothing = |schema: &RefOr<Schema>| {
            let name = match schema {
                RefOr::Ref(r) => r.ref_location.rsplit('/').next().unwrap_or(""),
                RefOr::T(_) => return false,
            };
            matches!(schemas.get(name), Some(RefOr::T(Schema::Object(o))) if o.required.is_empty())
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.put, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                    continue;
                };
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else { continue };
                    if let Some(RefOr::T(Schema::OneOf(OneOf { items, .. }))) = &content.schema
                        && items.len() == 2
                    {
                        content.schema = items.iter().find(|s| !is_null(s)).cloned();
                    }
                    if content.schema.as_ref().is_some_and(requires_nothing) {
                        body.required = Some(Required::False);
                    }
                }
            }
        }
    }
}

fn is_null(schema: &utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> bool {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    matches!(schema, utoipa::openapi::RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

/// The event type filters take only known types (the server refuses others), so the
/// document lists them: `type` of `GET /v1/events`, and `event_type` of an endpoint's
/// deliveries (which also takes the test ping's type).
struct EventTypes;

impl Modify for EventTypes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use ironbridge_model::webhooks::{EVENT_TYPES, TEST_EVENT_TYPE};
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let known: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
        let targets = [
            ("/v1/events", "type", false),
            ("/v1/webhook-endpoints/{id}/deliveries", "event_type", true),
        ];
        for (path, name, with_test) in targets {
            let Some(operation) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.get.as_mut())
            else {
                continue;
            };
            let mut values = known.clone();
            if with_test {
                values.push(TEST_EVENT_TYPE);
            }
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(p) = parameter
                    && p.name == name
                {
                    p.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(values.clone()))
                            .into(),
                    );
                }
            }
        }
    }
}

/// The change feed's `entity` takes only entities kept as records, by name or collection
/// path (the server refuses others), so the document lists them.
struct ChangeEntities;

impl Modify for ChangeEntities {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut values: Vec<String> = Vec::new();
        for e in Entity::ALL
            .iter()
            .filter(|e| e.spec().storage == ironbridge_model::Storage::Records)
        {
            values.push(e.as_str().to_string());
            let path = e.spec().plural.replace('_', "-");
            if !values.contains(&path) {
                values.push(path);
            }
        }
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/v1/changes")
            .and_then(|item| item.get.as_mut())
        else {
            return;
        };
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(p) = parameter
                && p.name == "entity"
            {
                p.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(values.clone()))
                        .into(),
                );
            }
        }
    }
}

struct CommonErrors;

/// The variants of the flow document's tagged unions (`Step`, `Trigger`) are each their own
/// schema, closed (`additionalProperties: false`) like the structs they are; their `type`
/// member came only from the `allOf` beside them, which a closed schema refuses, so no
/// document could satisfy them. Each variant's schema names its own `type` instead.
struct TaggedVariants;

impl Modify for TaggedVariants {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut tags: Vec<(String, RefOr<Schema>)> = Vec::new();
        for union in ["Step", "Trigger"] {
            let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get(union) else {
                continue;
            };
            for item in &one_of.items {
                let RefOr::T(Schema::AllOf(all)) = item else {
                    continue;
                };
                let variant = all.items.iter().find_map(|i| match i {
                    RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_string),
                    _ => None,
                });
                let tag = all.items.iter().find_map(|i| match i {
                    RefOr::T(Schema::Object(o)) => o.properties.get("type").cloned(),
                    _ => None,
                });
                if let (Some(variant), Some(tag)) = (variant, tag) {
                    tags.push((variant, tag));
                }
            }
        }
        for (variant, tag) in tags {
            if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(&variant) {
                o.properties.insert("type".into(), tag);
                if !o.required.iter().any(|r| r == "type") {
                    o.required.insert(0, "type".into());
                }
            }
        }
    }
}

/// Every POST and PATCH takes an `Idempotency-Key`: its header, and the two refusals it adds.
struct IdempotencyKeys;

impl Modify for IdempotencyKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterBuilder;
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.patch].into_iter().flatten() {
                let header = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Makes the request safe to retry (1 to 255 visible ASCII characters, a UUID is a good choice). \
                         For 24 hours, a retry with the same key answers the first answer byte for byte, with \
                         `Idempotent-Replayed: true`, and changes nothing; a write whose outcome was unknown is looked \
                         for at the source before anything is written again. Keys are per credential and connection.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(255))
                            .pattern(Some("^[!-~]{1,255}$")),
                    ))
                    .build();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(header.into());
                for (status, description) in [
                    (
                        "409",
                        "A request with this `Idempotency-Key` is in flight (`IDEMPOTENCY_KEY_IN_USE`)",
                    ),
                    (
                        "422",
                        "The `Idempotency-Key` was used for another request (`IDEMPOTENCY_KEY_REUSED`)",
                    ),
                ] {
                    if !operation.responses.responses.contains_key(status) {
                        let response = ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                                    .build(),
                            )
                            .build();
                        operation
                            .responses
                            .responses
                            .insert(status.to_string(), response.into());
                    }
                }
            }
        }
    }
}

const COMMON: &[(&str, &str)] = &[
    (
        "400",
        "Malformed request (`INVALID_REQUEST`, `UNSUPPORTED_API_VERSION`)",
    ),
    (
        "401",
        "Missing, unknown or revoked credential (`AUTHENTICATION_FAILED`); see `WWW-Authenticate`",
    ),
    (
        "403",
        "The credential may not call this endpoint (`PERMISSION_DENIED`)",
    ),
    (
        "429",
        "Rate limit exceeded (`RATE_LIMIT_EXCEEDED`); see `Retry-After` and `RateLimit-*`",
    ),
    (
        "500",
        "Unexpected error (`INTERNAL_ERROR`); quote the request id",
    ),
    (
        "503",
        "Temporarily unavailable (`SERVICE_UNAVAILABLE`); retry later",
    ),
];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description) in COMMON {
                    if !operation.responses.responses.contains_key(*status) {
                        let response = ResponseBuilder::new()
                            .description(*description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                                    .build(),
                            )
                            .build();
                        operation
                            .responses
                            .responses
                            .insert((*status).to_string(), response.into());
                    }
                }
            }
        }
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// The query parameters the document declares for the operation `method` on the path
/// template `path` (empty for an operation that takes none, or one the document lacks).
pub fn query_parameters(method: &axum::http::Method, path: &str) -> &'static [String] {
    type Table = std::collections::HashMap<(String, String), Vec<String>>;
    static TABLE: OnceLock<Table> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = Table::new();
        let doc = document();
        for (template, item) in &doc.paths.paths {
            let operations = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ];
            for (verb, operation) in operations {
                let Some(operation) = operation else { continue };
                let names = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p) if p.parameter_in == ParameterIn::Query => {
                            Some(p.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                table.insert((verb.to_string(), template.clone()), names);
            }
        }
        table
    });
    table
        .get(&(method.as_str().to_string(), path.to_string()))
        .map_or(&[], Vec::as_slice)
}
