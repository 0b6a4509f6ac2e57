//! `toolwarden export`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden export` is not available yet".into()).into())
}
