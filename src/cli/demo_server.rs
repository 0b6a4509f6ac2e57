//! `toolwarden demo-server`: the built-in demo MCP server on stdio or Streamable HTTP.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Streamable HTTP on this address instead of stdio (e.g. 127.0.0.1:8931)
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = g;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match args.http {
            // The address goes to stderr: stdout stays clean for whoever started us.
            Some(addr) => {
                crate::demo::serve_http(&addr, |local| eprintln!("demo-server listening on http://{local}/mcp")).await?
            }
            None => crate::demo::serve_stdio().await?,
        }
        Ok(Outcome::Ok)
    })
}
