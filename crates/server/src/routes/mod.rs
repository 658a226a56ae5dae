//! Every route, one module per resource. The router is built only from [`api_routes`] and
//! [`ops_routes`], so a test can check each API route against the OpenAPI document.

pub mod api_keys;
pub mod batches;
pub mod certificates;
pub mod changes;
pub mod connections;
pub mod dispatch;
pub mod events;
pub mod field_mappings;
pub mod fleet;
pub mod flows;
pub mod link_tokens;
pub mod meta;
pub mod ops;
pub mod organization;
pub mod purchase_orders;
pub mod records;
pub mod sync;
pub mod systems;
pub mod warehouse;
pub mod webhooks;
pub mod writes;

use axum::Router;
use axum::http::Method;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tower_http::catch_panic::CatchPanicLayer;

use crate::extract::{self, BodyRules};
use crate::{AppState, auth, context, idempotency};

/// One route: method, path template and handler.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template (`/v1/purchase-orders/{id}`).
    pub path: &'static str,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

impl Route {
    /// A route.
    pub fn new(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
        Route {
            method,
            path,
            handler,
        }
    }
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route::new(method, path, handler)
}

/// The versioned API: every one of these needs a credential and is in the OpenAPI document.
/// Each entity of the catalogue adds its list and get routes (`records`).
pub fn api_routes() -> Vec<Route> {
    let mut routes = vec![
        route(
            Method::GET,
            "/v1/organization",
            get(organization::get_organization),
        ),
        route(Method::GET, "/v1/api-keys", get(api_keys::list_api_keys)),
        route(Method::POST, "/v1/api-keys", post(api_keys::create_api_key)),
        route(
            Method::DELETE,
            "/v1/api-keys/{id}",
            delete(api_keys::revoke_api_key),
        ),
        route(
            Method::GET,
            "/v1/connections",
            get(connections::list_connections),
        ),
        route(
            Method::POST,
            "/v1/connections",
            post(connections::create_connection),
        ),
        route(
            Method::GET,
            "/v1/connections/{id}",
            get(connections::get_connection),
        ),
        route(
            Method::POST,
            "/v1/connections/{id}/disconnect",
            post(connections::disconnect_connection),
        ),
        route(
            Method::POST,
            "/v1/connections/{id}/reconnect",
            post(connections::reconnect_connection),
        ),
        route(
            Method::DELETE,
            "/v1/connections/{id}/data",
            delete(connections::delete_connection_data),
        ),
        route(
            Method::GET,
            "/v1/connection",
            get(connections::get_current_connection),
        ),
        route(
            Method::GET,
            "/v1/connections/{id}/field-mappings",
            get(field_mappings::list_mappings),
        ),
        route(
            Method::GET,
            "/v1/connections/{id}/field-mappings/history",
            get(field_mappings::history),
        ),
        route(
            Method::POST,
            "/v1/connections/{id}/field-mappings/revert",
            post(field_mappings::revert),
        ),
        route(
            Method::GET,
            "/v1/connections/{id}/field-mappings/{entity}",
            get(field_mappings::get_mappings),
        ),
        route(
            Method::PUT,
            "/v1/connections/{id}/field-mappings/{entity}/{target}",
            put(field_mappings::set_mapping),
        ),
        route(
            Method::DELETE,
            "/v1/connections/{id}/field-mappings/{entity}/{target}",
            delete(field_mappings::delete_mapping),
        ),
        route(
            Method::GET,
            "/v1/connections/{id}/remote-fields",
            get(field_mappings::remote_fields),
        ),
        route(Method::POST, "/v1/sync", post(sync::start_sync)),
        route(Method::GET, "/v1/sync/jobs/{id}", get(sync::get_sync_job)),
        route(Method::GET, "/v1/events", get(events::list_events)),
        route(Method::GET, "/v1/changes", get(changes::list_changes)),
        route(Method::GET, "/v1/systems", get(systems::list_systems)),
        route(
            Method::GET,
            "/v1/webhook-endpoints",
            get(webhooks::list_endpoints),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints",
            post(webhooks::create_endpoint),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{id}",
            get(webhooks::get_endpoint),
        ),
        route(
            Method::PATCH,
            "/v1/webhook-endpoints/{id}",
            patch(webhooks::update_endpoint),
        ),
        route(
            Method::DELETE,
            "/v1/webhook-endpoints/{id}",
            delete(webhooks::delete_endpoint),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{id}/secret",
            get(webhooks::get_secret),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints/{id}/secret/rotate",
            post(webhooks::rotate_secret),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints/{id}/test",
            post(webhooks::test_endpoint),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints/{id}/recover",
            post(webhooks::recover),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{id}/deliveries",
            get(webhooks::list_deliveries),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{id}/attempts",
            get(webhooks::list_attempts),
        ),
        route(
            Method::GET,
            "/v1/webhook-deliveries/{id}",
            get(webhooks::get_delivery),
        ),
        route(
            Method::POST,
            "/v1/webhook-deliveries/{id}/replay",
            post(webhooks::replay_delivery),
        ),
        route(
            Method::GET,
            "/v1/webhook-event-types",
            get(webhooks::list_event_types),
        ),
        route(
            Method::POST,
            "/v1/certificates",
            post(certificates::create_certificate),
        ),
        route(
            Method::GET,
            "/v1/certificates/{id}",
            get(certificates::get_certificate),
        ),
        route(
            Method::GET,
            "/v1/certificates/{id}/certificate.pem",
            get(certificates::download_certificate),
        ),
        route(
            Method::POST,
            "/v1/dashboard-users",
            post(crate::dashboard::create_dashboard_user),
        ),
        route(
            Method::POST,
            "/v1/link-tokens",
            post(link_tokens::create_link_token),
        ),
        route(
            Method::POST,
            "/v1/link-tokens/exchange",
            post(link_tokens::exchange_public_token),
        ),
        route(
            Method::POST,
            "/v1/purchase-orders",
            post(purchase_orders::create_purchase_order),
        ),
        route(
            Method::PATCH,
            "/v1/purchase-orders/{id}",
            patch(purchase_orders::update_purchase_order),
        ),
        route(Method::POST, "/v1/vendors", post(writes::create_vendor)),
        route(
            Method::PATCH,
            "/v1/vendors/{id}",
            patch(writes::update_vendor),
        ),
        route(Method::POST, "/v1/items", post(writes::create_item)),
        route(Method::PATCH, "/v1/items/{id}", patch(writes::update_item)),
        route(
            Method::POST,
            "/v1/outbound-orders",
            post(warehouse::create_outbound_order),
        ),
        route(
            Method::PATCH,
            "/v1/outbound-orders/{id}",
            patch(warehouse::update_outbound_order),
        ),
        route(
            Method::POST,
            "/v1/dispatch-routes",
            post(dispatch::create_dispatch_route),
        ),
        route(
            Method::PATCH,
            "/v1/dispatch-routes/{id}",
            patch(dispatch::update_dispatch_route),
        ),
        route(
            Method::GET,
            "/v1/vehicle-locations",
            get(fleet::list_vehicle_locations),
        ),
        route(
            Method::GET,
            "/v1/vehicle-locations/latest",
            get(fleet::latest_vehicle_locations),
        ),
        route(Method::GET, "/v1/meta/{entity}", get(meta::get_meta)),
        route(Method::POST, "/v1/batches", post(batches::create_batch)),
        route(Method::GET, "/v1/batches", get(batches::list_batches)),
        route(Method::GET, "/v1/batches/{id}", get(batches::get_batch)),
        route(
            Method::POST,
            "/v1/batches/{id}/cancel",
            post(batches::cancel_batch),
        ),
        route(
            Method::GET,
            "/v1/batches/{id}/operations",
            get(batches::list_operations),
        ),
        route(Method::GET, "/v1/flows", get(flows::list_flows)),
        route(Method::POST, "/v1/flows", post(flows::create_flow)),
        route(
            Method::POST,
            "/v1/flows/dry-run",
            post(flows::dry_run_document),
        ),
        route(Method::GET, "/v1/flows/{flow}", get(flows::get_flow)),
        route(Method::PUT, "/v1/flows/{flow}", put(flows::put_flow)),
        route(
            Method::DELETE,
            "/v1/flows/{flow}",
            delete(flows::delete_flow),
        ),
        route(
            Method::GET,
            "/v1/flows/{flow}/versions",
            get(flows::list_versions),
        ),
        route(
            Method::POST,
            "/v1/flows/{flow}/runs",
            post(flows::start_run),
        ),
        route(Method::GET, "/v1/flows/{flow}/runs", get(flows::list_runs)),
        route(
            Method::POST,
            "/v1/flows/{flow}/dry-run",
            post(flows::dry_run_flow),
        ),
        route(Method::GET, "/v1/flow-runs/{id}", get(flows::get_run)),
        route(
            Method::POST,
            "/v1/flow-runs/{id}/cancel",
            post(flows::cancel_run),
        ),
        route(
            Method::GET,
            "/v1/flow-runs/{id}/items",
            get(flows::list_items),
        ),
    ];
    routes.extend(records::routes());
    routes
}

