use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::policy;
use crate::proxy::counters::MemoryCounters;
use crate::proxy::policy_gate::PolicyGate;

const POLICY: &str = r#"{"version":"1","default":"allow","hide":["secret"],
    "tools":{"nuke":{"action":"deny","reason":"never"},
             "echo":{"limits":[{"counter":"echo","window":"hour","max":2}]}}}"#;

fn relay() -> Relay {
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None);
    list(&r, &["echo", "nuke", "secret", "other"]);
    r
}

/// The client lists the server's tools (`names`), as clients do before calling them.
pub(super) fn list(r: &Relay, names: &[&str]) {
    assert!(r.from_client(br#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#).upstream.is_some());
    let tools: Vec<Value> = names.iter().map(|n| json!({"name": n, "inputSchema": {"type": "object"}})).collect();
    let result = json!({"jsonrpc":"2.0","id":"list","result":{"tools":tools}});
    r.from_upstream(&serde_json::to_vec(&result).unwrap()).unwrap();
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn call(id: u64, tool: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}}))
        .unwrap()
}

#[test]
fn messages_pass_unchanged() {
    let r = relay();
    let raw = br#"{"jsonrpc":"2.0", "id":7,"method":"resources/read","params":{"uri":"x://y","_meta":{"z":1}}}"#;
    let out = r.from_client(raw);
    assert_eq!(parse(&out.upstream.unwrap()), parse(raw));
    let answer = br#"{"jsonrpc":"2.0","id":7,"result":{"contents":[],"extra":true}}"#;
    assert_eq!(r.from_upstream(answer).unwrap().bytes, answer.to_vec());
    let sampling = br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#;
    assert_eq!(r.from_upstream(sampling).unwrap().bytes, sampling.to_vec());
    let reply = br#"{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant"}}"#;
    assert_eq!(parse(&r.from_client(reply).upstream.unwrap()), parse(reply));
}

