//! Identifier newtypes, so a turn id can never be passed where a session id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $uuid:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh id with this type's prefix.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), uuid::Uuid::$uuid().simple()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(
    /// A session (conversation): what the Agent API calls the returned `agentId`.
    SessionId,
    "s-",
    new_v4
);
id_type!(
    /// One turn: a message and the reply it is owed.
    ///
    /// Turn ids are time-ordered (`UUIDv7`): a new turn's entries in the id-keyed indexes land
    /// at their ends, on pages the same commit already writes, instead of on random pages; in
    /// `turnwatch bench p3` that cut the journal's WAL bytes per turn by about a quarter. Other
    /// ids stay random: worker ids are shown shortened, where a shared time prefix would hide
    /// the difference between them.
    TurnId,
    "t-",
    now_v7
);
id_type!(
    /// A worker slot; each process started in it is a new generation.
    WorkerId,
    "w-",
    new_v4
);
id_type!(
    /// One gateway process sharing the store: a new id each time a gateway starts.
    ReplicaId,
    "r-",
    new_v4
);
id_type!(
    /// A client message id; clients may choose their own for idempotency.
    MessageId,
    "m-",
    new_v4
);

impl WorkerId {
    /// The worker slot that serves a session: one worker per session.
    pub fn for_session(session: &SessionId) -> Self {
        let tail = session.as_str().trim_start_matches("s-");
        Self(format!("w-{}", &tail[..tail.len().min(16)]))
    }
}
