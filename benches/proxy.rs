//! The cost of the proxy: the same cheap tool called directly and through `toolwarden proxy`, in one run.
//!
//! The upstream is this bench binary itself, re-executed as a minimal MCP server (`echo` over newline JSON-RPC
//! on stdio, or over Streamable HTTP with JSON answers), so the figures measure the proxy rather than a
//! server's runtime. stdio: one client, calls in sequence, latency per call. HTTP: 16 concurrent clients,
//! each with its own session, calls in sequence per client, total throughput.
//!
//! The Redis column runs the proxy with `--state` against a private `redis-server` on a free loopback port
//! (`TOOLWARDEN_TEST_REDIS_SERVER`, else `redis-server` on the PATH; skipped when there is none): the policy
//! charges two counters per call, reserved in one script round trip. The SQLite row runs it with
//! `--state sqlite` (the counters in the temp catalogue database: one `BEGIN IMMEDIATE` transaction per call).
//!
//! `cargo bench --bench proxy` (env `BENCH_CALLS` sets the calls per stdio run, default 20000).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SERVER_ENV: &str = "TOOLWARDEN_BENCH_SERVER";
const POLICY: &str = r#"{"version":"1","default":"deny","hide":["other"],
  "tools":{"echo":{"limits":[{"counter":"echo","window":"minute","max":1000000000,"scope":"session"}]},
           "*":{"limits":[{"counter":"all","window":"minute","max":1000000000,"scope":"global"}]}}}"#;

fn main() {
    match std::env::var(SERVER_ENV).as_deref() {
        Ok("stdio") => return serve_stdio(),
        Ok(port) if port.starts_with("http:") => return serve_http(&port[5..]),
        Ok(spec) if spec.starts_with("relay:") => return null_relay(&spec[6..]),
        _ => {}
    }
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let exe = std::env::current_exe().unwrap();
    let toolwarden = env!("CARGO_BIN_EXE_toolwarden");
    let policy = policy.to_str().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // Every proxy records its decisions in the catalogue's audit table: keep that catalogue in the temp dir.
    let data = dir.path().join("data");

    // `BENCH_PART=stdio|http` runs one half (for profiling one path); both by default.
    let part = std::env::var("BENCH_PART").unwrap_or_default();
    let redis = Redis::start();
    if part != "http" {
        stdio_part(&exe, toolwarden, policy, &audit, &data, redis.as_ref(), calls);
    }
    if part != "stdio" {
        http_part(&exe, toolwarden, policy, &data, redis.as_ref(), calls);
    }
}

