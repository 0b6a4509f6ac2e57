//! The relay's side of approvals and pins: held calls, the client's answers to our own requests, and listed
//! tools checked against a pin.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::policy;
use crate::proxy::counters::MemoryCounters;
use crate::proxy::policy_gate::PolicyGate;

const POLICY: &str = r#"{"version":"1","default":"allow",
    "tools":{"drop":{"action":"approve","reason":"a person decides"}}}"#;

fn relay(approvals: bool) -> Relay {
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None).with_approvals(approvals);
    super::tests::list(&r, &["drop", "echo"]);
    r
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn call(id: Value, tool: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"t":1}}}),
    )
    .unwrap()
}

#[test]
fn without_approvals_an_approve_verdict_is_refused() {
    let out = relay(false).from_client(&call(json!(1), "drop"));
    assert!(out.upstream.is_none() && out.held.is_empty());
    assert_eq!(parse(&out.client[0].bytes)["result"]["isError"], json!(true));
}

#[test]
fn a_held_call_is_forwarded_once_approved_and_its_id_stays_taken() {
    let r = relay(true);
    let out = r.from_client(&call(json!(1), "drop"));
    assert!(out.upstream.is_none() && out.client.is_empty());
    let held = &out.held[0];
    assert_eq!((held.call.tool.as_str(), held.reason.as_str()), ("drop", "a person decides"));
    assert!(r.is_held(&held.key));
    // A second request reusing the id while the first waits is refused.
    let dup = r.from_client(&call(json!(1), "other"));
    assert_eq!(parse(&dup.client[0].bytes)["error"]["code"], json!(-32600));
    let Some(Approved::Forward(bytes, _)) = r.approved(&held.key, "alice") else { panic!("not forwarded") };
    assert_eq!(parse(&bytes)["params"]["name"], json!("drop"));
    assert!(!r.is_held(&held.key) && r.approved(&held.key, "alice").is_none(), "approved once");
    let answer = r.from_upstream(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#).unwrap();
    assert_eq!(answer.answers, std::slice::from_ref(&held.key));
}

#[test]
fn an_approved_call_is_charged_against_its_limits_and_a_refused_approval_is_not() {
    let policy = r#"{"version":"1","default":"allow","tools":{"drop":{"action":"approve","reason":"a person decides",
        "limits":[{"counter":"drops","window":"day","max":1,"scope":"global"}]}}}"#;
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, policy)).unwrap();
    let counters = Arc::new(MemoryCounters::new());
    let gate = PolicyGate::new(compiled, Arc::clone(&counters) as Arc<dyn crate::proxy::counters::CounterStore>);
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None).with_approvals(true);
    super::tests::list(&r, &["drop"]);
    let used = || counters.used("drops|global", crate::proxy::counters::Window::Day, crate::proxy::counters::now());
    // Held and refused: nothing counted.
    let held = r.from_client(&call(json!(1), "drop")).held.remove(0);
    assert_eq!(used(), 0.0, "a held call is not counted yet");
    r.refuse_held(&held.key, "denied", "no", Some("bob")).unwrap();
    assert_eq!(used(), 0.0, "a refused approval uses no limit");
    // Approved: counted, forwarded.
    let held = r.from_client(&call(json!(2), "drop")).held.remove(0);
    assert!(matches!(r.approved(&held.key, "alice"), Some(Approved::Forward(..))));
    assert_eq!(used(), 1.0);
    r.from_upstream(br#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#).unwrap();
    // Approved again: the limit is reached, so the call is refused with the limit's reason and its id freed.
    let held = r.from_client(&call(json!(3), "drop")).held.remove(0);
    let Some(Approved::Refused(answer)) = r.approved(&held.key, "alice") else { panic!("the limit was not applied") };
    let answer = parse(&answer.bytes);
    assert_eq!(answer["id"], json!(3));
    assert_eq!(answer["result"]["isError"], json!(true));
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("limit `drops` reached"), "{text}");
    assert_eq!(r.in_flight(), 0);
    assert_eq!(used(), 1.0);
}

#[test]
fn a_refused_held_call_is_answered_with_the_reason_and_never_forwarded() {
    let r = relay(true);
    let held = r.from_client(&call(json!("a"), "drop")).held.remove(0);
    let answer = r.refuse_held(&held.key, "denied", "denied by bob", Some("bob")).unwrap();
    let answer = parse(&answer.bytes);
    assert_eq!(answer["id"], json!("a"));
    assert_eq!(answer["result"]["content"][0]["text"], json!("Refused by toolwarden: denied by bob"));
    assert!(r.approved(&held.key, "x").is_none() && r.in_flight() == 0);
}

