//! Copying every point (vectors and payload, no re-embedding) from one store to another, e.g.
//! from the embedded store to a Qdrant cluster.
//!
//! Points keep their ids, so copying a point twice leaves one copy. The copy walks the source in
//! point-id order and records, after each batch the target has acknowledged, where the next batch
//! starts; an interrupted run started again with the same state file goes on from there. At the
//! end the number of chunks of every document version is compared between the two stores, and
//! only then are the document heads copied: the target shows a document only once all of its
//! live version's chunks are there.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{StoreAdmin, StoreError};

/// A store named on the command line: `edge:DIR` or `qdrant:URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Edge(PathBuf),
    Qdrant(String),
}

impl FromStr for StoreLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("edge", dir)) if !dir.is_empty() => Ok(Self::Edge(PathBuf::from(dir))),
            Some(("qdrant", url)) if !url.is_empty() => Ok(Self::Qdrant(url.to_owned())),
            _ => Err(format!(
                "{text:?} is not a store: write edge:DIR or qdrant:URL (e.g. qdrant:http://127.0.0.1:6334)"
            )),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edge(dir) => write!(f, "edge:{}", dir.display()),
            Self::Qdrant(url) => write!(f, "qdrant:{url}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {action} the migration state file {path}: {reason}")]
    State {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the state file {path} belongs to a migration from {source_store} to {target}; use another --state file or delete it"
    )]
    OtherMigration {
        path: PathBuf,
        source_store: String,
        target: String,
    },
    #[error(
        "the stores use different dense dimensions ({source_dim} and {target_dim}): they hold different models"
    )]
    DimensionMismatch {
        source_dim: usize,
        target_dim: usize,
    },
    #[error("after copying, {count} document versions differ between the stores, e.g. {examples}")]
    Verification { count: usize, examples: String },
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationReport {
    /// Points copied by this run.
    pub copied: u64,
    /// Points a previous, interrupted run had copied (0 for a fresh start).
    pub resumed_after: u64,
    /// Document versions whose chunk counts were checked in the target.
    pub verified_versions: usize,
    pub seconds: f64,
}

/// Where an interrupted migration goes on: saved after every acknowledged batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    pub source: String,
    pub target: String,
    /// First point id of the next batch; `None` once every point was copied.
    pub next: Option<Uuid>,
    pub copied: u64,
}

impl MigrationState {
    fn load(path: &Path) -> Result<Option<Self>, MigrateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(state_error("read", path, error)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| state_error("parse", path, error))
    }

    /// Written to a temporary file and renamed, so a crash never leaves a torn state file.
    pub fn save(&self, path: &Path) -> Result<(), MigrateError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| state_error("encode", path, e))?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, json).map_err(|e| state_error("write", &temporary, e))?;
        std::fs::rename(&temporary, path).map_err(|e| state_error("write", path, e))
    }
}

fn state_error(action: &'static str, path: &Path, error: impl fmt::Display) -> MigrateError {
    MigrateError::State {
        action,
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Copies every point of `source` into `target` in batches of `batch_size`, resuming from
/// `state_path` when it holds the state of the same migration, then verifies chunk counts per
/// document version. `progress` is called after each batch with (points copied so far, total).
/// The state file is removed when the migration is verified.
pub fn migrate(
    source: (&dyn StoreAdmin, &str),
    target: (&dyn StoreAdmin, &str),
    state_path: &Path,
    batch_size: usize,
    progress: &dyn Fn(u64, u64),
) -> Result<MigrationReport, MigrateError> {
    let started = Instant::now();
    let ((source, source_name), (target, target_name)) = (source, target);
    if source.dense_dim() != target.dense_dim() {
        return Err(MigrateError::DimensionMismatch {
            source_dim: source.dense_dim(),
            target_dim: target.dense_dim(),
        });
    }
    let mut state = match MigrationState::load(state_path)? {
        Some(state) if state.source == source_name && state.target == target_name => state,
        Some(state) => {
            return Err(MigrateError::OtherMigration {
                path: state_path.to_owned(),
                source_store: state.source,
                target: state.target,
            });
        }
        None => MigrationState {
            source: source_name.to_owned(),
            target: target_name.to_owned(),
            next: None,
            copied: 0,
        },
    };
    let resumed_after = state.copied;
    let fresh = resumed_after == 0 && state.next.is_none();
    let total = source.point_count()?;
    progress(state.copied, total);

    if fresh || state.next.is_some() {
        let mut from = state.next;
        loop {
            let page = source.export_points(from, batch_size.max(1))?;
            target.import_points(&page.points)?;
            state.copied += page.points.len() as u64;
            state.next = page.next;
            state.save(state_path)?;
            progress(state.copied, total);
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
    }

    let verified_versions = verify(source, target)?;
    let heads: Vec<_> = source.heads()?.into_values().collect();
    target.import_heads(&heads)?;
    if let Err(error) = std::fs::remove_file(state_path) {
        tracing::warn!(path = %state_path.display(), %error, "cannot remove the finished migration's state file");
    }
    Ok(MigrationReport {
        copied: state.copied - resumed_after,
        resumed_after,
        verified_versions,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Every document version of the source has as many chunks in the target.
fn verify(source: &dyn StoreAdmin, target: &dyn StoreAdmin) -> Result<usize, MigrateError> {
    let expected = source.chunk_counts()?;
    let found = target.chunk_counts()?;
    let differing: BTreeMap<&(String, String), (u64, u64)> = expected
        .iter()
        .filter_map(|(key, count)| {
            let in_target = found.get(key).copied().unwrap_or(0);
            (in_target != *count).then_some((key, (*count, in_target)))
        })
        .collect();
    if differing.is_empty() {
        return Ok(expected.len());
    }
    let examples = differing
        .iter()
        .take(5)
        .map(|((doc_id, version), (want, got))| {
            format!("{doc_id} ({version}): {want} chunks in the source, {got} in the target")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(MigrateError::Verification {
        count: differing.len(),
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations_parse() {
        assert_eq!(
            "edge:data".parse(),
            Ok(StoreLocation::Edge(PathBuf::from("data")))
        );
        assert_eq!(
            "qdrant:http://127.0.0.1:6334".parse(),
            Ok(StoreLocation::Qdrant("http://127.0.0.1:6334".to_owned()))
        );
        for bad in ["data", "edge:", "s3:bucket", "qdrant:"] {
            assert!(bad.parse::<StoreLocation>().is_err(), "{bad}");
        }
    }
}
