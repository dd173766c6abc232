//! The console's whole state: the model, what the operator is looking at, the connection, and
//! each feature's sub-state (the Chat view's [`Chat`], an action's dialog and its [`Pending`]
//! confirmation). The row index over it is built in `rows` ([`State::prepare`]).

use regex::Regex;

use super::action::{Confirm, Pending};
use super::chat::Chat;
use super::cluster::{Cluster, ReplicaCounts};
use super::model::Model;
use super::msg::Notice;
use crate::api::WorkerState;
use crate::api::admin::{TurnDetail, WorkerDetail};
use crate::ids::{ReplicaId, TurnId, WorkerId};

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Worker slots.
    Workers,
    /// Turns in flight.
    Turns,
    /// Stranded turns.
    Stranded,
    /// The admin log.
    Events,
    /// Talk to an agent.
    Chat,
    /// The gateway replicas sharing the store.
    Replicas,
}

impl View {
    /// All views in tab order (Replicas last, so the first five keep their keys).
    pub const ALL: [Self; 6] = [
        Self::Workers,
        Self::Turns,
        Self::Stranded,
        Self::Events,
        Self::Chat,
        Self::Replicas,
    ];

    /// The view's title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Workers => "Workers",
            Self::Turns => "Turns",
            Self::Stranded => "Stranded",
            Self::Events => "Events",
            Self::Chat => "Chat",
            Self::Replicas => "Replicas",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The next (or previous) view.
    #[must_use]
    pub fn step(self, forward: bool) -> Self {
        let n = Self::ALL.len();
        let i = if forward {
            self.index() + 1
        } else {
            self.index() + n - 1
        };
        Self::ALL[i % n]
    }

    /// Column titles.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Workers => &[
                "WORKER",
                "GEN",
                "PID",
                "STATE",
                "AGENT",
                "REPLICA",
                "UPTIME",
                "TURN",
                "LAST EXIT",
                "EXITED AT",
                "CPU",
                "RSS",
                "PROC",
            ],
            Self::Turns | Self::Stranded => &[
                "TURN",
                "STATE",
                "AGENT",
                "AGE",
                "NO PROGRESS",
                "ENDS IN",
                "WORKER",
                "LAST HB",
                "ENDED AT",
            ],
            Self::Events => &["SEQ", "TIME", "EVENT", "DETAILS"],
            Self::Chat => &[],
            Self::Replicas => &[
                "NAME",
                "ID",
                "HOST",
                "PID",
                "VERSION",
                "STATE",
                "WORKERS",
                "SESSIONS",
                "HEARTBEAT",
                "LEASE",
            ],
        }
    }
}

/// The admin stream's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not yet connected.
    Connecting,
    /// Receiving events.
    Live,
    /// Lost; trying again (attempt n).
    Reconnecting(u32),
    /// The gateway refused the token: not trying again until the operator asks.
    Refused,
}

/// What the console is connected to.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Where (URL).
    pub target: String,
    /// The admin stream.
    pub link: Link,
    /// When the last event arrived (epoch ms).
    pub last_event_at: Option<i64>,
    /// When the data went stale (epoch ms): set when the stream is lost (possibly before the
    /// link reports reconnecting), cleared when it is live again.
    pub stale_since: Option<i64>,
    /// The last connection error.
    pub error: Option<String>,
}

/// What a detail pane shows.
#[derive(Clone, Debug)]
pub enum Detail {
    /// Waiting for the gateway.
    Loading(String),
    /// A worker's detail.
    Worker(Box<WorkerDetail>),
    /// A turn's detail.
    Turn(Box<TurnDetail>),
    /// The gateway refused or failed.
    Failed(String),
}

/// Modal state: what keys mean right now.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Tables.
    Normal,
    /// Typing a filter.
    Filter(String),
    /// Typing a `:` command.
    Command(String),
    /// The help overlay.
    Help,
    /// A drill-down pane.
    Detail(Detail),
    /// A confirmation dialog.
    Confirm(Box<Confirm>),
}

/// The applied row filter.
#[derive(Clone, Debug)]
pub struct Filter {
    /// As typed.
    pub raw: String,
    /// Compiled (without the `!`).
    pub regex: Regex,
    /// `!` prefix: keep rows that do not match.
    pub invert: bool,
}

impl Filter {
    /// Parses `regex` or `!regex`; smart-case (k9s, vim): case-insensitive unless the
    /// pattern has a capital letter. A bad pattern's error is one readable line.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (invert, pattern) = raw.strip_prefix('!').map_or((false, raw), |p| (true, p));
        let smart = if pattern.chars().any(char::is_uppercase) {
            pattern.to_owned()
        } else {
            format!("(?i){pattern}")
        };
        let regex = Regex::new(&smart).map_err(|e| {
            let why = e.to_string();
            let last = why.lines().last().unwrap_or("").trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            format!("bad filter `{pattern}`: {last}")
        })?;
        Ok(Self {
            raw: raw.to_owned(),
            regex,
            invert,
        })
    }

    /// Whether a row's text passes.
    pub fn keeps(&self, text: &str) -> bool {
        self.regex.is_match(text) != self.invert
    }
}

/// The sort of one view: a column, and its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sort {
    /// Column index; `None` is the view's default order (most stuck first).
    pub column: Option<usize>,
    /// Reversed.
    pub reverse: bool,
}

