//! `toolwarden demo-server`: the built-in demo MCP server on stdio or Streamable HTTP.

use super::{Globals, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Streamable HTTP on this address instead of stdio (e.g. 127.0.0.1:8931)
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// List poisoned tools (hidden instructions, shadowing, invisible characters, a look-alike name) and a
    /// changed `get_customer` (a rug pull against a pin taken without this flag)
    #[arg(long)]
    pub poisoned: bool,
}

pub(super) fn run(args: Args, g: &Globals) -> anyhow::Result<Outcome> {
    let _ = g;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let server = if args.poisoned { crate::demo::DemoServer::poisoned() } else { crate::demo::DemoServer::new() };
    runtime.block_on(async {
        match args.http {
            // The address goes to stderr: stdout stays clean for whoever started us.
            Some(addr) => {
                crate::demo::serve_http_with(server, &addr, |local| {
                    eprintln!("demo-server listening on http://{local}/mcp")
                })
                .await?
            }
            None => crate::demo::serve_stdio_with(server).await?,
        }
        Ok(Outcome::Ok)
    })
}
