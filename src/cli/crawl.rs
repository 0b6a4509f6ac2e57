//! `toolwarden crawl`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stdio server to start: "CMD ARGS" (repeatable)
    #[arg(long, value_name = "CMD ARGS")]
    pub stdio: Vec<String>,
    /// A Streamable HTTP endpoint (repeatable)
    #[arg(long, value_name = "URL")]
    pub http: Vec<String>,
    /// A header for the HTTP endpoints: "K: V" (repeatable)
    #[arg(long, value_name = "K: V")]
    pub header: Vec<String>,
    /// A catalogue file of named servers (TOML or JSON)
    #[arg(long, value_name = "FILE")]
    pub config: Vec<std::path::PathBuf>,
    /// An MCP client configuration file; without FILE, the well-known locations
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub client_config: Option<Option<std::path::PathBuf>>,
    /// An MCP registry listing (server.json entries)
    #[arg(long, value_name = "FILE")]
    pub registry: Vec<std::path::PathBuf>,
    /// How many servers to crawl at once [default: from the core count]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Deadline per server, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Start stdio servers found in config files without asking
    #[arg(long)]
    pub yes: bool,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden crawl` is not available yet".into()).into())
}
