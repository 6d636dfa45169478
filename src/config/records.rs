//! The `[metadata]` and `[audit]` sections: where the service keeps its own records, and what
//! the audit trail writes there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::secret::ApiKey;

/// Shortest HMAC key `audit.questions = "hmac"` accepts, in bytes.
const MIN_HMAC_KEY_BYTES: usize = 16;

/// `[metadata]`: the database of feedback and the audit trail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// `postgres://user:password@host/db` (or `postgresql://…`): that PostgreSQL database,
    /// shared by every replica. Unset: an embedded SQLite file in the data directory. Best given
    /// as `HIKITSUGI_METADATA__URL` (it holds a password); never serialised or printed.
    #[serde(skip_serializing)]
    pub url: Option<ApiKey>,
    /// A PEM file of the certificate authorities that may sign the PostgreSQL server's
    /// certificate, besides the system's; for a URL with `sslmode=require`.
    pub ca_file: Option<PathBuf>,
}

impl MetadataConfig {
    /// The PostgreSQL URL, when one is configured (an empty value means none).
    pub fn postgres_url(&self) -> Option<&str> {
        self.url
            .as_ref()
            .map(|url| url.expose().trim())
            .filter(|url| !url.is_empty())
    }

    /// The certificate authorities' file, when one is named (an empty value means none).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file
            .as_deref()
            .filter(|path| !path.as_os_str().is_empty())
    }
}

/// `[audit]`: who asked what, and which documents answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record the audited routes at all.
    pub enabled: bool,
    /// Refuse a request (503) whose record cannot be written, rather than answer it unrecorded.
    pub required: bool,
    /// How questions (and similar-case drafts, search queries) are kept.
    pub questions: QuestionPolicy,
    /// The HMAC key of `questions = "hmac"`, given as `HIKITSUGI_AUDIT__HMAC_KEY`; never
    /// serialised or printed.
    #[serde(skip_serializing)]
    pub hmac_key: Option<ApiKey>,
    /// Records older than this many days are deleted (at start, then daily); 0 keeps them.
    pub retention_days: u32,
}

/// What the audit trail keeps of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionPolicy {
    /// The question as asked.
    Text,
    /// `hmac-sha256:<hex>` of the question: the same question gives the same value, which
    /// only the key's holder can compute.
    Hmac,
    /// Nothing.
    None,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            required: false,
            questions: QuestionPolicy::Text,
            hmac_key: None,
            retention_days: 365,
        }
    }
}

pub(super) fn validate(metadata: &MetadataConfig, audit: &AuditConfig) -> Result<(), ConfigError> {
    if let Some(url) = metadata.postgres_url()
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err(ConfigError::Invalid(
            "metadata.url must be a postgres:// or postgresql:// URL (leave it unset for the embedded SQLite file)"
                .to_owned(),
        ));
    }
    if metadata.ca_file().is_some() && metadata.postgres_url().is_none() {
        return Err(ConfigError::Invalid(
            "metadata.ca_file is for a PostgreSQL metadata.url with sslmode=require; the embedded SQLite file needs none".to_owned(),
        ));
    }
    if audit.required && !audit.enabled {
        return Err(ConfigError::Invalid(
            "audit.required needs audit.enabled: a required audit trail cannot be off".to_owned(),
        ));
    }
    let key_bytes = audit.hmac_key.as_ref().map_or(0, |key| key.expose().len());
    if audit.questions == QuestionPolicy::Hmac && key_bytes < MIN_HMAC_KEY_BYTES {
        return Err(ConfigError::Invalid(format!(
            "audit.questions = \"hmac\" needs a key of at least {MIN_HMAC_KEY_BYTES} bytes in HIKITSUGI_AUDIT__HMAC_KEY"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(url: Option<&str>, audit: AuditConfig) -> Result<(), String> {
        let metadata = MetadataConfig {
            url: url.map(ApiKey::new),
            ca_file: None,
        };
        validate(&metadata, &audit).map_err(|error| error.to_string())
    }

    #[test]
    fn impossible_audit_and_metadata_settings_are_refused() {
        assert!(checked(None, AuditConfig::default()).is_ok());
        assert!(
            checked(Some(""), AuditConfig::default()).is_ok(),
            "empty: SQLite"
        );
        assert!(checked(Some("postgres://u:p@db/hikitsugi"), AuditConfig::default()).is_ok());
        let mysql = checked(Some("mysql://u:p@db/x"), AuditConfig::default()).unwrap_err();
        assert!(
            mysql.contains("metadata.url") && !mysql.contains("u:p"),
            "{mysql}"
        );
        let off_but_required = AuditConfig {
            enabled: false,
            required: true,
            ..AuditConfig::default()
        };
        assert!(checked(None, off_but_required).is_err());
        let hmac = |key: Option<&str>| AuditConfig {
            questions: QuestionPolicy::Hmac,
            hmac_key: key.map(ApiKey::new),
            ..AuditConfig::default()
        };
        assert!(
            checked(None, hmac(None))
                .unwrap_err()
                .contains("HIKITSUGI_AUDIT__HMAC_KEY")
        );
        assert!(checked(None, hmac(Some("short"))).is_err());
        assert!(checked(None, hmac(Some("a-key-of-sixteen-bytes"))).is_ok());
        let with_ca_file = |url: Option<&str>, ca_file: &str| {
            let metadata = MetadataConfig {
                url: url.map(ApiKey::new),
                ca_file: Some(PathBuf::from(ca_file)),
            };
            validate(&metadata, &AuditConfig::default()).map_err(|error| error.to_string())
        };
        assert!(
            with_ca_file(None, "ca.pem")
                .unwrap_err()
                .contains("metadata.ca_file")
        );
        assert!(with_ca_file(None, "").is_ok(), "empty: none");
        assert!(with_ca_file(Some("postgres://u:p@db/h?sslmode=require"), "ca.pem").is_ok());
    }
}
