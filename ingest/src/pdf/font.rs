//! Fonts: how a font's strings split into codes, what text each code stands for and how far
//! each glyph advances.

use lopdf::{Dictionary, Document, Object};

use super::cmap::{CMap, CodeSpace, NEARBY_RANGES, utf16_string};
use super::encoding::simple_encoding;
use super::outlines::Outlines;

/// Decompressed size allowed for one font-related stream (CMap, font program).
pub const STREAM_LIMIT: usize = 16 << 20;

/// What a code turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Text was appended.
    Mapped,
    /// The font maps codes to text, but not this one (U+FFFD was appended).
    Unmapped,
    /// The font gives no way to know the text (Identity-H without ToUnicode).
    Unknown,
}

/// The text a code stands for when the ToUnicode map does not say.
#[derive(Debug)]
enum Fallback {
    /// Simple font: text per byte from `/Encoding` (empty: no glyph name known).
    Table(Vec<String>),
    /// Predefined `Uni…` CMap: the code is the character itself in this form.
    Unicode(UnicodeForm),
    /// Predefined legacy CMap (Shift_JIS, EUC, Big5, …). `jis`: ISO-2022 row/cell bytes.
    Legacy {
        encoding: &'static encoding_rs::Encoding,
        jis: bool,
    },
    /// Identity or embedded CMap: codes are glyph ids or CIDs without a known meaning.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum UnicodeForm {
    Utf16,
    Utf8,
    Utf32,
}

/// How a Type0 font's codes become CIDs, which its `/W` widths are indexed by.
#[derive(Debug)]
enum CidSource {
    Identity,
    CMap(CMap),
    /// UniJIS CMaps: ASCII goes to the proportional (or half-width) Latin CIDs of Adobe-Japan1.
    UniJis {
        half_width: bool,
    },
    /// Single-byte codes of legacy Japanese CMaps are half-width Latin.
    LegacyJis,
    Unknown,
}

/// Glyph widths in glyph space (thousandths of the font size for all but Type3 fonts).
#[derive(Debug)]
enum Widths {
    Simple {
        first: u32,
        widths: Vec<f64>,
        missing: f64,
    },
    Cid {
        ranges: Vec<(u32, u32, f64)>,
        default: f64,
    },
}

/// A loaded font.
#[derive(Debug)]
pub struct Font {
    /// `/BaseFont` without the subset tag.
    pub name: String,
    /// How strings split into codes.
    pub code_space: CodeSpace,
    /// Vertical writing (`-V` CMaps, `/WMode 1`).
    pub vertical: bool,
    to_unicode: Option<CMap>,
    fallback: Fallback,
    cid_source: CidSource,
    widths: Widths,
    /// Glyph space → text space for widths (0.001, or a Type3 `/FontMatrix`).
    width_scale: f64,
    /// Em size in text space per unit of font size (1 except for some Type3 fonts).
    pub em: f64,
    /// Vertical advance per glyph in text space (from `/DW2`, positive is downwards).
    vertical_advance: f64,
    /// Outline presence per glyph id, to tell blank glyphs of unknown-encoding fonts.
    outlines: Option<Outlines>,
}

impl Font {
    /// A stand-in for a font resource that is missing or unreadable.
    pub fn missing(name: &str) -> Self {
        Font {
            name: name.to_string(),
            code_space: CodeSpace::fixed(1),
            vertical: false,
            to_unicode: None,
            fallback: Fallback::Unknown,
            cid_source: CidSource::Unknown,
            widths: Widths::Simple {
                first: 0,
                widths: Vec::new(),
                missing: 500.0,
            },
            width_scale: 0.001,
            em: 1.0,
            vertical_advance: 1.0,
            outlines: None,
        }
    }

    /// Loads a font dictionary. Never fails: what cannot be read falls back to defaults,
    /// and codes without a known meaning report [`Lookup::Unknown`].
    pub fn load(doc: &Document, dict: &Dictionary) -> Self {
        let subtype = name_of(doc, dict.get(b"Subtype").ok()).unwrap_or_default();
        let name = name_of(doc, dict.get(b"BaseFont").ok())
            .map(|n| strip_subset(&String::from_utf8_lossy(&n)).to_string())
            .unwrap_or_default();
        let to_unicode = stream_data(doc, dict.get(b"ToUnicode").ok())
            .map(|data| CMap::parse(&data))
            .filter(CMap::has_unicode);
        if subtype == b"Type0" {
            load_type0(doc, dict, name, to_unicode)
        } else {
            load_simple(doc, dict, &subtype, name, to_unicode)
        }
    }

