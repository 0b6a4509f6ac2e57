//! `toolwarden audit`: read the proxy's decisions from the catalogue's `audit` table, filtered by tool,
//! decision and time.

use super::output::{self, Format, clean};
use super::time::parse_since;
use super::{Globals, Outcome};
use crate::journal::Journal;
use crate::store::AuditQuery;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only calls of this tool (exact name)
    #[arg(long, value_name = "T")]
    pub tool: Option<String>,
    /// Only calls to this server (behind a gateway)
    #[arg(long, value_name = "S")]
    pub server: Option<String>,
    /// Only this decision: allow, deny, approve, approved, denied, declined, cancelled, timed_out, expired, invalid
    #[arg(long, value_name = "D")]
    pub decision: Option<String>,
    /// Only records at or after TIME: RFC 3339, or how long ago (10m, 2h, 1d)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// At most the newest N records
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    output::require_format("audit", g.format, &[Format::Table, Format::Json])?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let journal = Journal::open(&g.data_dir())?;
    let query =
        AuditQuery { tool: args.tool, server: args.server, decision: args.decision, since, limit: Some(args.limit) };
    let rows = journal.audit(&query)?;
    if g.format == Format::Json {
        output::print_json(&rows)?;
        return Ok(Outcome::Ok);
    }
    let mut table =
        output::table(["TIME", "SERVER", "TOOL", "DECISION", "OUTCOME", "RULE", "REASON", "IDENTITY", "BY"]);
    for r in &rows {
        table.add_row([
            r.time.clone(),
            clean(r.server.as_deref().unwrap_or(""), 30),
            clean(&r.tool, 40),
            r.decision.clone(),
            r.outcome.clone().unwrap_or_default(),
            clean(r.rule.as_deref().unwrap_or(""), 30),
            clean(r.reason.as_deref().unwrap_or(""), 60),
            clean(r.identity.as_deref().unwrap_or(""), 20),
            clean(r.decided_by.as_deref().unwrap_or(""), 20),
        ]);
    }
    output::print(table)?;
    Ok(Outcome::Ok)
}
