//! Reading synced records, for every entity of the catalogue: cursor pages (stable while
//! records change) and single records. The routes and their OpenAPI operations are made from
//! the entity catalogue, so a new entity is served without a line here.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ironbridge_core::read::{ListQuery, RecordReader};
use ironbridge_model::{Entity, Storage, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ContentBuilder, KnownFormat, Ref, RefOr, Required, ResponseBuilder, Schema, SchemaFormat,
};
use utoipa::{PartialSchema, ToSchema};

use super::Route;
use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};

/// Query of the list endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `next_cursor` of the previous page. Bound to the connection and the filters.
    pub cursor: Option<String>,
    /// Records per page (the entity's default and maximum are in the document).
    pub page_size: Option<u32>,
    /// Only records Ironbridge changed after this instant (exclusive).
    pub modified_after: Option<Timestamp>,
    /// Only records Ironbridge changed before this instant (exclusive).
    pub modified_before: Option<Timestamp>,
    /// Include records deleted in the source system (`remote_was_deleted=true`).
    pub include_deleted: Option<bool>,
    /// Add each record's source payload as `remote_data`.
    pub include_remote_data: Option<bool>,
    /// Count the records matching the filters into `total_count` (`null` otherwise).
    pub include_total: Option<bool>,
}

/// Query of the single-record endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Add the record's source payload as `remote_data`.
    pub include_remote_data: Option<bool>,
}

fn reader(
    state: &AppState,
    view: Option<std::sync::Arc<ironbridge_core::field_mappings::ConnectionView>>,
) -> RecordReader<'_> {
    RecordReader {
        store: state.store.as_ref(),
        keys: &state.keys,
        view,
    }
}

/// Lists records of one entity for the calling connection.
pub async fn list(
    state: &AppState,
    auth: &ConnectionAuth,
    q: ListParams,
    entity: Entity,
) -> ApiResult<Response> {
    let query = ListQuery {
        cursor: q.cursor,
        page_size: q.page_size,
        modified_after: q.modified_after,
        modified_before: q.modified_before,
        include_deleted: q.include_deleted.unwrap_or(false),
        include_remote_data: q.include_remote_data.unwrap_or(false),
        include_total: q.include_total.unwrap_or(false),
    };
    let view = state.view(&auth.connection).await?;
    let page = reader(state, view).list(&auth.id(), entity, &query).await?;
    // Records are written out as JSON text, never as a tree (see `render_text`).
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        page.into_body(),
    )
        .into_response())
}

/// Reads one record of the calling connection.
pub async fn get_one(
    state: &AppState,
    auth: &ConnectionAuth,
    id: &str,
    q: GetParams,
    entity: Entity,
) -> ApiResult<Json<Value>> {
    let view = state.view(&auth.connection).await?;
    reader(state, view)
        .get(
            &auth.id(),
            entity,
            id,
            q.include_remote_data.unwrap_or(false),
        )
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(entity.spec().label))
}

/// The collection and item paths of every entity, made once (routes keep `'static` paths).
fn paths() -> &'static [(Entity, String, String)] {
    static PATHS: OnceLock<Vec<(Entity, String, String)>> = OnceLock::new();
    PATHS.get_or_init(|| {
        Entity::ALL
            .iter()
            .map(|&e| {
                let collection = e.collection_path();
                let item = format!("{collection}/{{id}}");
                (e, collection, item)
            })
            .collect()
    })
}

/// The collection path of `entity` (`/v1/purchase-orders`).
pub fn collection_path(entity: Entity) -> &'static str {
    paths()
        .iter()
        .find(|(e, _, _)| *e == entity)
        .map_or("", |(_, c, _)| c.as_str())
}

/// The item path of `entity` (`/v1/purchase-orders/{id}`).
pub fn item_path(entity: Entity) -> &'static str {
    paths()
        .iter()
        .find(|(e, _, _)| *e == entity)
        .map_or("", |(_, _, i)| i.as_str())
}

/// A list route and a get route per entity of the catalogue kept as records (points have
/// routes of their own, `routes::fleet`).
pub fn routes() -> Vec<Route> {
    let mut out = Vec::new();
    for &(entity, ref collection, ref item) in paths() {
        if entity.spec().storage != Storage::Records {
            continue;
        }
        out.push(Route::new(
            Method::GET,
            collection,
            get(
                move |State(state): State<AppState>,
                      auth: ConnectionAuth,
                      ApiQuery(q): ApiQuery<ListParams>| async move {
                    list(&state, &auth, q, entity).await
                },
            ),
        ));
        out.push(Route::new(
            Method::GET,
            item,
            get(
                move |State(state): State<AppState>,
                      auth: ConnectionAuth,
                      ApiPath(id): ApiPath<String>,
                      ApiQuery(q): ApiQuery<GetParams>| async move {
                    get_one(&state, &auth, &id, q, entity).await
                },
            ),
        ));
    }
    out
}

/// The name of an entity's page schema (`PurchaseOrderList`).
fn list_schema_name(entity: Entity) -> String {
    format!("{}List", (entity.spec().schema.name)())
}

fn article(label: &str) -> &'static str {
    if label.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn json_response(description: &str, schema: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

fn query_param(
    name: &str,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An RFC 3339 instant, as `Timestamp`'s schema, with its own example.
fn instant(example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .examples([example])
}

fn boolean() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean)
}

