//! Trusted issuers, per-user principals, portal sign-in and rate limits, on the shared server.
//!
//! The keys are made here, at the start of the run: an RSA key (RS256) and a P-256 key
//! (ES256) for the `portal` issuer, an Ed25519 key for the `idp` issuer (EdDSA, with its own claim names), and another
//! Ed25519 key for `rotating`, whose JWKS file the rotation test replaces. `add_test_issuers`
//! writes the JWKS files and adds the three issuers to the shared server's configuration.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hikitsugi::access::Role;
use hikitsugi::config::{Config, IssuerConfig, RateLimitConfig, SigningAlgorithm};
use hikitsugi::service::Service;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{
    DOC_003, HYOGO_KEY, PUBLIC_KEY, WAKAYAMA_ADMIN_KEY, WAKAYAMA_KEY, WAKAYAMA_QUESTION, base_url,
    doc_ids, get, post_json, send, url,
};

const AUDIENCE: &str = "hikitsugi-test";
const PORTAL_ISS: &str = "https://portal.test";
const PORTAL_ORIGIN: &str = "https://portal.test";
const IDP_ISS: &str = "https://idp.test";
const ROTATING_ISS: &str = "https://rotating.test";

/// A signing key and the kid its JWKS entry has.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

struct TestIssuers {
    /// Holds the JWKS files.
    dir: tempfile::TempDir,
    portal: SigningKey,
    /// The portal's second key, of another algorithm.
    portal_es256: SigningKey,
    idp: SigningKey,
    rotating: SigningKey,
}

/// The Ed25519 PKCS#8 prefix before the 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn signing_key(kid: &str, algorithm: Algorithm, key: EncodingKey) -> SigningKey {
    let mut jwk = Jwk::from_encoding_key(&key, algorithm).expect("a public JWK");
    jwk.common.key_id = Some(kid.to_owned());
    SigningKey {
        kid: kid.to_owned(),
        algorithm,
        key,
        jwk,
    }
}

fn rsa_key(kid: &str) -> SigningKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("an RSA key");
    let der = private.to_pkcs1_der().expect("PKCS#1 DER");
    signing_key(
        kid,
        Algorithm::RS256,
        EncodingKey::from_rsa_der(der.as_bytes()),
    )
}

fn ed25519_key(kid: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random bytes");
    let der = [ED25519_PKCS8_PREFIX.as_slice(), &seed].concat();
    signing_key(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
}

fn p256_key(kid: &str) -> SigningKey {
    use p256::pkcs8::EncodePrivateKey;
    // Random bytes below the curve's order are a private key: all but about 2^-32 of them.
    let secret = std::iter::repeat_with(|| {
        let mut scalar = [0u8; 32];
        getrandom::fill(&mut scalar).expect("random bytes");
        p256::SecretKey::from_slice(&scalar).ok()
    })
    .flatten()
    .next()
    .expect("a P-256 key");
    let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
    signing_key(
        kid,
        Algorithm::ES256,
        EncodingKey::from_ec_der(der.as_bytes()),
    )
}

fn write_jwks(path: &std::path::Path, keys: &[&SigningKey]) {
    let set = JwkSet {
        keys: keys.iter().map(|key| key.jwk.clone()).collect(),
    };
    // Written beside, then renamed: a reader never sees half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec(&set).expect("JSON")).expect("the JWKS written");
    std::fs::rename(&partial, path).expect("the JWKS in place");
}

fn issuers() -> &'static TestIssuers {
    static ISSUERS: OnceLock<TestIssuers> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("api-e2e-jwks-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a JWKS directory");
        let issuers = TestIssuers {
            portal: rsa_key("rsa-1"),
            portal_es256: p256_key("ec-1"),
            idp: ed25519_key("ed-1"),
            rotating: ed25519_key("rotating-1"),
            dir,
        };
        write_jwks(
            &issuers.jwks("portal"),
            &[&issuers.portal, &issuers.portal_es256],
        );
        write_jwks(&issuers.jwks("idp"), &[&issuers.idp]);
        write_jwks(&issuers.jwks("rotating"), &[&issuers.rotating]);
        issuers
    })
}

impl TestIssuers {
    fn jwks(&self, issuer: &str) -> PathBuf {
        self.dir.path().join(format!("{issuer}.jwks.json"))
    }
}

