//! Request and response bodies of the HTTP API, apart from the domain types so that the wire
//! format changes only on purpose. Requests reject unknown fields: a misspelt `top_k` is an
//! error, not a silently ignored default.

mod audit;
mod workbench;

pub use audit::{AuditEntry, AuditList, AuditQuery};
pub use workbench::{
    CompareGroup, CompareRequest, CompareResponse, ExportFormat, ExportQuery, ExportRequest, Facet,
    FacetsResponse, SimilarPassage, SimilarRequest, SimilarResponse,
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::collections::HashMap;
use std::sync::Arc;

use crate::answer::{Answer, AnswerMode, supporting_sentences};
use crate::config::Config;
use crate::generate::{Action, CheckedSentence, Verdict, Verification};
use crate::retrieve::{DateRange, PassageFilters};
use crate::service::{Searched, UploadMetadata};
use crate::store::{DocumentMeta, ScoredChunk, SearchFilters, StoredChunk};

/// Organisation display names by id, from the configuration, for responses people read.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<HashMap<String, String>>);

impl Names {
    pub fn from_config(config: &Config) -> Self {
        Self(Arc::new(
            config
                .organisations
                .iter()
                .map(|org| (org.id.clone(), org.name.clone()))
                .collect(),
        ))
    }

    /// The organisation's name, or its id when the configuration gives none.
    pub fn organisation(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

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
    /// Documents dated from (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`; by month, inclusive).
    pub date_from: Option<String>,
    /// Documents dated until (same forms; by month, inclusive). Undated documents are left out
    /// when either bound is given.
    pub date_to: Option<String>,
}

impl From<Filters> for PassageFilters {
    fn from(filters: Filters) -> Self {
        Self {
            store: SearchFilters {
                owner: filters.owner,
                kind: filters.kind,
                doc_id: filters.doc_id,
                section: None,
            },
            dates: DateRange {
                from: filters.date_from,
                to: filters.date_to,
            },
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
    /// The document version the passage belongs to.
    pub version: String,
    pub title: String,
    /// Organisation id of the owner.
    pub owner: String,
    /// The owner's name, from the configuration.
    pub owner_name: String,
    pub kind: String,
    pub date: Option<String>,
    /// First page of the passage, from 1 (a PDF page, a slide, a form-feed page of a text file);
    /// null for documents without pages (Word, Excel, HTML), whose passages `heading_path`
    /// locates (in a workbook: the sheet, and the row numbers in `text`).
    pub page_start: Option<u32>,
    /// Last page of the passage; null exactly when `page_start` is.
    pub page_end: Option<u32>,
    /// The text was read by OCR from a scanned page or an image: it may hold misread characters.
    pub ocr: bool,
    /// Headings above the passage, outermost first.
    pub heading_path: Vec<String>,
    pub text: String,
    /// Position of the passage in its document, from 0 (for `GET /v1/passages?around=`).
    pub ordinal: u32,
    /// Fused relevance; comparable only within one response.
    pub score: f32,
    /// Parts of the query found in `text` (for highlighting), longest first.
    pub matched_terms: Vec<String>,
}

/// A passage's first and last page, or none for a document without pages.
fn pages(chunk: &StoredChunk) -> (Option<u32>, Option<u32>) {
    if chunk.document.paged {
        (Some(chunk.page_start), Some(chunk.page_end))
    } else {
        (None, None)
    }
}

impl Passage {
    fn new(scored: ScoredChunk, query: &str, names: &Names) -> Self {
        let terms = matched_terms(query, &scored.chunk.text);
        Self::with_terms(scored, terms, names)
    }

    fn with_terms(scored: ScoredChunk, matched_terms: Vec<String>, names: &Names) -> Self {
        let chunk = scored.chunk;
        let (page_start, page_end) = pages(&chunk);
        Self {
            matched_terms,
            owner_name: names.organisation(&chunk.document.owner),
            doc_id: chunk.document.doc_id,
            version: chunk.document.version,
            title: chunk.document.title,
            owner: chunk.document.owner,
            kind: chunk.document.kind,
            date: chunk.document.date,
            page_start,
            page_end,
            ocr: chunk.ocr,
            heading_path: chunk.heading_path,
            text: chunk.text,
            ordinal: chunk.ordinal,
            score: scored.score,
        }
    }
}

impl SearchResponse {
    pub fn new(searched: Searched<Vec<ScoredChunk>>, query: &str, names: &Names) -> Self {
        Self {
            passages: searched
                .result
                .into_iter()
                .map(|scored| Passage::new(scored, query, names))
                .collect(),
            took_ms: searched.took_ms,
        }
    }
}

/// The longest pieces of `query` (at least two characters, not only hiragana) that occur in
/// `text`, scanning the query left to right; longest first, without repeats.
pub fn matched_terms(query: &str, text: &str) -> Vec<String> {
    let query: Vec<char> = query.chars().collect();
    let mut terms: Vec<String> = Vec::new();
    let mut start = 0;
    while start < query.len() {
        let longest = (start + 2..=query.len())
            .rev()
            .map(|end| query[start..end].iter().collect::<String>())
            .find(|piece| text.contains(piece.as_str()));
        match longest {
            Some(piece) => {
                start += piece.chars().count();
                let only_kana = piece
                    .chars()
                    .all(|c| ('\u{3040}'..='\u{309F}').contains(&c));
                let blank = piece.trim().chars().count() < 2;
                if !(only_kana || blank || terms.contains(&piece)) {
                    terms.push(piece);
                }
            }
            None => start += 1,
        }
    }
    terms.sort_by_key(|term| std::cmp::Reverse(term.chars().count()));
    terms
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
    /// `passages` event, `sentence` events (each a verified sentence of the answer), then an
    /// `answer` event (an `AskResponse`).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// From 1, in order of first use in the answer.
    pub n: usize,
    pub doc_id: String,
    /// The document version the passage belongs to.
    pub version: String,
    pub title: String,
    /// Organisation id of the owner.
    pub owner: String,
    /// The owner's name, from the configuration.
    pub owner_name: String,
    pub kind: String,
    pub date: Option<String>,
    /// As in a search result: null for documents without pages.
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    /// The text was read by OCR from a scanned page or an image: it may hold misread characters.
    pub ocr: bool,
    pub heading_path: Vec<String>,
    pub text: String,
    /// Position of the passage in its document, from 0 (for `GET /v1/passages?around=`).
    pub ordinal: u32,
    pub score: f32,
    /// The sentences of `text` that support the answer's sentences citing `[n]` (exact
    /// substrings of `text`); empty for related passages of a "not found" answer.
    pub highlights: Vec<String>,
}

impl Citation {
    fn numbered(n: usize, scored: ScoredChunk, answer: Option<&str>, names: &Names) -> Self {
        let chunk = scored.chunk;
        let (page_start, page_end) = pages(&chunk);
        Self {
            n,
            highlights: answer
                .map(|answer| supporting_sentences(answer, n, &chunk.text))
                .unwrap_or_default(),
            owner_name: names.organisation(&chunk.document.owner),
            doc_id: chunk.document.doc_id,
            version: chunk.document.version,
            title: chunk.document.title,
            owner: chunk.document.owner,
            kind: chunk.document.kind,
            date: chunk.document.date,
            page_start,
            page_end,
            ocr: chunk.ocr,
            heading_path: chunk.heading_path,
            text: chunk.text,
            ordinal: chunk.ordinal,
            score: scored.score,
        }
    }
}

impl AskResponse {
    pub fn new(searched: Searched<Answer>, names: &Names) -> Self {
        let answer = searched.result;
        let verification = answer.verification.map(VerificationReport::from);
        let text = answer.text;
        let cited_text = answer.found.then_some(text.as_str());
        let citations = answer
            .citations
            .into_iter()
            .enumerate()
            .map(|(index, scored)| Citation::numbered(index + 1, scored, cited_text, names))
            .collect();
        Self {
            found: answer.found,
            citations,
            answer: text,
            mode: answer.mode.into(),
            verification,
            warnings: answer.warnings,
            took_ms: searched.took_ms,
        }
    }
}

/// The `passages` event of a streamed answer: the passages the answer is drawn from, best
/// first. The final `answer` event numbers its citations by first use.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamPassages {
    pub passages: Vec<Citation>,
}

impl StreamPassages {
    pub fn new(passages: Vec<ScoredChunk>, names: &Names) -> Self {
        Self {
            passages: passages
                .into_iter()
                .enumerate()
                .map(|(index, scored)| Citation::numbered(index + 1, scored, None, names))
                .collect(),
        }
    }
}

/// A `sentence` event of a streamed answer: one more verified sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamSentence {
    pub text: String,
    /// Its citation numbers, as the final `answer` event numbers them.
    pub citations: Vec<usize>,
}

/// `GET /v1/passages`: passages of one document, in document order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PassagesResponse {
    pub document: Document,
    pub passages: Vec<DocumentPassage>,
}

/// One passage of a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPassage {
    pub ordinal: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    /// As in a search result: null for documents without pages.
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    /// The text was read by OCR from a scanned page or an image: it may hold misread characters.
    pub ocr: bool,
}

