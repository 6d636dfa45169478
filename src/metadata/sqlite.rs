//! The embedded backend: one SQLite file in the data directory, in WAL mode, behind a mutex
//! (SQLite serialises writers anyway; the calls are short).
//!
//! `synchronous = NORMAL`: in WAL mode a commit then reaches the disk at the next checkpoint
//! rather than with an fsync of its own, so a power cut may lose the last commits but never
//! corrupts the file. One fsync per audited request would otherwise cost every search.
//!
//! Checkpoints run on a connection and a thread of their own, every [`CHECKPOINT_INTERVAL`]
//! (`PASSIVE`: beside the writes, never blocking them). Left to SQLite, the commit that fills
//! the log past 1 000 pages runs the checkpoint, fsyncs included, while it holds the connection
//! every audited request is waiting for.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior, params_from_iter};

use super::{Database, METADATA_FILE, MetadataError, SqlValue, Statement};

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: the audit's document inserts alone are one per
/// number of documents.
const STATEMENT_CACHE: usize = 64;

/// How often the log is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

pub(super) struct Sqlite {
    connection: Mutex<Connection>,
    _checkpoints: Option<Checkpoints>,
}

/// The thread that checkpoints the log; dropping it stops the thread and waits for it.
struct Checkpoints {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    fn start(path: &Path) -> Result<Self, String> {
        let connection = Connection::open(path).map_err(|e| e.to_string())?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("metadata-checkpoint".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    if let Err(error) =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%error, "checkpointing the metadata database failed");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Sqlite {
    pub(super) fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        let path = data_dir.join(METADATA_FILE);
        let open_error = |reason: String| MetadataError::Open {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(e.to_string()))?;
        let connection = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        // Small pages (a new file only; an existing one keeps its size): every page a commit
        // changes goes to the log whole, and an audit record changes a row or two in each of
        // its B-trees (about 11 KiB logged per record with 1 KiB pages, 31 KiB with 4 KiB).
        connection
            .pragma_update(None, "page_size", 1024)
            .map_err(|e| open_error(e.to_string()))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(e.to_string()))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(e.to_string()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Without the checkpoint thread, SQLite's own checkpoints stay on.
        let checkpoints = match Checkpoints::start(&path) {
            Ok(checkpoints) => {
                connection
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(|e| open_error(e.to_string()))?;
                Some(checkpoints)
            }
            Err(reason) => {
                tracing::warn!(%reason, "no checkpoint thread: commits checkpoint the metadata database");
                None
            }
        };
        Ok(Self {
            connection: Mutex::new(connection),
            _checkpoints: checkpoints,
        })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic elsewhere leaves nothing half done here.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Self::Integer(number) => ToSqlOutput::Borrowed(ValueRef::Integer(*number)),
            Self::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

fn value_of(value: ValueRef<'_>) -> Result<SqlValue, MetadataError> {
    match value {
        ValueRef::Null => Ok(SqlValue::Null),
        ValueRef::Integer(number) => Ok(SqlValue::Integer(number)),
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map(SqlValue::Text)
            .map_err(|e| MetadataError::Corrupt(e.to_string())),
        ValueRef::Real(_) | ValueRef::Blob(_) => Err(MetadataError::Corrupt(
            "a column holds a real number or a blob, which no table has".to_owned(),
        )),
    }
}

impl Database for Sqlite {
    fn migrate(&self, migrations: &[&str]) -> Result<(), MetadataError> {
        let mut connection = self.connection();
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
            [],
        )?;
        // IMMEDIATE: the write lock before reading the version, so two processes opening one
        // file apply each migration once.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: i64 = transaction.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )?;
        for (index, migration) in migrations
            .iter()
            .enumerate()
            .skip(usize::try_from(applied).unwrap_or(usize::MAX))
        {
            let version = index as i64 + 1;
            transaction.execute_batch(migration)?;
            transaction.execute(
                "INSERT INTO schema_migrations (version) VALUES (?1)",
                [version],
            )?;
            tracing::info!(version, "applied a metadata migration (SQLite)");
        }
        transaction.commit()?;
        Ok(())
    }

    fn execute(&self, statements: &[Statement]) -> Result<Vec<u64>, MetadataError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let mut changed = Vec::with_capacity(statements.len());
        for statement in statements {
            let rows = transaction
                .prepare_cached(&statement.sql)?
                .execute(params_from_iter(statement.params.iter()))?;
            changed.push(rows as u64);
        }
        transaction.commit()?;
        Ok(changed)
    }

    fn query(&self, statement: &Statement) -> Result<Vec<Vec<SqlValue>>, MetadataError> {
        let connection = self.connection();
        let mut prepared = connection.prepare_cached(&statement.sql)?;
        let width = prepared.column_count();
        let mut rows = prepared.query(params_from_iter(statement.params.iter()))?;
        let mut values = Vec::new();
        while let Some(row) = rows.next()? {
            values.push(
                (0..width)
                    .map(|index| value_of(row.get_ref(index)?))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the thread the log would hold these writes (less than SQLite's own checkpoint
    /// size) and the database file would stay empty.
    #[test]
    fn the_log_is_checkpointed_into_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let database = Sqlite::open(dir.path()).unwrap();
        database
            .execute(&[Statement::new("CREATE TABLE t (text TEXT)", vec![])])
            .unwrap();
        for _ in 0..200 {
            let text = SqlValue::Text("記録".repeat(1000));
            database
                .execute(&[Statement::new(
                    "INSERT INTO t (text) VALUES (?1)",
                    vec![text],
                )])
                .unwrap();
        }
        let file_size = || {
            std::fs::metadata(dir.path().join(METADATA_FILE))
                .unwrap()
                .len()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_size() < 1_000_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(file_size() >= 1_000_000, "{} bytes", file_size());
    }
}
