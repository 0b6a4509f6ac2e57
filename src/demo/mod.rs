//! The built-in demo MCP server (`toolwarden demo-server`): a small shop/CRM with tools of every category.
//!
//! It is the fixture for the crawler and proxy tests and the target of `quickstart`, so it carries the shapes
//! real servers have (action enums, nested `$ref` schemas, a lying annotation, a financial tool, a slow tool,
//! a failing tool, a tool list that changes, a sampling request) and its tools really work on an in-memory
//! shop. The handler is written against rmcp's `ServerHandler` by hand rather than with the tool macros, so
//! the listed JSON is exactly what `tools.rs` says. Logs go to stderr; on stdio, stdout is the MCP stream.

mod poisoned;
mod store;
mod tools;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool as McpTool,
};
#[allow(deprecated)]
use rmcp::model::{CreateMessageRequestParams, SamplingMessage};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

use store::{Shop, run_sql};

/// The longest `slow_export` will sleep, whatever it is asked.
pub const SLOW_EXPORT_MAX_SECS: f64 = 30.0;

/// Errors running the demo server.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("serving MCP on stdio: {0}")]
    Stdio(String),
    #[error("listening on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
}

/// One MCP session with the demo shop. The shop is shared by every session of a process; which tools are
/// enabled is per session (a `tools/list_changed` goes to the session that asked for it).
#[derive(Debug, Clone)]
pub struct DemoServer {
    shop: Arc<Mutex<Shop>>,
    beta: Arc<AtomicBool>,
    /// List the poisoned tool set (see `poisoned`).
    poisoned: bool,
}

impl Default for DemoServer {
    fn default() -> Self {
        DemoServer::new()
    }
}

impl DemoServer {
    pub fn new() -> DemoServer {
        DemoServer {
            shop: Arc::new(Mutex::new(Shop::seeded())),
            beta: Arc::new(AtomicBool::new(false)),
            poisoned: false,
        }
    }

    /// The poisoned mode: one shop tool changed (a rug pull) and tools with published attacks in their
    /// definitions.
    pub fn poisoned() -> DemoServer {
        DemoServer { poisoned: true, ..DemoServer::new() }
    }

    /// A new session over the same shop.
    fn session(&self) -> DemoServer {
        DemoServer { shop: Arc::clone(&self.shop), beta: Arc::new(AtomicBool::new(false)), poisoned: self.poisoned }
    }

    /// The tools this session lists now, as JSON.
    pub fn tool_definitions(&self) -> Vec<Value> {
        let mut all = tools::base_tools();
        if self.beta.load(Ordering::SeqCst) {
            all.push(tools::beta_tool());
        }
        if self.poisoned {
            poisoned::apply(&mut all);
        }
        all
    }

