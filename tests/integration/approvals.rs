//! Human approval through the real proxy: the SQLite queue decided from a second process (approve, deny,
//! timeout, restart), MCP elicitation answered by a real client, the audit table, and `--require-pinned`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::proxy::{HttpProxy, StdioProxy, calls_received, server_args, strs, text};
use crate::util::{Env, fixture};

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

const APPROVE_ECHO: &str = r#"{"version": "1", "default": "allow",
  "tools": {"echo": {"action": "approve", "reason": "echo needs a person"}}}"#;

/// Wait until the queue holds `n` pending calls (as a second process sees it); return them.
fn pending(env: &Env, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let list = env.json(["approvals", "list", "--format", "json"]);
        let rows = list.as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        assert!(started.elapsed() < PATIENCE, "no pending approval appeared: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_rows(env: &Env) -> Vec<Value> {
    env.json(["approvals", "list", "--all", "--format", "json"]).as_array().unwrap().clone()
}

#[test]
fn a_queued_call_runs_only_after_a_person_approves_and_a_denied_one_never() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, APPROVE_ECHO, &["--approval-timeout", "60"]);
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let rows = pending(&env, 1);
    assert_eq!(rows[0]["tool"], json!("echo"));
    assert_eq!(rows[0]["arguments"], json!({"n": 1}));
    assert_eq!(rows[0]["status"], json!("pending"));
    assert_eq!(rows[0]["reason"], json!("echo needs a person"));
    assert!(rows[0]["requested_at"].as_str().unwrap().ends_with('Z'));
    // While the call waits, the session keeps flowing, and nothing reached the server.
    assert!(proxy.request("ping", json!({})).get("result").is_some());
    assert!(calls_received(&env).is_empty());
    let id = rows[0]["id"].to_string();
    let table = env.ok(["approvals", "list"]);
    assert!(table.contains("echo") && table.contains("pending"), "{table}");
    env.ok(["approvals", "approve", &id, "--as", "alice"]);
    let (answer, _) = proxy.answer(call);
    assert_eq!(text(&answer), r#"{"n": 1}"#, "{answer}");
    assert_eq!(calls_received(&env), ["echo"]);

    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 2}}));
    let id = pending(&env, 1)[0]["id"].to_string();
    env.ok(["approvals", "deny", &id, "--reason", "not today", "--as", "bob"]);
    let (answer, _) = proxy.answer(call);
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    assert_eq!(text(&answer), "Refused by toolwarden: denied by bob: not today");
    assert_eq!(calls_received(&env), ["echo"], "the denied call never reached the server");
    // A decided call cannot be decided again.
    let again = env.run(["approvals", "approve", &id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no longer pending (it is denied)"));
    let (ok, stderr) = proxy.finish();
    assert!(ok, "{stderr}");

    // Approvals and their deciders are in the audit table.
    let approved = env.json(["audit", "--decision", "approved", "--format", "json"]);
    assert_eq!(approved.as_array().unwrap().len(), 1, "{approved}");
    assert_eq!(approved[0]["decided_by"], json!("alice"));
    let denied = env.json(["audit", "--tool", "echo", "--decision", "denied", "--format", "json"]);
    assert_eq!(denied[0]["decided_by"], json!("bob"));
    assert_eq!(denied[0]["reason"], json!("denied by bob: not today"));
    let allowed = env.json(["audit", "--decision", "allow", "--format", "json"]);
    assert_eq!(allowed[0]["outcome"], json!("ok"), "the approved call ran: {allowed}");
}

#[test]
fn a_call_nobody_approves_is_refused_at_the_timeout() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, APPROVE_ECHO, &["--approval-timeout", "0.5"]);
    let answer = proxy.call("echo", json!({}));
    assert_eq!(text(&answer), "Refused by toolwarden: no one approved within 0.5 s", "{answer}");
    assert!(calls_received(&env).is_empty());
    let rows = all_rows(&env);
    assert_eq!(rows[0]["status"], json!("timed_out"));
    let late = env.run(["approvals", "approve", &rows[0]["id"].to_string()]);
    assert_eq!(late.status.code(), Some(2), "a timed-out call cannot be approved afterwards");
}

