//! The approval queue as a person sees it: the calls proxies hold until someone decides. One type for the
//! two places a queue lives, so `toolwarden approvals` and the web console decide through the same code: the
//! catalogue database of this host (proxies with an SQLite state), or the queue proxies share through Redis
//! (`--state redis://…`), reachable from any host.

use std::path::Path;

use crate::journal::Journal;
use crate::proxy::redis_approvals::{SharedQueue, SharedQueueError};
use crate::store::{Approval, Decision, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("--state {0:?}: expected redis://HOST:PORT/DB (an SQLite state keeps its queue in --data-dir)")]
    Url(String),
    #[error("--state-prefix must not be empty")]
    EmptyPrefix,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Shared(#[from] SharedQueueError),
}

impl QueueError {
    /// Whether the error is the user's (a bad flag) rather than the queue's.
    pub fn is_usage(&self) -> bool {
        matches!(self, QueueError::Url(_) | QueueError::EmptyPrefix | QueueError::Shared(SharedQueueError::Url { .. }))
    }
}

/// Where the queue is read and decided.
#[derive(Debug)]
pub enum Queue {
    Local(Journal),
    Shared(Box<SharedQueue>),
}

impl Queue {
    /// The queue of `data_dir`, or with `state` (a `redis://`, `rediss://` or `unix://` URL) the shared one
    /// under `prefix`. No connection to Redis is made yet.
    pub fn open(data_dir: &Path, state: Option<&str>, prefix: &str) -> Result<Queue, QueueError> {
        match state {
            None => Ok(Queue::Local(Journal::open(data_dir)?)),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") => {
                if prefix.is_empty() {
                    return Err(QueueError::EmptyPrefix);
                }
                Ok(Queue::Shared(Box::new(SharedQueue::new(url, prefix)?)))
            }
            Some(url) => Err(QueueError::Url(url.to_string())),
        }
    }

    /// Pending calls (with `all`: decided ones too), oldest first.
    pub fn list(&self, all: bool) -> Result<Vec<Approval>, QueueError> {
        Ok(match self {
            Queue::Local(j) => j.approvals(all)?,
            Queue::Shared(q) => q.list(all)?,
        })
    }

    /// Decide one request: `None` when there is no such id, else whether this call changed it (it was still
    /// pending) and the row as it is now.
    pub fn decide(&self, id: i64, d: &Decision<'_>) -> Result<Option<(bool, Approval)>, QueueError> {
        Ok(match self {
            Queue::Local(j) => j.decide_approval(id, d)?,
            Queue::Shared(q) => q.decide(id, d)?,
        })
    }
}
