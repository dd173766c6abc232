//! One typed method per route: the only place the client spells a path.

use futures::Stream;
use serde::Serialize;

use super::{API, Client, ClientError, Cursor, Resuming, SseEvent, seg};
use crate::api::SessionEvent;
use crate::api::admin::{
    CancelRequest, Cancelled, KillAccepted, KillRequest, ListQuery, Overview, Page, ReplicaInfo,
    TurnDetail, TurnInfo, WorkerDetail, WorkerInfo,
};
use crate::api::lifecycle::AdminStreamEvent;
use crate::api::{
    CreateSession, MessageQueued, PostMessage, SessionCreated, SessionDeleted, SessionInfo,
};

impl Client {
    async fn post<B: Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Result<T, ClientError> {
        let req = self.http.post(self.url(path)).json(body);
        self.send(self.with_auth(req, token)).await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<T, ClientError> {
        self.send(self.with_auth(self.http.get(self.url(path)), token))
            .await
    }

    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        q: &ListQuery,
    ) -> Result<Page<T>, ClientError> {
        let req = self.with_auth(self.http.get(self.url(path)).query(q), None);
        self.send(req).await
    }

    /// `GET` any path, decoding the JSON answer: for raw reads of the wire (tests, scripts);
    /// every route has a typed method.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        self.get(path, None).await
    }

    /// `POST` a JSON body to any path, returning the JSON answer (as [`Client::get_json`]).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(path, None, body).await
    }

    /// `POST /api/v1/agents`: a session (or the thread's existing one).
    pub async fn create_session(&self, req: &CreateSession) -> Result<SessionCreated, ClientError> {
        self.post(&format!("{API}/agents"), None, req).await
    }

    /// `GET /api/v1/agents/{id}` with the session's token.
    pub async fn session(&self, session: &str, token: &str) -> Result<SessionInfo, ClientError> {
        self.get(&format!("{API}/agents/{}", seg(session)), Some(token))
            .await
    }

    /// `DELETE /api/v1/agents/{id}` with the session's token.
    pub async fn delete_session(
        &self,
        session: &str,
        token: &str,
    ) -> Result<SessionDeleted, ClientError> {
        let path = format!("{API}/agents/{}", seg(session));
        let req = self.with_auth(self.http.delete(self.url(&path)), Some(token));
        self.send(req).await
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
            ..Default::default()
        };
        let path = format!("{API}/agents/{}/messages", seg(session));
        self.post(&path, Some(token), &body).await
    }

    /// `GET /api/v1/admin/overview`.
    pub async fn overview(&self) -> Result<Overview, ClientError> {
        self.get(&format!("{API}/admin/overview"), None).await
    }

    /// `GET /api/v1/admin/replicas`: the replicas sharing the store (live, stopping, lost).
    pub async fn replicas(&self) -> Result<Page<ReplicaInfo>, ClientError> {
        self.get(&format!("{API}/admin/replicas"), None).await
    }

    /// `GET /api/v1/admin/workers`: one page of worker generations, newest first.
    pub async fn workers(&self, q: &ListQuery) -> Result<Page<WorkerInfo>, ClientError> {
        self.list(&format!("{API}/admin/workers"), q).await
    }

    /// `GET /api/v1/admin/workers/{id}`.
    pub async fn worker(&self, worker: &str) -> Result<WorkerDetail, ClientError> {
        self.get(&format!("{API}/admin/workers/{}", seg(worker)), None)
            .await
    }

    /// `GET /api/v1/admin/turns`: one page of turns, newest first.
    pub async fn turns(&self, q: &ListQuery) -> Result<Page<TurnInfo>, ClientError> {
        self.list(&format!("{API}/admin/turns"), q).await
    }

    /// `GET /api/v1/admin/turns/{id}`: the turn and its timeline.
    pub async fn turn(&self, turn: &str) -> Result<TurnDetail, ClientError> {
        self.get(&format!("{API}/admin/turns/{}", seg(turn)), None)
            .await
    }

    /// Compare-and-kills the worker's process named in `req` (202 when sent; the exit follows
    /// as `worker.exited`).
    pub async fn kill(&self, worker: &str, req: &KillRequest) -> Result<KillAccepted, ClientError> {
        let path = format!("{API}/admin/workers/{}/kill", seg(worker));
        self.post(&path, None, req).await
    }

    /// Cancels a turn.
    pub async fn cancel(&self, turn: &str, req: &CancelRequest) -> Result<Cancelled, ClientError> {
        let path = format!("{API}/admin/turns/{}/cancel", seg(turn));
        self.post(&path, None, req).await
    }

    /// Opens a session's event stream once, resuming after `last_event_id` if given (for a
    /// stream that resumes itself, [`Client::session_stream`]).
    pub async fn events(
        &self,
        session: &str,
        token: &str,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        let path = format!("{API}/agents/{}/events", seg(session));
        self.open_sse(&path, Some(token), last_event_id).await
    }

    /// Opens the admin event stream once (`snapshot` first when there is no cursor; for a
    /// stream that resumes itself, [`Client::admin_stream`]).
    pub async fn admin_events(
        &self,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        self.open_sse(&format!("{API}/admin/events"), None, last_event_id)
            .await
    }

    /// A session's event stream that resumes itself from `cursor` (see [`Resuming`]).
    pub fn session_stream(
        &self,
        session: &str,
        token: &str,
        cursor: Cursor,
    ) -> Resuming<SessionEvent> {
        let path = format!("{API}/agents/{}/events", seg(session));
        Resuming::new(self.clone(), path, Some(token.to_owned()), cursor)
    }

    /// The admin event stream, resuming itself from `cursor` (a snapshot first without one).
    pub fn admin_stream(&self, cursor: Option<i64>) -> Resuming<AdminStreamEvent> {
        let mut c = Cursor::default();
        c.reset(cursor);
        Resuming::new(self.clone(), format!("{API}/admin/events"), None, c)
    }
}
