//! Shared proxy state (`--state redis://…`) against a real `redis-server` that each test starts on its own
//! free loopback port, and real proxy processes in front of the python fixture server.

use serde_json::{Value, json};

use super::{
    ECHO_10_A_DAY, HttpProxy, StdioProxy, allowed, calls_received, server_args, strs, text,
    thirty_two_concurrent_callers_get_exactly_ten,
};
use crate::util::Env;

use crate::test_redis::RedisServer;

fn audit(env: &Env) -> Vec<Value> {
    let text = std::fs::read_to_string(env.path("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn two_proxies_sharing_redis_admit_exactly_the_limit_under_32_concurrent_callers() {
    let env = Env::new();
    let redis = RedisServer::start();
    let url = redis.url.clone();
    let mut args = vec!["--state", url.as_str(), "--state-prefix", "twin"];
    let server = server_args();
    args.extend(strs(&server));
    let a = HttpProxy::start(&env, "a", ECHO_10_A_DAY, &args);
    let b = HttpProxy::start(&env, "b", ECHO_10_A_DAY, &args);
    thirty_two_concurrent_callers_get_exactly_ten(&env, &[&a.url, &b.url]);
}

#[test]
fn redis_stopped_mid_test_refuses_limited_calls_and_recovers_when_it_returns() {
    let env = Env::new();
    let mut redis = RedisServer::start();
    let url = redis.url.clone();
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":2,"scope":"global"}]}}}"#;
    let mut proxy = StdioProxy::start(&env, policy, &["--state", &url, "--audit", "audit.jsonl"]);
    assert!(allowed(&proxy.call("echo", json!({"i": 1}))));
    redis.stop();
    let refused = proxy.call("echo", json!({"i": 2}));
    let reason = text(&refused);
    assert!(
        reason.starts_with("Refused by toolwarden: rate-limit state unavailable: ")
            && reason.ends_with("; refusing (state-failure closed)"),
        "{refused}"
    );
    // A tool without limits does not need the shared state.
    assert_eq!(text(&proxy.call("fail", json!({}))), "failed on purpose");
    // Back on the same port (empty: it keeps nothing on disk): calls are counted again, up to the limit.
    redis.resume();
    assert!(allowed(&proxy.call("echo", json!({"i": 3}))));
    assert!(allowed(&proxy.call("echo", json!({"i": 4}))));
    assert!(text(&proxy.call("echo", json!({"i": 5}))).contains("limit `echo_total` reached: 2 of 2 per day"));
    let (ok, _) = proxy.finish();
    assert!(ok);
    assert_eq!(calls_received(&env), ["echo", "fail", "echo", "echo"]);
    let records = audit(&env);
    let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_eq!(events, ["state_unavailable", "state_recovered"], "{records:?}");
    let denied = records.iter().find(|r| r["rule"] == json!("state")).expect("the refusal is audited");
    assert_eq!(denied["decision"], json!("deny"));
    assert!(denied["reason"].as_str().unwrap().contains("state-failure closed"));
}

#[test]
fn counters_survive_a_proxy_restart() {
    let env = Env::new();
    let redis = RedisServer::start();
    let url = redis.url.clone();
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":3,"scope":"global"}]}}}"#;
    let mut first = StdioProxy::start(&env, policy, &["--state", &url]);
    assert!(allowed(&first.call("echo", json!({"i": 1}))));
    assert!(allowed(&first.call("echo", json!({"i": 2}))));
    let (ok, _) = first.finish();
    assert!(ok);
    let mut second = StdioProxy::start(&env, policy, &["--state", &url]);
    assert!(allowed(&second.call("echo", json!({"i": 3}))));
    let refused = second.call("echo", json!({"i": 4}));
    assert!(text(&refused).contains("limit `echo_total` reached: 3 of 3 per day"), "{refused}");
    // Another deployment (prefix) on the same Redis counts on its own.
    drop(second);
    let mut other = StdioProxy::start(&env, policy, &["--state", &url, "--state-prefix", "staging"]);
    assert!(allowed(&other.call("echo", json!({"i": 5}))));
}

#[test]
fn state_failure_open_allows_uncounted_and_says_so() {
    let env = Env::new();
    let mut redis = RedisServer::start();
    let url = redis.url.clone();
    redis.stop();
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":1,"scope":"global"}]}}}"#;
    let args = ["--state", &url, "--state-failure", "open", "--audit", "audit.jsonl"];
    let mut proxy = StdioProxy::start(&env, policy, &args);
    for i in 0..3 {
        assert!(allowed(&proxy.call("echo", json!({"i": i}))));
    }
    let (ok, stderr) = proxy.finish();
    assert!(ok);
    assert!(stderr.contains("allowing uncounted (state-failure open)"), "{stderr}");
    assert_eq!(calls_received(&env).len(), 3);
    let records = audit(&env);
    let warnings = records.iter().filter(|r| r["event"] == json!("state_unavailable")).count();
    assert_eq!(warnings, 3, "{records:?}");
}

#[test]
fn state_flags_are_checked() {
    let env = Env::new();
    env.write("p.json", r#"{"version":"1","default":"allow"}"#);
    let out = env.run(["proxy", "--policy", "p.json", "--state", "http://127.0.0.1:1/", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected redis://HOST:PORT/DB"));
    let out = env.run(["proxy", "--policy", "p.json", "--state-failure", "open", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--state-failure needs --state");
}

const APPROVE_ECHO: &str = r#"{"version": "1", "default": "allow",
  "tools": {"echo": {"action": "approve", "reason": "echo needs a person"}}}"#;

/// `approvals list --state URL [--state-prefix PREFIX] [--all]` from `host` (its own data dir), as JSON.
fn shared_list(host: &Env, url: &str, prefix: Option<&str>, all: bool) -> Vec<Value> {
    let data = host.data_dir();
    let mut args = vec!["--data-dir", data.to_str().unwrap(), "approvals", "list", "--state", url];
    args.extend(prefix.map(|p| ["--state-prefix", p]).into_iter().flatten());
    args.extend(all.then_some("--all"));
    args.extend(["--format", "json"]);
    host.json(args).as_array().unwrap().clone()
}

/// The calls pending in the shared queue (prefix `shared`) as seen from `host`, once `n` wait (bounded).
fn shared_pending(host: &Env, url: &str, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let rows = shared_list(host, url, Some("shared"), false);
        if rows.len() >= n {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no call waits in the shared queue");
}

#[test]
fn calls_held_by_two_proxies_on_two_hosts_are_decided_from_a_third_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url.clone();
    let (host_a, host_b, host_c) = (Env::new(), Env::new(), Env::new());
    let args = ["--state", url.as_str(), "--state-prefix", "shared", "--approval-timeout", "60"];
    let mut a = StdioProxy::start(&host_a, APPROVE_ECHO, &args);
    let mut b = StdioProxy::start(&host_b, APPROVE_ECHO, &args);
    let data_c = host_c.data_dir();
    let decide = |verb: &str, id: &str, extra: &[&str]| {
        let mut argv = vec!["--data-dir", data_c.to_str().unwrap(), "approvals", verb, id, "--state", &url];
        argv.extend(["--state-prefix", "shared"]);
        argv.extend(extra);
        host_c.ok(argv)
    };

    // Held by A, approved from C.
    let call = a.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let rows = shared_pending(&host_c, &url, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["tool"], json!("echo"));
    assert_eq!(rows[0]["arguments"], json!({"n": 1}));
    assert_eq!(rows[0]["status"], json!("pending"));
    assert!(rows[0]["requested_at"].as_str().unwrap().ends_with('Z'));
    assert!(rows[0]["id"].is_i64());
    assert!(calls_received(&host_a).is_empty());
    decide("approve", &rows[0]["id"].to_string(), &["--as", "alice"]);
    let (answer, _) = a.answer(call);
    assert_eq!(text(&answer), r#"{"n": 1}"#, "{answer}");
    assert_eq!(calls_received(&host_a), ["echo"]);

    // Held by B, denied from C.
    let call = b.send("tools/call", json!({"name": "echo", "arguments": {"n": 2}}));
    let rows = shared_pending(&host_c, &url, 1);
    let id = rows[0]["id"].to_string();
    decide("deny", &id, &["--reason", "not today", "--as", "bob"]);
    let (answer, _) = b.answer(call);
    assert_eq!(text(&answer), "Refused by toolwarden: denied by bob: not today");
    assert!(calls_received(&host_b).is_empty());
    // Decided once: a second decision is refused, from any host.
    let mut argv = vec!["--data-dir", data_c.to_str().unwrap(), "approvals", "approve", &id, "--state", &url];
    argv.extend(["--state-prefix", "shared"]);
    let again = host_c.run(&argv);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no longer pending (it is denied)"));

    // Each proxy recorded its call in its own host's queue and audit, with the decider.
    let local_a = host_a.json(["approvals", "list", "--all", "--format", "json"]);
    assert_eq!(local_a[0]["status"], json!("approved"));
    assert_eq!(local_a[0]["decided_by"], json!("alice"));
    let local_b = host_b.json(["approvals", "list", "--all", "--format", "json"]);
    assert_eq!(local_b[0]["status"], json!("denied"));
    let denied = host_b.json(["audit", "--decision", "denied", "--format", "json"]);
    assert_eq!(denied[0]["decided_by"], json!("bob"));
    // The shared queue: nothing pending; both decisions listed with --all.
    let all = shared_list(&host_c, &url, Some("shared"), true);
    let statuses: Vec<&str> = all.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["approved", "denied"]);
    // Another deployment's prefix sees none of it; the third host's own queue is empty.
    assert_eq!(shared_list(&host_c, &url, None, true), Vec::<Value>::new());
    let data = data_c.to_str().unwrap();
    assert_eq!(host_c.json(["--data-dir", data, "approvals", "list", "--all", "--format", "json"]), json!([]));

    // A standing approval given from C (--for) admits the same call on the other host without asking.
    let call = a.send("tools/call", json!({"name": "echo", "arguments": {"n": 3}}));
    let id = shared_pending(&host_c, &url, 1)[0]["id"].to_string();
    decide("approve", &id, &["--for", "10m", "--as", "carol"]);
    assert_eq!(text(&a.answer(call).0), r#"{"n": 3}"#);
    assert_eq!(text(&b.call("echo", json!({"n": 3}))), r#"{"n": 3}"#);
    assert_eq!(calls_received(&host_b), ["echo"]);
    assert_eq!(
        shared_list(&host_c, &url, Some("shared"), false),
        Vec::<Value>::new(),
        "the standing approval queued nothing"
    );
}

#[test]
fn a_call_held_through_redis_can_still_be_decided_on_its_own_host_and_times_out_everywhere() {
    let redis = RedisServer::start();
    let url = redis.url.clone();
    let (host, other) = (Env::new(), Env::new());
    let args = ["--state", url.as_str(), "--state-prefix", "shared", "--approval-timeout", "60"];
    let mut proxy = StdioProxy::start(&host, APPROVE_ECHO, &args);
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let shared_id = shared_pending(&other, &url, 1)[0]["id"].clone();
    // Decided in the local queue (the local id), as without Redis.
    let local = host.json(["approvals", "list", "--format", "json"]);
    host.ok(["approvals", "approve", &local[0]["id"].to_string(), "--as", "dave"]);
    assert_eq!(text(&proxy.answer(call).0), r#"{"n": 1}"#);
    // The shared queue learns how it ended.
    let all = shared_list(&other, &url, Some("shared"), true);
    assert_eq!(all[0]["id"], shared_id);
    assert_eq!(all[0]["status"], json!("approved"));
    assert_eq!(all[0]["decided_by"], json!("dave"));
    drop(proxy);

    let short = ["--state", url.as_str(), "--state-prefix", "shared", "--approval-timeout", "0.5"];
    let mut proxy = StdioProxy::start(&host, APPROVE_ECHO, &short);
    let answer = proxy.call("echo", json!({"n": 2}));
    assert_eq!(text(&answer), "Refused by toolwarden: no one approved within 0.5 s");
    let all = shared_list(&other, &url, Some("shared"), true);
    assert_eq!(all[1]["status"], json!("timed_out"), "{all:?}");
}

#[test]
fn with_redis_down_a_held_call_is_still_decided_on_its_own_host() {
    let mut redis = RedisServer::start();
    let url = redis.url.clone();
    redis.stop();
    let host = Env::new();
    let args = ["--state", url.as_str(), "--approval-timeout", "60"];
    let mut proxy = StdioProxy::start(&host, APPROVE_ECHO, &args);
    let call = proxy.send("tools/call", json!({"name": "echo", "arguments": {"n": 1}}));
    let mut local = json!([]);
    for _ in 0..400 {
        local = host.json(["approvals", "list", "--format", "json"]);
        if !local.as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    host.ok(["approvals", "approve", &local[0]["id"].to_string(), "--as", "erin"]);
    assert_eq!(text(&proxy.answer(call).0), r#"{"n": 1}"#);
    let (ok, stderr) = proxy.finish();
    assert!(ok);
    assert!(stderr.contains("can only be approved on this host"), "{stderr}");
    // The shared queue cannot be read while Redis is down: a clear error, exit 2.
    let out = host.run(["approvals", "list", "--state", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("approval queue in Redis"));
}
