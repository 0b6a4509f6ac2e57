//! A fluent test helper: every test gets a fresh data dir and runs the real binary.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// A test environment: a temp dir that holds the data dir and any files the test writes.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// Write a file under the temp dir and return its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The binary, with this env's data dir and no inherited toolwarden settings.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("toolwarden").unwrap();
        cmd.env_remove("TOOLWARDEN_RULES").env_remove("TOOLWARDEN_LOG").env("TOOLWARDEN_DATA_DIR", self.data_dir());
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Run with args; return the output without asserting on status.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd().args(args).output().unwrap()
    }

    /// Run with args, assert exit 0, return stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run with args, assert exit 0, parse stdout as JSON.
    pub fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{text}"))
    }
}

/// The repository root (for fixtures under `tests/fixtures`).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// Read `child`'s stderr (piped) until the line that starts with `prefix`: the rest of that line (a server
/// announcing where it listens), and the stderr reader for whatever follows.
pub fn announced(
    child: &mut std::process::Child,
    prefix: &str,
) -> (String, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the process exited before printing {prefix:?}");
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            return (rest.to_string(), stderr);
        }
    }
}
