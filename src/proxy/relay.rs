//! The relay: one MCP session's messages in both directions, at the JSON-RPC message level.
//!
//! Every message is parsed as a `serde_json::Value` only to route it. What the server sends passes as its
//! original bytes, so logging, progress, list-changed notifications and the server's own requests (sampling,
//! elicitation, roots) reach the client exactly as sent, including fields no SDK knows yet. What the client
//! sends is forwarded as the value the decision was made on, re-serialised; what any two parsers could read
//! differently is refused outright (duplicate keys, near-miss methods, unclear tool names: see [`super::strict`]),
//! and so is a call to a name the server did not list, which a server folding case could map onto another tool.
//! A call to a name this session has not seen listed waits for the proxy's own `tools/list` (ids in the
//! `toolwarden-` space, never shown to the client) and is then decided again. Only two things are ever changed
//! in meaning: `tools/list` results (tools
//! the gate hides are removed) and `tools/call` requests the gate refuses (answered here with an `isError`
//! result, never forwarded). To know which upstream response is a `tools/list` result, the relay keeps every
//! in-flight client request by id; the same map answers in-flight requests when the upstream dies or a call
//! times out, and refuses a second request reusing an in-flight id (it could otherwise make an unfiltered
//! `tools/list` result look like the answer to a `ping`).
//!
//! A call the gate sends to a person is *held*: it stays in the in-flight map (so its id cannot be reused) but is
//! not forwarded; the session asks for a decision and then calls [`Relay::approved`] (forward it now) or
//! [`Relay::refuse_held`]. Its limits are reserved only at approval (a refused approval uses none); a limit
//! reached meanwhile refuses the approved call, so an approval never admits more calls than the policy allows.
//! An allowed call whose limits live in another process (Redis) waits the same way, without a person: the
//! session reserves them off the I/O path ([`Relay::reserve_async`]) and hands the outcome to
//! [`Relay::reserved`]. The relay also remembers whether the client declared the elicitation capability and
//! routes the client's answers to the proxy's own `elicitation/create` requests (random ids in a `toolwarden-`
//! space, which the server's own requests to the client cannot collide with by accident). An answer to an id
//! the relay does not wait for passes upstream: behind a chain of proxies it belongs to the next one.
//! With `--require-pinned` it drops listed tools whose definition is not the pinned one and refuses calls to
//! them.
//!
//! The relay does no I/O: frontends feed it bytes and send what it returns, so stdio and HTTP share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::audit::{self, Audit, Record};
use super::counters::{Charge, Reservation};
use super::gate::{Call, CallOutcome, Gate, Refused, Verdict};
use super::probe::AnswerHead;
use super::strict::{self, Unreadable};
use crate::model::text::clean;

/// JSON-RPC error codes we answer with.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server errors: the upstream went away, or did not answer in time.
const UPSTREAM_CLOSED: i64 = -32000;
const UPSTREAM_TIMEOUT: i64 = -32001;

/// A message for the client, with the ids of the requests it answers (the HTTP frontend routes by them).
#[derive(Debug, Clone, PartialEq)]
pub struct ToClient {
    pub bytes: Vec<u8>,
    pub answers: Vec<String>,
}

/// What to do with one message from the client.
#[derive(Debug, Default)]
pub struct FromClient {
    /// Bytes to send upstream (the original message when it passes unchanged).
    pub upstream: Option<Vec<u8>>,
    /// Answers made here: refusals, parse and protocol errors.
    pub client: Vec<ToClient>,
    /// Forwarded calls that must be answered by [`Relay::expire`] if the upstream is too slow: (id key, serial).
    pub deadlines: Vec<(String, u64)>,
    /// Ids (keys) of the requests forwarded upstream: the HTTP frontend waits for their answers.
    pub forwarded: Vec<String>,
    /// Calls waiting for a person's decision.
    pub held: Vec<Held>,
    /// Allowed calls whose limits are to be reserved in a remote store before they go on.
    pub reserving: Vec<Reserving>,
    /// The proxy's own requests to send upstream (a listing that calls to unlisted tools wait for).
    pub own: Vec<OwnRequest>,
}

/// An allowed call waiting for its limits to be reserved ([`Verdict::Reserve`]); hand the outcome of
/// [`Relay::reserve_async`] to [`Relay::reserved`].
#[derive(Debug)]
pub struct Reserving {
    pub key: String,
    pub charges: Vec<Charge>,
}

/// A call held for approval.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    pub call: Call,
    /// Why the policy wants a person (the rule's `reason`).
    pub reason: String,
    pub rule: Option<String>,
}

/// What became of a call a person approved.
#[derive(Debug)]
pub enum Approved {
    /// Send these bytes upstream; the call's deadline serial.
    Forward(Vec<u8>, u64),
    /// Its limits were reached (or could not be checked) meanwhile: answer the client with this refusal.
    Refused(ToClient),
}

/// `--require-pinned`: the approved fingerprint of each tool of one server.
#[derive(Debug)]
pub struct Pinned {
    pub server: String,
    pub tools: BTreeMap<String, String>,
}

impl Pinned {
    pub fn new(server: String, tools: BTreeMap<String, String>) -> Pinned {
        Pinned { server, tools }
    }
}

/// A pin as one session enforces it: what this session's listings showed of each pinned tool. A call is
/// allowed only to a tool this session saw listed with its pinned definition, so a call sent before (or
/// without) a listing cannot reach a definition nobody checked.
#[derive(Debug)]
struct PinCheck {
    pin: Arc<Pinned>,
    /// Tool name → whether its latest listed definition was the pinned one.
    seen: Mutex<HashMap<String, bool>>,
}