/// Operations and documentation routes: no credential, not part of the API document.
pub fn ops_routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/healthz", get(ops::healthz)),
        route(Method::GET, "/readyz", get(ops::readyz)),
        route(Method::GET, "/metrics", get(ops::metrics)),
        route(Method::GET, "/openapi.json", get(ops::openapi_json)),
        route(Method::GET, "/docs", get(ops::docs_page)),
        route(
            Method::GET,
            "/docs/swagger-ui-bundle.js",
            get(ops::docs_script),
        ),
        route(Method::GET, "/docs/swagger-ui.css", get(ops::docs_style)),
    ]
}

/// The operations routes a process without the API serves (a worker with
/// `metrics_listen`): what a probe and a scraper need, not the API's documents.
pub const HEALTH_AND_METRICS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Builds the application router with its middleware stack.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for r in api_routes() {
        api = api.route(r.path, r.handler);
    }
    // Authentication first (an anonymous caller learns nothing of the operation), then
    // query names are checked against the document.
    let api = api
        .route_layer(from_fn(extract::refuse_unknown_query))
        .route_layer(from_fn_with_state(state.clone(), idempotency::guard))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    // The MCP endpoint: the same authentication and rate limit; its tools run the routes
    // above in process (`internal_router`).
    let mcp = Router::new()
        .route_service(MCP_PATH, crate::mcp::http_service(&state))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    with_middleware(
        api.merge(mcp)
            .merge(ops_router(&state, ops_routes()))
            .merge(ops_router(&state, crate::link::routes()))
            .merge(ops_router(&state, crate::dashboard::sign_in_routes()))
            .merge(unlimited(crate::dashboard::routes()))
            .merge(unlimited(crate::html::asset_routes())),
        state,
    )
}

