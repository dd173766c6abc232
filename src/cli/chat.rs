//! `turnwatch chat`: send one message and stream the reply. Exit 0 only on the turn's
//! `complete` with status `completed`; 1 on a failed turn; 2 on usage or connection errors.
//! A stream that ends or stalls without the turn's `complete` is resumed from its last id.

use std::io::Write;
use std::time::Duration;

use crate::api::session::Failure;
use crate::api::session::turn_of;
use crate::api::{CreateSession, ErrorCode, EventKind, Outcome, SessionEvent};
use crate::client::{Client, ClientError, Cursor, Item, Resuming, SseEvent};
use crate::ids::TurnId;

/// A stream with no event but pings for this long is resumed from its cursor (pings come
/// every 30 s and say nothing of the turn).
const STALL: Duration = Duration::from_secs(75);
/// How long a lost stream is retried (a gateway restarting takes seconds, more under a
/// supervisor's restart delay) before giving up with exit 2.
const RESUME_FOR: Duration = Duration::from_secs(60);

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
        code: ErrorCode,
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
        ..Default::default()
    };
    let session = client.create_session(&create).await?;
    let (sid, token) = (session.agent_id.as_str(), session.token.as_str());
    // Pings keep a live stream busy but say nothing of the turn: a stream quiet (pings
    // aside) for `STALL` is re-read from the cursor too.
    let mut stream = client
        .session_stream(sid, token, Cursor::default())
        .quiet_after(STALL, false)
        .give_up_after(RESUME_FOR);
    // Open the stream before posting, so no event can fall before it; its `connected` says
    // where in the log we stand, so even a stream lost before any event resumes from there.
    let mut opened = false;
    loop {
        match stream.next().await? {
            Item::Connected => opened = true,
            // The gateway answered the session but not its stream: it cannot be reached.
            Item::Lost(why) if !opened => return Err(ClientError::Unreachable(why)),
            // Connected, or lost after it opened: post; the stream resumes from where it
            // stood.
            Item::Event(_, SessionEvent::Connected(_)) | Item::Lost(_) => break,
            _ => {}
        }
    }
    let queued = client.post_message(sid, token, &req.message, None).await?;
    let mut chat = Follow {
        client,
        turn: queued.turn_id,
        json: req.json,
        failure: None,
        lost_check: None,
    };
    chat.follow(&mut stream, out).await
}

/// One turn's stream, followed to its `complete` across reconnects.
struct Follow<'a> {
    client: &'a Client,
    turn: TurnId,
    json: bool,
    /// The turn's `error`, until its `complete`.
    failure: Option<Failure>,
    /// After a gap: the outcome the gateway recorded for the turn, used if the log no longer
    /// holds its events (nothing of it arrives before the stream goes quiet).
    lost_check: Option<ChatOutcome>,
}

