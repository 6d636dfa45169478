//! Who is asking, and what they may read.
//!
//! A [`Scope`] is the only thing the store's query API accepts as an access filter, and only a
//! [`Principal`] can make one, so every read path is tied to an identity.

use std::collections::HashMap;

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

/// The organisations the configuration declares, each with its groups: the only maker of
/// [`Principal`]s, so no caller can name an organisation the configuration does not know, or
/// give one a group it does not belong to. The authentication layer (API keys, trusted tokens)
/// and CLI commands that act as an organisation hold one.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    groups_by_org: HashMap<String, Vec<String>>,
}

impl Directory {
    /// A directory of (organisation id, its group ids) entries.
    pub fn new(organisations: impl IntoIterator<Item = (String, Vec<String>)>) -> Self {
        Self {
            groups_by_org: organisations.into_iter().collect(),
        }
    }

    /// A member of `org` in every group of its own, or `None` when `org` is not in the directory.
    pub fn member(&self, org: &str, role: Role) -> Option<Principal> {
        self.member_of_groups(org, role, |_| true)
    }

    /// A member of `org` in those of its groups that `keep` accepts: a token can narrow the
    /// groups the configuration gives, never widen them.
    pub fn member_of_groups(
        &self,
        org: &str,
        role: Role,
        keep: impl Fn(&str) -> bool,
    ) -> Option<Principal> {
        let groups = self.groups_by_org.get(org)?;
        Some(Principal {
            org: org.to_owned(),
            groups: groups.iter().filter(|group| keep(group)).cloned().collect(),
            role,
        })
    }

    /// The entries of `orgs` only (those an issuer may speak for).
    pub fn only(&self, orgs: &[String]) -> Self {
        Self {
            groups_by_org: self
                .groups_by_org
                .iter()
                .filter(|(org, _)| orgs.contains(org))
                .map(|(org, groups)| (org.clone(), groups.clone()))
                .collect(),
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
        let scope = hyogo()
            .member("pref-hyogo", Role::Reader)
            .expect("known")
            .scope();
        assert!(scope.permits(&["public".into()]));
        assert!(scope.permits(&["pref-hyogo".into()]));
        assert!(scope.permits(&["hyogo-municipalities".into(), "x".into()]));
        assert!(!scope.permits(&["pref-wakayama".into()]));
        assert!(!scope.permits(&[]));
        assert!(Operator.scope().permits(&["pref-wakayama".into()]));
    }

    fn hyogo() -> Directory {
        Directory::new([(
            "pref-hyogo".to_owned(),
            vec!["hyogo-municipalities".to_owned(), "kinki".to_owned()],
        )])
    }

    #[test]
    fn principals_exist_only_for_known_organisations_with_their_own_groups() {
        let directory = hyogo();
        assert_eq!(directory.member("pref-wakayama", Role::Admin), None);
        let narrowed = directory
            .member_of_groups("pref-hyogo", Role::Editor, |group| {
                group == "kinki" || group == "pref-wakayama"
            })
            .expect("known");
        assert_eq!(
            (narrowed.org(), narrowed.groups(), narrowed.role()),
            ("pref-hyogo", ["kinki".to_owned()].as_slice(), Role::Editor)
        );
        assert_eq!(
            directory
                .only(&["pref-wakayama".to_owned()])
                .member("pref-hyogo", Role::Reader),
            None
        );
    }
}
