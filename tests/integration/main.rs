//! One integration-test binary (see `autotests = false` in Cargo.toml): every test drives the real
//! `toolwarden` binary, real files, real databases and real MCP servers.

mod util;

mod approvals;
mod catalogue;
mod classify;
mod crawl;
mod demo;
mod findings;
mod policy;
mod proxy;
mod quickstart;
mod sandbox;
