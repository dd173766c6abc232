//! The Chat view's state: the chosen agent, the kept session, the input line and the replies
//! as they stream in. Sending goes through the Agent API, the same path a client uses.
//!
//! [`Chat`] is this feature's sub-state; its functions take it (and the notice line), never
//! the whole console state. The view's own keys (tab between views, esc to leave) are the
//! caller's.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::msg::{ChatMsg, ChatSession, Effect, Notice};
use crate::api::{ErrorCode, Outcome, SessionEvent};
use crate::ids::TurnId;

/// How a reply ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyEnd {
    /// `complete{completed}`.
    Completed,
    /// `error` then `complete{failed}`.
    Failed {
        /// Machine code.
        code: ErrorCode,
        /// Sentence.
        error: String,
    },
    /// The gateway refused the message, or could not be reached: why.
    NotSent(String),
}

/// One message and its reply.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Local id, to match the gateway's answer.
    pub local: u64,
    /// The agent it went to.
    pub agent: String,
    /// What the operator wrote.
    pub message: String,
    /// Its turn, once accepted.
    pub turn: Option<TurnId>,
    /// The streamed text.
    pub text: String,
    /// When it was sent (epoch ms).
    pub sent_at: i64,
    /// When the last chunk arrived (epoch ms).
    pub last_chunk_at: Option<i64>,
    /// When it ended (epoch ms): its clocks stop there.
    pub ended_at: Option<i64>,
    /// How it ended.
    pub end: Option<ReplyEnd>,
}

/// The Chat view's state.
#[derive(Clone, Debug, Default)]
pub struct Chat {
    /// Agents the gateway offers.
    pub agents: Vec<String>,
    /// The chosen one.
    pub agent: usize,
    /// The session kept for it.
    pub session: Option<ChatSession>,
    /// Scrollback: how many lines above the newest the view is scrolled (pgup/pgdn).
    pub scroll: usize,
    /// The input line.
    pub input: String,
    /// Messages and replies, oldest first.
    pub replies: Vec<Reply>,
    next_local: u64,
}

impl Chat {
    /// The chosen agent's name.
    pub fn agent_name(&self) -> Option<&str> {
        self.agents.get(self.agent).map(String::as_str)
    }

    /// The agents the gateway offers now; the chosen one stays chosen if it is still offered.
    /// Takes the gateway's agents; the one chosen stays chosen, else the gateway's default
    /// agent (what a client that names none gets), else the first.
    pub fn set_agents(&mut self, agents: &[String], default: Option<&str>) {
        let chosen = self.agent_name().map(str::to_owned);
        self.agents = agents.to_vec();
        let find = |name: &str| agents.iter().position(|a| a == name);
        self.agent = chosen
            .as_deref()
            .and_then(find)
            .or_else(|| default.and_then(find))
            .unwrap_or(0);
    }

    fn reply_by_turn(&mut self, turn: &TurnId) -> Option<&mut Reply> {
        self.replies
            .iter_mut()
            .rev()
            .find(|r| r.turn.as_ref() == Some(turn))
    }
}

/// Lines a page of scrollback moves.
const SCROLL_PAGE: usize = 10;

/// A key in the Chat view (normal mode).
pub fn on_key(
    chat: &mut Chat,
    notice: &mut Option<Notice>,
    now: i64,
    key: KeyEvent,
) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('n') if ctrl => {
            chat.session = None;
            *notice = Some(("the next message starts a new session".into(), false));
        }
        KeyCode::Char(c) if !ctrl => chat.input.push(c),
        KeyCode::Backspace => drop(chat.input.pop()),
        KeyCode::PageUp => chat.scroll = chat.scroll.saturating_add(SCROLL_PAGE),
        KeyCode::PageDown => chat.scroll = chat.scroll.saturating_sub(SCROLL_PAGE),
        KeyCode::Left | KeyCode::Right if !chat.agents.is_empty() => {
            let n = chat.agents.len();
            chat.agent = if key.code == KeyCode::Left {
                (chat.agent + n - 1) % n
            } else {
                (chat.agent + 1) % n
            };
            chat.session = None;
        }
        KeyCode::Enter => return send(chat, notice, now),
        _ => {}
    }
    Vec::new()
}

fn send(chat: &mut Chat, notice: &mut Option<Notice>, now: i64) -> Vec<Effect> {
    let content = chat.input.trim().to_owned();
    let Some(agent) = chat.agent_name().map(str::to_owned) else {
        *notice = Some((
            "no agents known yet (waiting for the gateway's overview)".into(),
            true,
        ));
        return Vec::new();
    };
    if content.is_empty() {
        return Vec::new();
    }
    chat.input.clear();
    chat.next_local += 1;
    let local = chat.next_local;
    chat.replies.push(Reply {
        local,
        agent: agent.clone(),
        message: content.clone(),
        turn: None,
        text: String::new(),
        sent_at: now,
        last_chunk_at: None,
        ended_at: None,
        end: None,
    });
    vec![Effect::ChatSend {
        agent,
        session: chat.session.clone(),
        content,
        local,
    }]
}

/// A report from the chat machinery.
pub fn on_msg(chat: &mut Chat, now: i64, msg: ChatMsg) {
    match msg {
        ChatMsg::Session(s) => {
            if chat.agent_name() == Some(s.agent.as_str()) {
                chat.session = Some(s);
            }
        }
        ChatMsg::Queued(local, turn) => {
            if let Some(r) = chat.replies.iter_mut().find(|r| r.local == local) {
                r.turn = Some(turn);
            }
        }
        ChatMsg::Failed(local, error) => {
            if let Some(r) = chat.replies.iter_mut().find(|r| r.local == local) {
                r.end = Some(ReplyEnd::NotSent(error));
                r.ended_at = Some(now);
            }
        }
        ChatMsg::Event(event) => {
            let Some(r) = event.turn_id().and_then(|t| chat.reply_by_turn(t)) else {
                return;
            };
            match event {
                SessionEvent::Output(d) => {
                    r.text.push_str(&d.content);
                    r.last_chunk_at = Some(now);
                }
                SessionEvent::Error(f) => {
                    r.end = Some(ReplyEnd::Failed {
                        code: f.code,
                        error: f.error,
                    });
                }
                SessionEvent::Complete(c) if c.status == Outcome::Completed => {
                    r.end = Some(ReplyEnd::Completed);
                }
                SessionEvent::Complete(_) if r.end.is_none() => {
                    r.end = Some(ReplyEnd::Failed {
                        code: ErrorCode::AgentError,
                        error: "the turn failed".into(),
                    });
                }
                _ => {}
            }
            if r.end.is_some() {
                r.ended_at.get_or_insert(now);
            }
        }
    }
}
