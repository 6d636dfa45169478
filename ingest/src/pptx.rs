//! PowerPoint presentations (.pptx): one page per slide, in presentation order (the
//! `sldIdLst` of `presentation.xml`, not the slide file names), so a page number is the slide
//! number.
//!
//! A slide's title placeholder is its heading (「# スライド n」 when it has none, so that its text
//! is not filed under the previous slide's title). Then the other placeholders in document
//! order, then the remaining shapes top to bottom and left to right; a group's shapes are read
//! in the same order inside it, tables row by row. Slide number, date and footer placeholders
//! are dropped. Speaker notes follow, marked 「ノート:」.

use quick_xml::events::BytesStart;

use crate::blocks::{Blocks, one_line, table_rows};
use crate::ooxml::{OfficeError, Package, XmlEvent, attribute, local_name, walk_xml};

const EXPECTED: &str = "PowerPoint (.pptx)";

/// Most slides read from one file.
pub const MAX_SLIDES: usize = 2_000;

/// Marks the speaker notes of a slide.
pub const NOTES_MARK: &str = "ノート:";

/// The text of each slide of a .pptx file, in presentation order.
pub fn extract_pptx(bytes: &[u8]) -> Result<Vec<String>, OfficeError> {
    let mut package = Package::open(bytes)?;
    let presentation_part = package.main_part("ppt/presentation.xml")?;
    let relationships = package.relationships(&presentation_part)?;
    let xml = package.required_part(&presentation_part, EXPECTED)?;
    let mut slide_ids = Vec::new();
    walk_xml(&presentation_part, &xml, |event| {
        if let XmlEvent::Start(element) = event
            && local_name(element) == "sldId"
            && let Some(id) = attribute(element, "r:id")
        {
            if slide_ids.len() == MAX_SLIDES {
                return Err(OfficeError::TooMany {
                    what: "slides",
                    limit: MAX_SLIDES,
                });
            }
            slide_ids.push(id);
        }
        Ok(())
    })?;
    let mut pages = Vec::with_capacity(slide_ids.len());
    for (index, id) in slide_ids.iter().enumerate() {
        let Some(slide_part) = relationships.target(id).map(str::to_owned) else {
            pages.push(String::new());
            continue;
        };
        let Some(slide_xml) = package.part(&slide_part)? else {
            pages.push(String::new());
            continue;
        };
        let slide = read_shapes(&slide_part, &slide_xml)?;
        let notes_part = package
            .relationships(&slide_part)?
            .target_of_kind("/notesSlide")
            .map(str::to_owned);
        let notes = match notes_part {
            Some(part) => match package.part(&part)? {
                Some(xml) => read_shapes(&part, &xml)?,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        pages.push(slide_text(index + 1, slide, notes));
    }
    Ok(pages)
}

#[derive(Debug, Default)]
struct Shape {
    /// The placeholder type (`title`, `body` …) if the shape is a placeholder.
    placeholder: Option<String>,
    offset: Option<(i64, i64)>,
    document_order: usize,
    /// Paragraphs (and table rows) of the shape itself.
    blocks: Vec<String>,
    /// For a group: its shapes.
    children: Vec<Shape>,
}

impl Shape {
    fn is_title(&self) -> bool {
        matches!(self.placeholder.as_deref(), Some("title" | "ctrTitle"))
    }

    /// Paragraphs in reading order, a group's shapes included.
    fn into_blocks(mut self) -> Vec<String> {
        let mut children = std::mem::take(&mut self.children);
        sort_for_reading(&mut children);
        let mut blocks = self.blocks;
        for child in children {
            blocks.extend(child.into_blocks());
        }
        blocks
    }
}

/// Placeholders first (the title first of all) in document order, then the other shapes by
/// their top, then left edge.
fn sort_for_reading(shapes: &mut [Shape]) {
    shapes.sort_by_key(|shape| {
        let rank = if shape.is_title() {
            0
        } else if shape.placeholder.is_some() {
            1
        } else {
            2
        };
        let (x, y) = match rank {
            2 => shape.offset.unwrap_or((0, 0)),
            _ => (0, 0),
        };
        (rank, y, x, shape.document_order)
    });
}

/// Placeholders that repeat on every slide rather than carry its content.
fn is_furniture(placeholder: &str) -> bool {
    matches!(placeholder, "sldNum" | "dt" | "ftr" | "hdr" | "sldImg")
}

#[derive(Debug, Default)]
struct TableCell {
    text: String,
    continues_row_merge: bool,
    continues_column_merge: bool,
}

/// The top-level shapes of a slide (or notes slide).
fn read_shapes(part: &str, xml: &str) -> Result<Vec<Shape>, OfficeError> {
    let mut top_level: Vec<Shape> = Vec::new();
    let mut open: Vec<Shape> = Vec::new();
    let mut shapes_seen = 0usize;
    let mut paragraph: Option<String> = None;
    let mut in_text = false;
    let mut rows: Vec<Vec<TableCell>> = Vec::new();
    let mut cell: Option<TableCell> = None;
    let mut skip_depth = 0usize;
    walk_xml(part, xml, |event| {
        if skip_depth > 0 {
            match event {
                XmlEvent::Start(_) => skip_depth += 1,
                XmlEvent::End(_) => skip_depth -= 1,
                XmlEvent::Text(_) => {}
            }
            return Ok(());
        }
        match event {
            XmlEvent::Start(element) => match local_name(element) {
                "Fallback" | "extLst" => skip_depth = 1,
                "sp" | "grpSp" | "graphicFrame" | "pic" | "cxnSp" => {
                    shapes_seen += 1;
                    open.push(Shape {
                        document_order: shapes_seen,
                        ..Shape::default()
                    });
                }
                "ph" => {
                    if let Some(shape) = open.last_mut() {
                        shape.placeholder =
                            Some(attribute(element, "type").unwrap_or_else(|| "body".to_owned()));
                    }
                }
                "off" => {
                    if let Some(shape) = open.last_mut()
                        && shape.offset.is_none()
                    {
                        shape.offset = offset(element);
                    }
                }
                "p" => paragraph = Some(String::new()),
                "t" => in_text = true,
                "br" => {
                    if let Some(paragraph) = paragraph.as_mut() {
                        paragraph.push('\n');
                    }
                }
                "tbl" => rows.clear(),
                "tr" => rows.push(Vec::new()),
                "tc" => {
                    cell = Some(TableCell {
                        text: String::new(),
                        continues_row_merge: attribute(element, "hMerge")
                            .is_some_and(|v| v == "1" || v == "true"),
                        continues_column_merge: attribute(element, "vMerge")
                            .is_some_and(|v| v == "1" || v == "true"),
                    })
                }
                _ => {}
            },
            XmlEvent::Text(text) => {
                if in_text && let Some(paragraph) = paragraph.as_mut() {
                    paragraph.push_str(text);
                }
            }
            XmlEvent::End(name) => match name {
                "t" => in_text = false,
                "p" => {
                    if let Some(text) = paragraph.take() {
                        if let Some(cell) = cell.as_mut() {
                            if !cell.text.is_empty() {
                                cell.text.push(' ');
                            }
                            cell.text.push_str(&text);
                        } else if let Some(shape) = open.last_mut() {
                            shape.blocks.push(text);
                        }
                    }
                }
                "tc" => {
                    if let (Some(finished), Some(row)) = (cell.take(), rows.last_mut()) {
                        row.push(finished);
                    }
                }
                "tbl" => {
                    if let Some(shape) = open.last_mut() {
                        shape.blocks.extend(table_rows(&table_grid(&rows), false));
                    }
                    rows.clear();
                }
                "sp" | "grpSp" | "graphicFrame" | "pic" | "cxnSp" => {
                    if let Some(shape) = open.pop() {
                        if shape.placeholder.as_deref().is_some_and(is_furniture) {
                            return Ok(());
                        }
                        match open.last_mut() {
                            Some(group) => group.children.push(shape),
                            None => top_level.push(shape),
                        }
                    }
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(top_level)
}

fn offset(element: &BytesStart<'_>) -> Option<(i64, i64)> {
    let coordinate = |name: &str| attribute(element, name).and_then(|value| value.parse().ok());
    Some((coordinate("x")?, coordinate("y")?))
}

/// A merged cell repeats the text of the cell it continues, so every row reads alone.
fn table_grid(rows: &[Vec<TableCell>]) -> Vec<Vec<String>> {
    let mut grid: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    for (row_index, row) in rows.iter().enumerate() {
        let mut cells: Vec<String> = Vec::with_capacity(row.len());
        for (column, cell) in row.iter().enumerate() {
            let text = if cell.continues_column_merge {
                grid.last()
                    .and_then(|above| above.get(column))
                    .cloned()
                    .unwrap_or_default()
            } else if cell.continues_row_merge && row_index == 0 {
                cells.last().cloned().unwrap_or_default()
            } else if cell.continues_row_merge {
                String::new()
            } else {
                cell.text.trim().to_owned()
            };
            cells.push(text);
        }
        grid.push(cells);
    }
    grid
}

fn slide_text(number: usize, mut shapes: Vec<Shape>, notes: Vec<Shape>) -> String {
    sort_for_reading(&mut shapes);
    let mut blocks = Blocks::default();
    let title = shapes
        .iter()
        .position(Shape::is_title)
        .map(|index| shapes.remove(index))
        .map(|title| one_line(&title.into_blocks().join(" ")))
        .filter(|title| !title.is_empty());
    blocks.push_heading(1, &title.unwrap_or_else(|| format!("スライド {number}")));
    for shape in shapes {
        for block in shape.into_blocks() {
            blocks.push(&block);
        }
    }
    let notes: Vec<String> = notes
        .into_iter()
        .filter(|shape| shape.placeholder.as_deref() == Some("body"))
        .flat_map(Shape::into_blocks)
        .filter(|block| !block.trim().is_empty())
        .collect();
    for (index, block) in notes.iter().enumerate() {
        if index == 0 {
            blocks.push(&format!("{NOTES_MARK} {}", block.trim()));
        } else {
            blocks.push(block);
        }
    }
    blocks.into_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slide_without_a_title_is_headed_by_its_number_and_drops_furniture() {
        let slide = r#"<p:sld><p:cSld><p:spTree>
<p:sp><p:nvSpPr><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="5000" y="900"/></a:xfrm></p:spPr><p:txBody><a:p><a:r><a:t>右下</a:t></a:r></a:p></p:txBody></p:sp>
<p:sp><p:nvSpPr><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="100" y="900"/></a:xfrm></p:spPr><p:txBody><a:p><a:r><a:t>左下</a:t></a:r></a:p></p:txBody></p:sp>
<p:sp><p:nvSpPr><p:nvPr><p:ph type="sldNum"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:fld><a:t>7</a:t></a:fld></a:p></p:txBody></p:sp>
<p:sp><p:nvSpPr><p:nvPr><p:ph idx="1"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>本文</a:t></a:r><a:br/><a:r><a:t>二行目</a:t></a:r></a:p></p:txBody></p:sp>
</p:spTree></p:cSld></p:sld>"#;
        let shapes = read_shapes("slide7.xml", slide).unwrap();
        assert_eq!(
            slide_text(7, shapes, Vec::new()),
            "# スライド 7\n\n本文\n二行目\n\n左下\n\n右下"
        );
    }
}
