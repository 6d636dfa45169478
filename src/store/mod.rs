//! Where chunks, their vectors and their payload live.
//!
//! Backends implement [`StoreRead`] and [`StoreWrite`]; every query takes a [`Scope`] and applies
//! it inside the vector search (as a filter on each prefetch), never after it.

mod edge;
mod heads_file;
mod points;
mod qdrant;
mod versions;

pub use edge::EdgeStore;
pub use points::point_id;
pub use qdrant::{QdrantOptions, QdrantStore};
pub use versions::DocumentHead;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Scope;

/// A sparse vector (BM25 words or character bigrams): parallel index/value arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// Everything stored about a document that a citation or a listing needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentMeta {
    pub doc_id: String,
    /// Content hash of the source bytes plus the ingest settings; a new version replaces the old.
    pub version: String,
    pub title: String,
    pub owner: String,
    /// Org ids, group ids or `public`; always contains the owner.
    pub readers: Vec<String>,
    pub kind: String,
    pub date: Option<String>,
    /// Unix milliseconds when this version was written.
    pub ingested_at: u64,
    pub chunk_count: u32,
    pub page_count: u32,
    /// Whether page numbers locate its passages (PDF pages, slides, the form-feed pages of text
    /// files). A Word document, a workbook or a web page has none: its passages are located by
    /// their heading path. Documents stored before this was recorded read as paged.
    #[serde(default = "paged_by_default")]
    pub paged: bool,
    /// Where the document came from: `corpus:<folder>` for a corpus ingest, `upload:<org>` for
    /// an upload. A corpus ingest with prune removes only documents of its own source.
    #[serde(default)]
    pub source: String,
}

fn paged_by_default() -> bool {
    true
}

/// One chunk of a document, as stored: text, location, and its vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub ordinal: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page_start: u32,
    pub page_end: u32,
    pub char_start: u32,
    pub char_end: u32,
    /// The text was read by OCR from a scanned page or an image.
    pub ocr: bool,
    pub dense: Vec<f32>,
    pub bm25: SparseVector,
    pub bigram: SparseVector,
}

/// A chunk found by a search, with its document's metadata. Serialised, it is a point's payload
/// in every backend (the document's fields flattened into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    #[serde(flatten)]
    pub document: DocumentMeta,
    pub ordinal: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page_start: u32,
    pub page_end: u32,
    pub char_start: u32,
    pub char_end: u32,
    /// The text was read by OCR from a scanned page or an image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocr: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredChunk {
    pub chunk: StoredChunk,
    pub score: f32,
}

/// Optional narrowing of a search, on top of the caller's scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchFilters {
    pub owner: Option<String>,
    pub kind: Option<String>,
    pub doc_id: Option<String>,
    /// Chunks whose heading path contains this heading. Stores match any element of the path
    /// (neither backend filters on a position in an array); the retriever keeps those where it
    /// is the first, i.e. the chunk lies in that top-level section.
    pub section: Option<String>,
}

/// A hybrid query: each present vector becomes one prefetch (each carrying the scope filter),
/// fused by weighted reciprocal-rank fusion.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridQuery {
    pub dense: Option<Vec<f32>>,
    pub bm25: Option<SparseVector>,
    pub bigram: Option<SparseVector>,
    pub filters: SearchFilters,
    /// How many candidates each prefetch returns before fusion.
    pub prefetch_limit: usize,
    pub limit: usize,
    pub fusion: RrfParams,
}

/// Weighted reciprocal-rank fusion, as Qdrant computes it (`Fusion::Rrf { k, weights }`): a
/// chunk at 0-based position `p` of a prefetch with weight `w` gets `1 / ((p + 1) / w + k − 1)`,
/// summed over the prefetches that found it. With `w = 1` that is `1 / (k + p)`. A weight
/// stretches positions rather than scaling the contribution: `w = 2` makes a prefetch's 2nd result
/// count as its 1st would with `w = 1`. A prefetch with weight 0 is left out; `k` must be ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RrfParams {
    pub k: u32,
    pub dense_weight: f32,
    pub bm25_weight: f32,
    pub bigram_weight: f32,
}

/// A page of stored points with their vectors, in point-id order, for copying between stores.
#[derive(Debug, Clone, PartialEq)]
pub struct PointPage {
    pub points: Vec<(DocumentMeta, ChunkRecord)>,
    /// Where the next page starts (pass it as `from`), or `None` after the last page.
    pub next: Option<Uuid>,
}

