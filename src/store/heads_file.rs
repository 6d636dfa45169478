//! The embedded store's document heads on disk: a snapshot of all of them
//! (`hikitsugi-heads.json`, replaced atomically) and a log of the changes made since
//! (`hikitsugi-heads.log`, one JSON line per change, written and fsynced before the change is
//! acknowledged). A change costs one short write instead of a rewrite of every head, which at a
//! million chunks (50 000 documents) was tens of megabytes per write call; the log is folded
//! into a new snapshot once it outgrows the last one.
//!
//! A crash can cut only the log's last line, a change never acknowledged: opening drops it.
//! Replaying the whole log over a snapshot that already holds it (a crash between a new
//! snapshot and emptying the log) gives the same heads, since each change sets or removes
//! heads whole and the last one for each document wins.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::versions::DocumentHead;
use super::{Result, StoreError};

const SNAPSHOT_FILE: &str = "hikitsugi-heads.json";
const LOG_FILE: &str = "hikitsugi-heads.log";
/// The log is folded into a snapshot when it is longer than the snapshot and than this.
const MIN_FOLD_BYTES: u64 = 1 << 20;

/// Every document's head, by document id.
pub(super) type Heads = BTreeMap<String, DocumentHead>;

/// One acknowledged change of the heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum HeadsChange {
    /// These heads, each replacing the document's previous one.
    Put(Vec<DocumentHead>),
    /// These documents have no head any more.
    Remove(Vec<String>),
}

impl HeadsChange {
    pub(super) fn apply(self, heads: &mut Heads) {
        match self {
            Self::Put(put) => {
                for head in put {
                    heads.insert(head.doc_id.clone(), head);
                }
            }
            Self::Remove(doc_ids) => {
                for doc_id in doc_ids {
                    heads.remove(&doc_id);
                }
            }
        }
    }
}

/// The two files, and how long each is.
#[derive(Debug)]
pub(super) struct HeadsFile {
    dir: PathBuf,
    snapshot_bytes: u64,
    /// The end of the log's last whole line: where the next change is written.
    log_bytes: u64,
}

