//! The service's own records (feedback on answers), in an embedded SQLite database beside the
//! document store (`<data_dir>/hikitsugi-metadata.sqlite`, WAL mode). Document text is never
//! stored here: only questions, answers as shown, and which document versions they cited.
//!
//! The schema is one numbered migration list applied in order at opening, recorded in
//! `schema_migrations`, so that a later backend (PostgreSQL, for several replicas) runs the same
//! list.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The file, inside the data directory.
pub const METADATA_FILE: &str = "hikitsugi-metadata.sqlite";

/// Migrations, applied in order; never edit one that has shipped, add the next.
const MIGRATIONS: &[&str] = &["CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
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
    CREATE INDEX feedback_by_org ON feedback (org, created_at);"];

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "the metadata database {path} cannot be opened ({reason}): check that the data directory is writable"
    )]
    Open { path: String, reason: String },
    #[error("the metadata database failed: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
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

/// The embedded metadata database.
pub struct MetadataStore {
    connection: Mutex<Connection>,
}

impl MetadataStore {
    /// Opens (creating when missing) the database in `data_dir` and applies its migrations.
    pub fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        let path = data_dir.join(METADATA_FILE);
        let open_error = |reason: String| MetadataError::Open {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(e.to_string()))?;
        let connection = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(e.to_string()))?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic elsewhere leaves nothing half done here.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores feedback (its `id` and `created_at` are filled in) and returns it as stored.
    pub fn record_feedback(&self, mut feedback: Feedback) -> Result<Feedback, MetadataError> {
        feedback.id = uuid::Uuid::new_v4().to_string();
        feedback.created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let citations = serde_json::to_string(&feedback.citations)
            .map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        self.connection().execute(
            "INSERT INTO feedback (id, created_at, org, user_label, question, answer, mode, found, rating, comment, citations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                feedback.id,
                feedback.created_at as i64,
                feedback.org,
                feedback.user,
                feedback.question,
                feedback.answer,
                feedback.mode,
                feedback.found,
                feedback.rating.as_str(),
                feedback.comment,
                citations,
            ],
        )?;
        Ok(feedback)
    }

    /// The feedback given by members of `org`, newest first; only 👎 with `downs_only`.
    pub fn feedback_of(&self, org: &str, downs_only: bool) -> Result<Vec<Feedback>, MetadataError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, created_at, org, user_label, question, answer, mode, found, rating, comment, citations
             FROM feedback WHERE org = ?1 AND (?2 = 0 OR rating = 'down')
             ORDER BY created_at DESC, id",
        )?;
        let rows = statement.query_map(params![org, downs_only], |row| {
            Ok((
                Feedback {
                    id: row.get(0)?,
                    created_at: row.get::<_, i64>(1)? as u64,
                    org: row.get(2)?,
                    user: row.get(3)?,
                    question: row.get(4)?,
                    answer: row.get(5)?,
                    mode: row.get(6)?,
                    found: row.get(7)?,
                    rating: if row.get::<_, String>(8)? == "up" {
                        Rating::Up
                    } else {
                        Rating::Down
                    },
                    comment: row.get(9)?,
                    citations: Vec::new(),
                },
                row.get::<_, String>(10)?,
            ))
        })?;
        rows.map(|row| {
            let (mut feedback, citations) = row?;
            feedback.citations = serde_json::from_str(&citations)
                .map_err(|e| MetadataError::Corrupt(format!("feedback {}: {e}", feedback.id)))?;
            Ok(feedback)
        })
        .collect()
    }
}

fn migrate(connection: &Connection) -> Result<(), MetadataError> {
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        [],
    )?;
    let applied: i64 = connection
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = index as i64 + 1;
        connection.execute_batch(&format!(
            "BEGIN; {migration}; INSERT INTO schema_migrations (version) VALUES ({version}); COMMIT;"
        ))?;
        tracing::info!(version, "applied a metadata migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback(org: &str, rating: Rating, question: &str) -> Feedback {
        Feedback {
            id: String::new(),
            created_at: 0,
            org: org.to_owned(),
            user: "demo".to_owned(),
            question: question.to_owned(),
            answer: "答え。[1]".to_owned(),
            mode: "extractive".to_owned(),
            found: true,
            rating,
            comment: Some("根拠が違う".to_owned()),
            citations: vec![CitedVersion {
                doc_id: "003.txt".to_owned(),
                version: "v1".to_owned(),
            }],
        }
    }

    #[test]
    fn feedback_is_kept_per_organisation_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path()).expect("open");
        let stored = store
            .record_feedback(feedback("pref-a", Rating::Down, "質問1"))
            .expect("record");
        assert!(!stored.id.is_empty() && stored.created_at > 0);
        store
            .record_feedback(feedback("pref-a", Rating::Up, "質問2"))
            .expect("record");
        store
            .record_feedback(feedback("pref-b", Rating::Down, "質問3"))
            .expect("record");
        drop(store);

        let store = MetadataStore::open(dir.path()).expect("reopen");
        let of_a = store.feedback_of("pref-a", false).expect("read");
        assert_eq!(of_a.len(), 2);
        assert!(of_a.iter().all(|f| f.org == "pref-a"));
        let downs = store.feedback_of("pref-a", true).expect("read");
        assert_eq!(downs.len(), 1);
        assert_eq!(downs[0], stored);
        assert!(store.feedback_of("pref-c", false).expect("read").is_empty());
    }
}