fn stdio_part(
    exe: &std::path::Path,
    toolwarden: &str,
    policy: &str,
    audit: &std::path::Path,
    data: &std::path::Path,
    redis: Option<&Redis>,
    calls: usize,
) {
    println!("stdio, 1 client, {calls} sequential calls of `echo`:");
    let direct = stdio_run(Command::new(exe), calls);
    let mut bare = Command::new(toolwarden);
    bare.env("TOOLWARDEN_DATA_DIR", data);
    bare.args(["proxy", "--policy", policy, "--no-audit-db", "--"]).arg(exe);
    let without_db = stdio_run(bare, calls);
    // `--restart` puts a supervisor on the message path (a read lock and a mutex per message): same flags otherwise.
    let mut supervised = Command::new(toolwarden);
    supervised.env("TOOLWARDEN_DATA_DIR", data);
    supervised.args(["proxy", "--policy", policy, "--no-audit-db", "--restart", "3", "--"]).arg(exe);
    let with_restart = stdio_run(supervised, calls);
    let mut proxy = Command::new(toolwarden);
    proxy.env("TOOLWARDEN_DATA_DIR", data);
    proxy.args(["proxy", "--policy", policy, "--"]).arg(exe);
    let proxied = stdio_run(proxy, calls);
    let mut audited = Command::new(toolwarden);
    audited.env("TOOLWARDEN_DATA_DIR", data);
    audited.args(["proxy", "--policy", policy, "--audit", audit.to_str().unwrap(), "--"]).arg(exe);
    let with_audit = stdio_run(audited, calls);
    let mut sqlite = Command::new(toolwarden);
    sqlite.env("TOOLWARDEN_DATA_DIR", data);
    sqlite.args(["proxy", "--policy", policy, "--state", "sqlite", "--"]).arg(exe);
    let with_sqlite = stdio_run(sqlite, calls);
    let with_redis = redis.map(|redis| {
        let mut shared = Command::new(toolwarden);
        shared.env("TOOLWARDEN_DATA_DIR", data);
        shared.args(["proxy", "--policy", policy, "--state", &redis.url, "--"]).arg(exe);
        stdio_run(shared, calls)
    });
    // The gateway with five upstreams (the same echo server five times), calls to the third one; no audit
    // table, like --no-audit-db.
    let servers = audit.with_file_name("servers.toml");
    let entries: String =
        (0..5).map(|i| format!("[servers.s{i}]\ncommand = {:?}\n\n", exe.display().to_string())).collect();
    std::fs::write(&servers, entries).unwrap();
    let mut gateway = Command::new(toolwarden);
    gateway.env("TOOLWARDEN_DATA_DIR", data);
    gateway.args(["gateway", "--policy", policy, "--config"]).arg(&servers);
    let through_gateway = stdio_run_named(gateway, calls, "s2__echo");
    report("direct", &direct, None);
    report("proxy, --no-audit-db", &without_db, Some(&direct));
    report("gateway, 5 upstreams", &through_gateway, Some(&direct));
    report("gateway vs proxy --no-audit-db", &through_gateway, Some(&without_db));
    report("proxy, --no-audit-db --restart 3", &with_restart, Some(&direct));
    report("--restart 3 vs without", &with_restart, Some(&without_db));
    report("through proxy (audit table)", &proxied, Some(&direct));
    report("proxy + audit log", &with_audit, Some(&direct));
    report("proxy + SQLite state", &with_sqlite, Some(&direct));
    report("SQLite vs in-memory", &with_sqlite, Some(&proxied));
    match &with_redis {
        Some(run) => {
            report("proxy + Redis state", run, Some(&direct));
            report("Redis vs in-memory", run, Some(&proxied));
        }
        None => println!("  proxy + Redis state: skipped (no redis-server)"),
    }
    println!("  calls/s with the audit table: {:.2}x of --no-audit-db", proxied.rate / without_db.rate);
}

