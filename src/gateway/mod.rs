//! One MCP endpoint in front of many servers (`toolwarden gateway`), each behind its own policy.
//!
//! The gateway is the MCP server its client sees and the MCP client of every upstream. Each upstream gets what
//! `toolwarden proxy` gives one server: a [`Relay`] with that server's policy (hidden and denied tools removed
//! from listings, calls decided, limits counted, approvals asked, every decision audited), in a [`Session`]
//! with call deadlines. Above them the mux ([`Gateway`]) only renames and routes: tools and prompts are listed
//! as `SERVER__NAME` (the separator is configurable), a call goes to the server its name starts with, under the
//! name the server gave it, and every request the gateway sends upstream carries an id of its own (`gw-N`) that
//! maps back to the client's. Requests upstreams send the client (sampling, elicitation, roots) are renamed the
//! same way (`gwu-N`), so their answers find their way back.
//!
//! Isolation: an upstream that cannot start, crashes or does not answer is reported on stderr, its tools
//! answer with an `isError` result that names it, and it is restarted with back-off (1 s doubling to 30 s);
//! the client stays connected and the other servers keep working. The client's `initialize` is answered once
//! every upstream answered its own or `--startup-timeout` passed; a server that comes up later (or again) is
//! announced with `notifications/tools/list_changed`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::proxy::audit::Audit;
use crate::proxy::gate::Gate;
use crate::proxy::relay::{Relay, ToClient, error_message};
use crate::proxy::session::{Outbox, Session};
use crate::proxy::strict::{self, Unreadable};
use crate::proxy::upstream::{self, Events, UpstreamSpec};

/// Names longer than this are shortened (the MCP limit on tool names).
pub const MAX_NAME: usize = 64;

/// One upstream server as the gateway runs it.
#[derive(Clone)]
pub struct Server {
    pub name: String,
    pub spec: UpstreamSpec,
    pub gate: Arc<dyn Gate>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("name", &self.name).field("spec", &self.spec).finish_non_exhaustive()
    }
}

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<Server>,
    pub separator: String,
    pub audit: Arc<Audit>,
    pub call_timeout: Duration,
    pub startup_timeout: Duration,
    pub max_message: usize,
    /// The caller (an HTTP bearer token's identity), for audit records and per-identity limits.
    pub identity: Option<String>,
}

impl crate::proxy::http::Endpoint for Gateway {
    fn client_said(&self, raw: &[u8]) {
        Gateway::from_client(self, raw);
    }

    fn close(&self) {
        Gateway::close(self);
    }

    fn busy(&self) -> bool {
        !Self::lock(&self.routes).is_empty()
    }
}

/// The name a tool or prompt of `server` is listed under: `SERVER{sep}NAME`, or, when that is longer than
/// [`MAX_NAME`], the longest prefix that fits with `_` and the first 8 hex digits of the SHA-256 of the
/// original name (so two long names of one server stay apart, and the same name always maps the same way).
pub fn public_name(server: &str, sep: &str, name: &str) -> String {
    let full = format!("{server}{sep}{name}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    let keep = MAX_NAME.saturating_sub(hash.len() + 1);
    let mut cut = keep.min(full.len());
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}", &full[..cut])
}

