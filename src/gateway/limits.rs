//! How many client connections the gateway holds at once, so that connections cannot starve it
//! of the file descriptors its workers, its database and `/healthz` need.
//!
//! At start the soft descriptor limit is raised to the hard one. Client connections are capped
//! below it ([`default_cap`], or `[gateway] max_connections`): a connection is accepted only
//! with a permit, and while none is free the listener is left alone (the kernel's backlog
//! holds newcomers). Past the cap a small overflow pool is still accepted; those connections
//! are served `/healthz` as ever and a 503 for anything else, one request each, so a
//! supervisor's health check still gets through while the gateway is full. A silent
//! connection holds its permit for `header_timeout` at most (see `serve`).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::GatewayConfig;

/// Connections accepted past the cap, for `/healthz` (and a 503 for the rest).
pub(super) const OVERFLOW: usize = 32;
/// Descriptors kept back besides three per worker (its stdin, stdout and stderr pipes): the
/// database (file, WAL, shared memory, the pool's connections), the listener, stdio, the
/// runtime's own, and the overflow pool.
const RESERVE: u64 = 128 + OVERFLOW as u64;
/// The default cap's ceiling. Each held connection costs memory (an idle stream ~6 KiB, a
/// silent connection ~1 KiB); past this an operator sets `max_connections` on purpose.
const CEILING: u64 = 65_536;
/// The default cap's floor, for a tiny descriptor limit.
const FLOOR: u64 = 16;

/// The connection permits and the per-connection clock.
pub(super) struct Limits {
    /// How long a connection may take to send a complete request head.
    pub header_timeout: Duration,
    full: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

/// Leave to serve one connection; the slot frees when it drops.
pub(super) struct Permit {
    /// Past the cap: `/healthz` or 503, then closed.
    overflow: bool,
    _slot: OwnedSemaphorePermit,
}

impl Permit {
    /// Whether the connection is past the cap.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }
}

impl Limits {
    /// Raises the descriptor limit and sizes the pools from it and the config.
    pub fn new(config: &GatewayConfig) -> Self {
        let fds = raise_fd_limit();
        let auto = default_cap(fds, config.max_workers);
        let cap = config.max_connections.unwrap_or(auto);
        if cap > auto {
            tracing::warn!(
                max_connections = cap,
                fd_limit = fds,
                "max_connections leaves too few descriptors for workers and the database"
            );
        }
        tracing::info!(max_connections = cap, fd_limit = fds, "connection limit");
        Self {
            header_timeout: config.header_timeout,
            full: Arc::new(Semaphore::new(cap.min(Semaphore::MAX_PERMITS))),
            overflow: Arc::new(Semaphore::new(OVERFLOW)),
        }
    }

    /// Waits for a slot: a full one if any is free, else an overflow one.
    pub async fn acquire(&self) -> Permit {
        let permit = |overflow, slot| Permit {
            overflow,
            _slot: slot,
        };
        if let Ok(p) = Arc::clone(&self.full).try_acquire_owned() {
            return permit(false, p);
        }
        if let Ok(p) = Arc::clone(&self.overflow).try_acquire_owned() {
            return permit(true, p);
        }
        // Neither semaphore is ever closed (they are private to this struct), so neither
        // acquire fails; if one did, the other is waited for.
        tokio::select! {
            Ok(p) = Arc::clone(&self.full).acquire_owned() => permit(false, p),
            Ok(p) = Arc::clone(&self.overflow).acquire_owned() => permit(true, p),
        }
    }
}

/// The default cap: the descriptor limit less three per worker and [`RESERVE`], within
/// [`FLOOR`]..=[`CEILING`].
pub(super) fn default_cap(fd_limit: u64, max_workers: usize) -> usize {
    let reserve = RESERVE + 3 * max_workers as u64;
    fd_limit.saturating_sub(reserve).clamp(FLOOR, CEILING) as usize
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "could not raise the descriptor limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the descriptor limit");
            1024
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_for_workers_and_the_database() {
        assert_eq!(default_cap(20_000, 256), 20_000 - 160 - 768);
        assert_eq!(default_cap(1024, 256), 1024 - 160 - 768);
        assert_eq!(default_cap(1024, 4096), 16);
        assert_eq!(default_cap(1 << 20, 256), 65_536);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_fd_limit();
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, soft);
        assert_eq!(soft, hard);
    }
}
