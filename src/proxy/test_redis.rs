//! A private `redis-server` for the tests of the state kept in Redis (counters, approvals): the unit tests
//! here, and the integration tests, which include this same file (`tests/integration/proxy_redis.rs`).
//!
//! Each test starts its own on a free loopback port, so tests run in parallel without sharing keys, and can
//! kill it and start it again on the same port to see what an outage and a return look like to a client.
//! The program comes from `TOOLWARDEN_TEST_REDIS_SERVER`, which `scripts/test-deps.sh` sets.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` on a free loopback port that keeps nothing on disk; killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start one; returns once it answers `PING`.
    pub(crate) fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("redis://127.0.0.1:{port}/0");
        let mut server = RedisServer { child: None, port, url, dir: tempfile::tempdir().unwrap() };
        server.resume();
        server
    }

    /// Kill it, as a crash would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (empty); returns once it answers `PING`.
    pub(crate) fn resume(&mut self) {
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
        // Bounded wait for the server to accept connections (it starts in milliseconds).
        for _ in 0..400 {
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn answers(&self) -> bool {
        let ping = |mut con: redis::Connection| redis::cmd("PING").query::<String>(&mut con);
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(ping)
            .is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