/// What a gateway id stands for.
enum Route {
    /// A client request forwarded as is (renamed): the answer goes back under the client's id.
    Forward { client_id: Value, server: usize },
    /// One upstream's part of a list the gateway merges.
    List { agg: u64, server: usize, method: &'static str },
    /// The gateway's own `initialize` of an upstream; `late`: the client's initialize stopped waiting for it.
    Init { server: usize, late: bool },
}

/// A list being merged from every upstream.
struct Aggregate {
    client_id: Value,
    method: &'static str,
    waiting: usize,
    items: Vec<Value>,
}

#[derive(Default)]
struct UpState {
    session: Option<Arc<Session>>,
    ready: bool,
    error: Option<String>,
    restarts: u32,
    /// What the server's `initialize` answered.
    capabilities: Value,
}

struct Upstream {
    server: Server,
    state: Mutex<UpState>,
}

impl Upstream {
    fn state(&self) -> std::sync::MutexGuard<'_, UpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mux: the client's session with every upstream behind it.
pub struct Gateway {
    me: Weak<Gateway>,
    client: Arc<dyn Outbox>,
    upstreams: Vec<Upstream>,
    sep: String,
    audit: Arc<Audit>,
    call_timeout: Duration,
    startup_timeout: Duration,
    max_message: usize,
    identity: Option<String>,
    runtime: tokio::runtime::Handle,
    next: AtomicU64,
    routes: Mutex<HashMap<String, Route>>,
    aggregates: Mutex<HashMap<u64, Aggregate>>,
    /// Requests upstreams sent the client: gateway id key → (server, original id).
    from_servers: Mutex<HashMap<String, (usize, Value)>>,
    /// Public name → (server, original name), from the last listings.
    names: Mutex<HashMap<String, (usize, String)>>,
    /// Resource URI → server, from the last listings.
    uris: Mutex<HashMap<String, usize>>,
    /// The client's `initialize` params, and whether it sent `notifications/initialized`.
    client_init: Mutex<Option<(Value, bool)>>,
    /// The client's `initialize` waiting to be answered: its id and the ids of the upstream inits left.
    init_waiting: Mutex<Option<(Value, usize)>>,
    session_id: String,
    /// The client left: nothing is restarted any more.
    closing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("servers", &self.upstreams.len()).finish_non_exhaustive()
    }
}

/// An upstream session's "client": the gateway, told which server speaks.
struct FromServer {
    gateway: Weak<Gateway>,
    server: usize,
}

impl Outbox for FromServer {
    fn send(&self, message: ToClient) {
        if let Some(g) = self.gateway.upgrade() {
            g.server_said(self.server, &message.bytes);
        }
    }
}

/// An upstream's events: messages go to its session, its end restarts it.
struct ServerEvents {
    gateway: Weak<Gateway>,
    server: usize,
    session: Arc<Session>,
}

impl Events for ServerEvents {
    fn message(&self, raw: &[u8]) -> Vec<String> {
        self.session.from_upstream(raw)
    }

