//! Splitting a normalised document into chunks that end at sentence ends and know their pages
//! and heading path.
//!
//! A document is first cut into sections at its headings. Small neighbouring sections under the
//! same top-level heading are packed together; a section longer than the limit is split by
//! `text-splitter` at the highest semantic level that fits (paragraphs, lines, sentences), and each
//! of its pieces after the first starts with the last whole sentences of the previous piece.

use serde::Serialize;
use text_splitter::{ChunkConfig, TextSplitter};

use crate::error::IngestError;
use crate::structure::{
    Heading, HeadingPath, detect_heading, detect_markdown_heading, markdown_heading_text,
};

/// How documents are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// No chunk is longer than this, in characters.
    pub max_chars: usize,
    /// Up to this many characters of whole sentences are repeated from the previous chunk of a
    /// long section.
    pub overlap_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            max_chars: 500,
            overlap_chars: 100,
        }
    }
}

impl ChunkOptions {
    pub fn validate(&self) -> Result<(), IngestError> {
        if self.max_chars < 50 {
            return Err(IngestError::InvalidOptions {
                reason: format!("max_chars {} is below 50", self.max_chars),
            });
        }
        if self.overlap_chars * 2 > self.max_chars {
            return Err(IngestError::InvalidOptions {
                reason: format!(
                    "overlap_chars {} is more than half of max_chars {}",
                    self.overlap_chars, self.max_chars
                ),
            });
        }
        Ok(())
    }
}

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    pub ordinal: u32,
    /// Exactly `document_text[char_start..char_end]` (in characters).
    pub text: String,
    pub char_start: usize,
    pub char_end: usize,
    /// 1-based, inclusive.
    pub page_start: u32,
    pub page_end: u32,
    pub heading_path: Vec<String>,
}

impl Chunk {
    /// What is embedded and indexed (see [`indexing_text`]).
    pub fn indexing_text(&self, title: &str) -> String {
        indexing_text(title, &self.heading_path, &self.text)
    }
}

/// A passage as models read it: the title and heading path give a chunk the context (which
/// prefecture, which section) its text alone may lack.
pub fn indexing_text(title: &str, heading_path: &[String], body: &str) -> String {
    let mut text = String::with_capacity(title.len() + body.len() + 64);
    text.push_str(title);
    for heading in heading_path {
        if heading != title {
            text.push_str(" > ");
            text.push_str(heading);
        }
    }
    text.push('\n');
    text.push_str(body);
    text
}

/// A run of the document between two headings, by byte range.
#[derive(Debug)]
struct Section {
    start: usize,
    end: usize,
    path: Vec<String>,
}

/// A candidate chunk before packing: a byte range, its path, and whether it is a whole section.
#[derive(Debug)]
struct Unit {
    start: usize,
    end: usize,
    path: Vec<String>,
    whole_section: bool,
}

/// Splits `text` (pages separated by form feeds) into chunks.
pub fn chunk_text(
    text: &str,
    markdown: bool,
    options: &ChunkOptions,
) -> Result<Vec<Chunk>, IngestError> {
    options.validate()?;
    let sections = sections(text, markdown);
    let units = split_sections(text, &sections, options)?;
    let packed = pack_units(text, units, options.max_chars);
    let positions = Positions::new(text);
    Ok(packed
        .into_iter()
        .enumerate()
        .map(|(ordinal, unit)| Chunk {
            ordinal: ordinal as u32,
            text: text[unit.start..unit.end].to_owned(),
            char_start: positions.char_index(unit.start),
            char_end: positions.char_index(unit.end),
            page_start: positions.page(unit.start),
            page_end: positions.page(unit.end.saturating_sub(1).max(unit.start)),
            heading_path: unit.path,
        })
        .collect())
}

/// The first heading of a document, for documents the manifest gives no title.
pub fn first_heading(text: &str, markdown: bool) -> Option<String> {
    lines(text)
        .find_map(|(start, end)| heading_of(&text[start..end], markdown).map(|(_, title)| title))
}

