//! `[[issuers]]`: identity providers (a portal, an IdP) whose signed JWTs name a user of an
//! organisation, verified offline against a JWKS file (see `crate::identity`).
//!
//! Only asymmetric algorithms are accepted: RS256, ES256 and EdDSA. `none` and the HMAC family
//! are refused when the configuration is loaded, because a verifier that accepts HS256 with a
//! public key as the secret lets anyone who knows the public key sign tokens.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::role::Role;

/// One trusted issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name: prefixes the user ids of its tokens (`<id>:<sub>`) and names it in logs.
    pub id: String,
    /// The tokens' `iss`, exactly.
    pub issuer: String,
    /// The `aud` the tokens must name (this service).
    pub audience: String,
    /// The issuer's public keys (a JWKS document); read again whenever the file changes.
    pub jwks_file: PathBuf,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// The claim holding the user id.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim holding the organisation id.
    #[serde(default = "default_org_claim")]
    pub org_claim: String,
    /// The claim holding the user's groups (an array). Absent from a token: the organisation's
    /// configured groups; present: only those of them it names.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The organisations this issuer may speak for (each a configured organisation).
    pub organisations: Vec<String>,
    /// The claim whose value (a string or an array of strings) `roles` maps to a role.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim value → role. A value not listed here grants nothing beyond `reader`.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// The longest a token may live (`exp - iat`).
    #[serde(default = "default_max_lifetime_minutes")]
    pub max_lifetime_minutes: u64,
    /// Origins (`https://portal.example.jp`) whose pages may sign a browser in to the web app
    /// with one of this issuer's tokens (`POST /auth/assertion`). Empty: none may.
    #[serde(default)]
    pub sign_in_origins: Vec<String>,
}

/// A signature algorithm an issuer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SigningAlgorithm {
    RS256,
    ES256,
    EdDSA,
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "RS256" => Ok(Self::RS256),
            "ES256" => Ok(Self::ES256),
            "EdDSA" => Ok(Self::EdDSA),
            "none" => {
                Err("algorithm \"none\" is refused: an unsigned token proves nothing".to_owned())
            }
            hmac if hmac.starts_with("HS") => Err(format!(
                "algorithm {hmac:?} is refused: an HMAC check with a published key lets anyone sign tokens; use RS256, ES256 or EdDSA"
            )),
            other => Err(format!(
                "algorithm {other:?} is not supported; use RS256, ES256 or EdDSA"
            )),
        }
    }
}

impl From<SigningAlgorithm> for String {
    fn from(algorithm: SigningAlgorithm) -> Self {
        match algorithm {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
        .to_owned()
    }
}

fn default_algorithms() -> Vec<SigningAlgorithm> {
    vec![
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ]
}

fn default_user_claim() -> String {
    "sub".to_owned()
}

fn default_org_claim() -> String {
    "org".to_owned()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_role_claim() -> String {
    "role".to_owned()
}

fn default_max_lifetime_minutes() -> u64 {
    60
}

/// Checks every issuer against the rest of the configuration.
pub(super) fn validate(
    issuers: &[IssuerConfig],
    known_org: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    let invalid =
        |id: &str, message: String| Err(ConfigError::Invalid(format!("issuer {id:?}: {message}")));
    for (index, issuer) in issuers.iter().enumerate() {
        let id = issuer.id.as_str();
        if id.is_empty() || id.contains(':') {
            return invalid(id, "id must be non-empty and without ':'".to_owned());
        }
        if let Some(earlier) = issuers[..index]
            .iter()
            .find(|earlier| earlier.id == issuer.id || earlier.issuer == issuer.issuer)
        {
            return invalid(
                id,
                format!(
                    "has the id or issuer of {:?}; a token must name exactly one issuer",
                    earlier.id
                ),
            );
        }
        if issuer.issuer.is_empty() || issuer.audience.is_empty() {
            return invalid(id, "issuer and audience must be set".to_owned());
        }
        if issuer.algorithms.is_empty() {
            return invalid(
                id,
                "algorithms must name at least one of RS256, ES256, EdDSA".to_owned(),
            );
        }
        if issuer.organisations.is_empty() {
            return invalid(
                id,
                "organisations must name the organisations it may speak for".to_owned(),
            );
        }
        if let Some(unknown) = issuer.organisations.iter().find(|org| !known_org(org)) {
            return invalid(id, format!("names unknown organisation {unknown}"));
        }
        if issuer.max_lifetime_minutes == 0 {
            return invalid(id, "max_lifetime_minutes must be at least 1".to_owned());
        }
        for claim in [
            &issuer.user_claim,
            &issuer.org_claim,
            &issuer.groups_claim,
            &issuer.role_claim,
        ] {
            if claim.is_empty() {
                return invalid(id, "claim names must not be empty".to_owned());
            }
        }
        if let Some(origin) = issuer
            .sign_in_origins
            .iter()
            .find(|origin| !is_origin(origin))
        {
            return invalid(
                id,
                format!(
                    "sign_in_origins: {origin:?} is not an origin like https://portal.example.jp (scheme and host, no path)"
                ),
            );
        }
    }
    Ok(())
}

/// `http(s)://host[:port]`, nothing after it.
fn is_origin(origin: &str) -> bool {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority
        .is_some_and(|authority| !authority.is_empty() && !authority.contains(['/', '?', '#', ' ']))
}
