//! Flows: documents (create, list, read, change by id or key, delete, versions), manual runs
//! and dry runs, and run history with each step's items.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ironbridge_core::flows::Problem;
use ironbridge_core::pagination::Pager;
use ironbridge_core::store::{FlowItem, OrgId, StoreError, item_status};
use ironbridge_engine::flows::dry::dry_run;
use ironbridge_engine::flows::manage::{self, FlowError, flow_out, run_out};
use ironbridge_model::ErrorCode;
use ironbridge_model::flows::{
    FlowDocumentDryRunIn, FlowDryRunIn, FlowDryRunOut, FlowIn, FlowItemOut, FlowItemPage, FlowList,
    FlowOut, FlowRunIn, FlowRunList, FlowRunOut, FlowVersionList, FlowVersionOut, MAX_INPUT_ITEMS,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, BodyRules};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// A flow document as sent, read by the flow rules themselves so every problem is named by
/// its path in the document (typed decoding would lose paths inside tagged steps).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct FlowDocument(pub Map<String, Value>);

impl BodyRules for FlowDocument {
    fn read_only() -> &'static [&'static str] {
        &["id", "version", "created_at", "updated_at"]
    }
}

impl BodyRules for FlowRunIn {}

/// A dry run's body, read like a document (its `flow` is one).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct DryRunBody(pub Map<String, Value>);

impl BodyRules for DryRunBody {}

fn invalid(problems: Vec<Problem>) -> ApiError {
    let first = problems.first().cloned().unwrap_or(Problem {
        path: String::new(),
        message: "the flow document is invalid".into(),
    });
    let more = problems.len().saturating_sub(1);
    let message = if first.path.is_empty() || first.message.starts_with('`') {
        first.message.clone()
    } else {
        format!("`{}`: {}", first.path, first.message)
    };
    let message = if more > 0 {
        format!(
            "{message} (and {more} more problem{})",
            if more == 1 { "" } else { "s" }
        )
    } else {
        message
    };
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message}))
        .collect();
    let mut err =
        ApiError::new(ErrorCode::ValidationError, message).details(json!({ "errors": errors }));
    if !first.path.is_empty() {
        err = err.param(first.path);
    }
    err
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Invalid(problems) => invalid(problems),
            FlowError::Store(e) => e.into(),
        }
    }
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("flow"),
        other => other.into(),
    }
}

/// Create a flow from its document. The document is checked whole: its shape, every jq
/// expression and cron schedule, and each connection it names (the organization's, live,
/// and whose system reads or writes the entity named with it). Every problem is listed with
/// its path in `details.errors`.
#[utoipa::path(post, path = "/v1/flows", tag = "Flows", operation_id = "v1.flows.create",
    request_body = FlowIn,
    responses((status = 201, description = "The flow, version 1", body = FlowOut),
        (status = 409, description = "A flow with this key exists (`PUT /v1/flows/{key}` changes it)", body = ErrorBody),
        (status = 422, description = "The document is invalid: each problem with its path in `details.errors`", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_flow(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(FlowDocument(doc)): ApiJson<FlowDocument>,
) -> ApiResult<(StatusCode, Json<FlowOut>)> {
    let registry = state.runtimes.registry();
    let (flow, _) = manage::save(
        state.store.as_ref(),
        registry,
        state.clock.as_ref(),
        &org,
        &Value::Object(doc),
        None,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(flow_out(&flow)?)))
}

/// Create or change a flow by its key (or change one by its id): the document becomes the
/// flow's next version, and sending the same document again changes nothing, so a
/// repository of flow files can be applied on every deploy. A trigger moved to another
/// connection, entity or schedule starts again from its beginning (or the feed's end).
#[utoipa::path(put, path = "/v1/flows/{flow}", tag = "Flows", operation_id = "v1.flows.put",
    params(("flow" = String, Path, description = "The flow's key (`netsuite-po-to-asctrac`) or id (`flw_…`)")),
    request_body = FlowIn,
    responses((status = 200, description = "The flow as changed (or unchanged)", body = FlowOut),
        (status = 201, description = "The flow, created with this key", body = FlowOut),
        (status = 404, description = "No flow with this id", body = ErrorBody),
        (status = 409, description = "The flow changed meanwhile", body = ErrorBody),
        (status = 422, description = "The document is invalid: each problem with its path in `details.errors`", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn put_flow(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
    ApiJson(FlowDocument(doc)): ApiJson<FlowDocument>,
) -> ApiResult<(StatusCode, Json<FlowOut>)> {
    let registry = state.runtimes.registry();
    let (saved, created) = manage::save(
        state.store.as_ref(),
        registry,
        state.clock.as_ref(),
        &org,
        &Value::Object(doc),
        Some(&flow),
    )
    .await
    .map_err(|e| match e {
        FlowError::Store(e) => not_found(e),
        other => other.into(),
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(flow_out(&saved)?)))
}

/// The organization's flows, by key.
#[utoipa::path(get, path = "/v1/flows", tag = "Flows", operation_id = "v1.flows.list",
    responses((status = 200, description = "The flows", body = FlowList)),
    security(("admin_key" = [])))]
pub async fn list_flows(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
) -> ApiResult<Json<FlowList>> {
    let flows = state.store.list_flows(&org).await?;
    let data = flows.iter().map(flow_out).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(FlowList { data }))
}

