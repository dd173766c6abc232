//! `turnwatch worker`: the reference worker. It speaks the worker protocol on stdin/stdout,
//! and its fault modes reproduce every way a real worker fails (the failure matrix).
//!
//! Plain threads, no runtime: a worker should be the simplest program that speaks the protocol.
//! With `--exec -- CMD …` it is instead the exec adapter ([`exec`]), which runs a command per
//! turn.
//! It exits when its stdin closes (unless `--ignore-eof`, which plays a worker that would
//! outlive its gateway if the kernel did not kill it).

use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::api::{FromWorker, ToWorker};
use crate::ids::TurnId;

pub mod exec;

/// What the worker does with a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Streams the message back in `--deltas` pieces, then completes.
    Echo,
    /// Like echo, `--delay-ms` between pieces.
    Slow,
    /// Sends `--after` deltas, then exits with `--exit-code` or dies by `--signal`.
    CrashAfter,
    /// Exits with `--exit-code` (or `--signal`) before saying ready.
    ExitAtStart,
    /// Runs but never says ready.
    NeverReady,
    /// Takes the turn and says nothing, ignoring `shutdown`.
    Hang,
    /// Takes the turn and only heartbeats, every `--interval-ms`.
    HeartbeatOnly,
    /// Takes the turn and busy-loops on its main thread without output (a stuck computation):
    /// ignores `cancel`, exits on `shutdown` or stdin EOF.
    Spin,
    /// Writes bad JSON, unknown types and other turns' ids, then echoes.
    Garbage,
    /// Writes one line of `--bytes` bytes.
    Oversize,
    /// Reports an error for the turn.
    ErrorReply,
    /// Ignores `cancel` and replies after `--delay-ms` anyway.
    LateReply,
}

/// The worker's knobs.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Behaviour.
    #[arg(long, value_enum, default_value = "echo")]
    pub mode: Mode,
    /// Pieces per echoed reply.
    #[arg(long, default_value_t = 3)]
    pub deltas: usize,
    /// Pause between pieces (slow) or before the reply (late-reply).
    #[arg(long, default_value_t = 200)]
    pub delay_ms: u64,
    /// Deltas before crashing (crash-after).
    #[arg(long, default_value_t = 1)]
    pub after: usize,
    /// Exit code for crash-after and exit-at-start.
    #[arg(long, default_value_t = 1)]
    pub exit_code: i32,
    /// Die by this signal instead (`KILL`, `SIGSEGV`, `9`).
    #[arg(long)]
    pub signal: Option<String>,
    /// Heartbeat period (heartbeat-only).
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Line size (oversize).
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub bytes: usize,
    /// After this many replied turns, wait `--delay-ms` and exit with `--exit-code` while idle.
    #[arg(long)]
    pub exit_after_turns: Option<u32>,
    /// Echo, slow, crash-after: each delta's content is the moment it is written (µs since the
    /// epoch), for latency benchmarks.
    #[arg(long)]
    pub stamp: bool,
    /// Keep running when stdin closes (a worker that would outlive a dead gateway).
    #[arg(long)]
    pub ignore_eof: bool,
    /// Before each reply, write a line that is not UTF-8 to stdout and to stderr, then (100 ms
    /// later) more stderr.
    #[arg(long)]
    pub invalid_utf8: bool,
    /// Before each reply, write one stderr line of this many bytes.
    #[arg(long)]
    pub stderr_bytes: Option<usize>,
    /// Echo modes: reply `VAR=value` (or `VAR unset`) instead of the message.
    #[arg(long, value_name = "VAR")]
    pub echo_env: Option<String>,
    /// The exec adapter: `--exec -- CMD [ARGS…]` runs a command per turn.
    #[command(flatten)]
    pub exec: exec::ExecArgs,
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn emit(out: &Out, msg: &FromWorker) {
    let line = serde_json::to_string(msg).unwrap_or_default();
    emit_raw(out, &line);
}

