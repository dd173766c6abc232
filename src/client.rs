//! A typed client for the gateway's HTTP and SSE surfaces, shared by the CLI (and the console).

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::lifecycle::AdminStreamEvent;
use crate::api::session::Connected;
use crate::api::{ErrorBody, ErrorCode, EventError, SessionEvent};

mod routes;
mod stream;

pub use stream::{Item, Resumable, Resuming};

/// The API's path prefix.
const API: &str = crate::api::API_PREFIXES[0];

/// A path segment: an id as the router's `{id}` reads it back.
fn seg(id: &str) -> percent_encoding::PercentEncode<'_> {
    /// Everything but the unreserved characters of RFC 3986.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT)
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway could not be reached or the connection broke.
    #[error("cannot reach the gateway at {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The gateway answered with an error ([`ClientError::code`] reads its code).
    #[error("{message} (HTTP {status}, code {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine code.
        code: String,
        /// The gateway's sentence.
        message: String,
    },
    /// The event stream could not be opened or kept open.
    #[error("cannot reach the gateway's event stream: {0}")]
    Unreachable(String),
    /// The answer was not what the protocol says.
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The gateway's code for a refusal, as this version knows it.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => code.parse().ok(),
            _ => None,
        }
    }
}

/// One SSE event as received.
#[derive(Clone, Debug)]
pub struct SseEvent {
    /// The last event id seen on the stream, as SSE defines it: an event without an `id:`
    /// line (a `ping`) repeats the previous one.
    pub id: Option<i64>,
    /// Its `event:` name.
    pub event: String,
    /// Its `data:`, parsed.
    pub data: Value,
    /// The reconnection time the gateway asked for with this frame's `retry:`, if it did.
    pub retry: Option<std::time::Duration>,
}

impl SseEvent {
    /// The event as a session stream's.
    ///
    /// # Errors
    /// Not a session event this version knows.
    pub fn session(&self) -> Result<SessionEvent, EventError> {
        SessionEvent::parse(&self.event, self.data.clone())
    }

    /// The event as the admin stream's.
    ///
    /// # Errors
    /// Not an admin stream event this version knows.
    pub fn admin(&self) -> Result<AdminStreamEvent, EventError> {
        AdminStreamEvent::parse(&self.event, self.data.clone())
    }
}

/// Where a session stream resumes: the highest event id received, or, before any, where the
/// last `connected` said the connection stood in the log (its `lastEventId`), so a client
/// whose stream drops before its first event still resumes without missing anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor(Option<i64>);

impl Cursor {
    /// The `Last-Event-ID` to resume with.
    pub fn get(self) -> Option<i64> {
        self.0
    }

    /// Takes a `connected` event's data; returns whether it announced a gap (the gateway's log
    /// does not line up with the cursor sent: it restarts from the position given).
    pub fn on_connected(&mut self, connected: &Connected) -> bool {
        if connected.gap || self.0.is_none() {
            self.0 = connected.last_event_id;
        }
        connected.gap
    }

    /// Starts over at `id` (after a snapshot, or forgetting the cursor).
    pub fn reset(&mut self, id: Option<i64>) {
        self.0 = id;
    }

    /// Takes an event's id. The events owed to a connection without a cursor may have ids
    /// below its `lastEventId`, so the cursor only moves forward.
    pub fn on_event(&mut self, id: Option<i64>) {
        if let Some(id) = id {
            self.0 = Some(self.0.map_or(id, |c| c.max(id)));
        }
    }
}

/// A gateway client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for the gateway at `base` (`http://host:port`), with an optional bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        // The gateway closes a kept-alive connection idle for its header timeout (10 s by
        // default): drop ours well before, so no request goes out on a closing connection.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The gateway's base URL (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_auth(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match token.or(self.token.as_deref()) {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Connect {
            url: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|source| ClientError::Connect {
            url: self.base.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => ClientError::Api {
                    status: status.as_u16(),
                    code: b.code,
                    message: b.error,
                },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: "http_error".into(),
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn open_sse(
        &self,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        let mut r = self.http.get(self.url(path));
        if let Some(id) = last_event_id {
            r = r.header("Last-Event-ID", id.to_string());
        }
        let resp =
            self.with_auth(r, token)
                .send()
                .await
                .map_err(|source| ClientError::Connect {
                    url: self.base.clone(),
                    source,
                })?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body: ErrorBody = resp
                .json()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Err(ClientError::Api {
                status,
                code: body.code,
                message: body.error,
            });
        }
        let base = self.base.clone();
        Ok(Box::pin(resp.bytes_stream().eventsource().map(
            move |r| match r {
                Ok(e) => Ok(SseEvent {
                    id: e.id.parse().ok(),
                    event: e.event,
                    data: serde_json::from_str(&e.data).unwrap_or(Value::String(e.data)),
                    retry: e.retry,
                }),
                Err(e) => Err(ClientError::Protocol(format!(
                    "event stream from {base} broke: {e}"
                ))),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;
    use crate::api::session::Connected;
    use crate::ids::SessionId;

    fn connected(resumed_from: Option<i64>, last: i64, gap: bool) -> Connected {
        Connected {
            agent_id: SessionId("s-1".into()),
            session_id: SessionId("s-1".into()),
            timestamp: 1,
            resumed_from,
            last_event_id: Some(last),
            gap,
        }
    }

    #[test]
    fn the_cursor_starts_where_connected_says_and_only_moves_forward() {
        let mut c = Cursor::default();
        assert!(!c.on_connected(&connected(None, 7, false)));
        assert_eq!(
            c.get(),
            Some(7),
            "no event yet: resume from where we connected"
        );
        c.on_event(Some(5)); // an owed event of a turn in flight
        c.on_event(None); // a ping
        assert_eq!(c.get(), Some(7));
        c.on_event(Some(9));
        assert!(!c.on_connected(&connected(Some(9), 9, false)));
        assert_eq!(c.get(), Some(9));
        // The gateway's log does not reach our cursor: it starts over where it says.
        assert!(c.on_connected(&connected(None, 0, true)));
        assert_eq!(c.get(), Some(0));
        c.on_event(Some(1));
        assert_eq!(c.get(), Some(1));
    }
}