fn http_part(
    exe: &std::path::Path,
    toolwarden: &str,
    policy: &str,
    data: &std::path::Path,
    redis: Option<&Redis>,
    calls: usize,
) {
    let clients = 16;
    let per_client = (calls / clients / 4).max(50);
    println!("\nStreamable HTTP, {clients} concurrent clients x {per_client} calls of `echo`:");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = HttpProcess::server(exe, None);
    // `BENCH_PROXY_ARGS` adds flags to the plain proxied runs (to compare configurations).
    let extra = std::env::var("BENCH_PROXY_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let proxy = HttpProcess::proxy(toolwarden, policy, data, &server.url, &extra, None);
    let relay = HttpProcess::null_relay(exe, &server.url, None);
    let direct = measure(&rt, &server.url, clients, per_client, &server, None);
    let floor = measure(&rt, &relay.url, clients, per_client, &server, Some(&relay));
    let proxied = measure(&rt, &proxy.url, clients, per_client, &server, Some(&proxy));
    drop((proxy, relay));
    let with_redis = redis.map(|redis| {
        let proxy = HttpProcess::proxy(toolwarden, policy, data, &server.url, &["--state", &redis.url], None);
        measure(&rt, &proxy.url, clients, per_client, &server, Some(&proxy))
    });
    let with_sqlite = {
        let proxy = HttpProcess::proxy(toolwarden, policy, data, &server.url, &["--state", "sqlite"], None);
        measure(&rt, &proxy.url, clients, per_client, &server, Some(&proxy))
    };
    report("direct", &direct.run, None);
    report("null relay (floor)", &floor.run, Some(&direct.run));
    report("through proxy", &proxied.run, Some(&direct.run));
    println!(
        "  throughput through the proxy: {:.0} % of direct ({:.0} % of the null relay, which reaches {:.0} % of direct)",
        100.0 * proxied.run.rate / direct.run.rate,
        100.0 * proxied.run.rate / floor.run.rate,
        100.0 * floor.run.rate / direct.run.rate
    );
    if let Some(run) = &with_redis {
        report("proxy + Redis state", &run.run, Some(&direct.run));
        println!("  throughput with Redis state: {:.0} % of direct", 100.0 * run.run.rate / direct.run.rate);
    }
    report("proxy + SQLite state", &with_sqlite.run, Some(&direct.run));
    println!("  throughput with SQLite state: {:.0} % of direct", 100.0 * with_sqlite.run.rate / direct.run.rate);
    println!("  CPU per call (µs): direct: client {:.1} + server {:.1}", direct.client, direct.server);
    println!(
        "                     proxied: client {:.1} + server {:.1} + proxy {:.1} ({:.2}x the direct pair)",
        proxied.client,
        proxied.server,
        proxied.proxy,
        proxied.proxy / (direct.client + direct.server)
    );
    println!(
        "                     null relay: {:.1} ({:.2}x the direct pair)",
        floor.proxy,
        floor.proxy / (direct.client + direct.server)
    );
    if let Some(run) = &with_redis {
        println!("                     proxy with Redis state: {:.1}", run.proxy);
    }
    println!("                     proxy with SQLite state: {:.1}", with_sqlite.proxy);
    drop(server);

    // Client, server and proxy share this machine's cores above, so every µs the proxy spends is taken from the
    // client and the server: a hop that costs as much as both of them halves throughput however fast it is.
    // Deployed, a gateway has its own cores. This pass gives it one: client and server pinned to CPU 0 (direct
    // and proxied alike), the proxy to CPU 1.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let me = std::process::id().to_string();
    let pinned = cpus >= 2
        && Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &me])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !pinned {
        println!("  proxy on a core of its own: skipped (needs 2 CPUs and `taskset`)");
        return;
    }
    let server = HttpProcess::server(exe, Some(0));
    let proxy = HttpProcess::proxy(toolwarden, policy, data, &server.url, &extra, Some(1));
    let relay = HttpProcess::null_relay(exe, &server.url, Some(1));
    let direct = measure(&rt, &server.url, clients, per_client, &server, None);
    let floor = measure(&rt, &relay.url, clients, per_client, &server, Some(&relay));
    drop(relay);
    let proxied = measure(&rt, &proxy.url, clients, per_client, &server, Some(&proxy));
    println!("  proxy on CPU 1, client and server on CPU 0:");
    report("direct", &direct.run, None);
    report("null relay (floor)", &floor.run, Some(&direct.run));
    report("through proxy", &proxied.run, Some(&direct.run));
    println!("  null relay: {:.0} % of direct", 100.0 * floor.run.rate / direct.run.rate);
    println!("  throughput through the proxy: {:.0} % of direct", 100.0 * proxied.run.rate / direct.run.rate);
}

/// A process serving MCP over Streamable HTTP on a free loopback port (the bench server, a null relay, a proxy),
/// optionally pinned to one CPU, killed on drop.
struct HttpProcess {
    child: Child,
    url: String,
}

impl HttpProcess {
    /// Start `program`, configured by `setup` with the port it is to listen on.
    fn start(program: &std::ffi::OsStr, cpu: Option<usize>, setup: impl FnOnce(&mut Command, u16)) -> HttpProcess {
        let port = free_port();
        let mut cmd = pinned_command(program, cpu);
        setup(&mut cmd, port);
        let child = cmd.spawn().unwrap();
        wait_for(port);
        HttpProcess { child, url: format!("http://127.0.0.1:{port}/mcp") }
    }

