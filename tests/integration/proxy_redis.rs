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
