//! The service's own records: feedback on answers and the audit trail. Document text is never
//! stored here: only questions, answers as shown, and which document versions they named.
//!
//! Two backends hold them: an embedded SQLite file beside the document store
//! (`<data_dir>/hikitsugi-metadata.sqlite`, WAL mode), the default, and a PostgreSQL database
//! when `metadata.url` names one, so that several replicas behind a load balancer share one
//! audit trail. The record logic ([`MetadataStore`], this module and `audit.rs`) is written
//! once over a small [`Database`] trait that each backend implements: statements in one
//! transaction, queries returning rows of [`SqlValue`]s. The SQL is written to run on both
//! (portable types, `?N` placeholders that the PostgreSQL backend rewrites to `$N`), so one
//! numbered migration list, applied in order at opening and recorded in `schema_migrations`,
//! serves both. The trade-off: no dialect features (JSON columns, `RETURNING`, upserts), which
//! these few tables do not need.
//!
//! Every call blocks: the service runs them on blocking threads (`spawn_blocking`).
//!
//! ```no_run
//! # fn run() -> Result<(), hikitsugi::metadata::MetadataError> {
//! let store = hikitsugi::metadata::MetadataStore::open(std::path::Path::new("data"))?;
//! let downs = store.feedback_of("pref-wakayama", true)?;
//! # Ok(()) }
//! ```

mod audit;
mod postgresql;
mod sqlite;
#[cfg(test)]
mod suite;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use audit::{AuditFilter, AuditRecord, AuditedDocument, Operation};

/// The SQLite file, inside the data directory.
pub const METADATA_FILE: &str = "hikitsugi-metadata.sqlite";

/// Migrations, applied in order; never change what one does once shipped, add the next. Types
/// are ones both backends read alike: `TEXT`, `INTEGER` (small numbers and 0/1 flags) and
/// `BIGINT` (times); in SQLite `BIGINT` is `INTEGER` (the first migration's `created_at` was
/// `INTEGER` before PostgreSQL was supported: the same column to SQLite).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        org TEXT NOT NULL,
        user_label TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        mode TEXT NOT NULL,
        found INTEGER NOT NULL,
        rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
        comment TEXT,
        citations TEXT NOT NULL
    );
    CREATE INDEX feedback_by_org ON feedback (org, created_at);",
    "CREATE TABLE audit (
        id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        request_id TEXT NOT NULL,
        org TEXT NOT NULL,
        actor TEXT NOT NULL,
        issuer TEXT,
        operation TEXT NOT NULL,
        question TEXT,
        mode TEXT,
        found INTEGER,
        status INTEGER NOT NULL,
        latency_ms BIGINT NOT NULL
    );
    CREATE INDEX audit_by_org ON audit (org, at_ms);
    CREATE INDEX audit_by_time ON audit (at_ms);
    CREATE TABLE audit_documents (
        audit_id TEXT NOT NULL REFERENCES audit (id),
        position INTEGER NOT NULL,
        doc_id TEXT NOT NULL,
        version TEXT,
        cited INTEGER NOT NULL,
        PRIMARY KEY (audit_id, position)
    );
    CREATE INDEX audit_documents_by_doc ON audit_documents (doc_id);",
    // Each record's documents landed on one leaf of this index per distinct document: half
    // the pages an audited request's commit wrote. Finding the records that read a document
    // scans `audit_documents` instead (tens of milliseconds per million rows).
    "DROP INDEX audit_documents_by_doc;",
];

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "the metadata database {path} cannot be opened ({reason}): check that the data directory is writable"
    )]
    Open { path: String, reason: String },
    #[error("the PostgreSQL metadata database cannot be reached: {reason}")]
    Connect { reason: String },
    #[error("the metadata database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the PostgreSQL metadata database failed: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// A value bound to a statement or read from a row. Flags are integers 0/1 on both backends.