    /// Appends the text of `code` (`len` bytes) to `out`.
    pub fn text(&self, code: u32, len: usize, out: &mut String) -> Lookup {
        if let Some(cmap) = &self.to_unicode
            && cmap.unicode(code, len, out)
        {
            return Lookup::Mapped;
        }
        let mapped = match &self.fallback {
            Fallback::Table(table) => match usize::try_from(code).ok().and_then(|c| table.get(c)) {
                Some(text) if !text.is_empty() => {
                    out.push_str(text);
                    true
                }
                _ => false,
            },
            Fallback::Unicode(form) => decode_unicode(*form, code, len, out),
            Fallback::Legacy { encoding, jis } => {
                let mut bytes = code_bytes(code, len);
                if *jis {
                    bytes.iter_mut().for_each(|b| *b |= 0x80);
                }
                let (text, had_errors) = encoding.decode_without_bom_handling(&bytes);
                out.push_str(&text);
                !had_errors
            }
            Fallback::Unknown if self.to_unicode.is_none() => {
                if self.is_blank(code) {
                    out.push(' ');
                    return Lookup::Mapped;
                }
                return Lookup::Unknown;
            }
            Fallback::Unknown => false,
        };
        if mapped {
            Lookup::Mapped
        } else {
            out.push(char::REPLACEMENT_CHARACTER);
            Lookup::Unmapped
        }
    }

    /// Whether the glyph for `code` has no outline (draws nothing, like a space).
    fn is_blank(&self, code: u32) -> bool {
        let Some(outlines) = &self.outlines else {
            return false;
        };
        let cid = match &self.cid_source {
            CidSource::Identity => code,
            CidSource::CMap(cmap) => match cmap.cid(code, 2) {
                Some(cid) => cid,
                None => return false,
            },
            _ => return false,
        };
        outlines.is_blank(cid)
    }

    /// Horizontal advance of `code` in text space (per unit of font size).
    pub fn width(&self, code: u32, len: usize) -> f64 {
        let glyph_width = match &self.widths {
            Widths::Simple {
                first,
                widths,
                missing,
            } => code
                .checked_sub(*first)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| widths.get(i))
                .copied()
                .unwrap_or(*missing),
            Widths::Cid { ranges, default } => self
                .cid(code, len)
                .and_then(|cid| {
                    let end = ranges.partition_point(|r| r.0 <= cid);
                    ranges[..end]
                        .iter()
                        .rev()
                        .take(NEARBY_RANGES)
                        .find(|r| r.1 >= cid)
                        .map(|r| r.2)
                })
                .unwrap_or(*default),
        };
        glyph_width * self.width_scale
    }

    /// Vertical advance in text space (per unit of font size), downwards.
    pub fn vertical_advance(&self) -> f64 {
        self.vertical_advance
    }

    fn cid(&self, code: u32, len: usize) -> Option<u32> {
        match &self.cid_source {
            CidSource::Identity => Some(code),
            CidSource::CMap(cmap) => cmap.cid(code, len),
            CidSource::UniJis { half_width } => match code {
                0x20..=0x7E if *half_width => Some(code + 199),
                0x20..=0x7E => Some(code - 31),
                0xFF61..=0xFF9F => Some(code - 0xFF61 + 327),
                _ => None,
            },
            CidSource::LegacyJis => match (len, code) {
                (1, 0x20..=0x7E) => Some(code + 199),
                (1, 0xA1..=0xDF) => Some(code - 0xA1 + 327),
                _ => None,
            },
            CidSource::Unknown => None,
        }
    }
}