    fn shop(&self) -> std::sync::MutexGuard<'_, Shop> {
        // A panic in one tool must not take the shop down for every other call.
        self.shop.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn call(&self, name: &str, args: &Map<String, Value>, ctx: &RequestContext<RoleServer>) -> Reply {
        let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_string);
        match name {
            "get_customer" => {
                let id = text("id").unwrap_or_default();
                match self.shop().customers.get(&id) {
                    Some(c) => Reply::Structured(json!({"customer": c})),
                    None => Reply::Error(format!("no customer {id:?}")),
                }
            }
            "list_orders" => {
                let customer = text("customer_id");
                let status = text("status");
                let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(20).min(100) as usize;
                let orders: Vec<Value> = self
                    .shop()
                    .orders
                    .values()
                    .filter(|o| customer.as_deref().is_none_or(|c| o["customer_id"] == c))
                    .filter(|o| status.as_deref().is_none_or(|s| o["status"] == s))
                    .take(limit)
                    .cloned()
                    .collect();
                Reply::Json(Value::Array(orders))
            }
            "search_products" => {
                let query = text("query").unwrap_or_default().to_lowercase();
                let filter = args.get("filter").cloned().unwrap_or(Value::Null);
                let max_price = filter.get("max_price_cents").and_then(Value::as_i64);
                let in_stock = filter.get("in_stock").and_then(Value::as_bool);
                let hits: Vec<Value> = self
                    .shop()
                    .products
                    .iter()
                    .filter(|p| p["name"].as_str().unwrap_or("").to_lowercase().contains(&query))
                    .filter(|p| max_price.is_none_or(|m| p["price_cents"].as_i64().unwrap_or(0) <= m))
                    .filter(|p| in_stock.is_none_or(|s| p["in_stock"] == s))
                    .cloned()
                    .collect();
                Reply::Json(Value::Array(hits))
            }
            "create_customer" => {
                let Some(new) = args.get("customer").and_then(Value::as_object) else {
                    return Reply::Error("`customer` with `name` and `email` is required".into());
                };
                let (Some(name), Some(email)) =
                    (new.get("name").and_then(Value::as_str), new.get("email").and_then(Value::as_str))
                else {
                    return Reply::Error("`customer` needs `name` and `email`".into());
                };
                let mut shop = self.shop();
                let id = shop.next_id("c");
                let customer = json!({"id": id, "name": name, "email": email, "status": "active"});
                shop.customers.insert(id, customer.clone());
                Reply::Json(customer)
            }
            "update_order" => {
                let id = text("order_id").unwrap_or_default();
                let mut shop = self.shop();
                let Some(order) = shop.orders.get_mut(&id) else {
                    return Reply::Error(format!("no order {id:?}"));
                };
                if let Some(status) = text("status") {
                    order["status"] = json!(status);
                }
                if let Some(address) = args.get("shipping_address") {
                    order["shipping_address"] = address.clone();
                }
                Reply::Json(order.clone())
            }
            "manage_customer" => {
                let id = text("id").unwrap_or_default();
                let mut shop = self.shop();
                match text("action").as_deref() {
                    Some("read") => match shop.customers.get(&id) {
                        Some(c) => Reply::Json(c.clone()),
                        None => Reply::Error(format!("no customer {id:?}")),
                    },
                    Some("update") => {
                        let Some(customer) = shop.customers.get_mut(&id) else {
                            return Reply::Error(format!("no customer {id:?}"));
                        };
                        for key in ["name", "email"] {
                            if let Some(v) = args.get("changes").and_then(|c| c.get(key)).and_then(Value::as_str) {
                                customer[key] = json!(v);
                            }
                        }
                        Reply::Json(customer.clone())
                    }
                    Some("delete") => delete_customer(&mut shop, &id),
                    _ => Reply::Error("`action` must be one of read, update, delete".into()),
                }
            }
            "purge_inactive_customers" => {
                let mut shop = self.shop();
                let inactive: Vec<String> = shop
                    .customers
                    .values()
                    .filter(|c| c["status"] == "inactive")
                    .map(|c| c["id"].to_string())
                    .collect();
                shop.customers.retain(|_, c| c["status"] != "inactive");
                Reply::Json(json!({"deleted": inactive.len()}))
            }
            "delete_customer" => delete_customer(&mut self.shop(), &text("id").unwrap_or_default()),
            "create_refund" => self.create_refund(args),
            "run_report" => match run_sql(&self.shop(), &text("sql").unwrap_or_default()) {
                Ok(rows) => Reply::Json(rows),
                Err(e) => Reply::Error(e),
            },
            "send_email" => {
                let (Some(to), Some(subject)) = (text("to"), text("subject")) else {
                    return Reply::Error("`to`, `subject` and `body` are required".into());
                };
                let mut shop = self.shop();
                let id = shop.next_id("m");
                shop.outbox.push(json!({"id": id, "to": to, "subject": subject, "body": text("body")}));
                Reply::Text(format!("queued message {id} to {to} (the demo never sends mail)"))
            }
            "slow_export" => {
                let secs = args.get("seconds").and_then(Value::as_f64).unwrap_or(2.0);
                let secs = if secs.is_finite() { secs.clamp(0.0, SLOW_EXPORT_MAX_SECS) } else { 0.0 };
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
                    () = ctx.ct.cancelled() => return Reply::Error("export cancelled".into()),
                }
                let mut csv = String::from("id,name,email,status\n");
                for c in self.shop().customers.values() {
                    csv.push_str(&format!("{},{},{},{}\n", c["id"], c["name"], c["email"], c["status"]));
                }
                Reply::Text(csv)
            }
            "flaky_sync" => Reply::Error("upstream CRM unreachable: connection refused (the demo always fails)".into()),
            "enable_beta_tools" => {
                let was = self.beta.swap(true, Ordering::SeqCst);
                if !was && let Err(e) = ctx.peer.notify_tool_list_changed().await {
                    tracing::warn!("sending tools/list_changed: {e}");
                }
                Reply::Text(format!("beta tools enabled: {}", tools::BETA_TOOL))
            }
            tools::BETA_TOOL if self.beta.load(Ordering::SeqCst) => {
                let list = args.get("customers").and_then(Value::as_array).cloned().unwrap_or_default();
                let mut shop = self.shop();
                let mut created = Vec::new();
                for new in list.iter().take(1000) {
                    let id = shop.next_id("c");
                    let customer = json!({"id": id, "name": new.get("name"), "email": new.get("email"),
                                          "status": "active"});
                    shop.customers.insert(id.clone(), customer);
                    created.push(id);
                }
                Reply::Json(json!({"created": created}))
            }
            "summarize_with_model" => self.summarize(&text("customer_id").unwrap_or_default(), ctx).await,
            other => match poisoned::call(other).filter(|_| self.poisoned) {
                Some(text) => Reply::Text(text),
                None => Reply::Unknown,
            },
        }
    }

    fn create_refund(&self, args: &Map<String, Value>) -> Reply {
        let id = args.get("order_id").and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(amount) = args.get("amount").and_then(Value::as_i64).filter(|a| *a > 0) else {
            return Reply::Error("`amount` must be a positive integer (cents)".into());
        };
        let currency = args.get("currency").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut shop = self.shop();
        let Some(order) = shop.orders.get(&id).cloned() else {
            return Reply::Error(format!("no order {id:?}"));
        };
        if order["currency"] != currency.as_str() {
            return Reply::Error(format!("order {id} is in {}, not {currency}", order["currency"]));
        }
        let refunded = order["refunded_cents"].as_i64().unwrap_or(0);
        let total = order["total_cents"].as_i64().unwrap_or(0);
        if refunded + amount > total {
            return Reply::Error(format!(
                "refund of {amount} exceeds what is left of the order ({})",
                total - refunded
            ));
        }
        let refund_id = shop.next_id("r");
        if let Some(order) = shop.orders.get_mut(&id) {
            order["refunded_cents"] = json!(refunded + amount);
            if refunded + amount == total {
                order["status"] = json!("refunded");
            }
        }
        let refund = json!({"id": refund_id, "order_id": id, "amount": amount, "currency": currency,
                            "reason": args.get("reason")});
        shop.refunds.push(refund.clone());
        Reply::Json(refund)
    }

    // Sampling is deprecated by SEP-2577 but still what deployed clients speak; the proxy must relay it.
    #[allow(deprecated)]
    async fn summarize(&self, customer_id: &str, ctx: &RequestContext<RoleServer>) -> Reply {
        let sampling = ctx.peer.peer_info().is_some_and(|info| info.capabilities.sampling.is_some());
        if !sampling {
            return Reply::Error("this client does not support sampling (sampling/createMessage)".into());
        }
        let orders: Vec<Value> =
            self.shop().orders.values().filter(|o| o["customer_id"] == customer_id).cloned().collect();
        let prompt = format!("Summarize the order history of customer {customer_id}: {}", Value::Array(orders));
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 200);
        match ctx.peer.create_message(params).await {
            Ok(result) => Reply::Json(serde_json::to_value(&result.message).unwrap_or(Value::Null)),
            Err(e) => Reply::Error(format!("the client's model did not answer: {e}")),
        }
    }
}

