//! The catalogue: the store (source of truth) and the search index (derived) kept in step.
//!
//! Commands that fill the catalogue (`import`, `crawl`, `quickstart`) and commands that read it (`search`,
//! `show`, `policy generate`) go through this type, so no caller can update one side and forget the other.
//!
//! Order of writes: the store commits first, then the index is updated and stamped with the store's
//! generation. A process killed between the two leaves an index whose stamp lags the store; the next
//! `open` notices and rebuilds it from the store, so a search never answers from a catalogue that no longer
//! exists. The index's write lock is taken before the store transaction and kept until the catalogue is
//! dropped, so two writers cannot interleave index updates; a writer that cannot get it still writes the
//! store (what matters) and leaves the index to be rebuilt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::classify::Classifier;
use crate::index::{IndexError, Opened, SearchIndex};
use crate::model::{ChangeReport, Classification, ServerSnapshot, ServerSpec, Tool, ToolRecord};
use crate::store::{Store, StoreError};

pub use crate::index::{Facets, SearchHit, SearchQuery};
pub use crate::pin::{PinDrift, ToolDrift};
pub use crate::store::{CrawlRun, PinSet, ServerDetail, ServerStats, ServerSummary, Stats, ToolDetail, ToolEvent};

/// Below this many new definitions in a batch, classifying on several threads is not worth starting them.
const PARALLEL_CLASSIFY_MIN: usize = 512;

/// How long a writer waits for another process to release the index's write lock.
const INDEX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The directory of the search index inside the data directory.
pub const INDEX_DIR: &str = "index";

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Never returned; kept for callers written against the skeleton.
    #[error("the catalogue is not available yet")]
    NotAvailable,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// An open catalogue in a data directory.
#[derive(Debug)]
pub struct Catalogue {
    data_dir: PathBuf,
    store: Store,
    index: SearchIndex,
    /// Whether this process holds the index's write lock (taken at the first write).
    index_writable: bool,
}

