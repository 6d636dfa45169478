//! CMaps: splitting strings into character codes, and the code → Unicode (ToUnicode) and
//! code → CID (embedded encoding CMap) tables.
//!
//! lopdf parses ToUnicode CMaps too, but keeps the codespace ranges private and expands
//! every `bfrange` into a reverse map on load; this parser is small, keeps ranges as
//! ranges, and also reads `cidrange`/`cidchar`, `usecmap` and `/WMode` for encoding CMaps.

use std::collections::HashMap;

/// Upper bound on the mappings one CMap may define (hostile inputs).
const MAX_ENTRIES: usize = 1 << 20;
/// Ranges examined below a code's position in the sorted ranges: ranges seldom overlap,
/// and a bounded look keeps lookups fast on hostile maps.
pub const NEARBY_RANGES: usize = 8;
/// Longest text one code may stand for, in UTF-16 units (ligatures need a few).
const MAX_DESTINATION: usize = 64;

/// One codespace range: codes of `len` bytes whose bytes each lie in `lo[i]..=hi[i]`.
#[derive(Debug, Clone, Copy)]
struct CodeRange {
    len: usize,
    lo: [u8; 4],
    hi: [u8; 4],
}

impl CodeRange {
    fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() >= self.len
            && bytes
                .iter()
                .zip(self.lo.iter().zip(self.hi.iter()))
                .take(self.len)
                .all(|(b, (lo, hi))| lo <= b && b <= hi)
    }
}

/// How a font's strings split into character codes of one to four bytes.
#[derive(Debug, Clone)]
pub struct CodeSpace {
    ranges: Vec<CodeRange>,
}

impl CodeSpace {
    /// Every code is `len` bytes long (1 for simple fonts, 2 for Identity-H).
    pub fn fixed(len: usize) -> Self {
        let len = len.clamp(1, 4);
        Self {
            ranges: vec![CodeRange {
                len,
                lo: [0; 4],
                hi: [0xFF; 4],
            }],
        }
    }

    /// A codespace from `(low, high)` byte strings of equal length.
    pub fn from_bounds(bounds: &[(&[u8], &[u8])]) -> Self {
        let ranges = bounds
            .iter()
            .filter_map(|(lo, hi)| range(lo, hi))
            .collect::<Vec<_>>();
        if ranges.is_empty() {
            Self::fixed(2)
        } else {
            Self { ranges }
        }
    }

    /// The code at the start of `bytes` and its length in bytes (at least 1 when `bytes`
    /// is not empty). Bytes matching no range are taken one at a time.
    pub fn next_code(&self, bytes: &[u8]) -> (u32, usize) {
        let len = (1..=4)
            .find(|&n| self.ranges.iter().any(|r| r.len == n && r.matches(bytes)))
            .unwrap_or(1)
            .min(bytes.len());
        let code = bytes
            .iter()
            .take(len)
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        (code, len)
    }
}

fn range(lo: &[u8], hi: &[u8]) -> Option<CodeRange> {
    if lo.is_empty() || lo.len() > 4 || lo.len() != hi.len() {
        return None;
    }
    let mut r = CodeRange {
        len: lo.len(),
        lo: [0; 4],
        hi: [0; 4],
    };
    r.lo.iter_mut().zip(lo).for_each(|(d, s)| *d = *s);
    r.hi.iter_mut().zip(hi).for_each(|(d, s)| *d = *s);
    Some(r)
}

/// Key of a code of a given byte length: `0x1_0000_0000 * len + code`.
fn key(len: usize, code: u32) -> u64 {
    ((len as u64) << 32) | u64::from(code)
}

/// A `bfrange` with a string destination: code `lo + k` maps to `dst` with its last
/// UTF-16 unit increased by `k`.
#[derive(Debug, Clone)]
struct BfRange {
    len: usize,
    lo: u32,
    hi: u32,
    dst: Vec<u16>,
}

