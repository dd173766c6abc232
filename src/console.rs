//! The operator console: a terminal UI attached to a gateway's admin API and admin event
//! stream. One-directional: every input is a [`msg::Msg`]; [`update::update`] changes the
//! [`state::State`] and returns [`msg::Effect`]s; the runner performs them; [`render`] draws
//! from state.
//!
//! Layering (no module names one above it): `msg` and `model` are leaves; the features
//! (`action`: kill and cancel; `chat`: the Chat view; `cluster`: the Replicas view, polled)
//! own a sub-state and know only those; `state` holds the features' sub-states; `cells`,
//! `rows`, `keys` and `render` read state; `update` dispatches to the features; `driver`,
//! `link` and `chat_link` do the I/O; `runner` drives it all on a terminal.

pub mod action;
pub mod cells;
pub mod chat;
pub mod chat_link;
pub mod clocks;
pub mod cluster;
pub mod keys;
pub mod model;
pub mod msg;
pub mod pulse;
pub mod reading;
pub mod render;
pub mod rows;
pub mod state;
pub mod update;

pub mod demo;
pub mod driver;
pub mod link;
pub mod runner;
#[cfg(test)]
mod tests;
