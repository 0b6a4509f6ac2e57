//! Pins, and the cross-server name check that goes with them.
//!
//! Pins: the tool definitions (by fingerprint) a person approved for a server, to compare later listings with.
//!
//! A pin is a copy of a server's current tool set at one moment. Definitions are never deleted, so a pinned
//! fingerprint always still has its body for a text diff, however often the server changed since.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::model::{Finding, Tool};

/// A server's pin: when it was taken and the approved fingerprint of each tool name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinSet {
    pub server: String,
    pub pinned_at: String,
    pub tools: BTreeMap<String, String>,
}

impl Store {
    /// Pin the current tool set of `server` (replacing an older pin). `None` when the catalogue does not know
    /// the server.
    pub fn pin(&mut self, server: &str) -> Result<Option<PinSet>, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: Option<i64> =
            tx.query_row("SELECT id FROM servers WHERE name = ?1", [server], |r| r.get(0)).optional()?;
        let Some(id) = id else { return Ok(None) };
        let at = super::now();
        tx.execute("DELETE FROM pins WHERE server_id = ?1", [id])?;
        tx.execute(
            "INSERT INTO pinned_servers(server_id, pinned_at) VALUES (?1, ?2)
             ON CONFLICT(server_id) DO UPDATE SET pinned_at = excluded.pinned_at",
            params![id, at],
        )?;
        tx.execute(
            "INSERT INTO pins(server_id, name, fingerprint) SELECT server_id, name, fingerprint FROM current_tools
             WHERE server_id = ?1",
            [id],
        )?;
        tx.commit()?;
        self.pin_set(server)
    }

    /// The pin of `server`, or `None` when it has none.
    pub fn pin_set(&self, server: &str) -> Result<Option<PinSet>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT p.server_id, p.pinned_at FROM pinned_servers p JOIN servers s ON s.id = p.server_id
                 WHERE s.name = ?1",
                [server],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, pinned_at)) = row else { return Ok(None) };
        let mut stmt = self.conn.prepare_cached("SELECT name, fingerprint FROM pins WHERE server_id = ?1")?;
        let tools = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(Some(PinSet { server: server.to_string(), pinned_at, tools }))
    }

    /// The current fingerprint of each tool of `server` (empty for an unknown server).
    pub fn current_fingerprints(&self, server: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.name, t.fingerprint FROM current_tools t JOIN servers s ON s.id = t.server_id WHERE s.name = ?1",
        )?;
        let out = stmt.query_map([server], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    /// For each current tool of `server` whose name another server also offers, those other servers.
    pub fn shared_tool_names(&self, server: &str) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.name, s2.name FROM current_tools t JOIN servers s ON s.id = t.server_id
             JOIN current_tools t2 ON t2.name = t.name AND t2.server_id != t.server_id
             JOIN servers s2 ON s2.id = t2.server_id
             WHERE s.name = ?1 ORDER BY t.name, s2.name",
        )?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let rows = stmt.query_map([server], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (name, other) = row?;
            out.entry(name).or_default().push(other);
        }
        Ok(out)
    }

    /// The other servers that currently offer a tool named `name`.
    pub fn other_servers_with(&self, name: &str, server: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.name FROM current_tools t JOIN servers s ON s.id = t.server_id
             WHERE t.name = ?1 AND s.name != ?2 ORDER BY s.name",
        )?;
        let out = stmt.query_map([name, server], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    /// The findings stored for a definition, in the classifier's order.
    pub fn findings_of(&self, fingerprint: &str) -> Result<Vec<Finding>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, severity, text FROM findings WHERE fingerprint = ?1 ORDER BY seq")?;
        let rows: Vec<(String, String, String)> =
            stmt.query_map([fingerprint], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, severity, text)| {
                let severity = serde_json::from_value(serde_json::Value::String(severity))?;
                Ok(Finding::new(id, severity, text))
            })
            .collect()
    }

    /// The stored definition with this fingerprint.
    pub fn definition(&self, fingerprint: &str) -> Result<Option<Tool>, StoreError> {
        self.body(fingerprint)
    }
}

#[cfg(test)]
#[path = "pins_tests.rs"]
mod tests;
