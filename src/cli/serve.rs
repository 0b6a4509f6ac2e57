//! `toolwarden serve`: the web console over this data directory's catalogue, approval queue and audit; and
//! `toolwarden site --out DIR`: the catalogue as static pages.

use std::path::PathBuf;

use super::{Globals, Outcome, UsageError};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  toolwarden serve\n  toolwarden serve --listen 0.0.0.0:8088 --auth-tokens tokens.json\n  \
toolwarden serve --state redis://10.0.0.5:6379/0 --state-prefix prod"
)]
pub struct Args {
    /// HOST:PORT or PORT (loopback); any address other than loopback requires --auth-tokens
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// JSON object mapping access tokens (16+ characters) to identities, as for `proxy --auth-tokens`;
    /// people log in with a token and decide approvals under its identity
    #[arg(long, value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
    /// Another name (HOST or HOST:PORT) the console may be reached by, e.g. behind a reverse proxy (repeatable)
    #[arg(long, value_name = "HOST")]
    pub allowed_host: Vec<String>,
    /// Decide approvals on the queue proxies share with this --state redis://HOST:PORT/DB
    #[arg(long, value_name = "redis://HOST:PORT/DB")]
    pub state: Option<String>,
    /// The proxies' --state-prefix
    #[arg(long, value_name = "PREFIX", default_value = "toolwarden")]
    pub state_prefix: String,
    /// Who decides when there are no logins [default: $USER]
    #[arg(long = "as", value_name = "NAME")]
    pub as_: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  toolwarden site --out public/")]
pub struct SiteArgs {
    /// The directory to write the pages into (created; files in it are replaced)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let listen = super::proxy::parse_listen(&args.listen)?;
    if !listen.ip().is_loopback() && args.auth_tokens.is_none() {
        return Err(UsageError(format!(
            "--listen {listen}: a console reachable from other machines needs --auth-tokens FILE (people log in with a token)"
        ))
        .into());
    }
    let auth_tokens = args.auth_tokens.as_deref().map(super::proxy::load_tokens).transpose()?;
    let queue = super::approvals::open_queue(g, args.state.as_deref(), &args.state_prefix)?;
    let decider = super::approvals::decider(args.as_);
    let config = crate::web::Config {
        listen,
        data_dir: g.data_dir(),
        queue,
        auth_tokens,
        allowed_hosts: args.allowed_host,
        decider,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        tokio::select! {
            r = crate::web::serve(config) => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(Outcome::Ok)
}

pub(super) fn run_site(args: SiteArgs, g: &Globals) -> anyhow::Result<Outcome> {
    let Some(catalogue) = super::search::open_nonempty(g, None)? else { return Ok(Outcome::Ok) };
    let report = crate::web::site::write_site(&catalogue, &args.out)?;
    if g.format == super::output::Format::Json {
        super::output::print_json(&report)?;
    } else if !g.quiet {
        super::output::print(format_args!(
            "wrote {} servers and {} tools ({} files) to {}",
            report.servers,
            report.tools,
            report.files,
            args.out.display()
        ))?;
    }
    Ok(Outcome::Ok)
}
