//! Who may ask at all, before any route runs: the `Host` a request is addressed to and the
//! `Origin` a browser adds, as one of the router's layers: both serving paths run it (the direct
//! stream path in `serve` hands its request to the router too).
//!
//! Why: with no `[[tokens]]` the gateway trusts whoever reaches its loopback port, and a web
//! page in a local browser reaches it too. A cross-site page can send requests (a `POST` with
//! an empty body needs no CORS preflight) and a DNS-rebinding page can even read the answers,
//! its own host name now resolving to 127.0.0.1. A browser always says which `Host` it thinks
//! it talks to and, for cross-site requests, which `Origin` sent it; neither can be forged by
//! the page. So in that mode a request must be addressed to a loopback name, and a request
//! from a browser page must come from the gateway's own origin or one configured for its route
//! (`[gateway] cors_origins` for the Agent API, `admin_cors_origins` for the admin API and
//! `/metrics`: see `cors`). With tokens configured a browser sends no bearer token by itself,
//! so only the `Host` presence rule applies, and CORS alone decides what a page may read.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header, uri::Authority};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::error::ApiError;
use super::{AppState, cors};
use crate::api::ErrorCode;

/// The router's layer: [`admit`] or its error.
pub(super) async fn layer(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match admit(&app, req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Checks a request's `Host` and `Origin` against the gateway's trust mode.
fn admit(app: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let gateway = &app.config.gateway;
    let allowed = cors::origins_for(
        &gateway.cors_origins,
        &gateway.admin_cors_origins,
        uri.path(),
    );
    check(!app.tokens.is_enabled(), allowed, uri, headers)
}

/// [`admit`] with its inputs spelled out: `open` is loopback-trust mode (no tokens).
pub(super) fn check(
    open: bool,
    allowed: &[String],
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(ApiError::invalid(
            "a request must carry exactly one Host header",
        ));
    };
    let host = host.to_str().unwrap_or_default();
    if !open {
        return Ok(());
    }
    // An absolute-form request target names the host itself (RFC 9112 §3.2.2): check both.
    let named = std::iter::once(host).chain(uri.authority().map(Authority::as_str));
    if let Some(bad) = named.into_iter().find(|h| !is_loopback_host(h)) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::HostNotAllowed,
            format!(
                "with no [[tokens]] configured the gateway answers only requests addressed to \
                 localhost, 127.0.0.1 or [::1]; `{bad}` is not one"
            ),
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    if is_own_origin(origin, host) || cors::is_listed(origin, allowed) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::OriginNotAllowed,
        format!(
            "requests from the web origin `{origin}` are not allowed; \
             list it in [gateway] cors_origins (admin_cors_origins for the admin API) to allow it"
        ),
    ))
}

/// `localhost`, `127.x.x.x` or `[::1]`, with any port.
fn is_loopback_host(host: &str) -> bool {
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// The gateway's own origin as the browser sees it: plain HTTP to the (loopback) `Host` the
/// request was sent to.
fn is_own_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
            h.append(name, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn code(open: bool, uri: &str, pairs: &[(&str, &str)]) -> Option<u16> {
        let allowed = ["https://app.example".to_owned()];
        check(open, &allowed, &uri.parse().unwrap(), &headers(pairs))
            .err()
            .map(|e| e.status().as_u16())
    }

    #[test]
    fn loopback_names_pass_and_others_are_misdirected() {
        for host in [
            "localhost",
            "LOCALHOST:7420",
            "127.0.0.1",
            "127.8.9.10:1",
            "[::1]:7420",
        ] {
            assert_eq!(code(true, "/healthz", &[("host", host)]), None, "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7420",
            "128.0.0.1",
            "[::2]",
            "localhost.evil.example",
            "user@localhost",
            "",
        ] {
            assert_eq!(
                code(true, "/healthz", &[("host", host)]),
                Some(421),
                "{host}"
            );
            assert_eq!(code(false, "/healthz", &[("host", host)]), None, "{host}");
        }
        let absolute = "http://evil.example/healthz";
        assert_eq!(code(true, absolute, &[("host", "localhost")]), Some(421));
    }

    #[test]
    fn host_is_required_once_in_every_mode() {
        for open in [true, false] {
            assert_eq!(code(open, "/healthz", &[]), Some(400));
            let two = [("host", "localhost"), ("host", "127.0.0.1")];
            assert_eq!(code(open, "/healthz", &two), Some(400));
        }
    }

    #[test]
    fn only_the_own_and_listed_origins_pass() {
        let host = ("host", "127.0.0.1:7420");
        let ok = [
            "http://127.0.0.1:7420",
            "https://app.example",
            "HTTPS://APP.EXAMPLE",
        ];
        for origin in ok {
            assert_eq!(
                code(true, "/", &[host, ("origin", origin)]),
                None,
                "{origin}"
            );
        }
        let bad = [
            "https://evil.example",
            "null",
            "http://localhost:7420",
            "http://127.0.0.1:7421",
            "https://127.0.0.1:7420",
        ];
        for origin in bad {
            assert_eq!(
                code(true, "/", &[host, ("origin", origin)]),
                Some(403),
                "{origin}"
            );
            assert_eq!(
                code(false, "/", &[host, ("origin", origin)]),
                None,
                "{origin}"
            );
        }
    }
}