fn issuer_config(id: &str, issuer: &str, organisations: &[&str]) -> IssuerConfig {
    IssuerConfig {
        id: id.to_owned(),
        issuer: issuer.to_owned(),
        audience: AUDIENCE.to_owned(),
        jwks_file: issuers().jwks(id),
        algorithms: vec![SigningAlgorithm::RS256],
        user_claim: "sub".to_owned(),
        org_claim: "org".to_owned(),
        groups_claim: "groups".to_owned(),
        organisations: organisations.iter().map(|org| (*org).to_owned()).collect(),
        role_claim: "role".to_owned(),
        roles: Default::default(),
        max_lifetime_minutes: 10,
        sign_in_origins: Vec::new(),
    }
}

/// The test issuers, added to the shared server's configuration by `prepare_service`.
pub fn add_test_issuers(config: &mut Config) {
    let portal = IssuerConfig {
        algorithms: vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256],
        roles: [("hikitsugi-editor".to_owned(), Role::Editor)].into(),
        sign_in_origins: vec![PORTAL_ORIGIN.to_owned()],
        ..issuer_config("portal", PORTAL_ISS, &["pref-wakayama", "pref-hyogo"])
    };
    let idp = IssuerConfig {
        algorithms: vec![SigningAlgorithm::EdDSA],
        user_claim: "uid".to_owned(),
        org_claim: "tenant".to_owned(),
        groups_claim: "teams".to_owned(),
        ..issuer_config("idp", IDP_ISS, &["pref-wakayama"])
    };
    let rotating = IssuerConfig {
        algorithms: vec![SigningAlgorithm::EdDSA],
        ..issuer_config("rotating", ROTATING_ISS, &["pref-wakayama"])
    };
    config.issuers.extend([portal, idp, rotating]);
}

/// The shared server's service, for routers with other limits on the same store and model.
static SHARED_SERVICE: OnceLock<Service> = OnceLock::new();

/// Called by `prepare_service` once the service is open.
pub fn share_service(service: &Service) {
    let _ = SHARED_SERVICE.set(service.clone());
}

pub fn shared_service() -> &'static Service {
    base_url();
    SHARED_SERVICE.get().expect("prepare_service shared it")
}

