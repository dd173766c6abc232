//! One turn of the exec adapter: the command's process group, its output streamed as deltas,
//! its stderr copied to the worker's, its exit turned into `complete` or `error`, and stopping
//! the whole group on `cancel` or `shutdown`.
//!
//! **Why a sidecar.** The gateway signals the worker's own process group; the per-turn command
//! runs in a group of its own (so a cancel can stop it without stopping the worker), which an
//! operator's `SIGKILL` of the worker would not reach. Each turn's group is therefore led by a
//! tiny `sh` that ignores `SIGTERM` and waits for its stdin, whose only writer is this worker:
//! when the worker dies, however it dies, the sidecar reads end-of-file and `SIGKILL`s the
//! group. (`PR_SET_PDEATHSIG` would reach only the command itself, not what it forks.)

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::UnboundedReceiver;

use super::emit;
use super::utf8::Utf8Decoder;
use crate::api::{FromWorker, ToWorker};
use crate::ids::TurnId;

/// What every turn of this worker runs, and where.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The command and its arguments; `{message}` in an argument is replaced by the message.
    pub command: Vec<String>,
    /// The session's working directory.
    pub cwd: PathBuf,
    /// Between `SIGTERM` and `SIGKILL` when the group is stopped.
    pub grace: Duration,
    /// Heartbeat period while the command runs.
    pub heartbeat: Duration,
}

/// The placeholder an argument may hold for the message.
const PLACEHOLDER: &str = "{message}";

/// The sidecar that leads the turn's group (see the module docs).
const SIDECAR: &str = "trap '' HUP INT TERM; read _; kill -9 0";

/// How a turn ended, for the worker's loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Serve the next turn.
    Serve,
    /// `shutdown` or stdin closed: exit.
    Exit,
}

/// Runs the turn's command to its end, a `cancel` or a `shutdown`, writing the turn's lines.
pub async fn run(
    plan: &Plan,
    turn: &TurnId,
    message: &str,
    control: &mut UnboundedReceiver<ToWorker>,
) -> Next {
    let mut group = match Group::spawn(plan, turn, message).await {
        Ok(g) => g,
        Err(e) => {
            let error = format!(
                "the command `{}` could not be started: {e}",
                plan.command[0]
            );
            eprintln!("turnwatch worker: {error}");
            fail(turn, error);
            return Next::Serve;
        }
    };
    let mut stdout = group.child.stdout.take();
    let stderr = group
        .child
        .stderr
        .take()
        .map(|e| tokio::spawn(copy_stderr(e)));
    let mut reply = Reply::new(turn);
    let mut buf = vec![0u8; 8192];
    let mut beat =
        tokio::time::interval_at(tokio::time::Instant::now() + plan.heartbeat, plan.heartbeat);
    let status = loop {
        tokio::select! {
            read = read_some(stdout.as_mut(), &mut buf) => match read {
                Some(n) => reply.bytes(&buf[..n]),
                None => stdout = None,
            },
            status = group.child.wait() => break status,
            msg = control.recv() => match msg {
                Some(ToWorker::Cancel { turn_id }) if &turn_id == turn => {
                    eprintln!("turnwatch worker: {turn} cancelled; stopping its command");
                    group.stop(plan.grace).await;
                    return Next::Serve;
                }
                None | Some(ToWorker::Shutdown) => {
                    eprintln!("turnwatch worker: shutting down; stopping the command of {turn}");
                    group.stop(plan.grace).await;
                    return Next::Exit;
                }
                Some(other) => eprintln!("turnwatch worker: busy with {turn}, ignoring {other:?}"),
            },
            _ = beat.tick() => emit(&FromWorker::Heartbeat),
        }
    };
    // The command has exited: what it left in its group goes too, which closes the pipes.
    group.kill_rest().await;
    let drain = async {
        while stdout.is_some() {
            match read_some(stdout.as_mut(), &mut buf).await {
                Some(n) => reply.bytes(&buf[..n]),
                None => stdout = None,
            }
        }
    };
    // A process that left the group may hold the pipes open; it is not waited for.
    let _ = tokio::time::timeout(plan.grace, drain).await;
    let last = match stderr {
        Some(task) => tokio::time::timeout(plan.grace, task)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        None => None,
    };
    match status {
        Ok(s) if s.success() => reply.complete(),
        Ok(s) => fail(turn, exit_sentence(&plan.command[0], s, last.as_deref())),
        Err(e) => fail(
            turn,
            format!("waiting for `{}` failed: {e}", plan.command[0]),
        ),
    }
    Next::Serve
}