#[derive(Debug, Clone, PartialEq)]
enum SqlValue {
    Null,
    Integer(i64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for SqlValue {
    fn from(number: i64) -> Self {
        Self::Integer(number)
    }
}

impl From<bool> for SqlValue {
    fn from(flag: bool) -> Self {
        Self::Integer(i64::from(flag))
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// One statement and its parameters (`?1`, `?2`, … in order).
struct Statement {
    sql: String,
    params: Vec<SqlValue>,
}

impl Statement {
    fn new(sql: impl Into<String>, params: Vec<SqlValue>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// What a backend provides; the records are built on it in this module and `audit.rs`.
trait Database: Send + Sync {
    /// Applies the migrations not yet applied, in order, so that concurrent openers (several
    /// processes or replicas) apply each exactly once.
    fn migrate(&self, migrations: &[&str]) -> Result<(), MetadataError>;
    /// Runs the statements in one transaction; the rows each changed.
    fn execute(&self, statements: &[Statement]) -> Result<Vec<u64>, MetadataError>;
    /// The rows of one query, each column as a [`SqlValue`].
    fn query(&self, statement: &Statement) -> Result<Vec<Vec<SqlValue>>, MetadataError>;
}

/// A row's columns, read in order with the type the caller expects.
struct Columns {
    values: std::vec::IntoIter<SqlValue>,
}

impl Columns {
    fn new(row: Vec<SqlValue>) -> Self {
        Self {
            values: row.into_iter(),
        }
    }

    fn next_value(&mut self) -> Result<SqlValue, MetadataError> {
        self.values
            .next()
            .ok_or_else(|| MetadataError::Corrupt("a row has fewer columns than read".to_owned()))
    }

    fn text(&mut self) -> Result<String, MetadataError> {
        self.optional_text()?
            .ok_or_else(|| MetadataError::Corrupt("a required text column is NULL".to_owned()))
    }

    fn optional_text(&mut self) -> Result<Option<String>, MetadataError> {
        match self.next_value()? {
            SqlValue::Text(text) => Ok(Some(text)),
            SqlValue::Null => Ok(None),
            other => Err(MetadataError::Corrupt(format!(
                "expected text, found {other:?}"
            ))),
        }
    }

    fn integer(&mut self) -> Result<i64, MetadataError> {
        self.optional_integer()?
            .ok_or_else(|| MetadataError::Corrupt("a required number column is NULL".to_owned()))
    }

    fn optional_integer(&mut self) -> Result<Option<i64>, MetadataError> {
        match self.next_value()? {
            SqlValue::Integer(number) => Ok(Some(number)),
            SqlValue::Null => Ok(None),
            other => Err(MetadataError::Corrupt(format!(
                "expected a number, found {other:?}"
            ))),
        }
    }
}

/// 👍 or 👎.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

/// A document version an answer cited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitedVersion {
    pub doc_id: String,
    pub version: String,
}

/// One piece of feedback on one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Who gave it: the organisation and the key's label (or the portal user).
    pub org: String,
    pub user: String,
    pub question: String,
    pub answer: String,
    /// `generated` or `extractive`.
    pub mode: String,
    pub found: bool,
    pub rating: Rating,
    pub comment: Option<String>,
    pub citations: Vec<CitedVersion>,
}

/// The metadata database, on whichever backend it was opened.
pub struct MetadataStore {
    database: Box<dyn Database>,
}

impl MetadataStore {
    /// Opens (creating when missing) the SQLite database in `data_dir` and applies its
    /// migrations.
    pub fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        Self::on(Box::new(sqlite::Sqlite::open(data_dir)?))
    }

    /// Connects to the PostgreSQL database at `url` and applies its migrations; with
    /// `sslmode=require`, over TLS trusting the system's certificate authorities and those in
    /// the PEM file `ca_file`.
    pub fn connect(url: &str, ca_file: Option<&Path>) -> Result<Self, MetadataError> {
        Self::on(Box::new(postgresql::Postgres::connect(url, ca_file)?))
    }

    /// The database the configuration names: PostgreSQL with `metadata.url`, else SQLite in
    /// `data_dir`.
    pub fn open_configured(
        config: &crate::config::MetadataConfig,
        data_dir: &Path,
    ) -> Result<Self, MetadataError> {
        match config.postgres_url() {
            Some(url) => Self::connect(url, config.ca_file()),
            None => Self::open(data_dir),
        }
    }

    fn on(database: Box<dyn Database>) -> Result<Self, MetadataError> {
        database.migrate(MIGRATIONS)?;
        Ok(Self { database })
    }

    /// Stores feedback (its `id` and `created_at` are filled in) and returns it as stored.
    pub fn record_feedback(&self, mut feedback: Feedback) -> Result<Feedback, MetadataError> {
        feedback.id = uuid::Uuid::new_v4().to_string();
        feedback.created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let citations = serde_json::to_string(&feedback.citations)
            .map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        self.database.execute(&[Statement::new(
            "INSERT INTO feedback (id, created_at, org, user_label, question, answer, mode, found, rating, comment, citations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            vec![
                feedback.id.as_str().into(),
                i64::try_from(feedback.created_at).unwrap_or(i64::MAX).into(),
                feedback.org.as_str().into(),
                feedback.user.as_str().into(),
                feedback.question.as_str().into(),
                feedback.answer.as_str().into(),
                feedback.mode.as_str().into(),
                feedback.found.into(),
                feedback.rating.as_str().into(),
                feedback.comment.as_deref().into(),
                citations.into(),
            ],
        )])?;
        Ok(feedback)
    }

    /// The feedback given by members of `org`, newest first; only 👎 with `downs_only`.
    pub fn feedback_of(&self, org: &str, downs_only: bool) -> Result<Vec<Feedback>, MetadataError> {
        let ratings = if downs_only {
            "('down')"
        } else {
            "('up', 'down')"
        };
        let rows = self.database.query(&Statement::new(
            format!(
                "SELECT id, created_at, org, user_label, question, answer, mode, found, rating, comment, citations
                 FROM feedback WHERE org = ?1 AND rating IN {ratings}
                 ORDER BY created_at DESC, id"
            ),
            vec![org.into()],
        ))?;
        rows.into_iter()
            .map(|row| {
                let mut columns = Columns::new(row);
                let id = columns.text()?;
                let created_at = columns.integer()?;
                Ok(Feedback {
                    created_at: u64::try_from(created_at).unwrap_or_default(),
                    org: columns.text()?,
                    user: columns.text()?,
                    question: columns.text()?,
                    answer: columns.text()?,
                    mode: columns.text()?,
                    found: columns.integer()? != 0,
                    rating: if columns.text()? == "up" {
                        Rating::Up
                    } else {
                        Rating::Down
                    },
                    comment: columns.optional_text()?,
                    citations: serde_json::from_str(&columns.text()?)
                        .map_err(|e| MetadataError::Corrupt(format!("feedback {id}: {e}")))?,
                    id,
                })
            })
            .collect()
    }
}