    fn closed(&self, why: &str) {
        self.session.upstream_closed(why);
        if let Some(g) = self.gateway.upgrade() {
            g.server_down(self.server, why);
        }
    }
}

impl Gateway {
    /// The gateway for `config`, talking to its client through `client`. Upstreams start at once.
    pub fn start(config: Config, client: Arc<dyn Outbox>, runtime: tokio::runtime::Handle) -> Arc<Gateway> {
        let upstreams = config.servers.into_iter().map(|server| Upstream { server, state: Mutex::default() }).collect();
        let gateway = Arc::new_cyclic(|me| Gateway {
            me: me.clone(),
            client,
            upstreams,
            sep: config.separator,
            audit: config.audit,
            call_timeout: config.call_timeout,
            startup_timeout: config.startup_timeout,
            max_message: config.max_message,
            identity: config.identity,
            runtime,
            next: AtomicU64::new(1),
            routes: Mutex::default(),
            aggregates: Mutex::default(),
            from_servers: Mutex::default(),
            names: Mutex::default(),
            uris: Mutex::default(),
            client_init: Mutex::default(),
            init_waiting: Mutex::default(),
            session_id: format!("gateway-{}", uuid::Uuid::new_v4()),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        for i in 0..gateway.upstreams.len() {
            gateway.connect(i);
        }
        gateway
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self, prefix: &str) -> Value {
        Value::String(format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }

    fn send_client(&self, value: &Value) {
        let answers = value.get("id").filter(|_| value.get("method").is_none()).map(Value::to_string);
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.client.send(ToClient { bytes, answers: answers.into_iter().collect() });
    }

    /// Start (or restart) upstream `i`.
    fn connect(&self, i: usize) {
        let up = &self.upstreams[i];
        let name = up.server.name.clone();
        let connected = match upstream::connect(&up.server.spec, self.max_message, &self.runtime) {
            Ok(c) => c,
            Err(e) => {
                self.server_down(i, &e.to_string());
                return;
            }
        };
        let relay = Relay::new(
            Arc::clone(&up.server.gate),
            Arc::clone(&self.audit),
            self.session_id.clone(),
            self.identity.clone(),
        )
        .with_server(name.clone());
        let outbox: Arc<dyn Outbox> = Arc::new(FromServer { gateway: self.me.clone(), server: i });
        let session = Session::connected(relay, outbox, &connected, self.call_timeout, self.runtime.clone(), None);
        connected.start(Arc::new(ServerEvents { gateway: self.me.clone(), server: i, session: Arc::clone(&session) }));
        {
            let mut state = up.state();
            state.session = Some(Arc::clone(&session));
            state.ready = false;
            state.error = None;
        }
        tracing::info!(server = %name, "started");
        // If the client already said hello, this server is introduced to it now (a late start or a restart).
        let init = Self::lock(&self.client_init).clone();
        if let Some((params, _)) = init {
            self.init_server(i, &params);
        }
    }

    fn init_server(&self, i: usize, client_params: &Value) {
        let Some(session) = self.upstreams[i].state().session.clone() else { return };
        let id = self.id("gw");
        Self::lock(&self.routes).insert(id.to_string(), Route::Init { server: i, late: false });
        let mut params = client_params.clone();
        if let Some(info) = params.get_mut("clientInfo") {
            *info = json!({"name": "toolwarden-gateway", "version": env!("CARGO_PKG_VERSION")});
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": params});
        session.from_client(&serde_json::to_vec(&msg).unwrap_or_default());
        // A server that never answers must not hold the client's initialize.
        let (me, key) = (self.me.clone(), id.to_string());
        let wait = self.startup_timeout;
        self.runtime.spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(g) = me.upgrade() else { return };
            let waited = match Self::lock(&g.routes).get_mut(&key) {
                Some(Route::Init { late, .. }) if !*late => {
                    *late = true;
                    true
                }
                _ => false,
            };
            if waited {
                tracing::warn!(server = %g.upstreams[i].server.name, "did not answer initialize within {wait:?}");
                g.init_done(false);
            }
        });
    }

    /// An upstream's `initialize` was answered (or given up on): answer the client's once all are in.
    fn init_done(&self, _ok: bool) {
        let ready = {
            let mut waiting = Self::lock(&self.init_waiting);
            match waiting.as_mut() {
                Some((_, left)) if *left > 1 => {
                    *left -= 1;
                    None
                }
                Some(_) => waiting.take(),
                None => None,
            }
        };
        if let Some((id, _)) = ready {
            self.answer_initialize(id);
        }
    }

    fn answer_initialize(&self, id: Value) {
        let version = Self::lock(&self.client_init)
            .as_ref()
            .and_then(|(p, _)| p.get("protocolVersion").cloned())
            .unwrap_or_else(|| json!("2025-06-18"));
        let mut capabilities = json!({"tools": {"listChanged": true}, "logging": {}});
        let has = |what: &str| self.upstreams.iter().any(|u| u.state().capabilities.get(what).is_some());
        if has("resources") {
            capabilities["resources"] = json!({"listChanged": true});
        }
        if has("prompts") {
            capabilities["prompts"] = json!({"listChanged": true});
        }
        if has("completions") {
            capabilities["completions"] = json!({});
        }
        let servers: Vec<&str> = self.upstreams.iter().map(|u| u.server.name.as_str()).collect();
        self.send_client(&json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": {"name": "toolwarden-gateway", "version": env!("CARGO_PKG_VERSION")},
            "instructions": format!("Tools of several servers ({}), each named SERVER{}TOOL.", servers.join(", "), self.sep),
        }}));
    }

