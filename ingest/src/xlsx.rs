//! Excel workbooks (.xlsx), read with calamine: each visible worksheet a section headed
//! 「# シート名」, its used cells row by row.
//!
//! Every row is written on its own line starting with its Excel row number (「行12: 」) so a
//! citation shows where it is. The sheet's rows form blocks separated by empty rows; when a
//! block's first row reads as column headers, every later row of the block names each value by
//! its column (「行12: 年度: 令和6年度 / 予算: 1200」), so that a chunk stands alone. Merged
//! cells repeat their value down the rows they cover, formulas give their cached values and
//! date cells read as dates (2025-03-31).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::AssertUnwindSafe;

use calamine::{DataRef, Reader, SheetType, SheetVisible, Xlsx};

use crate::blocks::{Blocks, CELL_SEPARATOR, is_header_row, labelled_row, one_line};
use crate::ooxml::{OfficeError, Package, XmlEvent, attribute, local_name, walk_xml};

/// Most worksheets read from one file.
pub const MAX_SHEETS: usize = 500;
/// Most cells (merged cells' copies included) read from one file.
pub const MAX_CELLS: usize = 2_000_000;

/// Cell text by row, then column (0-based, as calamine gives them).
type SheetCells = BTreeMap<u32, BTreeMap<u32, String>>;

/// The text of an .xlsx file: its sheets one after the other (one page: sheets have no pages).
pub fn extract_xlsx(bytes: &[u8], include_hidden_sheets: bool) -> Result<String, OfficeError> {
    // calamine unpacks parts itself; unpacking every part once first, within the limits, keeps
    // a ZIP bomb from reaching it.
    let mut package = Package::open(bytes)?;
    package.check_all_parts()?;
    check_cell_references(&mut package)?;
    // A backstop for any other panic inside calamine; nothing built before it is kept.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        read_workbook(bytes, include_hidden_sheets)
    }))
    .unwrap_or_else(|_| {
        Err(OfficeError::Workbook {
            reason: "a cell reference or other part is malformed".to_owned(),
        })
    })
}

/// Most column letters (XFD) and row digits (1048576) of an Excel cell reference.
const MAX_COLUMN_LETTERS: usize = 3;
const MAX_ROW_DIGITS: usize = 7;

/// calamine 0.38 overflows on cell references with too many letters or digits and on ranges
/// that end before they start (found by fuzzing: a panic where overflow checks are on); such
/// references are refused before calamine reads them.
fn check_cell_references(package: &mut Package<'_>) -> Result<(), OfficeError> {
    let xml_parts = package
        .part_names()
        .into_iter()
        .filter(|name| name.starts_with("xl/") && name.ends_with(".xml"));
    for part in xml_parts {
        let Some(xml) = package.part(&part)? else {
            continue;
        };
        walk_xml(&part, &xml, |event| {
            let XmlEvent::Start(element) = event else {
                return Ok(());
            };
            let (reference, is_range) = match local_name(element) {
                "c" | "row" => (attribute(element, "r"), false),
                "dimension" | "mergeCell" => (attribute(element, "ref"), true),
                _ => return Ok(()),
            };
            match reference {
                Some(reference) if !is_valid_reference(&reference, is_range) => {
                    Err(OfficeError::Workbook {
                        reason: format!("cell reference {reference:?} in {part} is out of range"),
                    })
                }
                _ => Ok(()),
            }
        })?;
    }
    Ok(())
}

/// `B12`, `12` (a row), or `A1:C9` with the end not before the start.
fn is_valid_reference(reference: &str, is_range: bool) -> bool {
    let cell = |cell: &str| {
        let letters = cell.bytes().take_while(u8::is_ascii_alphabetic).count();
        let digits = &cell[letters..];
        let fits = letters <= MAX_COLUMN_LETTERS
            && digits.len() <= MAX_ROW_DIGITS
            && digits.bytes().all(|byte| byte.is_ascii_digit());
        fits.then(|| {
            let column = cell[..letters].bytes().fold(0u32, |column, letter| {
                column * 26 + u32::from(letter.to_ascii_uppercase() - b'A') + 1
            });
            (digits.parse::<u32>().unwrap_or(0), column)
        })
    };
    let mut parts = reference.split(':');
    match (parts.next().map(cell), parts.next().map(cell), parts.next()) {
        (Some(Some(_)), None, None) => true,
        (Some(Some(start)), Some(Some(end)), None) => {
            is_range && end.0 >= start.0 && end.1 >= start.1
        }
        _ => false,
    }
}

