//! `toolwarden proxy --restart N`: a crashed stdio server is restarted and the client's handshake replayed,
//! through the real binary with real child processes (the python fixture, which logs every initialize,
//! notification and call with its pid to `events.log`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::{Value, json};

use super::{HttpProxy, McpHttp, PATIENCE, POLICY, StdioProxy, runtime, text, tool_names};
use crate::util::{Env, fixture};

/// The fixture as the upstream command, with extra environment for it (and its event log).
fn server_with(env: &Env, vars: &[(&str, String)]) -> Vec<String> {
    let mut args = vec!["--".to_string(), "env".to_string(), format!("EVENT_LOG={}", env.path("events.log").display())];
    args.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
    args.extend(["python3".to_string(), fixture("proxy/server.py").display().to_string()]);
    args
}

fn events(env: &Env) -> Vec<Value> {
    let log = std::fs::read_to_string(env.path("events.log")).unwrap_or_default();
    log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn of<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == json!(event)).collect()
}

/// The audit log's proxy events (not decisions), in order.
fn audit_events(env: &Env) -> Vec<Value> {
    let audit = std::fs::read_to_string(env.path("audit.jsonl")).unwrap_or_default();
    audit.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v.get("event").is_some()).collect()
}

fn args<'a>(flags: &[&'a str], server: &'a [String]) -> Vec<&'a str> {
    flags.iter().copied().chain(server.iter().map(String::as_str)).collect()
}

/// What a session's second process saw: its initialize was the client's, under the proxy's id, followed by
/// `notifications/initialized`; returns the two pids.
fn assert_replayed(env: &Env) -> (u64, u64) {
    let events = events(env);
    let inits = of(&events, "initialize");
    assert_eq!(inits.len(), 2, "{events:?}");
    let (first, second) = (inits[0]["pid"].as_u64().unwrap(), inits[1]["pid"].as_u64().unwrap());
    assert_ne!(first, second, "a new process");
    assert!(inits[1]["id"].as_str().is_some_and(|id| id.starts_with("toolwarden-")), "{}", inits[1]);
    assert_eq!(inits[1]["params"], inits[0]["params"], "the client's own initialize, replayed");
    assert_eq!(inits[1]["params"]["clientInfo"]["name"], json!("test"));
    let second_events: Vec<&str> =
        events.iter().filter(|e| e["pid"] == json!(second)).map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(second_events[..2], ["initialize", "notifications/initialized"], "{second_events:?}");
    (first, second)
}

