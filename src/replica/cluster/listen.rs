//! The one listening connection of a replica on `PostgreSQL`: commits by other replicas are
//! read back and fanned out to this replica's streams, wake-ups reach the session's actor,
//! forwarded operator actions are carried out. After any reconnect the streams re-read from
//! their cursors (a notification sent while disconnected is lost; the store is not).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{ACTION_CHANNEL, WAKE_CHANNEL, take_actions};
use crate::ids::SessionId;
use crate::journal::Hub;
use crate::store::Store;
use crate::store::postgres::{ADMIN_CHANNEL, EVENTS_CHANNEL};
use crate::supervisor::Supervisor;

/// Pause before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// Pauses between tries of reading back another replica's events; a stream left behind
/// still catches up at the next event it is shown.
const READ_RETRIES: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Listens until `stop`; does nothing on a store without notifications.
pub async fn listen(
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    supervisor: Supervisor,
    stop: CancellationToken,
) {
    let Some(pg) = store.postgres() else { return };
    let origin = pg.origin().to_owned();
    loop {
        let mut listener = match pg.listener().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' commits; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_AFTER) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        let channels = [EVENTS_CHANNEL, ADMIN_CHANNEL, WAKE_CHANNEL, ACTION_CHANNEL];
        if let Err(e) = listener.listen_all(channels).await {
            tracing::warn!(error = %e, "cannot listen for other replicas' commits; retrying");
            tokio::time::sleep(RECONNECT_AFTER).await;
            continue;
        }
        resync(store.as_ref(), &hub).await;
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(Some(n)) => {
                    let on = Notice {
                        store: &store,
                        hub: &hub,
                        supervisor: &supervisor,
                        origin: &origin,
                    };
                    on.handle(n.channel(), n.payload());
                }
                // The connection was lost and is re-established by the next call.
                Ok(None) => resync(store.as_ref(), &hub).await,
                Err(e) => {
                    tracing::warn!(error = %e, "the listening connection failed; reconnecting");
                    tokio::time::sleep(RECONNECT_AFTER).await;
                    break;
                }
            }
        }
    }
}

/// What a notification needs.
struct Notice<'a> {
    store: &'a Arc<dyn Store>,
    hub: &'a Arc<Hub>,
    supervisor: &'a Supervisor,
    origin: &'a str,
}

impl Notice<'_> {
    fn handle(&self, channel: &str, payload: &str) {
        let words: Vec<&str> = payload.split(' ').collect();
        let range = |a: &str, b: &str| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?));
        match (channel, words.as_slice()) {
            (EVENTS_CHANNEL, [origin, session, first, last]) if *origin != self.origin => {
                // Read back off the listening loop (a slow read must not hold up the others);
                // events published out of order are put right by the streams (see `tail`).
                if let Some(range) = range(first, last)
                    && self.hub.is_watched(&SessionId((*session).to_owned()))
                {
                    let (store, hub) = (Arc::clone(self.store), Arc::clone(self.hub));
                    let session = SessionId((*session).to_owned());
                    tokio::spawn(
                        async move { session_events(&*store, &hub, &session, range).await },
                    );
                }
            }
            (ADMIN_CHANNEL, [origin, first, last]) if *origin != self.origin => {
                if let Some(range) = range(first, last)
                    && self.hub.admin_connections() > 0
                {
                    let (store, hub) = (Arc::clone(self.store), Arc::clone(self.hub));
                    tokio::spawn(async move { admin_events(&*store, &hub, range).await });
                }
            }
            // Off the listening loop: a claim or an actor's answer must not hold up the
            // fan-out of other replicas' events.
            (WAKE_CHANNEL, [owner, session]) if *owner == self.supervisor.replica().as_str() => {
                let supervisor = self.supervisor.clone();
                let session = SessionId((*session).to_owned());
                tokio::spawn(async move { supervisor.wake(&session).await });
            }
            (ACTION_CHANNEL, [replica]) if *replica == self.supervisor.replica().as_str() => {
                let (store, supervisor) = (Arc::clone(self.store), self.supervisor.clone());
                tokio::spawn(async move { take_actions(&*store, &supervisor).await });
            }
            _ => {}
        }
    }
}

/// Reads another replica's committed session events back for this replica's streams.
async fn session_events(
    store: &dyn Store,
    hub: &Hub,
    session: &SessionId,
    (first, last): (i64, i64),
) {
    for pause in READ_RETRIES {
        match store
            .events_after(session, first - 1, last - first + 1)
            .await
        {
            Ok(events) => {
                for e in events {
                    hub.publish(&Arc::new(e));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read another replica's events; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
    tracing::error!(session = %session, "gave up reading another replica's events; its streams catch up at their next event or reconnect");
}

/// Reads another replica's committed admin events back for this replica's admin streams.
async fn admin_events(store: &dyn Store, hub: &Hub, (first, last): (i64, i64)) {
    for pause in READ_RETRIES {
        match store.admin_events_after(first - 1, last - first + 1).await {
            Ok(events) => {
                for e in events {
                    hub.publish_admin(e);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read another replica's admin events; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
    tracing::error!(
        "gave up reading another replica's admin events; admin streams catch up at their next event or reconnect"
    );
}

/// After a (re)connect: each watched stream is shown the latest event of its log; a stream
/// behind it sees the jump and re-reads from its cursor (see `gateway::stream::tail`).
async fn resync(store: &dyn Store, hub: &Hub) {
    for session in hub.watched() {
        if let Ok(Some(s)) = store.session(&session).await
            && let Ok(events) = store.events_after(&session, s.last_seq - 1, 1).await
        {
            for e in events {
                hub.publish(&Arc::new(e));
            }
        }
    }
    if hub.admin_connections() > 0
        && let Ok((_, last)) = store.admin_log_bounds().await
        && let Ok(events) = store.admin_events_after(last - 1, 1).await
    {
        for e in events {
            hub.publish_admin(e);
        }
    }
}
