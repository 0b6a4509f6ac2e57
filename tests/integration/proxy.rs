//! `toolwarden proxy` between a real client (this test, over real pipes or loopback HTTP) and a real server
//! (`tests/fixtures/proxy/server.py`, which logs every tools/call it receives).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Env, fixture};

/// A guard against hangs, not a timing assertion: a healthy exchange takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

struct StdioProxy {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl StdioProxy {
    fn start(env: &Env, policy: &str, extra: &[&str]) -> StdioProxy {
        let policy = env.write("policy.json", policy);
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"));
        cmd.current_dir(env.dir.path())
            .env("TOOLWARDEN_DATA_DIR", env.data_dir())
            .env("CALL_LOG", env.path("calls.log"))
            .arg("proxy")
            .arg("--policy")
            .arg(&policy)
            .args(extra)
            .args(["--", "python3"])
            .arg(fixture("proxy/server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the proxy");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut proxy = StdioProxy { child, stdin, lines, next_id: 100 };
        let init = proxy.request(
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"test","version":"1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], json!("proxy-fixture"), "{init}");
        proxy.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        proxy
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
        id
    }

    fn recv(&mut self) -> Value {
        let line = self.lines.recv_timeout(PATIENCE).expect("the proxy answered");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("proxy wrote a non-JSON line ({e}): {line}"))
    }

    /// Read until the answer to `id`, collecting whatever came before it.
    fn answer(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        self.answer(id).0
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// Close stdin and wait for the exit; returns (success, stderr).
    fn finish(mut self) -> (bool, String) {
        drop(self.stdin.take());
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (self.child.wait().unwrap().success(), stderr)
    }
}

impl Drop for StdioProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const POLICY: &str = r#"{
  "version": "1", "default": "allow", "hide": ["secret"],
  "tools": {
    "nuke": { "action": "deny", "reason": "Destructive: nukes everything" },
    "echo": { "limits": [{ "counter": "echo_per_hour", "window": "hour", "max": 3, "scope": "session" }] }
  }
}"#;

fn calls_received(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("calls.log")).unwrap_or_default().lines().map(String::from).collect()
}

fn text(result: &Value) -> &str {
    result["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {result}"))
}

#[test]
fn hidden_and_denied_tools_are_invisible_over_stdio() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &[]);
    let list = proxy.request("tools/list", json!({}));
    let names: Vec<&str> =
        list["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["echo", "fail", "ask", "hang", "crash", "chatty"]);
}

#[test]
fn denied_calls_are_refused_with_the_reason_and_never_reach_the_server() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &["--audit", "audit.jsonl"]);
    let refused = proxy.call("nuke", json!({"all": true}));
    assert_eq!(refused["result"]["isError"], json!(true));
    assert_eq!(text(&refused), "Refused by toolwarden: Destructive: nukes everything");
    let hidden = proxy.call("secret", json!({}));
    assert!(text(&hidden).starts_with("Refused by toolwarden"), "{hidden}");
    // Exact names only: the server does not know `Nuke`, and no rule is stretched to cover it.
    let other = proxy.call("Nuke", json!({}));
    assert_eq!(text(&other), "no tool Nuke");
    let (ok, _) = proxy.finish();
    assert!(ok);
    assert_eq!(calls_received(&env), ["Nuke"]);
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["decision"], json!("deny"));
    assert_eq!(records[0]["rule"], json!("tools.nuke"));
    assert_eq!(records[0]["args_sha256"].as_str().unwrap().len(), 64);
    assert!(records[0].get("args").is_none(), "raw arguments are not logged by default");
    assert_eq!(records[2]["decision"], json!("allow"));
    assert_eq!(records[2]["outcome"], json!("error"));
    assert!(records[2]["upstream_latency_us"].is_u64());
}

#[test]
fn the_call_after_the_limit_is_refused() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &[]);
    for i in 0..3 {
        let ok = proxy.call("echo", json!({"i": i}));
        assert_eq!(text(&ok), format!("{{\"i\": {i}}}"));
    }
    let refused = proxy.call("echo", json!({"i": 3}));
    assert_eq!(refused["result"]["isError"], json!(true));
    assert!(text(&refused).contains("limit `echo_per_hour|session:"), "{refused}");
    drop(proxy);
    assert_eq!(calls_received(&env).len(), 3);
}

