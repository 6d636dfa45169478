//! PDF text extraction: page text in reading order, and a clear verdict on pages that have
//! no usable text layer.
//!
//! lopdf parses the file, its objects and content streams. This module interprets the
//! content streams itself to place every glyph (`interp`), decodes text through ToUnicode
//! maps, simple-font encodings and predefined CJK CMaps (`font`, `cmap`), and rebuilds lines
//! from glyph positions rather than content-stream order (`layout`). A page that cannot be
//! read gets a [`PageProblem`] and empty text; only a document that cannot be opened is an
//! error.
//!
//! A page is [`PageProblem::Failed`] when lopdf reports its content stream as unparsable
//! (lopdf stops quietly at most syntax errors and keeps what came before; a broken inline
//! image is a hard error), or when it exceeds the interpreter's work limits.

mod cmap;
mod encoding;
mod font;
mod interp;
mod layout;
mod outlines;
mod radicals;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Dictionary, Document, Object, ObjectId};

use self::font::{deref, number};
use self::interp::{CONTENT_LIMIT, FontCache, Interpreter};

/// Share of problem characters above which a page is [`PageProblem::Garbled`] (or
/// [`PageProblem::UnknownEncoding`] for glyphs of fonts without a Unicode mapping).
const PROBLEM_SHARE: f64 = 0.05;
/// Levels of the page tree searched for inherited attributes.
const MAX_INHERITANCE: usize = 64;

/// Text of one PDF page, lines in reading order separated by `'\n'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfPage {
    /// Page number, 1-based.
    pub number: u32,
    /// The page text; empty when `problem` is set.
    pub text: String,
    /// Why the page has no text, if it has none.
    pub problem: Option<PageProblem>,
}

/// Why a page gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageProblem {
    /// No text operators: a scanned image, or an empty page.
    NoText,
    /// Text is drawn with a font whose codes have no known Unicode meaning
    /// (e.g. Identity-H without a ToUnicode map).
    UnknownEncoding {
        /// The font's `/BaseFont` name.
        font: String,
    },
    /// The decoded text is mostly not text: U+FFFD, private-use or control characters
    /// above a small share, or "(cid:NN)" residue.
    Garbled {
        /// What gave it away.
        reason: String,
    },
    /// The page's content stream could not be parsed.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for PageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageProblem::NoText => write!(f, "no text layer (scanned image?)"),
            PageProblem::UnknownEncoding { font } => {
                write!(f, "font {font} has no Unicode mapping")
            }
            PageProblem::Garbled { reason } => write!(f, "garbled text ({reason})"),
            PageProblem::Failed { reason } => write!(f, "page could not be read ({reason})"),
        }
    }
}

/// Why a PDF could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// Not a PDF, or damaged beyond repair.
    #[error("malformed PDF: {reason}")]
    Malformed {
        /// What the parser reported.
        reason: String,
    },
    /// The PDF is encrypted and needs a password to open.
    #[error("the PDF is encrypted and needs a password")]
    Encrypted,
    /// The PDF is encrypted with a security handler that cannot be opened here.
    #[error("the PDF uses unsupported encryption: {reason}")]
    UnsupportedEncryption {
        /// What the decryption reported.
        reason: String,
    },
    /// The PDF has no pages.
    #[error("the PDF has no pages")]
    NoPages,
}

/// Extracts the text of every page of a PDF.
///
/// Encrypted PDFs that open with an empty user password are decrypted. One unreadable page
/// costs that page only (its [`PdfPage::problem`] says why); a document that cannot be
/// opened is a [`PdfError`].
pub fn extract_pdf(bytes: &[u8]) -> Result<Vec<PdfPage>, PdfError> {
    let doc =
        catch_unwind(AssertUnwindSafe(|| load(bytes))).map_err(|panic| PdfError::Malformed {
            reason: format!("the parser failed: {}", panic_message(&*panic)),
        })??;
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(PdfError::NoPages);
    }
    let mut fonts = FontCache::default();
    Ok(pages
        .into_iter()
        .map(|(number, id)| read_page(&doc, &mut fonts, number, id))
        .collect())
}

/// Opens a document, decrypting it with the empty password if need be.
fn load(bytes: &[u8]) -> Result<Document, PdfError> {
    // Last-resort guard: lopdf's parser is a third-party parser of untrusted input, and a
    // panic inside it must become an error rather than take the caller down. Nothing of
    // ours runs inside, and the partially built document is dropped.
    let loaded = catch_unwind(AssertUnwindSafe(|| Document::load_mem(bytes)));
    let mut doc = match loaded {
        Ok(Ok(doc)) => doc,
        Ok(Err(error)) => return Err(load_error(error)),
        Err(_) => {
            return Err(PdfError::Malformed {
                reason: "the PDF parser failed on this input".to_string(),
            });
        }
    };
    if doc.is_encrypted() {
        // Reached when the loader could not decrypt on its own (no usable empty password).
        // Decryption is lopdf code working on untrusted input too: same guard as above.
        let decrypted = catch_unwind(AssertUnwindSafe(|| doc.decrypt("")));
        match decrypted {
            Ok(Ok(())) => {}
            Ok(Err(lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_))) => {
                return Err(PdfError::Encrypted);
            }
            Ok(Err(error)) => {
                return Err(PdfError::UnsupportedEncryption {
                    reason: error.to_string(),
                });
            }
            Err(_) => {
                return Err(PdfError::UnsupportedEncryption {
                    reason: "decryption failed".to_string(),
                });
            }
        }
    }
    Ok(doc)
}

