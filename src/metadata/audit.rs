//! Audit records: one per audited request, with the documents it returned or cited in a table
//! of their own (one row per document, so that "who read document X" is a query). What a
//! record holds is decided by the audit trail (`crate::audit`); this is how it is stored and
//! read back.

use serde::{Deserialize, Serialize};

use super::{Columns, MetadataError, MetadataStore, SqlValue, Statement};

/// Record ids bound in one query for their documents: SQLite allows 32 766 parameters in a
/// statement and PostgreSQL 65 535, and `hikitsugi audit --limit` may ask for more records.
pub(super) const IDS_PER_QUERY: usize = 1000;

/// An audited operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Ask,
    Search,
    Compare,
    Similar,
    /// `GET /v1/passages`: a document's passages read.
    Passages,
    Upload,
    Delete,
    Export,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Self::Ask,
        Self::Search,
        Self::Compare,
        Self::Similar,
        Self::Passages,
        Self::Upload,
        Self::Delete,
        Self::Export,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ask => "ask",
            Self::Search => "search",
            Self::Compare => "compare",
            Self::Similar => "similar",
            Self::Passages => "passages",
            Self::Upload => "upload",
            Self::Delete => "delete",
            Self::Export => "export",
        }
    }

    fn parse(stored: &str) -> Result<Self, MetadataError> {
        Self::ALL
            .into_iter()
            .find(|operation| operation.as_str() == stored)
            .ok_or_else(|| MetadataError::Corrupt(format!("unknown audited operation {stored}")))
    }
}

/// A document a request returned (a passage of it, or the document itself) or cited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditedDocument {
    pub doc_id: String,
    /// The version returned or cited; `None` when the request did not see one (a delete).
    pub version: Option<String>,
    /// Whether the answer cited it (rather than only returning it).
    pub cited: bool,
}

/// One audited request. Never holds passage text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    /// When the request arrived, Unix milliseconds.
    pub at_ms: i64,
    /// The request's `x-request-id`.
    pub request_id: String,
    pub org: String,
    /// The API key's label, or `<issuer>:<subject>` for a token's user.
    pub actor: String,
    /// The issuer that vouched for the user; `None` for an API key.
    pub issuer: Option<String>,
    pub operation: Operation,
    /// The question, query or draft as `audit.questions` keeps it.
    pub question: Option<String>,
    pub documents: Vec<AuditedDocument>,
    /// `generated` or `extractive`, for answers.
    pub mode: Option<String>,
    pub found: Option<bool>,
    /// The HTTP status of the response.
    pub status: u16,
    pub latency_ms: u64,
}

/// Which records to read: all of them match every filter given; newest first, at most
/// `limit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org: Option<String>,
    pub actor: Option<String>,
    /// Records that returned or cited this document.
    pub doc_id: Option<String>,
    pub operation: Option<Operation>,
    /// At or after this time, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Records of this question, exactly as stored (text, or its `hmac-sha256:` value).
    pub question: Option<String>,
    pub limit: usize,
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One statement inserting all of a record's documents; `None` when it has none.
fn document_rows(id: &str, documents: &[AuditedDocument]) -> Option<Statement> {
    if documents.is_empty() {
        return None;
    }
    let mut params: Vec<SqlValue> = Vec::with_capacity(1 + 4 * documents.len());
    params.push(id.into());
    let mut rows = Vec::with_capacity(documents.len());
    for (position, document) in documents.iter().enumerate() {
        let first = params.len() + 1;
        rows.push(format!(
            "(?1, ?{first}, ?{}, ?{}, ?{})",
            first + 1,
            first + 2,
            first + 3
        ));
        params.extend([
            clamp_i64(position as u64).into(),
            document.doc_id.as_str().into(),
            document.version.as_deref().into(),
            document.cited.into(),
        ]);
    }
    Some(Statement::new(
        format!(
            "INSERT INTO audit_documents (audit_id, position, doc_id, version, cited) VALUES {}",
            rows.join(", ")
        ),
        params,
    ))
}

fn record_row(record: &AuditRecord, on_conflict: &str) -> Statement {
    Statement::new(
        format!(
            "INSERT INTO audit (id, at_ms, request_id, org, actor, issuer, operation, question, mode, found, status, latency_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12){on_conflict}"
        ),
        vec![
            record.id.as_str().into(),
            record.at_ms.into(),
            record.request_id.as_str().into(),
            record.org.as_str().into(),
            record.actor.as_str().into(),
            record.issuer.as_deref().into(),
            record.operation.as_str().into(),
            record.question.as_deref().into(),
            record.mode.as_deref().into(),
            record.found.into(),
            i64::from(record.status).into(),
            clamp_i64(record.latency_ms).into(),
        ],
    )
}

impl MetadataStore {
    /// Stores a new record and its documents, together or not at all.
    pub fn record_audit(&self, record: &AuditRecord) -> Result<(), MetadataError> {
        let mut statements = vec![record_row(record, "")];
        statements.extend(document_rows(&record.id, &record.documents));
        self.database.execute(&statements)?;
        Ok(())
    }