impl Follow<'_> {
    async fn follow(
        &mut self,
        stream: &mut Resuming<SessionEvent>,
        out: &mut (dyn Write + Send),
    ) -> Result<ChatOutcome, ClientError> {
        loop {
            match stream.next().await? {
                Item::Event(ev, event) => {
                    if let Some(outcome) = self.on_event(&ev, event, out) {
                        return Ok(outcome);
                    }
                }
                Item::Unreadable(ev, why) => {
                    if self.json {
                        print_json(out, &ev);
                    }
                    if let Some(outcome) = self.on_unreadable(&ev, &why) {
                        return Ok(outcome);
                    }
                }
                Item::Gap(held) => self.on_gap(held).await?,
                Item::Quiet => {
                    if let Some(outcome) = self.lost_check.take() {
                        return Ok(outcome);
                    }
                }
                Item::Connecting(_) | Item::Connected | Item::Lost(_) => {}
            }
        }
    }

    /// An event this version cannot read: if it is our turn's terminal event, the outcome is
    /// unknown (exit 2), rather than waiting for a `complete` that was already sent.
    fn on_unreadable(&self, ev: &SseEvent, why: &str) -> Option<ChatOutcome> {
        let ours = turn_of(&ev.data).is_some_and(|t| t == self.turn);
        let terminal = ev.event.parse() == Ok(EventKind::Complete);
        (ours && terminal).then(|| {
            ChatOutcome::Unreachable(ClientError::Protocol(format!(
                "turn {} ended with a `complete` this version cannot read ({why}); its outcome is \
                 unknown",
                self.turn
            )))
        })
    }

    /// Handles one event; `Some` once the turn's outcome is known.
    fn on_event(
        &mut self,
        ev: &SseEvent,
        event: SessionEvent,
        out: &mut (dyn Write + Send),
    ) -> Option<ChatOutcome> {
        if self.json {
            print_json(out, ev);
        }
        if event.turn_id() != Some(&self.turn) {
            if let SessionEvent::Closed(_) = event {
                return Some(ChatOutcome::Failed {
                    code: ErrorCode::SessionDeleted,
                    error: "the session was deleted".into(),
                });
            }
            return None;
        }
        self.lost_check = None; // the log holds the turn after all
        self.on_turn_event(event, out)
    }

    fn on_turn_event(
        &mut self,
        event: SessionEvent,
        out: &mut (dyn Write + Send),
    ) -> Option<ChatOutcome> {
        match event {
            SessionEvent::Output(d) if !self.json => {
                let _ = write!(out, "{}", d.content);
                let _ = out.flush();
            }
            SessionEvent::Error(f) => self.failure = Some(f),
            SessionEvent::Complete(c) => {
                if !self.json {
                    let _ = writeln!(out);
                }
                return Some(match (c.status, self.failure.take()) {
                    (Outcome::Completed, _) => ChatOutcome::Completed,
                    (Outcome::Failed, Some(f)) => ChatOutcome::Failed {
                        code: f.code,
                        error: f.error,
                    },
                    (Outcome::Failed, None) => ChatOutcome::Failed {
                        code: ErrorCode::AgentError,
                        error: "the turn failed".into(),
                    },
                });
            }
            _ => {}
        }
        None
    }

    /// The gateway's log does not line up with our cursor (it restarted on other data, or
    /// dropped events we had not read): say so, and ask the gateway what became of the turn,
    /// in case its events are no longer in the log. The admin read needs a reader token (or a
    /// gateway without tokens); without one the stream is all there is.
    async fn on_gap(&mut self, held: Option<i64>) -> Result<(), ClientError> {
        let held = held.map_or_else(String::new, |c| format!(" past event #{c}"));
        eprintln!(
            "turnwatch: gap: the gateway's event log does not reach our cursor{held} (it \
             restarted on other data or pruned it); events may be missing"
        );
        match self.client.turn(self.turn.as_str()).await {
            Ok(d) => {
                // Never exit 0 without the reply: a completed turn whose text is gone is an error.
                self.lost_check = match d.turn.outcome {
                    Some(Outcome::Completed) => {
                        Some(ChatOutcome::Unreachable(ClientError::Protocol(format!(
                            "turn {} completed, but its reply is no longer in the gateway's log",
                            self.turn
                        ))))
                    }
                    Some(_) => Some(ChatOutcome::Failed {
                        code: d.turn.code.unwrap_or(ErrorCode::AgentError),
                        error: d.turn.error.unwrap_or_else(|| "the turn failed".into()),
                    }),
                    None => None,
                };
                Ok(())
            }
            Err(ClientError::Api { status: 404, .. }) => Err(ClientError::Protocol(format!(
                "the gateway no longer knows turn {} (its log restarted on other data); its \
                 outcome is unknown",
                self.turn
            ))),
            Err(_) => Ok(()),
        }
    }
}

fn print_json(out: &mut (dyn Write + Send), ev: &SseEvent) {
    let line = serde_json::json!({ "event": ev.event, "id": ev.id, "data": ev.data });
    let _ = writeln!(out, "{line}");
}
