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

pub(crate) struct StdioProxy {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl StdioProxy {
    pub(crate) fn start(env: &Env, policy: &str, extra: &[&str]) -> StdioProxy {
        StdioProxy::start_with(env, policy, extra, true)
    }

    /// `fixture`: check that the server behind the proxy is the python fixture.
    fn start_with(env: &Env, policy: &str, extra: &[&str], fixture_server: bool) -> StdioProxy {
        StdioProxy::start_caps(env, policy, extra, fixture_server, json!({"sampling": {}}))
    }

    /// `capabilities`: what the client declares in `initialize`. A `--` in `extra` names the upstream command.
    pub(crate) fn start_caps(
        env: &Env,
        policy: &str,
        extra: &[&str],
        fixture_server: bool,
        capabilities: Value,
    ) -> StdioProxy {
        let mut proxy = StdioProxy::spawn(env, policy, extra);
        let init = proxy.request(
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":capabilities,"clientInfo":{"name":"test","version":"1"}}),
        );
        if fixture_server {
            assert_eq!(init["result"]["serverInfo"]["name"], json!("proxy-fixture"), "{init}");
        }
        assert!(init.get("result").is_some(), "{init}");
        proxy.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        proxy
    }

    /// The proxy running, before any handshake.
    pub(crate) fn spawn(env: &Env, policy: &str, extra: &[&str]) -> StdioProxy {
        let policy = env.write("policy.json", policy);
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"));
        cmd.current_dir(env.dir.path())
            .env("TOOLWARDEN_DATA_DIR", env.data_dir())
            .env("CALL_LOG", env.path("calls.log"))
            .arg("proxy")
            .arg("--policy")
            .arg(&policy)
            .args(extra)
            .args(if extra.contains(&"--upstream") || extra.contains(&"--") { vec![] } else { server_args() })
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
        StdioProxy { child, stdin, lines, next_id: 100 }
    }

    pub(crate) fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
        id
    }

    pub(crate) fn recv(&mut self) -> Value {
        let line = self.lines.recv_timeout(PATIENCE).expect("the proxy answered");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("proxy wrote a non-JSON line ({e}): {line}"))
    }

    /// Read until the answer to `id`, collecting whatever came before it.
    pub(crate) fn answer(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    pub(crate) fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        self.answer(id).0
    }

    pub(crate) fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// Close stdin and wait for the exit; returns (success, stderr).
    pub(crate) fn finish(mut self) -> (bool, String) {
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

pub(crate) fn calls_received(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("calls.log")).unwrap_or_default().lines().map(String::from).collect()
}

pub(crate) fn text(result: &Value) -> &str {
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
    // Exact names only: `Nuke` is no tool the server listed, so it is refused before a server that folds case
    // could take it for `nuke`; an allowed call goes through.
    let other = proxy.call("Nuke", json!({}));
    assert!(text(&other).contains("`Nuke` is not among the tools this server lists"), "{other}");
    let failed = proxy.call("fail", json!({}));
    assert_eq!(failed["result"]["isError"], json!(true), "{failed}");
    let (ok, _) = proxy.finish();
    assert!(ok);
    assert_eq!(calls_received(&env), ["fail"]);
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 4);
    assert_eq!(records[2]["rule"], json!("unlisted-tool"));
    assert_eq!(records[0]["decision"], json!("deny"));
    assert_eq!(records[0]["rule"], json!("tools.nuke.action"));
    assert_eq!(records[0]["args_sha256"].as_str().unwrap().len(), 64);
    assert!(records[0].get("args").is_none(), "raw arguments are not logged by default");
    assert_eq!(records[3]["decision"], json!("allow"));
    assert_eq!(records[3]["outcome"], json!("error"));
    assert!(records[3]["upstream_latency_us"].is_u64());
}

