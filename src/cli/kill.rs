//! `turnwatch kill WORKER`: read the worker's current generation and pid, compare-and-kill
//! exactly that process, and report success only when the gateway's `worker.exited` says so.

use futures::StreamExt;
use std::time::Duration;

use crate::api::AdminEvent;
use crate::api::admin::KillRequest;
use crate::api::lifecycle::{AdminStreamEvent, WorkerExited};
use crate::client::{Client, ClientError};

/// How long to wait for the exit event after the gateway accepted the kill.
const WAIT_EXIT: Duration = Duration::from_secs(30);

/// Why a kill did not happen.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    /// The gateway refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The worker is not running.
    #[error("worker {0} is not running (generation {1} already exited)")]
    NotRunning(String, u32),
    /// No exit event arrived in time.
    #[error("the gateway accepted the kill but reported no exit within {0:?}")]
    NoExit(Duration),
}

/// What was killed, as the exit event reported it.
#[derive(Debug)]
pub struct Killed {
    /// Generation.
    pub generation: u32,
    /// Pid.
    pub pid: u32,
    /// The `worker.exited` event.
    pub exit: WorkerExited,
}

/// Kills the worker's current process.
pub async fn kill(client: &Client, worker: &str, reason: &str) -> Result<Killed, KillError> {
    let detail = client.worker(worker).await?;
    let w = detail.worker;
    if w.exited_at.is_some() {
        return Err(KillError::NotRunning(worker.to_owned(), w.generation));
    }
    // Listen before acting, so the exit event cannot slip past.
    let mut events = client.admin_events(None).await?;
    let req = KillRequest {
        generation: Some(w.generation),
        pid: Some(w.pid),
        reason: Some(reason.to_owned()),
    };
    client.kill(worker, &req).await?;
    let wait = async {
        while let Some(Ok(ev)) = events.next().await {
            if let Ok(AdminStreamEvent::Event(AdminEvent::WorkerExited(e))) = ev.admin()
                && e.worker_id == w.worker_id
                && e.generation == w.generation
            {
                return Some(e);
            }
        }
        None
    };
    match tokio::time::timeout(WAIT_EXIT, wait).await {
        Ok(Some(exit)) => Ok(Killed {
            generation: w.generation,
            pid: w.pid,
            exit,
        }),
        _ => Err(KillError::NoExit(WAIT_EXIT)),
    }
}
