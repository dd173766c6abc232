//! The gateway: the HTTP surface over the store, journal and supervisor, and its lifecycle
//! (start with recovery of turns a crash left open; graceful stop that ends every turn).

mod admin;
mod agents;
mod auth;
mod compat;
mod cors;
mod error;
mod guard;
mod health;
mod limits;
mod routes;
mod serve;
mod sessions;
mod stream;
mod sweeper;
mod tickets;
mod watch;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use routes::{API_PREFIXES, SESSION_EVENTS};

use crate::api::{ErrorCode, TurnEnding};
use crate::clock::now_ms;
use crate::config::Config;
use crate::journal::{Hub, Journal};
use crate::metrics::Metrics;
use crate::replica::cluster::{self, Peers};
use crate::replica::registry::{self, Registration};
use crate::store::{self, Change, Store};
use crate::supervisor::{Supervisor, end_turn};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The listener failed.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
    /// The journal could not record this replica's registration.
    #[error("cannot register this replica: {0}")]
    Register(#[from] crate::journal::JournalError),
}

/// Everything a handler may touch.
pub struct AppState {
    /// This process as a replica (a new registration after it was found lost).
    replica: Arc<std::sync::Mutex<Registration>>,
    /// The other replicas, for wake-ups and forwarded actions.
    peers: Peers,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    journal: Journal,
    hub: Arc<Hub>,
    supervisor: Supervisor,
    tokens: auth::Tokens,
    /// Sessions recently read, for posting messages.
    sessions: sessions::SessionCache,
    /// Where `/lobu` clients' first streams start.
    lobu_starts: compat::StreamStarts,
    /// The worker processes' latest samples, taken while someone watches.
    watch: Arc<watch::Watch>,
    metrics: Arc<Metrics>,
    started: std::time::Instant,
    /// Cancelled when the gateway begins to stop.
    stopping: CancellationToken,
    /// Cancelled once every turn has ended: streams flush and end.
    streams_stop: CancellationToken,
}

/// The routes, the API's under each of [`API_PREFIXES`]. A direct stream (see `serve`) is
/// answered by this same router, every layer included.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/agents", post(agents::create))
        .route("/agents/{id}", get(agents::get).delete(agents::delete))
        .route("/agents/{id}/messages", post(agents::post_message))
        .route(SESSION_EVENTS, get(stream::session::events))
        .route("/agents/{id}/stream-ticket", post(tickets::for_session))
        .route("/admin/stream-ticket", post(tickets::for_admin))
        .route("/admin/overview", get(admin::read::overview))
        .route("/admin/workers", get(admin::read::workers))
        .route("/admin/workers/{id}", get(admin::read::worker))
        .route("/admin/turns", get(admin::read::turns))
        .route("/admin/turns/{id}", get(admin::read::turn))
        .route("/admin/events", get(admin::stream::events))
        .route("/admin/replicas", get(admin::read::replicas))
        .route("/admin/workers/{id}/kill", post(admin::act::kill))
        .route("/admin/turns/{id}/cancel", post(admin::act::cancel));
    let limit = state.config.gateway.max_body_bytes;
    routes::nest(Router::new(), &api)
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/api/local-init", post(compat::local_init))
        .fallback(|| async { ApiError::not_found(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not take that method (see the Allow header)",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(error::json_rejections))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::layer,
        ))
        // Outermost: a listed page can read even the guard's refusals.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cors::Cors::new(&state.config.gateway)),
            cors::layer,
        ))
        .with_state(state)
}

/// What a connection over the cap is served: `/healthz` as ever, anything else 503.
fn overflow_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .fallback(|| async {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TooManyConnections,
                "the gateway holds as many connections as it may; retry later",
            )
        })
        .layer(axum::middleware::from_fn(error::json_rejections))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cors::Cors::new(&state.config.gateway)),
            cors::layer,
        ))
        .with_state(state)
}

/// A gateway running in this process (tests, the embedded console).
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), GatewayError>>,
}

impl RunningGateway {
    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it gracefully (every in-flight turn ends with `gateway_shutdown`) and waits.
    pub async fn stop(self) -> Result<(), GatewayError> {
        self.stop.cancel();
        self.task.await.unwrap_or(Ok(()))
    }

    /// Drops it without the graceful path: only what was committed survives (crash tests).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Starts a gateway on `listener` in the background.
pub async fn start(
    config: Config,
    database_url: &str,
    listener: TcpListener,
) -> Result<RunningGateway, GatewayError> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let ready = prepare(config, database_url, addr).await?;
    let signal = stop.clone();
    let task = tokio::spawn(ready.serve(listener, async move { signal.cancelled().await }));
    Ok(RunningGateway { addr, stop, task })
}

