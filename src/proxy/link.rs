//! The bottom layer of a proxy session's wiring, so that the modules above read one way: [`Outbox`] (where a
//! session's messages go), and [`Link`], the session's view of a supervised upstream (can it take messages
//! now?) together with what the supervisor may ask of the session ([`Linked`]). `upstream` builds on this,
//! `session` and `supervisor` build on both, and neither of those two imports the other.

use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, Weak};

use super::relay::ToClient;

/// Where a session's messages go. Implementations must not block for long.
pub trait Outbox: Send + Sync {
    fn send(&self, message: ToClient);
    /// No more messages will be sent (a child's stdin is closed, an HTTP session deleted).
    fn close(&self) {}
}

/// What a supervisor asks of the session it serves.
pub(crate) trait Linked: Send + Sync {
    /// The session's name, for logs.
    fn name(&self) -> String;
    /// The upstream went down: answer what is in flight.
    fn upstream_closed(&self, why: &str);
    /// A message from the proxy itself to the client.
    fn tell_client(&self, bytes: Vec<u8>);
}

/// The session's view of a supervised upstream: whether it can take messages now. The session holds the read
/// lock while it routes and forwards a client message; the supervisor takes the write lock to go down, so a
/// request is either forwarded before the drain (and answered by it) or refused as "restarting".
pub struct Link {
    up: RwLock<bool>,
    session: OnceLock<Weak<dyn Linked>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("up", &self.up).finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new() -> Link {
        Link { up: RwLock::new(true), session: OnceLock::new() }
    }

    /// The session this link serves (set once, when the session is built).
    pub(crate) fn attach(&self, session: Weak<dyn Linked>) {
        let _ = self.session.set(session);
    }

    /// Held while a client message is routed and forwarded: `true` when the upstream takes messages.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, bool> {
        self.up.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, up: bool) {
        *self.up.write().unwrap_or_else(|e| e.into_inner()) = up;
    }

    pub(crate) fn session(&self) -> Option<Arc<dyn Linked>> {
        self.session.get().and_then(Weak::upgrade)
    }
}