    /// The bench binary serving `echo`.
    fn server(exe: &std::path::Path, cpu: Option<usize>) -> HttpProcess {
        HttpProcess::start(exe.as_os_str(), cpu, |cmd, port| {
            cmd.env(SERVER_ENV, format!("http:{port}"));
        })
    }

    /// The bench binary as a null relay in front of `upstream`.
    fn null_relay(exe: &std::path::Path, upstream: &str, cpu: Option<usize>) -> HttpProcess {
        HttpProcess::start(exe.as_os_str(), cpu, |cmd, port| {
            cmd.env(SERVER_ENV, format!("relay:{port} {upstream}"));
        })
    }

    /// `toolwarden proxy --listen` in front of `upstream`.
    fn proxy(
        toolwarden: &str,
        policy: &str,
        data: &std::path::Path,
        upstream: &str,
        extra: &[&str],
        cpu: Option<usize>,
    ) -> HttpProcess {
        HttpProcess::start(toolwarden.as_ref(), cpu, |cmd, port| {
            cmd.env("TOOLWARDEN_DATA_DIR", data)
                .args(["proxy", "--policy", policy, "--listen", &port.to_string(), "--upstream", upstream])
                .args(extra)
                .stderr(Stdio::null());
        })
    }
}

impl Drop for HttpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned_command(program: &std::ffi::OsStr, cpu: Option<usize>) -> Command {
    match cpu {
        None => Command::new(program),
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).arg(program);
            cmd
        }
    }
}

/// A run plus the CPU time each process spent on it, in µs per call.
struct Measured {
    run: Run,
    client: f64,
    server: f64,
    proxy: f64,
}

fn measure(
    rt: &tokio::runtime::Runtime,
    url: &str,
    clients: usize,
    per_client: usize,
    server: &HttpProcess,
    proxy: Option<&HttpProcess>,
) -> Measured {
    let me = std::process::id();
    let pids = [me, server.child.id(), proxy.map_or(0, |p| p.child.id())];
    let before = pids.map(cpu_seconds);
    let run = rt.block_on(http_run(url, clients, per_client));
    let after = pids.map(cpu_seconds);
    let per_call = |i: usize| (after[i] - before[i]) * 1e6 / run.latencies.len() as f64;
    Measured { client: per_call(0), server: per_call(1), proxy: per_call(2), run }
}

/// User + system CPU seconds of a process so far (0 when it cannot be read).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15,
    // in clock ticks of 1/100 s on Linux.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A private `redis-server` for the Redis column, killed on drop.
struct Redis {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let program = std::env::var("TOOLWARDEN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(program)
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        wait_for(port);
        Some(Redis { child, url: format!("redis://127.0.0.1:{port}/0"), _dir: dir })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    latencies: Vec<Duration>,
    rate: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, run: &Run, baseline: Option<&Run>) {
    let mut l = run.latencies.clone();
    l.sort();
    let (p50, p99) = (percentile(&l, 0.5), percentile(&l, 0.99));
    print!("  {name:<18} {:>8.0} calls/s   p50 {:>7.1} µs   p99 {:>7.1} µs", run.rate, us(p50), us(p99));
    if let Some(base) = baseline {
        let mut b = base.latencies.clone();
        b.sort();
        let added50 = us(p50) - us(percentile(&b, 0.5));
        let added99 = us(p99) - us(percentile(&b, 0.99));
        print!("   added p50 {added50:>6.1} µs, p99 {added99:>6.1} µs");
    }
    println!();
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn call(id: usize) -> String {
    call_named(id, "echo")
}

fn call_named(id: usize, tool: &str) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"text":"hello","n":id}}})
        .to_string()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;

fn stdio_run(cmd: Command, calls: usize) -> Run {
    stdio_run_named(cmd, calls, "echo")
}