fn security() -> Vec<SecurityRequirement> {
    vec![
        SecurityRequirement::new("connection_token", Vec::<String>::new()),
        SecurityRequirement::new("admin_key", Vec::<String>::new()),
    ]
}

/// Named schemas, as utoipa collects them.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// The OpenAPI paths of every entity's routes, and the schemas they name.
pub fn openapi_paths() -> (Vec<(&'static str, PathItem)>, Schemas) {
    let mut paths = Vec::new();
    let mut schemas = Vec::new();
    for &entity in Entity::ALL {
        let spec = entity.spec();
        if spec.storage != Storage::Records {
            continue;
        }
        let type_name = (spec.schema.name)().to_string();
        schemas.push((type_name.clone(), (spec.schema.schema)()));
        (spec.schema.schemas)(&mut schemas);
        let plural = spec.title.to_lowercase();
        schemas.push((
            list_schema_name(entity),
            ObjectBuilder::new()
                .description(Some(format!("A page of {plural}.")))
                .property(
                    "data",
                    ArrayBuilder::new()
                        .items(Ref::from_schema_name(&type_name))
                        .description(Some("The records of this page: ordered by `id`, or by `modified_at` then `id` when a `modified_*` filter is given.")),
                )
                .required("data")
                .property(
                    "next_cursor",
                    ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                            Type::String,
                            Type::Null,
                        ]))
                        .description(Some(
                            "Pass as `cursor` to get the next page; absent on the last page.",
                        )),
                )
                .property(
                    "total_count",
                    ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                            Type::Integer,
                            Type::Null,
                        ]))
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .minimum(Some(0))
                        .description(Some(
                            "Records matching the filters at the time of the request, with `include_total=true`; `null` otherwise.",
                        )),
                )
                .into(),
        ));
        let operation = |verb: &str| format!("v1.{}.{verb}", spec.plural);
        let list = OperationBuilder::new()
            .tag(spec.title)
            .summary(Some(format!("List {plural}")))
            .description(Some(
                "Pages are ordered by id and stable while records change: a record that exists throughout an iteration is returned exactly once. With `modified_after` or `modified_before`, pages are in change order (`modified_at`, then id): a record unchanged throughout the iteration is returned exactly once, and one changed during it comes again at its new place: a client that follows the cursors to the end has seen the latest version of every record changed in the window.",
            ))
            .operation_id(Some(operation("list")))
            .parameters(Some([
                query_param(
                    "cursor",
                    "`next_cursor` of the previous page. Bound to the connection and the filters.",
                    ObjectBuilder::new().schema_type(Type::String),
                ),
                query_param(
                    "page_size",
                    &format!(
                        "Records per page: default {}, at most {}.",
                        spec.default_page_size, spec.max_page_size
                    ),
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .minimum(Some(1))
                        .maximum(Some(spec.max_page_size)),
                ),
                query_param(
                    "modified_after",
                    "Only records Ironbridge changed after this instant (exclusive).",
                    instant("2026-11-23T10:15:30.123456Z"),
                ),
                // Each bound has its own example, the end after the start: a request made of
                // the document's examples is then one the server accepts.
                query_param(
                    "modified_before",
                    "Only records Ironbridge changed before this instant (exclusive). Must be after `modified_after` when both are given (`INVALID_REQUEST` otherwise).",
                    instant("2026-11-24T10:15:30.123456Z"),
                ),
                query_param(
                    "include_deleted",
                    "Include records deleted in the source system (`remote_was_deleted=true`).",
                    boolean(),
                ),
                query_param(
                    "include_remote_data",
                    "Add each record's source payload as `remote_data`.",
                    boolean(),
                ),
                query_param(
                    "include_total",
                    "Count the records matching the filters into `total_count` (one more query; `null` otherwise).",
                    boolean(),
                ),
            ]))
            .response("200", json_response("A page", &list_schema_name(entity)))
            .response(
                "400",
                json_response(
                    "Bad parameter or cursor (`INVALID_REQUEST`, `INVALID_CURSOR`)",
                    "ErrorResponse",
                ),
            )
            .securities(Some(security()))
            .build();
        let label = spec.label;
        let one = OperationBuilder::new()
            .tag(spec.title)
            .summary(Some(format!("Get {} {label}", article(label))))
            .operation_id(Some(operation("get")))
            .parameters(Some([
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(format!(
                        "Ironbridge id of the {label} (`{}_…`)",
                        spec.id_prefix
                    )))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
                query_param(
                    "include_remote_data",
                    "Add the record's source payload as `remote_data`.",
                    boolean(),
                ),
            ]))
            .response("200", json_response("The record", &type_name))
            .response(
                "404",
                json_response("No such record in this connection", "ErrorResponse"),
            )
            .securities(Some(security()))
            .build();
        paths.push((
            collection_path(entity),
            PathItem::new(HttpMethod::Get, list),
        ));
        paths.push((item_path(entity), PathItem::new(HttpMethod::Get, one)));
    }
    // Keeps `Entity`'s own schema referenced by the capability types.
    schemas.push((Entity::name().to_string(), Entity::schema()));
    (paths, schemas)
}
