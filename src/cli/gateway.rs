//! `toolwarden gateway --config servers.toml --policy-dir DIR`: many servers behind one stdio MCP endpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::{Globals, Outcome, UsageError};
use crate::crawl::sources;
use crate::gateway::{Config, Gateway, Server};
use crate::model::Transport;
use crate::proxy::audit::Audit;
use crate::proxy::counters::MemoryCounters;
use crate::proxy::lines::{Frame, LineReader};
use crate::proxy::policy_gate::PolicyGate;
use crate::proxy::relay::{ToClient, error_message};
use crate::proxy::reload::ReloadingGate;
use crate::proxy::session::Outbox;
use crate::proxy::upstream::UpstreamSpec;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The servers: a catalogue file (TOML or JSON, schemas/servers.schema.json), as `crawl --config` reads it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A policy per server: DIR/SERVER.policy.json (what `policy generate` writes)
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// The policy of every server without one in --policy-dir; or one file with a section per server:
    /// {"servers": {"NAME": {policy}, ...}}
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Between the server name and the tool name in listed names
    #[arg(long, default_value = "__")]
    pub separator: String,
    /// How long the client's initialize waits for the servers; later ones appear through list_changed
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub startup_timeout: f64,
    /// How long a call may take before the client gets an error
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub call_timeout: f64,
    /// Append one JSON line per decision to FILE
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Do not also record decisions in the catalogue's audit table (read by `toolwarden audit --server S`)
    #[arg(long)]
    pub no_audit_db: bool,
    /// Largest message accepted from either side, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_message: usize,
    /// Serve Streamable HTTP on ADDR (host:port, e.g. 127.0.0.1:8080) instead of stdio; each MCP session gets
    /// its own upstreams
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// HTTP bearer tokens: a JSON object mapping each token to the identity it stands for
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub auth_tokens: Option<PathBuf>,
    /// A host name accepted in Host and Origin headers besides loopback (repeatable)
    #[arg(long, value_name = "HOST", requires = "listen")]
    pub allowed_host: Vec<String>,
    /// HTTP: the most sessions open at once (each runs every upstream)
    #[arg(long, value_name = "N", default_value_t = 16, requires = "listen")]
    pub max_sessions: usize,
    /// HTTP: close a session unused for this many seconds (with nothing in flight)
    #[arg(long, value_name = "SECS", default_value_t = 1800, requires = "listen")]
    pub session_idle: u64,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Put a client's MCP servers behind one gateway entry: writes the servers file and a recommended policy
    /// per server (from a crawl), backs the client config up, and rewrites it
    Install(InstallArgs),
    /// Restore a client config exactly as it was before `gateway install`
    Uninstall(InstallArgs),
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Which client's config
    #[arg(long, value_enum)]
    pub client: Client,
    /// The config file [default: the client's usual place]
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Print the change to the config file and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start the servers to crawl them without asking
    #[arg(long)]
    pub yes: bool,
    /// Deadline per server for the crawl, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeDesktop,
    Cursor,
    Vscode,
    ClaudeCode,
}

impl Client {
    fn slug(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::Cursor => "cursor",
            Client::Vscode => "vscode",
            Client::ClaudeCode => "claude-code",
        }
    }

    fn default_path(self) -> PathBuf {
        let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("."));
        let config = dirs::config_dir().unwrap_or_else(|| home.join(".config"));
        match self {
            Client::ClaudeDesktop => config.join("Claude/claude_desktop_config.json"),
            Client::Cursor => home.join(".cursor/mcp.json"),
            Client::Vscode => config.join("Code/User/mcp.json"),
            Client::ClaudeCode => home.join(".claude.json"),
        }
    }
}

struct Stdout(Mutex<std::io::Stdout>);

impl Outbox for Stdout {
    fn send(&self, message: ToClient) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&message.bytes).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
    }
}

/// The policy file of `server`.
fn policy_for(args: &Args, server: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.policy_dir {
        let path = dir.join(format!("{server}.policy.json"));
        if path.is_file() {
            return Ok(path);
        }
    }
    match &args.policy {
        Some(path) => Ok(path.clone()),
        None => Err(UsageError(format!(
            "no policy for server {server:?}: write {} (`toolwarden policy generate --server {server}`) or give --policy",
            args.policy_dir.as_deref().unwrap_or(Path::new("DIR")).join(format!("{server}.policy.json")).display()
        ))
        .into()),
    }
}