#[test]
fn pending_approvals_of_a_stopped_proxy_expire_and_are_never_approved() {
    let env = Env::new();
    let mut first = StdioProxy::start(&env, APPROVE_ECHO, &[]);
    first.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let id = pending(&env, 1)[0]["id"].to_string();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    // The row outlives its proxy as pending until a proxy starts again.
    assert_eq!(all_rows(&env)[0]["status"], json!("pending"));
    let mut second = StdioProxy::start(&env, APPROVE_ECHO, &[]);
    let rows = all_rows(&env);
    assert_eq!(rows[0]["status"], json!("expired"), "{rows:?}");
    let out = env.run(["approvals", "approve", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer pending (it is expired)"));
    assert!(second.request("ping", json!({})).get("result").is_some());
    assert!(calls_received(&env).is_empty());
}

#[test]
fn approve_for_admits_the_same_arguments_for_a_while_and_no_others() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, APPROVE_ECHO, &["--approval-timeout", "30", "--approve-for", "10m"]);
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let id = pending(&env, 1)[0]["id"].to_string();
    env.ok(["approvals", "approve", &id, "--as", "alice"]);
    proxy.answer(call);
    // Same tool, same arguments (another key order): no new request.
    let again = proxy.call("echo", json!({"n": 1}));
    assert_eq!(text(&again), r#"{"n": 1}"#);
    assert_eq!(all_rows(&env).len(), 1);
    // Other arguments wait for a person again.
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 2}}));
    let row = pending(&env, 1);
    assert_eq!(row[0]["arguments"], json!({"n": 2}));
    env.ok(["approvals", "deny", &row[0]["id"].to_string()]);
    assert_eq!(proxy.answer(call).0["result"]["isError"], json!(true));
    assert_eq!(calls_received(&env), ["echo", "echo"]);
}

#[test]
fn approved_calls_are_charged_against_the_tools_limits() {
    let env = Env::new();
    let policy = r#"{"version": "1", "default": "allow",
      "tools": {"echo": {"action": "approve", "reason": "echo needs a person",
                         "limits": [{"counter": "echo_rate", "window": "hour", "max": 1, "scope": "global"}]}}}"#;
    // Not a timing assertion: the hour must not roll over between the two approved calls.
    let into_hour = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 3600;
    if into_hour > 3600 - 30 {
        std::thread::sleep(Duration::from_secs(3600 - into_hour + 1));
    }
    let mut proxy = StdioProxy::start(&env, policy, &["--approval-timeout", "60"]);
    // A denied approval uses no limit.
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 0}}));
    env.ok(["approvals", "deny", &pending(&env, 1)[0]["id"].to_string()]);
    assert_eq!(proxy.answer(call).0["result"]["isError"], json!(true));
    let mut answers = Vec::new();
    for n in 1..=2 {
        let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": n}}));
        env.ok(["approvals", "approve", &pending(&env, 1)[0]["id"].to_string(), "--as", "alice"]);
        answers.push(proxy.answer(call).0);
    }
    assert_eq!(text(&answers[0]), r#"{"n": 1}"#);
    assert_eq!(answers[1]["result"]["isError"], json!(true), "{}", answers[1]);
    assert_eq!(text(&answers[1]), "Refused by toolwarden: limit `echo_rate` reached: 1 of 1 per hour used");
    assert_eq!(calls_received(&env), ["echo"], "the upstream saw one call");
    let (ok, stderr) = proxy.finish();
    assert!(ok, "{stderr}");
    let denied = env.json(["audit", "--decision", "deny", "--format", "json"]);
    assert_eq!(denied[0]["rule"], json!("limits"), "{denied}");
    let approved = env.json(["audit", "--decision", "approved", "--format", "json"]);
    assert_eq!(approved.as_array().unwrap().len(), 2, "{approved}");
}