impl PinCheck {
    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a listed tool (raw JSON) is exactly the pinned definition; remembers the answer for calls.
    fn admits_listed(&self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else { return false };
        let Some(pinned) = self.pin.tools.get(name) else { return false };
        let same = serde_json::from_value::<crate::model::Tool>(tool.clone())
            .is_ok_and(|t| crate::model::fingerprint(&t) == *pinned);
        self.seen().insert(name.to_string(), same);
        same
    }

    /// Why a call to `tool` is refused, if it is.
    fn refuses(&self, tool: &str) -> Option<String> {
        let server = &self.pin.server;
        if !self.pin.tools.contains_key(tool) {
            return Some(format!("`{tool}` is not among the tools pinned for server `{server}`; it is not approved"));
        }
        match self.seen().get(tool) {
            Some(true) => None,
            Some(false) => Some(format!(
                "the definition of `{tool}` changed since it was pinned (server `{server}`); run `toolwarden pin` after reviewing it"
            )),
            None => Some(format!(
                "`{tool}` was not listed in this session yet, so its definition could not be checked against the pin of server `{server}`; list the tools first"
            )),
        }
    }
}

enum Kind {
    /// A client's `tools/list`; `first`: it asked for the first page (no cursor).
    ToolsList {
        first: bool,
    },
    /// A `tools/call` to a tool this session has not seen listed: it waits for the proxy's own listing
    /// ([`Relay::list_tools`]) and is then decided as if it had just arrived.
    AwaitingList {
        message: Value,
    },
    /// The proxy's own `tools/list` request; `page` counts the pages read so far.
    OwnList {
        page: u32,
    },
    ToolsCall {
        tool: String,
        digest: String,
        args: Option<Value>,
        charges: Vec<Reservation>,
        rule: Option<String>,
    },
    /// Waiting for a person: the message to forward once approved.
    Held {
        message: Value,
        call: Call,
        reason: String,
        rule: Option<String>,
        /// The limits the call uses, reserved when a person approves it.
        charges: Vec<Charge>,
    },
    /// Allowed, waiting for its limits to be reserved: the message to forward once they are. (`charges`
    /// travel in [`Reserving`]; they are only here between the decision and the in-flight insert.)
    Reserving {
        message: Value,
        call: Call,
        rule: Option<String>,
        charges: Vec<Charge>,
    },
    Other,
}

struct Pending {
    id: Value,
    kind: Kind,
    serial: u64,
    started: Instant,
}

enum One {
    /// Forward unchanged; `Some(key)` when it is a request we now wait for.
    Forward(Option<String>),
    /// Answered (or dropped, when `None`) here.
    Answer(Option<Value>),
    /// Held for approval.
    Held(Held),
    /// Allowed, waiting for its limits to be reserved.
    Reserving(Reserving),
    /// Waiting for the server's tool list; the proxy's own `tools/list` to send, unless one is on its way.
    Listing(Option<OwnRequest>),
}

/// A request the proxy itself sends upstream, with its deadline (id key, serial).
#[derive(Debug)]
pub struct OwnRequest {
    pub message: ToClient,
    /// (id key, serial) for [`Relay::expire`]; `None` for a notification.
    pub deadline: Option<(String, u64)>,
}

/// The tools the server listed in this session, for refusing calls to any other name.
#[derive(Debug, Default)]
struct Advertised {
    names: std::collections::HashSet<String>,
    /// Every page of a listing was read and the server has not said its list changed since. Until then, a
    /// call to a name not in `names` waits for a listing instead of being refused.
    complete: bool,
    /// The id key of the proxy's own listing in flight.
    listing: Option<String>,
}

enum Known {
    Listed,
    Unlisted,
    Unsure,
}

impl Advertised {
    fn knows(&self, tool: &str) -> Known {
        if self.names.contains(tool) {
            Known::Listed
        } else if self.complete {
            Known::Unlisted
        } else {
            Known::Unsure
        }
    }
}

/// At most this many pages are read by the proxy's own listing (a server paging forever is not believed).
const MAX_LIST_PAGES: u32 = 1000;

/// What the relay has to send after an upstream message or a deadline, besides the answer it returns: the next
/// page of its own listing, refusals, and calls to decide again now that the tool list is known.
#[derive(Debug, Default)]
pub struct Queued {
    pub upstream: Vec<OwnRequest>,
    pub client: Vec<ToClient>,
    /// Client messages to pass through [`Relay::from_client`] again.
    pub again: Vec<Vec<u8>>,
}

/// The id prefix of requests the proxy itself sends to the client.
const OWN_ID_PREFIX: &str = "toolwarden-";

/// One session's relay state.
pub struct Relay {
    gate: Arc<dyn Gate>,
    audit: Arc<Audit>,
    session: String,
    identity: Option<String>,
    inflight: Mutex<HashMap<String, Pending>>,
    serial: AtomicU64,
    /// Whether approve verdicts are held for a person (otherwise refused).
    approvals: bool,
    pinned: Option<PinCheck>,
    /// The client declared `capabilities.elicitation` in `initialize`.
    elicits: AtomicBool,
    /// Our `elicitation/create` requests waiting for the client's answer, by id key.
    elicitations: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Value>>>,
    advertised: Mutex<Advertised>,
    queued: Mutex<Queued>,
    /// The server this relay fronts, named in every audit record (behind a gateway).
    server: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("session", &self.session)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(gate: Arc<dyn Gate>, audit: Arc<Audit>, session: String, identity: Option<String>) -> Relay {
        Relay {
            gate,
            audit,
            session,
            identity,
            inflight: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            approvals: false,
            pinned: None,
            elicits: AtomicBool::new(false),
            elicitations: Mutex::default(),
            advertised: Mutex::default(),
            queued: Mutex::default(),
            server: None,
        }
    }

    /// Hold calls that need approval (see [`FromClient::held`]) instead of refusing them.
    pub fn with_approvals(mut self, on: bool) -> Relay {
        self.approvals = on;
        self
    }

