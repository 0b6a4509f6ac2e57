//! `crawl --sandbox` with a real bubblewrap (installed by `scripts/test-deps.sh`): a hostile fixture server
//! (`tests/fixtures/crawl/sandbox_probe.py`) tries to read secrets, write outside its temp dir, read the
//! crawler's environment, connect out, fork-bomb and fill memory, and lists what it got. The same probe run
//! without the sandbox shows that each probe does find what it looks for, so the sandboxed run's "blocked"
//! answers mean something. Real servers from npm and PyPI are crawled sandboxed too.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Env, fixture};

const SECRET: &str = "s3cret-crawler-token-0451";

struct Probe {
    env: Env,
    listener: TcpListener,
    tmp_name: String,
}

impl Probe {
    fn new(hard: bool) -> Probe {
        let env = Env::new();
        env.write("home/.ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY----- not really\n");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let tmp_name = format!("toolwarden-probe-{}", env.dir.path().file_name().unwrap().to_string_lossy());
        let servers = format!(
            r#"[servers.probe]
command = "python3"
args = [{script:?}]
env = {{ PROBE_HOME = {home:?}, PROBE_OUTSIDE = {outside:?}, PROBE_PORT = "{port}", PROBE_TMP = "{tmp_name}", PROBE_HARD = "{hard}" }}
"#,
            script = fixture("crawl/sandbox_probe.py").display().to_string(),
            home = env.path("home").display().to_string(),
            outside = env.path("written-by-probe").display().to_string(),
            hard = if hard { "1" } else { "0" },
        );
        env.write("servers.toml", servers);
        Probe { env, listener, tmp_name }
    }

    /// Crawl the probe (with `extra` flags); the probe's findings by tool name, and the crawl's JSON report.
    fn crawl(&self, extra: &[&str]) -> (std::collections::BTreeMap<String, String>, Value) {
        let mut cmd = self.env.cmd();
        cmd.env("TOOLWARDEN_TEST_CRAWLER_SECRET", SECRET);
        let mut args = vec!["crawl", "--format", "json", "--yes", "--timeout", "30", "--config", "servers.toml"];
        args.extend(["--capture-dir", "captures"]);
        args.extend_from_slice(extra);
        let out = cmd.args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reports: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
        let report = reports[0].clone();
        assert_eq!(report["ok"], true, "{report}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
        let captured: Value =
            serde_json::from_str(&std::fs::read_to_string(self.env.path("captures/probe.json")).unwrap()).unwrap();
        let tools = captured["tools"].as_array().or_else(|| captured["result"]["tools"].as_array()).unwrap();
        let found = tools
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t["description"].as_str().unwrap().to_string()))
            .collect();
        (found, report)
    }

    /// Whether anything connected to the test's listener.
    fn connected(&self) -> bool {
        std::thread::sleep(Duration::from_millis(100));
        self.listener.accept().is_ok()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(std::path::Path::new("/tmp").join(&self.tmp_name));
    }
}

#[test]
fn without_the_sandbox_the_probe_finds_what_it_looks_for() {
    let probe = Probe::new(false);
    let (found, _) = probe.crawl(&[]);
    for name in ["probe_ssh", "probe_env", "probe_write_outside", "probe_write_beside_script", "probe_network"] {
        assert!(found[name].starts_with("LEAKED"), "{name}: {}", found[name]);
    }
    assert!(found["probe_env"].contains(SECRET));
    assert!(probe.env.path("written-by-probe").exists());
    assert!(probe.connected());
    assert!(std::path::Path::new("/tmp").join(&probe.tmp_name).exists());
}

#[test]
fn under_the_sandbox_a_hostile_server_gets_none_of_it() {
    let probe = Probe::new(true);
    let (found, report) = probe.crawl(&["--sandbox", "--sandbox-memory", "512", "--sandbox-processes", "64"]);
    for (name, what) in &found {
        // Writes to the path outside may succeed inside the sandbox (its working directory is an empty
        // directory in its private /tmp): what counts is that the host's file system never sees them.
        if name != "probe_fork_count" && name != "probe_write_outside" {
            assert!(what.starts_with("blocked"), "{name}: {what}");
        }
    }
    assert_eq!(found.len(), 11, "{found:?}");
    assert!(!found.values().any(|d| d.contains(SECRET)));
    assert!(!probe.env.path("written-by-probe").exists());
    assert!(!probe.connected(), "the sandboxed server reached the host's loopback");
    assert!(!std::path::Path::new("/tmp").join(&probe.tmp_name).exists(), "its /tmp is its own");
    assert!(found["probe_memory"].contains("MemoryError"), "{}", found["probe_memory"]);
    let started: u32 = found["probe_fork_count"].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(started < 64, "{}", found["probe_fork_count"]);
    // Where the sandbox can tell (a pids cgroup), the crawl says the server hit its process limit.
    if std::fs::metadata("/sys/fs/cgroup/pids").is_ok_and(|m| m.is_dir()) {
        assert!(report["warnings"].to_string().contains("more processes than its limit"), "{report}");
    }
}

#[test]
fn real_npm_and_pypi_servers_run_sandboxed() {
    let env = Env::new();
    let memory = std::env::var("TOOLWARDEN_TEST_MEMORY").expect("run through scripts/test");
    let time = std::env::var("TOOLWARDEN_TEST_TIME").expect("run through scripts/test");
    let out = env.json(["crawl", "--format", "json", "--sandbox", "--stdio", &memory, "--stdio", &time]);
    let reports = out.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for report in reports {
        assert_eq!(report["ok"], true, "{report}");
        assert!(report["tools"].as_array().unwrap().len() >= 2, "{report}");
    }
}

#[test]
fn a_sandbox_that_cannot_be_made_refuses_rather_than_running_unsandboxed() {
    let env = Env::new();
    // No bwrap on this PATH (python3 is found through its absolute path).
    let python = which("python3");
    let script = fixture("crawl/sandbox_probe.py");
    let stdio = format!("{python} {}", script.display());
    let out = env.cmd().env("PATH", "/nonexistent").args(["crawl", "--sandbox", "--stdio", &stdio]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bubblewrap"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing was crawled");
}

fn which(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).map(|p| p.display().to_string()).unwrap()
}
