//! The admin API (protocol.md §3): what operators read ([`read`]), the lifecycle event stream
//! ([`stream`]), and what they do ([`act`]: compare-and-kill a worker, cancel a turn).

pub mod act;
pub mod read;
pub mod stream;
