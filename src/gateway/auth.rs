//! Bearer tokens: configured operator, read-only and client tokens, and per-session tokens.

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::api::ErrorCode;
use crate::config::Role;

/// The configured tokens.
pub struct Tokens {
    entries: Vec<(String, String, Role)>,
}

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A configured token, by name.
    Named(String, Role),
    /// No tokens are configured: loopback-only trust.
    Open,
    /// A bearer that matched no configured token (maybe a session token).
    Other(String),
}

/// What every token `POST /api/local-init` gives starts with. In loopback-trust mode such a
/// bearer is the loopback caller itself ([`Caller::Open`]); with tokens configured it is
/// refused like any unknown token.
pub const LOCAL_TOKEN_PREFIX: &str = "twl_";

impl Tokens {
    /// The tokens as resolved from the config.
    pub fn new(entries: Vec<(String, String, Role)>) -> Self {
        Self { entries }
    }

    /// Whether any token is configured.
    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Identifies the caller from `Authorization: Bearer`; 401 when a token is needed and absent.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match bearer(headers)? {
            Some(token) if !self.is_enabled() && token.starts_with(LOCAL_TOKEN_PREFIX) => {
                Ok(Caller::Open)
            }
            Some(token) => Ok(self
                .entries
                .iter()
                .find(|(_, secret, _)| constant_time_eq(secret.as_bytes(), token.as_bytes()))
                .map_or_else(
                    || Caller::Other(token.to_owned()),
                    |(n, _, r)| Caller::Named(n.clone(), *r),
                )),
            None if self.is_enabled() => Err(unauthorized()),
            None => Ok(Caller::Open),
        }
    }

    /// Requires a token that may read the admin side (operator or read-only); returns its
    /// name and role.
    pub fn reader(&self, headers: &HeaderMap) -> Result<(String, Role), ApiError> {
        match self.caller(headers)? {
            Caller::Named(name, role @ (Role::Operator | Role::Readonly)) => Ok((name, role)),
            Caller::Open => Ok(("anonymous".into(), Role::Operator)),
            Caller::Named(_, Role::Client) => {
                Err(forbidden("a client token reaches the Agent API only"))
            }
            Caller::Other(_) => Err(unknown_token(self)),
        }
    }

    /// Requires an operator (or, with no tokens configured, anyone on loopback).
    pub fn operator(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        match self.caller(headers)? {
            Caller::Named(name, Role::Operator) => Ok(name),
            Caller::Open => Ok("anonymous".into()),
            _ => Err(forbidden("this action needs an operator token")),
        }
    }
}

/// The bearer token of a request, if any; a malformed header is 401.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "expected Authorization: Bearer <token>",
            )
        })
}

/// 403 for a bearer that is no configured token: says why, for a local token especially.
pub fn unknown_token(tokens: &Tokens) -> ApiError {
    if tokens.is_enabled() {
        forbidden(
            "unknown token (a local token from /api/local-init is not accepted once [[tokens]] \
             are configured: use a client token, for the lobu CLI in LOBU_API_TOKEN)",
        )
    } else {
        forbidden(
            "unknown token: this gateway has no [[tokens]] and trusts loopback callers; send no \
             token, or one from POST /api/local-init",
        )
    }
}

/// 401.
pub fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "missing bearer token",
    )
}

/// 403.
pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
