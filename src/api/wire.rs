//! Request and response bodies of the HTTP API, apart from the domain types so that the wire
//! format changes only on purpose. Requests reject unknown fields: a misspelt `top_k` is an
//! error, not a silently ignored default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::answer::Answer;
use crate::service::{Searched, UploadMetadata};
use crate::store::{DocumentMeta, ScoredChunk, SearchFilters};

/// `POST /v1/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What to look for, in natural language or keywords.
    #[schema(example = "オンラインよろず相談の実施方法")]
    pub query: String,
    /// How many passages to return; default and maximum come from the server's configuration.
    pub top_k: Option<usize>,
    /// Narrows the search further, inside what the caller may read.
    pub filters: Option<Filters>,
}

/// Optional narrowing of a search; each given field must match exactly.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Organisation id of the owning organisation.
    pub owner: Option<String>,
    /// Document kind, e.g. `report` or `plan`.
    pub kind: Option<String>,
    /// One document.
    pub doc_id: Option<String>,
}

impl From<Filters> for SearchFilters {
    fn from(filters: Filters) -> Self {
        Self {
            owner: filters.owner,
            kind: filters.kind,
            doc_id: filters.doc_id,
        }
    }
}

/// Passages found by a search, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub passages: Vec<Passage>,
    /// Server-side time, in milliseconds.
    pub took_ms: u64,
}

/// One retrieved passage and where it is in its document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Passage {
    pub doc_id: String,
    pub title: String,
    /// Organisation id of the owner.
    pub owner: String,
    pub kind: String,
    /// First page of the passage, from 1 (1 for text documents).
    pub page_start: u32,
    pub page_end: u32,
    /// Headings above the passage, outermost first.
    pub heading_path: Vec<String>,
    pub text: String,
    /// Fused relevance; comparable only within one response.
    pub score: f32,
}

impl From<ScoredChunk> for Passage {
    fn from(scored: ScoredChunk) -> Self {
        let chunk = scored.chunk;
        Self {
            doc_id: chunk.document.doc_id,
            title: chunk.document.title,
            owner: chunk.document.owner,
            kind: chunk.document.kind,
            page_start: chunk.page_start,
            page_end: chunk.page_end,
            heading_path: chunk.heading_path,
            text: chunk.text,
            score: scored.score,
        }
    }
}

impl From<Searched<Vec<ScoredChunk>>> for SearchResponse {
    fn from(searched: Searched<Vec<ScoredChunk>>) -> Self {
        Self {
            passages: searched.result.into_iter().map(Passage::from).collect(),
            took_ms: searched.took_ms,
        }
    }
}

/// `POST /v1/ask`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    #[schema(example = "オンラインよろず相談はどのように実施されましたか")]
    pub question: String,
    /// How many passages the answer may draw on.
    pub top_k: Option<usize>,
}

/// An answer built only from passages the caller may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    /// False when the passages do not answer the question; `answer` then says so and
    /// `citations` lists the closest passages.
    pub found: bool,
    /// Sentences from the passages, each followed by `[n]`, the number of its citation.
    pub answer: String,
    pub citations: Vec<Citation>,
    /// Server-side time, in milliseconds.
    pub took_ms: u64,
}

/// A passage an answer cites as `[n]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Citation {
    /// From 1, in retrieval order.
    pub n: usize,
    pub doc_id: String,
    pub title: String,
    pub page_start: u32,
    pub page_end: u32,
    pub heading_path: Vec<String>,
    pub text: String,
    pub score: f32,
}

impl Citation {
    fn numbered(n: usize, scored: ScoredChunk) -> Self {
        let chunk = scored.chunk;
        Self {
            n,
            doc_id: chunk.document.doc_id,
            title: chunk.document.title,
            page_start: chunk.page_start,
            page_end: chunk.page_end,
            heading_path: chunk.heading_path,
            text: chunk.text,
            score: scored.score,
        }
    }
}

impl From<Searched<Answer>> for AskResponse {
    fn from(searched: Searched<Answer>) -> Self {
        let answer = searched.result;
        Self {
            found: answer.found,
            answer: answer.text,
            citations: answer
                .citations
                .into_iter()
                .enumerate()
                .map(|(index, scored)| Citation::numbered(index + 1, scored))
                .collect(),
            took_ms: searched.took_ms,
        }
    }
}

/// `GET /v1/documents`: the documents the caller may read, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentsResponse {
    pub documents: Vec<Document>,
}

/// A stored document as a caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Document {
    pub doc_id: String,
    pub title: String,
    /// Organisation id of the owner; only its editors may delete the document.
    pub owner: String,
    pub kind: String,
    pub date: Option<String>,
    /// Organisation ids, group ids or `public`: who may read the document.
    pub readers: Vec<String>,
    pub chunk_count: u32,
    pub page_count: u32,
}

impl From<DocumentMeta> for Document {
    fn from(document: DocumentMeta) -> Self {
        Self {
            doc_id: document.doc_id,
            title: document.title,
            owner: document.owner,
            kind: document.kind,
            date: document.date,
            readers: document.readers,
            chunk_count: document.chunk_count,
            page_count: document.page_count,
        }
    }
}

impl From<Vec<DocumentMeta>> for DocumentsResponse {
    fn from(documents: Vec<DocumentMeta>) -> Self {
        Self {
            documents: documents.into_iter().map(Document::from).collect(),
        }
    }
}

/// `POST /v1/documents`, as `multipart/form-data`.
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The document, with its file name (`.txt`, `.text`, `.md`, `.markdown` or `.pdf`). Its id
    /// becomes `uploads/<organisation>/<file name>`; uploading the same name again replaces it.
    #[schema(value_type = String, format = Binary)]
    pub file: UploadedFile,
    /// JSON; every field optional. The owner is always the uploader's organisation.
    pub metadata: Option<UploadMetadata>,
}

/// The `file` part of an upload.
#[derive(Debug)]
pub struct UploadedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// `ok` (alive), `ready`, or `not_ready`.
    pub status: &'static str,
    /// Why the service is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The document store's state (`/readyz` only). Never counts: the probe is unauthenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreProbe>,
}

/// What `/readyz` says about the document store.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreProbe {
    /// `edge` (embedded) or `qdrant` (server).
    pub backend: &'static str,
    /// The Qdrant server's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The collection's state on the server: `green`, `yellow` (optimising), `grey`, `red`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection_status: Option<String>,
}

impl From<crate::store::StoreStatus> for StoreProbe {
    fn from(status: crate::store::StoreStatus) -> Self {
        Self {
            backend: status.backend,
            server_version: status.server_version,
            collection_status: status.collection_status,
        }
    }
}