/// Over Streamable HTTP: a stdio proxy allowing everything in front of an HTTP proxy that wants approval.
#[test]
fn approvals_over_the_http_frontend_queue_and_elicitation() {
    let env = Env::new();
    let inner = HttpProxy::start(&env, "inner", APPROVE_ECHO, &strs(&server_args()));
    let allow = r#"{"version": "1", "default": "allow"}"#;
    // A client without elicitation: the inner proxy queues the call.
    let mut proxy = StdioProxy::start_caps(&env, allow, &["--upstream", &inner.url], true, json!({}));
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let id = pending(&env, 1)[0]["id"].to_string();
    env.ok(["approvals", "approve", &id]);
    assert_eq!(text(&proxy.answer(call).0), r#"{"n": 1}"#);
    drop(proxy);
    // A client with elicitation: the request crosses the outer proxy, and so does the answer.
    let mut proxy = StdioProxy::start_caps(&env, allow, &["--upstream", &inner.url], true, json!({"elicitation": {}}));
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 2}}));
    let ask = proxy.recv();
    assert_eq!(ask["method"], json!("elicitation/create"), "{ask}");
    proxy.send_raw(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "decline"}}).to_string());
    let (answer, _) = proxy.answer(call);
    assert_eq!(text(&answer), "Refused by toolwarden: the user declined the call");
    assert_eq!(calls_received(&env), ["echo"]);
}

