//! The distributed crawl: the same 200 fixture servers crawled through a private `redis-server` by one
//! `crawl-worker` and by three, with one `ingest`, in one run. Each fixture server waits 100 ms before it
//! answers (`tests/fixtures/crawl/hostile_stdio.py slow`), standing for what dominates real crawls: package
//! installs and runtimes starting. Every worker crawls one server at a time (`--concurrency 1`), so the ratio
//! measures how the queue spreads work, not per-worker concurrency.
//!
//! Run: `source scripts/test-deps.sh && cargo bench --bench farm` (env `FARM_BENCH_SERVERS`, default 200).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_toolwarden");

fn redis_server() -> (Child, String) {
    let program = std::env::var("TOOLWARDEN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (source scripts/test-deps.sh)");
    let url = format!("redis://127.0.0.1:{port}/");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, url)
}

fn toolwarden(data: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("TOOLWARDEN_DATA_DIR", data).args(args).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Enqueue every server on a fresh prefix, run `workers` workers and one ingester until all is stored.
fn run(url: &str, servers: &std::path::Path, workers: usize, round: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("bench{round}w{workers}");
    let status = toolwarden(dir.path(), &["crawl", "--enqueue", url, "--queue-prefix", &prefix, "--config"])
        .arg(servers)
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|i| {
            let name = format!("w{i}");
            let args =
                ["crawl-worker", url, "--prefix", &prefix, "--name", &name, "--concurrency", "1", "--until-idle", "2"];
            toolwarden(dir.path(), &args).spawn().unwrap()
        })
        .collect();
    let mut ingest =
        toolwarden(dir.path(), &["ingest", url, "--prefix", &prefix, "--until-idle", "0.2"]).spawn().unwrap();
    assert!(ingest.wait().unwrap().success());
    let elapsed = started.elapsed();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    elapsed
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("FARM_BENCH_SERVERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let (mut redis, url) = redis_server();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crawl/hostile_stdio.py");
    let servers: String = (0..n)
        .map(|i| format!("[servers.s{i:03}]\ncommand = \"python3\"\nargs = [{script:?}, \"slow\"]\nenv = {{ SLOW_SECS = \"0.1\" }}\n\n"))
        .collect();
    let file = dir.path().join("servers.toml");
    std::fs::write(&file, servers).unwrap();
    let (mut one, mut three) = (Vec::new(), Vec::new());
    for round in 0..3 {
        // Alternating order, so warm caches and machine noise hit both alike.
        if round % 2 == 0 {
            one.push(run(&url, &file, 1, round));
            three.push(run(&url, &file, 3, round));
        } else {
            three.push(run(&url, &file, 3, round));
            one.push(run(&url, &file, 1, round));
        }
    }
    one.sort();
    three.sort();
    let (a, b) = (one[1], three[1]);
    println!("distributed crawl of {n} fixture servers (100 ms start-up each), median of 3 rounds:");
    println!("  1 worker:  {:8.2} s", a.as_secs_f64());
    println!("  3 workers: {:8.2} s", b.as_secs_f64());
    println!("  speed-up:  {:.2}x (target >= 2.5x)", a.as_secs_f64() / b.as_secs_f64());
    let _ = redis.kill();
    let _ = redis.wait();
}
