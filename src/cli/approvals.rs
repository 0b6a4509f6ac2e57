//! `toolwarden approvals list | approve ID | deny ID`: decide, from any terminal, the calls a running proxy
//! holds for a person (same `--data-dir` as the proxy). The proxy polls the row and forwards or refuses the
//! call as soon as it changes. With `--state redis://…` (the proxies' `--state` and `--state-prefix`) the
//! commands work on the queue shared through Redis instead, from any host: ids are then the shared ones.

use super::output::{self, Format, clean};
use super::time::parse_duration;
use super::{Globals, Outcome, UsageError};
use crate::approvals::Queue;
use crate::store::{Approval, Decision};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  toolwarden approvals list\n  toolwarden approvals approve 3 --for 10m\n  \
toolwarden approvals deny 4 --reason \"not in production\"\n  \
toolwarden approvals list --state redis://10.0.0.5:6379/0 --state-prefix prod")]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
    /// The queue shared by proxies running with this --state redis://HOST:PORT/DB (any host); default: the
    /// catalogue database of --data-dir (this host)
    #[arg(long, global = true, value_name = "redis://HOST:PORT/DB")]
    pub state: Option<String>,
    /// The proxies' --state-prefix
    #[arg(long, global = true, value_name = "PREFIX", default_value = "toolwarden")]
    pub state_prefix: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Calls waiting for a decision (with --all: decided ones too)
    List {
        /// Also show approved, denied, expired and timed-out calls
        #[arg(long)]
        all: bool,
    },
    /// Let a waiting call through
    Approve {
        id: i64,
        /// Also approve the same tool with the same arguments for this long (e.g. 10m)
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// Who decides [default: $USER]
        #[arg(long = "as", value_name = "NAME")]
        as_: Option<String>,
    },
    /// Refuse a waiting call; the agent sees the reason
    Deny {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Who decides [default: $USER]
        #[arg(long = "as", value_name = "NAME")]
        as_: Option<String>,
    },
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("approvals", g.format, &[Format::Table, Format::Json])?;
    let journal = open_queue(g, args.state.as_deref(), &args.state_prefix)?;
    match args.command {
        Sub::List { all } => list(&journal.list(all)?, g),
        Sub::Approve { id, for_, as_ } => {
            let window = for_.as_deref().map(|t| parse_duration("--for", t)).transpose()?;
            let window = window.map(|d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX));
            let by = decider(as_);
            decide(&journal, id, &Decision { approve: true, by: &by, reason: None, approve_for_secs: window }, g)
        }
        Sub::Deny { id, reason, as_ } => {
            let by = decider(as_);
            let d = Decision { approve: false, by: &by, reason: reason.as_deref(), approve_for_secs: None };
            decide(&journal, id, &d, g)
        }
    }
}

/// The queue of `--data-dir`, or the shared one of `--state`; a bad flag is a usage error.
pub(super) fn open_queue(g: &Globals, state: Option<&str>, prefix: &str) -> anyhow::Result<Queue> {
    Queue::open(&g.data_dir(), state, prefix)
        .map_err(|e| if e.is_usage() { anyhow::Error::from(UsageError(e.to_string())) } else { e.into() })
}

/// Who decides: `--as NAME`, else the user running the command.
pub(super) fn decider(name: Option<String>) -> String {
    name.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn decide(journal: &Queue, id: i64, d: &Decision<'_>, g: &Globals) -> anyhow::Result<Outcome> {
    let Some((changed, row)) = journal.decide(id, d)? else {
        return Err(UsageError(format!("no approval request {id}; `toolwarden approvals list` shows them")).into());
    };
    if !changed {
        return Err(UsageError(format!("approval request {id} is no longer pending (it is {})", row.status)).into());
    }
    if g.format == Format::Json {
        output::print_json(&row)?;
    } else if !g.quiet {
        let until = row.approved_until.as_deref().map(|u| format!(" (same arguments until {u})")).unwrap_or_default();
        output::print(format_args!("{} {id}: {}{until}", row.status, clean(&row.tool, 80)))?;
    }
    Ok(Outcome::Ok)
}

fn list(rows: &[Approval], g: &Globals) -> anyhow::Result<Outcome> {
    if g.format == Format::Json {
        output::print_json(rows)?;
        return Ok(Outcome::Ok);
    }
    if rows.is_empty() {
        if !g.quiet {
            output::print("no calls wait for approval")?;
        }
        return Ok(Outcome::Ok);
    }
    let mut table = output::table(["ID", "STATUS", "TOOL", "ARGUMENTS", "REASON", "REQUESTED", "DECIDED BY"]);
    for a in rows {
        table.add_row([
            a.id.to_string(),
            a.status.clone(),
            clean(&a.tool, 40),
            clean(&a.arguments.to_string(), 60),
            clean(a.reason.as_deref().unwrap_or(""), 50),
            a.requested_at.clone(),
            clean(a.decided_by.as_deref().unwrap_or(""), 20),
        ]);
    }
    output::print(table)?;
    Ok(Outcome::Ok)
}
