//! The hub: live fan-out of committed events, one broadcast channel per watched session and one
//! for the admin log. The journal publishes to it only after a commit. Beside the admin log, an
//! ephemeral channel carries what admin streams show but the log never holds (process samples).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

use super::SESSION_BUFFER;
use crate::ids::SessionId;
use crate::store::{LoggedEvent, StoredEvent};

/// Admin events buffered for slow admin readers; further behind, they catch up from the store.
const ADMIN_BUFFER: usize = 4096;

/// Ephemeral events buffered per admin reader; a reader further behind skips some (a newer
/// sample follows).
const EPHEMERAL_BUFFER: usize = 1024;

/// An admin stream event that is not in the log: sent without an SSE `id:`, never replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ephemeral {
    /// The SSE event name.
    pub kind: &'static str,
    /// Its JSON data.
    pub data: String,
}

/// Live fan-out of committed events: one broadcast channel per watched session, one for the
/// admin log, one for the admin streams' ephemeral events.
pub struct Hub {
    sessions: Mutex<HashMap<SessionId, broadcast::Sender<Arc<StoredEvent>>>>,
    admin: broadcast::Sender<Arc<LoggedEvent>>,
    ephemeral: broadcast::Sender<Arc<Ephemeral>>,
    /// Ownerships a fenced write found ended.
    fenced: broadcast::Sender<crate::store::Fence>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            admin: broadcast::channel(ADMIN_BUFFER).0,
            ephemeral: broadcast::channel(EPHEMERAL_BUFFER).0,
            fenced: broadcast::channel(ADMIN_BUFFER).0,
        }
    }
}

impl Hub {
    /// Subscribes to future admin events.
    pub fn subscribe_admin(&self) -> broadcast::Receiver<Arc<LoggedEvent>> {
        self.admin.subscribe()
    }

    /// How many admin streams are open.
    pub fn admin_connections(&self) -> usize {
        self.admin.receiver_count()
    }

    /// Publishes an admin event committed by this replica or, read back, by another.
    pub fn publish_admin(&self, event: LoggedEvent) {
        let _ = self.admin.send(Arc::new(event));
    }

    /// Subscribes to future ephemeral admin events (an admin stream does, beside the log).
    pub fn subscribe_ephemeral(&self) -> broadcast::Receiver<Arc<Ephemeral>> {
        self.ephemeral.subscribe()
    }

    /// Sends an ephemeral event to the open admin streams; it is neither logged nor kept.
    pub fn publish_ephemeral(&self, event: Ephemeral) {
        let _ = self.ephemeral.send(Arc::new(event));
    }

    /// Subscribes to the ownerships whose fenced writes were refused.
    pub fn subscribe_fenced(&self) -> broadcast::Receiver<crate::store::Fence> {
        self.fenced.subscribe()
    }

    pub(super) fn publish_fenced(&self, fence: &crate::store::Fence) {
        let _ = self.fenced.send(fence.clone());
    }

    /// The sessions some local stream watches.
    pub fn watched(&self) -> Vec<SessionId> {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Subscribes to a session's future events.
    pub fn subscribe(&self, session: &SessionId) -> broadcast::Receiver<Arc<StoredEvent>> {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(session.clone())
            .or_insert_with(|| broadcast::channel(SESSION_BUFFER).0)
            .subscribe()
    }

    /// Whether any stream is watching the session.
    pub fn is_watched(&self, session: &SessionId) -> bool {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(session).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// How many streams are open, over all sessions.
    pub fn connections(&self) -> usize {
        let map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().map(broadcast::Sender::receiver_count).sum()
    }

    /// Publishes a session event committed by this replica or, read back, by another.
    pub fn publish(&self, event: &Arc<StoredEvent>) {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&event.session_id)
            && tx.send(Arc::clone(event)).is_err()
        {
            // Nobody is watching any more; forget the channel.
            map.remove(&event.session_id);
        }
    }
}