impl HeadsFile {
    /// The heads stored in `dir`, `None` when it has neither file (a new store, or one written
    /// before heads existed).
    pub(super) fn open(dir: &Path) -> Result<(Self, Option<Heads>)> {
        let open_error = |file: &str, reason: String| StoreError::Open {
            path: dir.join(file).display().to_string(),
            reason,
        };
        let mut file = Self {
            dir: dir.to_owned(),
            snapshot_bytes: 0,
            log_bytes: 0,
        };
        let mut heads = match fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                file.snapshot_bytes = bytes.len() as u64;
                let list: Vec<DocumentHead> = serde_json::from_slice(&bytes).map_err(|e| {
                    open_error(
                        SNAPSHOT_FILE,
                        format!("the document heads are unreadable: {e}"),
                    )
                })?;
                Some(list.into_iter().map(|h| (h.doc_id.clone(), h)).collect())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(open_error(SNAPSHOT_FILE, error.to_string())),
        };
        let log = match fs::read(dir.join(LOG_FILE)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((file, heads)),
            Err(error) => return Err(open_error(LOG_FILE, error.to_string())),
        };
        let replayed = heads.get_or_insert_with(Heads::new);
        let mut line_start = 0;
        for (line_number, line) in log.split_inclusive(|byte| *byte == b'\n').enumerate() {
            if !line.ends_with(b"\n") {
                break; // cut by a crash before it was acknowledged
            }
            let change: HeadsChange = serde_json::from_slice(line).map_err(|e| {
                open_error(
                    LOG_FILE,
                    format!(
                        "line {} of the document heads' log is unreadable: {e}",
                        line_number + 1
                    ),
                )
            })?;
            change.apply(replayed);
            line_start += line.len();
        }
        file.log_bytes = line_start as u64;
        if file.log_bytes < log.len() as u64 {
            tracing::warn!(
                bytes = log.len() as u64 - file.log_bytes,
                "dropped the unfinished last change of the document heads' log"
            );
        }
        Ok((file, heads))
    }

    /// Writes `change` durably at the end of the log (over whatever a failed write left
    /// there).
    pub(super) fn append(&mut self, change: &HeadsChange) -> Result<()> {
        let error = |reason: String| StoreError::Operation {
            operation: "write document heads",
            reason,
        };
        let mut line = serde_json::to_vec(change).map_err(|e| error(e.to_string()))?;
        line.push(b'\n');
        let path = self.dir.join(LOG_FILE);
        let created = !path.exists();
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| error(e.to_string()))?;
        if created {
            sync_dir(&self.dir).map_err(error)?;
        }
        let end = self.log_bytes + line.len() as u64;
        log.write_all_at(&line, self.log_bytes)
            .map_err(|e| error(e.to_string()))?;
        if log.metadata().map_err(|e| error(e.to_string()))?.len() > end {
            log.set_len(end).map_err(|e| error(e.to_string()))?;
        }
        log.sync_data().map_err(|e| error(e.to_string()))?;
        self.log_bytes = end;
        Ok(())
    }

    /// Whether the log has outgrown the snapshot enough to be folded into a new one.
    pub(super) fn wants_snapshot(&self) -> bool {
        self.log_bytes > self.snapshot_bytes.max(MIN_FOLD_BYTES)
    }

    /// Replaces the snapshot with `heads` (atomically and durably), then empties the log.
    pub(super) fn snapshot(&mut self, heads: &Heads) -> Result<()> {
        let error = |reason: String| StoreError::Operation {
            operation: "write a snapshot of the document heads",
            reason,
        };
        let json = serde_json::to_vec(&heads.values().collect::<Vec<_>>())
            .map_err(|e| error(e.to_string()))?;
        let mut file =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| error(e.to_string()))?;
        file.write_all(&json).map_err(|e| error(e.to_string()))?;
        file.as_file()
            .sync_all()
            .map_err(|e| error(e.to_string()))?;
        file.persist(self.dir.join(SNAPSHOT_FILE))
            .map_err(|e| error(e.to_string()))?;
        sync_dir(&self.dir).map_err(error)?;
        self.snapshot_bytes = json.len() as u64;
        match File::options().write(true).open(self.dir.join(LOG_FILE)) {
            Ok(log) => {
                log.set_len(0).map_err(|e| error(e.to_string()))?;
                log.sync_data().map_err(|e| error(e.to_string()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e.to_string())),
        }
        self.log_bytes = 0;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::result::Result<(), String> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("cannot sync the directory: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DocumentMeta;

    fn head(doc_id: &str, version: &str) -> DocumentHead {
        DocumentHead {
            doc_id: doc_id.to_owned(),
            live: Some(DocumentMeta {
                doc_id: doc_id.to_owned(),
                version: version.to_owned(),
                title: "支援計画".to_owned(),
                owner: "pref-a".to_owned(),
                readers: vec!["pref-a".to_owned()],
                kind: "md".to_owned(),
                date: None,
                ingested_at: 1,
                chunk_count: 3,
                page_count: 1,
                paged: false,
                source: "corpus:demo".to_owned(),
            }),
            pending: Vec::new(),
            retired: vec!["old".to_owned()],
        }
    }

    /// Appends `change` and applies it to `expected`, as the store does to its heads.
    fn append(file: &mut HeadsFile, expected: &mut Heads, change: HeadsChange) {
        file.append(&change).expect("append");
        change.apply(expected);
    }

    fn reopened(dir: &Path) -> Option<Heads> {
        HeadsFile::open(dir).expect("open").1
    }

    #[test]
    fn changes_survive_reopening_through_the_log_and_through_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, heads) = HeadsFile::open(dir.path()).expect("open");
        assert_eq!(heads, None, "a new store has no heads");
        let mut expected = Heads::new();
        for change in [
            HeadsChange::Put(vec![head("a", "v1"), head("b", "v1")]),
            HeadsChange::Put(vec![head("a", "v2")]),
            HeadsChange::Remove(vec!["b".to_owned()]),
        ] {
            append(&mut file, &mut expected, change);
        }
        assert_eq!(reopened(dir.path()).as_ref(), Some(&expected));
        assert!(!dir.path().join(SNAPSHOT_FILE).exists(), "no snapshot yet");

        file.snapshot(&expected).expect("snapshot");
        assert_eq!(
            fs::metadata(dir.path().join(LOG_FILE)).expect("log").len(),
            0
        );
        let later = HeadsChange::Put(vec![head("c", "v1")]);
        append(&mut file, &mut expected, later);
        assert_eq!(reopened(dir.path()).as_ref(), Some(&expected));
    }

    #[test]
    fn a_log_replayed_over_the_snapshot_that_holds_it_gives_the_same_heads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = HeadsFile::open(dir.path()).expect("open");
        let mut expected = Heads::new();
        for change in [
            HeadsChange::Put(vec![head("a", "v1")]),
            HeadsChange::Put(vec![head("a", "v2"), head("b", "v1")]),
            HeadsChange::Remove(vec!["a".to_owned()]),
        ] {
            append(&mut file, &mut expected, change);
        }
        let log = fs::read(dir.path().join(LOG_FILE)).expect("log");
        file.snapshot(&expected).expect("snapshot");
        // As if the process died after the snapshot and before the log was emptied.
        fs::write(dir.path().join(LOG_FILE), log).expect("restore the log");
        assert_eq!(reopened(dir.path()).as_ref(), Some(&expected));
    }

    #[test]
    fn a_last_line_cut_by_a_crash_is_dropped_and_the_next_change_written_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = HeadsFile::open(dir.path()).expect("open");
        let kept = HeadsChange::Put(vec![head("a", "v1")]);
        file.append(&kept).expect("append");
        let path = dir.path().join(LOG_FILE);
        let mut log = fs::read(&path).expect("log");
        log.extend_from_slice(br#"{"put":[{"doc_id":"b","li"#);
        fs::write(&path, &log).expect("cut a line");

        let (mut file, heads) = HeadsFile::open(dir.path()).expect("open");
        let mut expected = Heads::new();
        kept.apply(&mut expected);
        assert_eq!(
            heads.as_ref(),
            Some(&expected),
            "the cut change is not there"
        );
        let next = HeadsChange::Put(vec![head("c", "v1")]);
        append(&mut file, &mut expected, next);
        assert_eq!(reopened(dir.path()).as_ref(), Some(&expected));
    }

    #[test]
    fn an_unreadable_whole_line_is_an_error_not_a_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = HeadsFile::open(dir.path()).expect("open");
        file.append(&HeadsChange::Put(vec![head("a", "v1")]))
            .expect("append");
        let path = dir.path().join(LOG_FILE);
        let mut log = b"not json\n".to_vec();
        log.extend(fs::read(&path).expect("log"));
        fs::write(&path, log).expect("write");
        let error = HeadsFile::open(dir.path())
            .expect_err("refused")
            .to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn the_log_is_folded_into_a_snapshot_once_it_outgrows_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = HeadsFile::open(dir.path()).expect("open");
        let mut heads = Heads::new();
        let mut appended = 0;
        while !file.wants_snapshot() {
            let put = (appended..appended + 1000)
                .map(|index| head(&format!("doc-{index}"), "v1"))
                .collect();
            let change = HeadsChange::Put(put);
            append(&mut file, &mut heads, change);
            appended += 1000;
        }
        assert!(file.log_bytes > MIN_FOLD_BYTES);
        file.snapshot(&heads).expect("snapshot");
        assert!(!file.wants_snapshot());
        assert_eq!(reopened(dir.path()).map(|h| h.len()), Some(appended));
    }
}
