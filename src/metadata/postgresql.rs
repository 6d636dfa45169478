//! The shared backend: a PostgreSQL database (`metadata.url`), for several replicas.
//!
//! One connection per process behind a mutex, with its prepared statements cached; a broken
//! connection is dropped and the next call connects again, so a database restart costs the
//! calls made while it is down and nothing after. The statements are the SQLite ones: `?N`
//! placeholders become `$N`, and values are bound as the type PostgreSQL inferred for each
//! parameter (`INTEGER` columns take an `i32`, `BIGINT` an `i64`).
//!
//! With `sslmode=require` in the URL the connection is TLS (rustls), and the server's
//! certificate must be signed by an authority the system trusts or one in `ca_file`, for the
//! host the URL names: a certificate nobody vouches for is refused, never accepted unchecked.
//! Without it (`disable`, or `prefer`, the default) the connection is plain TCP or a Unix
//! socket: `prefer` does not try TLS, since TLS that accepts any certificate protects nothing.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::config::SslMode;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Database, MetadataError, SqlValue, Statement};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Taken (for the transaction) while migrating, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6869_6b69_7473_7567; // "hikitsug"

pub(super) struct Postgres {
    config: postgres::Config,
    /// Set with `sslmode=require`.
    tls: Option<MakeRustlsConnect>,
    connection: Mutex<Option<Connection>>,
}

struct Connection {
    client: Client,
    /// Prepared statements by their (rewritten) SQL.
    prepared: HashMap<String, postgres::Statement>,
}

impl Postgres {
    /// `ca_file`: a PEM file of the authorities that may sign the server's certificate, beside
    /// the system's; only with `sslmode=require`.
    pub(super) fn connect(url: &str, ca_file: Option<&Path>) -> Result<Self, MetadataError> {
        // The URL's own words may hold the password: never repeat them.
        let mut config = postgres::Config::from_str(url).map_err(|_| MetadataError::Connect {
            reason: "metadata.url is not a valid PostgreSQL URL".to_owned(),
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let tls = match (config.get_ssl_mode(), ca_file) {
            (SslMode::Require, _) => Some(tls_connector(ca_file)?),
            (_, Some(_)) => {
                return Err(MetadataError::Connect {
                    reason: "metadata.ca_file is set but metadata.url does not ask for TLS: add sslmode=require to the URL".to_owned(),
                });
            }
            (_, None) => None,
        };
        let postgres = Self {
            config,
            tls,
            connection: Mutex::new(None),
        };
        // Connect now: a wrong URL or an unreachable server fails at start, not at a request.
        drop(postgres.connection()?);
        Ok(postgres)
    }

    /// The live connection, connecting first when there is none or it broke.
    fn connection(&self) -> Result<MutexGuard<'_, Option<Connection>>, MetadataError> {
        // A panic while holding it leaves at worst a connection mid-transaction, which the
        // next transaction's BEGIN reports; the connection is then replaced.
        let mut guard = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard
            .as_ref()
            .is_none_or(|connection| connection.client.is_closed())
        {
            let connected = match &self.tls {
                Some(tls) => self.config.connect(tls.clone()),
                None => self.config.connect(NoTls),
            };
            let client = connected.map_err(|error| MetadataError::Connect {
                reason: connect_failure(&error, self.tls.is_some()),
            })?;
            *guard = Some(Connection {
                client,
                prepared: HashMap::new(),
            });
        }
        Ok(guard)
    }

    /// Runs `work` on the connection; a failure that broke the connection drops it.
    fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut guard = self.connection()?;
        let Some(connection) = guard.as_mut() else {
            return Err(MetadataError::Connect {
                reason: "no connection".to_owned(),
            });
        };
        let result = work(connection);
        if result.is_err() && connection.client.is_closed() {
            *guard = None;
        }
        result
    }
}

