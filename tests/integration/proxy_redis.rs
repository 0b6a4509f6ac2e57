//! Shared proxy state (`--state redis://…`) against a real `redis-server` that each test starts on its own
//! free loopback port, and real proxy processes in front of the python fixture server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{HttpProxy, McpHttp, StdioProxy, calls_received, runtime, server_args, strs, text};
use crate::util::Env;

/// A private `redis-server`, killed on drop; `stop` and `start` again keep its port.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn new() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Redis { child: None, port, dir: tempfile::tempdir().unwrap() };
        redis.start();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn start(&mut self) {
        let program = std::env::var("TOOLWARDEN_TEST_REDIS_SERVER")
            .expect("TOOLWARDEN_TEST_REDIS_SERVER is not set: run the tests through scripts/test");
        let child = Command::new(program)
            .args(["--port", &self.port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Bounded wait until it answers PING (it starts in milliseconds).
        for _ in 0..400 {
            if self.ping() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn audit(env: &Env) -> Vec<Value> {
    let text = std::fs::read_to_string(env.path("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn allowed(result: &Value) -> bool {
    result["result"]["isError"] == json!(false)
}

#[test]
fn two_proxies_sharing_redis_admit_exactly_the_limit_under_32_concurrent_callers() {
    let env = Env::new();
    let redis = Redis::new();
    let url = redis.url();
    let policy = r#"{"version":"1","default":"allow",
      "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":10,"scope":"global"}]}}}"#;
    let mut args = vec!["--state", url.as_str(), "--state-prefix", "twin"];
    let server = server_args();
    args.extend(strs(&server));
    let a = HttpProxy::start(&env, "a", policy, &args);
    let b = HttpProxy::start(&env, "b", policy, &args);
    let results: Vec<Value> = runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..32 {
            let mut client = McpHttp::new(if i % 2 == 0 { &a.url } else { &b.url }, None);
            client.initialize().await;
            clients.push(client);
        }
        let calls = clients.iter().enumerate().map(|(i, c)| c.call(i as u64 + 1, "echo"));
        futures_util::future::join_all(calls).await
    });
    let admitted = results.iter().filter(|r| allowed(r)).count();
    let refused = results.iter().filter(|r| text(r).contains("limit `echo_total` reached")).count();
    assert_eq!((admitted, refused), (10, 22), "{results:?}");
    assert_eq!(calls_received(&env).len(), 10);
}

#[test]
fn redis_stopped_mid_test_refuses_limited_calls_and_recovers_when_it_returns() {
    let env = Env::new();
    let mut redis = Redis::new();
    let url = redis.url();
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
    redis.start();
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
    let redis = Redis::new();
    let url = redis.url();
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
    let mut redis = Redis::new();
    let url = redis.url();
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

/// `approvals list --state …` from a host of its own, until `n` calls wait (bounded).
fn shared_pending(host: &Env, url: &str, n: usize) -> Vec<Value> {
    let data = host.data_dir();
    let args = ["--data-dir", data.to_str().unwrap(), "approvals", "list", "--state", url, "--state-prefix", "shared"];
    for _ in 0..400 {
        let rows = host.json(args.iter().copied().chain(["--format", "json"]));
        if rows.as_array().unwrap().len() >= n {
            return rows.as_array().unwrap().clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no call waits in the shared queue");
}

#[test]
fn calls_held_by_two_proxies_on_two_hosts_are_decided_from_a_third_through_redis() {
    let redis = Redis::new();
    let url = redis.url();
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
    let data = data_c.to_str().unwrap();
    let all = host_c.json(
        ["--data-dir", data, "approvals", "list", "--all", "--state", &url, "--state-prefix", "shared"]
            .into_iter()
            .chain(["--format", "json"]),
    );
    let statuses: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["approved", "denied"]);
    // Another deployment's prefix sees none of it; the third host's own queue is empty.
    let other = host_c.json(["--data-dir", data, "approvals", "list", "--all", "--state", &url, "--format", "json"]);
    assert_eq!(other, json!([]));
    assert_eq!(host_c.json(["--data-dir", data, "approvals", "list", "--all", "--format", "json"]), json!([]));

    // A standing approval given from C (--for) admits the same call on the other host without asking.
    let call = a.send("tools/call", json!({"name": "echo", "arguments": {"n": 3}}));
    let id = shared_pending(&host_c, &url, 1)[0]["id"].to_string();
    decide("approve", &id, &["--for", "10m", "--as", "carol"]);
    assert_eq!(text(&a.answer(call).0), r#"{"n": 3}"#);
    assert_eq!(text(&b.call("echo", json!({"n": 3}))), r#"{"n": 3}"#);
    assert_eq!(calls_received(&host_b), ["echo"]);
    let pending_now = host_c.json(
        ["--data-dir", data, "approvals", "list", "--state", &url, "--state-prefix", "shared"]
            .into_iter()
            .chain(["--format", "json"]),
    );
    assert_eq!(pending_now, json!([]), "the standing approval queued nothing");
}

#[test]
fn a_call_held_through_redis_can_still_be_decided_on_its_own_host_and_times_out_everywhere() {
    let redis = Redis::new();
    let url = redis.url();
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
    let data = other.data_dir();
    let all = other.json(
        ["--data-dir", data.to_str().unwrap(), "approvals", "list", "--all", "--state", &url].into_iter().chain([
            "--state-prefix",
            "shared",
            "--format",
            "json",
        ]),
    );
    assert_eq!(all[0]["id"], shared_id);
    assert_eq!(all[0]["status"], json!("approved"));
    assert_eq!(all[0]["decided_by"], json!("dave"));
    drop(proxy);

    let short = ["--state", url.as_str(), "--state-prefix", "shared", "--approval-timeout", "0.5"];
    let mut proxy = StdioProxy::start(&host, APPROVE_ECHO, &short);
    let answer = proxy.call("echo", json!({"n": 2}));
    assert_eq!(text(&answer), "Refused by toolwarden: no one approved within 0.5 s");
    let all = other.json(
        ["--data-dir", data.to_str().unwrap(), "approvals", "list", "--all", "--state", &url].into_iter().chain([
            "--state-prefix",
            "shared",
            "--format",
            "json",
        ]),
    );
    assert_eq!(all[1]["status"], json!("timed_out"), "{all}");
}

#[test]
fn with_redis_down_a_held_call_is_still_decided_on_its_own_host() {
    let mut redis = Redis::new();
    let url = redis.url();
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
