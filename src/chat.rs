//! `turnwatch chat`: send one message and stream the reply. Exit 0 only on the turn's
//! `complete` with status `completed`; 1 on a failed turn; 2 on usage or connection errors.
//! A stream that ends or stalls without the turn's `complete` is resumed from its last id.

use futures::StreamExt;
use std::io::Write;
use std::time::Duration;

use crate::api::CreateSession;
use crate::client::{Client, ClientError, SseEvent};

/// A stream silent this long (pings come every 30 s) is taken as dead and resumed.
const STALL: Duration = Duration::from_secs(75);
/// Resume attempts before giving up with exit 2.
const MAX_RESUMES: u32 = 8;

/// What `chat` needs.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// Agent name.
    pub agent: Option<String>,
    /// Conversation key.
    pub thread: Option<String>,
    /// Start a new session even when the thread has one.
    pub new: bool,
    /// Print events as NDJSON instead of text.
    pub json: bool,
    /// The message.
    pub message: String,
}

/// How a chat ended; [`ChatOutcome::exit_code`] maps it to the process exit code.
#[derive(Debug)]
pub enum ChatOutcome {
    /// The turn completed.
    Completed,
    /// The turn failed with this code and sentence.
    Failed {
        /// Machine code.
        code: String,
        /// Sentence.
        error: String,
    },
    /// The gateway could not be reached or refused the request.
    Unreachable(ClientError),
}

impl ChatOutcome {
    /// 0, 1 or 2.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Completed => 0,
            Self::Failed { .. } => 1,
            Self::Unreachable(_) => 2,
        }
    }
}

/// Runs one chat turn, writing the reply to `out`.
pub async fn chat(client: &Client, req: &ChatRequest, out: &mut (dyn Write + Send)) -> ChatOutcome {
    match run(client, req, out).await {
        Ok(o) => o,
        Err(e) => ChatOutcome::Unreachable(e),
    }
}

async fn run(
    client: &Client,
    req: &ChatRequest,
    out: &mut (dyn Write + Send),
) -> Result<ChatOutcome, ClientError> {
    let create = CreateSession {
        agent_id: req.agent.clone(),
        thread: req.thread.clone(),
        force_new: req.new,
    };
    let session = client.create_session(&create).await?;
    let (sid, token) = (session.agent_id.as_str(), session.token.as_str());
    // Open the stream before posting, so no event can fall before it.
    let mut stream = client.events(sid, token, None).await?;
    let mut last_id: Option<i64> = None;
    while let Some(ev) = tokio::time::timeout(STALL, stream.next())
        .await
        .ok()
        .flatten()
    {
        if ev?.event == "connected" {
            break;
        }
    }
    let queued = client.post_message(sid, token, &req.message, None).await?;
    let turn = queued.turn_id.to_string();
    let mut failure: Option<(String, String)> = None;
    let mut resumes = 0;
    loop {
        let next = tokio::time::timeout(STALL, stream.next()).await;
        let ev = match next {
            Ok(Some(Ok(ev))) => ev,
            // Ended, broke or stalled without our `complete`: resume from the last id.
            Ok(None | Some(Err(_))) | Err(_) => {
                resumes += 1;
                if resumes > MAX_RESUMES {
                    return Err(ClientError::Protocol(format!(
                        "the event stream ended {MAX_RESUMES} times without the turn's terminal event"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(resumes))).await;
                match client.events(sid, token, last_id).await {
                    Ok(s) => stream = s,
                    Err(ClientError::Connect { .. }) => continue,
                    Err(e) => return Err(e),
                }
                continue;
            }
        };
        if ev.id.is_some() {
            last_id = ev.id;
        }
        if req.json {
            print_json(out, &ev);
        }
        if ev.data.get("turnId").and_then(|t| t.as_str()) != Some(turn.as_str()) {
            if ev.event == "closed" {
                return Ok(ChatOutcome::Failed {
                    code: "session_deleted".into(),
                    error: "the session was deleted".into(),
                });
            }
            continue;
        }
        match ev.event.as_str() {
            "output" if !req.json => {
                let _ = write!(out, "{}", ev.data["content"].as_str().unwrap_or_default());
                let _ = out.flush();
            }
            "error" => {
                let code = ev.data["code"].as_str().unwrap_or("unknown").to_owned();
                let error = ev.data["error"]
                    .as_str()
                    .unwrap_or("the turn failed")
                    .to_owned();
                failure = Some((code, error));
            }
            "complete" => {
                if !req.json {
                    let _ = writeln!(out);
                }
                return Ok(if ev.data["status"] == "completed" {
                    ChatOutcome::Completed
                } else {
                    let (code, error) =
                        failure.unwrap_or_else(|| ("unknown".into(), "the turn failed".into()));
                    ChatOutcome::Failed { code, error }
                });
            }
            _ => {}
        }
    }
}

fn print_json(out: &mut (dyn Write + Send), ev: &SseEvent) {
    let line = serde_json::json!({ "event": ev.event, "id": ev.id, "data": ev.data });
    let _ = writeln!(out, "{line}");
}
