//! Users vouched for by trusted issuers: a portal (or an identity provider) signs a short JWT
//! naming a user, their organisation and groups, and hikitsugi verifies it offline against the
//! issuer's public keys, a JWKS file on disk (`[[issuers]]`).
//!
//! A token is checked in this order: its header (an algorithm the issuer may use: RS256, ES256
//! or EdDSA, never `none` or HMAC) and `kid`; its `iss` picks the configured issuer, whose JWKS
//! must hold that `kid` with a key of that algorithm's family; then the signature, `iss`, `aud`,
//! `exp` and `nbf` (with [`LEEWAY_SECS`] of clock skew), `iat` (not in the future, and
//! `exp - iat` at most `max_lifetime_minutes`); then the claims: a user, an organisation the
//! issuer may speak for, groups and a role. The token can only narrow what the configuration
//! gives: groups are those the configuration gives the organisation that the token also names
//! (all of them when the token names none), and the role is `reader` unless the issuer's
//! `roles` table maps a value of the role claim to more.
//!
//! The JWKS file is read again when its modification time or size changes (checked on each
//! verification: one `stat`), so rotating keys needs no restart. A file that cannot be read or
//! parsed refuses every token of its issuer until it is fixed (fail closed); write new files
//! atomically (write, then rename).
//!
//! ```no_run
//! # fn run(config: &hikitsugi::config::Config, token: &str) {
//! let verifier =
//!     hikitsugi::identity::Verifier::new(config, &hikitsugi::service::directory(config));
//! match verifier.verify(token) {
//!     Ok(verified) => println!("{} of {}", verified.actor().user_id(), verified.principal.org()),
//!     Err(error) => eprintln!("refused: {error}"),
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::access::{Actor, Directory, Principal, Role};
use crate::config::{Config, IssuerConfig, SigningAlgorithm};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;

/// Longest user id a token may carry (it reaches logs and records).
const MAX_USER_ID_CHARS: usize = 256;

/// Why a token was refused. For the log only: every one of these is the same 401 to the caller.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not a readable JWT: {reason}")]
    Malformed { reason: String },
    #[error("no configured issuer has iss {iss:?}")]
    UnknownIssuer { iss: String },
    #[error("issuer {issuer}: algorithm {algorithm:?} is not one it may use")]
    AlgorithmNotAllowed {
        issuer: String,
        algorithm: Algorithm,
    },
    #[error("issuer {issuer}: the token's header names no kid")]
    MissingKeyId { issuer: String },
    #[error("issuer {issuer}: its JWKS has no usable key {kid:?}")]
    UnknownKeyId { issuer: String, kid: String },
    #[error("issuer {issuer}: key {kid:?} is not a key for {algorithm:?}")]
    KeyAlgorithmMismatch {
        issuer: String,
        kid: String,
        algorithm: Algorithm,
    },
    #[error("issuer {issuer}: cannot use its JWKS file {path}: {reason}")]
    KeySet {
        issuer: String,
        path: PathBuf,
        reason: String,
    },
    #[error("issuer {issuer}: {source}")]
    Rejected {
        issuer: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error("issuer {issuer}: claim {claim:?} is missing or not {expected}")]
    Claim {
        issuer: String,
        claim: String,
        expected: &'static str,
    },
    #[error("issuer {issuer}: issued in the future (iat {issued_at})")]
    IssuedInTheFuture { issuer: String, issued_at: u64 },
    #[error(
        "issuer {issuer}: the token lives {lifetime_secs} s, more than max_lifetime_minutes allows ({max_secs} s)"
    )]
    LivesTooLong {
        issuer: String,
        lifetime_secs: u64,
        max_secs: u64,
    },
    #[error("issuer {issuer} may not speak for organisation {org:?}")]
    OrganisationNotAllowed { issuer: String, org: String },
}

/// A verified token: who it names and what they may do.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub principal: Principal,
    /// The configured id of the issuer whose key signed the token.
    pub issuer: String,
    /// The user claim.
    pub subject: String,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// `jti`, when the token has one.
    pub token_id: Option<String>,
}

impl VerifiedToken {
    /// The user the token names, as an [`Actor::User`].
    pub fn actor(&self) -> Actor {
        Actor::User {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
        }
    }
}

/// The configured issuers, each with its keys.
#[derive(Debug)]
pub struct Verifier {
    issuers: Vec<TrustedIssuer>,
}

#[derive(Debug)]
struct TrustedIssuer {
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    /// The organisations this issuer may speak for, with their configured groups.
    directory: Directory,
    keys: KeyFile,
}

