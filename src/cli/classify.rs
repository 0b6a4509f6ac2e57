//! `toolwarden classify`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Captured tools/list results (JSON)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden classify` is not available yet".into()).into())
}