    /// Name the server in every audit record.
    pub fn with_server(mut self, server: impl Into<String>) -> Relay {
        self.server = Some(server.into());
        self
    }

    /// Enforce a pin (`--require-pinned`).
    pub fn with_pinned(mut self, pinned: Option<Arc<Pinned>>) -> Relay {
        self.pinned = pinned.map(|pin| PinCheck { pin, seen: Mutex::default() });
        self
    }

    /// Whether the client said it can ask its user (MCP elicitation).
    pub fn client_elicits(&self) -> bool {
        self.elicits.load(Ordering::Relaxed)
    }

    fn elicitations(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::oneshot::Sender<Value>>> {
        self.elicitations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An `elicitation/create` request for the client, and where its answer (the whole response) will arrive.
    pub fn elicitation(&self, params: Value) -> (Vec<u8>, String, tokio::sync::oneshot::Receiver<Value>) {
        let id = Value::String(format!("{OWN_ID_PREFIX}elicit-{}", uuid::Uuid::new_v4()));
        let key = id.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.elicitations().insert(key.clone(), tx);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "elicitation/create", "params": params});
        (serde_json::to_vec(&msg).unwrap_or_default(), key, rx)
    }

    /// Stop waiting for an elicitation (it timed out); a late answer is then dropped.
    pub fn forget_elicitation(&self, key: &str) {
        self.elicitations().remove(key);
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    fn advertised(&self) -> std::sync::MutexGuard<'_, Advertised> {
        self.advertised.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What became due besides the returned answers (see [`Queued`]); the session sends it.
    pub fn take_queued(&self) -> Queued {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The proxy's own `tools/list` (page after `cursor`), unless the first page of one is already on its way.
    fn list_tools(&self, cursor: Option<(Value, u32)>) -> Option<OwnRequest> {
        let mut inflight = self.lock();
        let mut advertised = self.advertised();
        if cursor.is_none() && advertised.listing.is_some() {
            return None;
        }
        let id = Value::String(format!("{OWN_ID_PREFIX}list-{}", uuid::Uuid::new_v4()));
        let key = id.to_string();
        let (params, page) = match cursor {
            Some((cursor, page)) => (json!({"cursor": cursor}), page),
            None => (json!({}), 0),
        };
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        advertised.listing = Some(key.clone());
        drop(advertised);
        let msg = json!({"jsonrpc": "2.0", "id": &id, "method": "tools/list", "params": params});
        inflight.insert(key.clone(), Pending { id, kind: Kind::OwnList { page }, serial, started: Instant::now() });
        let message = ToClient { bytes: serde_json::to_vec(&msg).unwrap_or_default(), answers: vec![key.clone()] };
        Some(OwnRequest { message, deadline: Some((key, serial)) })
    }

    /// Remember the names of a listing page the server sent (to the client or to the proxy).
    fn note_listed(&self, result: &Value, first: bool) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else { return };
        let last = result.get("nextCursor").is_none_or(Value::is_null);
        let mut advertised = self.advertised();
        if first {
            advertised.names.clear();
        }
        advertised.names.extend(tools.iter().filter_map(|t| t.get("name")?.as_str()).map(str::to_string));
        if first && last {
            advertised.complete = true;
        }
    }

    /// An answer to the proxy's own listing: read the next page, or decide the waiting calls again (or refuse
    /// them, when the server would not list its tools).
    fn own_list_answered(&self, msg: &Value, page: u32) {
        let result = msg.get("result").filter(|r| r.get("tools").is_some_and(Value::is_array));
        let failure = match result {
            None => Some(match msg.pointer("/error/message").and_then(Value::as_str) {
                Some(m) => format!("the server answered its tools/list with an error: {}", clean(m, 200)),
                None => "the server's answer to tools/list has no tool list".to_string(),
            }),
            Some(result) => {
                if let (Some(pinned), Some(tools)) = (&self.pinned, result.get("tools").and_then(Value::as_array)) {
                    for tool in tools {
                        pinned.admits_listed(tool);
                    }
                }
                let cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
                {
                    let mut advertised = self.advertised();
                    if page == 0 {
                        advertised.names.clear();
                    }
                    let tools = result.get("tools").and_then(Value::as_array).into_iter().flatten();
                    advertised.names.extend(tools.filter_map(|t| t.get("name")?.as_str()).map(str::to_string));
                }
                match cursor {
                    Some(_) if page + 1 >= MAX_LIST_PAGES => {
                        Some(format!("the server's tool list goes on for more than {MAX_LIST_PAGES} pages"))
                    }
                    Some(cursor) => {
                        if let Some(next) = self.list_tools(Some((cursor, page + 1))) {
                            self.queue().upstream.push(next);
                        }
                        return;
                    }
                    None => {
                        self.advertised().complete = true;
                        None
                    }
                }
            }
        };
        self.release_waiting(failure.as_deref());
    }

    /// The proxy's own listing ended: decide the calls that waited for it again, or refuse them with `failure`.
    fn release_waiting(&self, failure: Option<&str>) {
        self.advertised().listing = None;
        let waiting: Vec<Pending> = {
            let mut inflight = self.lock();
            let keys: Vec<String> = inflight
                .iter()
                .filter(|(_, p)| matches!(p.kind, Kind::AwaitingList { .. }))
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| inflight.remove(k)).collect()
        };
        let mut queue = self.queue();
        for pending in waiting {
            let Kind::AwaitingList { message } = pending.kind else { continue };
            match failure {
                None => queue.again.push(serde_json::to_vec(&message).unwrap_or_default()),
                Some(why) => {
                    let tool = message.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
                    let why = format!("cannot check that `{tool}` is one of the server's tools: {why}");
                    self.audit_decision(tool, &Value::Null, "deny", Some("unlisted-tool"), Some(&why));
                    let answer = refusal(pending.id, &why);
                    let answers = id_key(&answer).into_iter().collect();
                    queue.client.push(ToClient { bytes: serde_json::to_vec(&answer).unwrap_or_default(), answers });
                }
            }
        }
    }

