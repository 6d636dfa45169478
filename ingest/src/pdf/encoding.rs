//! Simple-font encodings: base encodings and `/Differences` with glyph names.
//!
//! The base encodings and the Adobe Glyph List come from lopdf, whose tables are not
//! public themselves: they are read through throwaway font dictionaries.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use lopdf::{Dictionary, Document, Encoding, Object};

use super::font::deref;

/// Text per byte of a simple font: base encoding, then `/Differences`.
pub fn simple_encoding(
    doc: &Document,
    encoding: Option<&Object>,
    default_base: &[u8],
) -> Vec<String> {
    let encoding = deref(doc, encoding);
    let (base_name, differences) = match encoding {
        Some(Object::Name(name)) => (name.as_slice(), None),
        Some(Object::Dictionary(dict)) => {
            let base = match dict
                .get(b"BaseEncoding")
                .ok()
                .and_then(|o| deref(doc, Some(o)))
            {
                Some(Object::Name(name)) => name.as_slice(),
                _ => default_base,
            };
            let differences =
                deref(doc, dict.get(b"Differences").ok()).and_then(|o| o.as_array().ok());
            (base, differences)
        }
        _ => (default_base, None),
    };
    let mut table: Vec<String> = base_table(base_name)
        .iter()
        .map(|c| c.map(String::from).unwrap_or_default())
        .collect();
    if let Some(differences) = differences {
        let mut code: usize = 0;
        for item in differences {
            match deref(doc, Some(item)) {
                Some(Object::Integer(n)) => code = usize::try_from(*n).unwrap_or(usize::MAX),
                Some(Object::Name(glyph)) => {
                    if let Some(slot) = table.get_mut(code) {
                        *slot = glyph_name_text(glyph).unwrap_or_default();
                    }
                    code = code.saturating_add(1);
                }
                _ => {}
            }
        }
    }
    table
}

/// A base encoding as 256 optional characters, taken from lopdf's tables (which are not
/// public themselves): a throwaway font dictionary naming the encoding is decoded byte by byte.
fn base_table(name: &[u8]) -> &'static [Option<char>; 256] {
    static WIN_ANSI: OnceLock<[Option<char>; 256]> = OnceLock::new();
    static MAC_ROMAN: OnceLock<[Option<char>; 256]> = OnceLock::new();
    static MAC_EXPERT: OnceLock<[Option<char>; 256]> = OnceLock::new();
    static STANDARD: OnceLock<[Option<char>; 256]> = OnceLock::new();
    let (cell, name): (_, &[u8]) = match name {
        b"WinAnsiEncoding" => (&WIN_ANSI, b"WinAnsiEncoding"),
        b"MacRomanEncoding" => (&MAC_ROMAN, b"MacRomanEncoding"),
        b"MacExpertEncoding" => (&MAC_EXPERT, b"MacExpertEncoding"),
        _ => (&STANDARD, b"StandardEncoding"),
    };
    cell.get_or_init(|| {
        let mut table = [None; 256];
        let font = font_with_encoding(Object::Name(name.to_vec()));
        if let Ok(encoding) = font.get_font_encoding(&Document::new()) {
            for (byte, slot) in (0u8..=255).zip(table.iter_mut()) {
                *slot = encoding
                    .bytes_to_string(&[byte])
                    .ok()
                    .and_then(|s| s.chars().next());
            }
        }
        table
    })
}

fn font_with_encoding(encoding: Object) -> Dictionary {
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Encoding", encoding);
    font
}

/// The text of a glyph name: Adobe Glyph List names (through lopdf's list), `uniXXXX…`,
/// `uXXXX[XX]`, and suffixed (`a.sc`) or ligature (`f_f_i`) forms of those.
pub fn glyph_name_text(name: &[u8]) -> Option<String> {
    let base = name.split(|&b| b == b'.').next().unwrap_or_default();
    if base.is_empty() {
        return None;
    }
    if base.contains(&b'_') {
        let parts: Option<String> = base.split(|&b| b == b'_').map(single_glyph_name).collect();
        return parts.filter(|s| !s.is_empty());
    }
    single_glyph_name(base)
}

fn single_glyph_name(name: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(name).ok()?;
    if let Some(hex) = text.strip_prefix("uni")
        && !hex.is_empty()
        && hex.len() % 4 == 0
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    {
        let chars: Option<String> = hex
            .as_bytes()
            .chunks(4)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
            })
            .collect();
        return chars;
    }
    if let Some(hex) = text.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    {
        return u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .map(String::from);
    }
    agl_lookup(name).map(String::from)
}

/// Names looked up per thread and kept; beyond this, lookups are not cached (hostile inputs).
const AGL_CACHE_SIZE: usize = 8192;

thread_local! {
    /// The document lopdf's encoding lookup asks for (it needs none of its content).
    static EMPTY_DOCUMENT: Document = Document::new();
    /// Glyph names already looked up.
    static AGL_CACHE: RefCell<HashMap<Vec<u8>, Option<char>>> = RefCell::new(HashMap::new());
}

/// Looks a glyph name up in lopdf's Adobe Glyph List through a one-entry `/Differences`.
fn agl_lookup(name: &[u8]) -> Option<char> {
    if let Some(cached) = AGL_CACHE.with_borrow(|cache| cache.get(name).copied()) {
        return cached;
    }
    let mut encoding = Dictionary::new();
    encoding.set("Type", Object::Name(b"Encoding".to_vec()));
    encoding.set(
        "Differences",
        Object::Array(vec![Object::Integer(0), Object::Name(name.to_vec())]),
    );
    let font = font_with_encoding(Object::Dictionary(encoding));
    let found = EMPTY_DOCUMENT.with(|doc| match font.get_font_encoding(doc) {
        Ok(encoding @ Encoding::Differences(_)) => encoding
            .bytes_to_string(&[0])
            .ok()
            .and_then(|s| s.chars().next()),
        _ => None,
    });
    AGL_CACHE.with_borrow_mut(|cache| {
        if cache.len() < AGL_CACHE_SIZE {
            cache.insert(name.to_vec(), found);
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names() {
        assert_eq!(glyph_name_text(b"A").as_deref(), Some("A"));
        assert_eq!(glyph_name_text(b"eacute").as_deref(), Some("é"));
        assert_eq!(glyph_name_text(b"uni3042").as_deref(), Some("あ"));
        assert_eq!(glyph_name_text(b"uni00410042").as_deref(), Some("AB"));
        assert_eq!(glyph_name_text(b"u20000").as_deref(), Some("\u{20000}"));
        assert_eq!(glyph_name_text(b"f_i").as_deref(), Some("fi"));
        assert_eq!(glyph_name_text(b"a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_name_text(b"g123"), None);
        assert_eq!(glyph_name_text(b".notdef"), None);
    }

    #[test]
    fn base_tables() {
        assert_eq!(base_table(b"WinAnsiEncoding")[0xE9], Some('é'));
        assert_eq!(base_table(b"WinAnsiEncoding")[0x41], Some('A'));
        assert_eq!(base_table(b"MacRomanEncoding")[0x8E], Some('é'));
        assert_eq!(base_table(b"StandardEncoding")[0x27], Some('’'));
    }
}
