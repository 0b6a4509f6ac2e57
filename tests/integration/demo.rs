//! The built-in demo server over stdio and Streamable HTTP, crawled by the real binary; the real npm and
//! PyPI servers installed by `scripts/test-deps.sh`; and `quickstart`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::crawl::Guard;
use crate::util::Env;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("toolwarden")
}

fn demo_stdio() -> String {
    format!("{} demo-server", bin().display())
}

/// The demo server's tool names, asked from the library (not copied into the test).
fn demo_tool_names() -> Vec<String> {
    toolwarden::demo::DemoServer::new()
        .tool_definitions()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn crawl(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["crawl", "--format", "json"];
    all.extend_from_slice(args);
    let json = env.json(&all);
    json.as_array().unwrap().clone()
}

fn names(report: &Value) -> Vec<String> {
    report["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

#[test]
fn the_demo_server_is_crawled_over_stdio() {
    let env = Env::new();
    let reports = crawl(&env, &["--stdio", &demo_stdio()]);
    let r = &reports[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["server_info"]["name"], "toolwarden-demo");
    assert_eq!(r["protocol_version"], "2025-11-25", "we offer the newest version with initialize");
    assert_eq!(names(r), demo_tool_names());
    for expected in ["create_refund", "delete_customer", "manage_customer", "run_report", "summarize_with_model"] {
        assert!(names(r).iter().any(|n| n == expected), "{expected} missing");
    }
}

/// `demo-server --http 127.0.0.1:0` and the URL it printed.
fn demo_http() -> (Guard, String) {
    let mut child = Command::new(bin())
        .args(["demo-server", "--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, _) = crate::util::announced(&mut child, "demo-server listening on ");
    (Guard(child), url)
}

#[test]
fn the_demo_server_is_crawled_over_streamable_http() {
    let (_server, url) = demo_http();
    let env = Env::new();
    let reports = crawl(&env, &["--http", &url]);
    assert_eq!(reports[0]["ok"], true, "{}", reports[0]);
    assert_eq!(names(&reports[0]), demo_tool_names());
}

/// Crawl the demo server with `--capture-dir` and return the path of its capture.
fn demo_capture(env: &Env) -> PathBuf {
    let dir = env.path("captures");
    crawl(env, &["--capture-dir", dir.to_str().unwrap(), "--stdio", &demo_stdio()]);
    dir.join("toolwarden.json")
}

#[test]
fn the_capture_of_the_demo_server_is_what_it_lists() {
    let env = Env::new();
    let capture: Value = serde_json::from_str(&std::fs::read_to_string(demo_capture(&env)).unwrap()).unwrap();
    insta::assert_json_snapshot!("demo_server_capture", capture);
}

#[test]

fn the_capture_of_the_demo_server_classifies_as_snapshotted() {
    let env = Env::new();
    let demo = env.write("demo.json", std::fs::read(demo_capture(&env)).unwrap());
    let classified = env.json(["classify", "--format", "json", demo.to_str().unwrap()]);
    insta::assert_json_snapshot!("demo_server_classified", classified);
}

#[test]
fn quickstart_crawls_the_demo_server_and_prints_the_risk_table() {
    let env = Env::new();
    let out = env.ok(["quickstart"]);
    for name in demo_tool_names() {
        assert!(out.contains(&name), "{name} missing from:\n{out}");
    }
    assert!(out.contains("tools from the demo server"), "{out}");
    let json = env.json(["quickstart", "--format", "json"]);
    assert_eq!(json.as_array().unwrap().len(), demo_tool_names().len());
}

/// A real server installed by `scripts/test-deps.sh`; fails (never skips) when it is missing.
fn dep(var: &str) -> String {
    let Some(path) = std::env::var_os(var) else {
        panic!(
            "{var} is not set: run the tests through scripts/test, which installs the real MCP servers \
             (scripts/test-deps.sh) and exports their paths"
        );
    };
    let path = PathBuf::from(path);
    assert!(path.exists(), "{var}={} does not exist: re-run scripts/test to install it", path.display());
    path.display().to_string()
}

/// The tool names a server lists, asked with a tiny independent MCP exchange (python3, no toolwarden code).
fn names_via_python(command: &[String]) -> Vec<String> {
    let script = r#"
import json, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
def send(m): p.stdin.write(json.dumps(m) + "\n"); p.stdin.flush()
def answer(i):
    for line in p.stdout:
        try: m = json.loads(line)
        except ValueError: continue
        if m.get("id") == i: return m
send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
answer(1)
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
names, cursor, i = [], None, 2
while True:
    send({"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": {"cursor": cursor} if cursor else {}})
    r = answer(i)["result"]; names += [t["name"] for t in r["tools"]]; cursor = r.get("nextCursor"); i += 1
    if not cursor: break
print(json.dumps(names)); p.kill()
"#;
    let out = Command::new("python3").arg("-c").arg(script).args(command).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check_real_stdio(command: Vec<String>) {
    let env = Env::new();
    let line = command.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let reports = crawl(&env, &["--timeout", "60", "--stdio", &line]);
    let r = &reports[0];
    assert_eq!(r["ok"], true, "{r}");
    let expected = names_via_python(&command);
    assert!(!expected.is_empty());
    let mut got = names(r);
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(r["tool_count"].as_u64(), Some(expected.len() as u64));
}

#[test]
fn real_server_everything_over_stdio() {
    check_real_stdio(vec![dep("TOOLWARDEN_TEST_EVERYTHING"), "stdio".into()]);
}

#[test]
fn real_server_filesystem_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    check_real_stdio(vec![dep("TOOLWARDEN_TEST_FILESYSTEM"), dir.path().display().to_string()]);
}

#[test]
fn real_server_memory_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new();
    let memory = dep("TOOLWARDEN_TEST_MEMORY");
    // Through a catalogue file, because the memory server takes its file from the environment.
    let config = env.write(
        "servers.json",
        serde_json::json!({"servers": {"memory": {"command": memory,
            "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl")}}}})
        .to_string(),
    );
    let reports = crawl(&env, &["--yes", "--timeout", "60", "--config", config.to_str().unwrap()]);
    assert_eq!(reports[0]["ok"], true, "{}", reports[0]);
    let mut got = names(&reports[0]);
    got.sort();
    let mut expected = names_via_python(&[memory]);
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn real_server_time_from_pypi_over_stdio() {
    check_real_stdio(vec![dep("TOOLWARDEN_TEST_TIME"), "--local-timezone".into(), "UTC".into()]);
}

#[test]
fn real_server_everything_over_streamable_http() {
    let everything = dep("TOOLWARDEN_TEST_EVERYTHING");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(&everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Guard(child);
    // Ready when the port accepts connections (bounded, so a server that never listens fails the test).
    let ready = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(ready, "server-everything never listened on port {port}");
    let env = Env::new();
    let reports = crawl(&env, &["--timeout", "60", "--http", &format!("http://127.0.0.1:{port}/mcp")]);
    assert_eq!(reports[0]["ok"], true, "{}", reports[0]);
    let mut got = names(&reports[0]);
    got.sort();
    let mut expected = names_via_python(&[everything, "stdio".into()]);
    expected.sort();
    assert_eq!(got, expected, "the same server lists the same tools over HTTP and stdio");
}

/// A raw JSON-RPC session with `toolwarden demo-server` over its real stdin/stdout.
struct Session {
    child: Guard,
    reader: BufReader<std::process::ChildStdout>,
    next_id: u64,
    /// Notifications and server requests seen while waiting for responses.
    seen: Vec<Value>,
}

impl Session {
    fn start(sampling: bool) -> Session {
        let mut child = Command::new(bin())
            .arg("demo-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut s = Session { child: Guard(child), reader, next_id: 0, seen: Vec::new() };
        let caps = if sampling { serde_json::json!({"sampling": {}}) } else { serde_json::json!({}) };
        s.request(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": caps,
                               "clientInfo": {"name": "test", "version": "1"}}),
        );
        s.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, message: &Value) {
        use std::io::Write;
        let stdin = self.child.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        assert!(self.reader.read_line(&mut line).unwrap() > 0, "demo-server closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
    }

    /// Send a request and return its `result` (panics on a JSON-RPC error).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.read();
            if message["id"] == id && message.get("method").is_none() {
                assert!(message.get("error").is_none(), "{message}");
                return message["result"].clone();
            }
            self.seen.push(message);
        }
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", serde_json::json!({"name": tool, "arguments": args}))
    }

    fn tool_names(&mut self) -> Vec<String> {
        let result = self.request("tools/list", serde_json::json!({}));
        result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

#[test]
fn demo_tools_really_change_the_in_memory_shop() {
    let mut s = Session::start(false);
    let created = s.call("create_customer", serde_json::json!({"customer": {"name": "Ed", "email": "ed@x"}}));
    assert_eq!(created["isError"], false, "{created}");
    let id = serde_json::from_str::<Value>(&text(&created)).unwrap()["id"].as_str().unwrap().to_string();
    let got = s.call("get_customer", serde_json::json!({"id": id}));
    assert_eq!(got["structuredContent"]["customer"]["name"], "Ed", "{got}");
    let deleted = s.call("delete_customer", serde_json::json!({"id": id}));
    assert_eq!(deleted["isError"], false);
    let gone = s.call("get_customer", serde_json::json!({"id": id}));
    assert_eq!(gone["isError"], true, "{gone}");

    let refund = s.call("create_refund", serde_json::json!({"order_id": "o-1", "amount": 1000, "currency": "EUR"}));
    assert_eq!(refund["isError"], false, "{refund}");
    let too_much = s.call("create_refund", serde_json::json!({"order_id": "o-1", "amount": 999999, "currency": "EUR"}));
    assert_eq!(too_much["isError"], true, "a refund cannot exceed the order: {too_much}");
    let report = s.call("run_report", serde_json::json!({"sql": "SELECT * FROM refunds"}));
    assert_eq!(serde_json::from_str::<Value>(&text(&report)).unwrap().as_array().unwrap().len(), 1);
    let bad = s.call("run_report", serde_json::json!({"sql": "DROP TABLE customers"}));
    assert_eq!(bad["isError"], true);
}

#[test]
fn flaky_sync_always_returns_is_error() {
    let mut s = Session::start(false);
    let r = s.call("flaky_sync", serde_json::json!({}));
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("unreachable"));
}

#[test]
fn slow_export_is_bounded_and_returns_csv() {
    let mut s = Session::start(false);
    let r = s.call("slow_export", serde_json::json!({"seconds": 0.1}));
    assert!(text(&r).starts_with("id,name,email,status"), "{r}");
    // A negative duration is clamped to zero rather than rejected.
    let r = s.call("slow_export", serde_json::json!({"seconds": -5}));
    assert_eq!(r["isError"], false, "{r}");
}

#[test]
fn enable_beta_tools_sends_list_changed_and_adds_a_tool() {
    let mut s = Session::start(false);
    let before = s.tool_names();
    assert!(!before.iter().any(|n| n == "bulk_import_customers"));
    s.call("enable_beta_tools", serde_json::json!({}));
    assert!(
        s.seen.iter().any(|m| m["method"] == "notifications/tools/list_changed"),
        "no list_changed among {:?}",
        s.seen
    );
    let after = s.tool_names();
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.iter().any(|n| n == "bulk_import_customers"));
}

#[test]
fn summarize_with_model_asks_the_client_for_sampling() {
    let mut without = Session::start(false);
    let r = without.call("summarize_with_model", serde_json::json!({"customer_id": "c-1"}));
    assert_eq!(r["isError"], true, "{r}");

    let mut s = Session::start(true);
    s.next_id += 1;
    let id = s.next_id;
    s.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": "summarize_with_model", "arguments": {"customer_id": "c-1"}}}));
    let request = s.read();
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    assert!(request["params"]["messages"][0]["content"]["text"].as_str().unwrap().contains("c-1"));
    s.send(&serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "Ada buys engines."}, "model": "test-model"}}));
    let response = s.read();
    assert_eq!(response["id"], id);
    assert!(text(&response["result"]).contains("Ada buys engines."), "{response}");
}