fn load_simple(
    doc: &Document,
    dict: &Dictionary,
    subtype: &[u8],
    name: String,
    to_unicode: Option<CMap>,
) -> Font {
    let descriptor = deref(doc, dict.get(b"FontDescriptor").ok()).and_then(|o| o.as_dict().ok());
    let missing = descriptor
        .and_then(|d| number(doc, d.get(b"MissingWidth").ok()))
        .unwrap_or(0.0);
    let first = number(doc, dict.get(b"FirstChar").ok()).map_or(0, |f| f.clamp(0.0, 255.0) as u32);
    let widths = match deref(doc, dict.get(b"Widths").ok()).and_then(|o| o.as_array().ok()) {
        Some(array) => array
            .iter()
            .take(256)
            .map(|w| number(doc, Some(w)).unwrap_or(missing))
            .collect(),
        None => standard_widths(&name),
    };
    let first = if dict.has(b"Widths") { first } else { 0 };
    let (width_scale, em) = if subtype == b"Type3" {
        type3_scales(doc, dict)
    } else {
        (0.001, 1.0)
    };
    let default_base: &[u8] = if subtype == b"TrueType" {
        b"WinAnsiEncoding"
    } else {
        b"StandardEncoding"
    };
    let table = simple_encoding(doc, dict.get(b"Encoding").ok(), default_base);
    Font {
        name,
        code_space: CodeSpace::fixed(1),
        vertical: false,
        to_unicode,
        fallback: Fallback::Table(table),
        cid_source: CidSource::Unknown,
        widths: Widths::Simple {
            first,
            widths,
            missing,
        },
        width_scale,
        em,
        vertical_advance: 1.0,
        outlines: None,
    }
}

/// Width scale (`/FontMatrix` a) and em size (bounding-box height through `/FontMatrix` d)
/// of a Type3 font, whose glyph space is its own.
fn type3_scales(doc: &Document, dict: &Dictionary) -> (f64, f64) {
    let values = |key: &[u8]| -> Vec<f64> {
        deref(doc, dict.get(key).ok())
            .and_then(|o| o.as_array().ok())
            .map(|a| {
                a.iter()
                    .map(|v| number(doc, Some(v)).unwrap_or(0.0))
                    .collect()
            })
            .unwrap_or_default()
    };
    let matrix = values(b"FontMatrix");
    let bbox = values(b"FontBBox");
    let width_scale = matrix
        .first()
        .copied()
        .filter(|s| *s != 0.0)
        .unwrap_or(0.001);
    let em = match (matrix.get(3), bbox.get(1), bbox.get(3)) {
        (Some(d), Some(y0), Some(y1)) => ((y1 - y0) * d).abs(),
        _ => 1.0,
    };
    (
        width_scale,
        if (0.05..=20.0).contains(&em) { em } else { 1.0 },
    )
}

fn load_type0(doc: &Document, dict: &Dictionary, name: String, to_unicode: Option<CMap>) -> Font {
    let descendant = deref(doc, dict.get(b"DescendantFonts").ok())
        .and_then(|o| o.as_array().ok())
        .and_then(|a| deref(doc, a.first()))
        .and_then(|o| o.as_dict().ok());
    let encoding = deref(doc, dict.get(b"Encoding").ok());
    let (code_space, fallback, cid_source, vertical) = match encoding {
        Some(Object::Name(cmap_name)) => predefined(cmap_name),
        Some(Object::Stream(stream)) => {
            let data = stream
                .decompressed_content_with_limit(STREAM_LIMIT)
                .unwrap_or_default();
            let cmap = CMap::parse(&data);
            let base = cmap.use_cmap.as_deref().map(predefined);
            let code_space = cmap
                .code_space()
                .or_else(|| base.as_ref().map(|b| b.0.clone()))
                .unwrap_or_else(|| CodeSpace::fixed(2));
            let vertical = cmap.vertical || base.as_ref().is_some_and(|b| b.3);
            let fallback = base.map_or(Fallback::Unknown, |b| b.1);
            (code_space, fallback, CidSource::CMap(cmap), vertical)
        }
        _ => (
            CodeSpace::fixed(2),
            Fallback::Unknown,
            CidSource::Identity,
            false,
        ),
    };
    let default = descendant
        .and_then(|d| number(doc, d.get(b"DW").ok()))
        .unwrap_or(1000.0);
    let ranges = descendant
        .and_then(|d| deref(doc, d.get(b"W").ok()))
        .and_then(|o| o.as_array().ok())
        .map(|w| cid_widths(doc, w))
        .unwrap_or_default();
    let vertical_advance = descendant
        .and_then(|d| deref(doc, d.get(b"DW2").ok()))
        .and_then(|o| o.as_array().ok())
        .and_then(|a| number(doc, a.get(1)))
        .map_or(1.0, |w1y| (-w1y / 1000.0).abs());
    let outlines = match (&fallback, &to_unicode, descendant) {
        (Fallback::Unknown, None, Some(descendant)) => Outlines::load(doc, descendant),
        _ => None,
    };
    Font {
        name,
        code_space,
        vertical,
        to_unicode,
        fallback,
        cid_source,
        widths: Widths::Cid { ranges, default },
        width_scale: 0.001,
        em: 1.0,
        vertical_advance: if vertical_advance > 0.0 {
            vertical_advance
        } else {
            1.0
        },
        outlines,
    }
}

