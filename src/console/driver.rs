//! The console without a terminal: state, the link, and the effects performed. The terminal
//! runner and the wiring tests both drive this.

use tokio::sync::mpsc;

use super::link::{self, LinkHandle};
use super::state::State;
use super::update::{Effect, Msg, update};
use crate::api::admin::{TurnDetail, WorkerDetail};
use crate::client::Client;

/// State plus the I/O it asks for.
pub struct Driver {
    /// The console state.
    pub state: State,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    link: LinkHandle,
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
                    let r = client
                        .get_json::<WorkerDetail>(&format!("/api/v1/admin/workers/{id}"))
                        .await;
                    let _ = tx.send(Msg::WorkerDetail(
                        r.map(Box::new).map_err(|e| e.to_string()),
                    ));
                });
            }
            Effect::LoadTurn(id) => {
                tokio::spawn(async move {
                    let r = client
                        .get_json::<TurnDetail>(&format!("/api/v1/admin/turns/{id}"))
                        .await;
                    let _ = tx.send(Msg::TurnDetail(r.map(Box::new).map_err(|e| e.to_string())));
                });
            }
        }
    }
}
