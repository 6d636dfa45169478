//! Request and response bodies of the HTTP API, apart from the domain types so that the wire
//! format changes only on purpose. Requests reject unknown fields: a misspelt `top_k` is an
//! error, not a silently ignored default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::answer::{Answer, AnswerMode};
use crate::generate::{Action, CheckedSentence, Verdict, Verification};
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
    /// Answer as server-sent events (`text/event-stream`) instead of one JSON body: a
    /// `passages` event, `delta` events with the model's raw text, then an `answer` event with
    /// the verified answer (an `AskResponse`). Only the `answer` event is verified.
    #[serde(default)]
    pub stream: bool,
}

/// An answer built only from passages the caller may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    /// False when the passages do not answer the question; `answer` then says so and
    /// `citations` lists the closest passages.
    pub found: bool,
    /// Sentences, each followed by `[n]`, the number of its citation: taken from the passages
    /// (`extractive`) or written by the language model and verified (`generated`).
    pub answer: String,
    /// When found: exactly the passages the answer cites. When not: the closest passages.
    pub citations: Vec<Citation>,
    pub mode: Mode,
    /// How each sentence of a generated answer was checked; absent for extractive answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationReport>,
    /// For people, in Japanese: why the answer is extractive although a model is configured,
    /// or which generated sentences were removed or marked.
    pub warnings: Vec<String>,
    /// Server-side time, in milliseconds.
    pub took_ms: u64,
}

/// How the answer's text was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Written by the language model from the passages, each sentence verified.
    Generated,
    /// Sentences of the passages (no model configured, evidence too weak to ask it, or a
    /// fallback after the model failed: see `warnings`).
    Extractive,
}

impl From<AnswerMode> for Mode {
    fn from(mode: AnswerMode) -> Self {
        match mode {
            AnswerMode::Generated => Self::Generated,
            AnswerMode::Extractive => Self::Extractive,
        }
    }
}

/// The check of a generated answer against its passages.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationReport {
    /// Every sentence the model wrote, in order, with its verdict.
    pub sentences: Vec<SentenceCheck>,
    /// Citation numbers the model wrote that pointed to no passage; removed.
    pub invalid_markers: Vec<usize>,
    /// Sentences removed from the answer.
    pub dropped: usize,
    /// Sentences kept with the mark 〔資料で確認できない記述〕.
    pub marked: usize,
    /// The share of a sentence's content its passage had to contain.
    pub min_support: f32,
}

/// One sentence of the model's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentenceCheck {
    /// The sentence without citation markers.
    pub text: String,
    pub verdict: SentenceVerdict,
    pub action: SentenceAction,
    /// The citation numbers (of this response's `citations`) the sentence carries in `answer`.
    pub citations: Vec<usize>,
    /// Best share of the sentence's content found in a passage it was checked against, 0–1.
    pub support: f32,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentenceVerdict {
    /// A passage it cites supports it.
    Supported,
    /// It cited nothing, but one passage supports it; that passage is cited.
    Attributed,
    /// No passage supports it.
    Unsupported,
    /// The model said the documents do not answer.
    NotInDocuments,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentenceAction {
    Kept,
    Dropped,
    Marked,
}

impl From<Verification> for VerificationReport {
    fn from(verification: Verification) -> Self {
        let dropped = verification.count(Action::Dropped);
        let marked = verification.count(Action::Marked);
        Self {
            sentences: verification
                .sentences
                .into_iter()
                .map(SentenceCheck::from)
                .collect(),
            invalid_markers: verification.invalid_markers,
            dropped,
            marked,
            min_support: verification.min_support,
        }
    }
}

impl From<CheckedSentence> for SentenceCheck {
    fn from(sentence: CheckedSentence) -> Self {
        Self {
            citations: sentence.citations,
            text: sentence.text,
            verdict: match sentence.verdict {
                Verdict::Supported => SentenceVerdict::Supported,
                Verdict::Attributed => SentenceVerdict::Attributed,
                Verdict::Unsupported => SentenceVerdict::Unsupported,
                Verdict::NotInDocuments => SentenceVerdict::NotInDocuments,
            },
            action: match sentence.action {
                Action::Kept => SentenceAction::Kept,
                Action::Dropped => SentenceAction::Dropped,
                Action::Marked => SentenceAction::Marked,
            },
            support: sentence.support,
        }
    }
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
        let verification = answer.verification.map(VerificationReport::from);
        Self {
            found: answer.found,
            answer: answer.text,
            citations: answer
                .citations
                .into_iter()
                .enumerate()
                .map(|(index, scored)| Citation::numbered(index + 1, scored))
                .collect(),
            mode: answer.mode.into(),
            verification,
            warnings: answer.warnings,
            took_ms: searched.took_ms,
        }
    }
}

/// The `passages` event of a streamed answer: what the model was given, numbered as the
/// `delta` events' raw `[n]` refer to them. The final `answer` event renumbers its citations.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamPassages {
    pub passages: Vec<Citation>,
}

impl From<Vec<ScoredChunk>> for StreamPassages {
    fn from(passages: Vec<ScoredChunk>) -> Self {
        Self {
            passages: passages
                .into_iter()
                .enumerate()
                .map(|(index, scored)| Citation::numbered(index + 1, scored))
                .collect(),
        }
    }
}

/// A `delta` event of a streamed answer: raw model text, not verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamDelta {
    pub text: String,
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