/// The python client declares elicitation and answers with `action`; returns what it printed.
fn elicit(env: &Env, action: &str) -> Value {
    let policy = env.write("policy.json", APPROVE_ECHO);
    let out = Command::new("python3")
        .arg(fixture("approvals/elicit_client.py"))
        .arg(action)
        .arg("echo")
        .arg(assert_cmd::cargo::cargo_bin("toolwarden"))
        .args(["proxy", "--approval-timeout", "30", "--policy"])
        .arg(&policy)
        .args(server_args())
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .env("CALL_LOG", env.path("calls.log"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_client_with_elicitation_asks_its_user_accept_forwards_the_call() {
    let env = Env::new();
    let out = elicit(&env, "accept");
    let message = out["elicitation"]["message"].as_str().unwrap();
    assert!(message.contains("`echo`") && message.contains(r#"{"n":1}"#) && message.contains("echo needs a person"));
    assert_eq!(out["elicitation"]["requestedSchema"]["properties"]["approve"]["type"], json!("boolean"));
    assert!(out["ping"].get("result").is_some());
    assert_eq!(text(&out["result"]), r#"{"n": 1}"#, "{out}");
    assert_eq!(calls_received(&env), ["echo"]);
    assert!(all_rows(&env).is_empty(), "elicitation does not use the queue");
    let approved = env.json(["audit", "--decision", "approved", "--format", "json"]);
    assert_eq!(approved[0]["decided_by"], json!("elicitation"));
}

#[test]
fn a_client_with_elicitation_decline_cancel_and_no_are_refusals() {
    for (action, said) in [
        ("decline", "the user declined the call"),
        ("cancel", "the user cancelled the approval request"),
        ("reject", "the user did not approve the call"),
        ("error", "the client could not ask its user (no UI)"),
    ] {
        let env = Env::new();
        let out = elicit(&env, action);
        assert_eq!(out["result"]["result"]["isError"], json!(true), "{action}: {out}");
        assert_eq!(text(&out["result"]), format!("Refused by toolwarden: {said}"));
        assert!(calls_received(&env).is_empty(), "{action}");
    }
}

#[test]
fn audit_filters_by_tool_decision_time_and_limit() {
    let env = Env::new();
    let policy = r#"{"version": "1", "default": "allow", "tools": {"nuke": {"action": "deny", "reason": "no"}}}"#;
    let mut proxy = StdioProxy::start(&env, policy, &[]);
    for _ in 0..3 {
        proxy.call("echo", json!({"a": 1}));
    }
    proxy.call("nuke", json!({}));
    let (ok, stderr) = proxy.finish();
    assert!(ok, "{stderr}");
    let all = env.json(["audit", "--format", "json"]);
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
    assert!(all[0]["args"].is_null() && all[0]["args_sha256"].as_str().unwrap().len() == 64, "no raw arguments");
    let denied = env.json(["audit", "--decision", "deny", "--format", "json"]);
    assert_eq!(denied.as_array().unwrap().len(), 1);
    assert_eq!(denied[0]["tool"], json!("nuke"));
    assert_eq!(denied[0]["reason"], json!("no"));
    assert_eq!(env.json(["audit", "--tool", "echo", "--format", "json"]).as_array().unwrap().len(), 3);
    assert_eq!(env.json(["audit", "--since", "1h", "--format", "json"]).as_array().unwrap().len(), 4);
    assert_eq!(env.json(["audit", "--since", "2999-01-01T00:00:00Z", "--format", "json"]), json!([]));
    let last = env.json(["audit", "--limit", "1", "--format", "json"]);
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["tool"], json!("nuke"), "the limit keeps the newest");
    let table = env.ok(["audit", "--tool", "nuke"]);
    assert!(table.contains("nuke") && table.contains("deny"), "{table}");
    let bad = env.run(["audit", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The demo server behind the proxy, pinned while plain; `poisoned` changes `get_customer` and adds tools.
fn demo_proxy(env: &Env, poisoned: bool) -> StdioProxy {
    let bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string();
    let mut extra = vec!["--require-pinned", "shop", "--", bin.as_str(), "demo-server"];
    if poisoned {
        extra.push("--poisoned");
    }
    StdioProxy::start_caps(env, r#"{"version": "1", "default": "allow"}"#, &extra, false, json!({}))
}

fn listed(proxy: &mut StdioProxy) -> Vec<String> {
    let list = proxy.request("tools/list", json!({}));
    list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn require_pinned_hides_and_refuses_tools_that_changed_since_the_pin() {
    let env = Env::new();
    let bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string();
    env.write("servers.json", json!({"mcpServers": {"shop": {"command": bin, "args": ["demo-server"]}}}).to_string());
    // Never pinned: the proxy refuses to start.
    env.ok(["crawl", "--client-config", "servers.json", "--yes"]);
    let policy = env.write("policy.json", r#"{"version": "1", "default": "allow"}"#);
    let out =
        env.run(["proxy", "--policy", policy.to_str().unwrap(), "--require-pinned", "shop", "--", &bin, "demo-server"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never pinned"), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(["pin", "shop"]);

    let mut plain = demo_proxy(&env, false);
    let tools = listed(&mut plain);
    assert_eq!(tools.len(), 15, "{tools:?}");
    assert!(tools.iter().any(|t| t == "get_customer"));
    drop(plain);

    let mut poisoned = demo_proxy(&env, true);
    let tools = listed(&mut poisoned);
    assert_eq!(tools.len(), 14, "the changed tool and the added ones are hidden: {tools:?}");
    assert!(!tools.iter().any(|t| t == "get_customer"));
    let refused = poisoned.call("get_customer", json!({"customer_id": "c1"}));
    assert_eq!(refused["result"]["isError"], json!(true));
    assert!(text(&refused).contains("definition of `get_customer` changed since it was pinned"), "{refused}");
    let unchanged = poisoned.call("list_orders", json!({}));
    assert!(unchanged["result"].get("isError").is_none_or(|e| e == &json!(false)), "{unchanged}");
    let (ok, stderr) = poisoned.finish();
    assert!(ok, "{stderr}");
    let audit = env.json(["audit", "--decision", "deny", "--format", "json"]);
    assert_eq!(audit[0]["rule"], json!("require-pinned"));
}

#[test]
fn a_call_the_client_cancels_while_it_waits_is_never_run() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, APPROVE_ECHO, &["--approval-timeout", "60"]);
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let id = pending(&env, 1)[0]["id"].to_string();
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": call}});
    proxy.send_raw(&cancel.to_string());
    // The queued row closes once the proxy notices (it reads the row every 150 ms): bounded wait, not a timing claim.
    let started = Instant::now();
    while all_rows(&env)[0]["status"] == json!("pending") {
        assert!(started.elapsed() < PATIENCE, "the cancelled call is still pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(all_rows(&env)[0]["status"], json!("expired"));
    let out = env.run(["approvals", "approve", &id]);
    assert_eq!(out.status.code(), Some(2), "a withdrawn call cannot be approved any more");
    // The session goes on, and the server never saw the call.
    assert!(proxy.request("ping", json!({})).get("result").is_some());
    assert!(calls_received(&env).is_empty());
    let (ok, _) = proxy.finish();
    assert!(ok);
    let audit = env.json(["audit", "--tool", "echo", "--format", "json"]);
    let decisions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|r| r["decision"].as_str()).collect();
    assert!(decisions.contains(&"cancelled"), "{audit}");
}
