//! DOCX, XLSX, PPTX and HTML: fidelity against the source text on files made by real
//! producers (`fixtures/office/make_fixtures.py`), headings and locations, hostile files.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use hikitsugi_ingest::{
    ChunkOptions, DocumentMetadata, Format, IngestError, LoadOptions, OfficeError, ParsedDocument,
    extract, extract_with, parse_document,
};

mod fidelity;

use fidelity::score;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/office");
const MIN_FIDELITY: f64 = 0.98;

fn fixture(name: &str) -> (String, Vec<u8>) {
    let path = Path::new(FIXTURES).join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (name.to_owned(), bytes)
}

fn parsed(name: &str) -> ParsedDocument {
    parsed_in_chunks_of(name, ChunkOptions::default())
}

/// Small chunks: neighbouring sections are not packed together, so a chunk's heading path is
/// its section's whole path.
fn parsed_in_small_chunks(name: &str) -> ParsedDocument {
    parsed_in_chunks_of(
        name,
        ChunkOptions {
            max_chars: 80,
            overlap_chars: 20,
        },
    )
}

fn parsed_in_chunks_of(name: &str, options: ChunkOptions) -> ParsedDocument {
    let (name, bytes) = fixture(name);
    parse_document(
        &name,
        &bytes,
        DocumentMetadata {
            title: None,
            owner: "pref-hyogo".to_owned(),
            readers: vec!["pref-hyogo".to_owned()],
            kind: "report".to_owned(),
            date: None,
        },
        &options,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The extracted text as a reader sees it: Markdown heading marks removed.
fn plain(text: &str) -> String {
    text.split(['\n', '\u{c}'])
        .map(|line| {
            let hashes = line.chars().take_while(|&ch| ch == '#').count();
            if hashes > 0 && line[hashes..].starts_with(' ') {
                &line[hashes + 1..]
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fixtures_with_expected_text() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .expect("fixtures folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| {
                ["docx", "xlsx", "pptx", "html"].contains(&&*ext.to_string_lossy())
            })
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_reads_its_source_text() {
    let mut failures = Vec::new();
    let files = fixtures_with_expected_text();
    assert!(files.len() >= 10, "only {} fixtures", files.len());
    for path in files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let expected_path = path.with_extension("expected.txt");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let bytes = std::fs::read(&path).expect("read fixture");
        let extraction = extract(&name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (fidelity, distance, length) = score(&plain(&extraction.text()), &expected);
        println!("{name}: fidelity {fidelity:.4} (distance {distance} over {length} chars)");
        if fidelity < MIN_FIDELITY {
            failures.push(format!("{name}: {fidelity:.4}"));
        }
        if extraction.format == Format::Pptx {
            let expected_slides = expected.split('\u{c}').count();
            assert_eq!(
                extraction.pages.len(),
                expected_slides,
                "{name}: slide count"
            );
        }
    }
    assert!(failures.is_empty(), "below {MIN_FIDELITY}: {failures:?}");
}

fn chunk_containing<'document>(
    document: &'document ParsedDocument,
    text: &str,
) -> &'document hikitsugi_ingest::Chunk {
    document
        .chunks
        .iter()
        .find(|chunk| chunk.text.contains(text))
        .unwrap_or_else(|| panic!("{}: no chunk contains {text:?}", document.id))
}

/// A chunk that starts with a heading has the path its parts share; one inside the section
/// has the section's whole path.
fn assert_some_chunk_has_path(document: &ParsedDocument, text: &str, path: &[&str]) {
    let paths: Vec<&Vec<String>> = document
        .chunks
        .iter()
        .filter(|chunk| chunk.text.contains(text))
        .map(|chunk| &chunk.heading_path)
        .collect();
    assert!(
        paths.iter().any(|found| found.as_slice() == path),
        "{}: chunks with {text:?} have paths {paths:?}",
        document.id
    );
}

#[test]
fn word_headings_come_from_styles_by_outline_level_or_by_name() {
    for name in [
        "report.python-docx.docx",
        "report.python-docx-ja.docx",
        "report.libreoffice.docx",
    ] {
        let document = parsed_in_small_chunks(name);
        assert_some_chunk_has_path(
            &document,
            "圏域市町デジタル部門担当者会議",
            &[
                "4 市町DX支援体制の構築",
                "(1)「DX推進リエゾン」の設置",
                "1 令和6年度の取組の総括",
                "〔取組実績〕",
            ],
        );
        assert!(
            !document.text.contains("ヘッダー"),
            "{name}: page header read"
        );
        assert!(
            !document.text.contains("フッター"),
            "{name}: page footer read"
        );
        assert!(
            document.text.contains("1. DXにより目指す姿"),
            "{name}: numbered list item"
        );
        assert!(
            document.text.contains("・「書かない窓口」"),
            "{name}: bulleted list item"
        );
        let row = chunk_containing(&document, "区分: 取組実績 / 内容: 市町デジタル部門の課題");
        assert_eq!(
            row.heading_path.last().map(String::as_str),
            Some("取組の一覧")
        );
    }
}

#[test]
fn word_footnotes_close_the_section_that_refers_to_them() {
    let document = parsed("report.libreoffice.docx");
    let reference = document.text.find("(注1)").expect("footnote reference");
    let note = document
        .text
        .find("(注1) デジタル戦略課職員が担当する。")
        .expect("footnote text");
    assert!(reference < note);
    let next_heading = document.text[reference..]
        .find("\n#")
        .map(|offset| reference + offset)
        .unwrap_or(document.text.len());
    assert!(
        note < next_heading,
        "the footnote is written before the next heading"
    );
}

#[test]
fn word_documents_have_no_pages() {
    let document = parsed("report.python-docx.docx");
    assert_eq!(document.format, Format::Docx);
    assert!(!document.format.has_pages());
    assert_eq!(document.page_count, 1);
    assert_eq!(
        document.title,
        "市町DX支援に係る令和6年度の取組の総括と令和7年度の取組の方向性"
    );
}

/// A tab in a Word paragraph separates what it aligns (「振興局<tab>内容」), as in a text file: it
/// is not a space, which would vanish between Japanese and Latin text.
#[test]
fn word_tabs_stay_tabs() {
    let document = r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>日高振興局</w:t><w:tab/><w:t>DX全般の相談</w:t></w:r></w:p></w:body></w:document>"#;
    let bytes = zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", document.as_bytes()),
    ]);
    let text = extract("tabs.docx", &bytes)
        .expect("a readable document")
        .text();
    assert_eq!(text.trim(), "日高振興局\tDX全般の相談");
}

#[test]
fn workbook_rows_name_their_columns_and_row_numbers() {
    for name in ["budget.openpyxl.xlsx", "budget.libreoffice.xlsx"] {
        let document = parsed(name);
        let chunk = chunk_containing(&document, "行3: 区分: 1令和6年度の取組の総括 / 取組:");
        assert_eq!(chunk.heading_path, vec!["取組一覧"], "{name}");
        assert!(
            chunk
                .text
                .contains("開始日: 2025-04-01 / 予算(千円): 1000 / 人員: 1"),
            "{name}: dates and numbers as shown"
        );
        // The merged 区分 cell is repeated on every row it covers.
        assert!(
            document
                .text
                .contains("行4: 区分: 1令和6年度の取組の総括 / 取組:"),
            "{name}"
        );
        let notes = chunk_containing(&document, "行2: 「書かない窓口」");
        assert_eq!(notes.heading_path, vec!["備考"]);
        assert!(
            !document.text.contains("非表示シート"),
            "{name}: hidden sheet read"
        );
        assert!(!document.format.has_pages());
    }
    let cached = parsed("budget.libreoffice.xlsx");
    assert!(
        cached.text.contains("行16: 合計 / 28500 / 30"),
        "cached formula values"
    );
}

#[test]
fn hidden_sheets_are_read_when_asked() {
    let (name, bytes) = fixture("budget.openpyxl.xlsx");
    let options = LoadOptions {
        include_hidden_sheets: true,
        ..LoadOptions::default()
    };
    let extraction = extract_with(&name, Format::Xlsx, &bytes, &options).expect("workbook");
    assert!(
        extraction
            .text()
            .contains("# 作業用\n\n行1: 非表示シートの作業データ")
    );
}

#[test]
fn slides_are_pages_in_presentation_order_with_titles_and_notes() {
    for name in ["slides.python-pptx.pptx", "slides.libreoffice.pptx"] {
        let document = parsed_in_small_chunks(name);
        assert!(document.format.has_pages());
        assert_eq!(document.page_count, 5, "{name}");
        // slide6.xml is shown second.
        let table = chunk_containing(&document, "区分: 取組実績 / 内容:");
        assert_eq!((table.page_start, table.page_end), (2, 2), "{name}");
        assert_eq!(table.heading_path, vec!["取組の一覧"], "{name}");
        let body = chunk_containing(&document, "相談窓口として一定の成果");
        assert_eq!(body.page_start, 1, "{name}");
        assert_eq!(body.heading_path, vec!["(1)「DX推進リエゾン」の設置"]);
        let pages: Vec<&str> = document.text.split('\u{c}').collect();
        assert!(
            pages[0].contains("ノート: 市町の声を聞き取り、次年度の体制に反映する。"),
            "{name}: notes"
        );
        let top = pages[2]
            .find("県と市町が連携したDX推進体制")
            .expect("top box");
        let bottom = pages[2].find("(出所)").expect("bottom box");
        assert!(top < bottom, "{name}: shapes top to bottom");
        let left = pages[3].find("地域リエゾン").expect("group, left");
        let right = pages[3].find("分野リエゾン").expect("group, right");
        assert!(left < right, "{name}: group shapes left to right");
    }
}

#[test]
fn html_pages_lose_navigation_and_scripts_and_keep_structure() {
    let utf8 = parsed_in_small_chunks("report.utf8.html");
    for name in ["report.shift_jis.html", "report.shift_jis-undeclared.html"] {
        assert_eq!(
            parsed_in_small_chunks(name).text,
            utf8.text,
            "{name} reads as the UTF-8 page"
        );
    }
    for dropped in [
        "ホーム",
        "スクリプト",
        "JavaScript",
        "ヘッダー",
        "フッター",
        "font-family",
    ] {
        assert!(!utf8.text.contains(dropped), "{dropped:?} kept");
    }
    assert!(!utf8.format.has_pages());
    assert_some_chunk_has_path(
        &utf8,
        "圏域市町デジタル部門担当者会議",
        &[
            "市町DX支援に係る令和6年度の取組の総括と令和7年度の取組の方向性",
            "4 市町DX支援体制の構築",
            "(1)「DX推進リエゾン」の設置",
            "1 令和6年度の取組の総括",
            "〔取組実績〕",
        ],
    );
    assert!(utf8.text.contains("1. DXにより目指す姿"));
    assert!(
        utf8.text
            .contains("区分: 取組実績 / 内容: 市町デジタル部門の課題")
    );
}

#[test]
fn formats_come_from_extensions_and_serialise_in_lowercase() {
    for (path, format, pages) in [
        ("a.docx", Format::Docx, false),
        ("b.XLSX", Format::Xlsx, false),
        ("c.pptx", Format::Pptx, true),
        ("d.html", Format::Html, false),
        ("e.htm", Format::Html, false),
        ("f.pdf", Format::Pdf, true),
    ] {
        let found = Format::from_path(path).expect(path);
        assert_eq!(found, format);
        assert_eq!(found.has_pages(), pages, "{path}");
    }
    assert_eq!(serde_json::to_string(&Format::Pptx).unwrap(), "\"pptx\"");
    assert!(Format::from_path("old.doc").is_err());
}

// --- hostile files ---------------------------------------------------------------------------

fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, content) in parts {
        writer.start_file(*name, options).expect("start entry");
        writer.write_all(content).expect("write entry");
    }
    writer.finish().expect("finish zip").into_inner()
}

