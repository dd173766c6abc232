//! The admin stream, kept alive: connect, feed every event to the console as a message,
//! and on loss reconnect with backoff, resuming after the last event id. When the gateway
//! answers the cursor with a gap (its log does not reach it), the console is told before the
//! snapshot that replaces what it holds.

use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

use super::update::{LinkMsg, Msg};
use crate::api::admin::Snapshot;
use crate::client::Client;

/// A stream silent this long is dead (the gateway pings every 30 s).
const SILENT: Duration = Duration::from_secs(75);
/// The longest wait between attempts.
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

fn backoff(attempt: u32) -> Duration {
    (Duration::from_millis(250) * 2u32.saturating_pow(attempt.min(5))).min(MAX_BACKOFF)
}

async fn run(
    client: Client,
    out: mpsc::UnboundedSender<Msg>,
    mut cmds: mpsc::UnboundedReceiver<bool>,
) {
    let send = |m: LinkMsg| out.send(Msg::Link(m)).is_ok();
    let mut last: Option<i64> = None;
    let mut attempt = 0u32;
    loop {
        if !send(LinkMsg::Connecting(attempt)) {
            return;
        }
        match client.admin_events(last).await {
            Ok(mut stream) => {
                attempt = 0;
                send(LinkMsg::Connected);
                loop {
                    tokio::select! {
                        ev = tokio::time::timeout(SILENT, stream.next()) => match ev {
                            Ok(Some(Ok(ev))) => {
                                // A ping has no id of its own: SSE clients repeat the last one.
                                if ev.event == "ping" { continue; }
                                let Some(id) = ev.id else { continue };
                                last = Some(id);
                                // A snapshot on a resumed stream: our cursor did not line
                                // up with the gateway's log (it restarted on other data).
                                let gap = ev.event == "snapshot" && ev.data["gap"] == true;
                                if gap && !send(LinkMsg::Gap(id)) {
                                    return;
                                }
                                let msg = if ev.event == "snapshot" {
                                    match serde_json::from_value::<Snapshot>(ev.data) {
                                        Ok(s) => LinkMsg::Snapshot(id, Box::new(s)),
                                        Err(e) => LinkMsg::Lost(format!("unreadable snapshot: {e}")),
                                    }
                                } else {
                                    LinkMsg::Event(id, ev.event, ev.data)
                                };
                                if !send(msg) {
                                    return;
                                }
                            }
                            Ok(Some(Err(e))) => { send(LinkMsg::Lost(e.to_string())); break; }
                            Ok(None) => { send(LinkMsg::Lost("the gateway closed the stream".into())); break; }
                            Err(_) => { send(LinkMsg::Lost("the stream went silent".into())); break; }
                        },
                        cmd = cmds.recv() => match cmd {
                            Some(fresh) => {
                                if fresh { last = None; }
                                send(LinkMsg::Lost("reconnect requested".into()));
                                break;
                            }
                            None => return,
                        },
                    }
                }
            }
            Err(e) => {
                if !send(LinkMsg::Lost(e.to_string())) {
                    return;
                }
            }
        }
        attempt += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff(attempt)) => {}
            cmd = cmds.recv() => match cmd {
                Some(true) => last = None,
                Some(false) => {}
                None => return,
            },
        }
    }
}