fn read_workbook(bytes: &[u8], include_hidden_sheets: bool) -> Result<String, OfficeError> {
    let workbook_error = |error: calamine::XlsxError| OfficeError::Workbook {
        reason: error.to_string(),
    };
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(workbook_error)?;
    let sheets: Vec<String> = workbook
        .sheets_metadata()
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet)
        .filter(|sheet| include_hidden_sheets || sheet.visible == SheetVisible::Visible)
        .map(|sheet| sheet.name.clone())
        .collect();
    if sheets.len() > MAX_SHEETS {
        return Err(OfficeError::TooMany {
            what: "worksheets",
            limit: MAX_SHEETS,
        });
    }
    let mut blocks = Blocks::default();
    let mut cells_read = 0usize;
    for name in sheets {
        let cells = read_sheet(&mut workbook, &name, &mut cells_read)?;
        blocks.push_heading(1, &name);
        write_rows(&mut blocks, &cells);
    }
    Ok(blocks.into_text())
}

fn too_many_cells() -> OfficeError {
    OfficeError::TooMany {
        what: "cells",
        limit: MAX_CELLS,
    }
}

fn read_sheet(
    workbook: &mut Xlsx<Cursor<&[u8]>>,
    name: &str,
    cells_read: &mut usize,
) -> Result<SheetCells, OfficeError> {
    let workbook_error = |error: calamine::XlsxError| OfficeError::Workbook {
        reason: error.to_string(),
    };
    let mut cells = SheetCells::new();
    {
        let mut reader = workbook
            .worksheet_cells_reader(name)
            .map_err(workbook_error)?;
        while let Some(cell) = reader.next_cell().map_err(workbook_error)? {
            *cells_read += 1;
            if *cells_read > MAX_CELLS {
                return Err(too_many_cells());
            }
            let text = cell_text(cell.get_value());
            if !text.is_empty() {
                let (row, column) = cell.get_position();
                cells.entry(row).or_default().insert(column, text);
            }
        }
    }
    for region in workbook
        .merge_cells_by_sheet_name(name)
        .map_err(workbook_error)?
    {
        let (top, left) = region.start;
        let (bottom, _) = region.end;
        let Some(value) = cells.get(&top).and_then(|row| row.get(&left)).cloned() else {
            continue;
        };
        // Down the first column only: a value merged over rows (a 区分 shared by several rows)
        // belongs to each of them, a title merged across columns is written once.
        let covered = u64::from(bottom.saturating_sub(top));
        *cells_read = cells_read.saturating_add(usize::try_from(covered).unwrap_or(usize::MAX));
        if *cells_read > MAX_CELLS {
            return Err(too_many_cells());
        }
        for row in top.saturating_add(1)..=bottom {
            cells
                .entry(row)
                .or_default()
                .entry(left)
                .or_insert_with(|| value.clone());
        }
    }
    Ok(cells)
}

