//! TrueType outlines, enough to tell which glyphs draw nothing.

use lopdf::{Dictionary, Document, Object};

use super::font::{STREAM_LIMIT, deref, stream_data};

/// TrueType glyph outline offsets (`loca`), to tell glyphs without outlines.
#[derive(Debug)]
pub struct Outlines {
    offsets: Vec<u32>,
    cid_to_gid: Option<Vec<u8>>,
}

impl Outlines {
    /// Reads the font program and `/CIDToGIDMap` of a CIDFontType2 dictionary.
    pub fn load(doc: &Document, descendant: &Dictionary) -> Option<Self> {
        let descriptor = deref(doc, descendant.get(b"FontDescriptor").ok())?
            .as_dict()
            .ok()?;
        let data = stream_data(doc, descriptor.get(b"FontFile2").ok())?;
        let offsets = loca(&data)?;
        let cid_to_gid = match deref(doc, descendant.get(b"CIDToGIDMap").ok()) {
            Some(Object::Stream(stream)) => {
                Some(stream.decompressed_content_with_limit(STREAM_LIMIT).ok()?)
            }
            _ => None,
        };
        Some(Outlines {
            offsets,
            cid_to_gid,
        })
    }

    /// Whether the glyph for `cid` has no outline.
    pub fn is_blank(&self, cid: u32) -> bool {
        let gid = match &self.cid_to_gid {
            None => Some(cid),
            Some(map) => usize::try_from(cid)
                .ok()
                .and_then(|c| c.checked_mul(2))
                .and_then(|i| map.get(i..i + 2))
                .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        };
        let Some(gid) = gid.and_then(|g| usize::try_from(g).ok()) else {
            return false;
        };
        match (self.offsets.get(gid), self.offsets.get(gid + 1)) {
            (Some(start), Some(end)) => start == end,
            _ => false,
        }
    }
}

/// The `loca` table of a TrueType font program.
fn loca(font: &[u8]) -> Option<Vec<u32>> {
    let u16_at = |at: usize| {
        font.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        font.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let tables = usize::from(u16_at(4)?);
    let find = |tag: &[u8]| {
        (0..tables).find_map(|i| {
            let record = 12 + 16 * i;
            (font.get(record..record + 4)? == tag)
                .then(|| u32_at(record + 8))
                .flatten()
        })
    };
    let head = usize::try_from(find(b"head")?).ok()?;
    let maxp = usize::try_from(find(b"maxp")?).ok()?;
    let loca = usize::try_from(find(b"loca")?).ok()?;
    let long = u16_at(head + 50)? != 0;
    let glyphs = usize::from(u16_at(maxp + 4)?);
    (0..=glyphs)
        .map(|i| {
            if long {
                u32_at(loca + 4 * i)
            } else {
                u16_at(loca + 2 * i).map(|v| u32::from(v) * 2)
            }
        })
        .collect()
}