const CONTENT_TYPES: &[u8] = br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;

fn office_error(name: &str, bytes: &[u8]) -> OfficeError {
    match extract(name, bytes) {
        Err(IngestError::Office { source, .. }) => source,
        Err(other) => panic!("{name}: unexpected error {other}"),
        Ok(_) => panic!("{name}: read a hostile file"),
    }
}

#[test]
fn a_zip_bomb_is_refused() {
    let zeros = vec![0u8; 65 * 1024 * 1024];
    let bomb = zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", &zeros),
    ]);
    assert!(bomb.len() < 1024 * 1024);
    let error = office_error("bomb.docx", &bomb);
    assert!(matches!(error, OfficeError::PartTooLarge { .. }), "{error}");
    let error = office_error("bomb.xlsx", &bomb);
    assert!(matches!(error, OfficeError::PartTooLarge { .. }), "{error}");
}

/// A part whose declared sizes (local header and central directory) are small but which
/// unpacks to more than the limit.
#[test]
fn a_zip_bomb_with_false_sizes_is_refused() {
    let zeros = vec![b' '; 65 * 1024 * 1024];
    let mut bomb = zip_of(&[("word/document.xml", &zeros)]);
    let declared = (65u32 * 1024 * 1024).to_le_bytes();
    let fake = 100u32.to_le_bytes();
    let mut patched = 0;
    for index in 0..bomb.len().saturating_sub(4) {
        if bomb[index..index + 4] == declared {
            bomb[index..index + 4].copy_from_slice(&fake);
            patched += 1;
        }
    }
    assert!(patched >= 2, "sizes patched: {patched}");
    let error = office_error("liar.docx", &bomb);
    assert!(
        matches!(
            error,
            OfficeError::PartTooLarge { .. } | OfficeError::Unreadable { .. }
        ),
        "{error}"
    );
}