/// A flow by key or id.
#[utoipa::path(get, path = "/v1/flows/{flow}", tag = "Flows", operation_id = "v1.flows.get",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)")),
    responses((status = 200, description = "The flow", body = FlowOut),
        (status = 404, description = "No such flow in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_flow(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
) -> ApiResult<Json<FlowOut>> {
    let flow = state.store.get_flow(&org, &flow).await.map_err(not_found)?;
    Ok(Json(flow_out(&flow)?))
}

/// Delete a flow with its versions and run history. A run in progress stops at its next
/// batch; what it wrote stays written.
#[utoipa::path(delete, path = "/v1/flows/{flow}", tag = "Flows", operation_id = "v1.flows.delete",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such flow in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn delete_flow(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let flow = state.store.get_flow(&org, &flow).await.map_err(not_found)?;
    state
        .store
        .delete_flow(&org, &flow.id)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A flow's versions, newest first, each with its document as saved.
#[utoipa::path(get, path = "/v1/flows/{flow}/versions", tag = "Flows", operation_id = "v1.flows.versions",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)")),
    responses((status = 200, description = "The versions", body = FlowVersionList),
        (status = 404, description = "No such flow in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
) -> ApiResult<Json<FlowVersionList>> {
    let flow = state.store.get_flow(&org, &flow).await.map_err(not_found)?;
    let versions = state.store.list_flow_versions(&org, &flow.id).await?;
    let data = versions
        .into_iter()
        .map(|v| {
            let document = serde_json::from_str(&v.document)
                .map_err(|_| ApiError::internal("a stored flow version is unreadable"))?;
            Ok(FlowVersionOut {
                version: v.version,
                document,
                created_at: v.created_at,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(FlowVersionList { data }))
}

fn check_items(items: &Option<Vec<Value>>) -> Result<(), ApiError> {
    if items.as_ref().is_some_and(|i| i.len() > MAX_INPUT_ITEMS) {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            format!("a run is given at most {MAX_INPUT_ITEMS} items"),
        )
        .param("items"));
    }
    Ok(())
}

/// Run a flow now with the items given (one empty object by default), whatever its trigger
/// and whether it is enabled. The run is a job: it survives restarts and writes each item
/// once. Send an `Idempotency-Key` to start it at most once.
#[utoipa::path(post, path = "/v1/flows/{flow}/runs", tag = "Flows", operation_id = "v1.flows.run",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)")),
    request_body = FlowRunIn,
    responses((status = 202, description = "The queued run", body = FlowRunOut),
        (status = 404, description = "No such flow in this organization", body = ErrorBody),
        (status = 422, description = "Too many items", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn start_run(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
    ApiJson(input): ApiJson<FlowRunIn>,
) -> ApiResult<(StatusCode, Json<FlowRunOut>)> {
    check_items(&input.items)?;
    let run = manage::start_manual(
        state.store.as_ref(),
        state.clock.as_ref(),
        &org,
        &flow,
        input.items,
    )
    .await
    .map_err(not_found)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(run_out(state.store.as_ref(), &org, run).await?),
    ))
}

async fn dry(
    state: &AppState,
    org: &OrgId,
    doc: &FlowIn,
    flow: Option<&ironbridge_core::store::Flow>,
    items: Option<Vec<Value>>,
) -> ApiResult<Json<FlowDryRunOut>> {
    check_items(&items)?;
    Ok(Json(
        dry_run(
            state.store.as_ref(),
            &state.runtimes,
            org,
            doc,
            flow,
            items,
            state.clock.now(),
        )
        .await?,
    ))
}

/// The items of a dry run's body.
fn body_items(body: &Map<String, Value>) -> Result<Option<Vec<Value>>, ApiError> {
    match body.get("items") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(_) => Err(
            ApiError::new(ErrorCode::ValidationError, "`items` must be an array").param("items"),
        ),
    }
}

fn only_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::new(
            ErrorCode::ValidationError,
            format!(
                "unknown field `{k}`, expected one of: {}",
                allowed.join(", ")
            ),
        )
        .param(k.clone())),
        None => Ok(()),
    }
}

