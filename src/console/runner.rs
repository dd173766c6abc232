//! The terminal loop: keys, ticks and stream messages in; a frame out only when something
//! changed, after draining every message already waiting (a burst of events is one frame).

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use std::time::Duration;

use super::driver::Driver;
use super::render::{Palette, page_rows, render};
use super::update::Msg;
use crate::clock::now_ms;

/// Messages applied before a frame is forced, so input never waits behind a flood.
const MAX_BATCH: usize = 10_000;

/// Runs the console on the real terminal until the operator quits.
pub async fn run(
    mut driver: Driver,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    palette: Palette,
) -> std::io::Result<()> {
    let mut terminal = ratatui::init(); // raw mode, alternate screen, restore on panic
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            k = keys.next() => match k {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
                Some(Ok(Event::Resize(..))) => Some(Msg::Tick(now_ms())),
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            _ = tick.tick() => Some(Msg::Tick(now_ms())),
        };
        let Some(msg) = msg else { break Ok(()) };
        driver.handle(msg);
        for _ in 0..MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => driver.handle(m),
                Err(_) => break,
            }
        }
        if driver.state.quit {
            break Ok(());
        }
        if driver.state.dirty {
            let size = terminal.size()?;
            driver.state.page = page_rows(size.height);
            driver.state.prepare();
            if let Err(e) = terminal.draw(|f| render(f, &driver.state, palette)) {
                break Err(e);
            }
            driver.state.dirty = false;
        }
    };
    ratatui::restore();
    result
}
