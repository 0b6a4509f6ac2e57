//! The distributed crawl against a real `redis-server`: `crawl --enqueue`, three `crawl-worker` processes and
//! one `ingest`, with a worker and the ingester killed mid-run. Every server ends up catalogued exactly once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Env, fixture};

use crate::test_redis::RedisServer;

const SERVERS: usize = 12;

fn spawn(env: &Env, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .current_dir(env.dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Jobs `consumer` holds without a result.
fn held_by(con: &mut redis::Connection, consumer: &str) -> usize {
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("toolwarden:crawl:jobs")
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(100)
        .arg(consumer)
        .query(con)
        .unwrap();
    pending.len()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_workers_and_an_ingester_killed_mid_run_catalogue_every_server_exactly_once() {
    let env = Env::new();
    let server = RedisServer::start();
    let url = server.url.clone();
    // Every third server takes two seconds to start, so workers are caught mid-job.
    let servers: String = (0..SERVERS)
        .map(|i| {
            let mode = if i % 3 == 0 { "slow" } else { "plain" };
            let script = fixture("crawl/hostile_stdio.py").display().to_string();
            format!("[servers.s{i:02}]\ncommand = \"python3\"\nargs = [{script:?}, \"{mode}\"]\n\n")
        })
        .collect();
    env.write("servers.toml", servers);
    env.ok(["crawl", "--enqueue", &url, "--config", "servers.toml"]);
    let worker = |name: &str| {
        let args =
            ["crawl-worker", &url, "--name", name, "--concurrency", "1", "--claim-after", "3", "--until-idle", "8"];
        Killed(spawn(&env, &args))
    };
    let (mut w1, w2, w3) = (worker("w1"), worker("w2"), worker("w3"));
    let mut ingest = Killed(spawn(&env, &["ingest", &url, "--until-idle", "2"]));
    let mut con = redis(&url);
    // A worker dies holding a job: another takes it over after --claim-after.
    wait_for("w1 to take a job", || held_by(&mut con, "w1") > 0);
    w1.0.kill().unwrap();
    w1.0.wait().unwrap();
    // The ingester dies after storing some results; a new one starts with the same name.
    wait_for("some results", || {
        let n: usize = redis::cmd("XLEN").arg("toolwarden:crawl:results").query(&mut con).unwrap();
        n >= 3
    });
    ingest.0.kill().unwrap();
    ingest.0.wait().unwrap();
    let mut ingest = Killed(spawn(&env, &["ingest", &url, "--until-idle", "2"]));
    wait_for("the ingester to finish", || ingest.0.try_wait().unwrap().is_some());
    assert!(ingest.0.wait().unwrap().success());
    drop((w2, w3));
    // Every server once, with its two tools once.
    let stats: Value = env.json(["stats", "--format", "json"]);
    assert_eq!(stats["servers"], SERVERS, "{stats}");
    assert_eq!(stats["tools"], SERVERS * 2, "{stats}");
    for i in 0..SERVERS {
        let shown: Value = env.json(["show", &format!("s{i:02}"), "--format", "json"]);
        assert_eq!(shown["tools"].as_array().map(Vec::len), Some(2), "s{i:02}: {shown}");
        assert_eq!(shown["runs"].as_array().map(Vec::len), Some(1), "s{i:02} was stored more than once: {shown}");
    }
    // Nothing is left pending anywhere.
    for (stream, group) in [("toolwarden:crawl:jobs", "workers"), ("toolwarden:crawl:results", "ingest")] {
        let summary: Vec<redis::Value> = redis::cmd("XPENDING").arg(stream).arg(group).query(&mut con).unwrap();
        assert_eq!(summary.first(), Some(&redis::Value::Int(0)), "{stream}");
    }
}