/// `calls` sequential calls of `tool`, one line in and one line out each (the first answer of a gateway waits
/// for every upstream's `initialize`, so nothing else arrives between answers).
fn stdio_run_named(mut cmd: Command, calls: usize, tool: &str) -> Run {
    let mut child: Child =
        cmd.env(SERVER_ENV, "stdio").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut roundtrip = |msg: &str, line: &mut String| {
        stdin.write_all(msg.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        line.clear();
        stdout.read_line(line).unwrap();
    };
    roundtrip(INIT, &mut line);
    for id in 1..=calls / 10 {
        roundtrip(&call_named(id, tool), &mut line);
    }
    let mut latencies = Vec::with_capacity(calls);
    let start = Instant::now();
    for id in 0..calls {
        let msg = call_named(calls + id, tool);
        let t = Instant::now();
        roundtrip(&msg, &mut line);
        latencies.push(t.elapsed());
        assert!(line.contains("\"result\""), "{line}");
    }
    let rate = calls as f64 / start.elapsed().as_secs_f64();
    drop(stdin);
    let _ = child.wait();
    Run { latencies, rate }
}

async fn http_run(url: &str, clients: usize, per_client: usize) -> Run {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let init = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(INIT)
                .send()
                .await
                .unwrap();
            let session = init.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
            let _ = init.bytes().await;
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(call(c * per_client + i + 1));
                if let Some(s) = &session {
                    req = req.header("mcp-session-id", s);
                }
                let body = req.send().await.unwrap().bytes().await.unwrap();
                latencies.push(t.elapsed());
                assert!(body.windows(8).any(|w| w == b"\"result\""), "{}", String::from_utf8_lossy(&body));
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    Run { latencies, rate }
}

fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg.get("method")?.as_str()? {
        "initialize" => {
            json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}})
        }
        "tools/list" => json!({"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}),
        "tools/call" => json!({"content":[{"type":"text","text":msg["params"]["arguments"].to_string()}]}),
        _ => json!({}),
    };
    Some(json!({"jsonrpc":"2.0","id":id,"result":result}))
}

fn serve_stdio() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
        if let Some(reply) = answer(&msg) {
            writeln!(out, "{reply}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// The floor for any HTTP proxy built like ours: an axum server that forwards each POST body to the upstream
/// with reqwest and returns the answer, carrying only the session header; no parsing, no policy, no audit.
/// `spec` is `PORT URL`.
fn null_relay(spec: &str) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    let (port, url) = spec.split_once(' ').unwrap();
    let url = reqwest::Url::parse(url).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let app = axum::Router::new()
            .route(
                "/mcp",
                post(
                    |State((client, url)): State<(reqwest::Client, reqwest::Url)>,
                     headers: HeaderMap,
                     body: axum::body::Bytes| async move {
                        let mut req = client
                            .post(url)
                            .header("content-type", "application/json")
                            .header("accept", "application/json, text/event-stream");
                        if let Some(id) = headers.get("mcp-session-id") {
                            req = req.header("mcp-session-id", id.clone());
                        }
                        let resp = req.body(body).send().await.unwrap();
                        let status = resp.status();
                        let session = resp.headers().get("mcp-session-id").cloned();
                        let content_type = resp.headers().get("content-type").cloned();
                        let bytes = resp.bytes().await.unwrap();
                        let mut r = axum::response::IntoResponse::into_response((status, bytes));
                        if let Some(v) = content_type {
                            r.headers_mut().insert("content-type", v);
                        }
                        if let Some(v) = session {
                            r.headers_mut().insert("mcp-session-id", v);
                        }
                        r
                    },
                ),
            )
            .with_state((client, url));
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
}

fn serve_http(port: &str) {
    use axum::routing::post;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/mcp",
            post(|body: axum::body::Bytes| async move {
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                match answer(&msg) {
                    Some(reply) => {
                        let mut r = axum::response::IntoResponse::into_response(reply.to_string());
                        r.headers_mut()
                            .insert("content-type", axum::http::HeaderValue::from_static("application/json"));
                        if msg["method"] == "initialize" {
                            r.headers_mut()
                                .insert("mcp-session-id", axum::http::HeaderValue::from_static("bench-session"));
                        }
                        r
                    }
                    None => axum::response::IntoResponse::into_response(axum::http::StatusCode::ACCEPTED),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {port}");
}