/// Try a flow's steps on items without writing or sending anything: reads and jq run for
/// real, each write is checked as the write path would check it and shows the fields it would
/// send, each webhook shows the event's data. With no `items`, the trigger's next items are
/// used (the changes waiting, the newest matching event, or one empty item).
#[utoipa::path(post, path = "/v1/flows/{flow}/dry-run", tag = "Flows", operation_id = "v1.flows.dry_run",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)")),
    request_body = FlowDryRunIn,
    responses((status = 200, description = "What each step would do", body = FlowDryRunOut),
        (status = 404, description = "No such flow in this organization", body = ErrorBody),
        (status = 422, description = "Too many items", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn dry_run_flow(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
    ApiJson(DryRunBody(body)): ApiJson<DryRunBody>,
) -> ApiResult<Json<FlowDryRunOut>> {
    only_fields(&body, &["items"])?;
    let flow = state.store.get_flow(&org, &flow).await.map_err(not_found)?;
    let doc: FlowIn = serde_json::from_str(&flow.document)
        .map_err(|_| ApiError::internal("a stored flow is unreadable"))?;
    dry(&state, &org, &doc, Some(&flow), body_items(&body)?).await
}

/// Try a flow document before saving it, as `POST /v1/flows/{flow}/dry-run` does for a saved
/// one. The document is checked as creating it would check it.
#[utoipa::path(post, path = "/v1/flows/dry-run", tag = "Flows", operation_id = "v1.flows.dry_run_document",
    request_body = FlowDocumentDryRunIn,
    responses((status = 200, description = "What each step would do", body = FlowDryRunOut),
        (status = 422, description = "The document is invalid (paths under `flow.`), or too many items", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn dry_run_document(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(DryRunBody(body)): ApiJson<DryRunBody>,
) -> ApiResult<Json<FlowDryRunOut>> {
    only_fields(&body, &["flow", "items"])?;
    let Some(document) = body.get("flow") else {
        return Err(ApiError::new(ErrorCode::ValidationError, "`flow` is required.").param("flow"));
    };
    let doc = manage::check(
        state.store.as_ref(),
        state.runtimes.registry(),
        &org,
        document,
    )
    .await
    .map_err(|e| match e {
        FlowError::Invalid(problems) => invalid(
            problems
                .into_iter()
                .map(|p| Problem {
                    path: if p.path.is_empty() {
                        "flow".into()
                    } else {
                        format!("flow.{}", p.path)
                    },
                    message: p.message,
                })
                .collect(),
        ),
        FlowError::Store(e) => e.into(),
    })?;
    dry(&state, &org, &doc, None, body_items(&body)?).await
}

/// Query of a flow's runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Runs per page (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

fn page_size(requested: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let size = requested.unwrap_or(default);
    if !(1..=max).contains(&size) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("page_size must be between 1 and {max}"),
        )
        .param("page_size"));
    }
    Ok(size)
}

/// A flow's runs, newest first, each with its steps' counts.
#[utoipa::path(get, path = "/v1/flows/{flow}/runs", tag = "Flows", operation_id = "v1.flows.runs",
    params(("flow" = String, Path, description = "The flow's key or id (`flw_…`)"), RunsQuery),
    responses((status = 200, description = "A page of runs", body = FlowRunList),
        (status = 400, description = "Bad cursor or page size", body = ErrorBody),
        (status = 404, description = "No such flow in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_runs(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(flow): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult<Json<FlowRunList>> {
    let limit = page_size(query.page_size, 20, 100)?;
    let flow = state.store.get_flow(&org, &flow).await.map_err(not_found)?;
    let pager = Pager::new(
        &state.keys,
        &org.0,
        &[("list", "flow_runs".into()), ("flow", flow.id.clone())],
    );
    let before = pager.position(query.cursor.as_deref())?;
    let runs = state
        .store
        .list_flow_runs(&org, &flow.id, before.as_deref(), limit + 1)
        .await?;
    let (runs, next_cursor) = pager.page(runs, limit, |r| &r.id);
    let mut data = Vec::with_capacity(runs.len());
    for run in runs {
        data.push(run_out(state.store.as_ref(), &org, run).await?);
    }
    Ok(Json(FlowRunList { data, next_cursor }))
}

/// A run with each step's counts and, if it failed, why.
#[utoipa::path(get, path = "/v1/flow-runs/{id}", tag = "Flows", operation_id = "v1.flow_runs.get",
    params(("id" = String, Path, description = "Run id (`frn_…`)")),
    responses((status = 200, description = "The run", body = FlowRunOut),
        (status = 404, description = "No such run in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FlowRunOut>> {
    let run = state.store.get_flow_run(&org, &id).await?;
    Ok(Json(run_out(state.store.as_ref(), &org, run).await?))
}

/// Ask a run to stop before its next batch (items in flight end first; what was written
/// stays written). `flow.run_completed` then says `cancelled`.
#[utoipa::path(post, path = "/v1/flow-runs/{id}/cancel", tag = "Flows", operation_id = "v1.flow_runs.cancel",
    params(("id" = String, Path, description = "Run id (`frn_…`)")),
    responses((status = 200, description = "The run, its cancel asked for", body = FlowRunOut),
        (status = 404, description = "No such run in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn cancel_run(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FlowRunOut>> {
    let run = state
        .store
        .cancel_flow_run(&org, &id, state.clock.now())
        .await?;
    Ok(Json(run_out(state.store.as_ref(), &org, run).await?))
}

/// Query of a run's items.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// Only this step's items (its id; a step the run's flow does not have has none).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub step: Option<String>,
    /// Only items in this state.
    #[param(pattern = "^(pending|sending|succeeded|failed|cancelled)$")]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
}

/// Most bytes of an item's input or output shown.
const SHOWN_BYTES: usize = 65_536;

fn shown(text: &str) -> Value {
    if text.len() <= SHOWN_BYTES {
        return serde_json::from_str(text).unwrap_or(Value::Null);
    }
    let mut end = SHOWN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({"truncated": true, "bytes": text.len(), "start": &text[..end]})
}

fn item_out(step_ids: &[String], item: FlowItem) -> FlowItemOut {
    FlowItemOut {
        step: usize::try_from(item.step)
            .ok()
            .and_then(|i| step_ids.get(i).cloned())
            .unwrap_or_default(),
        index: item.idx,
        status: item.status,
        attempts: item.attempts,
        input: shown(&item.input),
        output: item.output.as_deref().map(shown),
        error: item
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok()),
        updated_at: item.updated_at,
    }
}

/// A run's items, by step then index: what each step took, what it yielded, and each
/// failure as the API would answer it.
#[utoipa::path(get, path = "/v1/flow-runs/{id}/items", tag = "Flows", operation_id = "v1.flow_runs.items",
    params(("id" = String, Path, description = "Run id (`frn_…`)"), ItemsQuery),
    responses((status = 200, description = "A page of items", body = FlowItemPage),
        (status = 400, description = "Bad step, status, cursor or page size", body = ErrorBody),
        (status = 404, description = "No such run in this organization", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn list_items(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ItemsQuery>,
) -> ApiResult<Json<FlowItemPage>> {
    let limit = page_size(query.page_size, 100, 500)?;
    const STATES: [&str; 5] = [
        item_status::PENDING,
        item_status::SENDING,
        item_status::SUCCEEDED,
        item_status::FAILED,
        item_status::CANCELLED,
    ];
    if let Some(s) = &query.status
        && !STATES.contains(&s.as_str())
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "status must be pending, sending, succeeded, failed or cancelled",
        )
        .param("status"));
    }
    let run = state.store.get_flow_run(&org, &id).await?;
    let version = state
        .store
        .get_flow_version(&org, &run.flow_id, run.flow_version)
        .await?;
    let doc: FlowIn = serde_json::from_str(&version.document)
        .map_err(|_| ApiError::internal("a stored flow version is unreadable"))?;
    let step_ids: Vec<String> = doc.steps.iter().map(|s| s.id().to_string()).collect();
    let step = match &query.step {
        Some(s)
            if s.is_empty()
                || s.len() > 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`step` is a step's id (its steps: {})", step_ids.join(", ")),
            )
            .param("step"));
        }
        // A step the flow does not have has no items (as a status no item is in).
        Some(s) => Some(
            step_ids
                .iter()
                .position(|id| id == s)
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(-1),
        ),
        None => None,
    };
    let pager = Pager::new(
        &state.keys,
        &org.0,
        &[
            ("list", "flow_items".into()),
            ("run", run.id.clone()),
            ("step", step.map(|s| s.to_string()).unwrap_or_default()),
            ("status", query.status.clone().unwrap_or_default()),
        ],
    );
    let after = match pager.position(query.cursor.as_deref())? {
        Some(key) => {
            let (s, i) = key
                .split_once('|')
                .and_then(|(s, i)| Some((s.parse::<i64>().ok()?, i.parse::<i64>().ok()?)))
                .ok_or(ironbridge_core::cursor::CursorError::Tampered)?;
            Some((s, i))
        }
        None => None,
    };
    let items = state
        .store
        .list_flow_items(
            &org,
            &run.id,
            step,
            query.status.as_deref(),
            after,
            limit + 1,
        )
        .await?;
    let (items, next_cursor) = pager.page_by(items, limit, |i| format!("{}|{}", i.step, i.idx));
    let data = items.into_iter().map(|i| item_out(&step_ids, i)).collect();
    Ok(Json(FlowItemPage { data, next_cursor }))
}
