//! CORS: which web pages may read the gateway's answers. A browser lets a page of another
//! origin read a response only when the response names that origin; before a request that
//! carries `Authorization` or JSON it asks first (a preflight `OPTIONS`).
//!
//! The Agent API and its streams answer the origins of `[gateway] cors_origins`; the admin API
//! and `/metrics`, those of `admin_cors_origins` only (none by default). A request from an
//! origin not listed for its route passes by this layer untouched: no CORS header at all, so
//! the browser keeps the answer from the page (and its preflight gets the router's `405`).
//! Listed ones are answered by `tower-http`'s CORS layer. Exact origins only: no wildcard, no
//! credentials (the API's credentials are bearer tokens and tickets, never cookies).

use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::routes;
use crate::config::GatewayConfig;

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The listed origins and the layer that answers them.
pub(super) struct Cors {
    agents: Vec<String>,
    admin: Vec<String>,
    layer: CorsLayer,
}

impl Cors {
    /// From the `[gateway]` table.
    pub(super) fn new(gateway: &GatewayConfig) -> Self {
        let layer = CorsLayer::new()
            // Only listed origins reach the layer (see [`layer`]): it names the one asking.
            .allow_origin(AllowOrigin::mirror_request())
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE);
        Self {
            agents: gateway.cors_origins.clone(),
            admin: gateway.admin_cors_origins.clone(),
            layer,
        }
    }
}

/// The router's layer: CORS for an origin listed for the request's route, nothing otherwise.
pub(super) async fn layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let listed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| is_listed(o, origins_for(&cors.agents, &cors.admin, req.uri().path())));
    if !listed {
        return next.run(req).await;
    }
    match cors.layer.layer(next).oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The origins listed for a route: the admin list for the admin API and `/metrics`, the
/// Agent API's otherwise.
pub(super) fn origins_for<'a>(
    agents: &'a [String],
    admin: &'a [String],
    path: &str,
) -> &'a [String] {
    if routes::is_admin(path) {
        admin
    } else {
        agents
    }
}

/// Whether `origin` is one of `listed` (ASCII case aside, a trailing `/` in the list aside).
pub(super) fn is_listed(origin: &str, listed: &[String]) -> bool {
    listed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}
