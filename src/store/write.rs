//! Writing crawl results: one transaction per batch, prepared statements, and no write for what did not change.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, debug_pause, now, read_generation};
use crate::model::{ChangeReport, Classification, ServerSnapshot, ServerSpec, Tool, canonical_json};

/// Longest error text kept for a failed crawl run.
const MAX_ERROR_CHARS: usize = 4000;

/// What one batch write did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ingested {
    /// One per snapshot, in order.
    pub reports: Vec<ChangeReport>,
    /// Servers whose current tools changed (the index must update them).
    pub touched: Vec<String>,
    /// Definitions classified again because the ruleset version changed (the whole index must be rebuilt).
    pub reclassified: usize,
    /// The store generation before and after the batch (equal when nothing changed).
    pub generation_before: u64,
    pub generation: u64,
}

impl Store {
    /// Which of these fingerprints already have a classification by `ruleset`.
    pub fn classified(&self, fingerprints: &[String], ruleset: &str) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fingerprint FROM classifications
             WHERE ruleset = ?2 AND fingerprint IN (SELECT value FROM json_each(?1))",
        )?;
        let rows = stmt.query_map(params![serde_json::to_string(fingerprints)?, ruleset], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Store the listings of several servers in one transaction. Tools whose definition (with this `ruleset`)
    /// is already classified are not classified again; when the stored ruleset differs, every stored
    /// definition is reclassified first. `classify` gets each tool with its fingerprint.
    pub fn ingest(
        &mut self,
        snapshots: &[ServerSnapshot],
        ruleset: &str,
        classify: &mut dyn FnMut(&Tool, &str) -> Classification,
    ) -> Result<Ingested, StoreError> {
        self.ingest_prepared(snapshots, &[], ruleset, classify, &[])
    }

    /// Which of these queue jobs were stored already (see [`Store::ingest_prepared`]'s `receipts`).
    pub fn received(&self, jobs: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM queue_receipts WHERE job = ?1")?;
        let mut out = HashSet::new();
        for job in jobs {
            if stmt.exists([job])? {
                out.insert(job.clone());
            }
        }
        Ok(out)
    }

    /// [`Store::ingest`] with each tool's canonical body and fingerprint already computed (`prepared[i][j]` for
    /// `snapshots[i].tools[j]`, see [`prepare`]; an empty slice computes them here): a bulk import computes them
    /// on every core before the single-threaded transaction. `receipts`: queue job ids recorded as stored in
    /// the same transaction.
    pub fn ingest_prepared(
        &mut self,
        snapshots: &[ServerSnapshot],
        prepared: &[Vec<Prepared>],
        ruleset: &str,
        classify: &mut dyn FnMut(&Tool, &str) -> Classification,
        receipts: &[String],
    ) -> Result<Ingested, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let generation_before = read_generation(&tx)?;
        let now = now();
        let stale: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM classifications WHERE ruleset <> ?1)", [ruleset], |r| r.get(0))?;
        let reclassified = if stale { reclassify_in(&tx, ruleset, &mut |t| classify(t, ""), &now)? } else { 0 };
        let mut reports = Vec::with_capacity(snapshots.len());
        let mut touched = Vec::new();
        for (i, snapshot) in snapshots.iter().enumerate() {
            let report = ingest_one(&tx, snapshot, prepared.get(i).map(Vec::as_slice), ruleset, classify, &now)?;
            if !report.is_empty() && !touched.contains(&snapshot.server) {
                touched.push(snapshot.server.clone());
            }
            reports.push(report);
        }
        let generation = if reclassified > 0 || !touched.is_empty() {
            set_generation(&tx, generation_before + 1)?;
            generation_before + 1
        } else {
            generation_before
        };
        {
            let mut stmt = tx.prepare_cached("INSERT OR IGNORE INTO queue_receipts(job, at) VALUES (?1, ?2)")?;
            for job in receipts {
                stmt.execute(params![job, now])?;
            }
        }
        debug_pause("store");
        tx.commit()?;
        Ok(Ingested { reports, touched, reclassified, generation_before, generation })
    }

    /// Classify again every stored definition whose classification came from another ruleset.
    /// Returns how many were reclassified (the index must then be rebuilt).
    pub fn reclassify(
        &mut self,
        ruleset: &str,
        classify: &mut dyn FnMut(&Tool) -> Classification,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let count = reclassify_in(&tx, ruleset, classify, &now())?;
        if count > 0 {
            let generation = read_generation(&tx)?;
            set_generation(&tx, generation + 1)?;
        }
        tx.commit()?;
        Ok(count)
    }

    /// Record a failed listing; the server's tools stay as they were.
    pub fn record_failure(&mut self, server: &str, spec: Option<&ServerSpec>, reason: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now();
        let server_id = upsert_server(&tx, server, spec, None, &now)?;
        let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
        tx.execute(
            "INSERT INTO crawl_runs(server_id, at, outcome, error) VALUES (?1, ?2, 'failed', ?3)",
            params![server_id, now, reason],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn set_generation(tx: &Transaction<'_>, generation: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('generation', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [generation.to_string()],
    )?;
    Ok(())
}

fn upsert_server(
    tx: &Transaction<'_>,
    name: &str,
    spec: Option<&ServerSpec>,
    info: Option<&crate::model::ServerInfo>,
    now: &str,
) -> Result<i64, StoreError> {
    // Secrets never reach the disk: only the redacted spec is stored.
    let spec = spec.map(|s| serde_json::to_string(&s.redacted())).transpose()?;
    let info = info.map(serde_json::to_string).transpose()?;
    let id = tx
        .prepare_cached(
            "INSERT INTO servers(name, spec, info, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT(name) DO UPDATE SET spec = coalesce(excluded.spec, spec), info = coalesce(excluded.info, info),
                                         last_seen = excluded.last_seen
         RETURNING id",
        )?
        .query_row(params![name, spec, info, now], |r| r.get(0))?;
    Ok(id)
}

/// A tool's canonical JSON body and its fingerprint (the SHA-256 of the body, hex).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: String,
    pub fingerprint: String,
}

