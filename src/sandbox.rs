//! Running strangers' MCP servers without trusting them: each stdio server of a sandboxed crawl starts under
//! bubblewrap (`bwrap`).
//!
//! To catalogue a server, toolwarden has to run it, and `npx -y pkg` or `uvx pkg` from a registry listing is
//! code nobody here has read. Under the sandbox a server sees: the system's programs and libraries read-only
//! (`/usr`, the `/bin` and `/lib` links, a few files of `/etc`: never `/etc/shadow`), its own program, its
//! interpreter and the files its command line names (read-only, found by resolving the command on `PATH`,
//! following symlinks and `#!` lines), package caches read-only, a fresh empty home and a private `/tmp` (both
//! in memory, gone when it ends), only the environment variables its spec names (plus `PATH`, `HOME`, `TMPDIR`,
//! `LANG`), no network (its own loopback only) unless `--sandbox-network`, and no other process (own pid
//! namespace; everything in it dies with the crawl of that server). Limits: address space (memory), CPU
//! seconds, file size and a process count (a pids cgroup where one can be made, else `RLIMIT_NPROC`, which the
//! kernel does not apply to root). Where bubblewrap is missing or cannot create namespaces, [`Sandbox::new`]
//! fails with a message saying so: a sandboxed crawl never quietly runs a server outside the sandbox.
//!
//! This module only builds the `bwrap` command line and the limits; [`crate::mcp`] starts the process.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a sandbox cannot be used here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "--sandbox needs bubblewrap (`bwrap`), which is not on PATH; install it (Debian/Ubuntu: `apt-get install bubblewrap`) or crawl without --sandbox"
    )]
    Missing,
    #[error(
        "--sandbox: bubblewrap cannot create namespaces here ({0}); enable unprivileged user namespaces (`sysctl kernel.unprivileged_userns_clone=1`) or crawl without --sandbox"
    )]
    Unusable(String),
    #[error("--sandbox: {0}")]
    Setup(String),
}

/// What a sandboxed server may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Let the server reach the network (the host's interfaces); otherwise it has its own loopback only.
    pub network: bool,
    /// Address space per process, in bytes.
    pub memory: u64,
    /// CPU seconds per process.
    pub cpu_secs: u64,
    /// Processes (and threads) in the whole sandbox.
    pub processes: u64,
    /// Largest file it may write, in bytes (in its private /tmp, the only place it can write).
    pub file_size: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { network: false, memory: 2 << 30, cpu_secs: 60, processes: 256, file_size: 256 << 20 }
    }
}

/// A checked bubblewrap and the limits every sandboxed server gets.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    limits: Limits,
    home: Option<PathBuf>,
}

/// The paths bound read-only from `/etc`: what name resolution, TLS and locales need, and nothing secret.
const ETC: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/os-release",
];

/// System directories bound read-only (or recreated as the symlinks they are, on merged-/usr systems).
const SYSTEM: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/// Toolchains under the home directory, bound read-only at the same path so that the interpreters installed
/// there run (nvm, pyenv, uv's Pythons, volta, bun, deno, user-installed programs). Package caches are not
/// shared: the sandbox's home is empty, so `npx -y pkg` or `uvx pkg` install into it afresh, which needs
/// `--sandbox-network`; without it they are told to stay offline and fail at once, saying so.
const CACHES: &[&str] = &[".local/share/uv", ".local/bin", ".nvm", ".pyenv", ".volta", ".bun", ".deno", ".cargo/bin"];

/// Without the network, package managers are told so: they fail at once instead of retrying for minutes.
const OFFLINE: &[(&str, &str)] =
    &[("npm_config_offline", "true"), ("UV_OFFLINE", "1"), ("PIP_NO_INDEX", "1"), ("DENO_NO_REMOTE", "1")];

/// The home directory inside the sandbox: empty, in the private /tmp.
const SANDBOX_HOME: &str = "/tmp/home";

