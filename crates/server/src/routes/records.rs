//! Reading synced records: cursor pages (stable while records change) and single records,
//! for every entity of the unified model.

use axum::Json;
use axum::extract::{Path, State};
use ironbridge_core::cursor;
use ironbridge_core::service::render;
use ironbridge_core::store::RecordQuery;
use ironbridge_model::{Entity, ErrorCode, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::ConnectionAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// Query of the list endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `next_cursor` of the previous page. Bound to the connection and the filters.
    pub cursor: Option<String>,
    /// Records per page: default 50; at most 200 for purchase orders, 500 for other entities.
    pub page_size: Option<u32>,
    /// Only records Ironbridge changed after this instant (exclusive).
    pub modified_after: Option<Timestamp>,
    /// Only records Ironbridge changed before this instant (exclusive).
    pub modified_before: Option<Timestamp>,
    /// Include records deleted in the source system (`remote_was_deleted=true`).
    pub include_deleted: Option<bool>,
    /// Add each record's source payload as `remote_data`.
    pub include_remote_data: Option<bool>,
}

/// Query of the single-record endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Add the record's source payload as `remote_data`.
    pub include_remote_data: Option<bool>,
}

/// Lists records of one entity for the calling connection.
pub async fn list(
    state: &AppState,
    auth: &ConnectionAuth,
    q: ListParams,
    entity: Entity,
) -> ApiResult<Json<Value>> {
    let page_size = q.page_size.unwrap_or(entity.default_page_size());
    if page_size == 0 || page_size > entity.max_page_size() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`page_size` must be from 1 to {}.", entity.max_page_size()),
        )
        .param("page_size"));
    }
    if let (Some(a), Some(b)) = (q.modified_after, q.modified_before)
        && a >= b
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "`modified_after` must be before `modified_before`.",
        )
        .param("modified_after"));
    }
    let include_deleted = q.include_deleted.unwrap_or(false);
    let fingerprint = cursor::fingerprint(&[
        ("entity", entity.as_str().into()),
        (
            "modified_after",
            q.modified_after
                .map(|t| t.micros().to_string())
                .unwrap_or_default(),
        ),
        (
            "modified_before",
            q.modified_before
                .map(|t| t.micros().to_string())
                .unwrap_or_default(),
        ),
        ("include_deleted", include_deleted.to_string()),
    ]);
    let scope = &auth.connection.id;
    let after_id = match &q.cursor {
        Some(c) => Some(cursor::decode(&state.keys, scope, &fingerprint, c)?),
        None => None,
    };
    let include_raw = q.include_remote_data.unwrap_or(false);
    let mut query = RecordQuery {
        entity,
        after_id,
        modified_after: q.modified_after,
        modified_before: q.modified_before,
        include_deleted,
        include_raw,
        limit: page_size + 1,
    };
    let conn = auth.id();
    let mut rows = state.store.list_records(&conn, &query).await?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    query.after_id = None;
    let total = state.store.count_records(&conn, &query).await?;
    let next_cursor = if more {
        rows.last()
            .map(|r| cursor::encode(&state.keys, scope, &fingerprint, &r.id))
    } else {
        None
    };
    let data = rows
        .iter()
        .map(|r| render(r, include_raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Map::new();
    out.insert("data".into(), Value::Array(data));
    out.insert(
        "next_cursor".into(),
        next_cursor.map_or(Value::Null, Value::String),
    );
    out.insert("total_count".into(), Value::from(total));
    Ok(Json(Value::Object(out)))
}

/// Reads one record of the calling connection.
pub async fn get(
    state: &AppState,
    auth: &ConnectionAuth,
    id: &str,
    q: GetParams,
    entity: Entity,
) -> ApiResult<Json<Value>> {
    let include_raw = q.include_remote_data.unwrap_or(false);
    let record = state
        .store
        .get_record(&auth.id(), entity, id, include_raw)
        .await?
        .ok_or_else(|| ApiError::not_found(entity.as_str()))?;
    Ok(Json(render(&record, include_raw)?))
}

macro_rules! entity_routes {
    ($list:ident, $get:ident, $entity:expr, $path:literal, $item_path:literal, $list_ty:ty, $item_ty:ty, $tag:literal, $list_op:literal, $get_op:literal, $list_summary:literal, $get_summary:literal) => {
        #[doc = $list_summary]
        #[utoipa::path(get, path = $path, tag = $tag, operation_id = $list_op, params(ListParams), summary = $list_summary,
            description = "Pages are ordered by id and stable while records change: a record that exists throughout an iteration is returned exactly once.",
            responses((status = 200, description = "A page", body = $list_ty),
                (status = 400, description = "Bad parameter or cursor (`INVALID_REQUEST`, `INVALID_CURSOR`)", body = ErrorBody)),
            security(("connection_token" = []), ("admin_key" = [])))]
        pub async fn $list(State(state): State<AppState>, auth: ConnectionAuth, ApiQuery(q): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
            list(&state, &auth, q, $entity).await
        }

        #[doc = $get_summary]
        #[utoipa::path(get, path = $item_path, tag = $tag, operation_id = $get_op, summary = $get_summary,
            params(("id" = String, Path, description = "Ironbridge id of the record"), GetParams),
            responses((status = 200, description = "The record", body = $item_ty),
                (status = 404, description = "No such record in this connection", body = ErrorBody)),
            security(("connection_token" = []), ("admin_key" = [])))]
        pub async fn $get(State(state): State<AppState>, auth: ConnectionAuth, Path(id): Path<String>, ApiQuery(q): ApiQuery<GetParams>) -> ApiResult<Json<Value>> {
            get(&state, &auth, &id, q, $entity).await
        }
    };
}

entity_routes!(
    list_purchase_orders,
    get_purchase_order,
    Entity::PurchaseOrder,
    "/v1/purchase-orders",
    "/v1/purchase-orders/{id}",
    ironbridge_model::api::PurchaseOrderList,
    ironbridge_model::entities::PurchaseOrder,
    "Purchase orders",
    "v1.purchase_orders.list",
    "v1.purchase_orders.get",
    "List purchase orders",
    "Get a purchase order"
);
entity_routes!(
    list_vendors,
    get_vendor,
    Entity::Vendor,
    "/v1/vendors",
    "/v1/vendors/{id}",
    ironbridge_model::api::VendorList,
    ironbridge_model::entities::Vendor,
    "Vendors",
    "v1.vendors.list",
    "v1.vendors.get",
    "List vendors",
    "Get a vendor"
);
entity_routes!(
    list_items,
    get_item,
    Entity::Item,
    "/v1/items",
    "/v1/items/{id}",
    ironbridge_model::api::ItemList,
    ironbridge_model::entities::Item,
    "Items",
    "v1.items.list",
    "v1.items.get",
    "List items",
    "Get an item"
);
entity_routes!(
    list_locations,
    get_location,
    Entity::Location,
    "/v1/locations",
    "/v1/locations/{id}",
    ironbridge_model::api::LocationList,
    ironbridge_model::entities::Location,
    "Locations",
    "v1.locations.list",
    "v1.locations.get",
    "List locations",
    "Get a location"
);