impl Verifier {
    /// The issuers of `config`. Their JWKS files are read now, and a file that cannot be read is
    /// logged (its issuer's tokens are refused until it can be).
    pub fn new(config: &Config, directory: &Directory) -> Self {
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| TrustedIssuer {
                algorithms: issuer.algorithms.iter().copied().map(algorithm).collect(),
                directory: directory.only(&issuer.organisations),
                keys: KeyFile::new(issuer.jwks_file.clone()),
                config: issuer.clone(),
            })
            .collect::<Vec<_>>();
        for issuer in &issuers {
            if let Err(error) = issuer.current_keys() {
                tracing::error!(%error, "an issuer's keys cannot be read; its tokens are refused");
            }
        }
        Self { issuers }
    }

    /// Verifies a token (see the module documentation for every check).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, IdentityError> {
        let malformed = |error: jsonwebtoken::errors::Error| IdentityError::Malformed {
            reason: error.to_string(),
        };
        let header = jsonwebtoken::decode_header(token).map_err(malformed)?;
        // Unverified, only to pick the issuer whose keys then verify everything.
        let named: NamedIssuer =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(malformed)?;
        let iss = named.iss.unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.config.issuer == iss)
            .ok_or(IdentityError::UnknownIssuer { iss })?;
        issuer.verify(token, header.alg, header.kid)
    }

    /// Whether a page from `origin` may sign a browser in with a token of `issuer` (its
    /// configured id).
    pub fn may_sign_in_from(&self, issuer: &str, origin: &str) -> bool {
        self.issuers.iter().any(|trusted| {
            trusted.config.id == issuer
                && trusted
                    .config
                    .sign_in_origins
                    .iter()
                    .any(|allowed| allowed == origin)
        })
    }
}

#[derive(Deserialize)]
struct NamedIssuer {
    iss: Option<String>,
}

fn algorithm(allowed: SigningAlgorithm) -> Algorithm {
    match allowed {
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl TrustedIssuer {
    fn id(&self) -> String {
        self.config.id.clone()
    }

    fn current_keys(&self) -> Result<Arc<PublicKeys>, IdentityError> {
        self.keys.current().map_err(|reason| IdentityError::KeySet {
            issuer: self.id(),
            path: self.keys.path.clone(),
            reason,
        })
    }

    fn verify(
        &self,
        token: &str,
        algorithm: Algorithm,
        kid: Option<String>,
    ) -> Result<VerifiedToken, IdentityError> {
        if !self.algorithms.contains(&algorithm) {
            return Err(IdentityError::AlgorithmNotAllowed {
                issuer: self.id(),
                algorithm,
            });
        }
        let kid = kid.ok_or_else(|| IdentityError::MissingKeyId { issuer: self.id() })?;
        let keys = self.current_keys()?;
        let key = keys
            .by_kid
            .get(&kid)
            .ok_or_else(|| IdentityError::UnknownKeyId {
                issuer: self.id(),
                kid: kid.clone(),
            })?;
        if key.key.family() != algorithm.family()
            || key.algorithm.is_some_and(|declared| declared != algorithm)
        {
            return Err(IdentityError::KeyAlgorithmMismatch {
                issuer: self.id(),
                kid,
                algorithm,
            });
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|source| IdentityError::Rejected {
                issuer: self.id(),
                source,
            })?
            .claims;
        self.principal_of(&claims)
    }

    fn claim_error(&self, claim: &str, expected: &'static str) -> IdentityError {
        IdentityError::Claim {
            issuer: self.id(),
            claim: claim.to_owned(),
            expected,
        }
    }

    fn seconds(&self, claims: &Map<String, Value>, claim: &str) -> Result<u64, IdentityError> {
        claims
            .get(claim)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.claim_error(claim, "a number of seconds"))
    }

    /// The principal the verified claims describe.
    fn principal_of(&self, claims: &Map<String, Value>) -> Result<VerifiedToken, IdentityError> {
        let expires_at = self.seconds(claims, "exp")?;
        let issued_at = self.seconds(claims, "iat")?;
        if issued_at > now() + LEEWAY_SECS {
            return Err(IdentityError::IssuedInTheFuture {
                issuer: self.id(),
                issued_at,
            });
        }
        let lifetime_secs = expires_at.saturating_sub(issued_at);
        let max_secs = self.config.max_lifetime_minutes * 60;
        if lifetime_secs > max_secs {
            return Err(IdentityError::LivesTooLong {
                issuer: self.id(),
                lifetime_secs,
                max_secs,
            });
        }

        let user_claim = &self.config.user_claim;
        let subject = claims
            .get(user_claim)
            .and_then(Value::as_str)
            .filter(|user| {
                !user.is_empty()
                    && user.chars().count() <= MAX_USER_ID_CHARS
                    && !user.chars().any(char::is_control)
            })
            .ok_or_else(|| self.claim_error(user_claim, "a user id (1–256 characters)"))?;

        let org_claim = &self.config.org_claim;
        let org = claims
            .get(org_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| self.claim_error(org_claim, "an organisation id"))?;
        let groups_claim = &self.config.groups_claim;
        let named_groups = claims
            .get(groups_claim)
            .map(|named| {
                strings(named)
                    .ok_or_else(|| self.claim_error(groups_claim, "an array of group ids"))
            })
            .transpose()?;

        let role_claim = &self.config.role_claim;
        let role = match claims.get(role_claim) {
            None => Role::Reader,
            Some(values) => strings(values)
                .ok_or_else(|| self.claim_error(role_claim, "a string or an array of strings"))?
                .into_iter()
                .filter_map(|value| self.config.roles.get(value).copied())
                .max()
                .unwrap_or(Role::Reader),
        };

        let principal = self
            .directory
            .member_of_groups(org, role, |group| {
                named_groups
                    .as_ref()
                    .is_none_or(|named| named.contains(&group))
            })
            .ok_or_else(|| IdentityError::OrganisationNotAllowed {
                issuer: self.id(),
                org: org.to_owned(),
            })?;
        Ok(VerifiedToken {
            principal,
            issuer: self.id(),
            subject: subject.to_owned(),
            expires_at,
            token_id: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// A string, or an array of strings.
fn strings(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => many.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Whether a presented credential is shaped like a JWT (three base64url parts): then it is
/// verified as a token, never looked up as an API key.
pub fn looks_like_jwt(credential: &str) -> bool {
    let parts: Vec<&str> = credential.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|part| !part.is_empty())
        && parts.iter().all(|part| {
            part.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

/// An issuer's JWKS file and the keys last read from it.
#[derive(Debug)]
struct KeyFile {
    path: PathBuf,
    loaded: RwLock<Option<LoadedKeys>>,
}

#[derive(Debug)]
struct LoadedKeys {
    stamp: FileStamp,
    keys: Arc<PublicKeys>,
}

/// What tells a changed file: its modification time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: SystemTime,
    len: u64,
}

#[derive(Debug)]
struct PublicKeys {
    by_kid: HashMap<String, PublicKey>,
}

#[derive(Debug)]
struct PublicKey {
    key: DecodingKey,
    /// The JWK's `alg`, when it declares one.
    algorithm: Option<Algorithm>,
}

impl KeyFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: RwLock::new(None),
        }
    }

    /// The file's keys, read again if it changed since they were read.
    fn current(&self) -> Result<Arc<PublicKeys>, String> {
        let metadata = std::fs::metadata(&self.path).map_err(|error| error.to_string())?;
        let stamp = FileStamp {
            modified: metadata.modified().map_err(|error| error.to_string())?,
            len: metadata.len(),
        };
        if let Some(loaded) = self
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|loaded| loaded.stamp == stamp)
        {
            return Ok(Arc::clone(&loaded.keys));
        }
        let keys = Arc::new(read_key_set(&self.path)?);
        tracing::info!(path = %self.path.display(), keys = keys.by_kid.len(), "JWKS file read");
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Some(LoadedKeys {
            stamp,
            keys: Arc::clone(&keys),
        });
        Ok(keys)
    }
}

/// The signing keys of a JWKS file, by `kid`. Keys without a `kid`, for encryption, symmetric
/// (`oct`) or of an unknown type are left out: none of them may verify a token.
fn read_key_set(path: &Path) -> Result<PublicKeys, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    let set: JwkSet =
        serde_json::from_slice(&bytes).map_err(|error| format!("not a JWKS document: {error}"))?;
    let by_kid = set
        .keys
        .iter()
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, public_key(jwk)?)))
        .collect();
    Ok(PublicKeys { by_kid })
}

fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    if !matches!(
        jwk.algorithm,
        AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_)
    ) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == AlgorithmFamily::Hmac {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(declared) => Some(Algorithm::try_from(declared).ok()?),
        None => None,
    };
    Some(PublicKey { key, algorithm })
}

/// Sign-in assertions already used, so that each opens at most one session. Remembered until
/// they expire (plus the leeway); in memory, like sessions.
#[derive(Debug, Default)]
pub struct UsedAssertions {
    expiry_by_id: Mutex<HashMap<(String, String), u64>>,
}

/// Most assertions remembered at once; beyond it, sign-ins are refused until some expire.
const MAX_REMEMBERED_ASSERTIONS: usize = 100_000;

impl UsedAssertions {
    /// Records the assertion `token_id` of `issuer`; `false` if it was used before (or too many
    /// live assertions are remembered to tell).
    pub fn first_use(&self, issuer: &str, token_id: &str, expires_at: u64) -> bool {
        let mut used = self
            .expiry_by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = now();
        if used.len() >= MAX_REMEMBERED_ASSERTIONS {
            used.retain(|_, expiry| *expiry + LEEWAY_SECS >= now);
            if used.len() >= MAX_REMEMBERED_ASSERTIONS {
                return false;
            }
        }
        used.insert((issuer.to_owned(), token_id.to_owned()), expires_at)
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_look_like_a_jwt() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("demo-wakayama-key"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
    }

    #[test]
    fn an_assertion_is_accepted_once() {
        let used = UsedAssertions::default();
        assert!(used.first_use("portal", "abc", now() + 60));
        assert!(!used.first_use("portal", "abc", now() + 60));
        assert!(used.first_use("other", "abc", now() + 60));
    }
}