/// A parsed CMap (ToUnicode or encoding CMap).
#[derive(Debug, Clone, Default)]
pub struct CMap {
    codespace: Vec<CodeRange>,
    chars: HashMap<u64, String>,
    ranges: Vec<BfRange>,
    cid_chars: HashMap<u64, u32>,
    cid_ranges: Vec<(usize, u32, u32, u32)>,
    /// The name given to `usecmap`, if any.
    pub use_cmap: Option<Vec<u8>>,
    /// `/WMode 1`: vertical writing.
    pub vertical: bool,
}

impl CMap {
    /// Parses CMap program text. Never fails: what cannot be read is skipped.
    pub fn parse(data: &[u8]) -> Self {
        let mut cmap = CMap::default();
        let mut lexer = Lexer { data, pos: 0 };
        let mut operands: Vec<Token> = Vec::new();
        let mut entries = 0usize;
        while let Some(token) = lexer.next_token() {
            let Token::Keyword(word) = token else {
                if operands.len() >= 8 {
                    operands.remove(0);
                }
                operands.push(token);
                continue;
            };
            match word {
                b"begincodespacerange" => {
                    let items = lexer.collect_until(b"endcodespacerange");
                    for pair in items.chunks_exact(2) {
                        if let [Token::Hex(lo), Token::Hex(hi)] = pair
                            && let Some(r) = range(lo, hi)
                        {
                            cmap.codespace.push(r);
                        }
                    }
                }
                b"beginbfchar" => {
                    let items = lexer.collect_until(b"endbfchar");
                    for pair in items.chunks_exact(2) {
                        if entries >= MAX_ENTRIES {
                            break;
                        }
                        if let [Token::Hex(src), Token::Hex(dst)] = pair
                            && (1..=4).contains(&src.len())
                        {
                            entries += 1;
                            cmap.chars
                                .insert(key(src.len(), be(src)), utf16_string(&units(dst)));
                        }
                    }
                }
                b"beginbfrange" => {
                    let items = lexer.collect_until(b"endbfrange");
                    for triple in items.chunks_exact(3) {
                        if entries >= MAX_ENTRIES {
                            break;
                        }
                        entries += 1;
                        cmap.add_bf_range(triple, &mut entries);
                    }
                }
                b"begincidchar" => {
                    let items = lexer.collect_until(b"endcidchar");
                    for pair in items.chunks_exact(2) {
                        if let [Token::Hex(src), Token::Number(cid)] = pair
                            && (1..=4).contains(&src.len())
                            && let Ok(cid) = u32::try_from(*cid)
                        {
                            cmap.cid_chars.insert(key(src.len(), be(src)), cid);
                        }
                    }
                }
                b"begincidrange" => {
                    let items = lexer.collect_until(b"endcidrange");
                    for triple in items.chunks_exact(3) {
                        if let [Token::Hex(lo), Token::Hex(hi), Token::Number(cid)] = triple
                            && (1..=4).contains(&lo.len())
                            && lo.len() == hi.len()
                            && let Ok(cid) = u32::try_from(*cid)
                            && cmap.cid_ranges.len() < MAX_ENTRIES
                        {
                            cmap.cid_ranges.push((lo.len(), be(lo), be(hi), cid));
                        }
                    }
                }
                b"usecmap" => {
                    if let Some(Token::Name(name)) = operands.last() {
                        cmap.use_cmap = Some(name.clone());
                    }
                }
                b"def" => {
                    if let [.., Token::Name(name), Token::Number(value)] = operands.as_slice()
                        && name.as_slice() == b"WMode"
                    {
                        cmap.vertical = *value == 1;
                    }
                }
                _ => {}
            }
            operands.clear();
        }
        cmap.ranges.sort_by_key(|r| (r.len, r.lo));
        cmap.cid_ranges.sort_unstable();
        cmap
    }