/// TLS that trusts the system's authorities and those of `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, MetadataError> {
    let tls_error = |reason: String| MetadataError::Connect { reason };
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are the system's business; the file named is ours.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let unreadable = |reason: String| {
            tls_error(format!(
                "metadata.ca_file {} is not a readable PEM file of certificates: {reason}",
                path.display()
            ))
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|error| unreadable(error.to_string()))?;
        if certificates.is_empty() {
            return Err(unreadable("it holds no certificate".to_owned()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| unreadable(error.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(tls_error(
            "sslmode=require, but no certificate authority is trusted: install the system's (Debian: ca-certificates) or name a PEM file in metadata.ca_file".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Why a connection failed, with what to do when it was the server's certificate.
fn connect_failure(error: &postgres::Error, tls: bool) -> String {
    // The error says "error performing TLS handshake"; its sources say why.
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    if tls && reason.contains("certificate") {
        format!(
            "{reason}: the server's certificate must be signed by an authority in metadata.ca_file (or the system's) and name the host of metadata.url"
        )
    } else {
        reason
    }
}

impl Connection {
    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement, MetadataError> {
        let sql = numbered_placeholders(sql);
        if let Some(prepared) = self.prepared.get(&sql) {
            return Ok(prepared.clone());
        }
        let prepared = self.client.prepare(&sql)?;
        self.prepared.insert(sql, prepared.clone());
        Ok(prepared)
    }
}

/// `?1` → `$1`: the SQLite placeholders as PostgreSQL writes them. The statements have no `?`
/// inside string literals.
fn numbered_placeholders(sql: &str) -> String {
    let mut rewritten = String::with_capacity(sql.len());
    let mut characters = sql.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '?' && characters.peek().is_some_and(char::is_ascii_digit) {
            rewritten.push('$');
        } else {
            rewritten.push(character);
        }
    }
    rewritten
}

/// `value` as the type PostgreSQL expects for the parameter.
fn bound(value: &SqlValue, expected: &Type) -> Result<Box<dyn ToSql + Sync>, MetadataError> {
    let mismatch =
        || MetadataError::Corrupt(format!("cannot bind {value:?} as a {expected} parameter"));
    Ok(match value {
        SqlValue::Integer(number) if *expected == Type::INT8 => Box::new(*number),
        SqlValue::Integer(number) if *expected == Type::INT4 => {
            Box::new(i32::try_from(*number).map_err(|_| mismatch())?)
        }
        SqlValue::Integer(number) if *expected == Type::BOOL => Box::new(*number != 0),
        SqlValue::Text(text) if *expected == Type::TEXT || *expected == Type::VARCHAR => {
            Box::new(text.clone())
        }
        SqlValue::Null if *expected == Type::INT8 => Box::new(None::<i64>),
        SqlValue::Null if *expected == Type::INT4 => Box::new(None::<i32>),
        SqlValue::Null if *expected == Type::BOOL => Box::new(None::<bool>),
        SqlValue::Null if *expected == Type::TEXT || *expected == Type::VARCHAR => {
            Box::new(None::<String>)
        }
        _ => return Err(mismatch()),
    })
}

fn bound_params(
    prepared: &postgres::Statement,
    params: &[SqlValue],
) -> Result<Vec<Box<dyn ToSql + Sync>>, MetadataError> {
    prepared
        .params()
        .iter()
        .zip(params)
        .map(|(expected, value)| bound(value, expected))
        .collect()
}

fn values_of(row: &Row) -> Result<Vec<SqlValue>, MetadataError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let kind = column.type_();
            Ok(if *kind == Type::INT8 {
                row.try_get::<_, Option<i64>>(index)?.into()
            } else if *kind == Type::INT4 {
                row.try_get::<_, Option<i32>>(index)?.map(i64::from).into()
            } else if *kind == Type::BOOL {
                row.try_get::<_, Option<bool>>(index)?.into()
            } else if *kind == Type::TEXT || *kind == Type::VARCHAR {
                row.try_get::<_, Option<String>>(index)?.into()
            } else {
                return Err(MetadataError::Corrupt(format!(
                    "column {} has type {kind}, which no table has",
                    column.name()
                )));
            })
        })
        .collect()
}

fn references(params: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(AsRef::as_ref).collect()
}

impl Database for Postgres {
    fn migrate(&self, migrations: &[&str]) -> Result<(), MetadataError> {
        self.with_connection(|connection| {
            let mut transaction = connection.client.transaction()?;
            transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            transaction.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
            )?;
            let applied: i32 = transaction
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )?
                .try_get(0)?;
            for (index, migration) in migrations
                .iter()
                .enumerate()
                .skip(usize::try_from(applied).unwrap_or(usize::MAX))
            {
                let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
                transaction.batch_execute(migration)?;
                transaction.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&version],
                )?;
                tracing::info!(version, "applied a metadata migration (PostgreSQL)");
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn execute(&self, statements: &[Statement]) -> Result<Vec<u64>, MetadataError> {
        self.with_connection(|connection| {
            let prepared = statements
                .iter()
                .map(|statement| connection.prepare(&statement.sql))
                .collect::<Result<Vec<_>, _>>()?;
            let mut transaction = connection.client.transaction()?;
            let mut changed = Vec::with_capacity(statements.len());
            for (statement, prepared) in statements.iter().zip(&prepared) {
                let params = bound_params(prepared, &statement.params)?;
                changed.push(transaction.execute(prepared, &references(&params))?);
            }
            transaction.commit()?;
            Ok(changed)
        })
    }

    fn query(&self, statement: &Statement) -> Result<Vec<Vec<SqlValue>>, MetadataError> {
        self.with_connection(|connection| {
            let prepared = connection.prepare(&statement.sql)?;
            let params = bound_params(&prepared, &statement.params)?;
            connection
                .client
                .query(&prepared, &references(&params))?
                .iter()
                .map(values_of)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_the_postgresql_way() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?10) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $10) AND d = '?'"
        );
    }
}