/// `text` with each heading the chunker reads in it written as a Markdown heading, one `#` per
/// level of its heading path (at most six); other lines unchanged. Chunked as Markdown, it gives
/// the heading paths `text` gives.
pub fn with_markdown_headings(text: &str, markdown: bool) -> String {
    let mut path = HeadingPath::default();
    let mut written = String::with_capacity(text.len() + 256);
    let mut copied = 0;
    for (start, end) in lines(text) {
        if let Some((heading, title)) = heading_of(&text[start..end], markdown) {
            path.enter(heading, &title);
            written.push_str(&text[copied..start]);
            written.push_str(&"#".repeat(path.depth().min(6)));
            written.push(' ');
            written.push_str(&title);
            copied = end;
        }
    }
    written.push_str(&text[copied..]);
    written
}

fn heading_of(line: &str, markdown: bool) -> Option<(Heading, String)> {
    if markdown {
        detect_markdown_heading(line)
            .map(|heading| (heading, markdown_heading_text(line).to_owned()))
    } else {
        detect_heading(line).map(|heading| (heading, line.to_owned()))
    }
}

/// Byte ranges of lines; both `\n` and the page separator `\f` end a line.
fn lines(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    text.match_indices(['\n', '\u{c}'])
        .map(|(index, _)| index)
        .chain(std::iter::once(text.len()))
        .map(move |end| {
            let line = (start, end);
            start = end + 1;
            line
        })
}

fn sections(text: &str, markdown: bool) -> Vec<Section> {
    let mut sections = vec![Section {
        start: 0,
        end: text.len(),
        path: Vec::new(),
    }];
    let mut path = HeadingPath::default();
    for (start, end) in lines(text) {
        if let Some((heading, title)) = heading_of(&text[start..end], markdown) {
            path.enter(heading, &title);
            if let Some(current) = sections.last_mut() {
                current.end = start;
            }
            sections.push(Section {
                start,
                end: text.len(),
                path: path.current(),
            });
        }
    }
    sections
}

fn trimmed(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let slice = &text[start..end];
    let trimmed_start = start + (slice.len() - slice.trim_start().len());
    let trimmed_end = start + slice.trim_end().len();
    (trimmed_start < trimmed_end).then_some((trimmed_start, trimmed_end))
}

fn split_sections(
    text: &str,
    sections: &[Section],
    options: &ChunkOptions,
) -> Result<Vec<Unit>, IngestError> {
    let splitter_capacity = options.max_chars - options.overlap_chars;
    let splitter = TextSplitter::new(ChunkConfig::new(splitter_capacity).with_trim(true));
    let mut units = Vec::new();
    for section in sections {
        let Some((start, end)) = trimmed(text, section.start, section.end) else {
            continue;
        };
        let body = &text[start..end];
        if body.chars().count() <= options.max_chars {
            units.push(Unit {
                start,
                end,
                path: section.path.clone(),
                whole_section: true,
            });
            continue;
        }
        let pieces = keep_opening_brackets_with_what_follows(
            body,
            splitter
                .chunk_indices(body)
                .map(|(offset, piece)| (offset, offset + piece.len()))
                .collect(),
        );
        let mut previous_piece: Option<(usize, usize)> = None;
        for (piece_start, piece_end) in pieces
            .into_iter()
            .map(|(from, to)| (start + from, start + to))
        {
            let overlap_start = previous_piece
                .and_then(|(previous_start, previous_end)| {
                    let previous_end = previous_end.min(piece_start);
                    let budget = options
                        .max_chars
                        .saturating_sub(text[previous_end..piece_end].chars().count());
                    overlap_start(
                        text,
                        previous_start,
                        previous_end,
                        budget.min(options.overlap_chars),
                    )
                })
                .unwrap_or(piece_start);
            units.push(Unit {
                start: overlap_start,
                end: piece_end,
                path: section.path.clone(),
                whole_section: false,
            });
            previous_piece = Some((piece_start, piece_end));
        }
    }
    Ok(units)
}

fn is_opening_bracket(ch: char) -> bool {
    matches!(
        ch,
        '「' | '『'
            | '('
            | '【'
            | '〔'
            | '《'
            | '〈'
            | '['
            | '{'
            | '“'
            | '‘'
            | '［'
            | '｛'
            | '〘'
            | '〖'
    )
}