    /// A message with a duplicate key: every request in it is refused (with its id, when the id itself is not
    /// the duplicated key), and nothing is forwarded.
    fn refuse_duplicates(&self, raw: &[u8], why: &str) -> Vec<ToClient> {
        // Each read on its own, so that a duplicated `method` does not hide the id, nor the other way round.
        #[derive(serde::Deserialize)]
        struct Id {
            #[serde(default)]
            id: Option<Value>,
        }
        #[derive(serde::Deserialize)]
        struct Method {
            #[serde(default)]
            method: Option<Value>,
        }
        let message =
            format!("Invalid Request: refused by toolwarden: {why} (a server may read duplicate keys differently)");
        tracing::warn!(session = %self.session, "refused a client message with a duplicate key: {why}");
        let items: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(raw) {
            Ok(items) => items,
            Err(_) => match serde_json::from_slice(raw) {
                Ok(one) => vec![one],
                Err(_) => return vec![error_message(Value::Null, INVALID_REQUEST, &message)],
            },
        };
        let mut answers = Vec::new();
        for item in items {
            // `Err`: the key itself is duplicated.
            let id = serde_json::from_str::<Id>(item.get()).map(|e| e.id);
            let method = serde_json::from_str::<Method>(item.get()).map(|e| e.method);
            let is_call = match &method {
                Ok(m) => m.as_ref().and_then(Value::as_str) == Some("tools/call"),
                Err(_) => true,
            };
            if is_call {
                self.audit_decision("", &Value::Null, "invalid", None, Some(why));
            }
            let request = !matches!(method, Ok(None));
            match id {
                Ok(Some(id)) if request => answers.push(error_message(id, INVALID_REQUEST, &message)),
                Err(_) => answers.push(error_message(Value::Null, INVALID_REQUEST, &message)),
                Ok(_) => {}
            }
        }
        answers
    }

    /// A method that is a known MCP method only after folding case or dropping invisible characters.
    fn refuse_near_method(&self, obj: &serde_json::Map<String, Value>, method: &str, known: &str) -> One {
        let why = format!(
            "`{}` is not an MCP method, but a server that reads methods loosely would take it for `{known}`",
            clean(method, 80)
        );
        tracing::warn!(session = %self.session, "refused a client message: {why}");
        if known == "tools/call" {
            let tool = obj.get("params").and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
            self.audit_decision(tool, &Value::Null, "invalid", None, Some(&why));
        }
        match obj.get("id") {
            Some(id) if valid_id(id).is_some() => One::Answer(Some(error_value(
                id.clone(),
                INVALID_REQUEST,
                &format!("Invalid Request: refused by toolwarden: {why}"),
            ))),
            _ => One::Answer(None),
        }
    }

    /// Number of client requests waiting for the upstream.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Route one message (or batch) from the client.
    pub fn from_client(&self, raw: &[u8]) -> FromClient {
        let mut out = FromClient::default();
        let value: Value = match strict::parse(raw) {
            Ok(v) => v,
            Err(Unreadable::Syntax(e)) => {
                tracing::warn!(session = %self.session, "client sent a message that is not JSON: {e}");
                out.client.push(error_message(Value::Null, PARSE_ERROR, &format!("Parse error: {e}")));
                return out;
            }
            Err(Unreadable::Duplicate(why)) => {
                out.client.extend(self.refuse_duplicates(raw, &why));
                return out;
            }
        };
        match value {
            Value::Array(items) if items.is_empty() => {
                out.client.push(error_message(Value::Null, INVALID_REQUEST, "Invalid Request: empty batch"));
            }
            Value::Array(items) => {
                // Checked call by call: allowed messages travel on as a (smaller) batch, refusals come back as
                // one batch of answers. Nothing in a batch reaches the upstream without its own decision.
                let mut forward = Vec::new();
                let mut answers = Vec::new();
                let mut answered = Vec::new();
                for item in items {
                    match self.one_from_client(&item, &mut out.deadlines) {
                        One::Listing(own) => out.own.extend(own),
                        One::Held(held) => out.held.push(held),
                        One::Reserving(r) => out.reserving.push(r),
                        One::Forward(key) => {
                            out.forwarded.extend(key);
                            forward.push(item);
                        }
                        One::Answer(Some(answer)) => {
                            answered.extend(id_key(&answer));
                            answers.push(answer);
                        }
                        One::Answer(None) => {}
                    }
                }
                if !forward.is_empty() {
                    out.upstream = Some(serde_json::to_vec(&Value::Array(forward)).unwrap_or_default());
                }
                if !answers.is_empty() {
                    let bytes = serde_json::to_vec(&Value::Array(answers)).unwrap_or_default();
                    out.client.push(ToClient { bytes, answers: answered });
                }
            }
            value => match self.one_from_client(&value, &mut out.deadlines) {
                One::Listing(own) => out.own.extend(own),
                One::Held(held) => out.held.push(held),
                One::Reserving(r) => out.reserving.push(r),
                One::Forward(key) => {
                    out.forwarded.extend(key);
                    out.upstream = Some(serde_json::to_vec(&value).unwrap_or_default());
                }
                One::Answer(Some(answer)) => {
                    let answers = id_key(&answer).into_iter().collect();
                    out.client.push(ToClient { bytes: serde_json::to_vec(&answer).unwrap_or_default(), answers });
                }
                One::Answer(None) => {}
            },
        }
        out
    }

