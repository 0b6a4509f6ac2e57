//! `toolwarden crawl` against hostile fixture servers (real processes, real pipes and loopback sockets),
//! one test per real-world behaviour, plus sources and real npm/PyPI servers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::{Env, fixture};

/// A child process killed when the test ends.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hostile(mode: &str) -> String {
    format!("python3 {} {mode}", fixture("crawl/hostile_stdio.py").display())
}

/// Crawl and return the one server's JSON report (exit status not checked).
fn crawl_one(env: &Env, args: &[&str]) -> (Value, std::process::Output) {
    let mut all = vec!["crawl", "--format", "json"];
    if !args.contains(&"--timeout") {
        all.extend(["--timeout", "5"]);
    }
    all.extend_from_slice(args);
    let out = env.run(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let reports: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}):\n{text}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(reports.as_array().map(Vec::len), Some(1), "{reports}");
    (reports[0].clone(), out)
}

fn names(report: &Value) -> Vec<String> {
    report["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn warnings(report: &Value) -> String {
    report["warnings"].to_string()
}

#[test]
fn a_log_line_on_stdout_before_jsonrpc_is_skipped_with_a_warning() {
    let env = Env::new();
    let (r, out) = crawl_one(&env, &["--stdio", &hostile("stdout-log")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["read_thing", "delete_thing"]);
    assert!(warnings(&r).contains("Starting hostile MCP server"), "{r}");
    assert!(out.status.success());
}

#[test]
fn notifications_before_the_response_are_tolerated() {
    let env = Env::new();
    let (r, _) = crawl_one(&env, &["--stdio", &hostile("notify-first")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["read_thing", "delete_thing"]);
}

#[test]
fn an_older_protocol_version_is_recorded() {
    let env = Env::new();
    let (r, _) = crawl_one(&env, &["--stdio", &hostile("old-version")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["protocol_version"], "2024-11-05");
}

#[test]
fn a_server_that_exits_without_its_env_var_reports_code_and_stderr() {
    let env = Env::new();
    let (r, out) = crawl_one(&env, &["--stdio", &hostile("needs-env")]);
    assert_eq!(r["ok"], false, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(error.contains("API_KEY environment variable is required"), "{error}");
    assert_eq!(out.status.code(), Some(1), "a failed server is a finding");
    assert_eq!(r["attempts"], 1, "an exit is not retried");
}

#[test]
fn a_server_that_never_answers_initialize_times_out_after_one_retry() {
    let env = Env::new();
    let (r, _) = crawl_one(&env, &["--timeout", "1", "--stdio", &hostile("silent")]);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("timed out at initialize"), "{r}");
    assert_eq!(r["attempts"], 2);
}

#[test]
fn megabytes_on_stdout_are_skipped_and_a_huge_line_is_dropped_not_held() {
    let env = Env::new();
    let (r, _) = crawl_one(&env, &["--timeout", "20", "--stdio", &hostile("megabytes")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["read_thing", "delete_thing"]);
    assert!(warnings(&r).contains("skipped a line of"), "{}", warnings(&r));
}

#[test]
fn odd_schemas_extra_keys_pages_and_empty_version_survive() {
    let env = Env::new();
    let capture = env.path("captures");
    let (r, _) = crawl_one(&env, &["--capture-dir", capture.to_str().unwrap(), "--stdio", &hostile("odd-schemas")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["no_type", "with_refs", "extra_keys", "page_two_tool", "no_schema_at_all"]);
    assert_eq!(r["server_info"]["version"], "");
    let captured: Value =
        serde_json::from_str(&std::fs::read_to_string(capture.join("hostile_stdio.json")).unwrap()).unwrap();
    assert_eq!(captured["cacheScope"], "public", "list-level keys are kept");
    assert_eq!(captured["ttlMs"], 60000);
    let extra = &captured["tools"][2];
    assert_eq!(extra["x-vendor-risk"], "low", "unknown tool keys are kept: {extra}");
    assert_eq!(extra["_meta"]["vendor/x"], 1);
    assert_eq!(extra["annotations"]["vendorHint"], "yes");
    assert!(captured["tools"][1]["inputSchema"]["$defs"]["Item"].is_object());
    assert!(captured["tools"][4].get("inputSchema").is_none());
}

#[test]
fn tools_list_changed_during_listing_lists_again() {
    let env = Env::new();
    let (r, _) = crawl_one(&env, &["--stdio", &hostile("list-changed")]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["first", "added_later"]);
    assert!(warnings(&r).contains("listed again"), "{r}");
}

#[test]
fn a_missing_command_is_named() {
    let env = Env::new();
    let (r, out) = crawl_one(&env, &["--stdio", "toolwarden-no-such-command --flag"]);
    assert_eq!(r["error"], "command not found: toolwarden-no-such-command");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn one_failure_does_not_stop_the_others() {
    let env = Env::new();
    let out = env.run([
        "crawl",
        "--format",
        "json",
        "--stdio",
        &hostile("needs-env"),
        "--stdio",
        &hostile("old-version"),
        "--stdio",
        "toolwarden-no-such-command",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let oks: Vec<bool> = reports.as_array().unwrap().iter().map(|r| r["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [false, true, false], "results in input order");
    let servers: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["hostile_stdio", "hostile_stdio-2", "toolwarden-no-such-command"]);
}

/// Start the HTTP fixture in `mode` and return it with its port.
fn http_fixture(mode: &str) -> (Guard, u16) {
    let mut child = Command::new("python3")
        .arg(fixture("crawl/hostile_http.py"))
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("PORT line");
    (Guard(child), port)
}

#[test]
fn http_401_403_404_are_reported_as_such() {
    for status in ["401", "403", "404"] {
        let (_server, port) = http_fixture(status);
        let env = Env::new();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let (r, out) = crawl_one(&env, &["--http", &url]);
        assert_eq!(r["ok"], false, "{r}");
        let error = r["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("HTTP {status} from {url}")), "{error}");
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn an_http_server_that_needs_a_host_header_is_retried_with_localhost() {
    let (_server, port) = http_fixture("host");
    let env = Env::new();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (r, out) = crawl_one(&env, &["--http", &url]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(names(&r), ["http_tool"]);
    assert!(warnings(&r).contains(&format!("Host: localhost:{port}")), "{r}");
    assert!(out.status.success());
    // An explicit Host header is respected, not second-guessed.
    let (r, _) = crawl_one(&env, &["--http", &url, "--header", "Host: evil.example"]);
    assert!(r["error"].as_str().unwrap().contains("HTTP 403"), "{r}");
    let (r, _) = crawl_one(&env, &["--http", &url, "--header", "Host: localhost"]);
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn config_files_start_programs_only_with_consent() {
    let env = Env::new();
    let script = fixture("crawl/hostile_stdio.py");
    let config = env.write(
        "servers.toml",
        format!("[servers.legacy]\ncommand = \"python3\"\nargs = [{:?}, \"old-version\"]\n", script.display()),
    );
    // No terminal (the test's stdin is not one) and no --yes: refuse, start nothing.
    let out = env.run(["crawl", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("legacy") && stderr.contains("--yes"), "{stderr}");
    let out = env.run(["crawl", "--format", "json", "--yes", "--config", config.to_str().unwrap()]);
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["server"], "legacy");
    assert_eq!(reports[0]["protocol_version"], "2024-11-05");
}

#[test]
fn json_config_files_and_client_configs_are_read() {
    let env = Env::new();
    let script = fixture("crawl/hostile_stdio.py").display().to_string();
    let json = serde_json::json!({"servers": {"a": {"command": "python3", "args": [script, "notify-first"]}}});
    let config = env.write("servers.json", json.to_string());
    let claude = env.write(
        "claude.json",
        serde_json::json!({"mcpServers": {"b": {"command": "python3", "args": [script, "old-version"]},
                                          "off": {"command": "x", "disabled": true}}})
        .to_string(),
    );
    // VS Code writes JSONC with comments and `type`.
    let vscode = env.write(
        ".vscode/mcp.json",
        format!("{{\n // mine\n \"servers\": {{\"c\": {{\"type\": \"stdio\", \"command\": \"python3\", \"args\": [{script:?}, \"stdout-log\"],}}}}\n}}"),
    );
    let out = env.run([
        "crawl",
        "--format",
        "json",
        "--yes",
        "--config",
        config.to_str().unwrap(),
        "--client-config",
        claude.to_str().unwrap(),
        "--client-config",
        vscode.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let servers: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["a", "b", "c"]);
}

#[test]
fn client_config_without_a_file_discovers_well_known_locations() {
    let env = Env::new();
    let script = fixture("crawl/hostile_stdio.py").display().to_string();
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    env.write(
        "home/.cursor/mcp.json",
        serde_json::json!({"mcpServers": {"cursor-one": {"command": "python3", "args": [script, "old-version"]}}})
            .to_string(),
    );
    env.write(
        ".mcp.json",
        serde_json::json!({"mcpServers": {"project-one": {"command": "python3", "args": [script, "notify-first"]}}})
            .to_string(),
    );
    let out = env
        .cmd()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .args(["crawl", "--format", "json", "--yes", "--client-config"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("found Cursor config") && stderr.contains("found Claude Code (project) config"),
        "{stderr}"
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut servers: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["server"].as_str().unwrap()).collect();
    servers.sort();
    assert_eq!(servers, ["cursor-one", "project-one"]);
}

#[test]
fn registry_entries_become_targets() {
    let env = Env::new();
    let registry = env.write(
        "registry.json",
        serde_json::json!({"servers": [{"server": {"name": "io.example/nothing-here",
            "remotes": [{"type": "streamable-http", "url": "http://127.0.0.1:1/mcp"}]}}]})
        .to_string(),
    );
    let (r, _) = crawl_one(&env, &["--timeout", "1", "--registry", registry.to_str().unwrap()]);
    assert_eq!(r["server"], "nothing-here");
    assert_eq!(r["target"], "http://127.0.0.1:1/mcp");
    assert!(r["error"].as_str().unwrap().starts_with("cannot connect"), "{r}");
}

#[test]
fn nothing_to_crawl_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(["crawl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to crawl"));
}

/// The registry fixture (`registry_server.py`) over a copy of `registry/servers.json`, two entries per page.
struct Registry {
    _guard: Guard,
    url: String,
    entries: std::path::PathBuf,
    hang: std::path::PathBuf,
}

impl Registry {
    fn start(env: &Env) -> Registry {
        let entries = env.write("servers.json", std::fs::read(fixture("crawl/registry/servers.json")).unwrap());
        let hang = env.path("hang.txt");
        let mut child = Command::new("python3")
            .arg(fixture("crawl/registry_server.py"))
            .args([entries.as_os_str(), "2".as_ref(), hang.as_os_str()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().to_string();
        Registry { _guard: Guard(child), url: format!("http://127.0.0.1:{port}"), entries, hang }
    }

    /// How many sessions each remote was asked to start.
    fn stats(&self) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { reqwest::get(format!("{}/stats", self.url)).await.unwrap().json().await.unwrap() })
    }

    fn crawl(&self, env: &Env) -> (Value, String) {
        let out = env.run(["crawl", "--format", "json", "--yes", "--timeout", "5", "--registry-url", &self.url]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let reports = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (reports, stderr)
    }
}

#[test]
fn a_registry_api_is_crawled_page_by_page_resumed_after_a_kill_and_skipped_at_the_same_version() {
    let env = Env::new();
    let registry = Registry::start(&env);
    // First run: one remote hangs; the crawl is killed while it waits on it.
    std::fs::write(&registry.hang, "slow\n").unwrap();
    let mut first = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .current_dir(env.dir.path())
        .args(["crawl", "--format", "json", "--yes", "--timeout", "60", "--concurrency", "1"])
        .args(["--registry-url", &registry.url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while registry.stats().get("slow").is_none() {
        assert!(waited.elapsed().as_secs() < 30, "the crawl never reached the slow server: {}", registry.stats());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Killed once what was listed before the slow server is recorded (stored, then written to the state).
    let recorded = || -> usize {
        let Ok(dir) = std::fs::read_dir(env.data_dir().join("registry")) else { return 0 };
        dir.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
            .map(|state| state["done"].as_object().map_or(0, |d| d.len()))
            .sum()
    };
    let others = || registry.stats().as_object().unwrap().keys().filter(|k| *k != "slow").count();
    while recorded() < others() {
        assert!(waited.elapsed().as_secs() < 30, "the state never caught up: {}", registry.stats());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before_kill = registry.stats();
    // Second run: what was catalogued before the kill is skipped, the rest is crawled.
    std::fs::write(&registry.hang, "").unwrap();
    let (reports, stderr) = registry.crawl(&env);
    assert!(stderr.contains("6 entries on 3 page(s)"), "{stderr}");
    let skipped = before_kill.as_object().unwrap().keys().filter(|k| *k != "slow").count();
    assert!(stderr.contains(&format!("{skipped} already catalogued")), "{stderr}");
    let crawled: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert!(crawled.contains(&"slow") && !crawled.iter().any(|s| before_kill.get(*s).is_some() && *s != "slow"));
    // Packages from the registry run sandboxed, offline: npx cannot install, and says so.
    let memory = reports.as_array().unwrap().iter().find(|r| r["server"] == "server-memory").unwrap();
    assert!(memory["error"].as_str().unwrap().contains("--sandbox-network"), "{memory}");
    let stats = registry.stats();
    for remote in ["alpha", "beta", "gamma"] {
        assert_eq!(stats[remote], 1, "{remote} was crawled exactly once: {stats}");
    }
    assert_eq!(stats["slow"], 2, "{stats}");
    // Third run: every remote is catalogued at its version; only the failed packages are tried again.
    let (reports, stderr) = registry.crawl(&env);
    assert!(stderr.contains("4 already catalogued at the same version, 2 to crawl"), "{stderr}");
    assert_eq!(reports.as_array().unwrap().len(), 2);
    assert_eq!(registry.stats(), stats);
    // A new version of one entry is crawled again.
    let mut entries: Value = serde_json::from_slice(&std::fs::read(&registry.entries).unwrap()).unwrap();
    let gamma =
        entries.as_array_mut().unwrap().iter_mut().find(|e| e["server"]["name"].as_str().unwrap().ends_with("/gamma"));
    gamma.unwrap()["server"]["version"] = "1.1.0".into();
    std::fs::write(&registry.entries, entries.to_string()).unwrap();
    let (_, stderr) = registry.crawl(&env);
    assert!(stderr.contains("3 already catalogued at the same version, 3 to crawl"), "{stderr}");
    assert_eq!(registry.stats()["gamma"], 2);
}
