//! From a file's bytes to a normalised, chunked document.

use std::sync::Arc;

use serde::Serialize;

use crate::chunk::{Chunk, ChunkOptions, chunk_text, first_heading};
use crate::decode::decode_text;
use crate::docx::extract_docx;
use crate::error::IngestError;
use crate::html::extract_html;
use crate::manifest::DocumentMetadata;
use crate::normalize::normalize_pages;
use crate::pdf::extract_pdf;
use crate::pptx::extract_pptx;
use crate::xlsx::extract_xlsx;

/// The file types the loaders read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Pdf,
    Docx,
    Xlsx,
    Pptx,
    Html,
    /// A scanned page as a PNG, JPEG or TIFF file, read by OCR.
    Image,
}

/// Named in the error for any other file type.
pub const SUPPORTED_FORMATS: &str = ".txt, .text, .md, .markdown, .pdf, .docx, .xlsx, .pptx, .html, .htm, .png, .jpg, .jpeg, .tif, .tiff";

impl Format {
    /// The format of a file, from its extension.
    pub fn from_path(path: &str) -> Result<Self, IngestError> {
        let extension = std::path::Path::new(path)
            .extension()
            .map(|extension| extension.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "txt" | "text" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Markdown),
            "pdf" => Ok(Format::Pdf),
            "docx" => Ok(Format::Docx),
            "xlsx" => Ok(Format::Xlsx),
            "pptx" => Ok(Format::Pptx),
            "html" | "htm" => Ok(Format::Html),
            "png" | "jpg" | "jpeg" | "tif" | "tiff" => Ok(Format::Image),
            _ => Err(IngestError::UnsupportedFormat {
                path: path.to_owned(),
                extension,
                supported: SUPPORTED_FORMATS,
            }),
        }
    }

    /// Whether a chunk's page numbers locate it: PDF pages, PowerPoint slides, and the form-feed
    /// pages of text files. A Word document, a workbook or a web page has one page; a chunk is
    /// located by its heading path (and, in a workbook, the row numbers in its text).
    pub fn has_pages(self) -> bool {
        matches!(
            self,
            Format::Text | Format::Markdown | Format::Pdf | Format::Pptx | Format::Image
        )
    }

    /// Whether the extracted text marks headings with Markdown `#`s (the office and HTML loaders
    /// write them from the file's structure), rather than by the numbering conventions of plain
    /// text.
    pub fn has_markdown_headings(self) -> bool {
        !matches!(self, Format::Text | Format::Pdf | Format::Image)
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "Markdown",
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Xlsx => "XLSX",
            Format::Pptx => "PPTX",
            Format::Html => "HTML",
            Format::Image => "image",
        }
    }
}

/// Optical character recognition of pages that have no usable text layer (scanned pages) and of
/// image files. The caller provides it: this crate runs no programs.
pub trait PageOcr: Send + Sync {
    /// Names the engine and its models: a document read with another engine is another version.
    fn engine(&self) -> String;
    /// The text of page `page` (1-based) of the PDF `pdf`.
    fn pdf_page(&self, pdf: &[u8], page: u32) -> Result<String, String>;
    /// The text of an image file; `extension` (lowercase) names its type.
    fn image(&self, image: &[u8], extension: &str) -> Result<String, String>;
}

/// How files are read, beyond their bytes.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Read the hidden worksheets of workbooks too (by default they are skipped: hidden
    /// sheets usually hold lookup tables and working data, not content).
    pub include_hidden_sheets: bool,
    /// Reads the pages a PDF gives no text for, and image files. Without it those pages are
    /// reported unreadable and image files are refused.
    pub ocr: Option<Arc<dyn PageOcr>>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("include_hidden_sheets", &self.include_hidden_sheets)
            .field("ocr", &self.ocr.is_some())
            .finish()
    }
}

/// A page that gave no usable text, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadablePage {
    /// 1-based.
    pub page: u32,
    pub reason: String,
}

/// The normalised text of a file, page by page.
#[derive(Debug, Clone)]
pub struct Extraction {
    pub format: Format,
    /// Normalised text of each page; empty for unreadable pages.
    pub pages: Vec<String>,
    pub unreadable_pages: Vec<UnreadablePage>,
    /// Pages (1-based) whose text came from OCR.
    pub ocr_pages: Vec<u32>,
}

/// The separator between pages in a document's text.
pub const PAGE_SEPARATOR: char = '\u{c}';

impl Extraction {
    /// The document text: pages separated by form feeds. Chunk character ranges index into it.
    pub fn text(&self) -> String {
        self.pages.join("\u{c}")
    }

    pub fn has_text(&self) -> bool {
        self.pages.iter().any(|page| !page.trim().is_empty())
    }
}

/// Reads a file's bytes (`path` gives the format and names the file in errors) and normalises
/// its text.
pub fn extract(path: &str, bytes: &[u8]) -> Result<Extraction, IngestError> {
    extract_as(path, Format::from_path(path)?, bytes)
}

/// Like [`extract`], with the format given rather than taken from the path.
pub fn extract_as(path: &str, format: Format, bytes: &[u8]) -> Result<Extraction, IngestError> {
    extract_with(path, format, bytes, &LoadOptions::default())
}