/// Runs a gateway until `shutdown` resolves, then stops it gracefully. `ready` is called with
/// the listening address once the config is checked and the store is open, migrated and
/// recovered, just before the first connection is served.
pub async fn run(
    config: Config,
    database_url: &str,
    listener: TcpListener,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let addr = listener.local_addr()?;
    let prepared = prepare(config, database_url, addr).await?;
    ready(addr);
    prepared.serve(listener, shutdown).await
}

/// A gateway whose store is open and recovered, not yet serving.
struct Prepared {
    state: Arc<AppState>,
    journal_task: tokio::task::JoinHandle<()>,
    limits: limits::Limits,
}

async fn prepare(
    config: Config,
    database_url: &str,
    addr: SocketAddr,
) -> Result<Prepared, GatewayError> {
    let tokens = auth::Tokens::new(config.resolve_tokens().map_err(GatewayError::Config)?);
    if tokens.is_enabled() && config.gateway.public_url.is_none() {
        // Behind a TLS proxy, `http://` + Host would send Lobu clients' tokens in the clear.
        tracing::warn!(
            "[[tokens]] are configured but [gateway] public_url is not: the absolute URLs of \
             answers under /lobu are guessed as http:// and the request's Host; set public_url \
             to where clients reach this gateway"
        );
    }
    if !tokens.is_enabled() && !addr.ip().is_loopback() {
        return Err(GatewayError::Config(
            "refusing to listen on a non-loopback address with no [[tokens]] configured".into(),
        ));
    }
    let limits = limits::Limits::new(&config.gateway);
    let store = store::open(database_url).await?;
    let sole = store.postgres().is_none();
    if sole {
        registry::wait_for_sole_use(store.as_ref())
            .await
            .map_err(GatewayError::Config)?;
    }
    // Check, recover and register one replica at a time: two starting together must not
    // both think themselves alone (the second's recovery would fail the first's turns).
    let _starting = match store.postgres() {
        Some(pg) => Some(pg.startup_lock().await?),
        None => None,
    };
    let hub = Arc::new(Hub::default());
    let (journal, journal_task) = Journal::start(Arc::clone(&store), Arc::clone(&hub));
    // Replicas of this host whose process is gone are lost now, not when their lease runs out;
    // on a file only one gateway can use, every earlier replica is.
    let dead = if sole {
        registry::earlier(store.as_ref()).await
    } else {
        registry::dead_here(store.as_ref()).await
    }
    .map_err(GatewayError::Config)?;
    if !dead.is_empty() {
        let mark = Change::MarkLost {
            replicas: dead.clone(),
            judge: None,
            at: now_ms(),
        };
        journal.write(mark).await?;
    }
    // Alone, this replica closes the previous run's books; with live peers, a lost replica's
    // sessions are taken over by the scan (every replica's), turn by turn `replica_lost`.
    let peers = registry::live_peers(store.as_ref())
        .await
        .map_err(GatewayError::Config)?;
    if peers == 0 {
        recover(store.as_ref(), &journal).await?;
    } else {
        tracing::info!(peers, "joining live replicas on this database");
        // The dead replicas' workers on this host: their groups may outlive them (a worker's
        // own children); the peers' scans take their sessions over.
        crate::supervisor::recovery::recover_workers(store.as_ref(), &journal, Some(&dead)).await?;
    }
    let replica = Registration::register(
        &journal,
        config.gateway.replica_name.as_deref(),
        config.gateway.replica_lease,
    )
    .await?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let supervisor = Supervisor::new(
        replica.id.clone(),
        Arc::clone(&config),
        journal.clone(),
        Arc::clone(&store),
        Arc::clone(&metrics),
    );
    let state = Arc::new(AppState {
        replica: Arc::new(std::sync::Mutex::new(replica)),
        peers: Peers::new(Arc::clone(&store)),
        config,
        store,
        journal,
        hub,
        supervisor,
        tokens,
        sessions: sessions::SessionCache::default(),
        lobu_starts: compat::StreamStarts::default(),
        watch: Arc::new(watch::Watch::default()),
        metrics,
        started: std::time::Instant::now(),
        stopping: CancellationToken::new(),
        streams_stop: CancellationToken::new(),
    });
    Ok(Prepared {
        state,
        journal_task,
        limits,
    })
}

