//! The chat's I/O: create a session, open its event stream before the first message (so no
//! event can fall before it), post, and forward the stream's events to the console.

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::msg::Msg;
use super::msg::{ChatMsg, ChatSession};
use crate::api::{CreateSession, SessionEvent};
use crate::client::{Client, ClientError, Cursor, Item};

/// How long a broken chat stream is retried before the pane stops following it.
const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// The one chat stream the console keeps open.
#[derive(Clone, Default)]
pub struct ChatStream(Arc<Mutex<Option<AbortHandle>>>);

impl ChatStream {
    fn replace(&self, handle: AbortHandle) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.replace(handle) {
            old.abort();
        }
    }
}

/// Sends one message, creating the session (and opening its stream) first when needed.
pub async fn send(
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    stream: ChatStream,
    agent: String,
    session: Option<ChatSession>,
    content: String,
    local: u64,
) {
    let result = async {
        let session = match session {
            Some(s) => s,
            None => open(&client, &tx, &stream, agent).await?,
        };
        client
            .post_message(&session.id, &session.token, &content, None)
            .await
    }
    .await;
    let msg = match result {
        Ok(q) => ChatMsg::Queued(local, q.turn_id),
        Err(e) => ChatMsg::Failed(local, e.to_string()),
    };
    let _ = tx.send(Msg::Chat(msg));
}

async fn open(
    client: &Client,
    tx: &mpsc::UnboundedSender<Msg>,
    stream: &ChatStream,
    agent: String,
) -> Result<ChatSession, ClientError> {
    let req = CreateSession {
        agent_id: Some(agent.clone()),
        thread: None,
        force_new: true,
        ..Default::default()
    };
    let created = client.create_session(&req).await?;
    let session = ChatSession {
        agent,
        id: created.agent_id,
        token: created.token,
    };
    let mut events = client
        .session_stream(&session.id, &session.token, Cursor::default())
        .give_up_after(GIVE_UP);
    // Wait for `connected`: from here on, nothing of this session can be missed, even when
    // the stream drops before its first event (the cursor starts where `connected` says).
    loop {
        match events.next().await? {
            Item::Event(_, SessionEvent::Connected(_)) => break,
            Item::Lost(why) if events.cursor().is_none() => {
                return Err(ClientError::Protocol(why));
            }
            _ => {}
        }
    }
    let _ = tx.send(Msg::Chat(ChatMsg::Session(session.clone())));
    let tx = tx.clone();
    let task = tokio::spawn(async move {
        while let Ok(item) = events.next().await {
            let Item::Event(_, event) = item else {
                continue;
            };
            if matches!(event, SessionEvent::Connected(_) | SessionEvent::Ping(_)) {
                continue;
            }
            if tx.send(Msg::Chat(ChatMsg::Event(event))).is_err() {
                return;
            }
        }
    });
    stream.replace(task.abort_handle());
    Ok(session)
}
