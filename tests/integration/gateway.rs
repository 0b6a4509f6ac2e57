//! `toolwarden gateway` in front of real servers (the demo server, npm's server-memory, PyPI's mcp-server-time,
//! the python proxy fixture and a slow-starting one), each with its own policy, driven over real pipes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{Env, fixture};

const PATIENCE: Duration = Duration::from_secs(30);

struct Gateway {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next: u64,
    /// Notifications seen while waiting for answers.
    seen: Vec<Value>,
}

impl Gateway {
    fn start(env: &Env, extra: &[&str]) -> Gateway {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
            .current_dir(env.dir.path())
            .env("TOOLWARDEN_DATA_DIR", env.data_dir())
            .env("CALL_LOG", env.path("calls.log"))
            .args(["gateway", "--config", "servers.toml", "--policy-dir", "policies", "--audit", "audit.jsonl"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Gateway { child, stdin, lines, next: 0, seen: Vec::new() }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    fn recv(&mut self) -> Value {
        let line = self.lines.recv_timeout(PATIENCE).expect("the gateway answered");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Send a request and read until its answer; server-to-client requests met on the way go to `serve`.
    fn request_with(&mut self, method: &str, params: Value, serve: &mut dyn FnMut(&Value) -> Option<Value>) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self.recv();
            if msg.get("method").is_none() && msg["id"] == json!(id) {
                return msg;
            }
            if msg.get("id").is_some() && msg.get("method").is_some() {
                if let Some(result) = serve(&msg) {
                    self.send(&json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}));
                }
                continue;
            }
            self.seen.push(msg);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_with(method, params, &mut |_| None)
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }

    fn tools(&mut self) -> Vec<String> {
        let list = self.request("tools/list", json!({}));
        list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    }

    /// Wait for a notification (already seen, or arriving within the patience).
    fn notified(&mut self, method: &str) {
        let started = Instant::now();
        while !self.seen.iter().any(|m| m["method"] == method) {
            assert!(started.elapsed() < PATIENCE, "no {method}");
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(serde_json::from_str(&line).unwrap());
            }
        }
        self.seen.retain(|m| m["method"] != method);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

fn setup(env: &Env) {
    let dep = |var: &str| std::env::var(var).unwrap_or_else(|_| panic!("{var}: run through scripts/test"));
    let servers = format!(
        r#"[servers.demo]
command = {bin:?}
args = ["demo-server"]

[servers.memory]
command = {memory:?}
env = {{ MEMORY_FILE_PATH = {memfile:?} }}

[servers.time]
command = {time:?}
args = ["--local-timezone", "UTC"]

[servers.fixture]
command = "python3"
args = [{fixture:?}]

[servers.late]
command = "python3"
args = [{hostile:?}, "slow"]
env = {{ SLOW_SECS = "8" }}
"#,
        bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string(),
        memory = dep("TOOLWARDEN_TEST_MEMORY"),
        memfile = env.path("memory.jsonl").display().to_string(),
        time = dep("TOOLWARDEN_TEST_TIME"),
        fixture = fixture("proxy/server.py").display().to_string(),
        hostile = fixture("crawl/hostile_stdio.py").display().to_string(),
    );
    env.write("servers.toml", servers);
    env.write(
        "policies/demo.policy.json",
        r#"{"version":"1","default":"allow","tools":{"delete_customer":{"action":"deny","reason":"no deletes"}}}"#,
    );
    env.write(
        "policies/memory.policy.json",
        r#"{"version":"1","default":"allow","tools":{"delete_entities":{"action":"deny","reason":"append only"}}}"#,
    );
    env.write("policies/time.policy.json", r#"{"version":"1","default":"allow"}"#);
    env.write(
        "policies/fixture.policy.json",
        r#"{"version":"1","default":"allow","hide":["secret"],"tools":{"nuke":{"action":"deny","reason":"never"}}}"#,
    );
    env.write("policies/late.policy.json", r#"{"version":"1","default":"allow"}"#);
}

#[test]
fn five_servers_behind_one_gateway_each_with_its_own_policy() {
    let env = Env::new();
    setup(&env);
    let mut gw = Gateway::start(&env, &["--startup-timeout", "5"]);
    let init = gw.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "toolwarden-gateway", "{init}");
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // Servers that start in under --startup-timeout are there at once (a loaded machine may still be slower:
    // then they arrive through list_changed, which this waits for).
    let started = Instant::now();
    let mut tools = gw.tools();
    while !tools.iter().any(|t| t.starts_with("time__")) && started.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(200));
        tools = gw.tools();
    }
    for expected in ["demo__get_customer", "memory__read_graph", "time__get_current_time", "fixture__echo"] {
        assert!(tools.contains(&expected.to_string()), "{expected} in {tools:?}");
    }
    // Each server's policy: denied and hidden tools are not listed, and refused by name.
    for absent in ["demo__delete_customer", "memory__delete_entities", "fixture__nuke", "fixture__secret"] {
        assert!(!tools.contains(&absent.to_string()), "{absent} listed");
    }
    assert!(text(&gw.call("demo__delete_customer", json!({"customer_id": "c1"}))).contains("no deletes"));
    assert!(text(&gw.call("fixture__nuke", json!({}))).contains("never"));
    // The slow server was not waited for: it joins later, announced by list_changed.
    assert!(!tools.iter().any(|t| t.starts_with("late__")), "{tools:?}");
    gw.notified("notifications/tools/list_changed");
    assert!(gw.tools().contains(&"late__read_thing".to_string()));
    // Calls are routed by name, under the server's own name.
    assert_eq!(text(&gw.call("fixture__echo", json!({"x": 1}))), r#"{"x": 1}"#);
    assert!(text(&gw.call("time__get_current_time", json!({"timezone": "UTC"}))).contains("UTC"));
    let graph = gw.call("memory__read_graph", json!({}));
    assert_eq!(graph["result"]["isError"], Value::Null, "{graph}");
    // A sampling request from a server reaches the client and its answer goes back.
    let mut served = 0;
    let asked = gw.request_with("tools/call", json!({"name": "fixture__ask", "arguments": {}}), &mut |req| {
        assert_eq!(req["method"], "sampling/createMessage");
        served += 1;
        Some(json!({"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m"}))
    });
    assert_eq!(served, 1);
    assert!(asked.get("result").is_some(), "{asked}");
    // Names no server has, and unknown prefixes, are refused.
    assert!(text(&gw.call("nobody__tool", json!({}))).contains("names no server"));
    assert!(text(&gw.call("fixture__ECHO", json!({}))).contains("not among the tools"));
    // One server crashes mid-session: its call fails, the others go on, and it comes back.
    let crashed = gw.call("fixture__crash", json!({}));
    assert!(crashed.get("error").is_some() || crashed["result"]["isError"] == json!(true), "{crashed}");
    assert!(text(&gw.call("time__get_current_time", json!({"timezone": "UTC"}))).contains("UTC"));
    let down = gw.call("fixture__echo", json!({"y": 2}));
    assert!(text(&down).contains("unavailable") || text(&down) == r#"{"y": 2}"#, "{down}");
    let started = Instant::now();
    loop {
        let again = gw.call("fixture__echo", json!({"y": 2}));
        if text(&again) == r#"{"y": 2}"# {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the crashed server never came back: {again}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Calls the policy refused never reached the fixture.
    let calls = std::fs::read_to_string(env.path("calls.log")).unwrap();
    assert!(!calls.lines().any(|l| l == "nuke"), "{calls}");
    // Every decision is audited, with the server it concerns.
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let denied = records.iter().find(|r| r["tool"] == "delete_customer").unwrap();
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["server"], "demo", "{denied}");
    assert!(records.iter().any(|r| r["decision"] == "upstream_down" && r["server"] == "fixture"));
    drop(gw);
    // The same records in the catalogue, by server.
    let rows: Value = env.json(["audit", "--server", "memory", "--format", "json"]);
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["server"] == "memory"), "{rows:?}");
    assert!(rows.iter().any(|r| r["tool"] == "read_graph" && r["decision"] == "allow"));
}

#[test]
fn a_server_without_a_policy_stops_the_start_and_says_which() {
    let env = Env::new();
    setup(&env);
    std::fs::remove_file(env.path("policies/time.policy.json")).unwrap();
    let out = env.run(["gateway", "--config", "servers.toml", "--policy-dir", "policies"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no policy for server \"time\""), "{stderr}");
}

/// A Claude Desktop config as people have them: servers, a disabled one, and settings of the app itself.
fn claude_desktop_config() -> String {
    let time = std::env::var("TOOLWARDEN_TEST_TIME").expect("run through scripts/test");
    let bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string();
    format!(
        r#"{{
  "mcpServers": {{
    "demo": {{ "command": {bin:?}, "args": ["demo-server"] }},
    "time": {{ "command": {time:?}, "args": ["--local-timezone", "UTC"] }},
    "old": {{ "command": "npx", "args": ["-y", "some-server"], "disabled": true }}
  }},
  "globalShortcut": "Ctrl+Space"
}}
"#
    )
}