/// Reads what is there; `None` at end of file, on an error, or with no pipe (then never ready).
async fn read_some<R: AsyncRead + Unpin>(r: Option<&mut R>, buf: &mut [u8]) -> Option<usize> {
    match r {
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// The turn's `error` line (the gateway fails the turn `agent_error` with this sentence).
fn fail(turn: &TurnId, error: String) {
    emit(&FromWorker::Error {
        turn_id: turn.clone(),
        error,
        code: None,
    });
}

/// "`llm` exited with code 3: <its last stderr line>".
fn exit_sentence(program: &str, status: ExitStatus, last: Option<&str>) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(n)) => match Signal::try_from(n) {
            Ok(sig) => format!("was killed by signal {sig}"),
            Err(_) => format!("was killed by signal {n}"),
        },
        (None, None) => "ended abnormally".to_owned(),
    };
    match last {
        Some(line) => format!("`{program}` {how}: {line}"),
        None => format!("`{program}` {how} (it wrote nothing to stderr)"),
    }
}

/// The reply as it streams: each piece of stdout a delta (nothing is kept).
struct Reply<'a> {
    turn: &'a TurnId,
    decoder: Utf8Decoder,
}

impl<'a> Reply<'a> {
    fn new(turn: &'a TurnId) -> Self {
        Self {
            turn,
            decoder: Utf8Decoder::default(),
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let piece = self.decoder.push(bytes);
        self.delta(piece);
    }

    fn delta(&mut self, content: String) {
        if content.is_empty() {
            return;
        }
        let turn_id = self.turn.clone();
        emit(&FromWorker::Delta { turn_id, content });
    }

    fn complete(mut self) {
        let rest = self.decoder.finish();
        self.delta(rest);
        // No `finalText`: the gateway completes the turn with the text it streamed (kept up
        // to its limit), so a long reply is never held here nor sent twice in one line.
        let turn_id = self.turn.clone();
        emit(&FromWorker::Complete {
            turn_id,
            final_text: None,
        });
    }
}

/// Copies the command's stderr, line by line, to the worker's (the gateway keeps its tail);
/// returns the last non-blank line, cut to a sentence's length.
async fn copy_stderr(stderr: impl AsyncRead + Unpin) -> Option<String> {
    const KEEP: usize = 300;
    let mut lines = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    let mut last = None;
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return last,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        eprintln!("{text}");
        let text = text.trim();
        if !text.is_empty() {
            last = Some(text.chars().take(KEEP).collect());
        }
    }
}

/// The turn's process group: the sidecar leading it and the command in it.
struct Group {
    /// The group's id: the sidecar's pid. It stays ours while the sidecar is not reaped.
    pgid: Pid,
    sidecar: Child,
    /// Its stdin; closing it (or this worker dying) makes the sidecar kill the group.
    _lifeline: Option<ChildStdin>,
    child: Child,
}

impl Group {
    async fn spawn(plan: &Plan, turn: &TurnId, message: &str) -> std::io::Result<Self> {
        let mut sidecar = Command::new("/bin/sh")
            .args(["-c", SIDECAR])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let lifeline = sidecar.stdin.take();
        let pgid = sidecar
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or_else(|| std::io::Error::other("the sidecar exited at once"))?;
        let substituted = plan.command[1..].iter().any(|a| a.contains(PLACEHOLDER));
        let args = plan.command[1..]
            .iter()
            .map(|a| a.replace(PLACEHOLDER, message));
        let spawned = Command::new(&plan.command[0])
            .args(args)
            .current_dir(&plan.cwd)
            .env("TURNWATCH_TURN_ID", turn.to_string())
            .env("TURNWATCH_SESSION_DIR", &plan.cwd)
            .process_group(pgid.as_raw())
            .stdin(if substituted {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = sidecar.wait().await;
                return Err(e);
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let message = message.to_owned();
            // A command that does not read its stdin makes this fail; that is its choice.
            tokio::spawn(async move {
                let _ = stdin.write_all(message.as_bytes()).await;
            });
        }
        Ok(Self {
            pgid,
            sidecar,
            _lifeline: lifeline,
            child,
        })
    }

    /// `SIGTERM` to the group, `SIGKILL` after `grace` if the command has not exited; then
    /// whatever is left.
    async fn stop(&mut self, grace: Duration) {
        let _ = killpg(self.pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("turnwatch worker: the command outlived SIGTERM by {grace:?}; SIGKILL");
        }
        self.kill_rest().await;
    }

    /// `SIGKILL` to the group (what the command left behind, and the sidecar); reaps both.
    async fn kill_rest(&mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.wait().await;
        let _ = self.sidecar.wait().await;
    }
}
