//! Console figures: P6 frame time with a 100,000-turn model, P7 event ingestion, P8 idle CPU.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};

use super::{Figure, ms};
use crate::api::AdminEvent;
use crate::api::lifecycle::{TurnDispatched, TurnEnded, TurnProgress, TurnQueued, WorkerSpawned};
use crate::console::msg::{LinkMsg, Msg};
use crate::console::render::{Palette, render};
use crate::console::state::{State, View};
use crate::console::update::update;
use crate::ids::{MessageId, SessionId, TurnId, WorkerId};

const T0: i64 = 1_800_000_000_000;

fn event(seq: i64, event: AdminEvent) -> Msg {
    Msg::Link(LinkMsg::Event(seq, event))
}

fn queued(turn: &str, at: i64) -> AdminEvent {
    AdminEvent::TurnQueued(TurnQueued {
        turn_id: TurnId(turn.to_owned()),
        session_id: SessionId("s-1".into()),
        agent_id: "echo".into(),
        message_id: MessageId(format!("m-{turn}")),
        timestamp: at,
    })
}

fn dispatched(turn: &str, worker: &str, at: i64) -> AdminEvent {
    AdminEvent::TurnDispatched(TurnDispatched {
        turn_id: TurnId(turn.to_owned()),
        worker_id: WorkerId(worker.to_owned()),
        generation: 1,
        deadline_at: T0 + 60_000,
        stall_ms: Some(20_000),
        timestamp: at,
        replica_id: None,
    })
}

/// A console model with `workers` live workers and `turns` open turns.
fn big_state(workers: usize, turns: usize) -> State {
    let mut s = State::new("http://bench".into(), false, T0);
    let mut seq = 0;
    for w in 0..workers {
        seq += 1;
        update(
            &mut s,
            event(
                seq,
                AdminEvent::WorkerSpawned(WorkerSpawned {
                    worker_id: WorkerId(format!("w-{w:05}")),
                    generation: 1,
                    pid: w as u32,
                    agent_id: "echo".into(),
                    session_id: SessionId(format!("s-{w}")),
                    timestamp: T0 - 100_000,
                    replica_id: None,
                }),
            ),
        );
    }
    for t in 0..turns {
        let id = format!("t-{t:06}");
        seq += 1;
        update(&mut s, event(seq, queued(&id, T0 - 100_000 + t as i64)));
        seq += 1;
        update(
            &mut s,
            event(
                seq,
                dispatched(
                    &id,
                    &format!("w-{:05}", t % workers.max(1)),
                    T0 - 100_000 + t as i64,
                ),
            ),
        );
    }
    update(&mut s, Msg::Tick(T0));
    s
}

fn frame_time(s: &mut State, frames: u32) -> Duration {
    let mut t = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    s.prepare();
    // Warm: the first frames fill the terminal's buffers and the caches of a cold process.
    for _ in 0..frames / 10 {
        let _ = t.draw(|f| render(f, s, Palette { color: true }));
    }
    let start = Instant::now();
    for _ in 0..frames {
        let _ = t.draw(|f| render(f, s, Palette { color: true }));
    }
    start.elapsed() / frames
}

/// P6: one frame at 200×60 with 100,000 turns and 10,000 workers in the model; the floor is a
/// frame of an empty model.
pub fn p6_frame_time() -> Vec<Figure> {
    let mut empty = State::new("http://bench".into(), false, T0);
    empty.view = View::Turns;
    let floor = frame_time(&mut empty, 200);
    let mut s = big_state(10_000, 100_000);
    s.view = View::Turns;
    s.rows_dirty = true;
    let t = Instant::now();
    s.prepare();
    let sort = t.elapsed();
    let frame = frame_time(&mut s, 200);
    let mut w = big_state(10_000, 0);
    let wframe = frame_time(&mut w, 200);
    let extra = format!(
        "Turns view; Workers view {:.3} ms; row index rebuild (filter+sort of 100k) {:.1} ms, done once per burst, not per frame",
        ms(wframe),
        ms(sort)
    );
    vec![Figure {
        name: "P6-frame-100k-turns".into(),
        value: ms(frame),
        unit: "ms",
        floor: Some(ms(floor)),
        target: "<= 1 ms",
        extra,
    }]
}

/// P7: admin events ingested per second, each burst of 1,000 followed by a frame as the runner
/// does (coalescing), so the rate includes drawing.
pub fn p7_ingest() -> Vec<Figure> {
    let mut s = big_state(100, 0);
    let mut t = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    let n: usize = 200_000;
    let msgs: Vec<Msg> = (0..n)
        .map(|i| {
            let turn = format!("t-{:07}", i / 4);
            let e = match i % 4 {
                0 => queued(&turn, T0),
                1 => dispatched(&turn, "w-00001", T0),
                2 => AdminEvent::TurnProgress(TurnProgress {
                    turn_id: TurnId(turn),
                    timestamp: T0,
                }),
                _ => AdminEvent::TurnCompleted(TurnEnded {
                    turn_id: TurnId(turn),
                    session_id: SessionId("s-1".into()),
                    code: None,
                    error: None,
                    exit_code: None,
                    signal: None,
                    timestamp: T0,
                }),
            };
            event(1_000 + i as i64, e)
        })
        .collect();
    let start = Instant::now();
    for (i, m) in msgs.into_iter().enumerate() {
        update(&mut s, m);
        if i % 1000 == 999 {
            s.prepare();
            let _ = t.draw(|f| render(f, &s, Palette { color: true }));
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    vec![Figure {
        name: "P7-ingest".into(),
        value: rate,
        unit: "events/s",
        floor: None,
        target: ">= 50,000 events/s",
        extra: format!("{n} events, a frame per 1,000"),
    }]
}

fn cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// P8: the console attached to an idle gateway (in its own process) for 10 s: this process's
/// CPU time over wall time.
pub async fn p8_idle_cpu() -> anyhow::Result<Vec<Figure>> {
    let gw = super::process::Spawned::gateway().await?;
    let client = crate::client::Client::new(&gw.url, None);
    let (driver, rx) = crate::console::driver::Driver::start(
        client,
        gw.url.clone(),
        false,
        crate::clock::now_ms(),
    );
    let quit = driver.sender();
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    tokio::time::sleep(Duration::from_millis(500)).await; // let it connect and settle
    let window = Duration::from_secs(10);
    let stop = tokio::spawn(async move {
        tokio::time::sleep(window + Duration::from_millis(500)).await;
        let _ = quit.send(Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char('q'),
        )));
    });
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let frames = crate::console::runner::drive(
        &mut term,
        driver,
        rx,
        futures::stream::pending(),
        Palette { color: true },
    )
    .await?;
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    stop.await?;
    let pct = 100.0 * cpu / wall;
    let extra = format!(
        "{cpu:.3} s CPU over {wall:.1} s, {frames} frames (a tick redraws only what it changes)"
    );
    Ok(vec![Figure {
        name: "P8-console-idle-cpu".into(),
        value: pct,
        unit: "% core",
        floor: None,
        target: "<= 0.5 % of a core",
        extra,
    }])
}