/// Unicode sentence segmentation counts an opening bracket after a full stop as part of the
/// sentence that ends there (「…した。【早川町】では…」 splits after 【). Move such brackets
/// to the piece they open.
fn keep_opening_brackets_with_what_follows(
    body: &str,
    mut pieces: Vec<(usize, usize)>,
) -> Vec<(usize, usize)> {
    for index in 0..pieces.len().saturating_sub(1) {
        let (start, mut end) = pieces[index];
        while let Some(last) = body[start..end]
            .chars()
            .next_back()
            .filter(|&ch| is_opening_bracket(ch))
        {
            if end - last.len_utf8() <= start {
                break;
            }
            end -= last.len_utf8();
        }
        let trimmed_end = start + body[start..end].trim_end().len();
        if trimmed_end < pieces[index].1 {
            pieces[index].1 = trimmed_end;
            pieces[index + 1].0 = pieces[index + 1].0.min(end);
        }
    }
    pieces
}

fn is_sentence_end(ch: char) -> bool {
    matches!(ch, '。' | '!' | '?' | '\n' | '\u{c}')
}

/// The start of the longest run of whole sentences at the end of `text[start..end]` that is at
/// most `budget` characters long, if even the last sentence fits.
fn overlap_start(text: &str, start: usize, end: usize, budget: usize) -> Option<usize> {
    let mut best = None;
    // `suffix_chars`: characters in `text[position after ch..end]`.
    for (suffix_chars, (index, ch)) in text[start..end].char_indices().rev().enumerate() {
        if suffix_chars > budget {
            break;
        }
        let candidate = start + index + ch.len_utf8();
        if is_sentence_end(ch) && !text[candidate..end].trim().is_empty() {
            best = Some(candidate);
        }
    }
    best.and_then(|best| trimmed(text, best, end))
        .map(|(trimmed_start, _)| trimmed_start)
}

/// Below this many characters a unit is a heading without its text, which is no use alone.
const HEADING_ONLY_CHARS: usize = 60;

/// Packs neighbouring whole sections under the same top-level heading into one chunk while
/// they fit, puts a section that is only a heading in front of what follows it, and puts the
/// short last piece of a split section (the end of a long line cut mid-word, say) back with the
/// piece before it rather than in front of the next section. The packed chunk's heading path is
/// what its parts have in common.
fn pack_units(text: &str, units: Vec<Unit>, max_chars: usize) -> Vec<Unit> {
    let mut packed: Vec<Unit> = Vec::with_capacity(units.len());
    for unit in units {
        if let Some(last) = packed.last_mut() {
            let same_top = last.path.first() == unit.path.first();
            let is_short =
                |unit: &Unit| text[unit.start..unit.end].chars().count() < HEADING_ONLY_CHARS;
            let heading_only = last.whole_section && is_short(last);
            let split_tail = !last.whole_section
                && !unit.whole_section
                && is_short(&unit)
                && last.path == unit.path;
            let packable = (last.whole_section && unit.whole_section) || heading_only || split_tail;
            if packable && same_top && text[last.start..unit.end].chars().count() <= max_chars {
                let common = last
                    .path
                    .iter()
                    .zip(&unit.path)
                    .take_while(|(a, b)| a == b)
                    .count();
                last.path.truncate(common);
                last.end = unit.end;
                last.whole_section &= unit.whole_section;
                continue;
            }
        }
        packed.push(unit);
    }
    packed
}

/// Byte offset → character index and page number.
struct Positions<'text> {
    text: &'text str,
    /// (byte offset, char index) at every line start.
    line_starts: Vec<(usize, usize)>,
    /// Byte offsets of page starts.
    page_starts: Vec<usize>,
}

impl<'text> Positions<'text> {
    fn new(text: &'text str) -> Self {
        let mut line_starts = vec![(0, 0)];
        let mut page_starts = vec![0];
        let mut chars = 0;
        for (index, ch) in text.char_indices() {
            chars += 1;
            if ch == '\n' || ch == '\u{c}' {
                line_starts.push((index + 1, chars));
            }
            if ch == '\u{c}' {
                page_starts.push(index + 1);
            }
        }
        Self {
            text,
            line_starts,
            page_starts,
        }
    }

    fn char_index(&self, byte: usize) -> usize {
        let line = self
            .line_starts
            .partition_point(|&(start, _)| start <= byte)
            - 1;
        let (line_byte, line_char) = self.line_starts[line];
        line_char + self.text[line_byte..byte].chars().count()
    }

    fn page(&self, byte: usize) -> u32 {
        self.page_starts.partition_point(|&start| start <= byte) as u32
    }
}
