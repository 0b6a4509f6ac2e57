//! `toolwarden demo-server`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Streamable HTTP on this address instead of stdio (e.g. 127.0.0.1:8931)
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden demo-server` is not available yet".into()).into())
}
