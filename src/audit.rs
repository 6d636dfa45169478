//! The audit trail: who asked what, and which documents answered. Each audited request
//! (ask, search, compare, similar, a passage read, upload, delete, export) leaves one record in
//! the metadata database: when, the request id, the organisation and actor (an API key's label,
//! or `<issuer>:<subject>`), the operation, the question as `audit.questions` keeps it, the
//! documents returned and cited with their versions, the answer's mode and whether it found
//! one, the HTTP status and the latency. Never passage text.
//!
//! The HTTP layer (`api/audit.rs`) writes the record after the handler and before the
//! response leaves; with `audit.required` a record that cannot be written turns the response
//! into a 503 (fail closed, as Vault's audit devices do), otherwise the failure is logged and
//! counted (`hikitsugi_audit_failures_total`) and the response goes out. Questions kept as
//! `hmac` are `hmac-sha256:<hex>` of the question under `audit.hmac_key`: an auditor holding the
//! key can tell whether a given question was asked (`hikitsugi audit --question`), nobody else
//! can read it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{AuditConfig, QuestionPolicy};
use crate::metadata::{AuditFilter, AuditRecord, MetadataError, MetadataStore};

/// How often the daily pruning runs.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The configured trail over the metadata database.
pub struct AuditTrail {
    store: Arc<MetadataStore>,
    enabled: bool,
    required: bool,
    questions: QuestionPolicy,
    hmac_key: Vec<u8>,
    retention_days: u32,
}

impl AuditTrail {
    pub fn new(store: Arc<MetadataStore>, config: &AuditConfig) -> Self {
        Self {
            store,
            enabled: config.enabled,
            required: config.required,
            questions: config.questions,
            hmac_key: config
                .hmac_key
                .as_ref()
                .map(|key| key.expose().as_bytes().to_vec())
                .unwrap_or_default(),
            retention_days: config.retention_days,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a request whose record cannot be written is refused.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The question as the policy keeps it.
    pub fn kept_question(&self, question: &str) -> Option<String> {
        match self.questions {
            QuestionPolicy::Text => Some(question.to_owned()),
            QuestionPolicy::Hmac => Some(self.question_hmac(question)),
            QuestionPolicy::None => None,
        }
    }

    /// `hmac-sha256:<hex>` of the question (trimmed, as the service reads it).
    pub fn question_hmac(&self, question: &str) -> String {
        // The configuration refuses `hmac` without a key; an empty one here is still a key.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key)
            .expect("HMAC takes keys of any length");
        mac.update(question.trim().as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    pub fn record(&self, record: &AuditRecord) -> Result<(), MetadataError> {
        self.store.record_audit(record)
    }

    /// Replaces a record written ahead of a change with the change's outcome.
    pub fn complete_written_ahead(&self, record: &AuditRecord) -> Result<(), MetadataError> {
        self.store.complete_written_ahead(record)
    }

    pub fn records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, MetadataError> {
        self.store.audit_records(filter)
    }

    /// The store, for completing a streamed answer's record.
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// Deletes the records older than `audit.retention_days` (none when it is 0); how many.
    pub fn prune(&self) -> Result<u64, MetadataError> {
        if self.retention_days == 0 {
            return Ok(0);
        }
        let kept = chrono::Duration::days(i64::from(self.retention_days));
        let before = Utc::now() - kept;
        let pruned = self.store.prune_audit(before.timestamp_millis())?;
        tracing::info!(
            pruned,
            retention_days = self.retention_days,
            "pruned the audit trail"
        );
        Ok(pruned)
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A record's time as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms).map_or_else(
        || at_ms.to_string(),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A `since` bound: a date (`2025-04-01`, from its midnight UTC) or an RFC 3339 time; `None`
/// when it is neither.
pub fn parse_since(since: &str) -> Option<i64> {
    let since = since.trim();
    if let Ok(date) = NaiveDate::parse_from_str(since, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc().timestamp_millis());
    }
    DateTime::parse_from_rfc3339(since)
        .ok()
        .map(|at| at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ApiKey;

    fn trail(questions: QuestionPolicy, key: &str) -> AuditTrail {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetadataStore::open(dir.path()).expect("open"));
        AuditTrail::new(
            store,
            &AuditConfig {
                questions,
                hmac_key: Some(ApiKey::new(key)),
                ..AuditConfig::default()
            },
        )
    }

    #[test]
    fn questions_are_kept_as_text_as_a_keyed_hmac_or_not_at_all() {
        let question = "オンラインよろず相談は";
        assert_eq!(
            trail(QuestionPolicy::Text, "k").kept_question(question),
            Some(question.to_owned())
        );
        assert_eq!(
            trail(QuestionPolicy::None, "k").kept_question(question),
            None
        );
        let hashed = trail(QuestionPolicy::Hmac, "a-key-of-16-bytes");
        let kept = hashed.kept_question(question).expect("kept");
        assert!(
            kept.starts_with("hmac-sha256:") && kept.len() == 12 + 64,
            "{kept}"
        );
        assert_eq!(
            hashed.kept_question(&format!(" {question} ")),
            Some(kept.clone())
        );
        let other_key = trail(QuestionPolicy::Hmac, "another-key-16-bytes");
        assert_ne!(other_key.kept_question(question), Some(kept));
    }

    #[test]
    fn since_takes_a_date_or_an_rfc3339_time() {
        assert_eq!(parse_since("2000-01-01"), Some(946_684_800_000));
        assert_eq!(
            parse_since("2000-01-01T09:00:00+09:00"),
            Some(946_684_800_000)
        );
        assert_eq!(parse_since("yesterday"), None);
        assert_eq!(rfc3339(946_684_800_123), "2000-01-01T00:00:00.123Z");
    }
}
