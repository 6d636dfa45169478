//! `GET /v1/audit`: the audit trail of the caller's organisation, and the same records as the
//! CLI's `hikitsugi audit --json` prints them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metadata::{AuditRecord, AuditedDocument, Operation};

/// Query of `GET /v1/audit`; the organisation is always the caller's.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this date (`2025-04-01`, UTC) or RFC 3339 time on.
    pub since: Option<String>,
    /// One actor: an API key's label or `<issuer>:<subject>`.
    pub user: Option<String>,
    /// Records that returned or cited this document.
    pub doc_id: Option<String>,
    pub operation: Option<Operation>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Audit records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub records: Vec<AuditEntry>,
}

/// One audited request. Never holds passage text.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// When the request arrived, RFC 3339 (UTC).
    pub at: String,
    pub request_id: String,
    pub org: String,
    /// The API key's label, or `<issuer>:<subject>` for a token's user.
    pub actor: String,
    /// The issuer that vouched for the user; absent for an API key.
    pub issuer: Option<String>,
    pub operation: Operation,
    /// The question, query or draft: as asked, `hmac-sha256:<hex>`, or absent, per
    /// `audit.questions`.
    pub question: Option<String>,
    /// Documents returned or cited, with their versions.
    pub documents: Vec<AuditedDocument>,
    /// `generated` or `extractive`, for answers.
    pub mode: Option<String>,
    pub found: Option<bool>,
    /// The HTTP status of the response.
    pub status: u16,
    pub latency_ms: u64,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            at: crate::audit::rfc3339(record.at_ms),
            id: record.id,
            request_id: record.request_id,
            org: record.org,
            actor: record.actor,
            issuer: record.issuer,
            operation: record.operation,
            question: record.question,
            documents: record.documents,
            mode: record.mode,
            found: record.found,
            status: record.status,
            latency_ms: record.latency_ms,
        }
    }
}