#[test]
fn install_puts_every_server_behind_one_entry_and_uninstall_restores_the_file_exactly() {
    let env = Env::new();
    let original = claude_desktop_config();
    let file = env.write("claude_desktop_config.json", &original);
    let file_arg = file.display().to_string();
    let install = ["gateway", "install", "--client", "claude-desktop", "--config-file", &file_arg];
    // Dry run: the diff, and nothing written.
    let out = env.run(install.iter().copied().chain(["--dry-run"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("+    \"toolwarden\": {") && diff.lines().any(|l| l.starts_with('-') && l.contains("\"time\"")),
        "{diff}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    // Install: backup, servers file, one policy per server, and one entry in the client.
    let out = env.run(install.iter().copied().chain(["--yes"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(env.path("claude_desktop_config.json.toolwarden-backup")).unwrap(), original);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(config["globalShortcut"], "Ctrl+Space", "the client's own settings stay");
    let servers = config["mcpServers"].as_object().unwrap();
    let mut names: Vec<&str> = servers.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["old", "toolwarden"], "a disabled server stays as it was");
    let dir = env.data_dir().join("gateway/claude-desktop");
    for server in ["demo", "time"] {
        let policy: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("policies/{server}.policy.json"))).unwrap())
                .unwrap();
        assert_eq!(policy["version"], "1", "{policy}");
    }
    // The entry the client now has starts a gateway serving both servers.
    let entry = &servers["toolwarden"];
    let mut child = Command::new(entry["command"].as_str().unwrap())
        .args(entry["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()))
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |msg: Value| -> Value {
        writeln!(stdin, "{msg}").unwrap();
        loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the gateway exited");
            let answer: Value = serde_json::from_str(&line).unwrap();
            if answer.get("method").is_none() && answer["id"] == msg["id"] {
                return answer;
            }
        }
    };
    ask(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    let list = ask(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    let tools: Vec<&str> =
        list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"demo__get_customer") && tools.contains(&"time__get_current_time"), "{tools:?}");
    // The balanced policy of the demo server does not let a refund through unasked.
    let refund = ask(
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__create_refund","arguments":{"order_id":"o1","amount":5}}}),
    );
    assert!(
        refund["result"]["content"][0]["text"].as_str().unwrap_or("").contains("toolwarden")
            || !tools.contains(&"demo__create_refund"),
        "{refund}"
    );
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    // A second install is refused; uninstall restores the file byte for byte.
    assert_eq!(env.run(install.iter().copied().chain(["--yes"])).status.code(), Some(2));
    let out = env.run(["gateway", "uninstall", "--client", "claude-desktop", "--config-file", &file_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!env.path("claude_desktop_config.json.toolwarden-backup").exists());
}

#[test]
fn a_vscode_config_with_comments_is_restored_exactly() {
    let env = Env::new();
    let bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string();
    let original = format!(
        "// VS Code MCP servers\n{{\n  \"servers\": {{\n    \"demo\": {{ \"type\": \"stdio\", \"command\": {bin:?}, \"args\": [\"demo-server\"] }}, // ours\n  }},\n  \"inputs\": []\n}}\n"
    );
    let file = env.write("mcp.json", &original);
    let file_arg = file.display().to_string();
    let out = env.run(["gateway", "install", "--client", "vscode", "--config-file", &file_arg, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(config["servers"]["toolwarden"]["type"], "stdio");
    assert_eq!(config["inputs"], json!([]));
    let out = env.run(["gateway", "uninstall", "--client", "vscode", "--config-file", &file_arg]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original, "comments and trailing commas come back");
}

#[test]
fn policy_check_reads_a_gateways_policies_against_its_servers() {
    let env = Env::new();
    setup(&env);
    env.write("policies/gone.policy.json", r#"{"version":"1","default":"deny"}"#);
    let out = env.run(["policy", "check", "--gateway", "servers.toml", "--policy-dir", "policies", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["files"].as_array().unwrap().len(), 5);
    assert_eq!(report["unknown_servers"], json!(["gone"]));
    // A broken policy and a missing one are errors, each naming its file.
    env.write("policies/time.policy.json", r#"{"version":"1","default":"sometimes"}"#);
    std::fs::remove_file(env.path("policies/late.policy.json")).unwrap();
    let out = env.run(["policy", "check", "--gateway", "servers.toml", "--policy-dir", "policies"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("time.policy.json") && stderr.contains("server \"late\" has no policy"), "{stderr}");
    assert!(stderr.contains("no server \"gone\""), "{stderr}");
}

#[test]
fn the_gateway_over_streamable_http_checks_tokens_and_serves_each_session() {
    use crate::proxy::{McpHttp, runtime};
    let env = Env::new();
    setup(&env);
    env.write("tokens.json", r#"{"alice-token-0123456789": "alice"}"#);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
        .current_dir(env.dir.path())
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .args(["gateway", "--config", "servers.toml", "--policy-dir", "policies", "--audit", "audit.jsonl"])
        .args(["--listen", "127.0.0.1:0", "--auth-tokens", "tokens.json", "--startup-timeout", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, mut stderr) = crate::util::announced(&mut child, "toolwarden gateway listening on ");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    runtime().block_on(async {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        assert_eq!(McpHttp::new(&url, None).post(&init).await.status().as_u16(), 401);
        let mut alice = McpHttp::new(&url, Some("alice-token-0123456789"));
        let answer = alice.initialize().await;
        assert_eq!(answer["result"]["serverInfo"]["name"], "toolwarden-gateway", "{answer}");
        let list = alice.request(1, "tools/list", json!({})).await;
        let names: Vec<&str> = list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"demo__get_customer") && names.contains(&"fixture__echo"), "{names:?}");
        let refused = alice.call(2, "demo__delete_customer").await;
        assert!(refused.to_string().contains("no deletes"), "{refused}");
        let echoed = alice.request(3, "tools/call", json!({"name": "fixture__echo", "arguments": {"z": 3}})).await;
        assert_eq!(text(&echoed), r#"{"z": 3}"#);
    });
    let _ = child.kill();
    let _ = child.wait();
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap();
    let denied: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["tool"] == "delete_customer")
        .unwrap();
    assert_eq!((denied["identity"].as_str(), denied["server"].as_str()), (Some("alice"), Some("demo")));
}

#[test]
fn one_policy_file_with_a_section_per_server_is_read_and_a_missing_section_is_named() {
    let env = Env::new();
    setup(&env);
    std::fs::remove_file(env.path("policies/demo.policy.json")).unwrap();
    env.write(
        "all.json",
        r#"{"servers": {"demo": {"version": "1", "default": "allow", "tools": {"get_customer": {"action": "deny", "reason": "from the section"}}}}}"#,
    );
    let mut gw = Gateway::start(&env, &["--policy", "all.json", "--startup-timeout", "5"]);
    gw.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let tools = gw.tools();
    assert!(tools.contains(&"demo__delete_customer".to_string()), "the section, not the old file: {tools:?}");
    assert!(!tools.contains(&"demo__get_customer".to_string()), "{tools:?}");
    assert!(text(&gw.call("demo__get_customer", json!({"customer_id": "c1"}))).contains("from the section"));
    drop(gw);
    std::fs::remove_file(env.path("policies/time.policy.json")).unwrap();
    let out = env.run(["gateway", "--config", "servers.toml", "--policy-dir", "policies", "--policy", "all.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no section") && stderr.contains("\"time\""), "{stderr}");
}

#[test]
fn a_servers_policy_is_reloaded_for_the_next_call_and_a_broken_version_is_ignored() {
    let env = Env::new();
    setup(&env);
    let mut gw = Gateway::start(&env, &["--startup-timeout", "5"]);
    gw.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(text(&gw.call("fixture__echo", json!({"a": 1}))), r#"{"a": 1}"#);
    // A broken edit is ignored: the last good policy stays in force.
    env.write("policies/fixture.policy.json", r#"{"version": "1", "default": "#);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(text(&gw.call("fixture__echo", json!({"a": 2}))), r#"{"a": 2}"#);
    // A valid edit applies to the next call of that server only.
    env.write(
        "policies/fixture.policy.json",
        r#"{"version": "1", "default": "allow", "tools": {"echo": {"action": "deny", "reason": "reloaded"}}}"#,
    );
    let started = Instant::now();
    loop {
        let answer = gw.call("fixture__echo", json!({"a": 3}));
        if text(&answer).contains("reloaded") {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the new policy never applied: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text(&gw.call("time__get_current_time", json!({"timezone": "UTC"}))).contains("UTC"));
}
