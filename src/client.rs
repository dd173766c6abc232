//! A typed client for the gateway's HTTP and SSE surfaces, shared by the CLI (and the console).

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{CreateSession, ErrorBody, MessageQueued, PostMessage, SessionCreated};

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
    /// The gateway answered with an error.
    #[error("{message} (HTTP {status}, code {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine code.
        code: String,
        /// The gateway's sentence.
        message: String,
    },
    /// The answer was not what the protocol says.
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
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
    pub fn on_connected(&mut self, data: &Value) -> bool {
        let gap = data["gap"] == true;
        if gap || self.0.is_none() {
            self.0 = data["lastEventId"].as_i64();
        }
        gap
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

    /// `POST /api/v1/agents`.
    pub async fn create_session(&self, req: &CreateSession) -> Result<SessionCreated, ClientError> {
        let r = self
            .with_auth(self.http.post(self.url("/api/v1/agents")), None)
            .json(req);
        self.send(r).await
    }

    /// `POST /api/v1/agents/{id}/messages` with the session's token.
    pub async fn post_message(
        &self,
        session: &str,
        token: &str,
        content: &str,
        message_id: Option<String>,
    ) -> Result<MessageQueued, ClientError> {
        let body = PostMessage {
            content: Some(content.to_owned()),
            message_id,
        };
        let r = self
            .http
            .post(self.url(&format!("/api/v1/agents/{session}/messages")));
        self.send(self.with_auth(r, Some(token)).json(&body)).await
    }

    /// `POST` with a JSON body to any path, returning the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(
            self.with_auth(self.http.post(self.url(path)), None)
                .json(body),
        )
        .await
    }

    /// Compare-and-kills the worker's process named in `req` (202 when sent; the exit follows
    /// as `worker.exited`).
    pub async fn kill(
        &self,
        worker: &str,
        req: &crate::api::admin::KillRequest,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.post_json(&format!("/api/v1/admin/workers/{worker}/kill"), &body)
            .await
    }

    /// Cancels a turn.
    pub async fn cancel(
        &self,
        turn: &str,
        req: &crate::api::admin::CancelRequest,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.post_json(&format!("/api/v1/admin/turns/{turn}/cancel"), &body)
            .await
    }

    /// `GET` any path, decoding the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.with_auth(self.http.get(self.url(path)), None))
            .await
    }

    /// Opens a session's event stream, resuming after `last_event_id` if given.
    pub async fn events(
        &self,
        session: &str,
        token: &str,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        let path = format!("/api/v1/agents/{session}/events");
        self.open_sse(&path, Some(token), last_event_id).await
    }

    /// Opens the admin event stream (`snapshot` first when there is no cursor).
    pub async fn admin_events(
        &self,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        self.open_sse("/api/v1/admin/events", None, last_event_id)
            .await
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
    use serde_json::json;

    #[test]
    fn the_cursor_starts_where_connected_says_and_only_moves_forward() {
        let mut c = Cursor::default();
        assert!(!c.on_connected(&json!({ "resumedFrom": null, "lastEventId": 7 })));
        assert_eq!(
            c.get(),
            Some(7),
            "no event yet: resume from where we connected"
        );
        c.on_event(Some(5)); // an owed event of a turn in flight
        c.on_event(None); // a ping
        assert_eq!(c.get(), Some(7));
        c.on_event(Some(9));
        assert!(!c.on_connected(&json!({ "resumedFrom": 9, "lastEventId": 9 })));
        assert_eq!(c.get(), Some(9));
        // The gateway's log does not reach our cursor: it starts over where it says.
        assert!(c.on_connected(&json!({ "resumedFrom": null, "gap": true, "lastEventId": 0 })));
        assert_eq!(c.get(), Some(0));
        c.on_event(Some(1));
        assert_eq!(c.get(), Some(1));
    }
}
