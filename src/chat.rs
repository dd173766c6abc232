//! `turnwatch chat`: send one message and stream the reply. Exit 0 only on the turn's
//! `complete` with status `completed`; 1 on a failed turn; 2 on usage or connection errors.
//! A stream that ends or stalls without the turn's `complete` is resumed from its last id.

use futures::{Stream, StreamExt};
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

use crate::api::CreateSession;
use crate::api::admin::TurnDetail;
use crate::client::{Client, ClientError, Cursor, SseEvent};

/// A stream with no event but pings for this long is resumed from its cursor (pings come
/// every 30 s and say nothing of the turn).
const STALL: Duration = Duration::from_secs(75);
/// How long a lost stream is retried (a gateway restarting takes seconds, more under a
/// supervisor's restart delay) before giving up with exit 2.
const RESUME_FOR: Duration = Duration::from_secs(60);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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
    // Open the stream before posting, so no event can fall before it; its `connected` says
    // where in the log we stand, so even a stream lost before any event resumes from there.
    let mut stream = client.events(sid, token, None).await?;
    let mut cursor = Cursor::default();
    while let Some(ev) = tokio::time::timeout(STALL, stream.next())
        .await
        .ok()
        .flatten()
    {
        let ev = ev?;
        if ev.event == "connected" {
            cursor.on_connected(&ev.data);
            break;
        }
    }
    let queued = client.post_message(sid, token, &req.message, None).await?;
    let mut chat = Follow {
        client,
        session: sid,
        token,
        turn: queued.turn_id.to_string(),
        json: req.json,
        cursor,
        failure: None,
        down_since: None,
        attempts: 0,
        lost_check: None,
    };
    chat.follow(stream, out).await
}

/// One turn's stream, followed to its `complete` across reconnects.
struct Follow<'a> {
    client: &'a Client,
    session: &'a str,
    token: &'a str,
    turn: String,
    json: bool,
    cursor: Cursor,
    /// The turn's `error`, until its `complete`.
    failure: Option<(String, String)>,
    /// Since when the stream has been lost, with no logged event since.
    down_since: Option<Instant>,
    /// Reconnects since the last logged event arrived.
    attempts: u32,
    /// After a gap: the outcome the gateway recorded for the turn, used if the log no longer
    /// holds its events (nothing of it arrives before the stream goes quiet).
    lost_check: Option<ChatOutcome>,
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, ClientError>> + Send>>;

impl Follow<'_> {
    async fn follow(
        &mut self,
        stream: impl Stream<Item = Result<SseEvent, ClientError>> + Send + 'static,
        out: &mut (dyn Write + Send),
    ) -> Result<ChatOutcome, ClientError> {
        let mut stream: Events = Box::pin(stream);
        // Pings keep a live stream busy but say nothing of the turn: a stream quiet (pings
        // aside) for `STALL` is resumed from the cursor too, which re-reads the log.
        let mut quiet_until = Instant::now() + STALL;
        loop {
            let next = tokio::time::timeout_at(quiet_until, stream.next()).await;
            let ev = match next {
                Ok(Some(Ok(ev))) if ev.event == "ping" => {
                    if self.json {
                        print_json(out, &ev);
                    }
                    continue;
                }
                Ok(Some(Ok(ev))) => ev,
                Err(_) => {
                    if let Some(outcome) = self.lost_check.take() {
                        return Ok(outcome);
                    }
                    self.resume(&mut stream, false).await?;
                    quiet_until = Instant::now() + STALL;
                    continue;
                }
                // Ended or broke without our `complete`: resume from the cursor.
                Ok(None | Some(Err(_))) => {
                    self.resume(&mut stream, true).await?;
                    quiet_until = Instant::now() + STALL;
                    continue;
                }
            };
            quiet_until = Instant::now() + STALL;
            if let Some(outcome) = self.on_event(&ev, out).await? {
                return Ok(outcome);
            }
        }
    }

    /// Reconnects with the cursor, replacing `stream`; `broken` ones count towards giving up.
    /// While the gateway is unreachable `stream` is kept: a broken one ends at once, so the
    /// next read comes straight back here.
    async fn resume(&mut self, stream: &mut Events, broken: bool) -> Result<(), ClientError> {
        if broken {
            let since = *self.down_since.get_or_insert_with(Instant::now);
            if since.elapsed() > RESUME_FOR {
                return Err(ClientError::Protocol(format!(
                    "the event stream could not be resumed for {} s; the turn's outcome is unknown",
                    RESUME_FOR.as_secs()
                )));
            }
            self.attempts += 1;
            let wait = Duration::from_millis(250) * self.attempts;
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
        }
        match self
            .client
            .events(self.session, self.token, self.cursor.get())
            .await
        {
            Ok(s) => *stream = Box::pin(s),
            Err(ClientError::Connect { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Handles one event; `Some` once the turn's outcome is known.
    async fn on_event(
        &mut self,
        ev: &SseEvent,
        out: &mut (dyn Write + Send),
    ) -> Result<Option<ChatOutcome>, ClientError> {
        if self.json {
            print_json(out, ev);
        }
        if ev.event == "connected" {
            let held = self.cursor.get();
            if self.cursor.on_connected(&ev.data) {
                self.on_gap(held).await?;
            }
            return Ok(None);
        }
        self.cursor.on_event(ev.id);
        if ev.id.is_some() {
            (self.down_since, self.attempts) = (None, 0);
        }
        if ev.data.get("turnId").and_then(|t| t.as_str()) != Some(self.turn.as_str()) {
            if ev.event == "closed" {
                return Ok(Some(ChatOutcome::Failed {
                    code: "session_deleted".into(),
                    error: "the session was deleted".into(),
                }));
            }
            return Ok(None);
        }
        self.lost_check = None; // the log holds the turn after all
        Ok(self.on_turn_event(ev, out))
    }

    fn on_turn_event(
        &mut self,
        ev: &SseEvent,
        out: &mut (dyn Write + Send),
    ) -> Option<ChatOutcome> {
        match ev.event.as_str() {
            "output" if !self.json => {
                let _ = write!(out, "{}", ev.data["content"].as_str().unwrap_or_default());
                let _ = out.flush();
            }
            "error" => {
                let code = ev.data["code"].as_str().unwrap_or("unknown").to_owned();
                let error = ev.data["error"]
                    .as_str()
                    .unwrap_or("the turn failed")
                    .to_owned();
                self.failure = Some((code, error));
            }
            "complete" => {
                if !self.json {
                    let _ = writeln!(out);
                }
                return Some(if ev.data["status"] == "completed" {
                    ChatOutcome::Completed
                } else {
                    let (code, error) = self
                        .failure
                        .take()
                        .unwrap_or_else(|| ("unknown".into(), "the turn failed".into()));
                    ChatOutcome::Failed { code, error }
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
        let path = format!("/api/v1/admin/turns/{}", self.turn);
        match self.client.get_json::<TurnDetail>(&path).await {
            Ok(d) => {
                // Never exit 0 without the reply: a completed turn whose text is gone is an error.
                self.lost_check = match d.turn.outcome.as_deref() {
                    Some("completed") => {
                        Some(ChatOutcome::Unreachable(ClientError::Protocol(format!(
                            "turn {} completed, but its reply is no longer in the gateway's log",
                            self.turn
                        ))))
                    }
                    Some(_) => Some(ChatOutcome::Failed {
                        code: d.turn.code.unwrap_or_else(|| "unknown".into()),
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
