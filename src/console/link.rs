//! The admin stream, kept alive: connect, feed every event to the console as a message,
//! and on loss reconnect with backoff, resuming after the last event id. When the gateway
//! answers the cursor with a gap (its log does not reach it), the console is told before the
//! snapshot that replaces what it holds.

use std::time::Duration;
use tokio::sync::mpsc;

use super::msg::{LinkMsg, Msg};
use crate::api::ErrorCode;
use crate::api::lifecycle::AdminStreamEvent;
use crate::client::{Client, Item};

/// A stream silent this long is dead (the gateway pings every 30 s).
const SILENT: Duration = Duration::from_secs(75);
/// How long to wait before asking again after the gateway refused the stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Asks the link task to reconnect.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    tx: mpsc::UnboundedSender<bool>,
}

impl LinkHandle {
    /// Reconnects now; `fresh` drops the cursor and takes a new snapshot.
    pub fn reconnect(&self, fresh: bool) {
        let _ = self.tx.send(fresh);
    }
}

/// Starts the link task; it ends when `out` closes.
pub fn start(client: Client, out: mpsc::UnboundedSender<Msg>) -> LinkHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(client, out, rx));
    LinkHandle { tx }
}

async fn run(
    client: Client,
    out: mpsc::UnboundedSender<Msg>,
    mut cmds: mpsc::UnboundedReceiver<bool>,
) {
    let send = |m: LinkMsg| out.send(Msg::Link(m)).is_ok();
    let mut stream = client.admin_stream(None).quiet_after(SILENT, true);
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            cmd = cmds.recv() => match cmd {
                Some(fresh) => {
                    stream.reconnect(fresh);
                    if !send(LinkMsg::Lost("reconnect requested".into())) {
                        return;
                    }
                    continue;
                }
                None => return,
            },
        };
        let msg = match item {
            Ok(Item::Connecting(attempt)) => LinkMsg::Connecting(attempt),
            Ok(Item::Connected) => LinkMsg::Connected,
            Ok(Item::Lost(why)) => LinkMsg::Lost(why),
            Ok(Item::Quiet) => LinkMsg::Lost("the stream went silent".into()),
            // Said by the snapshot that follows, which replaces what the console holds.
            Ok(Item::Gap(_)) => continue,
            Ok(Item::Unreadable(ev, why)) => match ev.id {
                _ if ev.event == AdminStreamEvent::SNAPSHOT => {
                    LinkMsg::Lost(format!("unreadable snapshot: {why}"))
                }
                Some(id) => LinkMsg::Unreadable(id, ev.event, why),
                None => continue,
            },
            Ok(Item::Event(ev, event)) => {
                // A ping has no id of its own: SSE clients repeat the last one.
                let Some(id) = ev.id else { continue };
                match event {
                    AdminStreamEvent::Snapshot(s) if s.gap => {
                        if !send(LinkMsg::Gap(id)) {
                            return;
                        }
                        LinkMsg::Snapshot(id, s)
                    }
                    AdminStreamEvent::Snapshot(s) => LinkMsg::Snapshot(id, s),
                    AdminStreamEvent::Event(e) => LinkMsg::Event(id, e),
                    AdminStreamEvent::Sampled(s) => LinkMsg::Sampled(s),
                    AdminStreamEvent::Ping(_) => continue,
                }
            }
            // Refused: a token the gateway will not take stops the reconnects (asking again
            // cannot change its answer) until the operator asks (ctrl-r); anything else is
            // asked again after a while.
            Err(e) => {
                let refused = matches!(
                    e.code(),
                    Some(ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::TokenExpired)
                );
                let msg = if refused {
                    LinkMsg::Refused(e.to_string())
                } else {
                    LinkMsg::Lost(e.to_string())
                };
                if !send(msg) {
                    return;
                }
                if refused {
                    match cmds.recv().await {
                        Some(fresh) => stream.reconnect(fresh),
                        None => return,
                    }
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(MAX_BACKOFF) => {}
                    cmd = cmds.recv() => match cmd {
                        Some(fresh) => stream.reconnect(fresh),
                        None => return,
                    },
                }
                continue;
            }
        };
        if !send(msg) {
            return;
        }
    }
}
