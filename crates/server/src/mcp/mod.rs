//! The MCP server: the unified API as tools for AI agents, scoped to one connection. Served
//! at `/mcp` (Streamable HTTP, stateless, behind the same authentication and rate limits as
//! the REST API) and on standard input and output (`ironbridge mcp --stdio`). Tools are made
//! from the catalogue (`tools`); a call is a thin adapter over the REST API's own routes, run
//! in process with the caller's principal and request id (`call`), so validation, tenancy,
//! idempotency and error codes are the REST API's, not copies.

pub mod call;
pub mod tools;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::request::Parts;
use ironbridge_core::ids::new_id;
use ironbridge_core::service::stored_system;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::AppState;
use crate::auth::Principal;
use crate::context::RequestId;
use tools::{Audience, ToolDef};

/// Tool calls; labels `tool` and `outcome` (`ok` or the error code).
pub const MCP_TOOL_CALLS: &str = "ironbridge_mcp_tool_calls_total";
/// Seconds a tool call took; label `tool`.
pub const MCP_TOOL_CALL_DURATION: &str = "ironbridge_mcp_tool_call_duration_seconds";

/// Which tools are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolMode {
    /// Every tool of the connection.
    #[default]
    All,
    /// Only `search_tools`, `describe_tool` and `call_tool`, which reach the others.
    Meta,
}

/// Who calls, and under which request id.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated credential.
    pub principal: Principal,
    /// The request id of the call (the HTTP request's, or a fresh one on stdio).
    pub request_id: String,
    /// The tools listed.
    pub mode: ToolMode,
}

impl Caller {
    /// Whether write tools are granted.
    pub fn may_write(&self) -> bool {
        self.principal.mcp_access().allows_writes()
    }
}

/// What every call shares.
pub struct Shared {
    pub(crate) state: AppState,
    /// The REST API's routes with their parsing, idempotency and query checks, but no
    /// authentication layer: the principal is the caller's, already authenticated.
    pub(crate) rest: Router,
    /// Tool lists made so far, by (system, writes granted): they depend on nothing else,
    /// and making one copies every schema out of the OpenAPI document.
    catalogues: std::sync::Mutex<HashMap<CatalogueKey, Arc<Vec<ToolDef>>>>,
}

/// What a tool list depends on: the system (`None`: an organization key's, every system)
/// and whether writes are granted.
type CatalogueKey = (Option<&'static str>, bool);

/// The MCP server handler. Over HTTP it is made per request and learns its caller from the
/// request; on stdio it has one caller for its life.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
    stdio: Option<(Principal, ToolMode)>,
}

impl McpServer {
    /// A handler for HTTP requests.
    pub fn new(shared: Arc<Shared>) -> Self {
        McpServer {
            shared,
            stdio: None,
        }
    }

