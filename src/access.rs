//! Who is asking, and what they may read.
//!
//! A [`Scope`] is the only thing the store's query API accepts as an access filter, and only a
//! [`Principal`] can make one, so every read path is tied to an identity.

pub use crate::role::Role;

/// The reader token that makes a document readable by everyone.
pub const PUBLIC: &str = hikitsugi_ingest::PUBLIC_READER;

/// An authenticated caller: an organisation, the groups it belongs to, and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    org: String,
    groups: Vec<String>,
    role: Role,
}

impl Principal {
    pub fn new(org: impl Into<String>, groups: Vec<String>, role: Role) -> Self {
        Self {
            org: org.into(),
            groups,
            role,
        }
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The reader tokens this principal matches: its organisation, its groups, and `public`.
    pub fn scope(&self) -> Scope {
        let mut tokens = Vec::with_capacity(self.groups.len() + 2);
        tokens.push(self.org.clone());
        tokens.extend(self.groups.iter().cloned());
        tokens.push(PUBLIC.to_owned());
        tokens.sort();
        tokens.dedup();
        Scope {
            readers: ScopeReaders::Tokens(tokens),
        }
    }
}

/// Who acts behind a principal: the user id of feedback and rate limits, and what the audit
/// trail will name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An API key, by its label.
    Key { label: String },
    /// A user named by a trusted issuer's token: the issuer's configured id and the token's
    /// user claim.
    User { issuer: String, subject: String },
}

impl Actor {
    /// The key's label, or `<issuer>:<subject>`.
    pub fn user_id(&self) -> String {
        match self {
            Self::Key { label } => label.clone(),
            Self::User { issuer, subject } => format!("{issuer}:{subject}"),
        }
    }

    /// The configured id of the issuer that vouched for this user; `None` for an API key.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            Self::Key { .. } => None,
            Self::User { issuer, .. } => Some(issuer),
        }
    }
}

/// The operator of a local installation (CLI `ingest`, `eval`): reads everything.
/// Never reachable from the HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl Operator {
    pub fn scope(self) -> Scope {
        Scope {
            readers: ScopeReaders::Everything,
        }
    }
}

/// The set of documents a caller may read, as a filter on the documents' `readers` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    readers: ScopeReaders,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ScopeReaders {
    Tokens(Vec<String>),
    Everything,
}

impl Scope {
    /// The reader tokens a document must share at least one of, or `None` when everything is readable.
    pub fn reader_tokens(&self) -> Option<&[String]> {
        match &self.readers {
            ScopeReaders::Tokens(tokens) => Some(tokens),
            ScopeReaders::Everything => None,
        }
    }

    /// Whether a document with these readers is inside the scope.
    pub fn permits(&self, document_readers: &[String]) -> bool {
        match &self.readers {
            ScopeReaders::Everything => true,
            ScopeReaders::Tokens(tokens) => document_readers
                .iter()
                .any(|reader| tokens.contains(reader)),
        }
    }
}

/// API keys, known only by their SHA-256, each mapped to a principal.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    principals_by_hash: std::collections::HashMap<[u8; 32], (String, Principal)>,
}

impl KeyRing {
    /// A key ring of (hex SHA-256 of the key, label, principal) entries; an entry whose hash is
    /// not 64 hex digits is left out (the configuration refuses those before).
    pub fn new(keys: impl IntoIterator<Item = (String, String, Principal)>) -> Self {
        let principals_by_hash = keys
            .into_iter()
            .filter_map(|(sha256, label, principal)| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&sha256, &mut hash).ok()?;
                Some((hash, (label, principal)))
            })
            .collect();
        Self { principals_by_hash }
    }

    /// The principal of a presented key, and the key's label for logs.
    pub fn authenticate(&self, presented_key: &str) -> Option<(&str, &Principal)> {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(presented_key.as_bytes()).into();
        self.principals_by_hash
            .get(&hash)
            .map(|(label, principal)| (label.as_str(), principal))
    }
}

/// Hex SHA-256 of an API key, as the configuration stores it.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reads_its_org_its_groups_and_public_only() {
        let scope = Principal::new(
            "pref-hyogo",
            vec!["hyogo-municipalities".into()],
            Role::Reader,
        )
        .scope();
        assert!(scope.permits(&["public".into()]));
        assert!(scope.permits(&["pref-hyogo".into()]));
        assert!(scope.permits(&["hyogo-municipalities".into(), "x".into()]));
        assert!(!scope.permits(&["pref-wakayama".into()]));
        assert!(!scope.permits(&[]));
        assert!(Operator.scope().permits(&["pref-wakayama".into()]));
    }
}
