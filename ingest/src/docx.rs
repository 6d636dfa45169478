//! Word documents (.docx): the main document part's paragraphs and tables in order, as the
//! Markdown-like text of [`crate::blocks`].
//!
//! A paragraph is a heading when it or its style (followed through `basedOn`) has an outline
//! level, or when its style's *name* says so (「見出し 1」, "heading 1", "Title"): Japanese
//! templates often give styles ids such as "1" or "a". Numbered and bulleted paragraphs get the
//! label Word shows (「1.」, 「(1)」, 「①」, 「・」). Footnotes are written at the end of the section
//! that refers to them, marked (注n) at the reference. Headers, footers and comments live in
//! other parts and are not read; deleted revisions are dropped.

use std::collections::HashMap;

use quick_xml::events::BytesStart;

use crate::blocks::{Blocks, span_budget, table_rows};
use crate::normalize::normalize_chars;
use crate::ooxml::{OfficeError, Package, XmlEvent, attribute, is_on, local_name, walk_xml};

const EXPECTED: &str = "Word (.docx)";

/// How many `basedOn` links are followed; style chains are short, a longer one is a cycle.
const MAX_STYLE_CHAIN: usize = 32;
const LIST_LEVELS: usize = 9;

/// The text of a .docx file (one page: Word files have no fixed pages).
pub fn extract_docx(bytes: &[u8]) -> Result<String, OfficeError> {
    let mut package = Package::open(bytes)?;
    let document_part = package.main_part("word/document.xml")?;
    let relationships = package.relationships(&document_part)?;
    let styles = match relationships.target_of_kind("/styles") {
        Some(part) => match package.part(part)? {
            Some(xml) => Styles::parse(part, &xml)?,
            None => Styles::default(),
        },
        None => Styles::default(),
    };
    let numbering = match relationships.target_of_kind("/numbering") {
        Some(part) => match package.part(part)? {
            Some(xml) => Numbering::parse(part, &xml)?,
            None => Numbering::default(),
        },
        None => Numbering::default(),
    };
    let footnotes = match relationships.target_of_kind("/footnotes") {
        Some(part) => match package.part(part)? {
            Some(xml) => parse_notes(part, &xml, "footnote")?,
            None => HashMap::new(),
        },
        None => HashMap::new(),
    };
    let xml = package.required_part(&document_part, EXPECTED)?;
    let mut reader = BodyReader {
        styles: &styles,
        numbering: &numbering,
        footnotes: &footnotes,
        list_counters: HashMap::new(),
        blocks: Blocks::default(),
        paragraphs: Vec::new(),
        tables: Vec::new(),
        pending_footnotes: Vec::new(),
        footnotes_referenced: 0,
        skip_depth: 0,
        in_text: false,
        in_run: 0,
        in_paragraph_properties: false,
        in_cell_properties: false,
        in_row_properties: false,
    };
    walk_xml(&document_part, &xml, |event| {
        reader.handle(event);
        Ok(())
    })?;
    reader.flush_footnotes();
    Ok(reader.blocks.into_text())
}

#[derive(Debug, Default, Clone)]
struct Style {
    name: Option<String>,
    based_on: Option<String>,
    outline_level: Option<u8>,
    numbering: Option<(String, usize)>,
}

#[derive(Debug, Default)]
struct Styles {
    paragraph_styles: HashMap<String, Style>,
}

