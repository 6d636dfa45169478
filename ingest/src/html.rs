//! HTML pages (.html, .htm), parsed by html5ever (through `scraper`) as a browser would: the
//! title and h1–h6 become headings, lists keep their bullets and numbers, tables are read row by
//! row with each cell named by its column header. Scripts, styles, navigation and hidden
//! elements are dropped, and so are the page's header and footer (a `<header>` or `<footer>`
//! inside an `<article>`, `<main>` or `<section>` belongs to the content and is kept).
//!
//! The charset comes from a byte order mark, else a `<meta charset>` or `http-equiv` tag, else
//! detection (intranet pages in Shift_JIS without a declaration exist).

use ego_tree::iter::Edge;
use encoding_rs::{Encoding, UTF_8};
use scraper::{Html, Node};

use crate::blocks::{Blocks, span_budget, table_rows};
use crate::decode::decode_text;
use crate::normalize::is_japanese;

/// Largest HTML file read.
pub const MAX_HTML_BYTES: usize = 16 * 1024 * 1024;

/// How far into the file a `<meta charset>` is looked for.
const CHARSET_PRESCAN_BYTES: usize = 4096;

/// Why an HTML file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("it is larger than {MAX_HTML_BYTES} bytes; split the page and retry")]
    TooLarge,
    #[error(
        "its charset could not be determined ({reason}); declare it with <meta charset> or convert it to UTF-8 and retry"
    )]
    Undecodable { reason: &'static str },
}

/// The text of an HTML page (one page).
pub fn extract_html(bytes: &[u8]) -> Result<String, HtmlError> {
    if bytes.len() > MAX_HTML_BYTES {
        return Err(HtmlError::TooLarge);
    }
    let source = decode_html(bytes)?;
    let document = Html::parse_document(&source);
    let mut reader = PageReader::default();
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => reader.open(node.value()),
            Edge::Close(node) => reader.close(node.value()),
        }
    }
    Ok(reader.finish())
}

fn decode_html(bytes: &[u8]) -> Result<String, HtmlError> {
    if Encoding::for_bom(bytes).is_none()
        && let Some(declared) = declared_charset(bytes)
    {
        let (text, _, had_errors) = declared.decode(bytes);
        // A page declaring one charset and written in UTF-8 is common enough to check.
        if had_errors && let Ok(text) = std::str::from_utf8(bytes) {
            return Ok(text.to_owned());
        }
        return Ok(text.into_owned());
    }
    decode_text(bytes).map_err(|failure| HtmlError::Undecodable {
        reason: failure.reason(),
    })
}

/// The charset of the first `<meta charset=…>` or `<meta http-equiv="Content-Type"
/// content="…; charset=…">` near the top of the file.
fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(CHARSET_PRESCAN_BYTES)];
    let lower: Vec<u8> = head.to_ascii_lowercase();
    let mut rest = lower.as_slice();
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start..];
        let end = tag
            .iter()
            .position(|&byte| byte == b'>')
            .unwrap_or(tag.len());
        let tag = &tag[..end];
        if let Some(position) = find(tag, b"charset") {
            let value = tag[position + b"charset".len()..]
                .iter()
                .skip_while(|&&byte| byte == b' ' || byte == b'=' || byte == b'"' || byte == b'\'')
                .take_while(|&&byte| byte.is_ascii_alphanumeric() || b"-_:.".contains(&byte))
                .copied()
                .collect::<Vec<u8>>();
            if let Some(encoding) = Encoding::for_label(&value) {
                // The HTML standard reads a declared UTF-16 as UTF-8 (no BOM was found).
                let is_utf16 =
                    encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE;
                return Some(if is_utf16 { UTF_8 } else { encoding });
            }
        }
        rest = &rest[start + end.max(1)..];
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Stands for a line break in the source text, which renders as a space, except between
/// Japanese characters, where browsers render nothing.
const SOFT_BREAK: char = '\u{1}';

#[derive(Debug, Default)]
struct TableCell {
    text: String,
    is_header: bool,
    span: usize,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<TableCell>>,
    cell: Option<TableCell>,
    in_head: bool,
    head_rows: usize,
}

impl Table {
    fn finish(self) -> Vec<String> {
        let declared_header = self.head_rows > 0
            || self
                .rows
                .first()
                .is_some_and(|row| !row.is_empty() && row.iter().all(|cell| cell.is_header));
        let mut spans = span_budget();
        let grid: Vec<Vec<String>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                let mut cells = Vec::new();
                for cell in row {
                    let text = clean_text(&cell.text);
                    for offset in 0..spans(cell.span) {
                        // A header cell names every column it spans.
                        let repeat = offset == 0 || index == 0;
                        cells.push(if repeat { text.clone() } else { String::new() });
                    }
                }
                cells
            })
            .collect();
        table_rows(&grid, declared_header)
    }
}

