//! toolwarden: crawl MCP servers, classify every tool by risk, keep a searchable catalogue, generate policies,
//! and enforce them in a proxy.
//!
//! The pipeline flows one way (see `README.md`): sources → crawl → classify → store → index → search, and
//! store → policy → proxy. Each module owns one stage. Only `mcp`, `proxy` and `demo` speak MCP through rmcp,
//! only `store` touches SQLite and only `index` touches tantivy, so each of those crates can be replaced or
//! upgraded in one place.

pub mod approvals;
pub mod attacks;
pub mod catalogue;
pub mod classify;
pub mod cli;
pub mod corpus;
pub mod crawl;
pub mod demo;
pub mod gateway;
pub mod index;
pub mod journal;
pub mod mcp;
pub mod model;
pub mod pin;
pub mod policy;
pub mod proxy;
pub mod sandbox;
pub mod store;
pub mod web;
