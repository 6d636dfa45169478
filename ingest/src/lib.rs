//! Turns a file's bytes and its metadata into a normalised Japanese document and its chunks.
//!
//! Pure: no I/O to stores, no embeddings, no async runtime, so that it can be tested, fuzzed and
//! benchmarked on its own.

mod chunk;
mod decode;
mod document;
mod error;
mod manifest;
mod normalize;
pub mod pdf;
mod structure;

pub use chunk::{Chunk, ChunkOptions, chunk_text, indexing_text};
pub use document::{
    Extraction, Format, PAGE_SEPARATOR, ParsedDocument, SUPPORTED_FORMATS, UnreadablePage, extract,
    extract_as, parse_document, parse_document_as,
};
pub use error::{IngestError, ManifestError};
pub use manifest::{DocumentMetadata, MANIFEST_FILE, Manifest, is_valid_id};
pub use normalize::normalize_chars;

/// The reader token that makes a document readable by everyone.
pub const PUBLIC_READER: &str = "public";
