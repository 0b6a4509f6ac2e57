//! `toolwarden import`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Captured tools/list results (JSON)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Server name for the tools (default: each file's stem)
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden import` is not available yet".into()).into())
}