    /// Upstream `i` is gone (or never started): say so, and restart it after a back-off.
    fn server_down(&self, i: usize, why: &str) {
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        let up = &self.upstreams[i];
        let delay = {
            let mut state = up.state();
            state.session = None;
            state.ready = false;
            state.error = Some(why.to_string());
            state.restarts += 1;
            Duration::from_secs((1u64 << state.restarts.min(5).saturating_sub(1)).min(30))
        };
        let name = crate::model::text::clean(&up.server.name, 80);
        eprintln!(
            "toolwarden gateway: server {name} is down ({}); restarting in {delay:?}",
            crate::model::text::clean(why, 300)
        );
        self.audit_server_event(i, why);
        // Lists change without it: the client reads them again.
        self.lists_changed();
        let me = self.me.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(g) = me.upgrade() {
                g.connect(i);
            }
        });
    }

    fn audit_server_event(&self, i: usize, why: &str) {
        if !self.audit.enabled() {
            return;
        }
        let server = &self.upstreams[i].server.name;
        self.audit.write(&crate::proxy::audit::Record {
            time: jiff::Timestamp::now(),
            session: &self.session_id,
            server: Some(server),
            identity: self.identity.as_deref(),
            tool: "",
            args_sha256: String::new(),
            args: None,
            decision: "upstream_down",
            rule: None,
            reason: Some(why),
            outcome: None,
            upstream_latency_us: None,
            decided_by: None,
        });
    }

    /// A message (or batch) from the client.
    pub fn from_client(&self, raw: &[u8]) {
        let value = match strict::parse(raw) {
            Ok(v) => v,
            Err(Unreadable::Syntax(e)) => {
                self.client.send(error_message(Value::Null, -32700, &format!("Parse error: {e}")));
                return;
            }
            Err(Unreadable::Duplicate(why)) => {
                let message = format!(
                    "Invalid Request: refused by toolwarden: {why} (a server may read duplicate keys differently)"
                );
                self.client.send(error_message(Value::Null, -32600, &message));
                return;
            }
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    self.one_from_client(item);
                }
            }
            one => self.one_from_client(one),
        }
    }

    fn one_from_client(&self, msg: Value) {
        let method = msg.get("method").and_then(Value::as_str).map(str::to_string);
        let id = msg.get("id").cloned();
        let error = |id: Value, code: i64, text: &str| self.client.send(error_message(id, code, text));
        match (method.as_deref(), id) {
            (Some(m), id) if strict::near_method(m).is_some() => {
                let why = format!("`{}` is not an MCP method; refused by toolwarden", crate::model::text::clean(m, 80));
                if let Some(id) = id {
                    error(id, -32600, &format!("Invalid Request: {why}"));
                }
            }
            (Some("initialize"), Some(id)) => self.initialize(id, msg.get("params").cloned().unwrap_or_default()),
            (Some("ping"), Some(id)) => self.send_client(&json!({"jsonrpc": "2.0", "id": id, "result": {}})),
            (Some("tools/list"), Some(id)) => self.aggregate(id, "tools/list"),
            (Some("prompts/list"), Some(id)) => self.aggregate(id, "prompts/list"),
            (Some("resources/list"), Some(id)) => self.aggregate(id, "resources/list"),
            (Some("resources/templates/list"), Some(id)) => self.aggregate(id, "resources/templates/list"),
            (Some("tools/call"), Some(id)) => self.route_named(msg, id, "tools/call"),
            (Some("prompts/get"), Some(id)) => self.route_named(msg, id, "prompts/get"),
            (Some("resources/read" | "resources/subscribe" | "resources/unsubscribe"), Some(id)) => {
                self.route_uri(msg, id)
            }
            (Some("completion/complete"), Some(id)) => self.route_completion(msg, id),
            (Some("logging/setLevel"), Some(id)) => {
                for i in 0..self.upstreams.len() {
                    let mut copy = msg.clone();
                    copy["id"] = self.id("gw-drop");
                    self.to_server(i, &copy);
                }
                self.send_client(&json!({"jsonrpc": "2.0", "id": id, "result": {}}));
            }
            (Some("notifications/initialized"), None) => {
                if let Some((_, sent)) = Self::lock(&self.client_init).as_mut() {
                    *sent = true;
                }
                for (i, up) in self.upstreams.iter().enumerate() {
                    if up.state().ready {
                        self.to_server(i, &msg);
                    }
                }
            }
            (Some("notifications/cancelled"), None) => self.cancel(&msg),
            (Some(_), None) => {
                // Other notifications (roots changed, progress of the client's own work) go to every server.
                for i in 0..self.upstreams.len() {
                    self.to_server(i, &msg);
                }
            }
            (Some(_), Some(id)) => error(id, -32601, "Method not found (toolwarden gateway)"),
            (None, Some(id)) if msg.get("result").is_some() || msg.get("error").is_some() => {
                self.answer_to_server(msg, id)
            }
            _ => error(Value::Null, -32600, "Invalid Request"),
        }
    }

    fn initialize(&self, id: Value, params: Value) {
        *Self::lock(&self.client_init) = Some((params.clone(), false));
        let ready: Vec<usize> =
            (0..self.upstreams.len()).filter(|&i| self.upstreams[i].state().session.is_some()).collect();
        if ready.is_empty() {
            self.answer_initialize(id);
            return;
        }
        *Self::lock(&self.init_waiting) = Some((id, ready.len()));
        for i in ready {
            self.init_server(i, &params);
        }
    }

    /// Send `msg` to upstream `i` through its relay; `false` when it is not up.
    fn to_server(&self, i: usize, msg: &Value) -> bool {
        let Some(session) = self.upstreams[i].state().session.clone() else { return false };
        session.from_client(&serde_json::to_vec(msg).unwrap_or_default());
        true
    }

    fn unavailable(&self, i: usize) -> String {
        let up = &self.upstreams[i];
        let why = up.state().error.clone().unwrap_or_else(|| "not started yet".into());
        format!("server `{}` is unavailable: {why}", up.server.name)
    }

    /// Ask every ready upstream for one list; the client gets the merged list once all answered.
    fn aggregate(&self, client_id: Value, method: &'static str) {
        let ready: Vec<usize> = (0..self.upstreams.len()).filter(|&i| self.upstreams[i].state().ready).collect();
        let agg = self.next.fetch_add(1, Ordering::Relaxed);
        Self::lock(&self.aggregates)
            .insert(agg, Aggregate { client_id, method, waiting: ready.len(), items: Vec::new() });
        if ready.is_empty() {
            self.finish_aggregate(agg);
            return;
        }
        for i in ready {
            self.list_page(agg, i, method, None);
        }
        let (me, wait) = (self.me.clone(), self.call_timeout);
        self.runtime.spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(g) = me.upgrade() {
                g.finish_aggregate(agg);
            }
        });
    }

    fn list_page(&self, agg: u64, i: usize, method: &'static str, cursor: Option<Value>) {
        let id = self.id("gw");
        Self::lock(&self.routes).insert(id.to_string(), Route::List { agg, server: i, method });
        let params = match cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        if !self.to_server(i, &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})) {
            Self::lock(&self.routes).remove(&id.to_string());
            self.part_done(agg);
        }
    }

    fn part_done(&self, agg: u64) {
        let done = {
            let mut aggs = Self::lock(&self.aggregates);
            match aggs.get_mut(&agg) {
                Some(a) => {
                    a.waiting = a.waiting.saturating_sub(1);
                    a.waiting == 0
                }
                None => false,
            }
        };
        if done {
            self.finish_aggregate(agg);
        }
    }

    fn finish_aggregate(&self, agg: u64) {
        let Some(a) = Self::lock(&self.aggregates).remove(&agg) else { return };
        let key = match a.method {
            "tools/list" => "tools",
            "prompts/list" => "prompts",
            "resources/list" => "resources",
            _ => "resourceTemplates",
        };
        self.send_client(&json!({"jsonrpc": "2.0", "id": a.client_id, "result": {key: a.items}}));
    }

    /// One page of an upstream's list arrived (already filtered by its relay): rename and keep it.
    fn list_answered(&self, agg: u64, i: usize, method: &'static str, msg: &Value) {
        let server = &self.upstreams[i].server.name;
        let result = msg.get("result");
        let key = match method {
            "tools/list" => "tools",
            "prompts/list" => "prompts",
            "resources/list" => "resources",
            _ => "resourceTemplates",
        };
        let mut items: Vec<Value> =
            result.and_then(|r| r.get(key)).and_then(Value::as_array).cloned().unwrap_or_default();
        for item in &mut items {
            match method {
                "tools/list" | "prompts/list" => {
                    let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_string) else { continue };
                    let public = public_name(server, &self.sep, &name);
                    Self::lock(&self.names).insert(public.clone(), (i, name));
                    item["name"] = Value::String(public);
                }
                _ => {
                    if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                        Self::lock(&self.uris).entry(uri.to_string()).or_insert(i);
                    }
                }
            }
        }
        let next = result.and_then(|r| r.get("nextCursor")).filter(|c| !c.is_null()).cloned();
        if let Some(a) = Self::lock(&self.aggregates).get_mut(&agg) {
            a.items.extend(items);
        } else {
            return;
        }
        match next {
            Some(cursor) => self.list_page(agg, i, method, Some(cursor)),
            None => self.part_done(agg),
        }
    }

    /// Which server and original name a public name stands for.
    fn resolve(&self, public: &str) -> Option<(usize, String)> {
        if let Some(found) = Self::lock(&self.names).get(public) {
            return Some(found.clone());
        }
        // Not listed yet: the longest server name it starts with.
        self.upstreams
            .iter()
            .enumerate()
            .filter_map(|(i, u)| {
                let rest = public.strip_prefix(&u.server.name)?.strip_prefix(&self.sep)?;
                Some((u.server.name.len(), i, rest.to_string()))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, i, rest)| (i, rest))
    }

    fn route_named(&self, mut msg: Value, id: Value, method: &str) {
        let public = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("").to_string();
        let Some((i, name)) = self.resolve(&public) else {
            let why = format!("`{}` names no server of this gateway", crate::model::text::clean(&public, 80));
            if method == "tools/call" {
                self.send_client(&crate::proxy::relay::refusal(id, &why));
            } else {
                self.client.send(error_message(id, -32602, &format!("Invalid params: {why}")));
            }
            return;
        };
        msg["params"]["name"] = Value::String(name);
        self.forward(msg, id, i, method);
    }

    fn forward(&self, mut msg: Value, client_id: Value, i: usize, method: &str) {
        if !self.upstreams[i].state().ready {
            let why = self.unavailable(i);
            if method == "tools/call" {
                self.send_client(&crate::proxy::relay::refusal(client_id, &why));
            } else {
                self.client.send(error_message(client_id, -32000, &format!("toolwarden gateway: {why}")));
            }
            return;
        }
        let id = self.id("gw");
        Self::lock(&self.routes).insert(id.to_string(), Route::Forward { client_id: client_id.clone(), server: i });
        msg["id"] = id.clone();
        if !self.to_server(i, &msg) {
            Self::lock(&self.routes).remove(&id.to_string());
            self.send_client(&crate::proxy::relay::refusal(client_id, &self.unavailable(i)));
        }
    }

    fn route_uri(&self, msg: Value, id: Value) {
        let uri = msg.pointer("/params/uri").and_then(Value::as_str).unwrap_or("");
        let found = Self::lock(&self.uris).get(uri).copied();
        match found {
            Some(i) => self.forward(msg, id, i, "resources"),
            None => self.client.send(error_message(id, -32002, "Resource not found (list resources first)")),
        }
    }

    fn route_completion(&self, mut msg: Value, id: Value) {
        let reference = msg.pointer("/params/ref").cloned().unwrap_or_default();
        let target = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                reference.get("name").and_then(Value::as_str).and_then(|n| self.resolve(n)).map(|(i, name)| {
                    msg["params"]["ref"]["name"] = Value::String(name);
                    i
                })
            }
            _ => reference.get("uri").and_then(Value::as_str).and_then(|u| Self::lock(&self.uris).get(u).copied()),
        };
        match target {
            Some(i) => self.forward(msg, id, i, "completion/complete"),
            None => self.client.send(error_message(id, -32602, "Invalid params: unknown prompt or resource")),
        }
    }

    fn cancel(&self, msg: &Value) {
        let Some(request) = msg.pointer("/params/requestId") else { return };
        let routes = Self::lock(&self.routes);
        let found = routes.iter().find_map(|(key, r)| match r {
            Route::Forward { client_id, server, .. } if client_id == request => Some((key.clone(), *server)),
            _ => None,
        });
        drop(routes);
        if let Some((key, i)) = found {
            let mut copy = msg.clone();
            copy["params"]["requestId"] = serde_json::from_str(&key).unwrap_or(Value::Null);
            self.to_server(i, &copy);
        }
    }

    /// The client answered a request an upstream sent it.
    fn answer_to_server(&self, mut msg: Value, id: Value) {
        let Some((i, original)) = Self::lock(&self.from_servers).remove(&id.to_string()) else {
            tracing::warn!("the client answered a request nobody sent");
            return;
        };
        msg["id"] = original;
        self.to_server(i, &msg);
    }

    /// A message from upstream `i`'s relay: an answer to a gateway id, a request for the client, or a
    /// notification.
    fn server_said(&self, i: usize, raw: &[u8]) {
        let Ok(value) = serde_json::from_slice::<Value>(raw) else { return };
        let items = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for msg in items {
            self.one_server_message(i, msg);
        }
    }

    fn one_server_message(&self, i: usize, mut msg: Value) {
        let method = msg.get("method").and_then(Value::as_str).map(str::to_string);
        let id = msg.get("id").cloned();
        match (method, id) {
            (None, Some(id)) => {
                let Some(route) = Self::lock(&self.routes).remove(&id.to_string()) else { return };
                match route {
                    Route::Forward { client_id, .. } => {
                        msg["id"] = client_id;
                        self.send_client(&msg);
                    }
                    Route::List { agg, server, method } => self.list_answered(agg, server, method, &msg),
                    Route::Init { server, late: timed_out } => {
                        let ok = msg.get("result").is_some();
                        let (late, initialized) = {
                            let mut state = self.upstreams[server].state();
                            state.ready = ok;
                            state.capabilities = msg.pointer("/result/capabilities").cloned().unwrap_or_default();
                            if !ok {
                                state.error =
                                    Some(format!("initialize failed: {}", msg.get("error").unwrap_or(&Value::Null)));
                            }
                            let late = Self::lock(&self.init_waiting).is_none();
                            (late, Self::lock(&self.client_init).as_ref().is_some_and(|(_, sent)| *sent))
                        };
                        if ok && (initialized || late) {
                            self.to_server(server, &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
                        }
                        if late && ok {
                            self.lists_changed();
                        }
                        if !timed_out {
                            self.init_done(ok);
                        }
                    }
                }
            }
            (Some(method), Some(id)) => {
                // A request for the client (sampling, elicitation, roots, ping, or a relay's own approval
                // question): renamed so the answer comes back here.
                let ours = self.id("gwu");
                Self::lock(&self.from_servers).insert(ours.to_string(), (i, id));
                msg["id"] = ours;
                if method == "ping" {
                    // Answered for the client: a gateway's client may not expect pings from five servers.
                    let ours = msg["id"].to_string();
                    if let Some((i, original)) = Self::lock(&self.from_servers).remove(&ours) {
                        self.to_server(i, &json!({"jsonrpc": "2.0", "id": original, "result": {}}));
                    }
                    return;
                }
                self.send_client(&msg);
            }
            (Some(method), None) => {
                if method.ends_with("/list_changed")
                    || method == "notifications/message"
                    || method == "notifications/progress"
                {
                    self.send_client(&msg);
                } else if method == "notifications/cancelled" {
                    // The server withdrew a request it sent the client: say so under the client-facing id.
                    let original = msg.pointer("/params/requestId").cloned().unwrap_or_default();
                    let found = Self::lock(&self.from_servers)
                        .iter()
                        .find(|(_, (s, o))| *s == i && *o == original)
                        .map(|(k, _)| k.clone());
                    if let Some(key) = found {
                        Self::lock(&self.from_servers).remove(&key);
                        msg["params"]["requestId"] = serde_json::from_str(&key).unwrap_or(Value::Null);
                        self.send_client(&msg);
                    }
                } else {
                    self.send_client(&msg);
                }
            }
            (None, None) => {}
        }
    }

    /// Tell the client the tool list changed, once it has been answered its `initialize`.
    fn lists_changed(&self) {
        let answered = Self::lock(&self.client_init).is_some() && Self::lock(&self.init_waiting).is_none();
        if answered {
            self.send_client(&json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
        }
    }

    /// The client is gone: close every upstream.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        for up in &self.upstreams {
            if let Some(session) = up.state().session.take() {
                session.close_upstream();
            }
        }
    }

    /// Server names with their status, for the log.
    pub fn status(&self) -> BTreeMap<String, String> {
        self.upstreams
            .iter()
            .map(|u| {
                let s = u.state();
                let status =
                    if s.ready { "ready".to_string() } else { s.error.clone().unwrap_or_else(|| "starting".into()) };
                (u.server.name.clone(), status)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names_are_prefixed_and_long_ones_cut_with_a_hash() {
        assert_eq!(public_name("memory", "__", "read_graph"), "memory__read_graph");
        let long = "a".repeat(80);
        let public = public_name("srv", "__", &long);
        assert_eq!(public.len(), MAX_NAME);
        assert!(public.starts_with("srv__aaa"));
        assert_ne!(public, public_name("srv", "__", &"a".repeat(81)), "two long names stay apart");
        assert_eq!(public, public_name("srv", "__", &long), "and map the same way every time");
    }
}