/// `--policy FILE` in its one-file form, `{"servers": {"NAME": {policy}, ...}}`: each section's text by server
/// name; `None` when FILE is an ordinary policy (then it applies to every server without a file in --policy-dir).
fn policy_sections(path: &Path) -> anyhow::Result<Option<std::collections::BTreeMap<String, String>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(&text) else { return Ok(None) };
    let Some(serde_json::Value::Object(servers)) = top.get("servers") else { return Ok(None) };
    if top.contains_key("tools") || top.contains_key("default") {
        return Ok(None);
    }
    Ok(Some(servers.iter().map(|(name, policy)| (name.clone(), policy.to_string())).collect()))
}

/// A server of the catalogue file as the proxy's upstream: a stdio server's environment and directory are set
/// through `env` (`env -C DIR K=V CMD ARGS`), which every Linux and macOS has.
fn upstream(transport: &Transport) -> UpstreamSpec {
    match transport {
        Transport::Stdio { command, args, env, cwd } if env.is_empty() && cwd.is_none() => {
            UpstreamSpec::Command { program: command.clone(), args: args.clone() }
        }
        Transport::Stdio { command, args, env, cwd } => {
            let mut all = Vec::new();
            if let Some(dir) = cwd {
                all.extend(["-C".to_string(), dir.clone()]);
            }
            all.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
            all.push(command.clone());
            all.extend(args.iter().cloned());
            UpstreamSpec::Command { program: "env".into(), args: all }
        }
        Transport::Http { url, headers } => UpstreamSpec::Http {
            url: url.clone(),
            headers: headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
    }
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    match &args.action {
        Some(Action::Install(a)) => return install(a, g),
        Some(Action::Uninstall(a)) => return uninstall(a, g),
        None => {}
    }
    let Some(config_file) = args.config.clone() else {
        return Err(UsageError("name the servers: gateway --config servers.toml (or gateway install)".into()).into());
    };
    let secs = |v: f64, flag: &str| -> anyhow::Result<Duration> {
        if v.is_finite() && v > 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(UsageError(format!("{flag} must be a positive number of seconds")).into())
        }
    };
    if args.separator.is_empty() {
        return Err(UsageError("--separator must not be empty".into()).into());
    }
    let found = sources::from_servers_file(&config_file).map_err(|e| UsageError(e.to_string()))?;
    if found.is_empty() {
        return Err(UsageError(format!("{}: no servers", config_file.display())).into());
    }
    let mut servers = Vec::new();
    let audit = match &args.audit {
        Some(path) => Audit::open(path, false)?,
        None => Audit::disabled(),
    };
    let audit = Arc::new(if args.no_audit_db {
        audit
    } else {
        let data_dir = g.data_dir();
        let journal = crate::journal::Journal::open(&data_dir)
            .with_context(|| format!("opening the catalogue database in {}", data_dir.display()))?;
        audit.with_journal(Arc::new(journal), false)
    });
    let sections = match &args.policy {
        Some(path) => policy_sections(path)?,
        None => None,
    };
    for source in found {
        let name = source.spec.name.clone();
        let in_dir = args.policy_dir.as_ref().map(|d| d.join(format!("{name}.policy.json"))).filter(|p| p.is_file());
        let section = sections.as_ref().and_then(|s| s.get(&name));
        // A policy that is a file of its own is watched and reloaded as the proxy's is; sections are read once.
        let file = match (&in_dir, section) {
            (Some(path), _) => Some(path.clone()),
            (None, None) if sections.is_none() => Some(policy_for(&args, &name)?),
            _ => None,
        };
        if let Some(path) = file {
            let counters = Arc::new(MemoryCounters::new());
            let loader = move |path: &Path| -> Result<Arc<dyn crate::proxy::gate::Gate>, String> {
                Ok(Arc::new(PolicyGate::load(path, Arc::clone(&counters) as _)?))
            };
            let gate = ReloadingGate::watch(path, Box::new(loader), Arc::clone(&audit))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("the policy of server {name:?}"))?;
            servers.push(Server { name, spec: upstream(&source.spec.transport), gate });
            continue;
        }
        let policy = match (in_dir, section) {
            (Some(path), _) => crate::policy::load_file(&path),
            (None, Some(text)) => {
                let source = crate::policy::Source::new(crate::policy::Syntax::Json, text.clone());
                crate::policy::load(&source).map_err(|diagnostics| crate::policy::PolicyError::Invalid {
                    file: format!("{} (servers.{name})", args.policy.as_deref().unwrap_or(Path::new("")).display()),
                    diagnostics,
                })
            }
            (None, None) if sections.is_some() => {
                return Err(UsageError(format!(
                    "no policy for server {name:?}: {} has no section \"servers\".{name:?}",
                    args.policy.as_deref().unwrap_or(Path::new("")).display()
                ))
                .into());
            }
            (None, None) => crate::policy::load_file(&policy_for(&args, &name)?),
        }
        .with_context(|| format!("the policy of server {name:?}"))?;
        let gate = Arc::new(PolicyGate::new(policy, Arc::new(MemoryCounters::new())));
        servers.push(Server { name, spec: upstream(&source.spec.transport), gate });
    }
    let config = Config {
        servers,
        separator: args.separator.clone(),
        audit: Arc::clone(&audit),
        call_timeout: secs(args.call_timeout, "--call-timeout")?,
        startup_timeout: secs(args.startup_timeout, "--startup-timeout")?,
        max_message: args.max_message,
        identity: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Some(listen) = &args.listen {
        let addr = super::proxy::parse_listen(listen)?;
        if !addr.ip().is_loopback() && args.auth_tokens.is_none() {
            tracing::warn!("listening on {addr}, which is reachable from other machines; consider --auth-tokens");
        }
        let front = crate::proxy::http::Front {
            auth_tokens: args.auth_tokens.as_deref().map(super::proxy::load_tokens).transpose()?,
            allowed_hosts: args.allowed_host.clone(),
            max_sessions: args.max_sessions.max(1),
            session_idle: Duration::from_secs(args.session_idle.max(1)),
            max_message: args.max_message,
            what: "gateway",
        };
        let handle = runtime.handle().clone();
        let open: crate::proxy::http::Opener = Box::new(move |_id, identity, streams, _gone| {
            let gateway = Gateway::start(Config { identity, ..config.clone() }, streams, handle.clone());
            Ok(gateway as Arc<dyn crate::proxy::http::Endpoint>)
        });
        let result = runtime.block_on(crate::proxy::http::serve_with(front, open, addr));
        runtime.shutdown_background();
        audit.finish();
        result?;
        return Ok(Outcome::Ok);
    }
    let client: Arc<dyn Outbox> = Arc::new(Stdout(Mutex::new(std::io::stdout())));
    let gateway = Gateway::start(config, Arc::clone(&client), runtime.handle().clone());
    let max = args.max_message;
    let stdin = std::io::stdin();
    let mut reader = LineReader::new(stdin.lock(), max);
    loop {
        match reader.next_frame() {
            Ok(Frame::Line(line)) => gateway.from_client(&line),
            Ok(Frame::TooLong(n)) => {
                tracing::warn!("refused a {n}-byte message from the client (limit {max} bytes)");
                client.send(error_message(
                    serde_json::Value::Null,
                    -32600,
                    &format!("Invalid Request: message larger than {max} bytes"),
                ));
            }
            Ok(Frame::Eof) => break,
            Err(e) => {
                tracing::warn!("reading stdin: {e}");
                break;
            }
        }
    }
    gateway.close();
    // Give the children a moment to see their stdin close, then leave.
    std::thread::sleep(Duration::from_millis(100));
    runtime.shutdown_background();
    audit.finish();
    Ok(Outcome::Ok)
}

