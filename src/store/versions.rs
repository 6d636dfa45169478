//! Atomic document versions, the same on every backend.
//!
//! Every document has a [`DocumentHead`], stored apart from its chunks, that names its live
//! version. Readers keep only chunks of live versions, so what they see changes only when a head
//! is written, and a head is written atomically (one file rename in the embedded store, one point
//! upsert on a server). A replacement runs, with the document's writer lock held:
//!
//! 1. the head records the new version as pending (so a crash leaves a trace to clean up);
//! 2. every chunk of the new version is written, durably;
//! 3. the head names the new version live and the old one retired: the switch;
//! 4. the retired (and any stale pending) versions' chunks are deleted, then the head forgets them.
//!
//! Whatever step a crash interrupts, readers see the old complete version or the new complete
//! version, never both, never a part. [`finish_interrupted`] (run when a store opens, and by
//! every write of the same document) deletes what steps 1–2 or 4 left behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::points::{is_newer, validate_chunks};
use super::{ChunkRecord, DocumentMeta, Result, ScoredChunk, StoreError, StoredChunk};
use crate::access::Scope;

/// Which version of a document readers see, and which versions are being written or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentHead {
    pub doc_id: String,
    /// The version readers see; `None` while a new document's first version is being written,
    /// or while a deleted document's chunks are being removed.
    pub live: Option<DocumentMeta>,
    /// Versions whose chunks are being written (invisible until one becomes live).
    #[serde(default)]
    pub pending: Vec<String>,
    /// Versions no longer live whose chunks are still to be deleted.
    #[serde(default)]
    pub retired: Vec<String>,
}

impl DocumentHead {
    fn new(doc_id: &str) -> Self {
        Self {
            doc_id: doc_id.to_owned(),
            live: None,
            pending: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The live version's metadata, when it is readable in `scope`.
    pub fn readable(&self, scope: &Scope) -> Option<&DocumentMeta> {
        self.live
            .as_ref()
            .filter(|live| scope.permits(&live.readers))
    }

    /// Whether something is left to clean up.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty() && self.retired.is_empty()
    }

    fn live_version(&self) -> Option<&str> {
        self.live.as_ref().map(|live| live.version.as_str())
    }
}

/// What a backend provides for the protocol: chunk writes and deletes, head reads and writes,
/// and a per-document writer lock. Every write is durable when it returns.
pub(super) trait VersionedBackend {
    type Lock<'a>
    where
        Self: 'a;