/// Where the MCP server is served.
pub const MCP_PATH: &str = "/mcp";

/// The API routes with their parsing, idempotency and query checks but without
/// authentication, request ids or the timeout: what an MCP tool call runs in process, with
/// the principal its own request authenticated in the request's extensions. Never served on
/// a listener.
pub fn internal_router(state: AppState) -> Router {
    let mut api = Router::new();
    for r in api_routes() {
        api = api.route(r.path, r.handler);
    }
    api.route_layer(from_fn(extract::refuse_unknown_query))
        .route_layer(from_fn_with_state(state.clone(), idempotency::guard))
        .fallback(context::not_found)
        .method_not_allowed_fallback(context::method_not_allowed)
        .layer(CatchPanicLayer::custom(context::panic_response))
        .with_state(state)
}

/// Health, readiness and metrics alone, with the same middleware as the whole application.
pub fn health_router(state: AppState) -> Router {
    let routes = ops_routes()
        .into_iter()
        .filter(|r| HEALTH_AND_METRICS.contains(&r.path))
        .collect();
    with_middleware(ops_router(&state, routes), state)
}

/// Routes that are not limited per client address (see where they are listed for why).
fn unlimited(routes: Vec<Route>) -> Router<AppState> {
    let mut router = Router::new();
    for r in routes {
        router = router.route(r.path, r.handler);
    }
    router
}

/// Operations routes, limited per client address (they need no credential).
fn ops_router(state: &AppState, routes: Vec<Route>) -> Router<AppState> {
    let mut ops = Router::new();
    for r in routes {
        ops = ops.route(r.path, r.handler);
    }
    ops.route_layer(from_fn_with_state(state.clone(), auth::limit_anonymous))
}

