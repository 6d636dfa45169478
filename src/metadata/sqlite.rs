//! The embedded backend: one SQLite file in the data directory, in WAL mode, behind a mutex
//! (SQLite serialises writers anyway; the calls are short).
//!
//! `synchronous = NORMAL`: in WAL mode a commit then reaches the disk at the next checkpoint
//! rather than with an fsync of its own, so a power cut may lose the last commits but never
//! corrupts the file. One fsync per audited request would otherwise cost every search.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior, params_from_iter};

use super::{Database, METADATA_FILE, MetadataError, SqlValue, Statement};

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Sqlite {
    connection: Mutex<Connection>,
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
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(e.to_string()))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(e.to_string()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Self {
            connection: Mutex::new(connection),
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
