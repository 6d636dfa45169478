use crate::html::HtmlError;
use crate::ooxml::OfficeError;
use crate::pdf::PdfError;

/// Why a file could not be turned into a document.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported file type {extension:?} for {path}: supported types are {supported}")]
    UnsupportedFormat {
        path: String,
        extension: String,
        supported: &'static str,
    },
    #[error(
        "{path} is not text in UTF-8, UTF-16, Shift_JIS or EUC-JP ({reason}); convert it to UTF-8 and retry"
    )]
    UndecodableText { path: String, reason: &'static str },
    #[error("{path} could not be read as PDF: {source}")]
    Pdf { path: String, source: PdfError },
    #[error("{path} could not be read as {format}: {source}")]
    Office {
        path: String,
        /// "DOCX", "XLSX" or "PPTX".
        format: &'static str,
        source: OfficeError,
    },
    #[error("{path} could not be read as HTML: {source}")]
    Html { path: String, source: HtmlError },
    #[error(
        "{path} has no readable text on any of its {pages} page(s); scanned documents need OCR first"
    )]
    NoReadableText { path: String, pages: u32 },
    #[error("{path}: image files are read by OCR, which is off or not installed here")]
    OcrUnavailable { path: String },
    #[error("{path}: OCR could not read the image: {reason}")]
    OcrFailed { path: String, reason: String },
    #[error("invalid chunking options: {reason}")]
    InvalidOptions { reason: String },
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}, line {line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}
