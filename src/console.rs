//! The operator console: a terminal UI attached to a gateway's admin API and admin event
//! stream. One-directional: every input is a [`update::Msg`]; [`update::update`] changes the
//! [`state::State`] and returns [`update::Effect`]s; the runner performs them; [`render`] draws
//! from state.

pub mod action;
pub mod cells;
pub mod chat;
pub mod chat_link;
pub mod keys;
pub mod model;
pub mod render;
pub mod state;
pub mod update;

pub mod demo;
pub mod driver;
pub mod embedded;
pub mod link;
pub mod runner;
#[cfg(test)]
mod tests;