fn emit_raw(out: &Out, line: &str) {
    let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
    // A closed stdout means the gateway is gone: exit like a well-behaved child.
    if writeln!(o, "{line}").and_then(|()| o.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Parses `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<Signal>().ok()
}

fn die(args: &WorkerArgs) -> ! {
    if let Some(sig) = args.signal.as_deref().and_then(parse_signal) {
        eprintln!("turnwatch worker: dying by {sig}");
        if sig == nix::sys::signal::Signal::SIGABRT {
            // abort() restores SIGABRT's default action first, even if it was inherited ignored.
            std::process::abort();
        }
        let _ = nix::sys::signal::raise(sig);
        std::thread::sleep(Duration::from_secs(1));
        // Still alive: the Rust runtime handles some signals itself (SIGSEGV, SIGBUS).
        eprintln!("turnwatch worker: {sig} was handled in-process; exiting like a shell would");
        std::process::exit(128 + sig as i32);
    }
    eprintln!("turnwatch worker: exiting with code {}", args.exit_code);
    std::process::exit(args.exit_code)
}

/// Runs the worker until its stdin closes or it is told to shut down; returns the exit code.
pub fn run(args: &WorkerArgs) -> i32 {
    if args.exec.exec {
        return exec::run(&args.exec);
    }
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let (tx, rx) = channel::<ToWorker>();
    let ignore_eof = args.ignore_eof;
    std::thread::spawn(move || {
        read_stdin(|msg| tx.send(msg).is_ok());
        if ignore_eof {
            loop {
                std::thread::park(); // holds `tx`: the worker never hears that stdin closed
            }
        }
    });
    eprintln!("turnwatch worker: starting in {:?} mode", args.mode);
    match args.mode {
        Mode::ExitAtStart => die(args),
        Mode::NeverReady => {
            while rx.recv().is_ok() {}
            return 0;
        }
        _ => emit(&out, &FromWorker::Ready),
    }
    let mut hung = false;
    let mut served = 0;
    loop {
        let Ok(msg) = rx.recv() else { return 0 };
        match msg {
            ToWorker::Turn {
                turn_id, content, ..
            } if !hung => {
                hung = handle(args, &out, &rx, &turn_id, &content);
                served += 1;
                if args.exit_after_turns == Some(served) {
                    std::thread::sleep(Duration::from_millis(args.delay_ms));
                    die(args);
                }
            }
            ToWorker::Turn { turn_id, .. } => {
                eprintln!("turnwatch worker: hung, ignoring {turn_id}")
            }
            ToWorker::Cancel { turn_id } => eprintln!("turnwatch worker: cancel for {turn_id}"),
            ToWorker::Shutdown if args.mode == Mode::Hang => {
                eprintln!("turnwatch worker: hung, ignoring shutdown")
            }
            ToWorker::Shutdown => return 0,
        }
    }
}

/// Waits up to `d`, answering `shutdown` by exiting. Returns true if this turn was cancelled.
fn pause(rx: &Receiver<ToWorker>, d: Duration, turn: &TurnId, obey_cancel: bool) -> bool {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) | Ok(ToWorker::Shutdown) => std::process::exit(0),
            Ok(ToWorker::Cancel { turn_id }) if obey_cancel && &turn_id == turn => return true,
            Ok(other) => eprintln!("turnwatch worker: busy, ignoring {other:?}"),
        }
    }
}

fn chunks(content: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = content.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The knobs that write what a gateway must survive before a reply.
fn misbehave(args: &WorkerArgs, out: &Out) {
    let mut err = std::io::stderr();
    if args.invalid_utf8 {
        {
            let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = o
                .write_all(b"\xff\xfe not UTF-8 \xc3\n")
                .and_then(|()| o.flush());
        }
        let _ = err.write_all(b"stderr \xff\xfe not UTF-8\n");
        // A gateway that stopped reading stderr has closed the pipe by now: this write fails.
        std::thread::sleep(Duration::from_millis(100));
        eprintln!("turnwatch worker: wrote invalid UTF-8");
    }
    if let Some(n) = args.stderr_bytes {
        let chunk = vec![b'e'; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            let _ = err.write_all(&chunk[..k]);
            left -= k;
        }
        eprintln!();
    }
}

/// Reads the gateway's lines from stdin and hands each to `send` until stdin closes or `send`
/// says no one listens; a line that is not one is said on stderr and skipped. Both workers
/// (the reference one and the exec adapter) read with it, each into its own channel.
pub(crate) fn read_stdin(send: impl Fn(ToWorker) -> bool) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<ToWorker>(&line) {
            Ok(msg) => {
                if !send(msg) {
                    return;
                }
            }
            Err(e) => eprintln!("turnwatch worker: ignoring bad input line: {e}"),
        }
    }
}

/// Handles one turn; returns true when the worker is now hung for good.
fn handle(
    args: &WorkerArgs,
    out: &Out,
    rx: &Receiver<ToWorker>,
    turn: &TurnId,
    content: &str,
) -> bool {
    let delay = Duration::from_millis(args.delay_ms);
    misbehave(args, out);
    let echoed = args.echo_env.as_ref().map(|var| match std::env::var(var) {
        Ok(v) => format!("{var}={v}"),
        Err(_) => format!("{var} unset"),
    });
    let content = echoed.as_deref().unwrap_or(content);
    let reply = Reply { args, out, turn };
    match args.mode {
        Mode::Echo | Mode::Slow | Mode::Garbage => {
            if args.mode == Mode::Garbage {
                garbage(out);
            }
            for piece in chunks(content, args.deltas) {
                reply.piece(piece);
                if args.mode == Mode::Slow && pause(rx, delay, turn, true) {
                    return false;
                }
            }
            reply.complete(content);
        }
        Mode::CrashAfter => {
            for piece in chunks(content, args.after.max(1))
                .into_iter()
                .take(args.after)
            {
                reply.piece(piece);
            }
            die(args);
        }
        Mode::Hang => return true,
        Mode::Spin => spin(rx),
        Mode::HeartbeatOnly => {
            heartbeats(out, Duration::from_millis(args.interval_ms.max(1)));
            return true;
        }
        Mode::Oversize => reply.delta("x".repeat(args.bytes)),
        Mode::ErrorReply => emit(
            out,
            &FromWorker::Error {
                turn_id: turn.clone(),
                error: "the reference worker was told to fail this turn".into(),
                code: Some("demo_failure".into()),
            },
        ),
        Mode::LateReply => {
            pause(rx, delay, turn, false);
            reply.delta(content.to_owned());
            reply.complete(content);
        }
        Mode::ExitAtStart | Mode::NeverReady => {}
    }
    false
}

/// What a turn's handler writes for its turn.
struct Reply<'a> {
    args: &'a WorkerArgs,
    out: &'a Out,
    turn: &'a TurnId,
}

impl Reply<'_> {
    /// A piece of the reply: the text, or with `--stamp` the time it is written (for
    /// latency figures).
    fn piece(&self, text: String) {
        if self.args.stamp {
            self.delta(crate::clock::now_micros().to_string());
        } else {
            self.delta(text);
        }
    }

    /// A delta of exactly this text.
    fn delta(&self, content: String) {
        let turn_id = self.turn.clone();
        emit(self.out, &FromWorker::Delta { turn_id, content });
    }

    /// The turn's `complete`, with its whole text.
    fn complete(&self, text: &str) {
        let final_text = Some(text.to_owned());
        let turn_id = self.turn.clone();
        emit(
            self.out,
            &FromWorker::Complete {
                turn_id,
                final_text,
            },
        );
    }
}

/// `--mode garbage`: a line that is not JSON, one of an unknown type, one for a turn this
/// worker does not hold.
fn garbage(out: &Out) {
    emit_raw(out, "this is not json");
    emit_raw(out, r#"{"type":"bogus","turnId":"x"}"#);
    let turn_id = TurnId("t-not-mine".into());
    let content = "stray".into();
    emit(out, &FromWorker::Delta { turn_id, content });
}

/// `--mode heartbeat-only`: heartbeats for ever from a thread of their own.
fn heartbeats(out: &Out, every: Duration) {
    let out = Arc::clone(out);
    std::thread::spawn(move || {
        loop {
            emit(&out, &FromWorker::Heartbeat);
            std::thread::sleep(every);
        }
    });
}

/// `--mode spin`: burns the CPU on this (the main) thread, so the process's own state reads
/// running; looks at stdin between rounds only to exit on `shutdown` or EOF.
fn spin(rx: &Receiver<ToWorker>) -> ! {
    let mut x = 1u64;
    loop {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        match rx.try_recv() {
            Ok(ToWorker::Shutdown) | Err(TryRecvError::Disconnected) => std::process::exit(0),
            Ok(other) => eprintln!("turnwatch worker: spinning, ignoring {other:?}"),
            Err(TryRecvError::Empty) => {}
        }
    }
}