impl Styles {
    fn parse(part: &str, xml: &str) -> Result<Self, OfficeError> {
        let mut styles = Styles::default();
        let mut current: Option<(String, Style)> = None;
        let mut numbering = NumberingReference::default();
        walk_xml(part, xml, |event| {
            match event {
                XmlEvent::Start(element) => match local_name(element) {
                    "style" => {
                        current = (attribute(element, "w:type").as_deref() == Some("paragraph"))
                            .then(|| attribute(element, "w:styleId"))
                            .flatten()
                            .map(|id| (id, Style::default()));
                        numbering = NumberingReference::default();
                    }
                    "name" => {
                        if let Some((_, style)) = current.as_mut() {
                            style.name = attribute(element, "w:val");
                        }
                    }
                    "basedOn" => {
                        if let Some((_, style)) = current.as_mut() {
                            style.based_on = attribute(element, "w:val");
                        }
                    }
                    "outlineLvl" => {
                        if let Some((_, style)) = current.as_mut() {
                            style.outline_level =
                                attribute(element, "w:val").and_then(|value| value.parse().ok());
                        }
                    }
                    name => numbering.read(name, element),
                },
                XmlEvent::End("style") => {
                    if let Some((id, mut style)) = current.take() {
                        style.numbering = numbering.resolved();
                        styles.paragraph_styles.insert(id, style);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(styles)
    }

    /// A style and the styles it is based on, nearest first.
    fn chain<'styles>(&'styles self, id: &str) -> impl Iterator<Item = &'styles Style> {
        let mut next = self.paragraph_styles.get(id);
        std::iter::from_fn(move || {
            let style = next?;
            next = style
                .based_on
                .as_deref()
                .and_then(|parent| self.paragraph_styles.get(parent));
            Some(style)
        })
        .take(MAX_STYLE_CHAIN)
    }

    /// The heading level (1 outermost) a paragraph of this style has.
    fn heading_level(&self, id: &str) -> Option<usize> {
        // An outline level decides (level 9 is body text); a name only when there is none.
        self.chain(id).find_map(|style| match style.outline_level {
            Some(level) => Some(outline_heading_level(level)),
            None => style
                .name
                .as_deref()
                .and_then(heading_level_from_name)
                .map(Some),
        })?
    }

    fn numbering(&self, id: &str) -> Option<(String, usize)> {
        self.chain(id).find_map(|style| style.numbering.clone())
    }
}

/// Outline levels 0–8 are headings 1–9; 9 is body text.
fn outline_heading_level(level: u8) -> Option<usize> {
    (level < 9).then_some(usize::from(level) + 1)
}

/// 「見出し 1」, "heading 1", "Heading1" → 1; "Title", 「表題」 → 1.
fn heading_level_from_name(name: &str) -> Option<usize> {
    let name = normalize_chars(name).to_lowercase();
    let name = name.trim();
    if name == "title" || name == "表題" {
        return Some(1);
    }
    let number = name
        .strip_prefix("heading")
        .or_else(|| name.strip_prefix("見出し"))?
        .trim();
    number
        .parse::<usize>()
        .ok()
        .filter(|level| (1..=9).contains(level))
}

/// A `w:numPr` (`w:numId`, `w:ilvl`) being read.
#[derive(Debug, Default)]
struct NumberingReference {
    id: Option<String>,
    level: Option<usize>,
}

impl NumberingReference {
    fn read(&mut self, name: &str, element: &BytesStart<'_>) {
        match name {
            "numId" => self.id = attribute(element, "w:val"),
            "ilvl" => self.level = attribute(element, "w:val").and_then(|value| value.parse().ok()),
            _ => {}
        }
    }

    /// `numId` 0 explicitly removes numbering.
    fn resolved(&self) -> Option<(String, usize)> {
        let id = self.id.clone()?;
        Some((id, self.level.unwrap_or(0).min(LIST_LEVELS - 1)))
    }
}

#[derive(Debug, Clone)]
struct ListLevel {
    format: String,
    text: String,
    start: u32,
}

#[derive(Debug, Default)]
struct Numbering {
    abstract_levels: HashMap<String, Vec<Option<ListLevel>>>,
    /// numId → abstractNumId.
    instances: HashMap<String, String>,
}

impl Numbering {
    fn parse(part: &str, xml: &str) -> Result<Self, OfficeError> {
        let mut numbering = Numbering::default();
        let mut abstract_id: Option<String> = None;
        let mut instance_id: Option<String> = None;
        let mut level: Option<(usize, ListLevel)> = None;
        walk_xml(part, xml, |event| {
            match event {
                XmlEvent::Start(element) => match local_name(element) {
                    "abstractNum" => abstract_id = attribute(element, "w:abstractNumId"),
                    "num" => instance_id = attribute(element, "w:numId"),
                    "abstractNumId" => {
                        if let (Some(instance), Some(target)) =
                            (instance_id.clone(), attribute(element, "w:val"))
                        {
                            numbering.instances.insert(instance, target);
                        }
                    }
                    "lvl" if abstract_id.is_some() => {
                        level = attribute(element, "w:ilvl")
                            .and_then(|value| value.parse::<usize>().ok())
                            .filter(|&index| index < LIST_LEVELS)
                            .map(|index| {
                                (
                                    index,
                                    ListLevel {
                                        format: "decimal".to_owned(),
                                        text: format!("%{}.", index + 1),
                                        start: 1,
                                    },
                                )
                            });
                    }
                    "start" => {
                        if let Some((_, level)) = level.as_mut() {
                            level.start = attribute(element, "w:val")
                                .and_then(|value| value.parse().ok())
                                .unwrap_or(1);
                        }
                    }
                    "numFmt" => {
                        if let (Some((_, level)), Some(format)) =
                            (level.as_mut(), attribute(element, "w:val"))
                        {
                            level.format = format;
                        }
                    }
                    "lvlText" => {
                        if let Some((_, level)) = level.as_mut() {
                            level.text = attribute(element, "w:val").unwrap_or_default();
                        }
                    }
                    _ => {}
                },
                XmlEvent::End("lvl") => {
                    if let (Some((index, finished)), Some(id)) = (level.take(), &abstract_id) {
                        let levels = numbering
                            .abstract_levels
                            .entry(id.clone())
                            .or_insert_with(|| vec![None; LIST_LEVELS]);
                        levels[index] = Some(finished);
                    }
                }
                XmlEvent::End("abstractNum") => abstract_id = None,
                XmlEvent::End("num") => instance_id = None,
                _ => {}
            }
            Ok(())
        })?;
        Ok(numbering)
    }

    fn levels(&self, instance: &str) -> Option<&[Option<ListLevel>]> {
        let abstract_id = self.instances.get(instance)?;
        self.abstract_levels.get(abstract_id).map(Vec::as_slice)
    }
}

/// A list label as Word shows it: the level's `lvlText` with each `%n` replaced by the counter
/// of level n in that level's number format.
fn list_label(levels: &[Option<ListLevel>], counters: &[u32; LIST_LEVELS], level: usize) -> String {
    let Some(Some(this)) = levels.get(level) else {
        return String::new();
    };
    match this.format.as_str() {
        "bullet" => return "・".to_owned(),
        "none" => return String::new(),
        _ => {}
    }
    let mut label = String::new();
    let mut chars = this.text.chars().peekable();
    while let Some(ch) = chars.next() {
        let placeholder = (ch == '%')
            .then(|| chars.peek().and_then(|next| next.to_digit(10)))
            .flatten()
            .filter(|digit| (1..=LIST_LEVELS as u32).contains(digit));
        match placeholder {
            Some(digit) => {
                chars.next();
                let index = digit as usize - 1;
                let format = levels
                    .get(index)
                    .and_then(Option::as_ref)
                    .map_or("decimal", |level| level.format.as_str());
                label.push_str(&format_number(counters[index], format));
            }
            None => label.push(ch),
        }
    }
    label
}

fn format_number(number: u32, format: &str) -> String {
    const AIUEO: &str = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン";
    const IROHA: &str = "イロハニホヘトチリヌルヲワカヨタレソツネナラムウヰノオクヤマケフコエテアサキユメミシヱヒモセス";
    let from_list = |list: &str| {
        let count = list.chars().count() as u32;
        list.chars()
            .nth(((number.max(1) - 1) % count) as usize)
            .map(String::from)
            .unwrap_or_default()
    };
    match format {
        "decimalZero" => format!("{number:02}"),
        "decimalEnclosedCircle" | "decimalEnclosedCircleChinese" if (1..=20).contains(&number) => {
            char::from_u32(0x2460 + number - 1).map_or_else(|| number.to_string(), String::from)
        }
        "lowerLetter" | "upperLetter" => {
            let letter = char::from(b'a' + ((number.max(1) - 1) % 26) as u8);
            if format == "upperLetter" {
                letter.to_ascii_uppercase().to_string()
            } else {
                letter.to_string()
            }
        }
        "lowerRoman" => roman(number).to_lowercase(),
        "upperRoman" => roman(number),
        "aiueo" | "aiueoFullWidth" => from_list(AIUEO),
        "iroha" | "irohaFullWidth" => from_list(IROHA),
        "ideographDigital"
        | "japaneseCounting"
        | "chineseCounting"
        | "chineseCountingThousand"
        | "japaneseLegal"
        | "japaneseDigitalTenThousand" => kanji_number(number),
        _ => number.to_string(),
    }
}

fn roman(mut number: u32) -> String {
    const NUMERALS: [(u32, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut text = String::new();
    for (value, numeral) in NUMERALS {
        while number >= value && text.len() < 32 {
            text.push_str(numeral);
            number -= value;
        }
    }
    text
}

/// 1 → 一, 10 → 十, 23 → 二十三 (up to 99; larger numbers in digits).
fn kanji_number(number: u32) -> String {
    const DIGITS: [char; 10] = ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    match number {
        0..=9 => DIGITS[number as usize].to_string(),
        10..=99 => {
            let (tens, ones) = (number / 10, number % 10);
            let mut text = String::new();
            if tens > 1 {
                text.push(DIGITS[tens as usize]);
            }
            text.push('十');
            if ones > 0 {
                text.push(DIGITS[ones as usize]);
            }
            text
        }
        _ => number.to_string(),
    }
}

/// Footnote (or endnote) id → its text, paragraphs joined by spaces.
fn parse_notes(
    part: &str,
    xml: &str,
    note_element: &str,
) -> Result<HashMap<String, String>, OfficeError> {
    let mut notes = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut in_text = false;
    walk_xml(part, xml, |event| {
        match event {
            XmlEvent::Start(element) => {
                let name = local_name(element);
                if name == note_element {
                    let separator = attribute(element, "w:type").is_some_and(|kind| {
                        kind.contains("eparator") || kind == "continuationNotice"
                    });
                    current = attribute(element, "w:id")
                        .filter(|_| !separator)
                        .map(|id| (id, String::new()));
                } else if name == "t" {
                    in_text = true;
                } else if name == "p"
                    && let Some((_, text)) = current.as_mut()
                    && !text.is_empty()
                {
                    text.push(' ');
                }
            }
            XmlEvent::End(name) => {
                if name == note_element {
                    if let Some((id, text)) = current.take() {
                        notes.insert(id, text.trim().to_owned());
                    }
                } else if name == "t" {
                    in_text = false;
                }
            }
            XmlEvent::Text(text) => {
                if in_text && let Some((_, note)) = current.as_mut() {
                    note.push_str(text);
                }
            }
        }
        Ok(())
    })?;
    Ok(notes)
}

#[derive(Debug, Default)]
struct Paragraph {
    style: Option<String>,
    outline_level: Option<u8>,
    numbering: NumberingReference,
    text: String,
}

#[derive(Debug, Default)]
struct Cell {
    text: String,
    span: usize,
    continues_merge: bool,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<Cell>>,
    row: Option<Vec<Cell>>,
    cell: Option<Cell>,
    header_declared: bool,
}

impl Table {
    /// Cells placed in grid columns: a cell spanning columns fills the first (a header cell
    /// names all of them), and a vertically merged cell repeats the text above it, so that
    /// every row reads alone.
    fn grid(&self) -> Vec<Vec<String>> {
        let mut grid: Vec<Vec<String>> = Vec::with_capacity(self.rows.len());
        let mut spans = span_budget();
        for (row_index, row) in self.rows.iter().enumerate() {
            let mut cells: Vec<String> = Vec::new();
            for cell in row {
                let column = cells.len();
                let text = if cell.continues_merge {
                    grid.last()
                        .and_then(|above| above.get(column))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    cell.text.trim().to_owned()
                };
                for offset in 0..spans(cell.span) {
                    let repeated = offset == 0 || row_index == 0;
                    cells.push(if repeated {
                        text.clone()
                    } else {
                        String::new()
                    });
                }
            }
            grid.push(cells);
        }
        grid
    }
}

struct BodyReader<'parts> {
    styles: &'parts Styles,
    numbering: &'parts Numbering,
    footnotes: &'parts HashMap<String, String>,
    /// numId → counter of each level.
    list_counters: HashMap<String, [u32; LIST_LEVELS]>,
    blocks: Blocks,
    /// More than one when a text box's paragraphs sit inside a paragraph.
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    /// Footnotes referred to in the current section: (number shown, id).
    pending_footnotes: Vec<(usize, String)>,
    footnotes_referenced: usize,
    /// Inside content that is not shown (deleted revisions, field codes, fallbacks).
    skip_depth: usize,
    in_text: bool,
    in_run: usize,
    in_paragraph_properties: bool,
    in_cell_properties: bool,
    in_row_properties: bool,
}

impl BodyReader<'_> {
    fn handle(&mut self, event: XmlEvent<'_>) {
        if self.skip_depth > 0 {
            match event {
                XmlEvent::Start(_) => self.skip_depth += 1,
                XmlEvent::End(_) => self.skip_depth -= 1,
                XmlEvent::Text(_) => {}
            }
            return;
        }
        match event {
            XmlEvent::Start(element) => self.start(element),
            XmlEvent::End(name) => self.end(name),
            XmlEvent::Text(text) => {
                if self.in_text
                    && let Some(paragraph) = self.paragraphs.last_mut()
                {
                    paragraph.text.push_str(text);
                }
            }
        }
    }

    fn start(&mut self, element: &BytesStart<'_>) {
        let name = local_name(element);
        if self.in_paragraph_properties {
            if let Some(paragraph) = self.paragraphs.last_mut() {
                match name {
                    "pStyle" => paragraph.style = attribute(element, "w:val"),
                    "outlineLvl" => {
                        paragraph.outline_level =
                            attribute(element, "w:val").and_then(|value| value.parse().ok())
                    }
                    _ => paragraph.numbering.read(name, element),
                }
            }
            return;
        }
        if self.in_cell_properties {
            if let Some(cell) = self.tables.last_mut().and_then(|table| table.cell.as_mut()) {
                match name {
                    "gridSpan" => {
                        cell.span = attribute(element, "w:val")
                            .and_then(|value| value.parse().ok())
                            .unwrap_or(1)
                    }
                    "vMerge" => {
                        cell.continues_merge =
                            attribute(element, "w:val").as_deref() != Some("restart")
                    }
                    _ => {}
                }
            }
            return;
        }
        if self.in_row_properties {
            if name == "tblHeader"
                && is_on(attribute(element, "w:val").as_deref())
                && let Some(table) = self.tables.last_mut()
                && table.rows.is_empty()
            {
                table.header_declared = true;
            }
            return;
        }
        match name {
            "del" | "moveFrom" | "instrText" | "delInstrText" | "Fallback" | "rPr" | "sectPr"
            | "tblPr" | "tblGrid" => self.skip_depth = 1,
            "p" => self.paragraphs.push(Paragraph::default()),
            "pPr" => self.in_paragraph_properties = true,
            "r" => self.in_run += 1,
            "t" => self.in_text = self.in_run > 0,
            "tab" if self.in_run > 0 => self.push_text("\t"),
            "br" | "cr" if self.in_run > 0 => self.push_text("\n"),
            "noBreakHyphen" => self.push_text("-"),
            "footnoteReference" => {
                if let Some(id) = attribute(element, "w:id")
                    && self.footnotes.contains_key(&id)
                {
                    self.footnotes_referenced += 1;
                    let number = self.footnotes_referenced;
                    self.push_text(&format!("(注{number})"));
                    self.pending_footnotes.push((number, id));
                }
            }
            "tbl" => self.tables.push(Table::default()),
            "tr" => {
                if let Some(table) = self.tables.last_mut() {
                    table.row = Some(Vec::new());
                }
            }
            "trPr" => self.in_row_properties = true,
            "tc" => {
                if let Some(table) = self.tables.last_mut() {
                    table.cell = Some(Cell {
                        span: 1,
                        ..Cell::default()
                    });
                }
            }
            "tcPr" => self.in_cell_properties = true,
            _ => {}
        }
    }

    fn end(&mut self, name: &str) {
        match name {
            "pPr" => self.in_paragraph_properties = false,
            "tcPr" => self.in_cell_properties = false,
            "trPr" => self.in_row_properties = false,
            _ if self.in_paragraph_properties
                || self.in_cell_properties
                || self.in_row_properties => {}
            "t" => self.in_text = false,
            "r" => self.in_run = self.in_run.saturating_sub(1),
            "p" => {
                if let Some(paragraph) = self.paragraphs.pop() {
                    self.finish_paragraph(paragraph);
                }
            }
            "tc" => {
                if let Some(table) = self.tables.last_mut()
                    && let (Some(cell), Some(row)) = (table.cell.take(), table.row.as_mut())
                {
                    row.push(cell);
                }
            }
            "tr" => {
                if let Some(table) = self.tables.last_mut()
                    && let Some(row) = table.row.take()
                {
                    table.rows.push(row);
                }
            }
            "tbl" => {
                if let Some(table) = self.tables.pop() {
                    self.finish_table(table);
                }
            }
            _ => {}
        }
    }

    fn push_text(&mut self, text: &str) {
        if let Some(paragraph) = self.paragraphs.last_mut() {
            paragraph.text.push_str(text);
        }
    }

    /// Text that belongs in the innermost open table cell, if any.
    fn open_cell(&mut self) -> Option<&mut Cell> {
        self.tables.last_mut().and_then(|table| table.cell.as_mut())
    }

    fn finish_paragraph(&mut self, paragraph: Paragraph) {
        let style = paragraph.style.as_deref();
        let heading_level = match paragraph.outline_level {
            Some(level) => outline_heading_level(level),
            None => style.and_then(|style| self.styles.heading_level(style)),
        };
        let numbering = paragraph
            .numbering
            .resolved()
            .or_else(|| style.and_then(|style| self.styles.numbering(style)));
        let label = numbering
            .filter(|(id, _)| id != "0")
            .map(|(id, level)| self.next_label(&id, level))
            .unwrap_or_default();
        let text = paragraph.text.trim();
        let line = match (label.as_str(), text) {
            (_, "") => return,
            ("", text) => text.to_owned(),
            ("・", text) => format!("・{text}"),
            (label, text) => format!("{label} {text}"),
        };
        if let Some(cell) = self.open_cell() {
            if !cell.text.is_empty() {
                cell.text.push(' ');
            }
            cell.text.push_str(&line);
        } else if let Some(level) = heading_level.filter(|_| self.paragraphs.is_empty()) {
            self.flush_footnotes();
            self.blocks.push_heading(level, &line);
        } else {
            // Body text, or a text box's paragraph (written before the paragraph anchoring it).
            self.blocks.push(&line);
        }
    }

    fn next_label(&mut self, id: &str, level: usize) -> String {
        let Some(levels) = self.numbering.levels(id) else {
            return String::new();
        };
        let counters = self.list_counters.entry(id.to_owned()).or_insert_with(|| {
            let mut counters = [0; LIST_LEVELS];
            for (index, counter) in counters.iter_mut().enumerate() {
                *counter = levels
                    .get(index)
                    .and_then(Option::as_ref)
                    .map_or(1, |level| level.start)
                    .saturating_sub(1);
            }
            counters
        });
        counters[level] = counters[level].saturating_add(1);
        for (deeper, counter) in counters.iter_mut().enumerate().skip(level + 1) {
            *counter = levels
                .get(deeper)
                .and_then(Option::as_ref)
                .map_or(1, |level| level.start)
                .saturating_sub(1);
        }
        let counters = *counters;
        // A deeper level's counter shown before it has counted (「1.1」 first) starts at 1.
        let shown = counters.map(|counter| counter.max(1));
        list_label(levels, &shown, level)
    }

    fn finish_table(&mut self, table: Table) {
        let grid = table.grid();
        let rows = table_rows(&grid, table.header_declared);
        if let Some(cell) = self.open_cell() {
            for row in rows {
                if !cell.text.is_empty() {
                    cell.text.push(' ');
                }
                cell.text.push_str(&row);
            }
        } else {
            for row in rows {
                self.blocks.push(&row);
            }
        }
    }

    fn flush_footnotes(&mut self) {
        for (number, id) in std::mem::take(&mut self.pending_footnotes) {
            if let Some(text) = self.footnotes.get(&id).filter(|text| !text.is_empty()) {
                self.blocks.push(&format!("(注{number}) {text}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_levels_come_from_style_names_in_both_languages() {
        assert_eq!(heading_level_from_name("見出し 1"), Some(1));
        assert_eq!(heading_level_from_name("見出し２"), Some(2));
        assert_eq!(heading_level_from_name("heading 3"), Some(3));
        assert_eq!(heading_level_from_name("Heading3"), Some(3));
        assert_eq!(heading_level_from_name("Title"), Some(1));
        assert_eq!(heading_level_from_name("Normal"), None);
        assert_eq!(heading_level_from_name("見出しマップ"), None);
    }

    #[test]
    fn list_labels_follow_the_level_text_and_format() {
        let level = |format: &str, text: &str| {
            Some(ListLevel {
                format: format.to_owned(),
                text: text.to_owned(),
                start: 1,
            })
        };
        let levels = vec![
            level("decimal", "第%1章"),
            level("decimalEnclosedCircle", "%2"),
            level("aiueoFullWidth", "(%3)"),
            level("bullet", ""),
        ];
        let counters = [2, 3, 1, 1, 1, 1, 1, 1, 1];
        assert_eq!(list_label(&levels, &counters, 0), "第2章");
        assert_eq!(list_label(&levels, &counters, 1), "③");
        assert_eq!(list_label(&levels, &counters, 2), "(ア)");
        assert_eq!(list_label(&levels, &counters, 3), "・");
        assert_eq!(kanji_number(23), "二十三");
        assert_eq!(roman(14), "XIV");
    }
}