    /// Serialises writers of these documents until the lock is dropped.
    fn lock_documents(&self, doc_ids: &[String]) -> Result<Self::Lock<'_>>;
    /// Like [`lock_documents`](Self::lock_documents) for one document, but `None` at once when
    /// another writer holds it.
    fn try_lock_document(&self, doc_id: &str) -> Result<Option<Self::Lock<'_>>>;
    fn read_heads(&self, doc_ids: &[String]) -> Result<HashMap<String, DocumentHead>>;
    /// Heads that are not settled (see [`DocumentHead::is_settled`]).
    fn unsettled_heads(&self) -> Result<Vec<DocumentHead>>;
    /// Writes heads; each one replaces the stored head of its document atomically.
    fn write_heads(&self, heads: &[DocumentHead]) -> Result<()>;
    fn remove_heads(&self, doc_ids: &[String]) -> Result<()>;
    fn write_chunks(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()>;
    /// Deletes the chunks of the given versions of documents.
    fn delete_versions(&self, versions: &[(String, Vec<String>)]) -> Result<()>;
    /// Deletes every chunk of a document.
    fn delete_all_chunks(&self, doc_id: &str) -> Result<()>;
}

/// Steps 1–4 of the module documentation for several documents at once.
pub(super) fn replace<B: VersionedBackend>(
    backend: &B,
    documents: &[(DocumentMeta, Vec<ChunkRecord>)],
) -> Result<()> {
    for (document, chunks) in documents {
        validate_chunks(document, chunks)?;
    }
    if documents.is_empty() {
        return Ok(());
    }
    let doc_ids: Vec<String> = documents
        .iter()
        .map(|(document, _)| document.doc_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if doc_ids.len() != documents.len() {
        return Err(super::points::invalid(
            "the same document twice in one write".to_owned(),
        ));
    }
    let _lock = backend.lock_documents(&doc_ids)?;
    let mut heads = backend.read_heads(&doc_ids)?;

    let pending: Vec<DocumentHead> = documents
        .iter()
        .map(|(document, _)| {
            let mut head = heads
                .remove(&document.doc_id)
                .unwrap_or_else(|| DocumentHead::new(&document.doc_id));
            if head.live_version() != Some(document.version.as_str())
                && !head.pending.contains(&document.version)
            {
                head.pending.push(document.version.clone());
            }
            head
        })
        .collect();
    backend.write_heads(&pending)?;

    backend.write_chunks(documents)?;

    let switched: Vec<DocumentHead> = pending
        .into_iter()
        .zip(documents)
        .map(|(mut head, (document, _))| {
            let previous = head.live.replace(document.clone());
            let mut retired = std::mem::take(&mut head.retired);
            retired.extend(std::mem::take(&mut head.pending));
            retired.extend(previous.map(|previous| previous.version));
            retired.retain(|version| *version != document.version);
            retired.sort();
            retired.dedup();
            head.retired = retired;
            head
        })
        .collect();
    backend.write_heads(&switched)?;

    settle(backend, switched)
}

/// Step 4: deletes the chunks of retired and pending versions, then writes the settled heads
/// (or removes the heads of documents with no live version). Call with the documents locked.
fn settle<B: VersionedBackend>(backend: &B, heads: Vec<DocumentHead>) -> Result<()> {
    let unsettled: Vec<DocumentHead> = heads.into_iter().filter(|h| !h.is_settled()).collect();
    if unsettled.is_empty() {
        return Ok(());
    }
    let garbage: Vec<(String, Vec<String>)> = unsettled
        .iter()
        .map(|head| {
            let mut versions = head.retired.clone();
            versions.extend(head.pending.iter().cloned());
            (head.doc_id.clone(), versions)
        })
        .collect();
    backend.delete_versions(&garbage)?;
    let (live, gone): (Vec<DocumentHead>, Vec<DocumentHead>) = unsettled
        .into_iter()
        .map(|mut head| {
            head.pending.clear();
            head.retired.clear();
            head
        })
        .partition(|head| head.live.is_some());
    backend.write_heads(&live)?;
    let gone: Vec<String> = gone.into_iter().map(|head| head.doc_id).collect();
    if !gone.is_empty() {
        backend.remove_heads(&gone)?;
    }
    Ok(())
}

/// Makes a document invisible (its head keeps no live version), then deletes its chunks and
/// its head. Returns whether it had a live version.
pub(super) fn delete<B: VersionedBackend>(backend: &B, doc_id: &str) -> Result<bool> {
    let doc_ids = [doc_id.to_owned()];
    let _lock = backend.lock_documents(&doc_ids)?;
    let Some(mut head) = backend.read_heads(&doc_ids)?.remove(doc_id) else {
        return Ok(false);
    };
    let was_live = head.live.take();
    if let Some(live) = &was_live {
        head.retired.push(live.version.clone());
        backend.write_heads(std::slice::from_ref(&head))?;
    }
    backend.delete_all_chunks(doc_id)?;
    backend.remove_heads(&doc_ids)?;
    Ok(was_live.is_some())
}

/// Finishes what interrupted writes left: deletes pending and retired versions of every
/// unsettled document whose writer lock is free (a document another writer holds is left to
/// that writer). Returns how many documents were settled.
pub(super) fn finish_interrupted<B: VersionedBackend>(backend: &B) -> Result<usize> {
    let mut settled = 0;
    for head in backend.unsettled_heads()? {
        let Some(_lock) = backend.try_lock_document(&head.doc_id)? else {
            continue;
        };
        // Read again under the lock: the head may have changed since it was listed.
        let doc_ids = [head.doc_id.clone()];
        if let Some(head) = backend.read_heads(&doc_ids)?.remove(&head.doc_id)
            && !head.is_settled()
        {
            tracing::info!(doc_id = %head.doc_id, pending = ?head.pending, retired = ?head.retired, "finishing an interrupted write");
            settle(backend, vec![head])?;
            settled += 1;
        }
    }
    Ok(settled)
}

/// Keeps the results that belong to their document's live version (`heads` maps doc ids to
/// live versions) and are readable in `scope`, in order.
pub(super) fn keep_live(
    scope: &Scope,
    results: Vec<ScoredChunk>,
    heads: &HashMap<String, DocumentHead>,
) -> Vec<ScoredChunk> {
    results
        .into_iter()
        .filter(|result| {
            let document = &result.chunk.document;
            heads
                .get(&document.doc_id)
                .and_then(|head| head.readable(scope))
                .is_some_and(|live| live.version == document.version)
        })
        .collect()
}

/// Every live version the heads name has all its chunks among `counts` (chunks per
/// (doc_id, version)): the check before heads copied from another store are imported.
pub(super) fn check_heads_complete(
    heads: &[DocumentHead],
    counts: &BTreeMap<(String, String), u64>,
) -> Result<()> {
    for live in heads.iter().filter_map(|head| head.live.as_ref()) {
        let stored = counts
            .get(&(live.doc_id.clone(), live.version.clone()))
            .copied()
            .unwrap_or(0);
        if stored != u64::from(live.chunk_count) {
            return Err(super::points::invalid(format!(
                "{} ({}): {} chunks stored, the head names {}",
                live.doc_id, live.version, stored, live.chunk_count
            )));
        }
    }
    Ok(())
}

/// Heads for a store written before heads existed: the newest version of each document is
/// live, the others retired.
pub(super) fn heads_from_first_chunks(first_chunks: Vec<DocumentMeta>) -> Vec<DocumentHead> {
    let mut by_doc: BTreeMap<String, DocumentHead> = BTreeMap::new();
    for document in first_chunks {
        let head = by_doc
            .entry(document.doc_id.clone())
            .or_insert_with(|| DocumentHead::new(&document.doc_id));
        match head.live.take() {
            Some(current) if !is_newer(&document, &current) => {
                head.retired.push(document.version);
                head.live = Some(current);
            }
            Some(current) => {
                head.retired.push(current.version);
                head.live = Some(document);
            }
            None => head.live = Some(document),
        }
    }
    by_doc.into_values().collect()
}

/// How often [`live_passages`] reads again a document that was replaced while it read it.
const PASSAGE_READS: usize = 5;

/// The chunks of a document's live version whose ordinals lie in `ordinals`, in order, read
/// consistently: `read_live` gives the live version (`None`: no readable document) and
/// `read_chunks` that version's stored chunks. A replacement between the two reads deletes the
/// version being read; then the (new) live version is read again, so the result is always one
/// complete version.
pub(super) fn live_passages(
    ordinals: &std::ops::RangeInclusive<u32>,
    read_live: impl Fn() -> Result<Option<DocumentMeta>>,
    read_chunks: impl Fn(&DocumentMeta) -> Result<Vec<StoredChunk>>,
) -> Result<Option<(DocumentMeta, Vec<StoredChunk>)>> {
    for _ in 0..PASSAGE_READS {
        let Some(live) = read_live()? else {
            return Ok(None);
        };
        let mut passages: Vec<StoredChunk> = read_chunks(&live)?
            .into_iter()
            .filter(|chunk| {
                chunk.document.version == live.version && ordinals.contains(&chunk.ordinal)
            })
            .collect();
        passages.sort_by_key(|chunk| chunk.ordinal);
        let last = live.chunk_count.saturating_sub(1).min(*ordinals.end());
        let expected = if live.chunk_count == 0 || *ordinals.start() > last {
            0
        } else {
            (last - ordinals.start() + 1) as usize
        };
        if passages.len() == expected {
            return Ok(Some((live, passages)));
        }
    }
    Err(StoreError::Operation {
        operation: "read passages",
        reason: "the document kept changing while it was read; try again".to_owned(),
    })
}

/// The best `limit` of `fused` (point ids with scores, best first) that belong to live versions
/// readable in `scope`. Payloads are fetched a window at a time, so that dropping chunks of a
/// version being replaced still fills `limit` when enough live candidates exist.
pub(super) fn live_results<Id: Clone>(
    scope: &Scope,
    fused: &[(Id, f32)],
    limit: usize,
    mut fetch: impl FnMut(&[Id]) -> Result<Vec<Option<StoredChunk>>>,
    mut read_heads: impl FnMut(&[String]) -> Result<HashMap<String, DocumentHead>>,
) -> Result<Vec<ScoredChunk>> {
    let mut heads: HashMap<String, DocumentHead> = HashMap::new();
    let mut results = Vec::with_capacity(limit);
    for window in fused.chunks(limit.max(1)) {
        let ids: Vec<Id> = window.iter().map(|(id, _)| id.clone()).collect();
        let chunks = fetch(&ids)?;
        let unknown: Vec<String> = chunks
            .iter()
            .flatten()
            .map(|chunk| chunk.document.doc_id.clone())
            .filter(|doc_id| !heads.contains_key(doc_id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            heads.extend(read_heads(&unknown)?);
        }
        // A chunk deleted since the query (a retired version) comes back as `None`.
        let scored: Vec<ScoredChunk> = window
            .iter()
            .zip(chunks)
            .filter_map(|((_, score), chunk)| {
                chunk.map(|chunk| ScoredChunk {
                    chunk,
                    score: *score,
                })
            })
            .collect();
        results.extend(keep_live(scope, scored, &heads));
        if results.len() >= limit {
            results.truncate(limit);
            break;
        }
    }
    Ok(results)
}