/// The canonical body and fingerprint of a tool.
pub fn prepare(tool: &Tool) -> Result<Prepared, StoreError> {
    let body = canonical_json(&serde_json::to_value(tool)?);
    let fingerprint = hex::encode(Sha256::digest(body.as_bytes()));
    Ok(Prepared { body, fingerprint })
}

fn ingest_one(
    tx: &Transaction<'_>,
    snapshot: &ServerSnapshot,
    prepared: Option<&[Prepared]>,
    ruleset: &str,
    classify: &mut dyn FnMut(&Tool, &str) -> Classification,
    now: &str,
) -> Result<ChangeReport, StoreError> {
    let server_id = upsert_server(tx, &snapshot.server, snapshot.spec.as_ref(), snapshot.info.as_ref(), now)?;
    let previous: HashMap<String, String> = tx
        .prepare_cached("SELECT name, fingerprint FROM current_tools WHERE server_id = ?1")?
        .query_map([server_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let protocol = snapshot.info.as_ref().and_then(|i| i.protocol_version.clone());
    let info = snapshot.info.as_ref().map(serde_json::to_string).transpose()?;
    let run_id: i64 = tx
        .prepare_cached(
            "INSERT INTO crawl_runs(server_id, at, outcome, protocol_version, server_info, tools)
             VALUES (?1, ?2, 'ok', ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(params![server_id, now, protocol, info, snapshot.tools.len() as i64], |r| r.get(0))?;

    let mut report = ChangeReport { server: snapshot.server.clone(), ..ChangeReport::default() };
    let mut seen: HashSet<&str> = HashSet::with_capacity(snapshot.tools.len());
    let mut insert_definition = tx.prepare_cached(
        "INSERT INTO definitions(fingerprint, name, body, first_seen) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(fingerprint) DO NOTHING",
    )?;
    let mut classified_with = tx.prepare_cached("SELECT ruleset FROM classifications WHERE fingerprint = ?1")?;
    let mut insert_current = tx.prepare_cached(
        "INSERT INTO current_tools(server_id, name, fingerprint, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(server_id, name) DO UPDATE SET fingerprint = excluded.fingerprint, since = excluded.since",
    )?;
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO tool_events(server_id, name, run_id, at, kind, fingerprint, previous)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (j, tool) in snapshot.tools.iter().enumerate() {
        if !seen.insert(tool.name.as_str()) {
            // A server listing one name twice is broken; the first definition is the one clients would see.
            tracing::warn!(server = ?snapshot.server, "tool {:?} is listed more than once; keeping the first", tool.name);
            continue;
        }
        let computed;
        let Prepared { body, fingerprint } = match prepared.and_then(|p| p.get(j)) {
            Some(p) => p,
            None => {
                computed = prepare(tool)?;
                &computed
            }
        };
        let new_definition = insert_definition.execute(params![fingerprint, tool.name, body, now])? == 1;
        let stored: Option<String> =
            if new_definition { None } else { classified_with.query_row([&fingerprint], |r| r.get(0)).optional()? };
        if stored.as_deref() != Some(ruleset) {
            let classification = classify(tool, fingerprint);
            write_classification(tx, fingerprint, ruleset, &classification, now)?;
        }
        let (kind, before) = match previous.get(&tool.name) {
            None => ("added", None),
            Some(before) if before == fingerprint => {
                report.unchanged += 1;
                continue;
            }
            Some(before) => ("changed", Some(before.as_str())),
        };
        insert_current.execute(params![server_id, tool.name, fingerprint, now])?;
        insert_event.execute(params![server_id, tool.name, run_id, now, kind, fingerprint, before])?;
        match kind {
            "added" => report.added.push(tool.name.clone()),
            _ => report.changed.push(tool.name.clone()),
        }
    }
    let mut delete_current = tx.prepare_cached("DELETE FROM current_tools WHERE server_id = ?1 AND name = ?2")?;
    let mut removed: Vec<(&String, &String)> =
        previous.iter().filter(|(name, _)| !seen.contains(name.as_str())).collect();
    removed.sort();
    for (name, before) in removed {
        delete_current.execute(params![server_id, name])?;
        insert_event.execute(params![server_id, name, run_id, now, "removed", None::<String>, before])?;
        report.removed.push(name.clone());
    }
    tx.prepare_cached("UPDATE crawl_runs SET added = ?2, removed = ?3, changed = ?4 WHERE id = ?1")?.execute(
        params![run_id, report.added.len() as i64, report.removed.len() as i64, report.changed.len() as i64],
    )?;
    Ok(report)
}

fn write_classification(
    tx: &Transaction<'_>,
    fingerprint: &str,
    ruleset: &str,
    c: &Classification,
    now: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO classifications(fingerprint, ruleset, category, risk, confidence, evidence, factors, findings,
                                     classified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(fingerprint) DO UPDATE SET ruleset = excluded.ruleset, category = excluded.category,
             risk = excluded.risk, confidence = excluded.confidence, evidence = excluded.evidence,
             factors = excluded.factors, findings = excluded.findings, classified = excluded.classified",
    )?
    .execute(params![
        fingerprint,
        ruleset,
        c.category.as_str(),
        c.risk.as_str(),
        c.confidence,
        serde_json::to_string(&c.evidence)?,
        serde_json::to_string(&c.factors)?,
        serde_json::to_string(&c.findings)?,
        now
    ])?;
    tx.prepare_cached("DELETE FROM findings WHERE fingerprint = ?1")?.execute([fingerprint])?;
    let mut insert =
        tx.prepare_cached("INSERT INTO findings(fingerprint, seq, id, severity, text) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for (seq, f) in c.findings.iter().enumerate() {
        insert.execute(params![fingerprint, seq as i64, f.id, f.severity.as_str(), f.text])?;
    }
    Ok(())
}

fn reclassify_in(
    tx: &Transaction<'_>,
    ruleset: &str,
    classify: &mut dyn FnMut(&Tool) -> Classification,
    now: &str,
) -> Result<usize, StoreError> {
    // A page at a time: a million stale definitions are gigabytes of bodies. Each page's rows get the new
    // ruleset, so the next query no longer returns them.
    const PAGE: i64 = 2_000;
    let mut count = 0;
    loop {
        let stale: Vec<(String, String)> = tx
            .prepare_cached(
                "SELECT c.fingerprint, d.body FROM classifications c JOIN definitions d USING (fingerprint)
                 WHERE c.ruleset <> ?1 LIMIT ?2",
            )?
            .query_map(params![ruleset, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if stale.is_empty() {
            return Ok(count);
        }
        for (fingerprint, body) in &stale {
            let tool: Tool = serde_json::from_str(body)?;
            write_classification(tx, fingerprint, ruleset, &classify(&tool), now)?;
        }
        count += stale.len();
    }
}