fn load_error(error: lopdf::Error) -> PdfError {
    match error {
        lopdf::Error::InvalidPassword => PdfError::Encrypted,
        lopdf::Error::Decryption(e) => PdfError::UnsupportedEncryption {
            reason: e.to_string(),
        },
        lopdf::Error::UnsupportedSecurityHandler(handler) => PdfError::UnsupportedEncryption {
            reason: format!("security handler {}", String::from_utf8_lossy(&handler)),
        },
        other => PdfError::Malformed {
            reason: other.to_string(),
        },
    }
}

/// One page's text. A panic while reading it (a parser bug on a hostile page) costs that page
/// only: it becomes [`PageProblem::Failed`] and the font cache, which it may have left half
/// filled, starts over.
fn read_page(doc: &Document, fonts: &mut FontCache, number: u32, id: ObjectId) -> PdfPage {
    let read = catch_unwind(AssertUnwindSafe(|| page_text(doc, fonts, id)));
    let read = read.unwrap_or_else(|panic| {
        *fonts = FontCache::default();
        Err(PageProblem::Failed {
            reason: format!("the page reader failed: {}", panic_message(&*panic)),
        })
    });
    match read {
        Ok(text) => PdfPage {
            number,
            text,
            problem: None,
        },
        Err(problem) => PdfPage {
            number,
            text: String::new(),
            problem: Some(problem),
        },
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

fn page_text(doc: &Document, fonts: &mut FontCache, id: ObjectId) -> Result<String, PageProblem> {
    let content = doc
        .get_page_content_with_limit(id, CONTENT_LIMIT)
        .map_err(|e| PageProblem::Failed {
            reason: format!("page content: {e}"),
        })?;
    let page = doc.get_dictionary(id).ok();
    let resources = inherited(doc, page, b"Resources").and_then(|o| o.as_dict().ok());
    let page_box = inherited(doc, page, b"MediaBox").and_then(|o| rectangle(doc, o));
    let glyphs = Interpreter::new(doc, fonts, page_box)
        .run_page(&content, resources)
        .map_err(|reason| PageProblem::Failed { reason })?;
    let text = layout::lay_out(&glyphs.glyphs, &glyphs.text);

    let visible = text.chars().filter(|c| !c.is_whitespace()).count();
    if let Some(font) = glyphs.unknown_font {
        let unknown = glyphs.unknown;
        if unknown as f64 > PROBLEM_SHARE * (unknown + visible) as f64 {
            return Err(PageProblem::UnknownEncoding { font });
        }
    }
    if let Some(reason) = garbled(&text, visible) {
        return Err(PageProblem::Garbled { reason });
    }
    let text: String = text
        .chars()
        .filter(|&c| c == '\n' || !is_noise(c))
        .collect();
    if text.trim().is_empty() {
        return Err(PageProblem::NoText);
    }
    Ok(text)
}

/// Characters that never belong in extracted text.
fn is_noise(c: char) -> bool {
    c == char::REPLACEMENT_CHARACTER || c.is_control()
}

fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// Why `text` is garbage, if it is.
fn garbled(text: &str, visible: usize) -> Option<String> {
    if text.contains("(cid:") {
        return Some("\"(cid:NN)\" residue".to_string());
    }
    let (mut replacement, mut private, mut control) = (0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c == char::REPLACEMENT_CHARACTER {
            replacement += 1;
        } else if is_private_use(c) {
            private += 1;
        } else if c.is_control() {
            control += 1;
        }
    }
    let bad = replacement + private + control;
    (bad > 0 && bad as f64 > PROBLEM_SHARE * visible as f64).then(|| {
        format!(
            "{bad} of {visible} characters unreadable: {replacement} unmapped, {private} private-use, {control} control"
        )
    })
}

/// An attribute of a page or, failing that, of its nearest ancestor in the page tree.
fn inherited<'a>(
    doc: &'a Document,
    page: Option<&'a Dictionary>,
    key: &[u8],
) -> Option<&'a Object> {
    let mut node = page?;
    for _ in 0..MAX_INHERITANCE {
        if let Some(value) = deref(doc, node.get(key).ok()) {
            return Some(value);
        }
        node = deref(doc, node.get(b"Parent").ok())?.as_dict().ok()?;
    }
    None
}

/// `[x0 y0 x1 y1]`, normalised, if it has an area.
fn rectangle(doc: &Document, object: &Object) -> Option<[f64; 4]> {
    let array = object.as_array().ok()?;
    let mut v = [0.0; 4];
    for (slot, item) in v.iter_mut().zip(array) {
        *slot = number(doc, Some(item))?;
    }
    let [a, b, c, d] = v;
    let rect = [a.min(c), b.min(d), a.max(c), b.max(d)];
    (array.len() >= 4 && rect[2] > rect[0] && rect[3] > rect[1]).then_some(rect)
}
