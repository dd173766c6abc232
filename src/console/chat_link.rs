//! The chat's I/O: create a session, open its event stream before the first message (so no
//! event can fall before it), post, and forward the stream's events to the console.

use futures::StreamExt;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::chat::{ChatMsg, ChatSession};
use super::update::Msg;
use crate::api::CreateSession;
use crate::client::{Client, ClientError, Cursor};

/// Resume attempts for a dropped chat stream.
const RESUMES: u32 = 5;

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
    };
    let created = client.create_session(&req).await?;
    let session = ChatSession {
        agent,
        id: created.agent_id,
        token: created.token,
    };
    let mut events = client.events(&session.id, &session.token, None).await?;
    // Wait for `connected`: from here on, nothing of this session can be missed, even when
    // the stream drops before its first event (the cursor starts where `connected` says).
    let mut last = Cursor::default();
    while let Some(Ok(ev)) = events.next().await {
        if ev.event == "connected" {
            last.on_connected(&ev.data);
            break;
        }
    }
    let _ = tx.send(Msg::Chat(ChatMsg::Session(session.clone())));
    let (client, tx2, s) = (client.clone(), tx.clone(), session.clone());
    let task = tokio::spawn(async move {
        let mut resumes = 0;
        loop {
            while let Some(Ok(ev)) = events.next().await {
                if ev.event == "connected" {
                    last.on_connected(&ev.data);
                    continue;
                }
                if ev.event == "ping" {
                    continue;
                }
                last.on_event(ev.id);
                if tx2
                    .send(Msg::Chat(ChatMsg::Event(ev.event, ev.data)))
                    .is_err()
                {
                    return;
                }
            }
            resumes += 1;
            if resumes > RESUMES {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300 * u64::from(resumes))).await;
            if let Ok(e) = client.events(&s.id, &s.token, last.get()).await {
                events = e;
            }
        }
    });
    stream.replace(task.abort_handle());
    Ok(session)
}
