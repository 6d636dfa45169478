//! The web app: three static files embedded in the binary (`web/`), served at `/` with a strict
//! Content-Security-Policy, and the session endpoints it signs in with.
//!
//! A portal opens the app already signed in by having its user's browser post a form to
//! `POST /auth/assertion` with a fresh JWT of a trusted issuer (`assertion`). The token travels
//! in a POST body, never in a URL, so it stays out of access logs, browser history and
//! `Referer` headers. The sign-in is refused unless the browser's `Origin` is one of that
//! issuer's `sign_in_origins` (another site cannot sign a victim in to its own account), the
//! token has a `jti` not seen before (a copied token opens no second session), and it passes
//! every check an API bearer token passes. It answers 303 to `/` with the session cookie; the
//! page then reads its session with `GET /auth/session` like after a key sign-in.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::session::{SessionInfo, is_https, same_origin, set_cookie};
use crate::access::Actor;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// Only this origin's own scripts, styles and API; no framing, no plugins, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Assets change with the binary; revalidate rather than serve a stale page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `POST /auth/session`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key; exchanged for a session, never stored by the page.
    pub key: String,
}

/// Exchanges an API key for a session cookie (the web app's sign-in).
#[utoipa::path(
    post,
    path = "/auth/session",
    tag = "web",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionInfo),
        (status = 401, description = "Unknown key", body = ErrorBody),
        (status = 403, description = "Sent from another site", body = ErrorBody),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        tracing::warn!("refused a sign-in from another origin");
        return Err(ApiError::Forbidden);
    }
    let Some((label, principal)) = state.keys.authenticate(request.key.trim()) else {
        tracing::warn!("refused a sign-in with an unknown API key");
        return Err(ApiError::UnknownKey);
    };
    let actor = Actor::Key {
        label: label.to_owned(),
    };
    let (id, session) = state.sessions.create(principal.clone(), actor);
    tracing::info!(user = %session.actor.user_id(), org = %principal.org(), "signed in");
    let secure = state.service.config.server.secure_cookies || is_https(&headers);
    let info = session.info(state.names.organisation(principal.org()));
    Ok(([set_cookie(&id, state.sessions.ttl(), secure)], Json(info)).into_response())
}

/// `POST /auth/assertion`, a form (`application/x-www-form-urlencoded`) a portal's page posts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PortalSignIn {
    /// A JWT of a trusted issuer, with a `jti`; accepted once.
    pub assertion: String,
}

/// Opens the web app signed in as a portal's user: verifies the posted token, sets the session
/// cookie and redirects to the app.
#[utoipa::path(
    post,
    path = "/auth/assertion",
    tag = "web",
    request_body(content = PortalSignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in; the cookie is set and the browser goes to /"),
        (status = 400, description = "Not a form with an assertion", body = ErrorBody),
        (status = 401, description = "The token is not valid, lacks a jti or was used before", body = ErrorBody),
        (status = 403, description = "Posted from an origin the token's issuer does not list", body = ErrorBody),
        (status = 429, description = "The user's or organisation's rate limit is spent", body = ErrorBody),
    )
)]
pub async fn sign_in_with_assertion(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PortalSignIn>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|rejection| ApiError::InvalidRequest {
        message: format!(
            "assertion を含むフォーム（application/x-www-form-urlencoded）で送ってください: {}",
            rejection.body_text()
        ),
    })?;
    let verified = state
        .identity
        .verify(form.assertion.trim())
        .map_err(|error| {
            tracing::warn!(%error, "refused a portal sign-in");
            ApiError::UnknownKey
        })?;
    let issuer = verified.issuer.as_str();
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !state.identity.may_sign_in_from(issuer, origin) {
        tracing::warn!(%issuer, origin, "refused a portal sign-in from an origin the issuer does not list");
        return Err(ApiError::Forbidden);
    }
    let Some(token_id) = verified.token_id.as_deref() else {
        tracing::warn!(%issuer, "refused a portal sign-in: the assertion has no jti");
        return Err(ApiError::UnknownKey);
    };
    if !state
        .used_assertions
        .first_use(issuer, token_id, verified.expires_at)
    {
        tracing::warn!(%issuer, "refused a portal sign-in: the assertion was used before");
        return Err(ApiError::UnknownKey);
    }
    let actor = verified.actor();
    state.rate_limits.check(&actor, verified.principal.org())?;
    let user = actor.user_id();
    let org = verified.principal.org().to_owned();
    let (id, _) = state.sessions.create(verified.principal, actor);
    tracing::info!(%user, %org, "signed in through a portal");
    let secure = state.service.config.server.secure_cookies || is_https(&headers);
    let mut response = Redirect::to("/").into_response();
    let (name, value) = set_cookie(&id, state.sessions.ttl(), secure);
    let response_headers = response.headers_mut();
    response_headers.insert(name, value);
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// The session of this browser.
#[utoipa::path(
    get,
    path = "/auth/session",
    tag = "web",
    responses(
        (status = 200, description = "Signed in", body = SessionInfo),
        (status = 401, description = "No session, or it expired", body = ErrorBody),
    )
)]
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    match state
        .sessions
        .of_request(&axum::http::Method::GET, &headers)
    {
        Ok(Some(session)) => {
            let org_name = state.names.organisation(session.principal.org());
            Ok(Json(session.info(org_name)))
        }
        Ok(None) => Err(ApiError::MissingKey),
        Err(_) => Err(ApiError::SessionExpired),
    }
}

/// Signs out: ends the session and clears the cookie (needs the CSRF token).
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "web",
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, description = "Without the session's CSRF token", body = ErrorBody),
    )
)]
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(super::session::SessionRejection::CsrfMismatch) = state
        .sessions
        .of_request(&axum::http::Method::POST, &headers)
    {
        return ApiError::CsrfMismatch.into_response();
    }
    state.sessions.remove(&headers);
    let secure = state.service.config.server.secure_cookies || is_https(&headers);
    (
        StatusCode::NO_CONTENT,
        [set_cookie("", Duration::ZERO, secure)],
    )
        .into_response()
}