/// Code space, fallback decoding, CID source and writing mode of a predefined CMap name.
fn predefined(name: &[u8]) -> (CodeSpace, Fallback, CidSource, bool) {
    let text = String::from_utf8_lossy(name);
    let vertical = text.ends_with("-V") || text == "V";
    let legacy = |encoding, bounds: &[(&[u8], &[u8])], jis, cid| {
        (
            CodeSpace::from_bounds(bounds),
            Fallback::Legacy { encoding, jis },
            cid,
            vertical,
        )
    };
    if text.starts_with("Identity-") {
        return (
            CodeSpace::fixed(2),
            Fallback::Unknown,
            CidSource::Identity,
            vertical,
        );
    }
    if text.starts_with("Uni") {
        let cid = if text.starts_with("UniJIS") {
            CidSource::UniJis {
                half_width: text.contains("-HW-"),
            }
        } else {
            CidSource::Unknown
        };
        let (space, form) = if text.contains("UTF16") {
            (
                CodeSpace::from_bounds(&[
                    (b"\x00\x00", b"\xD7\xFF"),
                    (b"\xE0\x00", b"\xFF\xFF"),
                    (b"\xD8\x00\xDC\x00", b"\xDB\xFF\xDF\xFF"),
                ]),
                UnicodeForm::Utf16,
            )
        } else if text.contains("UTF8") {
            (
                CodeSpace::from_bounds(&[
                    (b"\x00", b"\x7F"),
                    (b"\xC2\x80", b"\xDF\xBF"),
                    (b"\xE0\x80\x80", b"\xEF\xBF\xBF"),
                    (b"\xF0\x80\x80\x80", b"\xF4\xBF\xBF\xBF"),
                ]),
                UnicodeForm::Utf8,
            )
        } else if text.contains("UTF32") {
            (CodeSpace::fixed(4), UnicodeForm::Utf32)
        } else {
            (CodeSpace::fixed(2), UnicodeForm::Utf16)
        };
        return (space, Fallback::Unicode(form), cid, vertical);
    }
    let two_byte =
        |lead: &'static [u8], trail: &'static [u8]| -> [(&'static [u8], &'static [u8]); 2] {
            [(b"\x00", b"\x80"), (lead, trail)]
        };
    if text.contains("RKSJ") {
        return legacy(
            encoding_rs::SHIFT_JIS,
            &[
                (b"\x00", b"\x80"),
                (b"\xA0", b"\xDF"),
                (b"\xFD", b"\xFF"),
                (b"\x81\x40", b"\x9F\xFC"),
                (b"\xE0\x40", b"\xFC\xFC"),
            ],
            false,
            CidSource::LegacyJis,
        );
    }
    if text == "EUC-H" || text == "EUC-V" {
        return legacy(
            encoding_rs::EUC_JP,
            &[
                (b"\x00", b"\x80"),
                (b"\x8E\xA0", b"\x8E\xDF"),
                (b"\x8F\xA1\xA1", b"\x8F\xFE\xFE"),
                (b"\xA1\xA1", b"\xFE\xFE"),
            ],
            false,
            CidSource::LegacyJis,
        );
    }
    if text == "H" || text == "V" {
        return legacy(
            encoding_rs::EUC_JP,
            &[(b"\x21\x21", b"\x7E\x7E")],
            true,
            CidSource::Unknown,
        );
    }
    if text.starts_with("GB") {
        return legacy(
            encoding_rs::GBK,
            &two_byte(b"\x81\x40", b"\xFE\xFE"),
            false,
            CidSource::Unknown,
        );
    }
    if text.starts_with("KSC") {
        return legacy(
            encoding_rs::EUC_KR,
            &two_byte(b"\x81\x41", b"\xFE\xFE"),
            false,
            CidSource::Unknown,
        );
    }
    if text.starts_with("B5") || text.starts_with("ETen") || text.starts_with("HKscs") {
        return legacy(
            encoding_rs::BIG5,
            &two_byte(b"\x81\x40", b"\xFE\xFE"),
            false,
            CidSource::Unknown,
        );
    }
    (
        CodeSpace::fixed(2),
        Fallback::Unknown,
        CidSource::Unknown,
        vertical,
    )
}

