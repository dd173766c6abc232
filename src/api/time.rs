//! The one time representation: milliseconds since the Unix epoch (`i64`) in every Rust type.
//!
//! The wire keeps the protocol's two spellings (protocol.md): event payloads carry epoch ms
//! (`timestamp`, `deadlineAt`, as the Lobu gateway does), admin resources RFC 3339 strings
//! (`startedAt`, `endedAt`). These serde adapters write and read the latter, so a client gets
//! the same `i64` the gateway had and never parses a time itself.

use serde::{Deserialize, Deserializer, Serializer};

use crate::clock::{from_rfc3339, to_rfc3339};

/// Epoch ms as an RFC 3339 string (`#[serde(with = "rfc3339")]`).
pub mod rfc3339 {
    use super::{Deserialize, Deserializer, Serializer, from_rfc3339, to_rfc3339};

    /// Writes epoch ms as RFC 3339.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_rfc3339(*ms))
    }

    /// Reads RFC 3339 as epoch ms; anything else is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        from_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time")))
    }
}

/// An optional epoch ms as an RFC 3339 string or `null` (`#[serde(with = "rfc3339_opt")]`).
pub mod rfc3339_opt {
    use super::{Deserialize, Deserializer, Serializer, from_rfc3339, to_rfc3339};

    /// Writes `Some(ms)` as RFC 3339, `None` as `null`.
    #[allow(
        clippy::ref_option,
        reason = "serde's `with` passes a reference to the field"
    )]
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_some(&to_rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    /// Reads RFC 3339 or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                from_rfc3339(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time"))
                })
            })
            .transpose()
    }
}