/// Where `gateway install` keeps a client's servers file and policies.
fn install_dir(g: &Globals, client: Client) -> PathBuf {
    g.data_dir().join("gateway").join(client.slug())
}

fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".toolwarden-backup");
    file.with_file_name(name)
}

/// The servers key of a client config (VS Code: `servers`, every other client: `mcpServers`).
fn servers_key(value: &serde_json::Value, client: Client) -> &'static str {
    if value.get("mcpServers").is_some() {
        "mcpServers"
    } else if value.get("servers").is_some() || client == Client::Vscode {
        "servers"
    } else {
        "mcpServers"
    }
}

fn install(args: &InstallArgs, g: &Globals) -> anyhow::Result<Outcome> {
    use serde_json::{Value, json};
    let file = args.config_file.clone().unwrap_or_else(|| args.client.default_path());
    let original = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let backup = backup_path(&file);
    if backup.exists() {
        return Err(UsageError(format!(
            "{} exists: the gateway is installed already (`toolwarden gateway uninstall --client {}` first)",
            backup.display(),
            args.client.slug()
        ))
        .into());
    }
    let text = String::from_utf8_lossy(&original);
    let mut config: Value = serde_json::from_str(&sources::strip_jsonc(&text))
        .map_err(|e| UsageError(format!("{}: not JSON: {e}", file.display())))?;
    let key = servers_key(&config, args.client);
    let found = sources::from_client_config(&file).map_err(|e| UsageError(e.to_string()))?;
    if found.is_empty() {
        return Err(UsageError(format!("{}: no servers to put behind the gateway", file.display())).into());
    }
    let dir = install_dir(g, args.client);
    let servers_file = dir.join("servers.json");
    let policies = dir.join("policies");
    let exe = std::env::current_exe().context("finding the toolwarden executable")?;
    let mut entry = json!({
        "command": exe.display().to_string(),
        "args": ["gateway", "--config", servers_file.display().to_string(), "--policy-dir", policies.display().to_string()],
    });
    if key == "servers" {
        entry["type"] = json!("stdio");
    }
    // Disabled entries stay as they are; every enabled one moves behind the gateway.
    let mut kept = serde_json::Map::new();
    if let Some(Value::Object(old)) = config.get(key) {
        for (name, server) in old {
            if server.get("disabled").and_then(Value::as_bool) == Some(true) {
                kept.insert(name.clone(), server.clone());
            }
        }
    }
    kept.insert("toolwarden".into(), entry);
    config[key] = Value::Object(kept);
    let new_text = serde_json::to_string_pretty(&config)? + "\n";
    if args.dry_run {
        super::output::print(line_diff(&text, &new_text, &file))?;
        eprintln!("dry run: nothing written ({} servers would move behind the gateway)", found.len());
        return Ok(Outcome::Ok);
    }
    // The servers file, in the catalogue format the gateway reads.
    let mut servers = serde_json::Map::new();
    for source in &found {
        let spec = match &source.spec.transport {
            Transport::Stdio { command, args, env, cwd } => {
                let mut s = json!({"command": command, "args": args});
                if !env.is_empty() {
                    s["env"] = json!(env);
                }
                if let Some(cwd) = cwd {
                    s["cwd"] = json!(cwd);
                }
                s
            }
            Transport::Http { url, headers } => json!({"url": url, "headers": headers}),
        };
        servers.insert(source.spec.name.clone(), spec);
    }
    std::fs::create_dir_all(&policies).with_context(|| format!("creating {}", policies.display()))?;
    write_atomic(&servers_file, (serde_json::to_string_pretty(&json!({"servers": servers}))? + "\n").as_bytes())?;
    // A crawl of the servers gives each a recommended policy; one that could not be listed denies everything.
    super::crawl::confirm_programs(&found, args.yes)?;
    let options = crate::crawl::CrawlOptions {
        concurrency: crate::crawl::default_concurrency(),
        timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
        retries: 1,
        sandbox: None,
    };
    let reports = super::crawl::crawl_and_store(found, options, g, None, &mut |_, _| {})?;
    for report in &reports {
        let path = policies.join(format!("{}.policy.json", report.server));
        if report.ok && report.stored {
            let n = super::policy::write_recommended(&report.server, &path, g)?;
            eprintln!(
                "{}: {n} tools, recommended policy in {}",
                super::output::clean(&report.server, 60),
                path.display()
            );
        } else {
            write_atomic(&path, b"{\"version\": \"1\", \"default\": \"deny\"}\n")?;
            eprintln!(
                "{}: could not be listed ({}); its policy denies everything until you edit {}",
                super::output::clean(&report.server, 60),
                super::output::clean(report.error.as_deref().unwrap_or(""), 200),
                path.display()
            );
        }
    }
    // The backup first, byte for byte; then the new config.
    std::fs::write(&backup, &original).with_context(|| format!("writing {}", backup.display()))?;
    write_atomic(&file, new_text.as_bytes())?;
    eprintln!(
        "{}: {} servers now behind one `toolwarden` entry; `toolwarden gateway uninstall --client {}` restores it",
        file.display(),
        reports.len(),
        args.client.slug()
    );
    Ok(Outcome::Ok)
}

fn uninstall(args: &InstallArgs, _g: &Globals) -> anyhow::Result<Outcome> {
    let file = args.config_file.clone().unwrap_or_else(|| args.client.default_path());
    let backup = backup_path(&file);
    let saved = std::fs::read(&backup).map_err(|e| {
        UsageError(format!("{}: {e}; nothing to restore (was the gateway installed?)", backup.display()))
    })?;
    if args.dry_run {
        let now = std::fs::read(&file).unwrap_or_default();
        super::output::print(line_diff(&String::from_utf8_lossy(&now), &String::from_utf8_lossy(&saved), &file))?;
        return Ok(Outcome::Ok);
    }
    write_atomic(&file, &saved)?;
    std::fs::remove_file(&backup).with_context(|| format!("removing {}", backup.display()))?;
    eprintln!("{}: restored as it was before `gateway install`", file.display());
    Ok(Outcome::Ok)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A plain line diff (`-` old, `+` new) of what changes, in the unified style people read.
fn line_diff(old: &str, new: &str, file: &Path) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence, on line counts small enough for a config file.
    let (n, m) = (a.len().min(5000), b.len().min(5000));
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = format!("--- {0}\n+++ {0} (after gateway install)\n", file.display());
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    out
}