/// A cell's value as Excel shows it, roughly: numbers without a trailing `.0`, dates as dates.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Empty => String::new(),
        DataRef::String(text) => text.trim().to_owned(),
        DataRef::SharedString(text) => text.trim().to_owned(),
        DataRef::Int(number) => number.to_string(),
        DataRef::Float(number) => format_number(*number),
        DataRef::Bool(true) => "TRUE".to_owned(),
        DataRef::Bool(false) => "FALSE".to_owned(),
        DataRef::DateTime(datetime) if datetime.is_duration() => format_number(datetime.as_f64()),
        DataRef::DateTime(datetime) => {
            let (year, month, day, hour, minute, second, _) = datetime.to_ymd_hms_milli();
            let has_time = hour != 0 || minute != 0 || second != 0;
            let time = if second != 0 {
                format!("{hour:02}:{minute:02}:{second:02}")
            } else {
                format!("{hour:02}:{minute:02}")
            };
            if datetime.as_f64() < 1.0 {
                time
            } else if has_time {
                format!("{year:04}-{month:02}-{day:02} {time}")
            } else {
                format!("{year:04}-{month:02}-{day:02}")
            }
        }
        DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => text.clone(),
        DataRef::Error(error) => error.to_string(),
    }
}

/// Up to 15 significant digits, as Excel shows them (0.1 + 0.2 reads 0.3).
fn format_number(number: f64) -> String {
    if !number.is_finite() {
        return number.to_string();
    }
    if number.fract() == 0.0 && number.abs() < 1e15 {
        return format!("{number:.0}");
    }
    let digits_before_point = number.abs().log10().floor().max(0.0) as usize + 1;
    let decimals = 15usize.saturating_sub(digits_before_point);
    let text = format!("{number:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Writes a sheet's rows. Consecutive rows form a block; the first row of a block with more
/// than one cell (single-cell rows above it are titles) is its header if it reads as one.
fn write_rows(blocks: &mut Blocks, cells: &SheetCells) {
    let mut header: Option<&BTreeMap<u32, String>> = None;
    let mut looking_for_header = true;
    let mut previous_row: Option<u32> = None;
    for (&row, row_cells) in cells {
        if previous_row.is_none_or(|previous| row > previous.saturating_add(1)) {
            header = None;
            looking_for_header = true;
        }
        previous_row = Some(row);
        let values: Vec<String> = row_cells.values().map(|cell| one_line(cell)).collect();
        let line = match header {
            Some(header) => {
                let names: Vec<String> = row_cells
                    .keys()
                    .map(|column| header.get(column).cloned().unwrap_or_default())
                    .collect();
                labelled_row(&names, &values)
            }
            None => values.join(CELL_SEPARATOR),
        };
        blocks.push(&format!("行{}: {line}", u64::from(row) + 1));
        if looking_for_header && values.len() > 1 {
            looking_for_header = false;
            let next_row_follows = cells.contains_key(&row.saturating_add(1));
            header = (next_row_follows && is_header_row(&values)).then_some(row_cells);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_calamine_cannot_read_are_refused() {
        assert!(is_valid_reference("XFD1048576", false));
        assert!(is_valid_reference("A1:C9", true));
        assert!(is_valid_reference("12", false));
        assert!(!is_valid_reference("openxmlformats1", false));
        assert!(!is_valid_reference("A12345678901", false));
        assert!(!is_valid_reference("C9:A1", true));
        assert!(!is_valid_reference("A1:B2", false));
    }

    #[test]
    fn numbers_read_as_excel_shows_them() {
        assert_eq!(format_number(1200.0), "1200");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(-2.5), "-2.5");
        assert_eq!(format_number(1234567.125), "1234567.125");
    }

    #[test]
    fn rows_after_a_header_name_their_columns() {
        let mut cells = SheetCells::new();
        let rows: [(u32, &[&str]); 4] = [
            (0, &["予算の推移"]),
            (1, &["年度", "予算"]),
            (2, &["令和6年度", "1200"]),
            (4, &["合計", "1200"]),
        ];
        for (row, values) in rows {
            for (column, value) in values.iter().enumerate() {
                cells
                    .entry(row)
                    .or_default()
                    .insert(column as u32, value.to_string());
            }
        }
        let mut blocks = Blocks::default();
        write_rows(&mut blocks, &cells);
        assert_eq!(
            blocks.into_text(),
            "行1: 予算の推移\n\n行2: 年度 / 予算\n\n行3: 年度: 令和6年度 / 予算: 1200\n\n行5: 合計 / 1200"
        );
    }
}
