//! The console's messages: everything that can happen to it ([`Msg`]), the I/O it asks the
//! runner for ([`Effect`]), and the small types both carry. A leaf: it names no other console
//! module, so the features (`action`, `chat`), `update` and the runner all speak it without
//! importing one another.

use crossterm::event::KeyEvent;

use crate::api::admin::{Overview, ReplicaInfo, Snapshot, TurnDetail, WorkerDetail, WorkerInfo};
use crate::api::{AdminEvent, SessionEvent};
use crate::ids::{SessionId, TurnId, WorkerId};

/// A message for the operator, and whether it is an error.
pub type Notice = (String, bool);

/// Everything that can happen to the console.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The clock moved (epoch ms).
    Tick(i64),
    /// The terminal was resized: draw again.
    Resize,
    /// The admin stream.
    Link(LinkMsg),
    /// A worker's detail arrived.
    WorkerDetail(Result<Box<WorkerDetail>, String>),
    /// A turn's detail arrived.
    TurnDetail(Result<Box<TurnDetail>, String>),
    /// The gateway's overview (agents, who we are).
    Overview(Result<Box<Overview>, String>),
    /// The replicas list arrived (or could not be read).
    Replicas(Result<Box<ReplicaPoll>, String>),
    /// The chat machinery.
    Chat(ChatMsg),
    /// The gateway's answer to a kill or cancel: accepted, or refused and why.
    ActionAnswer(Result<(), String>),
}

/// What the admin stream reports.
#[derive(Clone, Debug)]
pub enum LinkMsg {
    /// Connecting; attempt 0 is the first.
    Connecting(u32),
    /// Connected.
    Connected,
    /// The snapshot at admin sequence `seq`.
    Snapshot(i64, Box<Snapshot>),
    /// The gateway's log does not line up with our cursor; a snapshot at `seq` follows.
    Gap(i64),
    /// One lifecycle event.
    Event(i64, AdminEvent),
    /// A lifecycle event this version cannot read (a newer gateway's): its id, name and why.
    Unreadable(i64, String, String),
    /// A worker process's sample (not in the log: no id).
    Sampled(Box<crate::api::lifecycle::WorkerSampled>),
    /// The stream dropped or could not connect.
    Lost(String),
    /// The gateway refused the token (401/403): no more reconnects until asked (ctrl-r).
    Refused(String),
}

/// A replicas poll's answer.
#[derive(Clone, Debug, Default)]
pub struct ReplicaPoll {
    /// Every replica not stopped cleanly.
    pub replicas: Vec<ReplicaInfo>,
    /// The live workers, when asked for (to place workers on their replica).
    pub workers: Option<Vec<WorkerInfo>>,
    /// The gateway's failed turns by code over its recent window, and the window (seconds).
    pub failed_recently: Option<(std::collections::BTreeMap<crate::api::ErrorCode, i64>, u64)>,
}

/// What the chat machinery reports.
#[derive(Clone, Debug)]
pub enum ChatMsg {
    /// A session was created for an agent.
    Session(ChatSession),
    /// The gateway accepted message `local` as `turn`.
    Queued(u64, TurnId),
    /// An event of the chat session's stream.
    Event(SessionEvent),
    /// Message `local` could not be sent.
    Failed(u64, String),
}

/// A chat session the console holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatSession {
    /// Its agent.
    pub agent: String,
    /// Session id.
    pub id: String,
    /// Its token.
    pub token: String,
}

/// I/O the console wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Leave.
    Quit,
    /// Reconnect the admin stream now; `fresh` drops the cursor and takes a new snapshot.
    Reconnect {
        /// Start over from a snapshot.
        fresh: bool,
    },
    /// Fetch a worker's detail.
    LoadWorker(WorkerId),
    /// Fetch a turn's detail.
    LoadTurn(TurnId),
    /// Fetch the overview.
    LoadOverview,
    /// Poll the replicas list.
    LoadReplicas {
        /// Also read the live workers (some live worker's replica is unknown).
        workers: bool,
    },
    /// Send a chat message (creating the session first when there is none).
    ChatSend {
        /// Agent.
        agent: String,
        /// The session to use.
        session: Option<ChatSession>,
        /// The text.
        content: String,
        /// Local id of the reply.
        local: u64,
    },
    /// Kill or cancel, exactly as snapshotted.
    Act {
        /// The target.
        target: Target,
        /// Why.
        reason: String,
    },
}

/// What an operator action acts on, as it was when its dialog opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Kill exactly this process.
    Kill {
        /// Worker slot.
        worker: WorkerId,
        /// Generation.
        generation: u32,
        /// Pid.
        pid: u32,
        /// The turn it held: id, when it was created, its session.
        turn: Option<(TurnId, i64, SessionId)>,
    },
    /// Cancel this turn.
    Cancel {
        /// The turn.
        turn: TurnId,
        /// When it was created.
        created_at: i64,
        /// Its session.
        session: SessionId,
        /// Its worker.
        worker: Option<WorkerId>,
    },
}

impl Target {
    /// The dialog's title.
    pub fn title(&self) -> String {
        match self {
            Self::Kill { worker, .. } => format!("Kill worker {worker}?"),
            Self::Cancel { turn, .. } => format!("Cancel turn {turn}?"),
        }
    }

    /// The action button's word.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Kill { .. } => "Kill worker",
            Self::Cancel { .. } => "Cancel turn",
        }
    }
}