    /// A handler for one caller on stdio.
    pub fn for_principal(shared: Arc<Shared>, principal: Principal, mode: ToolMode) -> Self {
        McpServer {
            shared,
            stdio: Some((principal, mode)),
        }
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some((principal, mode)) = &self.stdio {
            // Each call on stdio is a request of its own: its id and its rate limit.
            let state = &self.shared.state;
            let decision = state
                .limiter
                .check(principal.limit_key(), state.clock.now());
            if !decision.allowed {
                return Err(ErrorData::new(
                    rmcp::model::ErrorCode(-32000),
                    format!(
                        "RATE_LIMIT_EXCEEDED: rate limit exceeded for this credential. Retry after {} s.",
                        decision.retry_after_secs
                    ),
                    None,
                ));
            }
            return Ok(Caller {
                principal: principal.clone(),
                request_id: new_id("req", state.clock.now().micros()),
                mode: *mode,
            });
        }
        let parts = ctx
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP request", None))?;
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("not authenticated", None))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(crate::context::current_request_id);
        let meta = parts.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "tools" && v == "meta")
        });
        Ok(Caller {
            principal,
            request_id,
            mode: if meta { ToolMode::Meta } else { ToolMode::All },
        })
    }

    /// Every tool the caller may use (meta mode aside).
    pub(crate) fn tools_of(&self, caller: &Caller) -> Result<Arc<Vec<ToolDef>>, ErrorData> {
        let registry = self.shared.state.runtimes.registry();
        let system = match &caller.principal {
            Principal::Connection(c) => Some(
                stored_system(registry, c)
                    .map_err(|_| ErrorData::internal_error("unknown system", None))?,
            ),
            Principal::Admin { .. } => None,
        };
        let writes = caller.may_write();
        let key = (system.map(|s| s.id.as_str()), writes);
        let mut cache = self
            .shared
            .catalogues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let tools = cache.entry(key).or_insert_with(|| {
            Arc::new(tools::catalogue(&Audience {
                system,
                registry,
                writes,
            }))
        });
        Ok(tools.clone())
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("ironbridge", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Ironbridge: one connection's business-system data (purchase orders, vendors, items, locations) in one unified model. List tools page (follow `next_cursor`); write tools take an `idempotency_key`. Errors carry a stable `code` and a `request_id`.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let tools = match caller.mode {
            ToolMode::Meta => tools::meta_tools(),
            ToolMode::All => self.tools_of(&caller)?.to_vec(),
        };
        Ok(ListToolsResult::with_all_items(
            tools.into_iter().map(|t| t.tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let started = Instant::now();
        let name = request.name.to_string();
        let id = caller.request_id.clone();
        let outcome = crate::context::with_request_id(
            id.clone(),
            call::run(self, &caller, &name, request.arguments.unwrap_or_default()),
        )
        .await;
        let (label, result) = match outcome {
            Ok(result) => (call::outcome_label(&result), Ok(result.into())),
            Err(e) => ("PROTOCOL_ERROR".to_string(), Err(e)),
        };
        let connection = match &caller.principal {
            Principal::Connection(c) => c.id.clone(),
            Principal::Admin { .. } => String::new(),
        };
        let tool = if result.is_ok() {
            name.clone()
        } else {
            "unknown".into()
        };
        tracing::info!(request_id = %id, tool = %name, connection = %connection, outcome = %label,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "mcp tool call");
        metrics::counter!(MCP_TOOL_CALLS, "tool" => tool.clone(), "outcome" => label).increment(1);
        metrics::histogram!(MCP_TOOL_CALL_DURATION, "tool" => tool)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

/// What the MCP endpoint and stdio share: the state and the REST routes without their
/// authentication layer.
pub fn shared(state: AppState) -> Arc<Shared> {
    Arc::new(Shared {
        rest: crate::routes::internal_router(state.clone()),
        catalogues: std::sync::Mutex::new(HashMap::new()),
        state,
    })
}

/// The Streamable HTTP service mounted at `/mcp`: stateless (each POST is answered on its
/// own, as JSON), so any API node can serve any call.
pub fn http_service(state: &AppState) -> StreamableHttpService<McpServer, NeverSessionManager> {
    let shared = shared(state.clone());
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(state.shutdown.child_token())
        .with_max_request_body_bytes(state.config.max_body_bytes)
        .with_sse_keep_alive(None)
        // Every call needs a bearer credential, which a page a browser was rebound to
        // cannot send: the Host check against DNS rebinding would only refuse proxies.
        .disable_allowed_hosts();
    config.sse_retry = None;
    StreamableHttpService::new(
        move || Ok(McpServer::new(shared.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// Serves one caller over standard input and output until the client closes them or
/// `shutdown` is cancelled.
pub async fn serve_stdio(
    state: AppState,
    principal: Principal,
    mode: ToolMode,
) -> Result<(), std::io::Error> {
    let (stdin, stdout) = rmcp::transport::io::stdio();
    serve_io(state, principal, mode, stdin, stdout).await
}

/// Serves one caller over a byte stream pair (newline-delimited JSON-RPC, as stdio).
pub async fn serve_io<R, W>(
    state: AppState,
    principal: Principal,
    mode: ToolMode,
    read: R,
    write: W,
) -> Result<(), std::io::Error>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use rmcp::ServiceExt;
    let shutdown = state.shutdown.clone();
    let server = McpServer::for_principal(shared(state), principal, mode);
    let running = server
        .serve_with_ct((read, write), shutdown.child_token())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
