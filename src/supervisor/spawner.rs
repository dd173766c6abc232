//! Every worker is forked from one long-lived thread, and the kernel is told to `SIGKILL` it
//! when its parent goes: a gateway that is `SIGKILL`ed (or crashes) leaves no worker behind,
//! even one that ignores stdin EOF and `SIGTERM`, or one that was `SIGSTOP`ped.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process.
//! Tokio's blocking threads exit after 10 s idle, and a test process runs many runtimes whose
//! threads come and go, so the fork must happen on a thread that lives as long as the process:
//! this module's spawner thread, started on first use. Each request carries the caller's
//! runtime handle, entered before the spawn so the child's pipes and exit are driven by the
//! caller's runtime.
//!
//! Why `pre_exec` and not a safe trampoline (the binary re-executing itself to call `prctl`
//! before `exec`ing the worker): the trampoline costs a second `exec` of this (large) binary per
//! worker and needs that binary to still exist on disk; the `pre_exec` closure is two system
//! calls. It is the crate's one `unsafe` block, kept in [`die_with_parent`].

use std::io;
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

struct Request {
    cmd: Command,
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The spawner thread's inbox; the thread lives as long as the process.
fn spawner() -> io::Result<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Option<mpsc::Sender<Request>>>> = OnceLock::new();
    let slot = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("turnwatch-spawner".into())
            .spawn(move || {
                for req in rx {
                    let _entered = req.runtime.enter();
                    let mut cmd = req.cmd;
                    let _ = req.reply.send(cmd.spawn());
                }
            });
        Mutex::new(started.ok().map(|_| tx))
    });
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| io::Error::other("the worker spawner thread could not be started"))
}

/// Spawns `cmd` on the spawner thread, as a child that the kernel kills when this process dies.
/// Must be called within a tokio runtime.
pub async fn spawn(mut cmd: Command) -> io::Result<Child> {
    die_with_parent(&mut cmd);
    let (reply, rx) = oneshot::channel();
    let req = Request {
        cmd,
        runtime: tokio::runtime::Handle::current(),
        reply,
    };
    spawner()?
        .send(req)
        .map_err(|_| io::Error::other("the worker spawner thread is gone"))?;
    rx.await
        .map_err(|_| io::Error::other("the worker spawner thread dropped the request"))?
}

/// Makes the child ask the kernel for `SIGKILL` when its parent thread dies, and refuse to run
/// if the parent died before it could ask (the child would already belong to another parent).
///
/// The crate's only `unsafe` (the lint is `deny`, allowed here alone): `pre_exec` is unsafe
/// because its closure runs in the forked child before `exec`, where only async-signal-safe
/// work is allowed. This closure makes two system calls (`prctl`, `getppid`), allocates
/// nothing, takes no lock and reads only the copied `parent` pid; an error is a plain errno
/// (no allocation), which makes the spawn fail.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use nix::sys::signal::Signal;
    let parent = nix::unistd::getpid();
    // SAFETY: see the doc comment: async-signal-safe system calls only, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spawn goes through the shared thread and its child is driven by the caller's runtime
    /// (each test has its own).
    #[tokio::test]
    async fn spawns_from_the_spawner_thread() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]).process_group(0);
        let mut child = spawn(cmd).await.unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
    }

    /// The kernel's parent-death signal follows the thread that forked: a child asked for by a
    /// thread that then exits (as tokio's idle blocking threads and a test's runtime thread
    /// do) must not die with it. Forked on the asking thread, this child would be killed.
    #[test]
    fn a_child_outlives_the_thread_that_asked_for_it() {
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut cmd = Command::new("sleep");
                cmd.arg("30").process_group(0);
                spawn(cmd).await.unwrap().id().unwrap()
            })
        })
        .join()
        .unwrap();
        // The signal, had it been armed for that thread, is sent as the thread exits; allow
        // it far more time than it needs before looking.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let alive = crate::supervisor::procinfo::is_running(pid);
        crate::supervisor::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        assert!(alive, "the child died with the thread that asked for it");
    }
}