/// Header counts, computed once per burst of changes (never per frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Workers by state.
    pub workers: std::collections::BTreeMap<WorkerState, usize>,
    /// Open turns.
    pub in_flight: usize,
    /// Failed turns still in memory.
    pub failed: usize,
    /// Open stranded turns.
    pub stranded: usize,
    /// Open turns stranded or slow (no progress for half their stall timeout).
    pub stuck: usize,
    /// Replicas by state; `None` until the gateway has listed them.
    pub replicas: Option<ReplicaCounts>,
}

/// A row of the current view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowKey {
    /// A worker slot.
    Worker(WorkerId),
    /// A turn.
    Turn(TurnId),
    /// An admin log line, by position.
    Event(usize),
    /// A replica.
    Replica(ReplicaId),
}

/// The console state.
#[allow(clippy::struct_excessive_bools)] // independent switches (follow, readonly, redraw, quit), not a state machine
pub struct State {
    /// The gateway's data.
    pub model: Model,
    /// The connection.
    pub conn: Conn,
    /// The current view.
    pub view: View,
    /// Modal state.
    pub mode: Mode,
    /// The current view's row filter.
    pub filter: Option<Filter>,
    /// The other views' filters, kept while they are not shown.
    pub filters: [Option<Filter>; View::ALL.len()],
    /// Per view: sort.
    pub sorts: [Sort; View::ALL.len()],
    /// Per view: the selected row.
    pub selected: [usize; View::ALL.len()],
    /// The Chat view.
    pub chat: Chat,
    /// The Replicas view (and the replica of each worker).
    pub cluster: Cluster,
    /// An action sent, waiting for the gateway's confirming event.
    pub pending: Option<Pending>,
    /// Events view follows the tail.
    pub follow: bool,
    /// Turns view includes ended turns.
    pub show_ended: bool,
    /// Frozen rows (cells), shown instead of live rows while set.
    pub frozen: Option<Vec<Vec<String>>>,
    /// Actions are off.
    pub readonly: bool,
    /// The clock (epoch ms), moved by ticks.
    pub now: i64,
    /// A message for the operator, and whether it is an error.
    pub notice: Option<Notice>,
    /// When the message was set (epoch ms): it goes a few seconds later.
    pub notice_at: i64,
    /// The current view's rows before the filter (the title's "N of M rows").
    pub unfiltered: usize,
    /// Turns per second and failures per minute, for the header's sparklines.
    pub pulse: super::pulse::Pulse,
    /// The current view's rows after filter and sort.
    pub rows: Vec<RowKey>,
    /// Header counts.
    pub counts: Counts,
    /// Rows must be rebuilt before the next frame.
    pub rows_dirty: bool,
    /// The screen must be redrawn.
    pub dirty: bool,
    /// The operator asked to leave.
    pub quit: bool,
    /// Table height in rows, from the last frame (for paging).
    pub page: usize,
    /// How far the detail pane is scrolled down, in lines.
    pub detail_scroll: u16,
    /// A turn detail's worker (its stderr tail, heartbeat and process), loaded beside it.
    pub detail_worker: Option<Box<WorkerDetail>>,
    /// When the turn detail's worker was last asked for (epoch ms): again every 2 s while the
    /// pane is open, for its whole process sample.
    pub detail_worker_asked: i64,
}

impl State {
    /// A console attached (or attaching) to `target`.
    pub fn new(target: String, readonly: bool, now: i64) -> Self {
        Self {
            model: Model::default(),
            conn: Conn {
                target,
                link: Link::Connecting,
                last_event_at: None,
                stale_since: Some(now),
                error: None,
            },
            view: View::Workers,
            mode: Mode::Normal,
            filter: None,
            filters: Default::default(),
            sorts: [Sort::default(); View::ALL.len()],
            selected: [0; View::ALL.len()],
            chat: Chat::default(),
            cluster: Cluster::new(now),
            pending: None,
            follow: true,
            show_ended: false,
            frozen: None,
            readonly,
            now,
            notice: None,
            notice_at: now,
            unfiltered: 0,
            pulse: super::pulse::Pulse::default(),
            rows: Vec::new(),
            counts: Counts::default(),
            rows_dirty: true,
            dirty: true,
            quit: false,
            page: 20,
            detail_scroll: 0,
            detail_worker: None,
            detail_worker_asked: 0,
        }
    }

    /// Index of the current view.
    pub fn vi(&self) -> usize {
        View::ALL.iter().position(|v| *v == self.view).unwrap_or(0)
    }

    /// The selected row of the current view.
    pub fn selected_row(&self) -> Option<&RowKey> {
        self.rows.get(self.selected[self.vi()])
    }

    /// Whether the screen counts something in seconds: the ages of live workers and open turns,
    /// a dialog or detail pane, the chat, the replicas' heartbeats and leases, an action
    /// awaiting its confirmation, a stream that is not live. Otherwise the screen changes only with the minute (the clock and "last event"
    /// are shown to the minute), so an idle console need not redraw every second.
    pub fn counts_seconds(&self) -> bool {
        let c = &self.counts;
        c.in_flight > 0
            || c.workers
                .iter()
                .any(|(state, n)| state.is_live() && *n > 0)
            || matches!(self.mode, Mode::Detail(_) | Mode::Confirm(_))
            || matches!(self.view, View::Chat | View::Replicas)
            || self.pending.is_some()
            || self.is_stale()
            // Set on a lost stream before the link reports reconnecting.
            || self.conn.stale_since.is_some()
    }

    /// Whether the data on screen may be out of date.
    pub fn is_stale(&self) -> bool {
        self.conn.link != Link::Live
    }
}
