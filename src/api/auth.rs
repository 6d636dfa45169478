//! Who is calling: a credential from `Authorization: Bearer …` or `X-API-Key: …`, or else the
//! web app's session cookie (see `session.rs`, which also checks the CSRF token of
//! state-changing requests). A credential shaped like a JWT (three base64url parts) is verified
//! against the trusted issuers (`crate::identity`); any other is an API key, looked up in the
//! key ring. A bad token and an unknown key get the same 401; why a token was refused goes to
//! the log only. Keys and tokens never reach the log; key labels and user ids do.
//!
//! Once the caller is known, it is noted for the request's audit record (`audit.rs`), then its
//! rate limits are spent (`limits.rs`): every route that authenticates a caller is rate
//! limited, and no other.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use super::AppState;
use super::audit::AuditNote;
use super::error::ApiError;
use super::session::SessionRejection;
use crate::access::{Actor, Principal};
use crate::identity::looks_like_jwt;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The authenticated caller of a request. Extracting it before the body means an anonymous
/// request gets 401 whatever its body. Only this extractor makes principals for the API.
pub struct Caller {
    pub principal: Principal,
    /// Who acts: the API key, or the user a token or a portal sign-in named.
    pub actor: Actor,
    /// What the handler tells the request's audit record (nothing on routes not audited).
    pub audit: AuditNote,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (actor, principal) = match presented_key(&parts.headers) {
            Some(token) if looks_like_jwt(token) => match state.identity.verify(token) {
                Ok(verified) => (verified.actor(), verified.principal),
                Err(error) => {
                    tracing::warn!(%error, "rejected a bearer token");
                    return Err(ApiError::UnknownKey);
                }
            },
            Some(presented) => match state.keys.authenticate(presented) {
                Some((label, principal)) => (
                    Actor::Key {
                        label: label.to_owned(),
                    },
                    principal.clone(),
                ),
                None => {
                    tracing::warn!("rejected an unknown API key");
                    return Err(ApiError::UnknownKey);
                }
            },
            None => match state.sessions.of_request(&parts.method, &parts.headers) {
                Ok(Some(session)) => (session.actor, session.principal),
                Ok(None) => return Err(ApiError::MissingKey),
                Err(SessionRejection::NoSession) => return Err(ApiError::SessionExpired),
                Err(SessionRejection::CsrfMismatch) => {
                    tracing::warn!("rejected a session request without its CSRF token");
                    return Err(ApiError::CsrfMismatch);
                }
            },
        };
        let span = tracing::Span::current();
        span.record("api_key", actor.user_id());
        if let Some(issuer) = actor.issuer() {
            span.record("issuer", issuer);
        }
        span.record("org", principal.org());
        let audit = AuditNote::of(&parts.extensions);
        audit.caller(principal.org(), &actor);
        state.rate_limits.check(&actor, principal.org())?;
        Ok(Self {
            principal,
            actor,
            audit,
        })
    }
}

/// The key of a request: the bearer token, else the `X-API-Key` header.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        });
    bearer
        .or_else(|| headers.get(X_API_KEY).and_then(|value| value.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn a_key_comes_from_the_bearer_token_or_the_api_key_header() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "xyz")])),
            Some("xyz")
        );
        assert_eq!(
            presented_key(&headers(&[
                ("authorization", "Basic abc"),
                ("x-api-key", "xyz")
            ])),
            Some("xyz")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }
}
