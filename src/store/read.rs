//! Reading the catalogue: current tools, server details, tool history and counts.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};

use super::{CrawlRun, ServerDetail, ServerStats, ServerSummary, Stats, Store, StoreError, ToolDetail, ToolEvent};
use crate::model::{Category, Classification, Risk, Tool, ToolRecord};

/// How many crawl runs `show SERVER` lists.
const RUNS_SHOWN: usize = 20;

const RECORD_COLUMNS: &str = "s.name, t.name, t.fingerprint, d.body, c.ruleset, c.category, c.risk, c.confidence,
     c.evidence, c.factors, c.findings";

impl Store {
    /// Call `f` with every current tool of these servers (all when empty), ordered by server and name,
    /// without holding them all in memory.
    pub fn for_each_record<E: From<StoreError>>(
        &self,
        servers: &[String],
        mut f: impl FnMut(ToolRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        // Two statements, not `?1 IS NULL OR …`: the OR hides the server filter from the planner, which then
        // scans every current tool to answer for one server (125 ms instead of 1 at 250k tools).
        let sql = if servers.is_empty() {
            format!(
                "SELECT {RECORD_COLUMNS} FROM current_tools t JOIN servers s ON s.id = t.server_id
                 JOIN definitions d ON d.fingerprint = t.fingerprint
                 JOIN classifications c ON c.fingerprint = t.fingerprint
                 WHERE ?1 IS NULL ORDER BY s.name, t.name"
            )
        } else {
            format!(
                "SELECT {RECORD_COLUMNS} FROM servers s CROSS JOIN current_tools t ON t.server_id = s.id
                 JOIN definitions d ON d.fingerprint = t.fingerprint
                 JOIN classifications c ON c.fingerprint = t.fingerprint
                 WHERE s.name IN (SELECT value FROM json_each(?1)) ORDER BY s.name, t.name"
            )
        };
        let filter =
            (!servers.is_empty()).then(|| serde_json::to_string(servers)).transpose().map_err(StoreError::from)?;
        let mut stmt = self.conn.prepare_cached(&sql).map_err(StoreError::from)?;
        let mut rows = stmt.query([filter]).map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            f(record_from_row(row)?)?;
        }
        Ok(())
    }

    /// Like [`Store::for_each_record`], inside one read transaction, returning the catalogue id and generation
    /// that the records are a snapshot of.
    pub fn snapshot_records<E: From<StoreError>>(
        &self,
        servers: &[String],
        f: impl FnMut(ToolRecord) -> Result<(), E>,
    ) -> Result<(String, u64), E> {
        let tx = self.conn.unchecked_transaction().map_err(StoreError::from)?;
        let stamp = self.generation()?;
        self.for_each_record(servers, f)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(stamp)
    }

    /// The current tools of these servers (all when empty).
    pub fn tools(&self, servers: &[String]) -> Result<Vec<ToolRecord>, StoreError> {
        let mut out = Vec::new();
        self.for_each_record(servers, |r| {
            out.push(r);
            Ok::<(), StoreError>(())
        })?;
        Ok(out)
    }

    /// How many servers and current tools the catalogue holds.
    pub fn counts(&self) -> Result<(usize, usize), StoreError> {
        let servers: i64 = self.conn.query_row("SELECT count(*) FROM servers", [], |r| r.get(0))?;
        let tools: i64 = self.conn.query_row("SELECT count(*) FROM current_tools", [], |r| r.get(0))?;
        Ok((servers as usize, tools as usize))
    }