#[test]
fn too_many_entries_are_refused() {
    let names: Vec<String> = (0..10_001).map(|index| format!("f{index}")).collect();
    let parts: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), &b""[..])).collect();
    let error = office_error("many.pptx", &zip_of(&parts));
    assert!(
        matches!(error, OfficeError::TooManyEntries { .. }),
        "{error}"
    );
}

#[test]
fn deep_or_huge_xml_is_refused() {
    let deep = format!("<w:document>{}", "<w:p>".repeat(10_000));
    let error = office_error(
        "deep.docx",
        &zip_of(&[("word/document.xml", deep.as_bytes())]),
    );
    assert!(matches!(error, OfficeError::TooDeep { .. }), "{error}");
    let wide = format!(
        "<w:document><w:body>{}</w:body></w:document>",
        "<w:p/>".repeat(4_000_001)
    );
    let error = office_error(
        "wide.docx",
        &zip_of(&[("word/document.xml", wide.as_bytes())]),
    );
    assert!(
        matches!(error, OfficeError::TooManyElements { .. }),
        "{error}"
    );
}

#[test]
fn too_many_slides_are_refused() {
    let ids: String = (0..2_001)
        .map(|index| format!(r#"<p:sldId id="{}" r:id="rId{index}"/>"#, 256 + index))
        .collect();
    let presentation = format!("<p:presentation><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>");
    let error = office_error(
        "slides.pptx",
        &zip_of(&[("ppt/presentation.xml", presentation.as_bytes())]),
    );
    assert!(
        matches!(error, OfficeError::TooMany { what: "slides", .. }),
        "{error}"
    );
}

#[test]
fn merged_cells_beyond_the_cell_limit_are_refused() {
    let (_, bytes) = fixture("budget.openpyxl.xlsx");
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).expect("fixture zip");
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).expect("entry");
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("read entry");
        let name = entry.name().expect("entry name").into_owned();
        if name == "xl/worksheets/sheet1.xml" {
            let text = String::from_utf8(content).expect("utf-8");
            let merges = r#"<mergeCells count="3"><mergeCell ref="B3:B1048576"/><mergeCell ref="C3:C1048576"/><mergeCell ref="D3:D1048576"/></mergeCells>"#;
            let start = text.find("<mergeCells").expect("merge cells");
            let end = text.find("</mergeCells>").expect("merge cells end") + "</mergeCells>".len();
            content = format!("{}{merges}{}", &text[..start], &text[end..]).into_bytes();
        }
        parts.push((name, content));
    }
    let borrowed: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_slice()))
        .collect();
    let error = office_error("merged.xlsx", &zip_of(&borrowed));
    assert!(
        matches!(error, OfficeError::TooMany { what: "cells", .. }),
        "{error}"
    );
}

