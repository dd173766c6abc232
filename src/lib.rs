//! turnwatch: an agent gateway that never leaves a chat turn hanging, and the tools to watch it.
//!
//! Layout: [`api`] (wire types), [`store`] (durable truth), [`journal`] (the one writer and the
//! live fan-out), [`supervisor`] (worker processes and turn clocks), [`gateway`] (HTTP and SSE),
//! [`client`] (typed HTTP/SSE client), [`worker`] (the reference worker and the exec adapter), [`cli`], [`replica`]
//! (several replicas on one database: the protocol and its model).

pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod gateway;
pub mod ids;
pub mod journal;
pub mod metrics;
pub mod replica;
pub mod store;
pub mod supervisor;
pub mod worker;