impl Catalogue {
    /// Open (creating if needed) the catalogue in `data_dir`. A missing, unreadable or stale index is rebuilt
    /// from the store (and said so on stderr).
    pub fn open(data_dir: &Path) -> Result<Catalogue, CatalogueError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| CatalogueError::DataDir { path: data_dir.to_path_buf(), source })?;
        let store = Store::open(&data_dir.join(crate::store::DB_FILE))?;
        let (index, opened) = SearchIndex::open(&data_dir.join(INDEX_DIR))?;
        let mut catalogue = Catalogue { data_dir: data_dir.to_path_buf(), store, index, index_writable: false };
        catalogue.ensure_index(opened)?;
        Ok(catalogue)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn stamp(id: &str, generation: u64) -> String {
        format!("{id}:{generation}")
    }

    fn ensure_index(&mut self, opened: Opened) -> Result<(), CatalogueError> {
        let (id, generation) = self.store.generation()?;
        if self.index.stamp().as_deref() == Some(Catalogue::stamp(&id, generation).as_str()) {
            return Ok(());
        }
        let (_, tools) = self.store.counts()?;
        let reason = match opened {
            Opened::Created => "missing",
            Opened::Replaced => "unreadable",
            Opened::Existing => "out of date",
        };
        match self.rebuild_index() {
            Ok(n) if tools > 0 || opened == Opened::Replaced => {
                tracing::warn!("the search index was {reason}: rebuilt it from the catalogue ({n} tools)");
            }
            Ok(_) => {}
            Err(CatalogueError::Index(IndexError::Busy { .. })) => {
                tracing::warn!(
                    "the search index is {reason} and another toolwarden process is writing it: results may lag"
                );
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Rebuild the whole index from the store; returns the number of tools indexed.
    pub fn rebuild_index(&mut self) -> Result<usize, CatalogueError> {
        self.index.begin()?;
        self.index_writable = true;
        self.index.clear()?;
        let mut count = 0;
        let index = &mut self.index;
        let (id, generation) = self.store.snapshot_records(&[], |record| {
            count += 1;
            index.add(&record).map_err(CatalogueError::from)
        })?;
        self.index.commit(&Catalogue::stamp(&id, generation))?;
        Ok(count)
    }

    /// Classify and store one server's listing in one transaction, update the index, and report what changed.
    pub fn ingest(
        &mut self,
        snapshot: &ServerSnapshot,
        classifier: &Classifier,
    ) -> Result<ChangeReport, CatalogueError> {
        let mut reports = self.ingest_many(std::slice::from_ref(snapshot), classifier)?;
        Ok(reports.pop().unwrap_or_default())
    }

    /// Like [`Catalogue::ingest`] for many servers at once: one store transaction and one index commit for the
    /// whole batch (the fast path for bulk imports). Reports come back in the order of `snapshots`.
    pub fn ingest_many(
        &mut self,
        snapshots: &[ServerSnapshot],
        classifier: &Classifier,
    ) -> Result<Vec<ChangeReport>, CatalogueError> {
        self.ingest_received(snapshots, &[], classifier)
    }

    /// Which of these distributed-crawl jobs are stored already.
    pub fn received(&self, jobs: &[String]) -> Result<std::collections::HashSet<String>, CatalogueError> {
        Ok(self.store.received(jobs)?)
    }

    /// [`Catalogue::ingest_many`] that also records, in the same transaction, the queue jobs (`receipts`) the
    /// snapshots came from, so that a result delivered twice is stored once (see [`Catalogue::received`]).
    pub fn ingest_received(
        &mut self,
        snapshots: &[ServerSnapshot],
        receipts: &[String],
        classifier: &Classifier,
    ) -> Result<Vec<ChangeReport>, CatalogueError> {
        let index_ok = self.take_index_lock()?;
        let (id, _) = self.store.generation()?;
        let started = std::time::Instant::now();
        let (prepared, mut classified) = self.classify_new(snapshots, classifier)?;
        let out = self.store.ingest_prepared(
            snapshots,
            &prepared,
            classifier.version(),
            &mut |tool, fingerprint| classified.remove(fingerprint).unwrap_or_else(|| classifier.classify(tool)),
            receipts,
        )?;
        tracing::debug!(servers = snapshots.len(), elapsed = ?started.elapsed(), "stored");
        if out.generation == out.generation_before || !index_ok {
            return Ok(out.reports);
        }
        let started = std::time::Instant::now();
        crate::store::debug_pause("index");
        let in_step = self.index.stamp().as_deref() == Some(Catalogue::stamp(&id, out.generation_before).as_str());
        if in_step && out.reclassified == 0 {
            for server in &out.touched {
                self.index.remove_server(server)?;
            }
            let index = &mut self.index;
            self.store.for_each_record(&out.touched, |record| index.add(&record).map_err(CatalogueError::from))?;
            tracing::debug!(elapsed = ?started.elapsed(), "index documents added");
            self.index.commit(&Catalogue::stamp(&id, out.generation))?;
        } else {
            self.rebuild_index()?;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "index committed");
        Ok(out.reports)
    }

    /// Every tool's canonical body and fingerprint, and a classification of the batch's definitions that the store
    /// has not classified with this ruleset, both on every core: the write transaction that follows is
    /// single-threaded, hashing and classifying need not be.
    #[allow(clippy::type_complexity)]
    fn classify_new(
        &self,
        snapshots: &[ServerSnapshot],
        classifier: &Classifier,
    ) -> Result<(Vec<Vec<crate::store::Prepared>>, HashMap<String, Classification>), CatalogueError> {
        let tools: usize = snapshots.iter().map(|s| s.tools.len()).sum();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        let started = std::time::Instant::now();
        if tools < PARALLEL_CLASSIFY_MIN || threads < 2 {
            // Small batches (a crawl of one server) hash and classify inside the transaction, as they come.
            return Ok((Vec::new(), HashMap::new()));
        }
        let per = snapshots.len().div_ceil(threads);
        let prepared: Vec<Vec<crate::store::Prepared>> = std::thread::scope(|scope| {
            let handles: Vec<_> = snapshots
                .chunks(per.max(1))
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| s.tools.iter().map(crate::store::prepare).collect::<Result<Vec<_>, _>>())
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            // A thread that panicked leaves the hashing to the transaction: a missing part would misalign the rest.
            handles.into_iter().map(|h| h.join().ok()).collect::<Option<Vec<_>>>()
        })
        .map(|parts| parts.into_iter().collect::<Result<Vec<_>, _>>())
        .transpose()?
        .map(|parts| parts.into_iter().flatten().collect())
        .unwrap_or_default();
        if prepared.len() != snapshots.len() {
            return Ok((Vec::new(), HashMap::new()));
        }
        let fingerprints: Vec<String> = prepared.iter().flatten().map(|p| p.fingerprint.clone()).collect();
        let known = self.store.classified(&fingerprints, classifier.version())?;
        let pending: Vec<(&str, &Tool)> = snapshots
            .iter()
            .zip(&prepared)
            .flat_map(|(s, p)| s.tools.iter().zip(p))
            .filter(|(_, p)| !known.contains(&p.fingerprint))
            .map(|(t, p)| (p.fingerprint.as_str(), t))
            .collect();
        tracing::debug!(tools, pending = pending.len(), elapsed = ?started.elapsed(), "hashed and looked up classifications");
        if pending.is_empty() {
            return Ok((prepared, HashMap::new()));
        }
        let chunk = pending.len().div_ceil(threads);
        let results: Vec<Vec<(String, Classification)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || part.iter().map(|(f, t)| (f.to_string(), classifier.classify(t))).collect())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        tracing::debug!(elapsed = ?started.elapsed(), "classified in parallel");
        Ok((prepared, results.into_iter().flatten().collect()))
    }

    /// Take the index's write lock for this process, waiting up to [`INDEX_LOCK_WAIT`] for another writer to
    /// finish (as SQLite's busy timeout does for the store); `false` (with a warning) when it does not.
    fn take_index_lock(&mut self) -> Result<bool, CatalogueError> {
        if self.index_writable {
            return Ok(true);
        }
        let deadline = std::time::Instant::now() + INDEX_LOCK_WAIT;
        loop {
            match self.index.begin() {
                Ok(()) => {
                    self.index_writable = true;
                    return Ok(true);
                }
                Err(IndexError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(IndexError::Busy { .. }) => {
                    tracing::warn!(
                        "another toolwarden process is writing the search index: it will be rebuilt on the next run"
                    );
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Classify again every stored definition classified by another ruleset version, then rebuild the index.
    /// Returns how many definitions were reclassified.
    pub fn reclassify(&mut self, classifier: &Classifier) -> Result<usize, CatalogueError> {
        let count = self.store.reclassify(classifier.version(), &mut |tool| classifier.classify(tool))?;
        if count > 0 {
            self.rebuild_index()?;
        }
        Ok(count)
    }

    /// Record that a server could not be listed (the previous tools stay as they were).
    pub fn record_failure(
        &mut self,
        server: &str,
        spec: Option<&ServerSpec>,
        reason: &str,
    ) -> Result<(), CatalogueError> {
        Ok(self.store.record_failure(server, spec, reason)?)
    }

    /// The current tools of these servers (all servers when empty), with their classifications.
    pub fn tools(&self, servers: &[String]) -> Result<Vec<ToolRecord>, CatalogueError> {
        Ok(self.store.tools(servers)?)
    }

    /// Call `f` with every current tool (ordered by server and name) without holding them all in memory.
    /// `f`'s error type only needs to absorb store errors (`anyhow::Error` and `CatalogueError` do).
    pub fn for_each_tool<E: From<StoreError>>(
        &self,
        servers: &[String],
        f: impl FnMut(ToolRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        self.store.for_each_record(servers, f)
    }

    /// Search the index. An index that turns out unreadable is rebuilt once and the search retried.
    pub fn search(&mut self, query: &SearchQuery) -> Result<Vec<SearchHit>, CatalogueError> {
        match self.index.search(query) {
            Ok(hits) => Ok(hits),
            Err(IndexError::Tantivy { source, .. }) => {
                tracing::warn!("the search index could not be read ({source}): rebuilding it from the catalogue");
                self.rebuild_index()?;
                Ok(self.index.search(query)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How the matches of `query` spread over risk, category and server (see [`SearchIndex::facets`]).
    pub fn facets(&self, query: &SearchQuery, max_servers: usize) -> Result<Facets, CatalogueError> {
        Ok(self.index.facets(query, max_servers)?)
    }

    /// For a long-lived reader (the web console): see what other processes committed since the last call.
    pub fn refresh(&self) -> Result<(), CatalogueError> {
        Ok(self.index.reload()?)
    }

    /// A stored definition by fingerprint (current or from history), or `None`.
    pub fn definition(&self, fingerprint: &str) -> Result<Option<Tool>, CatalogueError> {
        Ok(self.store.definition(fingerprint)?)
    }

    /// How many servers and current tools the catalogue holds.
    pub fn counts(&self) -> Result<(usize, usize), CatalogueError> {
        Ok(self.store.counts()?)
    }

    /// Every server with its tool count and latest run.
    pub fn servers(&self) -> Result<Vec<ServerSummary>, CatalogueError> {
        Ok(self.store.servers()?)
    }

    /// One server with its runs and tools, or `None`.
    pub fn server(&self, name: &str) -> Result<Option<ServerDetail>, CatalogueError> {
        Ok(self.store.server(name)?)
    }

    /// One tool with its classification and history (also after it was removed), or `None`.
    pub fn tool(&self, server: &str, name: &str) -> Result<Option<ToolDetail>, CatalogueError> {
        Ok(self.store.tool(server, name)?)
    }

    /// Counts by server, category and risk.
    pub fn stats(&self) -> Result<Stats, CatalogueError> {
        Ok(self.store.stats()?)
    }

    /// Approve the current tool set of `server` (replacing an older pin); `None` for an unknown server.
    pub fn pin(&mut self, server: &str) -> Result<Option<PinSet>, CatalogueError> {
        Ok(self.store.pin(server)?)
    }

    /// The approved fingerprint of every tool of `server` by name, or `None` when it is not pinned. This is
    /// what a proxy with `--require-pinned` compares each listed tool's `fingerprint()` with.
    pub fn pinned_fingerprints(
        &self,
        server: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, CatalogueError> {
        Ok(self.store.pin_set(server)?.map(|p| p.tools))
    }

    /// For each tool of `server` whose name another server also offers, those servers (a client that loads
    /// both sees two tools of one name: one can shadow the other).
    pub fn shared_tool_names(
        &self,
        server: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, CatalogueError> {
        Ok(self.store.shared_tool_names(server)?)
    }

    /// The other servers that currently offer a tool named `name` (for search results).
    pub fn other_servers_with(&self, name: &str, server: &str) -> Result<Vec<String>, CatalogueError> {
        Ok(self.store.other_servers_with(name, server)?)
    }

    /// The security findings stored for a definition.
    pub fn findings_of(&self, fingerprint: &str) -> Result<Vec<crate::model::Finding>, CatalogueError> {
        Ok(self.store.findings_of(fingerprint)?)
    }

    /// How the current tools of `server` differ from its pin, or `None` when it is not pinned.
    pub fn pin_drift(&self, server: &str) -> Result<Option<PinDrift>, CatalogueError> {
        let Some(pin) = self.store.pin_set(server)? else { return Ok(None) };
        let current = self.store.current_fingerprints(server)?;
        let mut failed = None;
        let drift = crate::pin::compare(server, &pin.pinned_at, &pin.tools, &current, |fp| {
            self.store.definition(fp).unwrap_or_else(|e| {
                failed.get_or_insert(e);
                None
            })
        });
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(Some(drift)),
        }
    }

    /// Judge each changed tool of a drift by what changed (see [`Classifier::drift`]).
    pub fn judge_drift(&self, drift: &mut PinDrift, classifier: &Classifier) -> Result<(), CatalogueError> {
        for c in &mut drift.changed {
            let (Some(old), Some(new)) = (self.store.definition(&c.pinned)?, self.store.definition(&c.current)?) else {
                continue;
            };
            let findings = classifier.drift(&old, &new);
            if let Some(worst) = findings.iter().max_by_key(|f| f.severity) {
                c.severity = Some(worst.severity);
                c.why = Some(worst.text.clone());
            }
        }
        Ok(())
    }

    /// Wait for background index merges and release the index's write lock (also done on drop).
    pub fn close(mut self) -> Result<(), CatalogueError> {
        self.index.finish()?;
        Ok(())
    }
}

impl Drop for Catalogue {
    fn drop(&mut self) {
        if let Err(e) = self.index.finish() {
            tracing::debug!("finishing the search index: {e}");
        }
    }
}

/// The hint every reading command gives for an empty catalogue.
pub const EMPTY_HINT: &str = "the catalogue is empty: run `toolwarden quickstart` or `toolwarden import FILE`";

#[cfg(test)]
#[path = "catalogue_tests.rs"]
mod tests;