/// The ways a message could be read one way by the proxy and another way by a server: none reaches it.
#[test]
fn no_parser_differential_reaches_the_server() {
    let env = Env::new();
    let policy = r#"{"version": "1", "default": "allow", "tools": {"nuke": {"action": "deny", "reason": "never"}}}"#;
    let mut proxy = StdioProxy::start(&env, policy, &["--audit", "audit.jsonl"]);
    let attempts = [
        // Case folded, a NUL, a zero-width space, trailing whitespace: not the listed name.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"NUKE","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nuke\u0000","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nu\u200bke","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nuke ","arguments":{}}}"#,
        // A method spelled loosely.
        r#"{"jsonrpc":"2.0","id":5,"method":"TOOLS/CALL","params":{"name":"nuke","arguments":{}}}"#,
        // Duplicate keys, in either order, in params and in the envelope.
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"nuke","name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"nuke","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","method":"ping","params":{"name":"nuke"}}"#,
    ];
    for (n, raw) in attempts.iter().enumerate() {
        proxy.send_raw(raw);
        let (answer, _) = proxy.answer(n as u64 + 1);
        let refused = answer["result"]["isError"] == json!(true) || answer["error"]["code"].is_i64();
        assert!(refused, "{raw} -> {answer}");
        assert!(answer.to_string().contains("toolwarden"), "{raw} -> {answer}");
    }
    // The honest call still works, and the server saw nothing else.
    assert_eq!(text(&proxy.call("echo", json!({"x": 1}))), r#"{"x": 1}"#);
    let (ok, _) = proxy.finish();
    assert!(ok);
    assert_eq!(calls_received(&env), ["echo"]);
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let refusals = audit.lines().filter(|l| !l.contains(r#""decision":"allow""#)).count();
    assert_eq!(refusals, attempts.len(), "{audit}");
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
    assert!(text(&refused).contains("limit `echo_per_hour` reached: 3 of 3 per hour"), "{refused}");
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
fn an_invalid_policy_stops_the_start_and_says_where() {
    let env = Env::new();
    let policy = env.write(
        "p.json",
        r#"{"version":"1","tools":{"x":{"deny_if":[{"conditions":[{"path":"args.a","op":"greater","value":1}]}]}}}"#,
    );
    let out = env.run(["proxy", "--policy", policy.to_str().unwrap(), "--", "python3", "-c", "pass"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loading the policy"), "{stderr}");
    assert!(stderr.contains("tools.x.deny_if[0].conditions[0].op") && stderr.contains("greater"), "{stderr}");
}

/// A proxy serving Streamable HTTP on a free loopback port.
pub(crate) struct HttpProxy {
    child: Child,
    pub(crate) url: String,
}

impl HttpProxy {
    /// `upstream`: the args after the policy (`["--", "python3", …]` or `["--upstream", URL]`).
    pub(crate) fn start(env: &Env, name: &str, policy: &str, args: &[&str]) -> HttpProxy {
        let policy = env.write(&format!("{name}.json"), policy);
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
            .current_dir(env.dir.path())
            .env("TOOLWARDEN_DATA_DIR", env.data_dir())
            .env("CALL_LOG", env.path("calls.log"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&policy)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the proxy");
        let (url, mut stderr) = crate::util::announced(&mut child, "toolwarden proxy listening on ");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        HttpProxy { child, url }
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn server_args() -> Vec<String> {
    vec!["--".into(), "python3".into(), fixture("proxy/server.py").display().to_string()]
}

pub(crate) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const ALLOW_ALL: &str = r#"{"version": "1", "default": "allow"}"#;

/// A minimal Streamable HTTP MCP client.
pub(crate) struct McpHttp {
    http: reqwest::Client,
    url: String,
    pub(crate) session: Option<String>,
    token: Option<String>,
}

/// An open answer stream: SSE events (or one JSON body) read as they come.
struct Answer {
    response: reqwest::Response,
    buf: String,
    json: bool,
    done: bool,
}

impl Answer {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> =
                    event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data.join("\n")).unwrap());
                }
                continue;
            }
            if self.done {
                return None;
            }
            match tokio::time::timeout(PATIENCE, self.response.chunk()).await.expect("the proxy answered").unwrap() {
                Some(chunk) => self.buf.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                None if self.json && !self.buf.trim().is_empty() => {
                    self.done = true;
                    return Some(serde_json::from_str(&std::mem::take(&mut self.buf)).unwrap());
                }
                None => self.done = true,
            }
        }
    }

    async fn all(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = self.next().await {
            out.push(v);
        }
        out
    }
}

impl McpHttp {
    pub(crate) fn new(url: &str, token: Option<&str>) -> McpHttp {
        McpHttp { http: reqwest::Client::new(), url: url.into(), session: None, token: token.map(String::from) }
    }

    pub(crate) async fn post(&self, msg: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(msg.to_string());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send().await.unwrap()
    }

    async fn open(&self, msg: &Value) -> Answer {
        let response = self.post(msg).await;
        assert!(response.status().is_success(), "HTTP {}", response.status());
        let json =
            response.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
        Answer { response, buf: String::new(), json, done: false }
    }

    pub(crate) async fn initialize(&mut self) -> Value {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",
            "capabilities":{"sampling":{}},"clientInfo":{"name":"test","version":"1"}}});
        let response = self.post(&init).await;
        assert!(response.status().is_success(), "HTTP {}", response.status());
        self.session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
        let json =
            response.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
        let answer = Answer { response, buf: String::new(), json, done: false }.all().await;
        let status = self.post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await.status();
        assert_eq!(status.as_u16(), 202);
        answer.into_iter().last().unwrap()
    }

    pub(crate) async fn request(&self, id: u64, method: &str, params: Value) -> Value {
        let msgs = self.open(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})).await.all().await;
        msgs.into_iter().find(|m| m["id"] == json!(id) && m.get("method").is_none()).expect("an answer")
    }

    pub(crate) async fn call(&self, id: u64, tool: &str) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": {}})).await
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