#[test]
fn messages_with_duplicate_keys_are_refused_whole_and_never_forwarded() {
    let r = relay();
    // Whichever duplicate a reader keeps, the server must not get a chance to read it otherwise than the gate.
    for raw in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"nuke"}}"#[..],
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nuke","name":"echo"}}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","method":"ping","params":{"name":"echo"}}"#,
        br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}"#,
    ] {
        let out = r.from_client(raw);
        assert!(out.upstream.is_none(), "{}", String::from_utf8_lossy(raw));
        let answer = parse(&out.client[0].bytes);
        assert_eq!(answer["error"]["code"], json!(-32600));
        assert!(answer["error"]["message"].as_str().unwrap().contains("duplicate key"), "{answer}");
    }
    let out = r.from_client(br#"{"jsonrpc":"2.0","id":5,"id":6,"method":"ping"}"#);
    assert!(out.upstream.is_none());
    assert_eq!(parse(&out.client[0].bytes)["id"], Value::Null, "the id itself is ambiguous");
    // In a batch every request is answered, and nothing of it goes upstream.
    let out = r.from_client(
        br#"[{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","name":"nuke"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
    );
    assert!(out.upstream.is_none());
    let ids: Vec<Value> = out.client.iter().map(|a| parse(&a.bytes)["id"].clone()).collect();
    assert_eq!(ids, [json!(7), json!(8)]);
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn methods_that_only_look_like_mcp_methods_are_refused() {
    let r = relay();
    for method in ["TOOLS/CALL", "Tools/call", "tools/call\\u200b", " tools/call", "tools/call\\u0000"] {
        let raw = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"nuke"}}}}"#);
        let out = r.from_client(raw.as_bytes());
        assert!(out.upstream.is_none(), "{method}");
        let answer = parse(&out.client[0].bytes);
        assert_eq!(answer["id"], json!(1));
        assert!(answer["error"]["message"].as_str().unwrap().contains("`tools/call`"), "{answer}");
    }
    // As a notification it is dropped; methods no MCP method resembles pass (vendor extensions).
    assert!(r.from_client(br#"{"jsonrpc":"2.0","method":"TOOLS/CALL","params":{"name":"nuke"}}"#).upstream.is_none());
    assert!(r.from_client(br#"{"jsonrpc":"2.0","method":"Notifications/Initialized"}"#).upstream.is_none());
    assert!(r.from_client(br#"{"jsonrpc":"2.0","id":2,"method":"vendor/Thing"}"#).upstream.is_some());
}

#[test]
fn calls_to_names_the_server_did_not_list_are_refused_however_close() {
    let r = relay();
    for name in ["ECHO", "Echo", "echo\\u0000", "echo\\u200b", "echo ", "ech", "echo\\n"] {
        let raw = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#);
        let out = r.from_client(raw.as_bytes());
        assert!(out.upstream.is_none() && out.own.is_empty(), "{name}");
        let answer = String::from_utf8(out.client[0].bytes.clone()).unwrap();
        assert!(
            answer.contains("not among the tools this server lists") || answer.contains("the tool name"),
            "{answer}"
        );
    }
    assert!(r.from_client(&call(2, "echo")).upstream.is_some());
}

/// Answer the proxy's own listing request `own` with one page.
fn answer_own(r: &Relay, own: &OwnRequest, names: &[&str], next: Option<&str>) -> Queued {
    let id = parse(&own.message.bytes)["id"].clone();
    let tools: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    let mut result = json!({"tools": tools});
    if let Some(next) = next {
        result["nextCursor"] = json!(next);
    }
    let answer = json!({"jsonrpc":"2.0","id":id,"result":result});
    assert!(r.from_upstream(&serde_json::to_vec(&answer).unwrap()).is_none(), "the client never sees our listing");
    r.take_queued()
}

#[test]
fn a_call_before_any_listing_waits_for_the_proxys_own_listing_of_every_page() {
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None);
    let mut out = r.from_client(&call(1, "late"));
    assert!(out.upstream.is_none() && out.client.is_empty());
    let own = out.own.pop().expect("the proxy lists the tools itself");
    assert_eq!(parse(&own.message.bytes)["method"], json!("tools/list"));
    // A second call meanwhile waits for the same listing.
    assert!(r.from_client(&call(2, "ECHO")).own.is_empty());
    let mut queued = answer_own(&r, &own, &["echo"], Some("p2"));
    let next = queued.upstream.pop().expect("the next page is asked for");
    assert_eq!(parse(&next.message.bytes)["params"]["cursor"], json!("p2"));
    assert!(queued.again.is_empty());
    let queued = answer_own(&r, &next, &["late"], None);
    assert_eq!(queued.again.len(), 2, "both calls are decided again");
    let decided: Vec<FromClient> = queued.again.iter().map(|m| r.from_client(m)).collect();
    let forwarded: Vec<&FromClient> = decided.iter().filter(|o| o.upstream.is_some()).collect();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(parse(forwarded[0].upstream.as_ref().unwrap())["params"]["name"], json!("late"));
    let refused = decided.iter().find(|o| o.upstream.is_none()).unwrap();
    assert!(String::from_utf8_lossy(&refused.client[0].bytes).contains("not among the tools this server lists"));
}

#[test]
fn a_listing_that_fails_or_times_out_refuses_the_waiting_calls_and_list_changed_asks_again() {
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None);
    let own = r.from_client(&call(1, "echo")).own.pop().unwrap();
    let id = parse(&own.message.bytes)["id"].clone();
    let error = json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"no tools here"}});
    assert!(r.from_upstream(&serde_json::to_vec(&error).unwrap()).is_none());
    let queued = r.take_queued();
    let refusal = parse(&queued.client[0].bytes);
    assert_eq!((refusal["id"].clone(), refusal["result"]["isError"].clone()), (json!(1), json!(true)));
    assert!(refusal.to_string().contains("no tools here"), "{refusal}");
    // The next call asks again; this time the server never answers.
    let own = r.from_client(&call(2, "echo")).own.pop().expect("a failed listing is tried again");
    let (key, serial) = own.deadline.unwrap();
    assert!(r.expire(&key, serial, 2.0).is_none(), "the client is not told about our own request");
    let queued = r.take_queued();
    assert!(String::from_utf8_lossy(&queued.client[0].bytes).contains("did not list its tools within 2 s"));
    assert_eq!(parse(&queued.upstream[0].message.bytes)["method"], json!("notifications/cancelled"));
    assert_eq!(r.in_flight(), 0);
    // Listed, then the server says its list changed: a new name is looked up again, known names still pass.
    list(&r, &["echo"]);
    assert!(r.from_client(&call(3, "fresh")).upstream.is_none());
    r.from_upstream(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#).unwrap();
    assert!(r.from_client(&call(4, "echo")).upstream.is_some());
    let mut out = r.from_client(&call(5, "fresh"));
    let own = out.own.pop().expect("a changed list is read again");
    let queued = answer_own(&r, &own, &["echo", "fresh"], None);
    assert!(r.from_client(&queued.again[0]).upstream.is_some());
}

#[test]
fn tools_list_results_lose_hidden_and_denied_tools() {
    let r = relay();
    r.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let result = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"echo"},{"name":"secret"},{"name":"nuke"},{"name":42},{"name":"Secret"}]}});
    let out = parse(&r.from_upstream(&serde_json::to_vec(&result).unwrap()).unwrap().bytes);
    let names: Vec<&Value> = out["result"]["tools"].as_array().unwrap().iter().map(|t| &t["name"]).collect();
    assert_eq!(names, [&json!("echo"), &json!("Secret")]);
}