    fn add_bf_range(&mut self, triple: &[Token], entries: &mut usize) {
        let [Token::Hex(lo), Token::Hex(hi), dst] = triple else {
            return;
        };
        if !(1..=4).contains(&lo.len()) || lo.len() != hi.len() {
            return;
        }
        let (len, lo, hi) = (lo.len(), be(lo), be(hi));
        if hi < lo {
            return;
        }
        match dst {
            Token::Hex(dst) => self.ranges.push(BfRange {
                len,
                lo,
                hi,
                dst: units(dst),
            }),
            Token::Array(items) => {
                for (code, item) in (lo..=hi).zip(items) {
                    if *entries >= MAX_ENTRIES {
                        break;
                    }
                    if let Token::Hex(dst) = item {
                        *entries += 1;
                        self.chars.insert(key(len, code), utf16_string(&units(dst)));
                    }
                }
            }
            _ => {}
        }
    }

    /// The codespace this CMap declares, if it declares one.
    pub fn code_space(&self) -> Option<CodeSpace> {
        (!self.codespace.is_empty()).then(|| CodeSpace {
            ranges: self.codespace.clone(),
        })
    }

    /// Whether the CMap maps any code to Unicode.
    pub fn has_unicode(&self) -> bool {
        !self.chars.is_empty() || !self.ranges.is_empty()
    }

    /// The Unicode text of a code of `len` bytes, appended to `out`; false when unmapped.
    pub fn unicode(&self, code: u32, len: usize, out: &mut String) -> bool {
        if let Some(text) = self.chars.get(&key(len, code)) {
            out.push_str(text);
            return true;
        }
        let end = self
            .ranges
            .partition_point(|r| (r.len, r.lo) <= (len, code));
        let found = self.ranges[..end]
            .iter()
            .rev()
            .take(NEARBY_RANGES)
            .take_while(|r| r.len == len)
            .find(|r| r.lo <= code && code <= r.hi);
        let Some(r) = found else {
            return false;
        };
        let mut dst = r.dst.clone();
        if let Some(last) = dst.last_mut() {
            // Offsets past 0xFFFF cannot be UTF-16: they wrap like other readers do.
            *last = last.wrapping_add((code - r.lo) as u16);
        }
        out.push_str(&utf16_string(&dst));
        true
    }

    /// The CID of a code of `len` bytes (`cidchar`/`cidrange`), if the CMap defines one.
    pub fn cid(&self, code: u32, len: usize) -> Option<u32> {
        if let Some(cid) = self.cid_chars.get(&key(len, code)) {
            return Some(*cid);
        }
        let end = self
            .cid_ranges
            .partition_point(|&(l, lo, _, _)| (l, lo) <= (len, code));
        self.cid_ranges[..end]
            .iter()
            .rev()
            .take(NEARBY_RANGES)
            .find(|(l, lo, hi, _)| *l == len && *lo <= code && code <= *hi)
            .map(|(_, lo, _, cid)| cid.saturating_add(code - lo))
    }
}

/// Big-endian value of up to four bytes.
fn be(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// UTF-16BE code units of a destination string (an odd last byte stands alone).
fn units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .take(MAX_DESTINATION)
        .map(|c| match c {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            [b] => u16::from(*b),
            _ => 0xFFFD,
        })
        .collect()
}

