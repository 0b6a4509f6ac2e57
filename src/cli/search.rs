//! `toolwarden search`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to look for in names, titles and descriptions
    pub query: Option<String>,
    /// Only these categories (repeatable)
    #[arg(long, value_name = "CAT")]
    pub category: Vec<crate::model::Category>,
    /// Only these risk levels (repeatable)
    #[arg(long, value_name = "LEVEL")]
    pub risk: Vec<crate::model::Risk>,
    /// Only this risk level and above
    #[arg(long, value_name = "LEVEL")]
    pub min_risk: Option<crate::model::Risk>,
    /// Only this server
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// At most N results
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden search` is not available yet".into()).into())
}