#[test]
fn encrypted_and_non_zip_files_say_what_to_do() {
    let compound = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
    let error = office_error("locked.docx", &compound);
    assert!(error.to_string().contains("remove the password"), "{error}");
    let error = office_error("text.xlsx", "ただのテキスト".as_bytes());
    assert!(matches!(error, OfficeError::NotZip { .. }), "{error}");
    let error = office_error("empty.pptx", &zip_of(&[("a.txt", b"a")]));
    assert!(matches!(error, OfficeError::MissingPart { .. }), "{error}");
}

/// Every prefix of every fixture (a truncated upload) gives text or an error, never a panic.
#[test]
fn truncated_fixtures_never_panic() {
    for path in fixtures_with_expected_text() {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("read fixture");
        let step = (bytes.len() / 40).max(1);
        for length in (0..bytes.len()).step_by(step) {
            let _ = extract(&name, &bytes[..length]);
        }
        let mut flipped = bytes.clone();
        for index in (0..flipped.len()).step_by(997) {
            flipped[index] ^= 0x5A;
        }
        let _ = extract(&name, &flipped);
    }
}

/// Inputs the fuzzers found (see `fuzz/README.md`); a panic inside calamine is contained and
/// reported as an error.
#[test]
fn regression_inputs_never_panic() {
    let folder = Path::new(FIXTURES).join("regressions");
    let entries = std::fs::read_dir(&folder).expect("regressions folder");
    for entry in entries {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("read regression input");
        let _ = extract(&name, &bytes);
    }
}