/// Decodes UTF-16, replacing unpaired surrogates by U+FFFD.
pub fn utf16_string(units: &[u16]) -> String {
    char::decode_utf16(units.iter().copied())
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[derive(Debug, Clone)]
enum Token<'a> {
    Hex(Vec<u8>),
    Name(Vec<u8>),
    Number(i64),
    Array(Vec<Token<'a>>),
    Keyword(&'a [u8]),
    Other,
}

/// A tokenizer for the PostScript subset CMap files use.
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else if b.is_ascii_whitespace() || b == 0 {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Tokens up to (and without) the keyword `end`, or to the end of the data.
    fn collect_until(&mut self, end: &[u8]) -> Vec<Token<'a>> {
        let mut items = Vec::new();
        while let Some(token) = self.next_token() {
            match token {
                Token::Keyword(word) if word == end => break,
                other => items.push(other),
            }
        }
        items
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        self.skip_space();
        let b = self.peek()?;
        Some(match b {
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Token::Other
            }
            b'>' if self.data.get(self.pos + 1) == Some(&b'>') => {
                self.pos += 2;
                Token::Other
            }
            b'<' => {
                self.pos += 1;
                self.hex()
            }
            b'(' => {
                self.pos += 1;
                self.literal()
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.peek() {
                        None => break,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => match self.next_token() {
                            Some(Token::Keyword(_)) | None => break,
                            Some(token) => items.push(token),
                        },
                    }
                }
                Token::Array(items)
            }
            b'/' => {
                self.pos += 1;
                Token::Name(self.regular().to_vec())
            }
            _ if is_delimiter(b) => {
                self.pos += 1;
                Token::Other
            }
            _ => {
                let word = self.regular();
                match std::str::from_utf8(word)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) => Token::Number(n),
                    None => Token::Keyword(word),
                }
            }
        })
    }

    fn regular(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || b == 0 || is_delimiter(b) {
                break;
            }
            self.pos += 1;
        }
        self.data.get(start..self.pos).unwrap_or_default()
    }

    fn hex(&mut self) -> Token<'a> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            let Some(v) = (b as char).to_digit(16) else {
                continue;
            };
            match high.take() {
                Some(h) => out.push((h << 4) | v as u8),
                None => high = Some(v as u8),
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        Token::Hex(out)
    }

    /// Skips a literal string (CMaps only use them for registry names).
    fn literal(&mut self) -> Token<'a> {
        let mut depth = 1usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        Token::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CMapName /Adobe-Identity-UCS def /CMapType 2 def
1 begincodespacerange <0000> <FFFF> endcodespacerange
3 beginbfchar <0003> <0020> <07BD> <2F40> <0100> <D840DC0B> endbfchar
2 beginbfrange <0010> <0012> <0041> <0020> <0021> [<0066006C> <00E9>] endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end";

    fn text(cmap: &CMap, code: u32, len: usize) -> Option<String> {
        let mut s = String::new();
        cmap.unicode(code, len, &mut s).then_some(s)
    }

    #[test]
    fn bfchar_bfrange_arrays_and_surrogates() {
        let cmap = CMap::parse(SAMPLE);
        assert_eq!(text(&cmap, 0x0003, 2).as_deref(), Some(" "));
        assert_eq!(text(&cmap, 0x07BD, 2).as_deref(), Some("\u{2F40}"));
        assert_eq!(text(&cmap, 0x0100, 2).as_deref(), Some("\u{2000B}"));
        assert_eq!(text(&cmap, 0x0012, 2).as_deref(), Some("C"));
        assert_eq!(text(&cmap, 0x0020, 2).as_deref(), Some("fl"));
        assert_eq!(text(&cmap, 0x0021, 2).as_deref(), Some("é"));
        assert_eq!(text(&cmap, 0x0013, 2), None);
        assert_eq!(text(&cmap, 0x03, 1), None);
    }

    #[test]
    fn multi_byte_codespace() {
        let cmap = CMap::parse(b"2 begincodespacerange <00> <80> <8140> <9FFC> endcodespacerange");
        let space = cmap.code_space().expect("codespace");
        assert_eq!(space.next_code(b"A\x82\xA0"), (0x41, 1));
        assert_eq!(space.next_code(b"\x82\xA0"), (0x82A0, 2));
        assert_eq!(space.next_code(b"\xFF"), (0xFF, 1));
        assert_eq!(space.next_code(b""), (0, 0));
    }

    #[test]
    fn cid_ranges_and_wmode() {
        let cmap = CMap::parse(
            b"/WMode 1 def 1 begincidrange <0020> <007E> 1 endcidrange /UniJIS-UCS2-H usecmap",
        );
        assert_eq!(cmap.cid(0x41, 2), Some(34));
        assert!(cmap.vertical);
        assert_eq!(cmap.use_cmap.as_deref(), Some(&b"UniJIS-UCS2-H"[..]));
    }
}