#[test]
fn notifications_and_sampling_requests_are_relayed_both_ways() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &[]);
    let id = proxy.send("tools/call", json!({"name": "echo", "arguments": {}}));
    let (_, before) = proxy.answer(id);
    assert_eq!(
        before,
        [json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"echo called"}})]
    );

    let id = proxy.send("tools/call", json!({"name": "ask", "arguments": {}}));
    let sampling = proxy.recv();
    assert_eq!(sampling["method"], json!("sampling/createMessage"));
    let reply = json!({"jsonrpc":"2.0","id":sampling["id"],"result":{"role":"assistant","model":"m","content":{"type":"text","text":"hello"}}});
    proxy.send_raw(&reply.to_string());
    let (answer, _) = proxy.answer(id);
    assert_eq!(text(&answer), "the client said: hello");
    assert_eq!(proxy.request("ping", json!({}))["result"], json!({}));
    let unknown = proxy.request("resources/list", json!({}));
    assert_eq!(unknown["error"]["message"], json!("no method resources/list"));
}

#[test]
fn garbage_from_either_side_gets_a_parse_error_or_a_log_line() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &[]);
    proxy.send_raw("this is not json {");
    let error = proxy.recv();
    assert_eq!(error["error"]["code"], json!(-32700));
    assert_eq!(error["id"], Value::Null);
    let bad_params = proxy.request("tools/call", json!({"name": ["echo"]}));
    assert_eq!(bad_params["error"]["code"], json!(-32602));
    // The server prints a non-JSON line before answering: logged on stderr, never relayed.
    let chatty = proxy.call("chatty", json!({}));
    assert_eq!(text(&chatty), "chatty done");
    let (ok, stderr) = proxy.finish();
    assert!(ok);
    assert!(stderr.contains("upstream sent a line that is not JSON-RPC"), "{stderr}");
    assert_eq!(calls_received(&env), ["chatty"]);
}

#[test]
fn oversized_messages_are_refused_and_the_stream_goes_on() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &["--max-message", "1000"]);
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":"y".repeat(2000)}}});
    proxy.send_raw(&big.to_string());
    let error = proxy.recv();
    assert_eq!(error["error"]["code"], json!(-32600), "{error}");
    assert_eq!(text(&proxy.call("echo", json!({}))), "{}");
}

#[test]
fn a_hanging_call_times_out_with_an_error() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &["--call-timeout", "0.5"]);
    let answer = proxy.call("hang", json!({}));
    assert_eq!(answer["error"]["code"], json!(-32001), "{answer}");
    // The session is still usable afterwards.
    assert_eq!(text(&proxy.call("echo", json!({}))), "{}");
}

#[test]
fn upstream_killed_mid_call_answers_in_flight_calls_and_exits_with_an_error() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, POLICY, &[]);
    let hang = proxy.send("tools/call", json!({"name": "hang", "arguments": {}}));
    let crash = proxy.send("tools/call", json!({"name": "crash", "arguments": {}}));
    let mut answered = Vec::new();
    for _ in 0..2 {
        let msg = proxy.recv();
        assert_eq!(msg["error"]["code"], json!(-32000), "{msg}");
        answered.push(msg["id"].as_u64().unwrap());
    }
    answered.sort();
    assert_eq!(answered, [hang, crash]);
    let status = proxy.child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    std::io::Read::read_to_string(proxy.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("error: the upstream server exited (exit status: 3)"), "{stderr}");
}

#[test]
fn a_policy_with_features_this_build_cannot_enforce_stops_the_start() {
    let env = Env::new();
    let policy = env.write("p.json", r#"{"tools":{"x":{"deny_if":[{"conditions":[]}]}}}"#);
    let out = env.run(["proxy", "--policy", policy.to_str().unwrap(), "--", "python3", "-c", "pass"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loading the policy") && stderr.contains("deny_if"), "{stderr}");
}
