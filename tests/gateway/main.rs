//! Gateway integration tests: the gateway on port 0, real worker processes (`turnwatch worker`
//! fault modes), a real HTTP/SSE client. One test binary; one module per concern.

// A test reads best as one story with short local names; these lints fight that.
#![allow(clippy::too_many_lines, clippy::many_single_char_names)]

mod harness;

mod admin;
mod agents;
mod bad_input;
mod browser;
mod chaos;
mod chat_restart;
mod cluster;
mod connections;
mod console;
mod failures;
mod fastpath;
mod lifecycle;
mod lobu;
mod operator;
mod procs;
mod raw;
mod replica_matrix;
mod replicas;
mod resume;
mod store_faults;
mod streams;
mod surface;
mod web;
mod workers;
