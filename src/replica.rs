//! Replicas: several gateway processes sharing one store (`replicas.md`). Each registers and
//! renews a lease ([`registry`]).

pub mod registry;
