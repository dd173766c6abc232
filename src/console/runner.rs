//! The terminal loop: keys, ticks and stream messages in; a frame out only when something
//! changed, after draining every message already waiting (a burst of events is one frame).

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::time::Duration;
use tokio::time::Instant;

use super::driver::Driver;
use super::msg::Msg;
use super::render::{Palette, page_rows, render};
use crate::clock::now_ms;

/// Messages applied before a frame is forced, so input never waits behind a flood.
const MAX_BATCH: usize = 10_000;

/// Runs the console on the real terminal until the operator quits.
pub async fn run(
    driver: Driver,
    rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    palette: Palette,
) -> std::io::Result<()> {
    let mut terminal = ratatui::init(); // raw mode, alternate screen, restore on panic
    let keys = EventStream::new().filter_map(|e| async move {
        match e {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
            Ok(Event::Resize(..)) => Some(Msg::Resize),
            _ => None,
        }
    });
    let result = drive(&mut terminal, driver, rx, Box::pin(keys), palette).await;
    ratatui::restore();
    result.map(|_| ())
}

/// The loop itself, on any backend and any key source; returns the number of frames drawn.
pub async fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    mut driver: Driver,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    mut keys: impl Stream<Item = Msg> + Unpin,
    palette: Palette,
) -> Result<u64, B::Error> {
    let mut next_tick = Instant::now(); // the first frame at once
    let mut frames = 0;
    loop {
        let mut ticked = false;
        let msg = tokio::select! {
            m = rx.recv() => m,
            Some(k) = keys.next() => Some(k),
            () = tokio::time::sleep_until(next_tick) => {
                ticked = true;
                Some(Msg::Tick(now_ms()))
            }
        };
        let Some(msg) = msg else { return Ok(frames) };
        driver.handle(msg);
        for _ in 0..MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => driver.handle(m),
                Err(_) => break,
            }
        }
        if driver.state.quit {
            return Ok(frames);
        }
        if driver.state.dirty {
            if !ticked {
                // Between ticks the clock may be behind: a frame is drawn at the current time.
                driver.handle(Msg::Tick(now_ms()));
            }
            driver.state.page = page_rows(terminal.size()?.height);
            driver.state.prepare();
            terminal.draw(|f| render(f, &driver.state, palette))?;
            driver.state.dirty = false;
            frames += 1;
        }
        let soonest = Instant::now() + until_next_tick(&driver.state);
        next_tick = if ticked {
            soonest
        } else {
            next_tick.min(soonest)
        };
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// A second while the screen counts seconds; otherwise until the minute turns (just after it),
/// so an idle console sleeps instead of waking every second for nothing. Sooner when the
/// replicas poll is due (its answer redraws only what it changes).
fn until_next_tick(state: &super::state::State) -> Duration {
    let now = now_ms();
    let poll = Duration::from_millis((state.cluster.next_poll_at() - now).max(0).unsigned_abs());
    if state.counts_seconds() {
        return SECOND.min(poll);
    }
    let into_minute = now.rem_euclid(60_000).unsigned_abs();
    Duration::from_millis(60_000 - into_minute + 5).min(poll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::cluster::Poll;
    use crate::console::state::State;

    #[test]
    fn an_idle_screen_sleeps_until_the_minute_turns_or_the_replicas_poll() {
        let mut s = State::new("http://gw.test".into(), false, now_ms());
        assert_eq!(
            until_next_tick(&s),
            Duration::ZERO,
            "the first poll is due at once"
        );
        s.cluster.poll = Poll::Due(now_ms() + 3_600_000);
        assert_eq!(until_next_tick(&s), SECOND, "not live yet: ticking");
        s.conn.link = crate::console::state::Link::Live;
        let wait = until_next_tick(&s);
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(60_005));
        s.cluster.poll = Poll::Asked(now_ms());
        let wait = until_next_tick(&s);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(10),
            "an unanswered poll is given up after its timeout: {wait:?}"
        );
        s.counts.in_flight = 1;
        assert_eq!(
            until_next_tick(&s),
            SECOND,
            "an open turn's age counts seconds"
        );
    }
}