/// Everything a client does through one proxy path: filtered list, refusal, a call with a notification,
/// and a sampling request relayed from the server to the client and back.
async fn exercise(client: &mut McpHttp) {
    let init = client.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], json!("proxy-fixture"), "{init}");
    let list = client.request(1, "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), ["echo", "fail", "ask", "hang", "crash", "chatty"]);
    let refused = client.call(2, "nuke").await;
    assert_eq!(text(&refused), "Refused by toolwarden: Destructive: nukes everything");
    let msgs = client
        .open(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}))
        .await
        .all()
        .await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["method"], json!("notifications/message"));
    assert_eq!(text(&msgs[1]), r#"{"a": 1}"#);
    let mut answer = client.open(&json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ask"}})).await;
    let sampling = answer.next().await.unwrap();
    assert_eq!(sampling["method"], json!("sampling/createMessage"), "{sampling}");
    let reply = json!({"jsonrpc":"2.0","id":sampling["id"],"result":{"role":"assistant","model":"m","content":{"type":"text","text":"yes"}}});
    assert_eq!(client.post(&reply).await.status().as_u16(), 202);
    let result = answer.next().await.unwrap();
    assert_eq!(text(&result), "the client said: yes");
}

#[test]
fn http_frontend_with_a_stdio_server() {
    let env = Env::new();
    let proxy = HttpProxy::start(&env, "p", POLICY, &strs(&server_args()));
    runtime().block_on(async {
        let mut client = McpHttp::new(&proxy.url, None);
        exercise(&mut client).await;
        // An answer that is the first thing the server says comes back as plain JSON.
        let ping = client.post(&json!({"jsonrpc":"2.0","id":20,"method":"ping"})).await;
        assert_eq!(ping.headers()["content-type"], "application/json");
        assert_eq!(ping.json::<Value>().await.unwrap(), json!({"jsonrpc":"2.0","id":20,"result":{}}));
        let gone = client
            .http
            .delete(&proxy.url)
            .header("mcp-session-id", client.session.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status().as_u16(), 204);
        assert_eq!(client.post(&json!({"jsonrpc":"2.0","id":9,"method":"ping"})).await.status().as_u16(), 404);
    });
    assert_eq!(calls_received(&env), ["echo", "ask"]);
}

#[test]
fn stdio_frontend_with_an_http_server() {
    // The HTTP server is a second proxy (allowing everything) in front of the fixture.
    let env = Env::new();
    let inner = HttpProxy::start(&env, "inner", ALLOW_ALL, &strs(&server_args()));
    let mut proxy = StdioProxy::start(&env, POLICY, &["--upstream", &inner.url]);
    let list = proxy.request("tools/list", json!({}));
    assert_eq!(tool_names(&list), ["echo", "fail", "ask", "hang", "crash", "chatty"]);
    assert!(text(&proxy.call("nuke", json!({}))).starts_with("Refused by toolwarden"));
    let id = proxy.send("tools/call", json!({"name": "echo", "arguments": {"b": 2}}));
    let (answer, before) = proxy.answer(id);
    assert_eq!(text(&answer), r#"{"b": 2}"#);
    assert_eq!(before[0]["method"], json!("notifications/message"));
    let id = proxy.send("tools/call", json!({"name": "ask", "arguments": {}}));
    let sampling = proxy.recv();
    assert_eq!(sampling["method"], json!("sampling/createMessage"), "{sampling}");
    proxy.send_raw(&json!({"jsonrpc":"2.0","id":sampling["id"],"result":{"role":"assistant","model":"m","content":{"type":"text","text":"ok"}}}).to_string());
    assert_eq!(text(&proxy.answer(id).0), "the client said: ok");
    let (ok, _) = proxy.finish();
    assert!(ok);
    assert_eq!(calls_received(&env), ["echo", "ask"]);
}

#[test]
fn http_frontend_with_an_http_server() {
    let env = Env::new();
    let inner = HttpProxy::start(&env, "inner", ALLOW_ALL, &strs(&server_args()));
    let proxy = HttpProxy::start(&env, "outer", POLICY, &["--upstream", &inner.url, "--header", "X-Test: 1"]);
    runtime().block_on(async { exercise(&mut McpHttp::new(&proxy.url, None)).await });
    assert_eq!(calls_received(&env), ["echo", "ask"]);
}

#[test]
fn http_frontend_checks_host_origin_tokens_and_size() {
    let env = Env::new();
    env.write("tokens.json", r#"{"alice-token-0123456789": "alice", "bob-token-0123456789ab": "bob"}"#);
    let mut args = vec!["--auth-tokens", "tokens.json", "--audit", "audit.jsonl", "--max-message", "2000"];
    let server = server_args();
    args.extend(strs(&server));
    let proxy = HttpProxy::start(&env, "p", POLICY, &args);
    runtime().block_on(async {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        let anonymous = McpHttp::new(&proxy.url, None);
        let response = anonymous.post(&init).await;
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(McpHttp::new(&proxy.url, Some("wrong-token-0123456789")).post(&init).await.status().as_u16(), 401);

        let rebinding = anonymous.http.post(&proxy.url).header("host", "attacker.example").body(init.to_string()).send().await.unwrap();
        assert_eq!(rebinding.status().as_u16(), 403);
        let origin = anonymous.http.post(&proxy.url).header("origin", "http://attacker.example").body(init.to_string()).send().await.unwrap();
        assert_eq!(origin.status().as_u16(), 403);

        let mut alice = McpHttp::new(&proxy.url, Some("alice-token-0123456789"));
        alice.initialize().await;
        assert_eq!(text(&alice.call(1, "echo").await), "{}");
        // Bob cannot ride on Alice's session.
        let mut bob = McpHttp::new(&proxy.url, Some("bob-token-0123456789ab"));
        bob.session = alice.session.clone();
        assert_eq!(bob.post(&json!({"jsonrpc":"2.0","id":5,"method":"ping"})).await.status().as_u16(), 403);

        let big = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"x":"y".repeat(4000)}}});
        assert_eq!(alice.post(&big).await.status().as_u16(), 413);
        // A body with a duplicate key is refused before any session sees it.
        let twice = r#"{"jsonrpc":"2.0","id":3,"id":4,"method":"tools/call","params":{"name":"echo","name":"nuke"}}"#;
        let req = alice.http.post(&proxy.url).header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", "Bearer alice-token-0123456789")
            .header("mcp-session-id", alice.session.clone().unwrap());
        let refused = req.body(twice).send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 400);
        assert!(refused.text().await.unwrap().contains("duplicate key"));
    });
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let record: Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(record["identity"], json!("alice"));
    assert_eq!(record["decision"], json!("allow"));
    assert_eq!(calls_received(&env), ["echo"]);
}

