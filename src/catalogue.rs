//! The catalogue: the store (source of truth) and the search index (derived) kept in step.
//!
//! Commands that fill the catalogue (`import`, `crawl`, `quickstart`) and commands that read it (`search`,
//! `show`, `policy generate`) go through this type, so no caller can update one side and forget the other.
//!
//! (Skeleton: implemented with the catalogue issue.)

use std::path::Path;

use crate::classify::Classifier;
use crate::model::{ChangeReport, ServerSnapshot, ServerSpec, ToolRecord};

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the catalogue is not available yet")]
    NotAvailable,
}

/// An open catalogue in a data directory.
#[derive(Debug)]
pub struct Catalogue {
    _private: (),
}

impl Catalogue {
    /// Open (creating if needed) the catalogue in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Catalogue, CatalogueError> {
        let _ = data_dir;
        Err(CatalogueError::NotAvailable)
    }

    /// Classify and store one server's listing in one transaction, update the index, and report what changed.
    pub fn ingest(
        &mut self,
        snapshot: &ServerSnapshot,
        classifier: &Classifier,
    ) -> Result<ChangeReport, CatalogueError> {
        let _ = classifier;
        Ok(ChangeReport { server: snapshot.server.clone(), ..ChangeReport::default() })
    }

    /// Record that a server could not be listed (the previous tools stay as they were).
    pub fn record_failure(
        &mut self,
        server: &str,
        spec: Option<&ServerSpec>,
        reason: &str,
    ) -> Result<(), CatalogueError> {
        let _ = (server, spec, reason);
        Ok(())
    }

    /// The current tools of these servers (all servers when empty), with their classifications.
    pub fn tools(&self, servers: &[String]) -> Result<Vec<ToolRecord>, CatalogueError> {
        let _ = servers;
        Ok(Vec::new())
    }
}