#[derive(Debug, Default)]
struct PageReader {
    blocks: Blocks,
    title: Option<String>,
    first_h1: Option<String>,
    in_title: bool,
    /// Inside elements whose content is dropped.
    skip_depth: usize,
    /// Inside `<article>`, `<main>` or `<section>`.
    content_depth: usize,
    pre_depth: usize,
    text: String,
    heading: Option<usize>,
    /// Ordered lists' next numbers; `None` for bulleted lists.
    lists: Vec<Option<u32>>,
    item_label: Option<String>,
    tables: Vec<Table>,
}

impl PageReader {
    fn open(&mut self, node: &Node) {
        if self.skip_depth > 0 {
            if let Node::Element(_) = node {
                self.skip_depth += 1;
            }
            return;
        }
        match node {
            Node::Text(text) if self.in_title => {
                self.title.get_or_insert_with(String::new).push_str(text);
            }
            Node::Text(text) => self.push_source_text(text),
            Node::Element(element) => {
                let name = element.name();
                let hidden =
                    element.attr("hidden").is_some() || element.attr("aria-hidden") == Some("true");
                let page_furniture = matches!(name, "header" | "footer") && self.content_depth == 0;
                if hidden || page_furniture || is_dropped(name) {
                    self.skip_depth = 1;
                    return;
                }
                match name {
                    "title" => self.in_title = true,
                    "article" | "main" | "section" => {
                        self.content_depth += 1;
                        self.flush();
                    }
                    "br" => self.text.push('\n'),
                    "pre" => {
                        self.flush();
                        self.pre_depth += 1;
                    }
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                        self.flush();
                        self.heading = name[1..].parse().ok();
                    }
                    "ul" | "ol" => {
                        self.flush();
                        let start = element
                            .attr("start")
                            .and_then(|start| start.trim().parse().ok())
                            .unwrap_or(1);
                        self.lists.push((name == "ol").then_some(start));
                    }
                    "li" => {
                        self.flush();
                        self.item_label = self.lists.last_mut().map(|list| match list {
                            Some(number) => {
                                let label = format!("{number}. ");
                                *number = number.saturating_add(1);
                                label
                            }
                            None => "・".to_owned(),
                        });
                    }
                    "table" => {
                        self.flush();
                        self.tables.push(Table::default());
                    }
                    "thead" => {
                        if let Some(table) = self.tables.last_mut() {
                            table.in_head = true;
                        }
                    }
                    "tr" => {
                        if let Some(table) = self.tables.last_mut() {
                            table.rows.push(Vec::new());
                            if table.in_head {
                                table.head_rows += 1;
                            }
                        }
                    }
                    "td" | "th" => {
                        self.flush();
                        if let Some(table) = self.tables.last_mut() {
                            table.cell = Some(TableCell {
                                text: String::new(),
                                is_header: name == "th",
                                span: element
                                    .attr("colspan")
                                    .and_then(|span| span.trim().parse().ok())
                                    .unwrap_or(1),
                            });
                        }
                    }
                    name if is_block(name) => self.flush(),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, node: &Node) {
        let Node::Element(element) = node else {
            return;
        };
        if self.skip_depth > 0 {
            self.skip_depth -= 1;
            return;
        }
        let name = element.name();
        match name {
            "title" => self.in_title = false,
            "article" | "main" | "section" => {
                self.flush();
                self.content_depth = self.content_depth.saturating_sub(1);
            }
            "pre" => {
                self.flush();
                self.pre_depth = self.pre_depth.saturating_sub(1);
            }
            "ul" | "ol" => {
                self.flush();
                self.lists.pop();
            }
            "thead" => {
                if let Some(table) = self.tables.last_mut() {
                    table.in_head = false;
                }
            }
            "td" | "th" => {
                self.flush();
                if let Some(table) = self.tables.last_mut()
                    && let Some(cell) = table.cell.take()
                {
                    match table.rows.last_mut() {
                        Some(row) => row.push(cell),
                        None => table.rows.push(vec![cell]),
                    }
                }
            }
            "table" => {
                self.flush();
                if let Some(table) = self.tables.pop() {
                    let rows = table.finish();
                    match self.tables.last_mut().and_then(|outer| outer.cell.as_mut()) {
                        Some(cell) => {
                            for row in rows {
                                cell.text.push(' ');
                                cell.text.push_str(&row);
                            }
                        }
                        None => {
                            for row in rows {
                                self.blocks.push(&row);
                            }
                        }
                    }
                }
            }
            "li" => {
                self.flush();
                self.item_label = None;
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.flush(),
            name if is_block(name) => self.flush(),
            _ => {}
        }
    }

    fn push_source_text(&mut self, text: &str) {
        if self.pre_depth > 0 {
            self.text.push_str(text);
            return;
        }
        let mut in_space = false;
        let mut space_has_break = false;
        for ch in text.chars() {
            if ch.is_whitespace() {
                in_space = true;
                space_has_break |= ch == '\n' || ch == '\r';
                continue;
            }
            if in_space {
                self.text
                    .push(if space_has_break { SOFT_BREAK } else { ' ' });
                in_space = false;
                space_has_break = false;
            }
            self.text.push(ch);
        }
        if in_space {
            self.text
                .push(if space_has_break { SOFT_BREAK } else { ' ' });
        }
    }

    /// Ends the current block: into the open table cell, as a heading, as a list item or as a
    /// paragraph.
    fn flush(&mut self) {
        let text = clean_text(&std::mem::take(&mut self.text));
        let heading = self.heading.take();
        if text.is_empty() {
            return;
        }
        if let Some(cell) = self.tables.last_mut().and_then(|table| table.cell.as_mut()) {
            if !cell.text.is_empty() {
                cell.text.push(' ');
            }
            cell.text.push_str(&text);
            return;
        }
        if let Some(level) = heading {
            if level == 1 && self.first_h1.is_none() {
                self.first_h1 = Some(text.clone());
            }
            self.blocks.push_heading(level, &text);
        } else if let Some(label) = self.item_label.take() {
            self.blocks.push(&format!("{label}{text}"));
        } else {
            self.blocks.push(&text);
        }
    }

    fn finish(mut self) -> String {
        self.flush();
        let title = self
            .title
            .map(|title| clean_text(&title))
            .filter(|title| !title.is_empty() && Some(title) != self.first_h1.as_ref());
        match title {
            Some(title) => {
                let mut page = Blocks::default();
                page.push_heading(1, &title);
                page.push(&self.blocks.into_text());
                page.into_text()
            }
            None => self.blocks.into_text(),
        }
    }
}

/// Soft breaks between Japanese characters removed, others made spaces; spaces collapsed and
/// each line trimmed.
fn clean_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (index, &ch) in chars.iter().enumerate() {
        if ch != SOFT_BREAK {
            out.push(ch);
            continue;
        }
        let before = index.checked_sub(1).and_then(|before| chars.get(before));
        let after = chars.get(index + 1);
        let between_japanese =
            before.is_some_and(|&ch| is_japanese(ch)) && after.is_some_and(|&ch| is_japanese(ch));
        if !between_japanese {
            out.push(' ');
        }
    }
    out.lines()
        .map(|line| {
            line.split(' ')
                .filter(|word| !word.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_dropped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "nav"
            | "svg"
            | "math"
            | "iframe"
            | "object"
            | "embed"
            | "canvas"
            | "select"
            | "datalist"
            | "button"
    )
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "aside"
            | "blockquote"
            | "dl"
            | "dt"
            | "dd"
            | "caption"
            | "figure"
            | "figcaption"
            | "form"
            | "fieldset"
            | "legend"
            | "address"
            | "hr"
            | "details"
            | "summary"
            | "body"
            | "header"
            | "footer"
            | "tr"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_declared_shift_jis_page() {
        let (body, _, _) = encoding_rs::SHIFT_JIS.encode("<p>伴走支援の体制</p>");
        let mut page = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\"></head><body>".to_vec();
        page.extend_from_slice(&body);
        assert_eq!(extract_html(&page).unwrap(), "伴走支援の体制");
    }

    #[test]
    fn keeps_an_article_header_and_drops_hidden_elements() {
        let page = "<title>DX推進ポータル</title><header>サイト名</header><article><header><h1>実施計画</h1></header><p hidden>非表示</p><ol start=\"3\"><li>体制</li><li>予算</li></ol></article>";
        assert_eq!(
            extract_html(page.as_bytes()).unwrap(),
            "# DX推進ポータル\n\n# 実施計画\n\n3. 体制\n\n4. 予算"
        );
    }

    #[test]
    fn a_header_cell_names_every_column_it_spans() {
        let page = "<table><tr><th>区分</th><th colspan=2>金額</th></tr><tr><td>人件費</td><td>100</td><td>120</td></tr></table>";
        assert_eq!(
            extract_html(page.as_bytes()).unwrap(),
            "区分: 人件費 / 金額: 100 / 金額: 120"
        );
    }

    #[test]
    fn line_breaks_between_japanese_characters_vanish() {
        assert_eq!(clean_text("市町村の\u{1}支援\u{1}DX"), "市町村の支援 DX");
    }
}