/// A real server installed by `scripts/test-deps.sh` (its path in `var`); fails, never skips, when missing.
fn dep(var: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which installs the real MCP servers and exports their paths")
    });
    assert!(std::path::Path::new(&path).exists(), "{var}={path} does not exist");
    path
}

/// A real third-party server over Streamable HTTP behind the stdio proxy.
#[test]
fn server_everything_over_http_through_the_proxy() {
    let everything = dep("TOOLWARDEN_TEST_EVERYTHING");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(&everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it accepts connections (bounded: a hang guard, not a timing assertion).
    let mut tries = 0;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tries += 1;
        assert!(tries < 400 && server.try_wait().unwrap().is_none(), "server-everything did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = Env::new();
    let policy =
        r#"{"version":"1","default":"allow","hide":["get-env"],"tools":{"echo":{"action":"deny","reason":"no echo"}}}"#;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut proxy = StdioProxy::start_with(&env, policy, &["--upstream", &url], false);
    let list = proxy.request("tools/list", json!({}));
    let names = tool_names(&list);
    assert!(
        names.contains(&"get-sum".to_string())
            && !names.contains(&"echo".to_string())
            && !names.contains(&"get-env".to_string()),
        "{names:?}"
    );
    assert!(text(&proxy.call("echo", json!({"message": "x"}))).starts_with("Refused by toolwarden: no echo"));
    let sum = proxy.call("get-sum", json!({"a": 2, "b": 3}));
    assert!(text(&sum).contains('5'), "{sum}");
    let resources = proxy.request("resources/list", json!({}));
    assert!(resources["result"]["resources"].as_array().is_some_and(|r| !r.is_empty()), "{resources}");
    drop(proxy);
    let _ = server.kill();
    let _ = server.wait();
}

/// Resources, prompts, completions and logging pass through to a real stdio server unchanged.
#[test]
fn server_everything_over_stdio_relays_everything_else() {
    let everything = dep("TOOLWARDEN_TEST_EVERYTHING");
    let env = Env::new();
    let policy = r#"{"version":"1","default":"deny","tools":{"get-sum":{}}}"#;
    let mut proxy = StdioProxy::start_with(&env, policy, &["--", &everything, "stdio"], false);
    assert_eq!(tool_names(&proxy.request("tools/list", json!({}))), ["get-sum"]);
    assert!(text(&proxy.call("echo", json!({"message": "x"}))).contains("default: deny"));
    let prompts = proxy.request("prompts/list", json!({}));
    let prompt = prompts["result"]["prompts"][0]["name"].as_str().expect("a prompt").to_string();
    let got = proxy.request("prompts/get", json!({"name": prompt, "arguments": {}}));
    assert!(got.get("result").is_some() || got.get("error").is_some(), "{got}");
    let resources = proxy.request("resources/list", json!({}));
    let uri = resources["result"]["resources"][0]["uri"].as_str().expect("a resource").to_string();
    let read = proxy.request("resources/read", json!({"uri": uri}));
    assert!(read["result"]["contents"].as_array().is_some_and(|c| !c.is_empty()), "{read}");
    let level = proxy.request("logging/setLevel", json!({"level": "debug"}));
    assert_eq!(level["result"], json!({}), "{level}");
    let ping = proxy.request("ping", json!({}));
    assert_eq!(ping["result"], json!({}));
}

/// A denied write never reaches a real filesystem server: the file is not created.
#[test]
fn server_filesystem_denied_write_never_happens() {
    let filesystem = dep("TOOLWARDEN_TEST_FILESYSTEM");
    let env = Env::new();
    let root = env.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hi there").unwrap();
    let root = root.canonicalize().unwrap();
    let policy =
        r#"{"version":"1","default":"allow","tools":{"write_file":{"action":"deny","reason":"read-only agent"}}}"#;
    let mut proxy = StdioProxy::start_with(&env, policy, &["--", &filesystem, root.to_str().unwrap()], false);
    assert!(!tool_names(&proxy.request("tools/list", json!({}))).contains(&"write_file".to_string()));
    let target = root.join("new.txt");
    let refused = proxy.call("write_file", json!({"path": target, "content": "x"}));
    assert_eq!(text(&refused), "Refused by toolwarden: read-only agent");
    let read = proxy.call("read_text_file", json!({"path": root.join("hello.txt")}));
    assert!(text(&read).contains("hi there"), "{read}");
    drop(proxy);
    assert!(!target.exists());
}

#[test]
fn policy_reload_applies_to_the_next_call_and_a_broken_version_is_ignored() {
    let env = Env::new();
    let mut proxy = StdioProxy::start(&env, ALLOW_ALL, &["--audit", "audit.jsonl"]);
    // A call in flight while the policy changes keeps the decision it got.
    let in_flight = proxy.send("tools/call", json!({"name": "ask", "arguments": {}}));
    let sampling = proxy.recv();
    assert_eq!(sampling["method"], json!("sampling/createMessage"));
    env.write(
        "policy.json",
        r#"{"version":"1","default":"deny","tools":{"echo":{"action":"deny","reason":"no more echo"}}}"#,
    );
    // Reload is asynchronous: poll (bounded) until the new version answers.
    let mut refused = None;
    for _ in 0..200 {
        let answer = proxy.call("echo", json!({}));
        if answer["result"]["isError"] == json!(true) {
            refused = Some(answer);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = refused.expect("the new policy took effect");
    assert_eq!(text(&refused), "Refused by toolwarden: no more echo");
    let ask = proxy.call("ask", json!({}));
    assert_eq!(text(&ask), "Refused by toolwarden: tool \"ask\" is not allowed by policy (default: deny)");
    proxy.send_raw(&json!({"jsonrpc":"2.0","id":sampling["id"],"result":{"role":"assistant","model":"m","content":{"type":"text","text":"late"}}}).to_string());
    assert_eq!(text(&proxy.answer(in_flight).0), "the client said: late");

    env.write("policy.json", r#"{"version":"1","default":"allow","tools":{"echo":{"action":"sometimes"}}}"#);
    let mut reported = false;
    for _ in 0..200 {
        let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap_or_default();
        let failed_reload = |l: &str| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event"] == json!("policy_reload") && v["ok"] == json!(false)
        };
        if audit.lines().any(failed_reload) {
            reported = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reported, "the broken policy was reported in the audit log");
    assert_eq!(text(&proxy.call("echo", json!({}))), "Refused by toolwarden: no more echo");
    let (ok, stderr) = proxy.finish();
    assert!(ok);
    assert!(stderr.contains("policy not reloaded") && stderr.contains("sometimes"), "{stderr}");
}

pub(crate) fn allowed(result: &Value) -> bool {
    result["result"]["isError"] == json!(false)
}

/// At most 10 `echo` calls a day, counted once across every proxy that shares the state.
pub(crate) const ECHO_10_A_DAY: &str = r#"{"version":"1","default":"allow",
  "tools":{"echo":{"limits":[{"counter":"echo_total","window":"day","max":10,"scope":"global"}]}}}"#;

/// 32 HTTP clients, taking turns between the proxies at `urls` (which enforce [`ECHO_10_A_DAY`]), each
/// initialised first and then all calling `echo` at once: exactly 10 reach the server, 22 are refused.
pub(crate) fn thirty_two_concurrent_callers_get_exactly_ten(env: &Env, urls: &[&str]) {
    let results: Vec<Value> = runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..32 {
            let mut client = McpHttp::new(urls[i % urls.len()], None);
            client.initialize().await;
            clients.push(client);
        }
        let calls = clients.iter().enumerate().map(|(i, c)| c.call(i as u64 + 1, "echo"));
        futures_util::future::join_all(calls).await
    });
    let admitted = results.iter().filter(|r| allowed(r)).count();
    let refused = results.iter().filter(|r| text(r).contains("limit `echo_total` reached")).count();
    assert_eq!((admitted, refused), (10, 22), "{results:?}");
    assert_eq!(calls_received(env).len(), 10);
}

#[test]
fn thirty_two_concurrent_http_callers_get_exactly_the_limit() {
    let env = Env::new();
    let proxy = HttpProxy::start(&env, "p", ECHO_10_A_DAY, &strs(&server_args()));
    thirty_two_concurrent_callers_get_exactly_ten(&env, &[&proxy.url]);
}

#[test]
fn spend_caps_are_refunded_when_the_call_fails() {
    let env = Env::new();
    let policy = r#"{"version":"1","default":"allow","tools":{
      "fail":{"limits":[{"counter":"fail_spend","window":"day","max":100,"increment_from":"args.amount"}]},
      "echo":{"limits":[{"counter":"echo_spend","window":"day","max":100,"increment_from":"args.amount"}]}}}"#;
    let mut proxy = StdioProxy::start(&env, policy, &[]);
    // `fail` always reports isError: its 60 is refunded each time, so the cap of 100 never fills.
    for _ in 0..3 {
        assert_eq!(text(&proxy.call("fail", json!({"amount": 60}))), "failed on purpose");
    }
    assert_eq!(text(&proxy.call("echo", json!({"amount": 60}))), r#"{"amount": 60}"#);
    assert!(text(&proxy.call("echo", json!({"amount": 60}))).contains("limit `echo_spend` reached"));
    assert!(text(&proxy.call("echo", json!({}))).contains("counts args.amount"));
    drop(proxy);
    assert_eq!(calls_received(&env), ["fail", "fail", "fail", "echo"]);
}

#[test]
fn http_sessions_are_bounded_and_idle_ones_closed() {
    let env = Env::new();
    let mut args = vec!["--max-sessions", "1", "--session-idle", "1"];
    let server = server_args();
    args.extend(strs(&server));
    let proxy = HttpProxy::start(&env, "p", POLICY, &args);
    runtime().block_on(async {
        let mut first = McpHttp::new(&proxy.url, None);
        first.initialize().await;
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        assert_eq!(McpHttp::new(&proxy.url, None).post(&init).await.status().as_u16(), 503);
        // Left alone, the first session is closed (bounded polling; the reaper runs every second).
        let mut closed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let second = McpHttp::new(&proxy.url, None).post(&init).await;
            if second.status().is_success() {
                closed = true;
                break;
            }
        }
        assert!(closed, "the idle session was closed and a new one admitted");
        assert_eq!(first.post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})).await.status().as_u16(), 404);
    });
}

#[path = "proxy_redis.rs"]
mod redis_state;

#[path = "proxy_sqlite.rs"]
mod sqlite_state;

#[path = "proxy_restart.rs"]
mod restart;
