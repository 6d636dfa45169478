//! The Markdown-like text that the DOCX, XLSX, PPTX and HTML loaders write: headings as `#`
//! lines (so the Markdown heading logic gives heading paths), lists, and tables as one line per
//! row with each cell named by its column header.
//!
//! Blocks are separated by blank lines: the normaliser joins a line that does not end a sentence
//! with the next, which is right for PDF text but would run separate paragraphs, slide bullets
//! or table rows together.

/// The deepest Markdown heading level.
const MAX_HEADING_LEVEL: usize = 6;

/// The longest cell text a header row may have: longer first-row cells are data.
const MAX_HEADER_CELL_CHARS: usize = 40;

/// Most grid cells a table's column spans may add (a header cell names every column it spans):
/// a hostile file of cells each spanning many columns must not make millions of copies.
pub const MAX_SPANNED_CELLS: usize = 100_000;

/// How many grid columns each cell of a table fills, from the spans the file gives, within
/// [`MAX_SPANNED_CELLS`] for the whole table.
pub fn span_budget() -> impl FnMut(usize) -> usize {
    let mut added = 0usize;
    move |span: usize| {
        let extra = span.saturating_sub(1).min(MAX_SPANNED_CELLS - added);
        added += extra;
        extra + 1
    }
}

/// Separates the cells of a table row.
pub const CELL_SEPARATOR: &str = " / ";

/// Text being assembled block by block.
#[derive(Debug, Default)]
pub struct Blocks {
    text: String,
}

impl Blocks {
    /// Adds a paragraph (or any block); blank ones are skipped.
    pub fn push(&mut self, block: &str) {
        let block = block.trim();
        if block.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(block);
    }

    /// Adds a heading of `level` (1 is the outermost), written on one line.
    pub fn push_heading(&mut self, level: usize, text: &str) {
        let text = one_line(text);
        if text.is_empty() {
            return;
        }
        let hashes = "#".repeat(level.clamp(1, MAX_HEADING_LEVEL));
        self.push(&format!("{hashes} {text}"));
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// Whitespace runs (newlines included) collapsed to one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the first row of a table reads as its column headers: at least two rows, and a
/// first row that [reads as headers](is_header_row).
pub fn first_row_is_header(rows: &[Vec<String>]) -> bool {
    rows.len() >= 2 && rows.first().is_some_and(|first| is_header_row(first))
}

/// Whether a row's cells read as column names: at least two named cells, every one short, not
/// a number and not a sentence.
pub fn is_header_row(cells: &[String]) -> bool {
    let named = cells.iter().filter(|cell| !cell.trim().is_empty()).count();
    named >= 2
        && cells.iter().all(|cell| {
            let cell = cell.trim();
            cell.chars().count() <= MAX_HEADER_CELL_CHARS
                && !cell.ends_with('。')
                && cell.parse::<f64>().is_err()
        })
}

/// One line per row. When the first row is a header, every later row names each cell by its
/// column (「列名: 値 / 列名: 値」) so that a row read alone still says what its values are;
/// otherwise cells are joined as they are. Empty cells are left out. `declared_header`: the file
/// marks the first row as a header (`<th>`, a repeated Word header row).
pub fn table_rows(rows: &[Vec<String>], declared_header: bool) -> Vec<String> {
    if (declared_header && rows.len() >= 2) || first_row_is_header(rows) {
        let header: Vec<String> = rows[0].iter().map(|cell| one_line(cell)).collect();
        rows[1..]
            .iter()
            .map(|row| labelled_row(&header, row))
            .filter(|row| !row.is_empty())
            .collect()
    } else {
        rows.iter()
            .map(|row| plain_row(row))
            .filter(|row| !row.is_empty())
            .collect()
    }
}

pub fn plain_row(row: &[String]) -> String {
    row.iter()
        .map(|cell| one_line(cell))
        .filter(|cell| !cell.is_empty())
        .collect::<Vec<_>>()
        .join(CELL_SEPARATOR)
}

/// A row with each non-empty cell prefixed by its column's header (when that has one).
pub fn labelled_row(header: &[String], row: &[String]) -> String {
    row.iter()
        .enumerate()
        .filter_map(|(column, cell)| {
            let value = one_line(cell);
            if value.is_empty() {
                return None;
            }
            Some(match header.get(column).filter(|name| !name.is_empty()) {
                Some(name) if *name != value => format!("{name}: {value}"),
                _ => value,
            })
        })
        .collect::<Vec<_>>()
        .join(CELL_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(table: &[&[&str]]) -> Vec<Vec<String>> {
        table
            .iter()
            .map(|row| row.iter().map(|cell| cell.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_header_row_names_every_cell() {
        let table = rows(&[
            &["年度", "事業", "予算"],
            &["令和6年度", "伴走支援", "1200"],
            &["令和7年度", "", "900"],
        ]);
        assert_eq!(
            table_rows(&table, false),
            vec![
                "年度: 令和6年度 / 事業: 伴走支援 / 予算: 1200",
                "年度: 令和7年度 / 予算: 900"
            ]
        );
    }

    #[test]
    fn a_first_row_of_numbers_or_sentences_is_data() {
        let numbers = rows(&[&["1", "2"], &["3", "4"]]);
        assert_eq!(table_rows(&numbers, false), vec!["1 / 2", "3 / 4"]);
        let sentences = rows(&[&["市町の職員が参加した。", "備考"], &["a", "b"]]);
        assert!(!first_row_is_header(&sentences));
    }

    #[test]
    fn blocks_are_separated_by_blank_lines() {
        let mut blocks = Blocks::default();
        blocks.push_heading(2, "体制\nの整備");
        blocks.push("  ");
        blocks.push("本文。");
        blocks.push_heading(9, "深い見出し");
        assert_eq!(
            blocks.into_text(),
            "## 体制 の整備\n\n本文。\n\n###### 深い見出し"
        );
    }
}
