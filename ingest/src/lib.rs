//! Turns a file's bytes and its metadata into a normalised Japanese document and its chunks.
//!
//! Pure: no I/O to stores, no embeddings, no async runtime, so that it can be tested, fuzzed and
//! benchmarked on its own.

mod blocks;
mod chunk;
mod decode;
mod document;
pub mod docx;
mod error;
pub mod html;
mod manifest;
mod normalize;
mod ooxml;
pub mod pdf;
pub mod pptx;
mod structure;
pub mod xlsx;

pub use chunk::{Chunk, ChunkOptions, chunk_text, indexing_text, with_markdown_headings};
pub use document::{
    Extraction, Format, LoadOptions, PAGE_SEPARATOR, PageOcr, ParsedDocument, SUPPORTED_FORMATS,
    UnreadablePage, extract, extract_as, extract_with, parse_document, parse_document_as,
    parse_document_with,
};
pub use error::{IngestError, ManifestError};
pub use manifest::{DocumentMetadata, MANIFEST_FILE, Manifest, is_valid_id};
pub use normalize::normalize_chars;
pub use ooxml::OfficeError;

/// Whether a line of normalised text is a heading as the chunker reads headings: a numbered or
/// marked line (「第1章 …」, 「(1) 体制」, 「■ 方針」) or a Markdown `#` line.
pub fn is_heading_line(line: &str) -> bool {
    let line = line.trim();
    structure::detect_heading(line).is_some() || structure::detect_markdown_heading(line).is_some()
}

/// The reader token that makes a document readable by everyone.
pub const PUBLIC_READER: &str = "public";