/// Crash the server with a call (which gets the error), then wait for the proxy to give up: its stderr.
fn crash_until_given_up(mut proxy: StdioProxy) -> String {
    let crash = proxy.call("crash", json!({}));
    assert_eq!(crash["error"]["code"], json!(-32000), "{crash}");
    let status = proxy.child.wait().unwrap();
    let mut stderr = String::new();
    proxy.child.stderr.as_mut().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_crashed_stdio_server_is_restarted_and_the_handshake_replayed() {
    let env = Env::new();
    let go = env.path("replay.go");
    let server = server_with(&env, &[("HOLD_REPLAY", go.display().to_string())]);
    let flags = ["--restart", "3", "--restart-backoff", "0.01", "--audit", "audit.jsonl"];
    let mut proxy = StdioProxy::start(&env, POLICY, &args(&flags, &server));
    assert_eq!(text(&proxy.call("echo", json!({"n": 1}))), r#"{"n": 1}"#);

    let crash = proxy.call("crash", json!({}));
    assert_eq!(crash["error"]["code"], json!(-32000), "{crash}");
    assert!(crash["error"]["message"].as_str().unwrap().contains("exit status: 3"), "{crash}");
    // The new process holds its handshake until `replay.go` exists: until then the client is told to retry,
    // and its notifications are dropped rather than sent to a server that is not initialised.
    let ping = proxy.request("ping", json!({}));
    assert_eq!(ping["error"]["message"], json!("toolwarden: the upstream server is restarting; retry"), "{ping}");
    proxy.send_raw(r#"[{"jsonrpc":"2.0","id":"b1","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]"#);
    let batch = proxy.recv();
    assert_eq!(batch[0]["id"], json!("b1"), "{batch}");
    assert_eq!(batch[0]["error"]["code"], json!(-32000), "{batch}");
    assert_eq!(batch.as_array().unwrap().len(), 1, "{batch}");
    std::fs::write(&go, "").unwrap();

    // The server advertised tools.listChanged: the client is told to list again (the new process may differ).
    assert_eq!(proxy.recv(), json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
    assert_eq!(text(&proxy.call("echo", json!({"n": 2}))), r#"{"n": 2}"#);
    let list = proxy.request("tools/list", json!({}));
    assert_eq!(tool_names(&list), ["echo", "fail", "ask", "hang", "crash", "chatty"], "still filtered");
    assert!(text(&proxy.call("nuke", json!({}))).starts_with("Refused by toolwarden"));
    let (ok, stderr) = proxy.finish();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("the upstream server exited (exit status: 3); restarting it"), "{stderr}");

    let (first, second) = assert_replayed(&env);
    let events = events(&env);
    let calls: Vec<(u64, &str)> =
        of(&events, "call").iter().map(|e| (e["pid"].as_u64().unwrap(), e["name"].as_str().unwrap())).collect();
    assert_eq!(calls, [(first, "echo"), (first, "crash"), (second, "echo")]);
    assert!(of(&events, "notifications/roots/list_changed").is_empty(), "dropped while restarting: {events:?}");

    let audit = audit_events(&env);
    let names: Vec<&str> = audit.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["upstream_exited", "upstream_restarted"], "{audit:?}");
    assert!(audit[0]["message"].as_str().unwrap().contains("restart 1 of 3"), "{audit:?}");
    assert_eq!(audit[1]["ok"], json!(true));
}

#[test]
fn a_server_that_always_crashes_is_given_up_after_n_restarts() {
    let env = Env::new();
    let policy = env.write("policy.json", POLICY);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
        .current_dir(env.dir.path())
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .args(["proxy", "--restart", "2", "--restart-backoff", "0.01", "--audit", "audit.jsonl", "--policy"])
        .arg(&policy)
        .args(["--", "python3", "-c", "import sys; sys.exit(5)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    // The proxy's stdin stays open: it is the upstream that ends the session.
    let stderr = rx.recv_timeout(PATIENCE).expect("the proxy gave up and exited");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: the upstream server exited (exit status: 5; gave up after 2 restarts in a row (--restart 2))"
        ),
        "{stderr}"
    );
    let names: Vec<String> = audit_events(&env).iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        names,
        ["upstream_exited", "upstream_restarted", "upstream_exited", "upstream_restarted", "upstream_given_up"]
    );
}

#[test]
fn a_restarted_server_speaking_another_protocol_version_ends_the_session() {
    let env = Env::new();
    let server = server_with(&env, &[("REPLAY_PROTOCOL", "2024-11-05".to_string())]);
    let proxy = StdioProxy::start(&env, POLICY, &args(&["--restart", "3", "--restart-backoff", "0.01"], &server));
    let stderr = crash_until_given_up(proxy);
    assert!(
        stderr.contains("the restarted server answered initialize with protocol version 2024-11-05, but this session uses 2025-06-18"),
        "{stderr}"
    );
}

#[test]
fn an_http_session_keeps_its_id_across_a_restart_of_its_child() {
    let env = Env::new();
    let go = env.path("replay.go");
    let server = server_with(&env, &[("HOLD_REPLAY", go.display().to_string())]);
    let proxy = HttpProxy::start(&env, "p", POLICY, &args(&["--restart", "2", "--restart-backoff", "0.01"], &server));
    runtime().block_on(async {
        let mut client = McpHttp::new(&proxy.url, None);
        client.initialize().await;
        assert_eq!(text(&client.call(1, "echo").await), "{}");
        let crash = client.call(2, "crash").await;
        assert_eq!(crash["error"]["code"], json!(-32000), "{crash}");
        let ping = client.request(3, "ping", json!({})).await;
        assert_eq!(ping["error"]["message"], json!("toolwarden: the upstream server is restarting; retry"));
        std::fs::write(&go, "").unwrap();
        // The list-changed notice waits in the session's backlog until a stream opens.
        let response = client
            .http
            .get(&client.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", client.session.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let mut stream = super::Answer { response, buf: String::new(), json: false, done: false };
        let note = stream.next().await.unwrap();
        assert_eq!(note, json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
        assert_eq!(text(&client.call(4, "echo").await), "{}");
        let list = client.request(5, "tools/list", json!({})).await;
        assert_eq!(tool_names(&list), ["echo", "fail", "ask", "hang", "crash", "chatty"]);
    });
    let (first, second) = assert_replayed(&env);
    let events = events(&env);
    let calls: Vec<(u64, &str)> =
        of(&events, "call").iter().map(|e| (e["pid"].as_u64().unwrap(), e["name"].as_str().unwrap())).collect();
    assert_eq!(calls, [(first, "echo"), (first, "crash"), (second, "echo")]);
}

#[test]
fn a_server_that_crashes_before_the_handshake_is_restarted_without_a_replay() {
    let env = Env::new();
    let marker = env.path("crashed-once");
    let server = server_with(&env, &[("CRASH_FIRST_INITIALIZE", marker.display().to_string())]);
    let mut proxy = StdioProxy::spawn(&env, POLICY, &args(&["--restart", "3", "--restart-backoff", "0.01"], &server));
    let params = json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}});
    let failed = proxy.request("initialize", params.clone());
    assert_eq!(failed["error"]["code"], json!(-32000), "the first process died on it: {failed}");
    // No handshake completed, so there is none to replay: the next process waits for the client's own. Until it
    // is up the client is told to retry (bounded; each answer is checked).
    let mut init = None;
    for _ in 0..500 {
        let answer = proxy.request("initialize", params.clone());
        if answer.get("result").is_some() {
            init = Some(answer);
            break;
        }
        assert_eq!(answer["error"]["message"], json!("toolwarden: the upstream server is restarting; retry"));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(init.expect("initialized after the restart")["result"]["serverInfo"]["name"], json!("proxy-fixture"));
    proxy.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(text(&proxy.call("echo", json!({}))), "{}");
    let inits: Vec<Value> = of(&events(&env), "initialize").into_iter().cloned().collect();
    assert_eq!(inits.len(), 2, "{inits:?}");
    assert!(inits.iter().all(|i| i["id"].is_u64()), "both are the client's own: {inits:?}");

    // The handshake learned from the second process is the one replayed to the third.
    let crash = proxy.call("crash", json!({}));
    assert_eq!(crash["error"]["code"], json!(-32000), "{crash}");
    assert_eq!(proxy.recv()["method"], json!("notifications/tools/list_changed"));
    assert_eq!(text(&proxy.call("echo", json!({"again": true}))), r#"{"again": true}"#);
    let inits: Vec<Value> = of(&events(&env), "initialize").into_iter().cloned().collect();
    assert_eq!(inits.len(), 3, "{inits:?}");
    assert!(inits[2]["id"].as_str().is_some_and(|id| id.starts_with("toolwarden-")), "{inits:?}");
    assert_eq!(inits[2]["params"], inits[1]["params"]);
}

#[test]
fn a_restarted_server_that_never_answers_the_replayed_initialize_is_killed_and_counted() {
    let env = Env::new();
    // `replay.go` is never written: the restarted process holds its handshake until --call-timeout kills it.
    let server = server_with(&env, &[("HOLD_REPLAY", env.path("replay.go").display().to_string())]);
    let flags = ["--restart", "1", "--restart-backoff", "0.01", "--call-timeout", "0.5"];
    let proxy = StdioProxy::start(&env, POLICY, &args(&flags, &server));
    let stderr = crash_until_given_up(proxy);
    assert!(stderr.contains("did not answer the replayed initialize"), "{stderr}");
    assert!(stderr.contains("gave up after 1 restart in a row (--restart 1))"), "{stderr}");
    let inits = of(&events(&env), "initialize").len();
    assert_eq!(inits, 2, "the original process and the one that was killed");
}

#[test]
fn a_client_that_leaves_during_the_back_off_ends_the_proxy_without_a_restart() {
    let env = Env::new();
    let server = server_with(&env, &[]);
    // Ten minutes of back-off: the proxy exits in time only because the client leaving interrupts the wait.
    let flags = ["--restart", "3", "--restart-backoff", "600", "--audit", "audit.jsonl"];
    let mut proxy = StdioProxy::start(&env, POLICY, &args(&flags, &server));
    let crash = proxy.call("crash", json!({}));
    assert_eq!(crash["error"]["code"], json!(-32000), "{crash}");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(proxy.finish());
    });
    let (ok, stderr) = rx.recv_timeout(PATIENCE).expect("the proxy exited during the back-off");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("restarting it in 600.000 s (restart 1 of 3 in a row)"), "{stderr}");
    assert_eq!(of(&events(&env), "initialize").len(), 1, "no second process");
    let names: Vec<String> = audit_events(&env).iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["upstream_exited"], "leaving is not a failure to restart");
}