/// Metrics, answers for unknown routes, panics, request ids and the timeout, around `routes`.
fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .route_layer(from_fn(context::track_metrics))
        .fallback(context::not_found)
        .method_not_allowed_fallback(context::method_not_allowed)
        .layer(CatchPanicLayer::custom(context::panic_response))
        .layer(from_fn_with_state(state.clone(), context::request_context))
        .with_state(state)
}

impl BodyRules for ironbridge_model::api::ConnectionIn {
    fn read_only() -> &'static [&'static str] {
        &["id", "status", "token", "created_at", "health"]
    }
}

impl BodyRules for ironbridge_model::api::ReconnectIn {}

impl BodyRules for ironbridge_model::link::LinkTokenIn {
    fn read_only() -> &'static [&'static str] {
        &["id", "link_token", "url", "expires_at"]
    }
}

impl BodyRules for ironbridge_model::link::LinkExchangeIn {}

impl BodyRules for ironbridge_model::dashboard::DashboardUserIn {
    fn read_only() -> &'static [&'static str] {
        &["id", "created_at"]
    }
}

impl BodyRules for ironbridge_model::api::SyncIn {}

impl BodyRules for ironbridge_model::field_mappings::FieldMappingIn {}

impl BodyRules for ironbridge_model::field_mappings::FieldMappingRevertIn {}

impl BodyRules for ironbridge_model::batches::BatchIn {}

impl BodyRules for ironbridge_model::api::CertificateIn {
    fn read_only() -> &'static [&'static str] {
        &[
            "id",
            "certificate_pem",
            "not_before",
            "not_after",
            "private_key",
        ]
    }
}

impl BodyRules for ironbridge_model::webhooks::WebhookEndpointIn {
    fn read_only() -> &'static [&'static str] {
        WEBHOOK_ENDPOINT_READ_ONLY
    }
}

impl BodyRules for ironbridge_model::webhooks::WebhookEndpointPatch {
    fn read_only() -> &'static [&'static str] {
        WEBHOOK_ENDPOINT_READ_ONLY
    }
    fn immutable() -> &'static [&'static str] {
        &["secret"]
    }
}

const WEBHOOK_ENDPOINT_READ_ONLY: &[&str] = &[
    "id",
    "status",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
];

impl BodyRules for ironbridge_model::webhooks::WebhookSecretRotateIn {}

impl BodyRules for ironbridge_model::webhooks::WebhookRecoverIn {}

impl BodyRules for ironbridge_model::api::ApiKeyIn {
    fn read_only() -> &'static [&'static str] {
        &["id", "prefix", "created_at", "key"]
    }
}

const ORDER_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
    "status",
    "remote_status",
    "subtotal",
    "tax_amount",
    "total_amount",
];
const LINE_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "line_number",
    "quantity_received",
    "total_amount",
    "custom_fields",
];

/// The envelope every record carries (never written).
const ENVELOPE_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
];

/// An item's stock figures: moved by the source's transactions, never written.
const ITEM_READ_ONLY: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
    "quantity_on_hand",
    "quantity_available",
];

impl BodyRules for ironbridge_model::api::VendorIn {
    fn read_only() -> &'static [&'static str] {
        ENVELOPE_READ_ONLY
    }
}

impl BodyRules for ironbridge_model::api::VendorPatch {
    fn read_only() -> &'static [&'static str] {
        ENVELOPE_READ_ONLY
    }
}

impl BodyRules for ironbridge_model::api::ItemIn {
    fn read_only() -> &'static [&'static str] {
        ITEM_READ_ONLY
    }
}

impl BodyRules for ironbridge_model::api::ItemPatch {
    fn read_only() -> &'static [&'static str] {
        ITEM_READ_ONLY
    }
}

impl BodyRules for ironbridge_model::api::PurchaseOrderIn {
    fn read_only() -> &'static [&'static str] {
        ORDER_READ_ONLY
    }
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[("line_items", LINE_READ_ONLY)]
    }
}

impl BodyRules for ironbridge_model::api::PurchaseOrderPatch {
    fn read_only() -> &'static [&'static str] {
        ORDER_READ_ONLY
    }
    fn immutable() -> &'static [&'static str] {
        &["number", "vendor_id", "currency", "order_date"]
    }
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[("line_items", LINE_READ_ONLY)]
    }
}