    /// Every server with its tool count and latest run.
    pub fn servers(&self) -> Result<Vec<ServerSummary>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.id, s.name, s.first_seen, s.last_seen,
                    (SELECT count(*) FROM current_tools t WHERE t.server_id = s.id)
             FROM servers s ORDER BY s.name",
        )?;
        let rows: Vec<(i64, String, String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, name, first_seen, last_seen, tools)| {
                let last_run = self.runs(id, 1)?.into_iter().next();
                Ok(ServerSummary { name, tools: tools as usize, first_seen, last_seen, last_run })
            })
            .collect()
    }

    fn server_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT id FROM servers WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }

    fn runs(&self, server_id: i64, limit: usize) -> Result<Vec<CrawlRun>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, outcome, error, protocol_version, server_info, tools, added, removed, changed
             FROM crawl_runs WHERE server_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![server_id, limit as i64], |r| {
            let info: Option<String> = r.get(4)?;
            Ok(CrawlRun {
                at: r.get(0)?,
                outcome: r.get(1)?,
                error: r.get(2)?,
                protocol_version: r.get(3)?,
                server_info: info.and_then(|i| serde_json::from_str(&i).ok()),
                tools: r.get(5)?,
                added: r.get(6)?,
                removed: r.get(7)?,
                changed: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One server: its spec, what it said about itself, recent runs and current tools.
    pub fn server(&self, name: &str) -> Result<Option<ServerDetail>, StoreError> {
        type ServerRow = (i64, Option<String>, Option<String>, String, String);
        let row: Option<ServerRow> = self
            .conn
            .query_row("SELECT id, spec, info, first_seen, last_seen FROM servers WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((id, spec, info, first_seen, last_seen)) = row else { return Ok(None) };
        Ok(Some(ServerDetail {
            name: name.to_string(),
            spec: spec.map(|s| serde_json::from_str(&s)).transpose()?,
            info: info.map(|s| serde_json::from_str(&s)).transpose()?,
            first_seen,
            last_seen,
            runs: self.runs(id, RUNS_SHOWN)?,
            tools: self.tools(&[name.to_string()])?,
        }))
    }

    /// One tool of one server, with its history. A tool that was removed is still shown, from its last
    /// definition.
    pub fn tool(&self, server: &str, name: &str) -> Result<Option<ToolDetail>, StoreError> {
        let Some(server_id) = self.server_id(server)? else { return Ok(None) };
        let events = self.events(server_id, name)?;
        let current: Option<String> = self
            .conn
            .query_row(
                "SELECT since FROM current_tools WHERE server_id = ?1 AND name = ?2",
                params![server_id, name],
                |r| r.get(0),
            )
            .optional()?;
        let (fingerprint, since, is_current) = match (&current, events.last()) {
            (Some(since), _) => {
                let fp: String = self.conn.query_row(
                    "SELECT fingerprint FROM current_tools WHERE server_id = ?1 AND name = ?2",
                    params![server_id, name],
                    |r| r.get(0),
                )?;
                (fp, since.clone(), true)
            }
            (None, Some(last)) => match last.previous.clone().or_else(|| last.fingerprint.clone()) {
                Some(fp) => (fp, last.at.clone(), false),
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        let sql = "SELECT ?1, d.name, d.fingerprint, d.body, c.ruleset, c.category, c.risk, c.confidence, c.evidence,
                    c.factors, c.findings
             FROM definitions d JOIN classifications c ON c.fingerprint = d.fingerprint WHERE d.fingerprint = ?2";
        let record = self.conn.query_row(sql, params![server, fingerprint], |r| Ok(record_from_row(r)))??;
        Ok(Some(ToolDetail { record, since, current: is_current, history: events }))
    }

    /// The stored definition with this fingerprint, read as `T` (a [`crate::model::Tool`], or raw JSON).
    pub(crate) fn body<T: serde::de::DeserializeOwned>(&self, fingerprint: &str) -> Result<Option<T>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM definitions WHERE fingerprint = ?1")?
            .query_row([fingerprint], |r| r.get(0))
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    fn events(&self, server_id: i64, name: &str) -> Result<Vec<ToolEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, kind, fingerprint, previous FROM tool_events WHERE server_id = ?1 AND name = ?2 ORDER BY id",
        )?;
        let rows: Vec<(String, String, Option<String>, Option<String>)> = stmt
            .query_map(params![server_id, name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut events = Vec::with_capacity(rows.len());
        for (at, kind, fingerprint, previous) in rows {
            let mut event =
                ToolEvent { at, kind, fingerprint, previous, changed_fields: Vec::new(), previous_description: None };
            if let (Some(new), Some(old)) = (&event.fingerprint, &event.previous) {
                let (new, old): (serde_json::Value, serde_json::Value) =
                    (self.body(new)?.unwrap_or_default(), self.body(old)?.unwrap_or_default());
                event.changed_fields = changed_fields(&old, &new);
                if event.changed_fields.iter().any(|f| f == "description") {
                    event.previous_description = old.get("description").and_then(|d| d.as_str()).map(str::to_string);
                }
            }
            events.push(event);
        }
        Ok(events)
    }

    /// Counts by server, category and risk over the current tools.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let mut stats = Stats {
            by_category: Category::ALL.iter().map(|c| (c.as_str().to_string(), 0)).collect(),
            by_risk: Risk::ALL.iter().map(|r| (r.as_str().to_string(), 0)).collect(),
            ..Stats::default()
        };
        let zero_risks: BTreeMap<String, usize> = Risk::ALL.iter().map(|r| (r.as_str().to_string(), 0)).collect();
        // Every server with the outcome of its last run: one pass over the runs' index, not a query per server.
        let mut stmt = self.conn.prepare(
            "SELECT s.id, s.name, r.outcome FROM servers s
             LEFT JOIN crawl_runs r ON r.id = (SELECT max(id) FROM crawl_runs WHERE server_id = s.id)
             ORDER BY s.name",
        )?;
        let servers: Vec<(i64, String, Option<String>)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        let mut position = std::collections::HashMap::with_capacity(servers.len());
        for (i, (id, name, outcome)) in servers.into_iter().enumerate() {
            position.insert(id, i);
            stats.by_server.push(ServerStats {
                server: name,
                tools: 0,
                by_risk: zero_risks.clone(),
                last_outcome: outcome,
            });
        }
        // The counts the triggers of schema version 5 keep (store/schema.rs).
        let mut stmt = self.conn.prepare("SELECT server_id, category, risk, tools FROM risk_counts WHERE tools > 0")?;
        let rows: Vec<(i64, String, String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
        for (server, category, risk, count) in rows {
            let count = count as usize;
            stats.tools += count;
            *stats.by_category.entry(category).or_default() += count;
            *stats.by_risk.entry(risk.clone()).or_default() += count;
            if let Some(s) = position.get(&server).and_then(|&i| stats.by_server.get_mut(i)) {
                s.tools += count;
                *s.by_risk.entry(risk).or_default() += count;
            }
        }
        stats.servers = stats.by_server.len();
        let definitions: i64 = self.conn.query_row("SELECT count(*) FROM definitions", [], |r| r.get(0))?;
        stats.definitions = definitions as usize;
        Ok(stats)
    }
}

/// The top-level keys whose values differ between two definitions.
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| old.get(*k) != new.get(*k)).cloned().collect()
}

fn record_from_row(row: &Row<'_>) -> Result<ToolRecord, StoreError> {
    let body: String = row.get(3)?;
    let tool: Tool = serde_json::from_str(&body)?;
    let category: String = row.get(5)?;
    let risk: String = row.get(6)?;
    let evidence: String = row.get(8)?;
    let factors: String = row.get(9)?;
    let findings: String = row.get(10)?;
    let bad = |e: crate::model::ParseEnumError| StoreError::Data(e.to_string());
    Ok(ToolRecord {
        server: row.get(0)?,
        tool,
        fingerprint: row.get(2)?,
        classification: {
            let mut c = Classification {
                category: category.parse().map_err(bad)?,
                risk: risk.parse().map_err(bad)?,
                confidence: row.get(7)?,
                evidence: serde_json::from_str(&evidence)?,
                factors: serde_json::from_str(&factors)?,
                findings: serde_json::from_str(&findings)?,
                ruleset: row.get(4)?,
                rationale: String::new(),
            };
            c.rationale = crate::model::rationale(c.category, c.risk, &c.evidence, &c.factors);
            c
        },
    })
}