impl From<StoredChunk> for DocumentPassage {
    fn from(chunk: StoredChunk) -> Self {
        let (page_start, page_end) = pages(&chunk);
        Self {
            ordinal: chunk.ordinal,
            text: chunk.text,
            heading_path: chunk.heading_path,
            page_start,
            page_end,
            ocr: chunk.ocr,
        }
    }
}

/// Query of `GET /v1/passages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PassagesQuery {
    /// The document.
    pub doc_id: String,
    /// The ordinal of a passage: return it and its neighbours. Absent: every passage.
    pub around: Option<u32>,
    /// Neighbours on each side of `around` (default 2, at most 20).
    pub radius: Option<u32>,
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
    /// The live version.
    pub version: String,
    pub title: String,
    /// Organisation id of the owner; only its editors may delete the document.
    pub owner: String,
    /// The owner's name, from the configuration.
    pub owner_name: String,
    pub kind: String,
    pub date: Option<String>,
    /// Of the organisation ids, group ids or `public` that may read the document, those the
    /// caller holds (its organisation, its groups, `public`).
    pub readers: Vec<String>,
    pub chunk_count: u32,
    /// Null for documents without pages (Word, Excel, HTML).
    pub page_count: Option<u32>,
}

impl Document {
    pub fn new(document: DocumentMeta, names: &Names) -> Self {
        Self {
            owner_name: names.organisation(&document.owner),
            doc_id: document.doc_id,
            version: document.version,
            title: document.title,
            owner: document.owner,
            kind: document.kind,
            date: document.date,
            readers: document.readers,
            chunk_count: document.chunk_count,
            page_count: document.paged.then_some(document.page_count),
        }
    }
}

