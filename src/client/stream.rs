//! One resuming SSE stream for every reader (chat, the console's admin link and chat pane,
//! `status --watch`): reconnects with `Last-Event-ID` after a drop or a silence, backs off,
//! honours the gateway's `retry:`, reads each event into the typed vocabulary and reports a
//! gap when the gateway's log does not line up with the cursor.

use futures::{Stream, StreamExt};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

use super::{Client, ClientError, Cursor, SseEvent};
use crate::api::lifecycle::AdminStreamEvent;
use crate::api::{EventError, SessionEvent};

/// The first wait before reconnecting a broken stream, when the gateway sent no `retry:`.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// An event type a resuming stream can carry: how it reads, and what it does to the cursor.
pub trait Resumable: Sized {
    /// Reads the event.
    ///
    /// # Errors
    /// An event this version cannot read.
    fn parse(ev: &SseEvent) -> Result<Self, EventError>;
    /// Moves the cursor past the event (`id` as received); returns whether the event says the
    /// gateway's log does not line up with the cursor that was sent (a gap).
    fn advance(&self, id: Option<i64>, cursor: &mut Cursor) -> bool;
    /// A keep-alive: says nothing about the log.
    fn is_ping(&self) -> bool;
}

impl Resumable for SessionEvent {
    fn parse(ev: &SseEvent) -> Result<Self, EventError> {
        ev.session()
    }

    fn advance(&self, id: Option<i64>, cursor: &mut Cursor) -> bool {
        if let Self::Connected(c) = self {
            cursor.on_connected(c)
        } else {
            cursor.on_event(id);
            false
        }
    }

    fn is_ping(&self) -> bool {
        matches!(self, Self::Ping(_))
    }
}

impl Resumable for AdminStreamEvent {
    fn parse(ev: &SseEvent) -> Result<Self, EventError> {
        ev.admin()
    }

    fn advance(&self, id: Option<i64>, cursor: &mut Cursor) -> bool {
        match self {
            // A snapshot replaces everything: the cursor is its id, even one below ours (the
            // gateway restarted on other data).
            Self::Snapshot(s) => {
                cursor.reset(id);
                s.gap
            }
            Self::Event(_) => {
                cursor.on_event(id);
                false
            }
            // Neither is in the log: a sample has no id of its own (SSE repeats the last).
            Self::Ping(_) | Self::Sampled(_) => false,
        }
    }

    fn is_ping(&self) -> bool {
        matches!(self, Self::Ping(_))
    }
}

/// What a resuming stream yields.
#[derive(Debug)]
pub enum Item<E> {
    /// About to connect; attempt 0 is the first, later ones follow a loss.
    Connecting(u32),
    /// Connected (the gateway answered 200).
    Connected,
    /// The gateway's log does not line up with the cursor that was sent (it restarted on other
    /// data, or pruned what the cursor needed): what the reader held before, if anything.
    Gap(Option<i64>),
    /// An event: as received (its id, name and data, for printing) and as read.
    Event(SseEvent, E),
    /// An event this version cannot read (a newer gateway's): as received, and why. The
    /// cursor has moved past it, so a re-read does not meet it again.
    Unreadable(SseEvent, String),
    /// The stream broke or ended; it reconnects from the cursor after a wait.
    Lost(String),
    /// Nothing (but pings, if they do not count) arrived for the quiet period: the stream is
    /// re-read from the cursor at once.
    Quiet,
}

type Frames = Pin<Box<dyn Stream<Item = Result<SseEvent, ClientError>> + Send>>;

/// A session or admin event stream that resumes itself. Read it with [`Resuming::next`].
pub struct Resuming<E> {
    client: Client,
    path: String,
    token: Option<String>,
    cursor: Cursor,
    frames: Option<Frames>,
    /// Reconnects since the last event with an id.
    attempt: u32,
    /// Since when the stream has been broken with no event with an id since.
    down_since: Option<Instant>,
    give_up_after: Option<Duration>,
    quiet: Duration,
    pings_are_activity: bool,
    quiet_until: Instant,
    retry: Option<Duration>,
    wait: Option<Duration>,
    announced: bool,
    pending: Option<Item<E>>,
    _events: PhantomData<fn() -> E>,
}

impl<E: Resumable> Resuming<E> {
    pub(super) fn new(client: Client, path: String, token: Option<String>, cursor: Cursor) -> Self {
        Self {
            client,
            path,
            token,
            cursor,
            frames: None,
            attempt: 0,
            down_since: None,
            give_up_after: None,
            quiet: Duration::from_secs(75),
            pings_are_activity: true,
            quiet_until: Instant::now(),
            retry: None,
            wait: None,
            announced: false,
            pending: None,
            _events: PhantomData,
        }
    }