#[test]
fn the_clients_answers_to_our_elicitations_are_taken_not_forwarded() {
    let r = relay(true);
    let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{"elicitation":{}}}}"#;
    r.from_client(init);
    assert!(r.client_elicits());
    let (request, _key, mut rx) = r.elicitation(json!({"message": "ok?"}));
    let id = parse(&request)["id"].clone();
    assert!(id.as_str().unwrap().starts_with("toolwarden-elicit-"));
    let reply = json!({"jsonrpc":"2.0","id":id,"result":{"action":"decline"}});
    let out = r.from_client(&serde_json::to_vec(&reply).unwrap());
    assert!(out.upstream.is_none(), "our answer must not reach the server");
    assert_eq!(rx.try_recv().unwrap()["result"]["action"], json!("decline"));
    // Answers to ids this relay does not wait for (the server's requests, a proxy further along) pass.
    let theirs = br#"{"jsonrpc":"2.0","id":"elicit-1","result":{"action":"accept"}}"#;
    assert!(r.from_client(theirs).upstream.is_some());
    let plain = relay(true);
    plain.from_client(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{}}}"#);
    assert!(!plain.client_elicits());
}

#[test]
fn a_pin_hides_changed_and_new_tools_and_refuses_their_calls() {
    let a = json!({"name": "a", "description": "one", "inputSchema": {"type": "object"}});
    let tool: crate::model::Tool = serde_json::from_value(a.clone()).unwrap();
    let pinned = [("a".to_string(), crate::model::fingerprint(&tool)), ("b".to_string(), "0".repeat(64))].into();
    let compiled = policy::load(&policy::Source::new(policy::Syntax::Json, POLICY)).unwrap();
    let gate = PolicyGate::new(compiled, Arc::new(MemoryCounters::new()));
    let r = Relay::new(Arc::new(gate), Arc::new(Audit::disabled()), "s".into(), None)
        .with_pinned(Some(Arc::new(Pinned::new("srv".into(), pinned))));
    // Before any listing a call waits for the proxy's own listing, which checks the definitions against the pin.
    let own = r.from_client(&call(json!(9), "a")).own.pop().expect("the proxy lists the tools first");
    let listed = json!({"jsonrpc":"2.0","id":parse(&own.message.bytes)["id"],"result":{"tools":[a]}});
    assert!(r.from_upstream(&serde_json::to_vec(&listed).unwrap()).is_none());
    let again = r.take_queued().again;
    assert!(r.from_client(&again[0]).upstream.is_some(), "the pinned definition was listed: the call goes on");
    r.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let list =
        json!({"jsonrpc":"2.0","id":1,"result":{"tools":[a, {"name":"b","description":"changed"}, {"name":"c"}]}});
    let shown = parse(&r.from_upstream(&serde_json::to_vec(&list).unwrap()).unwrap().bytes);
    assert_eq!(shown["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(shown["result"]["tools"][0]["name"], json!("a"));
    let text =
        |out: FromClient| parse(&out.client[0].bytes)["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text(r.from_client(&call(json!(2), "b"))).contains("changed since it was pinned"));
    assert!(text(r.from_client(&call(json!(3), "c"))).contains("not among the tools pinned"));
    assert!(r.from_client(&call(json!(4), "a")).upstream.is_some());
}

fn cancelled(id: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":id}})).unwrap()
}

#[test]
fn a_cancelled_held_call_is_withdrawn_and_never_forwarded() {
    let r = relay(true);
    let out = r.from_client(&call(json!(5), "drop"));
    assert_eq!(out.held.len(), 1);
    let key = out.held[0].key.clone();
    // The upstream never saw the call, so it is not told about the cancellation either.
    let out = r.from_client(&cancelled(json!(5)));
    assert!(out.upstream.is_none() && out.client.is_empty(), "{out:?}");
    assert!(!r.is_held(&key));
    assert!(r.approved(&key, "alice").is_none(), "a later approval forwards nothing");
    // The id is free again; a cancellation of a forwarded call still goes upstream.
    let out = r.from_client(&call(json!(5), "echo"));
    assert!(out.upstream.is_some());
    assert!(r.from_client(&cancelled(json!(5))).upstream.is_some());
}
