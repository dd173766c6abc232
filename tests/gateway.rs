//! Gateway integration tests: the gateway on port 0, real worker processes (`turnwatch worker`
//! fault modes), a real HTTP/SSE client. One test binary; one module per concern.

// A test reads best as one story with short local names; these lints fight that.
#![allow(clippy::too_many_lines, clippy::many_single_char_names)]

#[path = "gateway/harness.rs"]
mod harness;

#[path = "gateway/admin.rs"]
mod admin;
#[path = "gateway/bad_input.rs"]
mod bad_input;
#[path = "gateway/chaos.rs"]
mod chaos;
#[path = "gateway/chat_restart.rs"]
mod chat_restart;
#[path = "gateway/connections.rs"]
mod connections;
#[path = "gateway/console.rs"]
mod console;
#[path = "gateway/failures.rs"]
mod failures;
#[path = "gateway/lifecycle.rs"]
mod lifecycle;
#[path = "gateway/operator.rs"]
mod operator;
#[path = "gateway/raw.rs"]
mod raw;
#[path = "gateway/resume.rs"]
mod resume;
#[path = "gateway/store_faults.rs"]
mod store_faults;
#[path = "gateway/streams.rs"]
mod streams;
#[path = "gateway/surface.rs"]
mod surface;
#[path = "gateway/workers.rs"]
mod workers;
