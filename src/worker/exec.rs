//! `turnwatch worker --exec -- CMD [ARGS…]`: the exec adapter, a worker that runs any command
//! once per turn, so an agent CLI (`llm`, `ollama run`, `claude -p`, …) needs no protocol code.
//!
//! The adapter owns the protocol (`ready`, heartbeats, `cancel`, `shutdown`); [`turn`] owns one
//! turn's process group. Per turn, the command gets the message on its stdin (or in place of a
//! `{message}` argument); its stdout is streamed as deltas as the bytes arrive, its stderr is
//! copied to the worker's stderr (the gateway keeps the tail); exit 0 completes the turn with
//! the text, any other end fails it with a sentence naming the exit code or signal and the last
//! stderr line.
//!
//! **The session's directory.** Every turn of a session runs in the same directory,
//! `<sessions dir>/<session id>` (`--sessions-dir`, default `$XDG_STATE_HOME/turnwatch/sessions`,
//! else `~/.local/state/turnwatch/sessions`: never a shared directory), created on start with
//! mode 0700, checked to be this user's alone, and kept when the worker exits: a CLI that keeps conversation state in its working directory continues the
//! conversation, also in the session's next worker generation. The command's environment is
//! the worker's (`TURNWATCH_SESSION_ID`, `TURNWATCH_THREAD`, …) plus `TURNWATCH_TURN_ID` and
//! `TURNWATCH_SESSION_DIR`.
//!
//! Unlike the reference worker this adapter runs a small tokio runtime: a turn waits on the
//! command's output, its exit, the gateway's lines and the heartbeat clock at once.

mod turn;
mod utf8;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::api::{FromWorker, ToWorker};
use turn::{Next, Plan};

/// The exec adapter's knobs (part of `turnwatch worker`'s arguments).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ExecArgs {
    /// Run `CMD [ARGS…]` (given after `--`) once per turn: the exec adapter. The fault-mode
    /// options are then ignored.
    #[arg(long, requires = "command")]
    pub exec: bool,
    /// The exec adapter's command; `{message}` in an argument is replaced by the message,
    /// otherwise the message is the command's stdin.
    #[arg(last = true, value_name = "CMD", requires = "exec")]
    pub command: Vec<String>,
    /// Exec: the sessions' working directories are made under this one, which must be this
    /// user's and not writable by others [default: `$XDG_STATE_HOME/turnwatch/sessions`, else
    /// `~/.local/state/turnwatch/sessions`].
    #[arg(long, value_name = "DIR")]
    pub sessions_dir: Option<PathBuf>,
    /// Exec: time between `SIGTERM` and `SIGKILL` when a turn's command is stopped.
    #[arg(long, default_value_t = 1000)]
    pub grace_ms: u64,
    /// Exec: heartbeat period while a command runs.
    #[arg(long, default_value_t = 2000)]
    pub heartbeat_ms: u64,
}

/// Writes one protocol line to stdout; a closed stdout means the gateway is gone, so exit.
fn emit(msg: &FromWorker) {
    static OUT: Mutex<()> = Mutex::new(());
    let line = serde_json::to_string(msg).unwrap_or_default();
    let _held = OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Runs the exec adapter until `shutdown` or its stdin closes; returns the exit code.
pub fn run(args: &ExecArgs) -> i32 {
    if args.command.is_empty() {
        eprintln!("turnwatch worker: --exec needs a command after `--`");
        return 2;
    }
    let cwd = match session_dir(args.sessions_dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("turnwatch worker: cannot make the session's directory: {e}");
            return 1;
        }
    };
    let plan = Plan {
        command: args.command.clone(),
        cwd,
        grace: Duration::from_millis(args.grace_ms),
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(1)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("turnwatch worker: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(serve(&plan))
}

/// `<base>/<session id>`, made if missing (0700, as it may hold a conversation). The default
/// base is private to this user (`$XDG_STATE_HOME/turnwatch/sessions`, else
/// `~/.local/state/turnwatch/sessions`), never a shared directory such as `/tmp`, where another
/// user could make the name first and swap a session's directory for theirs. Whatever the
/// base, it and the session's directory must be real directories (not links) this user owns
/// that nobody else may write to, else the adapter refuses to start.
fn session_dir(base: Option<&Path>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = match base {
        Some(b) => b.to_path_buf(),
        None => default_base()?,
    };
    let session = std::env::var("TURNWATCH_SESSION_ID").unwrap_or_default();
    // A session id is `s-` and a uuid; anything else is made safe to be one path component.
    let name: String = session
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() { "no-session" } else { &name };
    let dir = base.join(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    check_private(&base, false)?;
    check_private(&dir, true)?;
    Ok(dir)
}

/// `$XDG_STATE_HOME/turnwatch/sessions`, else `$HOME/.local/state/turnwatch/sessions`.
fn default_base() -> std::io::Result<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .ok_or_else(|| {
            std::io::Error::other("neither XDG_STATE_HOME nor HOME is set: pass --sessions-dir")
        })?;
    Ok(state.join("turnwatch/sessions"))
}

/// Refuses a directory that is a link, not this user's, or writable by others (`own`: nor
/// readable by them either, as it holds a conversation).
fn check_private(dir: &Path, own: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    let mask = if own { 0o077 } else { 0o022 };
    if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & mask != 0 {
        return Err(std::io::Error::other(format!(
            "{} must be a directory of this user (uid {uid}) that others cannot {} \
             (it is mode {:o}, owner {}): refusing to run a session's commands there",
            dir.display(),
            if own { "read or write" } else { "write" },
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    Ok(())
}

async fn serve(plan: &Plan) -> i32 {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A thread, not a runtime task: a read blocked on stdin must not hold up the exit.
    std::thread::spawn(move || super::read_stdin(|msg| tx.send(msg).is_ok()));
    eprintln!(
        "turnwatch worker: exec adapter for `{}` in {}",
        plan.command.join(" "),
        plan.cwd.display()
    );
    emit(&FromWorker::Ready);
    loop {
        match rx.recv().await {
            None | Some(ToWorker::Shutdown) => return 0,
            Some(ToWorker::Turn {
                turn_id, content, ..
            }) => {
                if turn::run(plan, &turn_id, &content, &mut rx).await == Next::Exit {
                    return 0;
                }
            }
            Some(ToWorker::Cancel { turn_id }) => {
                eprintln!("turnwatch worker: cancel for {turn_id}, which is not running");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_shared_or_linked_sessions_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(super::check_private(&private, true).is_ok());
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = super::check_private(&shared, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("others cannot write"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert!(
            super::check_private(&link, false).is_err(),
            "a link is refused"
        );
        // A session's own directory may not be readable by others either.
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(super::check_private(&private, true).is_err());
        assert!(super::check_private(&private, false).is_ok());
    }
}