/// Unix seconds, once the shared server is up: starting it takes minutes, which would age the
/// tokens a test signs before its first request.
fn now() -> u64 {
    base_url();
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims of a valid portal token for `user` of `org`, living 5 minutes.
fn claims(user: &str, org: &str) -> Value {
    let now = now();
    json!({
        "iss": PORTAL_ISS,
        "aud": AUDIENCE,
        "sub": user,
        "org": org,
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let header = Header {
        kid: Some(key.kid.clone()),
        ..Header::new(key.algorithm)
    };
    jsonwebtoken::encode(&header, claims, &key.key).expect("a signed token")
}

pub fn portal_token(user: &str, org: &str) -> String {
    sign(&issuers().portal, &claims(user, org))
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().expect("an object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

#[tokio::test]
async fn a_token_for_a_wakayama_user_reads_wakayama_documents_and_feedback_names_the_user() {
    let query = json!({ "query": WAKAYAMA_QUESTION, "top_k": 10 });
    let wakayama = portal_token("tanaka", "pref-wakayama");
    let found = post_json("/v1/search", Some(&wakayama), query.clone()).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(doc_ids(&found.body["passages"]).contains(DOC_003));

    // The same issuer speaking for 兵庫県 gets 兵庫県's scope, without 和歌山県's report.
    let hyogo = portal_token("yamada", "pref-hyogo");
    let other = post_json("/v1/search", Some(&hyogo), query.clone()).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert!(!doc_ids(&other.body["passages"]).contains(DOC_003));

    // An Ed25519 issuer with its own claim names.
    let now = now();
    let idp = sign(
        &issuers().idp,
        &json!({ "iss": IDP_ISS, "aud": AUDIENCE, "uid": "suzuki@example.jp",
                 "tenant": "pref-wakayama", "iat": now, "exp": now + 60 }),
    );
    let found = post_json("/v1/search", Some(&idp), query).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(doc_ids(&found.body["passages"]).contains(DOC_003));

    // Feedback records the token's user as `<issuer>:<user>`.
    let asked = post_json(
        "/v1/ask",
        Some(&wakayama),
        json!({ "question": WAKAYAMA_QUESTION }),
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let citations: Vec<Value> = asked.body["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .map(|c| json!({ "doc_id": c["doc_id"], "version": c["version"] }))
        .collect();
    let stored = post_json(
        "/v1/feedback",
        Some(&wakayama),
        json!({
            "question": WAKAYAMA_QUESTION,
            "answer": asked.body["answer"],
            "mode": asked.body["mode"],
            "found": asked.body["found"],
            "rating": "up",
            "citations": citations,
        }),
    )
    .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.body);
    let listed = get("/v1/feedback", Some(WAKAYAMA_ADMIN_KEY)).await;
    let entry = listed.body["feedback"]
        .as_array()
        .expect("feedback")
        .iter()
        .find(|entry| entry["id"] == stored.body["id"])
        .cloned()
        .expect("the feedback is listed");
    assert_eq!(entry["user"], "portal:tanaka");
    assert_eq!(entry["org"], "pref-wakayama");
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401_as_an_unknown_api_key() {
    let unknown_key = get("/v1/documents", Some("no-such-key")).await;
    assert_eq!(unknown_key.status, StatusCode::UNAUTHORIZED);

    let portal = &issuers().portal;
    let valid = claims("tanaka", "pref-wakayama");
    let now = now();
    let tampered = {
        let token = sign(portal, &valid);
        let parts: Vec<&str> = token.split('.').collect();
        let payload = encode_part(&with(valid.clone(), json!({ "org": "pref-hyogo" })));
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let unsigned = format!(
        "{}.{}.",
        encode_part(&json!({ "alg": "none", "typ": "JWT", "kid": portal.kid })),
        encode_part(&valid)
    );
    // HS256 with the published public key as the secret: what a confused verifier accepts.
    let public_jwks = std::fs::read(issuers().jwks("portal")).expect("the JWKS");
    let hmac_with_public_key = jsonwebtoken::encode(
        &Header {
            kid: Some(portal.kid.clone()),
            ..Header::new(Algorithm::HS256)
        },
        &valid,
        &EncodingKey::from_secret(&public_jwks).expect("an HMAC key"),
    )
    .expect("an HS256 token");
    let unknown_kid = {
        let stranger = ed25519_key("unknown-kid");
        sign(
            &stranger,
            &with(
                valid.clone(),
                json!({ "iss": IDP_ISS, "uid": "x", "tenant": "pref-wakayama" }),
            ),
        )
    };
    // The right kid, signed by another key.
    let wrong_key = sign(&rsa_key(&portal.kid), &valid);
    let changed = |changes: Value| sign(portal, &with(valid.clone(), changes));
    let bad_tokens = [
        (
            "an organisation the issuer may not assert",
            changed(json!({ "org": "guest" })),
        ),
        (
            "an organisation nobody configured",
            changed(json!({ "org": "pref-nowhere" })),
        ),
        (
            "expired",
            changed(json!({ "iat": now - 600, "exp": now - 120 })),
        ),
        ("not yet valid", changed(json!({ "nbf": now + 300 }))),
        (
            "living longer than allowed",
            changed(json!({ "exp": now + 3600 })),
        ),
        ("without iat", changed(json!({ "iat": null }))),
        (
            "wrong audience",
            changed(json!({ "aud": "another-service" })),
        ),
        (
            "wrong issuer",
            changed(json!({ "iss": "https://evil.test" })),
        ),
        ("without a user", changed(json!({ "sub": null }))),
        (
            "an RS256 token of an EdDSA-only issuer",
            changed(json!({ "iss": IDP_ISS })),
        ),
        ("an unknown kid", unknown_kid),
        ("signed by another key", wrong_key),
        ("a tampered payload", tampered),
        ("alg none", unsigned),
        ("HS256 signed with the public key", hmac_with_public_key),
    ];
    for (what, token) in bad_tokens {
        let reply = get("/v1/documents", Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
        assert_eq!(reply.body, unknown_key.body, "{what}");
        assert_eq!(
            reply.headers.get("www-authenticate"),
            unknown_key.headers.get("www-authenticate"),
            "{what}"
        );
    }
    // The valid token itself passes, so each refusal above is its one change.
    assert_eq!(
        get("/v1/documents", Some(&sign(portal, &valid)))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_rotated_jwks_file_is_picked_up_without_a_restart() {
    let issuers = issuers();
    let now = now();
    let claims = json!({ "iss": ROTATING_ISS, "aud": AUDIENCE, "sub": "kato",
                         "org": "pref-wakayama", "iat": now, "exp": now + 120 });
    let old = sign(&issuers.rotating, &claims);
    assert_eq!(
        get("/v1/documents", Some(&old)).await.status,
        StatusCode::OK
    );

    let replacement = ed25519_key("rotating-2");
    let new = sign(&replacement, &claims);
    assert_eq!(
        get("/v1/documents", Some(&new)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Some file systems keep modification times to the second; the size changes too, but a
    // new key of the same length may not change it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_jwks(&issuers.jwks("rotating"), &[&replacement]);
    assert_eq!(
        get("/v1/documents", Some(&new)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get("/v1/documents", Some(&old)).await.status,
        StatusCode::UNAUTHORIZED,
        "the retired key no longer verifies"
    );
}

/// Posts a portal sign-in form, without following the redirect.
async fn post_assertion(token: &str, origin: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut request = client
        .post(url("/auth/assertion"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("assertion={token}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("the server answers")
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("hikitsugi_session="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_portal_signs_its_user_in_to_the_web_app_with_a_posted_assertion() {
    let portal = &issuers().portal;
    let claims = with(
        claims("sato", "pref-hyogo"),
        json!({ "groups": ["hyogo-municipalities", "made-up-group"], "role": ["admin", "hikitsugi-editor"] }),
    );
    let token = sign(portal, &claims);
    let signed_in = post_assertion(&token, Some(PORTAL_ORIGIN)).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/");
    assert_eq!(signed_in.headers()["cache-control"], "no-store");
    let cookie = session_cookie(&signed_in).expect("a session cookie");
    let set_cookie = signed_in.headers()["set-cookie"].to_str().expect("ASCII");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));

    // The page reads its session as after a key sign-in: the token's user, the organisation,
    // only the configured groups it named, and the mapped role (a raw "admin" grants nothing).
    let session = send(
        reqwest::Client::new()
            .get(url("/auth/session"))
            .header("cookie", &cookie),
        None,
    )
    .await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.body["user"], "portal:sato");
    assert_eq!(session.body["org"], "pref-hyogo");
    assert_eq!(session.body["role"], "editor");
    assert_eq!(session.body["groups"], json!(["hyogo-municipalities"]));
    let documents = send(
        reqwest::Client::new()
            .get(url("/v1/documents"))
            .header("cookie", &cookie),
        None,
    )
    .await;
    assert_eq!(documents.status, StatusCode::OK, "{}", documents.body);

    // The same assertion opens no second session.
    let replayed = post_assertion(&token, Some(PORTAL_ORIGIN)).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&replayed).is_none());

    // Another site cannot sign a browser in, nor can a page that names no origin.
    for origin in [Some("https://evil.test"), None, Some("null")] {
        let fresh = portal_token("sato", "pref-hyogo");
        let refused = post_assertion(&fresh, origin).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{origin:?}");
        assert!(session_cookie(&refused).is_none());
    }
    // An issuer without sign_in_origins signs nobody in; a token without a jti neither.
    let now = now();
    let idp = sign(
        &issuers().idp,
        &json!({ "iss": IDP_ISS, "aud": AUDIENCE, "uid": "suzuki", "tenant": "pref-wakayama",
                 "iat": now, "exp": now + 60, "jti": "idp-1" }),
    );
    assert_eq!(
        post_assertion(&idp, Some(PORTAL_ORIGIN)).await.status(),
        StatusCode::FORBIDDEN
    );
    let without_jti = sign(portal, &with(claims.clone(), json!({ "jti": null })));
    assert_eq!(
        post_assertion(&without_jti, Some(PORTAL_ORIGIN))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = sign(
        portal,
        &with(claims, json!({ "iat": now - 600, "exp": now - 120 })),
    );
    assert_eq!(
        post_assertion(&expired, Some(PORTAL_ORIGIN)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// One request through an in-process router (no socket), with an API key or token.
async fn call(
    app: &axum::Router,
    path: &str,
    credential: Option<&str>,
) -> axum::response::Response {
    let mut request = axum::http::Request::get(path);
    if let Some(credential) = credential {
        request = request.header("authorization", format!("Bearer {credential}"));
    }
    app.clone()
        .oneshot(request.body(Body::empty()).expect("a request"))
        .await
        .expect("a response")
}

/// The shared service behind a router with these rate limits (the store and model are shared;
/// nothing is ingested again).
fn limited_router(limits: RateLimitConfig) -> axum::Router {
    let service = shared_service();
    let mut config = (*service.config).clone();
    config.rate_limits = limits;
    hikitsugi::api::router(service.with_config(config))
}

#[tokio::test]
async fn each_user_has_a_rate_limit_answered_429_with_retry_after() {
    let app = limited_router(RateLimitConfig {
        per_user_per_minute: 2,
        per_user_burst: 2,
        ..RateLimitConfig::default()
    });
    // `/v1/feedback` refuses a reader at once (403): past authentication, no store work.
    for _ in 0..2 {
        assert_eq!(
            call(&app, "/v1/feedback", Some(PUBLIC_KEY)).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let limited = call(&app, "/v1/feedback", Some(PUBLIC_KEY)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(limited.into_body(), 1 << 16)
            .await
            .expect("a body"),
    )
    .expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("秒")),
        "{body}"
    );

    // Other callers have limits of their own; each token user is a caller of its own.
    assert_eq!(
        call(&app, "/v1/feedback", Some(HYOGO_KEY)).await.status(),
        StatusCode::FORBIDDEN
    );
    let first = portal_token("ito", "pref-wakayama");
    let second = portal_token("ito", "pref-wakayama");
    let third = portal_token("ito", "pref-wakayama");
    for token in [&first, &second] {
        assert_eq!(
            call(&app, "/v1/feedback", Some(token)).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        call(&app, "/v1/feedback", Some(&third)).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a new token of the same user shares its limit"
    );
    // Probes and the web app's files are never limited; an anonymous request is a 401 first.
    for path in ["/healthz", "/app.js", "/healthz"] {
        assert_eq!(
            call(&app, path, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    assert_eq!(
        call(&app, "/v1/feedback", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_organisation_limit_holds_all_its_users_together() {
    let app = limited_router(RateLimitConfig {
        per_org_per_minute: 3,
        ..RateLimitConfig::default()
    });
    let callers = [
        WAKAYAMA_KEY.to_owned(),
        portal_token("kimura", "pref-wakayama"),
        WAKAYAMA_ADMIN_KEY.to_owned(),
    ];
    for caller in &callers {
        assert_ne!(
            call(&app, "/v1/feedback", Some(caller)).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let another_user = portal_token("mori", "pref-wakayama");
    assert_eq!(
        call(&app, "/v1/feedback", Some(&another_user))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&app, "/v1/feedback", Some(HYOGO_KEY)).await.status(),
        StatusCode::FORBIDDEN,
        "another organisation is not held up"
    );
}

#[tokio::test]
async fn an_es256_token_is_verified_like_an_rs256_one_where_its_issuer_allows_es256() {
    let query = json!({ "query": WAKAYAMA_QUESTION, "top_k": 10 });
    let es256 = sign(&issuers().portal_es256, &claims("sato", "pref-wakayama"));
    let found = post_json("/v1/search", Some(&es256), query.clone()).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(doc_ids(&found.body["passages"]).contains(DOC_003));

    // `idp` allows EdDSA only: the same key and algorithm are refused for its tokens.
    let for_idp = with(
        claims("sato", "pref-wakayama"),
        json!({ "iss": IDP_ISS, "uid": "sato", "tenant": "pref-wakayama" }),
    );
    let refused = post_json(
        "/v1/search",
        Some(&sign(&issuers().portal_es256, &for_idp)),
        query,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
}

#[tokio::test]
async fn a_broken_jwks_file_at_start_refuses_its_tokens_until_a_good_one_appears() {
    const LATE_ISS: &str = "https://late.test";
    let issuers = issuers();
    let jwks = issuers.jwks("late");
    std::fs::write(&jwks, b"{ not a JWKS").expect("a broken JWKS file");
    let service = shared_service();
    let mut config = (*service.config).clone();
    config.issuers.push(IssuerConfig {
        algorithms: vec![SigningAlgorithm::EdDSA],
        ..issuer_config("late", LATE_ISS, &["pref-wakayama"])
    });
    // Starts (the broken file is logged), and its tokens are refused like any bad token.
    let app = hikitsugi::api::router(service.with_config(config));
    let key = ed25519_key("late-1");
    let now = now();
    let token = sign(
        &key,
        &json!({ "iss": LATE_ISS, "aud": AUDIENCE, "sub": "abe", "org": "pref-wakayama",
                 "iat": now, "exp": now + 120 }),
    );
    assert_eq!(
        call(&app, "/v1/documents", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The other issuers are not affected.
    assert_eq!(
        call(
            &app,
            "/v1/documents",
            Some(&portal_token("abe", "pref-wakayama"))
        )
        .await
        .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_jwks(&jwks, &[&key]);
    assert_eq!(
        call(&app, "/v1/documents", Some(&token)).await.status(),
        StatusCode::OK
    );
}