    fn one_from_client(&self, msg: &Value, deadlines: &mut Vec<(String, u64)>) -> One {
        let Some(obj) = msg.as_object() else {
            return One::Answer(Some(error_value(Value::Null, INVALID_REQUEST, "Invalid Request: not an object")));
        };
        let id = obj.get("id");
        let method = obj.get("method");
        if let Some(Value::String(method)) = method
            && let Some(known) = strict::near_method(method)
        {
            return self.refuse_near_method(obj, method, known);
        }
        match (method, id) {
            (Some(Value::String(method)), Some(id)) => {
                let Some(key) = valid_id(id) else {
                    return One::Answer(Some(error_value(
                        Value::Null,
                        INVALID_REQUEST,
                        "Invalid Request: id must be a string or a number",
                    )));
                };
                let mut inflight = self.lock();
                if inflight.contains_key(&key) {
                    return One::Answer(Some(error_value(
                        id.clone(),
                        INVALID_REQUEST,
                        "Invalid Request: a request with this id is still in flight",
                    )));
                }
                let kind = match method.as_str() {
                    "tools/list" => {
                        Kind::ToolsList { first: obj.get("params").and_then(|p| p.get("cursor")).is_none() }
                    }
                    "tools/call" => match self.decide(msg, id, obj.get("params")) {
                        Ok(kind) => kind,
                        Err(answer) => return One::Answer(Some(answer)),
                    },
                    "initialize" => {
                        let elicits = obj.get("params").and_then(|p| p.pointer("/capabilities/elicitation"));
                        self.elicits.store(elicits.is_some_and(Value::is_object), Ordering::Relaxed);
                        Kind::Other
                    }
                    _ => Kind::Other,
                };
                let serial = self.serial.fetch_add(1, Ordering::Relaxed);
                let mut kind = kind;
                if let Kind::Reserving { charges, .. } = &mut kind {
                    let reserving = Reserving { key: key.clone(), charges: std::mem::take(charges) };
                    inflight.insert(key, Pending { id: id.clone(), kind, serial, started: Instant::now() });
                    return One::Reserving(reserving);
                }
                if matches!(kind, Kind::AwaitingList { .. }) {
                    inflight.insert(key, Pending { id: id.clone(), kind, serial, started: Instant::now() });
                    drop(inflight);
                    return One::Listing(self.list_tools(None));
                }
                if let Kind::Held { call, reason, rule, .. } = &kind {
                    let held =
                        Held { key: key.clone(), call: call.clone(), reason: reason.clone(), rule: rule.clone() };
                    inflight.insert(key, Pending { id: id.clone(), kind, serial, started: Instant::now() });
                    return One::Held(held);
                }
                if matches!(kind, Kind::ToolsCall { .. }) {
                    deadlines.push((key.clone(), serial));
                }
                inflight.insert(key.clone(), Pending { id: id.clone(), kind, serial, started: Instant::now() });
                One::Forward(Some(key))
            }
            (Some(Value::String(method)), None) if method == "tools/call" => {
                // A call sent as a notification has no id to refuse through, but a careless server might still
                // run it. It is never forwarded.
                tracing::warn!(session = %self.session, "dropped a tools/call sent as a notification (no id)");
                One::Answer(None)
            }
            (Some(Value::String(method)), None) if method == "notifications/cancelled" => {
                // A call still held for a person or for its limits never reached the upstream: it is withdrawn
                // here (a later approval or reservation then forwards nothing), and the upstream is not told.
                let key = obj.get("params").and_then(|p| p.get("requestId")).and_then(valid_id);
                if key.is_some_and(|k| self.withdraw(&k)) { One::Answer(None) } else { One::Forward(None) }
            }
            (Some(Value::String(_)), None) => One::Forward(None),
            (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
                // The client's answer to one of our own requests goes to whoever waits for it, not upstream.
                if let Some(key) = valid_id(id)
                    && let Some(waiter) = self.elicitations().remove(&key)
                {
                    let _ = waiter.send(msg.clone());
                    return One::Answer(None);
                }
                One::Forward(None)
            }
            _ => One::Answer(Some(error_value(
                id.cloned().unwrap_or(Value::Null),
                INVALID_REQUEST,
                "Invalid Request: neither a request, a notification nor a response",
            ))),
        }
    }

    /// Decide one `tools/call`. `Err` carries the answer for the client (a refusal or an invalid-params error).
    fn decide(&self, msg: &Value, id: &Value, params: Option<&Value>) -> Result<Kind, Value> {
        let parsed = match params {
            Some(Value::Object(p)) => match (p.get("name"), p.get("arguments")) {
                (Some(Value::String(name)), None | Some(Value::Null)) => Ok((name.clone(), Value::Null)),
                (Some(Value::String(name)), Some(args @ Value::Object(_))) => Ok((name.clone(), args.clone())),
                (Some(Value::String(_)), Some(_)) => Err("params.arguments must be an object"),
                _ => Err("params.name must be a string"),
            },
            _ => Err("params must be an object with a tool name"),
        };
        let parsed = parsed.and_then(|(tool, args)| match strict::unclear_name(&tool) {
            Some(why) => Err(why),
            None => Ok((tool, args)),
        });
        let (tool, arguments) = match parsed {
            Ok(p) => p,
            Err(why) => {
                let name = params.and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
                self.audit_decision(name, &Value::Null, "invalid", None, Some(why));
                return Err(error_value(
                    id.clone(),
                    INVALID_PARAMS,
                    &format!("Invalid params: refused by toolwarden: {why}"),
                ));
            }
        };
        match self.advertised().knows(&tool) {
            Known::Listed => {}
            Known::Unsure => return Ok(Kind::AwaitingList { message: msg.clone() }),
            Known::Unlisted => {
                let why = format!(
                    "`{tool}` is not among the tools this server lists (names must match exactly: a server that \
                     folds case or trims characters could run another tool than the one the policy decided on)"
                );
                self.audit_decision(&tool, &arguments, "deny", Some("unlisted-tool"), Some(&why));
                return Err(refusal(id.clone(), &why));
            }
        }
        if let Some(why) = self.pinned.as_ref().and_then(|p| p.refuses(&tool)) {
            self.audit_decision(&tool, &arguments, "deny", Some("require-pinned"), Some(&why));
            return Err(refusal(id.clone(), &why));
        }
        let call = Call { tool, arguments, identity: self.identity.clone(), session: self.session.clone() };
        match self.gate.check(&call) {
            Verdict::Allow { charges, rule } => {
                let digest = if self.audit.enabled() { audit::digest(&call.arguments) } else { String::new() };
                let args = self.audit.include_args().then_some(call.arguments);
                Ok(Kind::ToolsCall { tool: call.tool, digest, args, charges, rule })
            }
            Verdict::Reserve { charges, rule } => Ok(Kind::Reserving { message: msg.clone(), call, rule, charges }),
            Verdict::Deny { reason, rule } => {
                self.audit_decision(&call.tool, &call.arguments, "deny", rule.as_deref(), Some(&reason));
                Err(refusal(id.clone(), &reason))
            }
            Verdict::Approve { reason, rule, charges } if self.approvals => {
                let why = format!("waiting for a person's approval: {reason}");
                self.audit_decision(&call.tool, &call.arguments, "approve", rule.as_deref(), Some(&why));
                Ok(Kind::Held { message: msg.clone(), call, reason, rule, charges })
            }
            Verdict::Approve { reason, rule, .. } => {
                let reason = format!("{reason} (this call needs a person's approval, and approvals are not enabled)");
                self.audit_decision(&call.tool, &call.arguments, "approve", rule.as_deref(), Some(&reason));
                Err(refusal(id.clone(), &reason))
            }
        }
    }

