//! The part of the route table two places need: the prefixes the API is served under and the
//! session stream's route. [`super::router`] nests and registers from these, and `serve`
//! recognises a stream request from the same, so the two cannot name different paths.
//!
//! Recognising is all `serve` does with them: it hands a recognised request to the router
//! itself (see there), which matches, decodes and answers it as it would through hyper.

use axum::Router;

/// The prefixes the API is nested under; each serves every API route.
pub use crate::api::API_PREFIXES;

/// The session event stream's route inside the API; `{id}` is one path segment.
pub const SESSION_EVENTS: &str = "/agents/{id}/events";

/// The API routes nested under every prefix of [`API_PREFIXES`].
pub(super) fn nest<S: Clone + Send + Sync + 'static>(
    outer: Router<S>,
    api: &Router<S>,
) -> Router<S> {
    API_PREFIXES
        .iter()
        .fold(outer, |outer, prefix| outer.nest(prefix, api.clone()))
}

/// Whether a raw request path (percent-encoded, as the router matches it) is the session
/// stream's route under one of the prefixes: `{id}` matches one segment, as the router's
/// matcher does (an empty one too: `agents//events` reaches the handler, which finds no such
/// session), and is decoded by the router, not here.
pub(super) fn is_session_events(path: &str) -> bool {
    let Some((before, after)) = SESSION_EVENTS.split_once("{id}") else {
        return false;
    };
    API_PREFIXES
        .iter()
        .filter_map(|prefix| path.strip_prefix(prefix)?.strip_prefix(before))
        .filter_map(|rest| rest.strip_suffix(after))
        .any(|id| !id.contains('/'))
}

/// Whether a request path is the admin side: the admin API under any prefix, or `/metrics`.
/// Browsers reach it only from `[gateway] admin_cors_origins` (see `cors` and `guard`).
pub(super) fn is_admin(path: &str) -> bool {
    path == "/metrics"
        || API_PREFIXES.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest == "/admin" || rest.starts_with("/admin/"))
        })
}

#[cfg(test)]
mod tests {
    use super::{SESSION_EVENTS, is_session_events, nest};
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use hyper::service::Service as _;
    use hyper_util::service::TowerToHyperService;

    /// Paths the matcher might get wrong: encodings, empty and extra segments, case, slashes.
    fn tricky(prefix: &str) -> Vec<String> {
        let tails = [
            "/agents/s-1/events",
            "/agents/%73-1/events",
            "/agents/a%2Fb/events",
            "/agents/%FF/events",
            "/agents/%zz/events",
            "/agents/s-1/%65vents",
            "/agents/s-1/events/",
            "/agents/s-1/Events",
            "/agents//events",
            "/agents/a/b/events",
            "//agents/s-1/events",
            "/agents/s-1",
            "/agents/events",
        ];
        tails.iter().map(|t| format!("{prefix}{t}")).collect()
    }

    /// The recogniser against axum's own matcher, under every prefix and some that are not.
    #[tokio::test]
    async fn the_router_serves_the_stream_route_exactly_where_serve_recognises_it() {
        let api = Router::new()
            .route(SESSION_EVENTS, get(|| async { "stream" }))
            .route("/agents/{id}", get(|| async { "session" }));
        let app = TowerToHyperService::new(nest(Router::new(), &api));
        let prefixes = super::API_PREFIXES.iter().copied();
        let others = ["/api/v2", "/API/v1", "/api", "", "/lobu"];
        for path in prefixes.chain(others).flat_map(tricky) {
            let req = Request::get(&path).body(Body::empty()).unwrap();
            let res = app.call(req).await.unwrap();
            let ok = res.status() == StatusCode::OK;
            let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            let routed = ok && &body[..] == b"stream";
            assert_eq!(is_session_events(&path), routed, "{path}");
        }
    }
}