fn decode_unicode(form: UnicodeForm, code: u32, len: usize, out: &mut String) -> bool {
    let bytes = code_bytes(code, len);
    let decoded = match form {
        UnicodeForm::Utf16 => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(utf16_string(&units))
        }
        UnicodeForm::Utf8 => std::str::from_utf8(&bytes).ok().map(str::to_string),
        UnicodeForm::Utf32 => char::from_u32(code).map(String::from),
    };
    match decoded {
        Some(text) if !text.contains(char::REPLACEMENT_CHARACTER) => {
            out.push_str(&text);
            true
        }
        _ => false,
    }
}

/// The last `len` bytes of `code`, big-endian.
fn code_bytes(code: u32, len: usize) -> Vec<u8> {
    let all = code.to_be_bytes();
    all.get(4 - len.min(4)..).unwrap_or_default().to_vec()
}

/// Parses a `/W` array: `c [w1 w2 …]` and `c_first c_last w` entries, sorted by CID.
fn cid_widths(doc: &Document, w: &[Object]) -> Vec<(u32, u32, f64)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while let Some(first) = w.get(i).and_then(|o| number(doc, Some(o))) {
        let Some(first) = cid_number(first) else {
            break;
        };
        match deref(doc, w.get(i + 1)) {
            Some(Object::Array(list)) => {
                for (k, width) in list.iter().enumerate() {
                    let cid = first.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
                    if let Some(width) = number(doc, Some(width)) {
                        ranges.push((cid, cid, width));
                    }
                }
                i += 2;
            }
            Some(last) => {
                let last = number(doc, Some(last)).and_then(cid_number);
                let width = number(doc, w.get(i + 2));
                if let (Some(last), Some(width)) = (last, width) {
                    ranges.push((first, last, width));
                }
                i += 3;
            }
            None => break,
        }
    }
    ranges.sort_by_key(|r| r.0);
    ranges
}

fn cid_number(n: f64) -> Option<u32> {
    (n.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&n)).then_some(n as u32)
}

/// Approximate widths for the standard 14 fonts when `/Widths` is absent (Helvetica's
/// metrics for printable ASCII; Courier is fixed-pitch). Only spacing depends on them.
fn standard_widths(name: &str) -> Vec<f64> {
    const HELVETICA: [u16; 95] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
        556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722,
        722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722,
        667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
        556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500,
        500, 334, 260, 334, 584,
    ];
    if name.starts_with("Courier") {
        return vec![600.0; 256];
    }
    (0..256usize)
        .map(|code| {
            code.checked_sub(32)
                .and_then(|i| HELVETICA.get(i))
                .map_or(500.0, |&w| f64::from(w))
        })
        .collect()
}

/// Follows references (a bounded number of times).
pub fn deref<'a>(doc: &'a Document, object: Option<&'a Object>) -> Option<&'a Object> {
    doc.dereference(object?).ok().map(|(_, o)| o)
}

/// A number (integer or real), following references.
pub fn number(doc: &Document, object: Option<&Object>) -> Option<f64> {
    deref(doc, object)
        .and_then(|o| o.as_float().ok())
        .map(f64::from)
        .filter(|n| n.is_finite())
}

fn name_of(doc: &Document, object: Option<&Object>) -> Option<Vec<u8>> {
    deref(doc, object)
        .and_then(|o| o.as_name().ok())
        .map(<[u8]>::to_vec)
}

/// The decoded content of a stream object (following references), size-limited.
pub fn stream_data(doc: &Document, object: Option<&Object>) -> Option<Vec<u8>> {
    let stream = deref(doc, object)?.as_stream().ok()?;
    stream
        .decompressed_content_with_limit(STREAM_LIMIT)
        .or_else(|_| Ok::<_, ()>(stream.content.clone()))
        .ok()
}

/// `ABCDEF+Name` → `Name`.
fn strip_subset(name: &str) -> &str {
    match name.split_once('+') {
        Some((tag, rest)) if tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_uppercase()) => rest,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_unicode_cmaps() {
        let (space, fallback, _, vertical) = predefined(b"UniJIS-UTF16-V");
        assert!(vertical);
        assert_eq!(space.next_code(&[0xD8, 0x40, 0xDC, 0x0B]), (0xD840_DC0B, 4));
        let mut out = String::new();
        let Fallback::Unicode(form) = fallback else {
            panic!("unicode fallback")
        };
        assert!(decode_unicode(form, 0xD840_DC0B, 4, &mut out));
        assert_eq!(out, "\u{2000B}");
    }
}