impl Sandbox {
    /// Find bubblewrap and check once per process that it can create the namespaces the sandbox uses.
    pub fn new(limits: Limits) -> Result<Sandbox, SandboxError> {
        let bwrap = find_on_path("bwrap").ok_or(SandboxError::Missing)?;
        static PROBE: OnceLock<Result<(), SandboxError>> = OnceLock::new();
        PROBE.get_or_init(|| probe(&bwrap)).clone()?;
        Ok(Sandbox { bwrap, limits, home: std::env::var_os("HOME").map(PathBuf::from) })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The `bwrap` invocation that runs `command args` (with `env`, from `cwd`) inside the sandbox.
    pub fn wrap(
        &self,
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
    ) -> Result<Wrapped, SandboxError> {
        let cwd = match cwd {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_dir().map_err(|e| SandboxError::Setup(format!("current directory: {e}")))?,
        };
        let mut binds = Binds::new(self.home.clone());
        let program = if command.contains('/') {
            let path = cwd.join(command);
            if !path.exists() {
                return Err(SandboxError::Setup(format!("the server's program `{command}` does not exist")));
            }
            path
        } else {
            find_on_path(command)
                .ok_or_else(|| SandboxError::Setup(format!("the server's program `{command}` is not on PATH")))?
        };
        binds.program(&program, 0);
        for arg in args {
            // `--flag=/path` names a path as much as `/path` does.
            let value = arg.split_once('=').map_or(arg.as_str(), |(_, v)| v);
            for candidate in [arg.as_str(), value] {
                if candidate.is_empty() || candidate.starts_with('-') {
                    continue;
                }
                let path = cwd.join(candidate);
                if (candidate.contains('/') || candidate.contains('.')) && path.exists() {
                    binds.named(&path);
                }
            }
        }
        if let Some(home) = &self.home {
            for cache in CACHES {
                let path = home.join(cache);
                if path.exists() {
                    binds.add(&path);
                }
            }
        }
        let mut argv: Vec<String> = vec!["--unshare-all".into()];
        if self.limits.network {
            argv.push("--share-net".into());
        }
        argv.extend(["--die-with-parent", "--new-session", "--cap-drop", "ALL"].map(String::from));
        for dir in SYSTEM {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => argv.extend(["--symlink".into(), target.to_string_lossy().into_owned(), dir.to_string()]),
                Err(_) if path.is_dir() => argv.extend(["--ro-bind".into(), dir.to_string(), dir.to_string()]),
                Err(_) => {}
            }
        }
        for file in ETC {
            argv.extend(["--ro-bind-try".into(), file.to_string(), file.to_string()]);
        }
        argv.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME].map(String::from));
        for path in binds.paths() {
            let shown = path.to_string_lossy().into_owned();
            argv.extend(["--ro-bind".into(), shown.clone(), shown]);
        }
        let cwd_shown = cwd.to_string_lossy().into_owned();
        if !binds.covers(&cwd) {
            // The working directory exists (so relative paths resolve) but shows nothing that was not bound.
            argv.extend(["--dir".into(), cwd_shown.clone()]);
        }
        argv.extend(["--chdir".into(), cwd_shown, "--".into(), program.to_string_lossy().into_owned()]);
        argv.extend(args.iter().cloned());
        let mut vars = BTreeMap::new();
        if let Some(path) = std::env::var_os("PATH") {
            vars.insert("PATH".to_string(), path.to_string_lossy().into_owned());
        }
        vars.insert("HOME".into(), SANDBOX_HOME.into());
        vars.insert("TMPDIR".into(), "/tmp".into());
        vars.insert("LANG".into(), std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into()));
        if !self.limits.network {
            vars.extend(OFFLINE.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let cgroup = Cgroup::create(self.limits.processes);
        let rlimits = RLimits::new(&self.limits, cgroup.is_none());
        Ok(Wrapped { program: self.bwrap.clone(), args: argv, env: vars, rlimits, cgroup })
    }
}

/// A sandboxed command, ready to start: run `program args` with exactly `env` (nothing inherited), and call
/// [`Wrapped::in_child`] between fork and exec.
#[derive(Debug)]
pub struct Wrapped {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    rlimits: RLimits,
    /// Kept as long as the server runs; dropping it kills what is left in it and removes it.
    pub cgroup: Option<Cgroup>,
}

