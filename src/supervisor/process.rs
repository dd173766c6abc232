//! One worker process: spawning it in its own process group with a clean environment (through
//! [`super::spawner`], so it dies with the gateway), pumping its stdout as protocol lines (read
//! as bytes: a line that is not UTF-8 is reported, not fatal), keeping its stderr tail
//! ([`super::stderr`]), and signalling its group.

use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use super::stderr::{Tail, drain};
use crate::api::ToWorker;
use crate::store::ProcessOrigin;

/// How long the pump keeps reading stdout after the process exited, for lines still in the pipe.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// Its exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
}

impl ExitInfo {
    fn from_status(status: ExitStatus) -> Self {
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// Exited 0 by itself.
    pub fn is_clean(self) -> bool {
        self.code == Some(0)
    }

    /// "code 3" or "signal SIGKILL", for sentences.
    pub fn describe(self) -> String {
        match (self.code, self.signal) {
            (_, Some(s)) => format!("was killed by {}", crate::api::signal_name(s)),
            (Some(c), None) => format!("exited with code {c}"),
            (None, None) => "ended".to_owned(),
        }
    }
}

/// What the pump reports, in order.
#[derive(Debug)]
pub enum WorkerEvent {
    /// One stdout line.
    Line(String),
    /// A stdout line that is not UTF-8, converted lossily (it is rejected, not acted on).
    NotUtf8(String),
    /// A stdout line longer than the limit (its content is discarded).
    Oversize,
    /// The process ended; nothing follows.
    Exited(ExitInfo),
}

/// A running worker process. Dropping it lets the pump's `kill_on_drop` reap the process.
pub struct Process {
    /// Its generation in its worker slot.
    pub generation: u32,
    /// OS process id, also its process group id.
    pub pid: u32,
    /// Where and when it started, to recognise it after a gateway restart.
    pub origin: Option<ProcessOrigin>,
    /// The pump's reports.
    pub events: mpsc::Receiver<WorkerEvent>,
    stdin: mpsc::UnboundedSender<String>,
    stderr: Arc<Mutex<Tail>>,
    _permit: OwnedSemaphorePermit,
    /// Its place among this replica's live processes, once listed.
    listed: Option<super::live::Listed>,
}

/// What to start.
pub struct Spawn<'a> {
    /// Program and arguments.
    pub command: &'a [String],
    /// Its whole environment (nothing else of the gateway's is passed).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: Option<&'a std::path::Path>,
    /// The longest stdout line accepted.
    pub max_line: usize,
    /// Its generation.
    pub generation: u32,
}

impl Process {
    /// Starts the process in its own process group with piped stdio and only `spec.env`.
    pub async fn spawn(spec: &Spawn<'_>, permit: OwnedSemaphorePermit) -> std::io::Result<Self> {
        let (program, args) = spec.command.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty worker command")
        })?;
        let program = if program == "turnwatch" {
            std::env::current_exe()?
        } else {
            program.into()
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = spec.cwd {
            cmd.current_dir(dir);
        }
        let mut child = super::spawner::spawn(cmd).await?;
        let pid = child.id().unwrap_or_default();
        // Read before anything could reap it: the child is ours and not yet waited for.
        let origin = super::procinfo::origin(pid);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("worker stdio was not piped"));
        };
        let (events_tx, events) = mpsc::channel(256);
        tokio::spawn(pump(child, stdout, spec.max_line, events_tx));
        let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(line) = stdin_rx.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(Tail::default()));
        tokio::spawn(drain(stderr, Arc::clone(&tail)));
        Ok(Self {
            generation: spec.generation,
            pid,
            origin,
            events,
            stdin: stdin_tx,
            stderr: tail,
            _permit: permit,
            listed: None,
        })
    }

    /// Lists the process among this replica's live ones until it is dropped.
    pub(crate) fn list(&mut self, entry: super::live::Listed) {
        self.listed = Some(entry);
    }

    /// Writes one protocol line to the worker's stdin (never blocks the caller).
    pub fn send(&self, msg: &ToWorker) {
        if let Ok(mut line) = serde_json::to_string(msg) {
            line.push('\n');
            let _ = self.stdin.send(line);
        }
    }

    /// Sends a signal to the worker's whole process group.
    pub fn signal(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    /// The last lines of stderr, newline-joined (bounded: see [`super::stderr`]).
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .text()
    }
}

/// Signals a process group, ignoring a group that is already gone.
pub fn signal_group(pid: u32, signal: Signal) {
    if pid > 1
        && let Err(e) = killpg(Pid::from_raw(pid as i32), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, %signal, error = %e, "could not signal worker group");
    }
}

/// Reads stdout as lines until the process exits, then reports the exit.
async fn pump(
    mut child: Child,
    stdout: ChildStdout,
    max_line: usize,
    tx: mpsc::Sender<WorkerEvent>,
) {
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max_line);
    let mut lines = FramedRead::new(stdout, codec);
    let mut stdout_open = true;
    let status = loop {
        tokio::select! {
            line = lines.next(), if stdout_open => match line {
                Some(Ok(l)) => { let _ = tx.send(line_event(&l)).await; }
                Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                    let _ = tx.send(WorkerEvent::Oversize).await;
                }
                Some(Err(AnyDelimiterCodecError::Io(_))) | None => stdout_open = false,
            },
            status = child.wait() => break status,
        }
    };
    // Lines written just before the exit may still sit in the pipe: deliver them first.
    if stdout_open {
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
            while let Some(Ok(l)) = lines.next().await {
                let _ = tx.send(line_event(&l)).await;
            }
        })
        .await;
    }
    let info = status.map_or(
        ExitInfo {
            code: None,
            signal: None,
        },
        ExitInfo::from_status,
    );
    let _ = tx.send(WorkerEvent::Exited(info)).await;
}

/// One stdout line (without its `\n`, and a `\r` before it) as an event.
fn line_event(line: &Bytes) -> WorkerEvent {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => WorkerEvent::Line(text.to_owned()),
        Err(_) => WorkerEvent::NotUtf8(String::from_utf8_lossy(line).into_owned()),
    }
}
