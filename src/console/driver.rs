//! The console without a terminal: state, the link, and the effects performed. The terminal
//! runner and the wiring tests both drive this.

use tokio::sync::mpsc;

use super::chat_link::{self, ChatStream};
use super::link::{self, LinkHandle};
use super::msg::{Effect, Msg, ReplicaPoll, Target};
use super::state::State;
use super::update::update;
use crate::api::ErrorCode;
use crate::api::admin::{CancelRequest, KillRequest, ListQuery};
use crate::api::state::WorkerSet;
use crate::client::{Client, ClientError};

/// State plus the I/O it asks for.
pub struct Driver {
    /// The console state.
    pub state: State,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    link: LinkHandle,
    chat: ChatStream,
}

impl Driver {
    /// Attaches to the gateway behind `client`; messages arrive on the returned receiver.
    pub fn start(
        client: Client,
        target: String,
        readonly: bool,
        now: i64,
    ) -> (Self, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = link::start(client.clone(), tx.clone());
        let state = State::new(target, readonly, now);
        (
            Self {
                state,
                client,
                tx,
                link,
                chat: ChatStream::default(),
            },
            rx,
        )
    }

    /// A sender for more messages (keys, ticks).
    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    /// Applies a message and performs the effects it returns.
    pub fn handle(&mut self, msg: Msg) {
        for effect in update(&mut self.state, msg) {
            self.perform(effect);
        }
    }

    fn perform(&self, effect: Effect) {
        let (client, tx) = (self.client.clone(), self.tx.clone());
        match effect {
            Effect::Quit => {}
            Effect::Reconnect { fresh } => self.link.reconnect(fresh),
            Effect::LoadWorker(id) => {
                tokio::spawn(async move {
                    let r = client.worker(id.as_str()).await;
                    let _ = tx.send(Msg::WorkerDetail(
                        r.map(Box::new).map_err(|e| e.to_string()),
                    ));
                });
            }
            Effect::LoadTurn(id) => {
                tokio::spawn(async move {
                    let r = client.turn(id.as_str()).await;
                    let _ = tx.send(Msg::TurnDetail(r.map(Box::new).map_err(|e| e.to_string())));
                });
            }
            Effect::LoadOverview => {
                tokio::spawn(async move {
                    let r = client.overview().await;
                    let _ = tx.send(Msg::Overview(r.map(Box::new).map_err(|e| e.to_string())));
                });
            }
            Effect::LoadReplicas { workers } => {
                tokio::spawn(async move {
                    let r = poll_replicas(&client, workers).await;
                    let _ = tx.send(Msg::Replicas(r.map(Box::new).map_err(|e| e.to_string())));
                });
            }
            Effect::ChatSend {
                agent,
                session,
                content,
                local,
            } => {
                tokio::spawn(chat_link::send(
                    client,
                    tx,
                    self.chat.clone(),
                    agent,
                    session,
                    content,
                    local,
                ));
            }
            Effect::Act { target, reason } => {
                tokio::spawn(async move {
                    let _ = tx.send(Msg::ActionAnswer(act(&client, &target, &reason).await));
                });
            }
        }
    }
}

/// Most live workers read to place them on their replica (one page).
const PLACE_WORKERS: i64 = 1000;

/// Lists the replicas and, when asked, the live workers (a failure of the latter only leaves
/// the workers unplaced until the next poll).
async fn poll_replicas(client: &Client, workers: bool) -> Result<ReplicaPoll, ClientError> {
    let replicas = client.replicas().await?.items;
    let workers = if workers {
        client
            .workers(&ListQuery::of(WorkerSet::Live, PLACE_WORKERS))
            .await
            .ok()
            .map(|p| p.items)
    } else {
        None
    };
    // The header's failure counts are the gateway's, by code over its recent window.
    let failed_recently = client
        .overview()
        .await
        .ok()
        .map(|o| (o.failed_recently, o.recent_seconds));
    Ok(ReplicaPoll {
        replicas,
        workers,
        failed_recently,
    })
}

/// Sends a kill or cancel exactly as snapshotted; the refusal reads plainly.
async fn act(client: &Client, target: &Target, reason: &str) -> Result<(), String> {
    let reason = Some(reason.to_owned());
    let sent = match target {
        Target::Kill {
            worker,
            generation,
            pid,
            ..
        } => {
            let req = KillRequest {
                generation: Some(*generation),
                pid: Some(*pid),
                reason,
            };
            client.kill(worker.as_str(), &req).await.map(drop)
        }
        Target::Cancel { turn, .. } => client
            .cancel(turn.as_str(), &CancelRequest { reason })
            .await
            .map(drop),
    };
    let e = match sent {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    Err(match (e.code(), &e) {
        (Some(ErrorCode::TargetChanged), ClientError::Api { message, .. }) => {
            format!("the target changed, nothing was done ({message})")
        }
        (Some(ErrorCode::Forbidden), ClientError::Api { message, .. }) => {
            format!("this token may not act ({message})")
        }
        (Some(ErrorCode::AlreadyEnded), ClientError::Api { message, .. }) => {
            format!("the turn had already ended ({message})")
        }
        (_, ClientError::Api { code, message, .. }) => format!("{message} [{code}]"),
        (_, e) => e.to_string(),
    })
}
