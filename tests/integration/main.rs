//! One integration-test binary (see `autotests = false` in Cargo.toml): every test drives the real
//! `toolwarden` binary, real files, real databases and real MCP servers.

mod util;

// The unit tests' private `redis-server`, the same file: one place knows how to start and probe it.
#[path = "../../src/proxy/test_redis.rs"]
mod test_redis;

mod approvals;
mod catalogue;
mod classify;
mod console;
mod crawl;
mod demo;
mod farm;
mod findings;
mod gateway;
mod policy;
mod proxy;
mod quickstart;
mod sandbox;