fn delete_customer(shop: &mut Shop, id: &str) -> Reply {
    if shop.customers.remove(id).is_none() {
        return Reply::Error(format!("no customer {id:?}"));
    }
    shop.orders.retain(|_, o| o["customer_id"] != id);
    Reply::Text(format!("deleted customer {id} and their orders"))
}

/// What a tool call produced, before it becomes an MCP result.
enum Reply {
    Text(String),
    Json(Value),
    Structured(Value),
    Error(String),
    Unknown,
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("toolwarden-demo", env!("CARGO_PKG_VERSION")))
            .with_instructions("A demo shop/CRM. Its data lives in memory; no money moves and no mail is sent.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .tool_definitions()
            .into_iter()
            .map(serde_json::from_value::<McpTool>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorData::internal_error(format!("demo tool definition: {e}"), None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let result = match self.call(&request.name, &args, &context).await {
            Reply::Text(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Reply::Json(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
            Reply::Structured(value) => CallToolResult::structured(value),
            Reply::Error(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
            Reply::Unknown => {
                return Err(ErrorData::invalid_params(format!("unknown tool {:?}", request.name), None));
            }
        };
        Ok(result.into())
    }
}

/// Serve one session on stdin/stdout until the client closes it.
pub async fn serve_stdio() -> Result<(), DemoError> {
    serve_stdio_with(DemoServer::new()).await
}

/// Serve `server` (e.g. [`DemoServer::poisoned`]) on stdin/stdout until the client closes it.
pub async fn serve_stdio_with(server: DemoServer) -> Result<(), DemoError> {
    let service = server.serve(rmcp::transport::stdio()).await.map_err(|e| DemoError::Stdio(e.to_string()))?;
    service.waiting().await.map_err(|e| DemoError::Stdio(e.to_string()))?;
    Ok(())
}

/// Serve Streamable HTTP at `http://ADDR/mcp` until the process is stopped. Calls `ready` with the bound
/// address (useful with port 0).
pub async fn serve_http(addr: &str, ready: impl FnOnce(SocketAddr)) -> Result<(), DemoError> {
    serve_http_with(DemoServer::new(), addr, ready).await
}

/// Like [`serve_http`] for `root` (each HTTP session shares its shop and its mode).
pub async fn serve_http_with(root: DemoServer, addr: &str, ready: impl FnOnce(SocketAddr)) -> Result<(), DemoError> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr: addr.to_string(), source })?;
    let local = listener.local_addr().map_err(DemoError::Http)?;
    let service = StreamableHttpService::new(
        move || Ok(root.session()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    ready(local);
    axum::serve(listener, router).await.map_err(DemoError::Http)
}
