//! `toolwarden policy`.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Generate a recommended policy from the catalogue
    Generate {
        /// Only these servers (repeatable)
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// How strict the recommendations are
        #[arg(long, default_value = "balanced", value_name = "strict|balanced|permissive")]
        profile: String,
        /// Write to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Validate a policy file (JSON or YAML)
    Check { file: std::path::PathBuf },
    /// Show the decision a policy makes for one call, and why
    Explain {
        file: std::path::PathBuf,
        #[arg(long, value_name = "NAME")]
        tool: String,
        /// The call's arguments as JSON
        #[arg(long, value_name = "JSON")]
        args: Option<String>,
    },
    /// Convert a rule-based YAML policy into ours
    Import {
        file: std::path::PathBuf,
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = (args, g);
    Err(super::UsageError("`toolwarden policy` is not available yet".into()).into())
}
