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
use crate::proxy::session::Outbox;
use crate::proxy::upstream::UpstreamSpec;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The servers: a catalogue file (TOML or JSON, schemas/servers.schema.json), as `crawl --config` reads it
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A policy per server: DIR/SERVER.policy.json (what `policy generate` writes)
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// The policy of every server without one in --policy-dir
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
    /// Largest message accepted from either side, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_message: usize,
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

pub(super) fn run(args: Args, _g: &Globals) -> anyhow::Result<Outcome> {
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
    let found = sources::from_servers_file(&args.config).map_err(|e| UsageError(e.to_string()))?;
    if found.is_empty() {
        return Err(UsageError(format!("{}: no servers", args.config.display())).into());
    }
    let mut servers = Vec::new();
    for source in found {
        let name = source.spec.name.clone();
        let path = policy_for(&args, &name)?;
        let policy = crate::policy::load_file(&path).with_context(|| format!("the policy of server {name:?}"))?;
        let gate = Arc::new(PolicyGate::new(policy, Arc::new(MemoryCounters::new())));
        servers.push(Server { name, spec: upstream(&source.spec.transport), gate });
    }
    let audit = Arc::new(match &args.audit {
        Some(path) => Audit::open(path, false)?,
        None => Audit::disabled(),
    });
    let config = Config {
        servers,
        separator: args.separator.clone(),
        audit: Arc::clone(&audit),
        call_timeout: secs(args.call_timeout, "--call-timeout")?,
        startup_timeout: secs(args.startup_timeout, "--startup-timeout")?,
        max_message: args.max_message,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
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