#[test]
fn refused_calls_are_answered_here_and_never_forwarded() {
    let r = relay();
    let out = r.from_client(&call(3, "nuke"));
    assert!(out.upstream.is_none());
    let answer = parse(&out.client[0].bytes);
    assert_eq!(answer["result"]["isError"], json!(true));
    assert_eq!(answer["result"]["content"][0]["text"], json!("Refused by toolwarden: never"));
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn unparseable_call_params_are_refused() {
    let r = relay();
    for params in [json!({"name": 5}), json!("echo"), json!({"name":"echo","arguments":[1]})] {
        let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":params});
        let out = r.from_client(&serde_json::to_vec(&msg).unwrap());
        assert!(out.upstream.is_none());
        assert_eq!(parse(&out.client[0].bytes)["error"]["code"], json!(-32602));
    }
    let notification = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"nuke"}}"#;
    let out = r.from_client(notification);
    assert!(out.upstream.is_none() && out.client.is_empty());
}

#[test]
fn batches_are_checked_call_by_call() {
    let r = relay();
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nuke"}},
        {"jsonrpc":"2.0","method":"notifications/initialized"}
    ]);
    let out = r.from_client(&serde_json::to_vec(&batch).unwrap());
    let forwarded = parse(&out.upstream.unwrap());
    assert_eq!(forwarded.as_array().unwrap().len(), 2);
    assert_eq!(forwarded[0]["id"], json!(1));
    let answers = parse(&out.client[0].bytes);
    assert_eq!(answers[0]["id"], json!(2));
    assert_eq!(answers[0]["result"]["isError"], json!(true));
}

#[test]
fn garbage_gets_a_parse_error() {
    let r = relay();
    let out = r.from_client(b"{not json");
    assert_eq!(parse(&out.client[0].bytes)["error"]["code"], json!(-32700));
    assert!(r.from_upstream(b"hello from a chatty server").is_none());
}

#[test]
fn a_reused_in_flight_id_is_refused() {
    let r = relay();
    r.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let out = r.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert!(out.upstream.is_none());
    assert_eq!(parse(&out.client[0].bytes)["error"]["code"], json!(-32600));
}