impl Wrapped {
    /// The part of the setup that has to happen in the child: limits, and joining the cgroup. Only
    /// async-signal-safe calls (no allocation): it runs between `fork` and `exec`.
    #[allow(unsafe_code)]
    pub fn in_child(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let rlimits = self.rlimits.clone();
        let procs = self.cgroup.as_ref().map(|c| c.procs.clone());
        move || {
            for &(resource, value) in &rlimits.0 {
                let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
                // SAFETY: setrlimit with a valid pointer to a stack value.
                if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(procs) = &procs {
                join_cgroup(procs)?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, Clone)]
struct RLimits(Vec<(libc::__rlimit_resource_t, libc::rlim_t)>);

impl RLimits {
    fn new(limits: &Limits, nproc: bool) -> RLimits {
        let mut list = vec![
            (libc::RLIMIT_AS, limits.memory),
            (libc::RLIMIT_CPU, limits.cpu_secs),
            (libc::RLIMIT_FSIZE, limits.file_size),
            (libc::RLIMIT_CORE, 0),
        ];
        if nproc {
            // Counted per user across the machine, and not applied to root: the cgroup is the real limit.
            list.push((libc::RLIMIT_NPROC, limits.processes));
        }
        RLimits(list)
    }
}

/// Write this process's pid into `cgroup.procs`, without allocating.
#[allow(unsafe_code)]
fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    let mut digits = [0u8; 20];
    // SAFETY: getpid has no preconditions.
    let mut pid = unsafe { libc::getpid() } as u64;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    // SAFETY: a NUL-terminated path; the buffer outlives the write.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let len = digits.len() - at;
        let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
        libc::close(fd);
        if written != len as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pids cgroup of one sandboxed server: a limit on its processes that also holds for root, and a way to
/// count how often it hit the limit.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    procs: CString,
}

impl Cgroup {
    /// A new cgroup under the pids hierarchy (cgroup v1 `pids`, or the unified hierarchy where this process's
    /// cgroup delegates `pids`), or `None` where none can be made (then `RLIMIT_NPROC` stands in).
    fn create(max: u64) -> Option<Cgroup> {
        let name = format!("toolwarden-sandbox-{}", uuid::Uuid::new_v4());
        for base in pids_hierarchies() {
            let dir = base.join(&name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            if std::fs::write(dir.join("pids.max"), max.to_string()).is_ok()
                && let Ok(procs) = CString::new(dir.join("cgroup.procs").to_string_lossy().into_owned())
            {
                return Some(Cgroup { dir, procs });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }

    /// How many times a process could not start because of the limit.
    pub fn refused_forks(&self) -> u64 {
        let events = std::fs::read_to_string(self.dir.join("pids.events")).unwrap_or_default();
        events.lines().find_map(|l| l.strip_prefix("max ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Cgroup {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // Whatever is left (a daemon that escaped the process group) is killed; the directory can only go
        // once its processes are gone, which takes a moment after SIGKILL.
        let dir = self.dir.clone();
        let cleanup = move || {
            for _ in 0..100 {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            tracing::warn!("could not remove the sandbox cgroup {}", dir.display());
        };
        let _ = std::thread::Builder::new().name("sandbox-cgroup".into()).spawn(cleanup);
    }
}

/// Where a pids cgroup could be made.
fn pids_hierarchies() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/sys/fs/cgroup/pids")];
    // cgroup v2: under this process's own cgroup, if it delegates the pids controller.
    if let Ok(own) = std::fs::read_to_string("/proc/self/cgroup")
        && let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::"))
    {
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let dir = Path::new(root).join(path.trim_start_matches('/'));
            let controllers = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "pids") {
                out.push(dir);
            }
        }
    }
    out
}

/// Run `bwrap` once with the namespaces the sandbox uses.
fn probe(bwrap: &Path) -> Result<(), SandboxError> {
    let mut cmd = std::process::Command::new(bwrap);
    cmd.args(["--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]);
    for dir in SYSTEM {
        let path = Path::new(dir);
        match std::fs::read_link(path) {
            Ok(target) => {
                cmd.arg("--symlink").arg(target).arg(dir);
            }
            Err(_) if path.is_dir() => {
                cmd.args(["--ro-bind", dir, dir]);
            }
            Err(_) => {}
        }
    }
    cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "true"]);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    let output = cmd.output().map_err(|e| SandboxError::Unusable(format!("cannot start bwrap: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(SandboxError::Unusable(crate::model::text::clean(stderr.trim(), 300)))
}

/// `name` on `PATH`, as an absolute path.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The read-only bind mounts of one server: its program's install root, its interpreter's, what its command
/// line names. Never `/`, the home directory or an ancestor of it, nor a top-level directory such as `/tmp`:
/// for those, only the file itself is bound.
struct Binds {
    home: Option<PathBuf>,
    paths: BTreeSet<PathBuf>,
}

impl Binds {
    fn new(home: Option<PathBuf>) -> Binds {
        Binds { home, paths: BTreeSet::new() }
    }

    /// Too broad to show a stranger's server: `/`, top-level directories, the home directory and its ancestors.
    fn too_broad(&self, dir: &Path) -> bool {
        dir.components().count() <= 2 || self.home.as_ref().is_some_and(|home| home.starts_with(dir))
    }

    fn add(&mut self, path: &Path) {
        if !self.covers(path) {
            self.paths.retain(|p| !p.starts_with(path));
            self.paths.insert(path.to_path_buf());
        }
    }

    fn covers(&self, path: &Path) -> bool {
        self.paths.iter().any(|p| path.starts_with(p)) || SYSTEM.iter().any(|s| path.starts_with(s))
    }

    /// A directory, or a file with the directory it sits in (its siblings are often its modules), unless that
    /// directory is too broad.
    fn named(&mut self, path: &Path) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if path.is_dir() {
            // A too-broad directory named on the command line is not shown at all.
            if !self.too_broad(&path) {
                self.add(&path);
            }
            return;
        }
        match path.parent() {
            Some(parent) if !self.too_broad(parent) => self.add(parent),
            _ => self.add(&path),
        }
    }

    /// A program: its install root (the package above `node_modules`, the prefix above `bin`), for the path as
    /// found and as resolved through symlinks, then its `#!` interpreter the same way.
    fn program(&mut self, path: &Path, depth: u32) {
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        for p in [path.to_path_buf(), resolved.clone()] {
            let root = install_root(&p);
            match root {
                Some(root) if !self.too_broad(&root) => self.add(&root),
                _ => self.add(&p),
            }
        }
        if depth < 3
            && let Some(interpreter) = shebang(&resolved)
        {
            self.program(&interpreter, depth + 1);
        }
    }

    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.paths.iter()
    }
}

/// The directory a program belongs to: above the top-most `node_modules`, above `bin`/`sbin`/`shims`/`libexec`,
/// or its own directory.
fn install_root(program: &Path) -> Option<PathBuf> {
    let ancestors: Vec<&Path> = program.ancestors().collect();
    if let Some(top) = ancestors.iter().rev().find(|a| a.file_name().is_some_and(|n| n == "node_modules")) {
        return top.parent().map(Path::to_path_buf);
    }
    let dir = program.parent()?;
    let name = dir.file_name()?.to_string_lossy();
    if matches!(name.as_ref(), "bin" | "sbin" | "shims" | "libexec" | "Scripts") {
        return dir.parent().map(Path::to_path_buf);
    }
    Some(dir.to_path_buf())
}

/// The interpreter a `#!` line names (`/usr/bin/env X` resolved on PATH).
fn shebang(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = head.get(..n)?;
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if first.ends_with("/env") {
        let name = words.find(|w| !w.starts_with('-'))?;
        return find_on_path(name);
    }
    Some(PathBuf::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_roots_are_the_package_or_the_prefix() {
        let root = |p: &str| install_root(Path::new(p)).unwrap();
        assert_eq!(root("/srv/app/node_modules/@s/x/dist/index.js"), Path::new("/srv/app"));
        assert_eq!(root("/srv/app/node_modules/a/node_modules/b/i.js"), Path::new("/srv/app"));
        assert_eq!(root("/opt/venv/bin/python"), Path::new("/opt/venv"));
        assert_eq!(root("/home/u/.pyenv/shims/python3"), Path::new("/home/u/.pyenv"));
        assert_eq!(root("/work/server/main.py"), Path::new("/work/server"));
    }

    #[test]
    fn the_home_directory_and_top_level_directories_are_never_bound_whole() {
        let mut binds = Binds::new(Some(PathBuf::from("/home/u")));
        assert!(binds.too_broad(Path::new("/")));
        assert!(binds.too_broad(Path::new("/tmp")));
        assert!(binds.too_broad(Path::new("/home")));
        assert!(binds.too_broad(Path::new("/home/u")));
        assert!(!binds.too_broad(Path::new("/home/u/project")));
        binds.add(Path::new("/home/u/project/a"));
        binds.add(Path::new("/home/u/project"));
        assert_eq!(binds.paths().collect::<Vec<_>>(), [Path::new("/home/u/project")]);
        assert!(binds.covers(Path::new("/home/u/project/a/b")));
        assert!(!binds.covers(Path::new("/home/u/.ssh")));
    }

    #[test]
    fn shebangs_name_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/usr/bin/python3 -u\nprint(1)\n").unwrap();
        assert_eq!(shebang(&script), Some(PathBuf::from("/usr/bin/python3")));
        std::fs::write(&script, "#!/usr/bin/env -S sh\n").unwrap();
        assert_eq!(shebang(&script), find_on_path("sh"));
        std::fs::write(&script, "plain").unwrap();
        assert_eq!(shebang(&script), None);
    }

    #[test]
    fn the_command_line_binds_only_what_it_names_and_the_environment_is_the_specs() {
        let sandbox = Sandbox::new(Limits::default()).expect("bubblewrap works here (scripts/test installs it)");
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("srv");
        std::fs::create_dir(&server).unwrap();
        std::fs::write(server.join("server.py"), "").unwrap();
        let env = BTreeMap::from([("TOKEN".to_string(), "t".to_string())]);
        let w = sandbox.wrap("sh", &["./server.py".into(), "--x=1".into()], &env, server.to_str()).unwrap();
        let args = w.args.join(" ");
        assert!(args.contains(&format!("--ro-bind {0} {0}", server.display())), "{args}");
        assert!(!args.contains("--share-net"), "{args}");
        assert!(args.contains("--unshare-all"));
        assert_eq!(w.env.get("TOKEN").map(String::as_str), Some("t"));
        assert_eq!(w.env.get("HOME").map(String::as_str), Some(SANDBOX_HOME));
        let allowed = ["PATH", "HOME", "TMPDIR", "LANG", "TOKEN"];
        let offline = |k: &str| OFFLINE.iter().any(|(o, _)| *o == k);
        assert!(w.env.keys().all(|k| allowed.contains(&k.as_str()) || offline(k)), "{:?}", w.env.keys());
    }
}