/// What a readiness probe may show: no counts (they would reveal what exists to anyone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreStatus {
    pub backend: &'static str,
    /// The Qdrant server's version, for a server backend.
    pub server_version: Option<String>,
    /// The collection's state as the server reports it (`green`, `yellow`, `grey`, `red`).
    pub collection_status: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} could not be opened: {reason}")]
    Open { path: String, reason: String },
    #[error("the store at {path} was created with another schema ({found}); expected {expected}")]
    SchemaMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error("a store operation failed: {operation}: {reason}")]
    Operation {
        operation: &'static str,
        reason: String,
    },
    #[error("invalid data for the store: {reason}")]
    InvalidInput { reason: String },
    #[error(
        "the Qdrant server at {url} cannot be reached ({reason}); start it or fix storage.qdrant.url"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the Qdrant server at {url} refused the API key ({reason}); set HIKITSUGI_STORAGE__QDRANT__API_KEY"
    )]
    Unauthorized { url: String, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Reading, for callers acting for a principal: every call that returns documents or chunks
/// takes a [`Scope`] and sees only the live version of each document (see [`StoreWrite`]).
pub trait StoreRead: Send + Sync {
    /// Hybrid search inside `scope` (the scope filters each retriever inside the vector search);
    /// results ordered by fused score, best first, all from live versions.
    fn search(&self, scope: &Scope, query: &HybridQuery) -> Result<Vec<ScoredChunk>>;

    /// The documents readable in `scope` (their live versions), ordered by doc id.
    fn documents(&self, scope: &Scope) -> Result<Vec<DocumentMeta>>;

    /// One document's live version, if it exists and is readable in `scope`.
    fn document(&self, scope: &Scope, doc_id: &str) -> Result<Option<DocumentMeta>>;

    /// The chunks of a readable document's live version whose ordinals lie in `ordinals`, in
    /// order, with the version they belong to; `None` when the document does not exist or is
    /// not readable in `scope` (the two are indistinguishable).
    fn passages(
        &self,
        scope: &Scope,
        doc_id: &str,
        ordinals: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<(DocumentMeta, Vec<StoredChunk>)>>;

    /// Whether the store answers, and what a readiness probe may say about it.
    fn status(&self) -> Result<StoreStatus>;

    /// Dimensions of the dense vector.
    fn dense_dim(&self) -> usize;
}

/// Writing. Writes are durable when the call returns, and atomic for readers: a document's new
/// version becomes visible (its [`DocumentHead`] names it live) only after all its chunks are
/// stored, and the old version stops being visible at the same instant. Writers of one
/// document are serialised (across processes and replicas on a server backend).
pub trait StoreWrite: StoreRead {
    /// [`replace_documents`](Self::replace_documents) for one document.
    fn replace_document(&self, document: &DocumentMeta, chunks: &[ChunkRecord]) -> Result<()> {
        self.replace_documents(&[(document.clone(), chunks.to_vec())])
    }

    /// Stores new versions of documents and makes each one live in place of the previous one;
    /// then removes the previous versions. Several documents share the durable writes (a flush
    /// costs 0.1–0.3 s in the embedded store).
    fn replace_documents(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()>;

    /// Makes a document invisible at once, then removes every version of it. Returns whether
    /// a live version existed.
    fn delete_document(&self, doc_id: &str) -> Result<bool>;
}

/// The operator's handle (CLI commands: ingest bookkeeping, migration, checks): reads across
/// every scope. Never given to request handlers.
pub trait StoreAdmin: StoreWrite {
    /// Every document's head (live version, versions being written or removed), by doc id.
    fn heads(&self) -> Result<BTreeMap<String, DocumentHead>>;

    /// Number of stored chunk points (all versions, all scopes).
    fn point_count(&self) -> Result<u64>;

    /// Up to `limit` chunk points with vectors and payload, in point-id order from `from`
    /// (inclusive), regardless of scope and version.
    fn export_points(&self, from: Option<Uuid>, limit: usize) -> Result<PointPage>;

    /// Number of chunks stored per (doc_id, version), regardless of scope.
    fn chunk_counts(&self) -> Result<BTreeMap<(String, String), u64>>;

    /// Stores exported points as they are (same ids, vectors and payload), durably, without
    /// making anything live. Importing a point twice leaves one copy.
    fn import_points(&self, points: &[(DocumentMeta, ChunkRecord)]) -> Result<()>;

    /// Makes the given versions live, as copied from another store by a migration: each head's
    /// live version must have all its chunks here (checked), else nothing is changed.
    fn import_heads(&self, heads: &[DocumentHead]) -> Result<()>;
}