#[test]
fn limits_count_forwarded_calls_even_when_they_fail() {
    let r = relay();
    for id in 1..=2 {
        assert!(r.from_client(&call(id, "echo")).upstream.is_some());
        let failed = json!({"jsonrpc":"2.0","id":id,"result":{"content":[],"isError":true}});
        r.from_upstream(&serde_json::to_vec(&failed).unwrap()).unwrap();
    }
    let out = r.from_client(&call(3, "echo"));
    assert!(out.upstream.is_none());
    let text = parse(&out.client[0].bytes)["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("limit `echo` reached"), "{text}");
}

#[test]
fn upstream_death_and_timeouts_answer_in_flight_requests() {
    let r = relay();
    let out = r.from_client(&call(1, "echo"));
    let (key, serial) = out.deadlines[0].clone();
    let (answer, cancel) = r.expire(&key, serial, 1.5).unwrap();
    assert_eq!(parse(&answer.bytes)["error"]["code"], json!(-32001));
    assert_eq!(parse(&cancel)["params"]["requestId"], json!(1));
    assert!(r.expire(&key, serial, 1.5).is_none());
    // The late answer is dropped, not relayed twice.
    assert!(r.from_upstream(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_none());
    r.from_client(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#);
    let answers = r.upstream_closed("exit status 1");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].answers, vec!["\"a\"".to_string()]);
}

/// In-memory counters that say they are remote, so the gate hands their charges to the session.
struct Remote(MemoryCounters);

impl crate::proxy::counters::CounterStore for Remote {
    fn reserve(
        &self,
        charges: &[crate::proxy::counters::Charge],
        now: u64,
    ) -> Result<Vec<Reservation>, crate::proxy::counters::ReserveError> {
        self.0.reserve(charges, now)
    }
    fn rollback(&self, reservations: &[Reservation]) {
        self.0.rollback(reservations)
    }
    fn may_block(&self) -> bool {
        true
    }
}

#[test]
fn calls_with_remote_limits_wait_for_their_reservation_then_go_on_or_are_refused() {
    use futures_util::FutureExt;
    // Inside a runtime, as the HTTP frontend is (off it, the gate waits for the store in place).
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _inside = runtime.enter();
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(Remote(MemoryCounters::new())));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None);
    list(&r, &["echo", "other"]);
    let reserve = |id: u64| {
        let mut out = r.from_client(&call(id, "echo"));
        assert!(out.upstream.is_none() && out.client.is_empty(), "nothing goes anywhere before the reservation");
        let waiting = out.reserving.pop().expect("the call waits for its reservation");
        assert_eq!((waiting.key.as_str(), waiting.charges.len()), (id.to_string().as_str(), 1));
        let reserved = r.reserve_async(waiting.charges).now_or_never().unwrap();
        r.reserved(&waiting.key, reserved)
    };
    for id in [1, 2] {
        let Some(Approved::Forward(bytes, _)) = reserve(id) else { panic!("call {id} was not forwarded") };
        assert_eq!(parse(&bytes)["id"], json!(id));
    }
    let Some(Approved::Refused(answer)) = reserve(3) else { panic!("the third call went through") };
    assert!(String::from_utf8_lossy(&answer.bytes).contains("limit `echo` reached: 2 of 2 per hour"));
    assert_eq!(answer.answers, ["3"]);
    // Calls without limits are decided at once; a reservation that comes back after the upstream went away
    // forwards nothing.
    assert!(r.from_client(&call(4, "other")).upstream.is_some());
    let mut out = r.from_client(&call(5, "echo"));
    let waiting = out.reserving.pop().unwrap();
    let closed = r.upstream_closed("gone");
    assert!(closed.iter().any(|a| a.answers == ["5"]), "the waiting call is answered when the upstream closes");
    assert!(r.reserved(&waiting.key, Ok(Vec::new())).is_none());
    // A call the client cancels while its limits are being reserved is withdrawn: nothing goes upstream, then or
    // when the reservation comes back.
    let mut out = r.from_client(&call(6, "echo"));
    let waiting = out.reserving.pop().unwrap();
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":6}});
    let out = r.from_client(&serde_json::to_vec(&cancel).unwrap());
    assert!(out.upstream.is_none() && out.client.is_empty());
    assert!(r.reserved(&waiting.key, Ok(Vec::new())).is_none());
}