impl DocumentsResponse {
    pub fn new(documents: Vec<DocumentMeta>, names: &Names) -> Self {
        Self {
            documents: documents
                .into_iter()
                .map(|document| Document::new(document, names))
                .collect(),
        }
    }
}

/// `POST /v1/documents`, as `multipart/form-data`.
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The document, with its file name (`.txt`, `.md`, `.pdf`, `.docx`, `.xlsx`, `.pptx`,
    /// `.html`…: see the README's formats). Its id becomes `uploads/<organisation>/<file name>`;
    /// uploading the same name again replaces it.
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

/// `POST /v1/feedback`: 👍 or 👎 on an answer, as the caller saw it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub question: String,
    /// The answer's text as shown.
    pub answer: String,
    /// The answer's `mode`.
    pub mode: Mode,
    pub found: bool,
    pub rating: crate::metadata::Rating,
    pub comment: Option<String>,
    /// The document versions the answer cited (`doc_id` and `version` of its citations).
    #[serde(default)]
    pub citations: Vec<crate::metadata::CitedVersion>,
}

impl FeedbackRequest {
    pub fn into_feedback(self) -> crate::metadata::Feedback {
        crate::metadata::Feedback {
            id: String::new(),
            created_at: 0,
            org: String::new(),
            user: String::new(),
            question: self.question,
            answer: self.answer,
            mode: match self.mode {
                Mode::Generated => "generated",
                Mode::Extractive => "extractive",
            }
            .to_owned(),
            found: self.found,
            rating: self.rating,
            comment: self.comment.filter(|comment| !comment.trim().is_empty()),
            citations: self.citations,
        }
    }
}

/// The stored feedback's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackCreated {
    pub id: String,
}

/// `GET /v1/feedback`: the feedback of the caller's organisation, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackList {
    pub feedback: Vec<crate::metadata::Feedback>,
}