    /// Gives up (with an error from [`Resuming::next`]) once the stream has been broken this
    /// long without an event with an id. Without it, it retries for ever.
    #[must_use]
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.give_up_after = Some(limit);
        self
    }

    /// Resumes a stream that has been quiet this long (the gateway pings every 30 s; the
    /// default is 75 s). With `pings_are_activity` false, pings do not count as activity:
    /// a stream quiet but for pings is re-read from the cursor too.
    #[must_use]
    pub fn quiet_after(mut self, quiet: Duration, pings_are_activity: bool) -> Self {
        self.quiet = quiet;
        self.pings_are_activity = pings_are_activity;
        self
    }

    /// Where the stream resumes from.
    pub fn cursor(&self) -> Option<i64> {
        self.cursor.get()
    }

    /// Drops the connection and reconnects at once; `fresh` forgets the cursor too (an admin
    /// stream then starts again from a snapshot).
    pub fn reconnect(&mut self, fresh: bool) {
        self.frames = None;
        self.wait = None;
        self.pending = None;
        self.announced = false;
        if fresh {
            self.cursor.reset(None);
        }
    }

    /// The next item: connection changes, gaps and events, in order.
    ///
    /// # Errors
    /// The gateway refused the stream for good (a 4xx, e.g. 401 or 410; a 5xx such as 503
    /// is retried), or it stayed broken past [`Resuming::give_up_after`].
    pub async fn next(&mut self) -> Result<Item<E>, ClientError> {
        if let Some(item) = self.pending.take() {
            return Ok(item);
        }
        let Some(frames) = self.frames.as_mut() else {
            return self.connect().await;
        };
        let read = tokio::time::timeout_at(self.quiet_until, frames.next()).await;
        let ev = match read {
            Ok(Some(Ok(ev))) => ev,
            Ok(Some(Err(e))) => return self.lose(e.to_string(), true),
            Ok(None) => return self.lose("the gateway closed the stream".into(), true),
            Err(_) => return self.lose(String::new(), false),
        };
        if let Some(retry) = ev.retry {
            self.retry = Some(retry);
        }
        let event = match E::parse(&ev) {
            Ok(event) => event,
            // Not fatal (a newer gateway may send events this version does not know), and
            // passed on: the reader decides what it means for it.
            Err(e) => {
                self.quiet_until = Instant::now() + self.quiet;
                self.cursor.on_event(ev.id);
                return Ok(Item::Unreadable(ev, e.to_string()));
            }
        };
        if self.pings_are_activity || !event.is_ping() {
            self.quiet_until = Instant::now() + self.quiet;
        }
        if ev.id.is_some() {
            (self.attempt, self.down_since) = (0, None);
        }
        let held = self.cursor.get();
        let gap = event.advance(ev.id, &mut self.cursor);
        let item = Item::Event(ev, event);
        if gap {
            self.pending = Some(item);
            return Ok(Item::Gap(held));
        }
        Ok(item)
    }

    async fn connect(&mut self) -> Result<Item<E>, ClientError> {
        if let Some(wait) = self.wait.take() {
            tokio::time::sleep(wait).await;
        }
        if !self.announced {
            self.announced = true;
            return Ok(Item::Connecting(self.attempt));
        }
        self.announced = false;
        let opened = self
            .client
            .open_sse(&self.path, self.token.as_deref(), self.cursor.get())
            .await;
        match opened {
            Ok(frames) => {
                // A connection that opens ends an outage: the give-up clock and the backoff
                // start again at the next one.
                (self.attempt, self.down_since) = (0, None);
                self.frames = Some(Box::pin(frames));
                self.quiet_until = Instant::now() + self.quiet;
                Ok(Item::Connected)
            }
            Err(ClientError::Api {
                status, message, ..
            }) if status >= 500 => self.lose(format!("{message} (HTTP {status})"), true),
            Err(e @ ClientError::Api { .. }) => Err(e),
            Err(e) => self.lose(e.to_string(), true),
        }
    }

    /// The stream is gone: reconnect after a wait (none after a quiet stream, which is only
    /// re-read), unless it has been broken too long.
    fn lose(&mut self, why: String, broken: bool) -> Result<Item<E>, ClientError> {
        self.frames = None;
        self.attempt += 1;
        if broken {
            let since = *self.down_since.get_or_insert_with(Instant::now);
            if let Some(limit) = self.give_up_after
                && since.elapsed() > limit
            {
                return Err(ClientError::Protocol(format!(
                    "the event stream could not be resumed for {} s ({why})",
                    limit.as_secs()
                )));
            }
            let base = self.retry.unwrap_or(FIRST_WAIT);
            let wait = base.saturating_mul(1 << self.attempt.min(4).saturating_sub(1));
            self.wait = Some(wait.min(MAX_WAIT.max(base)));
            Ok(Item::Lost(why))
        } else {
            Ok(Item::Quiet)
        }
    }
}

#[cfg(test)]
mod tests;