/// Like [`extract_as`], with loader options.
pub fn extract_with(
    path: &str,
    format: Format,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Extraction, IngestError> {
    let office_error = |source| IngestError::Office {
        path: path.to_owned(),
        format: format.name(),
        source,
    };
    let mut ocr_pages = Vec::new();
    let (raw_pages, unreadable_pages) = match format {
        Format::Text | Format::Markdown => {
            let text = decode_text(bytes).map_err(|failure| IngestError::UndecodableText {
                path: path.to_owned(),
                reason: failure.reason(),
            })?;
            (
                text.split(PAGE_SEPARATOR).map(str::to_owned).collect(),
                Vec::new(),
            )
        }
        Format::Pdf => {
            let pages = extract_pdf(bytes).map_err(|source| IngestError::Pdf {
                path: path.to_owned(),
                source,
            })?;
            let mut unreadable = Vec::new();
            let mut texts = Vec::with_capacity(pages.len());
            for page in pages {
                let Some(problem) = page.problem else {
                    texts.push(page.text);
                    continue;
                };
                let recognised = options
                    .ocr
                    .as_ref()
                    .map(|ocr| ocr.pdf_page(bytes, page.number));
                match recognised {
                    Some(Ok(text)) if !text.trim().is_empty() => {
                        ocr_pages.push(page.number);
                        texts.push(text);
                        continue;
                    }
                    Some(Ok(_)) => unreadable.push(UnreadablePage {
                        page: page.number,
                        reason: format!("{problem}; OCR found no text on it"),
                    }),
                    Some(Err(reason)) => unreadable.push(UnreadablePage {
                        page: page.number,
                        reason: format!("{problem}; OCR failed: {reason}"),
                    }),
                    None => unreadable.push(UnreadablePage {
                        page: page.number,
                        reason: problem.to_string(),
                    }),
                }
                texts.push(String::new());
            }
            (texts, unreadable)
        }
        Format::Docx => (vec![extract_docx(bytes).map_err(office_error)?], Vec::new()),
        Format::Xlsx => (
            vec![extract_xlsx(bytes, options.include_hidden_sheets).map_err(office_error)?],
            Vec::new(),
        ),
        Format::Pptx => (extract_pptx(bytes).map_err(office_error)?, Vec::new()),
        Format::Html => (
            vec![extract_html(bytes).map_err(|source| IngestError::Html {
                path: path.to_owned(),
                source,
            })?],
            Vec::new(),
        ),
        Format::Image => {
            let ocr = options
                .ocr
                .as_ref()
                .ok_or_else(|| IngestError::OcrUnavailable {
                    path: path.to_owned(),
                })?;
            let extension = std::path::Path::new(path)
                .extension()
                .map(|extension| extension.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let text = ocr
                .image(bytes, &extension)
                .map_err(|reason| IngestError::OcrFailed {
                    path: path.to_owned(),
                    reason,
                })?;
            ocr_pages.push(1);
            (vec![text], Vec::new())
        }
    };
    Ok(Extraction {
        format,
        pages: normalize_pages(&raw_pages, format.has_markdown_headings()),
        unreadable_pages,
        ocr_pages,
    })
}

/// A document ready to be embedded and stored.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    /// Path relative to the corpus folder.
    pub id: String,
    pub title: String,
    pub metadata: DocumentMetadata,
    pub format: Format,
    /// Normalised text, pages separated by form feeds.
    pub text: String,
    pub page_count: u32,
    pub unreadable_pages: Vec<UnreadablePage>,
    /// Pages (1-based) whose text came from OCR.
    pub ocr_pages: Vec<u32>,
    pub chunks: Vec<Chunk>,
}

impl ParsedDocument {
    /// Whether any page of `chunk` was read by OCR.
    pub fn is_ocr(&self, chunk: &Chunk) -> bool {
        self.ocr_pages
            .iter()
            .any(|page| (chunk.page_start..=chunk.page_end).contains(page))
    }
}

/// Extracts, normalises and chunks one file.
pub fn parse_document(
    id: &str,
    bytes: &[u8],
    metadata: DocumentMetadata,
    options: &ChunkOptions,
) -> Result<ParsedDocument, IngestError> {
    parse_document_as(id, Format::from_path(id)?, bytes, metadata, options)
}

/// Like [`parse_document_as`], with loader options.
pub fn parse_document_with(
    id: &str,
    format: Format,
    bytes: &[u8],
    metadata: DocumentMetadata,
    options: &ChunkOptions,
    load_options: &LoadOptions,
) -> Result<ParsedDocument, IngestError> {
    let extraction = extract_with(id, format, bytes, load_options)?;
    parsed_document(id, extraction, metadata, options)
}

/// Like [`parse_document`], with the format given rather than taken from the id.
pub fn parse_document_as(
    id: &str,
    format: Format,
    bytes: &[u8],
    metadata: DocumentMetadata,
    options: &ChunkOptions,
) -> Result<ParsedDocument, IngestError> {
    parse_document_with(
        id,
        format,
        bytes,
        metadata,
        options,
        &LoadOptions::default(),
    )
}

fn parsed_document(
    id: &str,
    extraction: Extraction,
    metadata: DocumentMetadata,
    options: &ChunkOptions,
) -> Result<ParsedDocument, IngestError> {
    if !extraction.has_text() {
        return Err(IngestError::NoReadableText {
            path: id.to_owned(),
            pages: extraction.pages.len() as u32,
        });
    }
    let markdown = extraction.format.has_markdown_headings();
    let text = extraction.text();
    let chunks = chunk_text(&text, markdown, options)?;
    let title = metadata
        .title
        .clone()
        .or_else(|| first_heading(&text, markdown))
        .or_else(|| {
            text.lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| id.to_owned());
    Ok(ParsedDocument {
        id: id.to_owned(),
        title,
        metadata,
        format: extraction.format,
        page_count: extraction.pages.len() as u32,
        unreadable_pages: extraction.unreadable_pages,
        ocr_pages: extraction.ocr_pages,
        text,
        chunks,
    })
}