    fn audit_decision(&self, tool: &str, args: &Value, decision: &str, rule: Option<&str>, reason: Option<&str>) {
        self.audit_call(tool, args, decision, rule, reason, None);
    }

    /// One decision record about a call that was not forwarded (refused, held, or decided by a person).
    fn audit_call(
        &self,
        tool: &str,
        args: &Value,
        decision: &str,
        rule: Option<&str>,
        reason: Option<&str>,
        decided_by: Option<&str>,
    ) {
        if !self.audit.enabled() {
            return;
        }
        self.audit.write(&Record {
            time: jiff::Timestamp::now(),
            session: &self.session,
            server: self.server.as_deref(),
            identity: self.identity.as_deref(),
            tool,
            args_sha256: audit::digest(args),
            args: self.audit.include_args().then_some(args),
            decision,
            rule,
            reason,
            outcome: None,
            upstream_latency_us: None,
            decided_by,
        });
    }

    /// Route one message (or batch) from the upstream. `None`: nothing to send (garbage, or a late answer).
    pub fn from_upstream(&self, raw: &[u8]) -> Option<ToClient> {
        if let Some(answer) = self.answer_from_upstream(raw) {
            return answer;
        }
        let value: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                let shown = clean(&String::from_utf8_lossy(&raw[..raw.len().min(200)]), 200);
                tracing::warn!(session = %self.session, "upstream sent a line that is not JSON-RPC ({e}): {shown}");
                return None;
            }
        };
        match value {
            Value::Array(items) => {
                let mut answers = Vec::new();
                let mut kept = Vec::with_capacity(items.len());
                for item in items {
                    if let Some((item, key)) = self.one_from_upstream(item, None) {
                        answers.extend(key);
                        kept.push(item.unwrap_or(Value::Null));
                    }
                }
                if kept.is_empty() {
                    return None;
                }
                Some(ToClient { bytes: serde_json::to_vec(&Value::Array(kept)).unwrap_or_default(), answers })
            }
            value => {
                let (rewritten, key) = self.one_from_upstream(value, Some(raw))?;
                let bytes = match rewritten {
                    Some(v) => serde_json::to_vec(&v).unwrap_or_default(),
                    None => raw.to_vec(),
                };
                Some(ToClient { bytes, answers: key.into_iter().collect() })
            }
        }
    }

    /// The common case without building the answer: one response to a forwarded call (or any request but
    /// `tools/list`, whose result is rewritten), passed on as its original bytes. `None`: take the full path.
    fn answer_from_upstream(&self, raw: &[u8]) -> Option<Option<ToClient>> {
        let head = AnswerHead::read(raw)?;
        let key = head.id.as_ref().and_then(valid_id)?;
        let pending = {
            let mut inflight = self.lock();
            if matches!(inflight.get(&key)?.kind, Kind::ToolsList { .. } | Kind::OwnList { .. }) {
                return None;
            }
            inflight.remove(&key)?
        };
        if let Kind::ToolsCall { tool, digest, args, charges, rule } = pending.kind {
            let failed = head.error || head.is_error == Some(true);
            let outcome = if failed { CallOutcome::Failure } else { CallOutcome::Success };
            self.gate.settle(charges, outcome);
            let call = Finished { tool: &tool, digest, args: args.as_ref(), rule: rule.as_deref() };
            self.audit_finished(call, if failed { "error" } else { "ok" }, pending.started);
        }
        Some(Some(ToClient { bytes: raw.to_vec(), answers: vec![key] }))
    }

    /// `Some((None, key))`: relay the original bytes; `Some((Some(v), key))`: relay `v` instead. When `raw` is
    /// `None` (inside a batch) the value is always returned.
    fn one_from_upstream(&self, mut msg: Value, raw: Option<&[u8]>) -> Option<(Option<Value>, Option<String>)> {
        let unchanged = |msg: Value| if raw.is_some() { None } else { Some(msg) };
        let is_response = msg.get("method").is_none() && (msg.get("result").is_some() || msg.get("error").is_some());
        if !is_response {
            if msg.get("method").and_then(Value::as_str) == Some("notifications/tools/list_changed") {
                self.advertised().complete = false;
            }
            return Some((unchanged(msg), None));
        }
        let key = msg.get("id").and_then(valid_id);
        let pending = key.as_ref().and_then(|k| self.lock().remove(k));
        let Some(pending) = pending else {
            tracing::warn!(session = %self.session, "dropped an upstream answer to no request in flight (late after a timeout?)");
            return None;
        };
        match pending.kind {
            Kind::OwnList { page } => {
                self.own_list_answered(&msg, page);
                None
            }
            Kind::ToolsList { first } => {
                if let Some(result) = msg.get("result") {
                    self.note_listed(result, first);
                }
                if let Some(Value::Array(tools)) = msg.pointer_mut("/result/tools") {
                    // A tool without a string name cannot be matched against a rule, so it is not shown.
                    tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| self.gate.visible(n)));
                    if let Some(pinned) = &self.pinned {
                        tools.retain(|t| pinned.admits_listed(t));
                    }
                }
                // Always re-serialised: what the client reads is the list as filtered, even if the server sent
                // duplicate keys that another parser would resolve differently.
                Some((Some(msg), key))
            }
            Kind::ToolsCall { tool, digest, args, charges, rule } => {
                let failed = msg.get("error").is_some()
                    || msg.pointer("/result/isError").and_then(Value::as_bool).unwrap_or(false);
                let outcome = if failed { CallOutcome::Failure } else { CallOutcome::Success };
                self.gate.settle(charges, outcome);
                let call = Finished { tool: &tool, digest, args: args.as_ref(), rule: rule.as_deref() };
                self.audit_finished(call, if failed { "error" } else { "ok" }, pending.started);
                Some((unchanged(msg), key))
            }
            Kind::Other | Kind::Held { .. } | Kind::Reserving { .. } | Kind::AwaitingList { .. } => {
                Some((unchanged(msg), key))
            }
        }
    }

    fn audit_finished(&self, call: Finished<'_>, outcome: &str, started: Instant) {
        if !self.audit.enabled() {
            return;
        }
        self.audit.write(&Record {
            time: jiff::Timestamp::now(),
            session: &self.session,
            server: self.server.as_deref(),
            identity: self.identity.as_deref(),
            tool: call.tool,
            args_sha256: call.digest,
            args: call.args,
            decision: "allow",
            rule: call.rule,
            reason: None,
            outcome: Some(outcome),
            upstream_latency_us: Some(started.elapsed().as_micros() as u64),
            decided_by: None,
        });
    }

    /// The client cancelled a call that is not forwarded yet (held for a person, or waiting for its limits):
    /// forget it. `false` when no such call waits under `key`.
    fn withdraw(&self, key: &str) -> bool {
        let pending = {
            let mut inflight = self.lock();
            let kind = inflight.get(key).map(|p| &p.kind);
            if !matches!(kind, Some(Kind::Held { .. } | Kind::Reserving { .. } | Kind::AwaitingList { .. })) {
                return false;
            }
            inflight.remove(key)
        };
        if let Some(Pending { kind: Kind::Held { call, rule, .. }, .. }) = &pending {
            self.audit_approval(call, "cancelled", rule.as_deref(), "cancelled by the client", None);
        }
        true
    }

    /// Whether the call with this id key still waits for a person.
    pub fn is_held(&self, key: &str) -> bool {
        matches!(self.lock().get(key).map(|p| &p.kind), Some(Kind::Held { .. }))
    }

    /// A person approved a held call: its limits are reserved now and it becomes an ordinary forwarded call
    /// ([`Approved::Forward`], with its deadline serial), or a limit reached meanwhile (or shared state
    /// unavailable) refuses it ([`Approved::Refused`]). `None` when the call is no longer held (the upstream
    /// closed meanwhile).
    pub fn approved(&self, key: &str, by: &str) -> Option<Approved> {
        let mut inflight = self.lock();
        let pending = inflight.get_mut(key)?;
        if !matches!(pending.kind, Kind::Held { .. }) {
            return None;
        }
        let Kind::Held { message, call, reason, rule, charges } = std::mem::replace(&mut pending.kind, Kind::Other)
        else {
            return None;
        };
        self.audit_approval(&call, "approved", rule.as_deref(), &reason, Some(by));
        // Reserved under the in-flight lock, as `check` is for a call that needs no person: the id stays taken
        // until the call is forwarded or refused.
        let reserved = self.gate.reserve(&charges);
        self.forward_or_refuse(inflight, key, message, call, rule, reserved)
    }

    /// Reserve the limits of a [`Reserving`] call, without blocking (the gate's store is remote).
    pub fn reserve_async(&self, charges: Vec<Charge>) -> BoxFuture<'_, Result<Vec<Reservation>, Refused>> {
        self.gate.reserve_async(charges)
    }

    /// The limits of a [`Reserving`] call were reserved (forward it: [`Approved::Forward`]) or refused
    /// ([`Approved::Refused`]). `None` when the call is no longer in flight (the upstream closed meanwhile):
    /// then what was reserved is given back as for a failed call.
    pub fn reserved(&self, key: &str, reserved: Result<Vec<Reservation>, Refused>) -> Option<Approved> {
        let mut inflight = self.lock();
        let waiting = inflight.get(key).is_some_and(|p| matches!(p.kind, Kind::Reserving { .. }));
        if !waiting {
            drop(inflight);
            if let Ok(charges) = reserved {
                self.gate.settle(charges, CallOutcome::Failure);
            }
            return None;
        }
        let pending = inflight.get_mut(key)?;
        let Kind::Reserving { message, call, rule, .. } = std::mem::replace(&mut pending.kind, Kind::Other) else {
            return None;
        };
        self.forward_or_refuse(inflight, key, message, call, rule, reserved)
    }

    /// Turn a call whose limits were just reserved into an ordinary forwarded call, or refuse it.
    fn forward_or_refuse(
        &self,
        mut inflight: std::sync::MutexGuard<'_, HashMap<String, Pending>>,
        key: &str,
        message: Value,
        call: Call,
        rule: Option<String>,
        reserved: Result<Vec<Reservation>, Refused>,
    ) -> Option<Approved> {
        let charges = match reserved {
            Ok(charges) => charges,
            Err(Refused { reason, rule: limit }) => {
                let pending = inflight.remove(key)?;
                drop(inflight);
                self.audit_decision(&call.tool, &call.arguments, "deny", limit.as_deref(), Some(&reason));
                let answer = refusal(pending.id, &reason);
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                return Some(Approved::Refused(ToClient { bytes, answers: vec![key.to_string()] }));
            }
        };
        let pending = inflight.get_mut(key)?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        pending.serial = serial;
        pending.started = Instant::now();
        let digest = if self.audit.enabled() { audit::digest(&call.arguments) } else { String::new() };
        let args = self.audit.include_args().then(|| call.arguments.clone());
        pending.kind = Kind::ToolsCall { tool: call.tool, digest, args, charges, rule };
        Some(Approved::Forward(serde_json::to_vec(&message).unwrap_or_default(), serial))
    }

    /// A held call is refused (`decision`: denied, declined, cancelled, timed_out, expired).
    pub fn refuse_held(&self, key: &str, decision: &str, why: &str, by: Option<&str>) -> Option<ToClient> {
        let pending = {
            let mut inflight = self.lock();
            if !matches!(inflight.get(key).map(|p| &p.kind), Some(Kind::Held { .. })) {
                return None;
            }
            inflight.remove(key)?
        };
        let Kind::Held { call, rule, .. } = &pending.kind else { return None };
        self.audit_approval(call, decision, rule.as_deref(), why, by);
        let answer = refusal(pending.id, why);
        Some(ToClient { bytes: serde_json::to_vec(&answer).unwrap_or_default(), answers: vec![key.to_string()] })
    }

    fn audit_approval(&self, call: &Call, decision: &str, rule: Option<&str>, reason: &str, by: Option<&str>) {
        self.audit_call(&call.tool, &call.arguments, decision, rule, Some(reason), by);
    }

    /// The upstream is gone: answer every request still in flight with an error.
    pub fn upstream_closed(&self, why: &str) -> Vec<ToClient> {
        let drained: Vec<(String, Pending)> = self.lock().drain().collect();
        {
            // A restarted server may list other tools: the next unlisted name asks it again.
            let mut advertised = self.advertised();
            advertised.listing = None;
            advertised.complete = false;
        }
        let message = format!("toolwarden: the upstream server closed before answering ({why})");
        drained
            .into_iter()
            .filter(|(_, p)| !matches!(p.kind, Kind::OwnList { .. }))
            .map(|(key, p)| self.fail(key, p, UPSTREAM_CLOSED, &message, "upstream_closed"))
            .collect()
    }

    /// A forwarded call's deadline passed. If it is still in flight (same id and serial), answer it with an
    /// error and return the `notifications/cancelled` to send upstream.
    pub fn expire(&self, key: &str, serial: u64, after_secs: f64) -> Option<(ToClient, Vec<u8>)> {
        let pending = {
            let mut inflight = self.lock();
            match inflight.get(key) {
                Some(p) if p.serial == serial => inflight.remove(key)?,
                _ => return None,
            }
        };
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": &pending.id, "reason": "timed out in toolwarden"}});
        if let Kind::OwnList { .. } = pending.kind {
            self.release_waiting(Some(&format!("the server did not list its tools within {after_secs} s")));
            let bytes = serde_json::to_vec(&cancel).unwrap_or_default();
            self.queue().upstream.push(OwnRequest { message: ToClient { bytes, answers: Vec::new() }, deadline: None });
            return None;
        }
        let message = format!("toolwarden: the upstream server did not answer within {after_secs} s");
        let answer = self.fail(key.to_string(), pending, UPSTREAM_TIMEOUT, &message, "timeout");
        Some((answer, serde_json::to_vec(&cancel).unwrap_or_default()))
    }

    fn fail(&self, key: String, pending: Pending, code: i64, message: &str, outcome: &str) -> ToClient {
        if let Kind::ToolsCall { tool, digest, args, charges, rule } = pending.kind {
            self.gate.settle(charges, CallOutcome::Failure);
            let call = Finished { tool: &tool, digest, args: args.as_ref(), rule: rule.as_deref() };
            self.audit_finished(call, outcome, pending.started);
        }
        let mut msg = error_message(pending.id, code, message);
        msg.answers = vec![key];
        msg
    }
}

struct Finished<'a> {
    tool: &'a str,
    digest: String,
    args: Option<&'a Value>,
    rule: Option<&'a str>,
}

/// The key of an id in the in-flight map: its JSON text (so `1` and `"1"` differ, as they must).
fn valid_id(id: &Value) -> Option<String> {
    match id {
        Value::String(_) | Value::Number(_) => Some(id.to_string()),
        _ => None,
    }
}

/// The id key of an answer we built, if it answers a request.
fn id_key(answer: &Value) -> Option<String> {
    answer.get("id").and_then(valid_id)
}

/// The refusal the agent sees: a tool result, so the model can read why.
pub fn refusal(id: Value, reason: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": format!("Refused by toolwarden: {reason}")}],
        "isError": true,
    }})
}

fn error_value(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC error for the client.
pub fn error_message(id: Value, code: i64, message: &str) -> ToClient {
    let answers = valid_id(&id).into_iter().collect();
    ToClient { bytes: serde_json::to_vec(&error_value(id, code, message)).unwrap_or_default(), answers }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "relay_approval_tests.rs"]
mod approval_tests;
