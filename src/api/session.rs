//! Browser sessions for the web app: an API key is exchanged once for a session cookie, and the
//! key never reaches the browser's storage.
//!
//! - `POST /auth/session {"key"}` checks the key and sets `hikitsugi_session` (HttpOnly,
//!   SameSite=Strict, Path=/, Max-Age, and Secure when the request came over HTTPS, directly or
//!   as `X-Forwarded-Proto: https`, or when `server.secure_cookies` is set). The response carries
//!   the principal and a CSRF token that every state-changing request must send back as
//!   `X-CSRF-Token` (`POST`, `PUT`, `PATCH`, `DELETE`; compared in constant time). The sign-in
//!   itself only takes a JSON body (a cross-site form cannot send one) and, when the browser
//!   names an `Origin`, only this service's own.
//! - `POST /auth/assertion` (a form field `assertion`: a trusted issuer's JWT with a `jti`,
//!   posted by a portal page from one of the issuer's `sign_in_origins`) verifies the token,
//!   accepts its `jti` once, sets the same cookie and redirects (303) to `/`; see `web.rs`.
//! - A session holds a [`Principal`] and its [`Actor`] whatever made it: an API key or a
//!   portal's signed user assertion.
//! - Sessions live in memory, by the SHA-256 of their id (a memory dump reveals no cookie), until
//!   they expire (`server.session_ttl_minutes`) or the user signs out; a restart signs everyone
//!   out. At most [`MAX_SESSIONS`] live at once; the oldest go first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::access::{Actor, Principal, Role};

pub const COOKIE_NAME: &str = "hikitsugi_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// Who signed in: an API key, or a user a trusted issuer vouched for.
    pub actor: Actor,
    pub csrf_token: String,
    pub expires_at: u64,
}

/// What the page learns about its session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub org: String,
    pub org_name: String,
    pub role: Role,
    pub user: String,
    pub groups: Vec<String>,
    /// Unix seconds.
    pub expires_at: u64,
    /// Send it back as `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
}

impl Session {
    pub fn info(&self, org_name: String) -> SessionInfo {
        SessionInfo {
            org: self.principal.org().to_owned(),
            org_name,
            role: self.principal.role(),
            user: self.actor.user_id(),
            groups: self.principal.groups().to_vec(),
            expires_at: self.expires_at,
            csrf_token: self.csrf_token.clone(),
        }
    }
}

/// Why a cookie-authenticated request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionRejection {
    /// No cookie, an unknown one, or an expired session.
    NoSession,
    /// A state-changing request without the session's CSRF token.
    CsrfMismatch,
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// 256 bits from the operating system's generator (two v4 UUIDs), as hex.
fn random_token() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("{}{}", a.simple(), b.simple())
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Constant-time equality of two strings' bytes.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            by_hash: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Sessions are replaced whole; a panic elsewhere leaves none half written.
        self.by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `principal`; returns its id (the cookie's value) and the session.
    pub fn create(&self, principal: Principal, actor: Actor) -> (String, Session) {
        let id = random_token();
        let session = Session {
            principal,
            actor,
            csrf_token: random_token(),
            expires_at: now() + self.ttl.as_secs(),
        };
        let mut sessions = self.lock();
        let now = now();
        sessions.retain(|_, session| session.expires_at > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires_at)
                .map(|(key, _)| *key)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(hash(&id), session.clone());
        (id, session)
    }

    /// The session of a request's cookie, checking the CSRF token of state-changing methods.
    /// `Ok(None)` when the request has no session cookie at all.
    pub fn of_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, SessionRejection> {
        let Some(id) = cookie(headers) else {
            return Ok(None);
        };
        let session = self
            .lock()
            .get(&hash(id))
            .filter(|session| session.expires_at > now())
            .cloned()
            .ok_or(SessionRejection::NoSession)?;
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !same(presented, &session.csrf_token) {
                return Err(SessionRejection::CsrfMismatch);
            }
        }
        Ok(Some(session))
    }

    /// Ends the session of a request's cookie, if any.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.lock().remove(&hash(id));
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The session id from the `Cookie` headers.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the request reached us over HTTPS (directly or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` header of a session (or, with `max_age` 0, of its removal).
pub fn set_cookie(
    id: &str,
    max_age: Duration,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    // Only hex, digits and fixed ASCII: always a valid header value.
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

/// A browser's `Origin`, when it sent one, must be this service (`Host`): a sign-in from another
/// site is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get("host")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    !host.is_empty() && authority == host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    HeaderValue::from_str(value).expect("a header value"),
                )
            })
            .collect()
    }

    fn principal() -> Principal {
        crate::access::Directory::new([("pref-hyogo".to_owned(), Vec::new())])
            .member("pref-hyogo", Role::Editor)
            .expect("a known organisation")
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_state_changes_need_its_csrf_token() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (id, session) = sessions.create(
            principal(),
            Actor::Key {
                label: "demo-hyogo".into(),
            },
        );
        let cookie = format!("other=1; {COOKIE_NAME}={id}");
        let get = sessions
            .of_request(&Method::GET, &headers(&[("cookie", &cookie)]))
            .expect("a session")
            .expect("found");
        assert_eq!(get.principal, principal());
        assert_eq!(
            sessions
                .of_request(&Method::POST, &headers(&[("cookie", &cookie)]))
                .unwrap_err(),
            SessionRejection::CsrfMismatch
        );
        assert_eq!(
            sessions
                .of_request(
                    &Method::DELETE,
                    &headers(&[("cookie", &cookie), ("x-csrf-token", "wrong")])
                )
                .unwrap_err(),
            SessionRejection::CsrfMismatch
        );
        assert!(
            sessions
                .of_request(
                    &Method::POST,
                    &headers(&[("cookie", &cookie), ("x-csrf-token", &session.csrf_token)])
                )
                .expect("valid")
                .is_some()
        );
        assert_eq!(
            sessions
                .of_request(
                    &Method::GET,
                    &headers(&[("cookie", "hikitsugi_session=forged")])
                )
                .unwrap_err(),
            SessionRejection::NoSession
        );
        assert!(
            sessions
                .of_request(&Method::GET, &headers(&[]))
                .expect("no cookie")
                .is_none()
        );

        sessions.remove(&headers(&[("cookie", &cookie)]));
        assert_eq!(
            sessions
                .of_request(&Method::GET, &headers(&[("cookie", &cookie)]))
                .unwrap_err(),
            SessionRejection::NoSession
        );
    }

    #[test]
    fn expired_sessions_are_refused() {
        let sessions = Sessions::new(Duration::ZERO);
        let (id, _) = sessions.create(principal(), Actor::Key { label: "x".into() });
        let cookie = format!("{COOKIE_NAME}={id}");
        assert_eq!(
            sessions
                .of_request(&Method::GET, &headers(&[("cookie", &cookie)]))
                .unwrap_err(),
            SessionRejection::NoSession
        );
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        let (_, value) = set_cookie("abc", Duration::from_secs(60), true);
        let value = value.to_str().expect("ASCII");
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(value.contains(part), "{value}");
        }
        assert!(is_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!is_https(&headers(&[])));
    }

    #[test]
    fn only_this_service_may_sign_a_browser_in() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example")
        ])));
    }
}