    /// Completes a record written ahead of a change with the request's outcome: its status,
    /// latency, answer and documents replaced (stored as a new record if there is none).
    pub fn complete_written_ahead(&self, record: &AuditRecord) -> Result<(), MetadataError> {
        let mut statements = vec![
            record_row(
                record,
                " ON CONFLICT (id) DO UPDATE SET question = excluded.question, mode = excluded.mode, \
                 found = excluded.found, status = excluded.status, latency_ms = excluded.latency_ms",
            ),
            Statement::new(
                "DELETE FROM audit_documents WHERE audit_id = ?1",
                vec![record.id.as_str().into()],
            ),
        ];
        statements.extend(document_rows(&record.id, &record.documents));
        self.database.execute(&statements)?;
        Ok(())
    }

    /// Completes a record written when a streamed answer started: its documents, answer mode,
    /// whether it found an answer, and the latency of the whole stream.
    pub fn complete_audit(
        &self,
        id: &str,
        documents: &[AuditedDocument],
        mode: Option<&str>,
        found: Option<bool>,
        latency_ms: u64,
    ) -> Result<(), MetadataError> {
        let mut statements = vec![
            Statement::new(
                "UPDATE audit SET mode = ?1, found = ?2, latency_ms = ?3 WHERE id = ?4",
                vec![
                    mode.into(),
                    found.into(),
                    clamp_i64(latency_ms).into(),
                    id.into(),
                ],
            ),
            Statement::new(
                "DELETE FROM audit_documents WHERE audit_id = ?1",
                vec![id.into()],
            ),
        ];
        statements.extend(document_rows(id, documents));
        self.database.execute(&statements)?;
        Ok(())
    }

    /// The records matching `filter`, newest first.
    pub fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, MetadataError> {
        let mut conditions = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        let mut condition = |sql: &str, value: SqlValue| {
            params.push(value);
            conditions.push(sql.replace("?", &format!("?{}", params.len())));
        };
        if let Some(org) = &filter.org {
            condition("org = ?", org.as_str().into());
        }
        if let Some(actor) = &filter.actor {
            condition("actor = ?", actor.as_str().into());
        }
        if let Some(operation) = filter.operation {
            condition("operation = ?", operation.as_str().into());
        }
        if let Some(since_ms) = filter.since_ms {
            condition("at_ms >= ?", since_ms.into());
        }
        if let Some(question) = &filter.question {
            condition("question = ?", question.as_str().into());
        }
        if let Some(doc_id) = &filter.doc_id {
            condition(
                "id IN (SELECT audit_id FROM audit_documents WHERE doc_id = ?)",
                doc_id.as_str().into(),
            );
        }
        let limit = clamp_i64(filter.limit as u64);
        params.push(limit.into());
        let sql = format!(
            "SELECT id, at_ms, request_id, org, actor, issuer, operation, question, mode, found, status, latency_ms
             FROM audit {} ORDER BY at_ms DESC, id DESC LIMIT ?{}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            params.len()
        );
        let mut records = self
            .database
            .query(&Statement::new(sql, params))?
            .into_iter()
            .map(|row| {
                let mut columns = Columns::new(row);
                Ok(AuditRecord {
                    id: columns.text()?,
                    at_ms: columns.integer()?,
                    request_id: columns.text()?,
                    org: columns.text()?,
                    actor: columns.text()?,
                    issuer: columns.optional_text()?,
                    operation: Operation::parse(&columns.text()?)?,
                    question: columns.optional_text()?,
                    mode: columns.optional_text()?,
                    found: columns.optional_integer()?.map(|found| found != 0),
                    status: u16::try_from(columns.integer()?).unwrap_or_default(),
                    latency_ms: u64::try_from(columns.integer()?).unwrap_or_default(),
                    documents: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, MetadataError>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        let mut documents = Vec::new();
        for ids in records.chunks(IDS_PER_QUERY) {
            let placeholders = (1..=ids.len())
                .map(|index| format!("?{index}"))
                .collect::<Vec<_>>()
                .join(", ");
            documents.extend(self.database.query(&Statement::new(
                format!(
                    "SELECT audit_id, doc_id, version, cited FROM audit_documents
                     WHERE audit_id IN ({placeholders}) ORDER BY audit_id, position"
                ),
                ids.iter().map(|record| record.id.as_str().into()).collect(),
            ))?);
        }
        let mut by_record: std::collections::HashMap<String, Vec<AuditedDocument>> =
            std::collections::HashMap::new();
        for row in documents {
            let mut columns = Columns::new(row);
            let audit_id = columns.text()?;
            by_record
                .entry(audit_id)
                .or_default()
                .push(AuditedDocument {
                    doc_id: columns.text()?,
                    version: columns.optional_text()?,
                    cited: columns.integer()? != 0,
                });
        }
        for record in &mut records {
            record.documents = by_record.remove(&record.id).unwrap_or_default();
        }
        Ok(records)
    }

    /// Deletes the records from before `before_ms` (Unix milliseconds); how many.
    pub fn prune_audit(&self, before_ms: i64) -> Result<u64, MetadataError> {
        let changed = self.database.execute(&[
            Statement::new(
                "DELETE FROM audit_documents WHERE audit_id IN (SELECT id FROM audit WHERE at_ms < ?1)",
                vec![before_ms.into()],
            ),
            Statement::new(
                "DELETE FROM audit WHERE at_ms < ?1",
                vec![before_ms.into()],
            ),
        ])?;
        Ok(changed.last().copied().unwrap_or_default())
    }
}