impl Prepared {
    async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let state = self.state;
        let pruner = tokio::spawn(prune_loop(
            state.journal.clone(),
            state.config.gateway.event_retention,
            state.config.gateway.history_retention,
        ));
        let sweeper = tokio::spawn(sweeper::run(
            Arc::clone(&state.store),
            state.journal.clone(),
        ));
        let sampling = tokio::spawn(watch::run(
            Arc::clone(&state.watch),
            state.supervisor.clone(),
            Arc::clone(&state.hub),
        ));
        let lease_stop = CancellationToken::new();
        let lease = tokio::spawn(cluster::keep_lease(
            Arc::clone(&state.replica),
            state.config.gateway.replica_name.clone(),
            state.journal.clone(),
            state.supervisor.clone(),
            lease_stop.clone(),
        ));
        let scan = tokio::spawn(cluster::scan(
            Arc::clone(&state.store),
            state.journal.clone(),
            state.supervisor.clone(),
            state.config.gateway.replica_lease,
        ));
        let fences = tokio::spawn(cluster::follow_fences(
            state.hub.subscribe_fenced(),
            state.supervisor.clone(),
        ));
        let listening = tokio::spawn(cluster::listen(
            Arc::clone(&state.store),
            Arc::clone(&state.hub),
            state.supervisor.clone(),
            lease_stop.clone(),
        ));
        let graceful = {
            let state = Arc::clone(&state);
            let sweeper = sweeper.abort_handle();
            let scan = scan.abort_handle();
            async move {
                shutdown.await;
                sweeper.abort();
                scan.abort();
                state.stopping.cancel();
                let registration = current(&state.replica);
                registration.mark(&state.journal, false).await;
                if registry::serving_peers(state.store.as_ref(), &registration.id)
                    .await
                    .unwrap_or(0)
                    > 0
                {
                    tracing::info!(
                        "stopping: live peers take this replica's sessions; draining turns in flight"
                    );
                    state
                        .supervisor
                        .release_all(state.config.gateway.stop_drain)
                        .await;
                } else {
                    tracing::info!("stopping: ending in-flight turns and stopping workers");
                }
                state.supervisor.shutdown().await;
                state.journal.flush().await;
                state.streams_stop.cancel();
            }
        };
        let apps = serve::Apps {
            full: router(Arc::clone(&state)),
            overflow: overflow_router(Arc::clone(&state)),
        };
        serve::serve(listener, apps, self.limits, graceful).await;
        pruner.abort();
        sweeper.abort();
        sampling.abort();
        // In case the server ended on its own: still end every turn before returning.
        if !state.streams_stop.is_cancelled() {
            state.supervisor.shutdown().await;
        }
        scan.abort();
        fences.abort();
        lease_stop.cancel();
        let _ = lease.await;
        let _ = listening.await;
        current(&state.replica).mark(&state.journal, true).await;
        state.journal.flush().await;
        drop(state);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.journal_task).await;
        Ok(())
    }
}

/// This replica's registration now.
fn current(r: &std::sync::Mutex<Registration>) -> Registration {
    r.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Fails every turn a previous run left open, and closes the books on its workers (killing
/// any still running: see [`crate::supervisor::recovery`]).
async fn recover(store: &dyn Store, journal: &Journal) -> Result<(), GatewayError> {
    let turns = store.open_turns().await?;
    if !turns.is_empty() {
        tracing::warn!(
            count = turns.len(),
            "failing turns left open by a previous run"
        );
    }
    for t in turns {
        let ending = TurnEnding::failed(
            ErrorCode::GatewayRestarted,
            "the gateway restarted while this turn was in flight",
        );
        end_turn(journal, None, &t.session_id, &t.id, &t.message_id, ending).await;
    }
    crate::supervisor::recovery::recover_workers(store, journal, None).await?;
    journal.flush().await;
    Ok(())
}

/// Prunes events past their retention and history past its own, a bounded batch per round:
/// once a minute while a round finds less than a full batch, again after a second while it
/// finds more (so pruning keeps up with any sustained rate of turns).
async fn prune_loop(journal: Journal, retention: Duration, history: Duration) {
    let idle = Duration::from_secs(60).min(retention.max(Duration::from_secs(1)));
    // History outlives the events it explains (a turn's row stays after its events go).
    let history = history.max(retention);
    loop {
        let events = journal
            .write(Change::Prune {
                before: now_ms() - retention.as_millis() as i64,
            })
            .await;
        let rows = journal
            .write(Change::PruneHistory {
                before: now_ms() - history.as_millis() as i64,
            })
            .await;
        let more = |r: &Result<store::Applied, _>| matches!(r, Ok(store::Applied::Changed));
        let pause = if more(&events) || more(&rows) {
            Duration::from_secs(1)
        } else {
            idle
        };
        tokio::time::sleep(pause).await;
    }
}
