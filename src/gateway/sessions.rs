//! Sessions recently read from the store, so posting a message does not read its session again
//! (`bench p3`: each read found the readers' page cache invalidated by the last commit and
//! re-read its pages, ~10 % of the gateway's throughput).
//!
//! What authorizing needs of a session (its token, agent, expiry, deletion) changes only when it
//! is deleted, and this process forgets a session as soon as its deletion commits. The time
//! bound is for changes made elsewhere (another process on the same database).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::SessionId;
use crate::store::SessionRecord;

/// How long a session read from the store answers for it.
const TTL: Duration = Duration::from_secs(1);
/// The size at which expired entries are first swept out.
const FIRST_SWEEP: usize = 1024;

/// Recently read sessions, each for [`TTL`].
#[derive(Debug)]
pub struct SessionCache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<SessionId, (Instant, Arc<SessionRecord>)>,
    /// Sweep when the map reaches this size; twice what a sweep left, so sweeping stays rare
    /// when many sessions are busy.
    sweep_at: usize,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session, if it was read less than [`TTL`] ago.
    pub fn get(&self, id: &SessionId) -> Option<Arc<SessionRecord>> {
        self.lock()
            .entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, s)| Arc::clone(s))
    }

    /// Remembers a session as just read (or written) and returns it shared.
    pub fn put(&self, session: SessionRecord) -> Arc<SessionRecord> {
        let session = Arc::new(session);
        let mut inner = self.lock();
        if inner.entries.len() >= inner.sweep_at {
            inner.entries.retain(|_, (at, _)| at.elapsed() < TTL);
            inner.sweep_at = (inner.entries.len() * 2).max(FIRST_SWEEP);
        }
        inner
            .entries
            .insert(session.id.clone(), (Instant::now(), Arc::clone(&session)));
        session
    }

    /// Forgets a session (it was just deleted).
    pub fn forget(&self, id: &SessionId) {
        self.lock().entries.remove(id);
    }

    /// How many sessions are remembered, expired ones included.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::session;

    #[test]
    fn sessions_answer_until_forgotten_or_expired() {
        let cache = SessionCache::default();
        let id = SessionId("s1".into());
        assert!(cache.get(&id).is_none());
        cache.put(session("s1"));
        assert_eq!(cache.get(&id).map(|s| s.token.clone()), Some("tok".into()));
        cache.forget(&id);
        assert!(cache.get(&id).is_none(), "a deleted session is not served");
        // An entry older than the TTL is not served, and is swept once the map is large.
        cache.lock().entries.insert(
            id.clone(),
            (
                Instant::now().checked_sub(TTL).unwrap(),
                Arc::new(session("s1")),
            ),
        );
        assert!(cache.get(&id).is_none(), "an expired session is not served");
        for i in 0..FIRST_SWEEP {
            cache.put(session(&format!("n{i}")));
        }
        assert_eq!(cache.len(), FIRST_SWEEP, "the expired entry was swept");
    }
}