/// What the producers above do not write: paragraph outline levels, a style known only by its
/// name through `basedOn`, numbering formats, merged table cells, a header row marked as such,
/// deleted revisions, field codes and text boxes.
#[test]
fn word_details_from_hand_written_parts() {
    let relationships = br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/numbering" Target="numbering.xml"/>
</Relationships>"#;
    let styles = r#"<w:styles xmlns:w="w">
<w:style w:type="paragraph" w:styleId="1"><w:name w:val="見出し 1"/></w:style>
<w:style w:type="paragraph" w:styleId="a5"><w:name w:val="章見出し"/><w:basedOn w:val="1"/></w:style>
</w:styles>"#;
    let numbering = r#"<w:numbering xmlns:w="w">
<w:abstractNum w:abstractNumId="0">
 <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="(%1)"/></w:lvl>
 <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimalEnclosedCircle"/><w:lvlText w:val="%2"/></w:lvl>
</w:abstractNum>
<w:num w:numId="3"><w:abstractNumId w:val="0"/></w:num>
</w:numbering>"#;
    let document = r#"<w:document xmlns:w="w"><w:body>
<w:p><w:pPr><w:pStyle w:val="a5"/></w:pPr><w:r><w:t>第1章 総則</w:t></w:r></w:p>
<w:p><w:pPr><w:outlineLvl w:val="1"/></w:pPr><w:r><w:t>目的</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">本計画は</w:t></w:r><w:del><w:r><w:delText>削除された</w:delText></w:r></w:del><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>PAGE</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>地域DX</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t>の方針を定める。</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="3"/></w:numPr></w:pPr><w:r><w:t>体制</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="1"/><w:numId w:val="3"/></w:numPr></w:pPr><w:r><w:t>県の役割</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="1"/><w:numId w:val="3"/></w:numPr></w:pPr><w:r><w:t>市町の役割</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="3"/></w:numPr></w:pPr><w:r><w:t>予算</w:t></w:r></w:p>
<w:tbl>
 <w:tr><w:trPr><w:tblHeader/></w:trPr><w:tc><w:p><w:r><w:t>区分</w:t></w:r></w:p></w:tc><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>金額</w:t></w:r></w:p></w:tc></w:tr>
 <w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>人件費</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>100</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>120</w:t></w:r></w:p></w:tc></w:tr>
 <w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc><w:tc><w:p><w:r><w:t>200</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>220</w:t></w:r></w:p></w:tc></w:tr>
</w:tbl>
<w:p><w:r><w:t>本文</w:t></w:r><w:r><w:drawing><wps:txbx xmlns:wps="wps"><w:txbxContent><w:p><w:r><w:t>図の説明</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></w:r></w:p>
<w:sectPr><w:headerReference w:type="default" r:id="rId9" xmlns:r="r"/></w:sectPr>
</w:body></w:document>"#;
    let bytes = zip_of(&[
        ("word/_rels/document.xml.rels", relationships),
        ("word/styles.xml", styles.as_bytes()),
        ("word/numbering.xml", numbering.as_bytes()),
        ("word/document.xml", document.as_bytes()),
    ]);
    let text = extract("plan.docx", &bytes).expect("docx").text();
    assert_eq!(
        text,
        "# 第1章 総則\n\n## 目的\n\n本計画は地域DXの方針を定める。\n\n(1) 体制\n\n① 県の役割\n\n② 市町の役割\n\n(2) 予算\n\n区分: 人件費 / 金額: 100 / 金額: 120\n\n区分: 人件費 / 金額: 200 / 金額: 220\n\n図の説明\n\n本文"
    );
}
