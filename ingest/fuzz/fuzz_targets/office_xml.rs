//! Puts arbitrary bytes, as XML, into a minimal Word, PowerPoint or Excel package (the first
//! byte chooses which part) and reads it: byte-level mutations of a whole ZIP mostly break its
//! checksums, so this is what reaches the XML handling of the loaders.

#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;

const PPTX_RELS: &str = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/></Relationships>"#;
const PRESENTATION: &str = r#"<p:presentation xmlns:p="p" xmlns:r="r"><p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>"#;
const SLIDE: &str = r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>題</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#;
const WORKBOOK: &str = r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="表" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;
const PACKAGE_RELS: &str = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const SHEET: &str = r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>値</t></is></c></row></sheetData></worksheet>"#;

fn package(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in parts {
        if writer.start_file(*name, options).is_err() || writer.write_all(content).is_err() {
            return Vec::new();
        }
    }
    writer
        .finish()
        .map(|cursor| cursor.into_inner())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, xml)) = data.split_first() else {
        return;
    };
    match choice % 7 {
        0 => {
            let _ = hikitsugi_ingest::docx::extract_docx(&package(&[("word/document.xml", xml)]));
        }
        1 => {
            let rels = br#"<Relationships><Relationship Id="s" Type="/styles" Target="styles.xml"/><Relationship Id="n" Type="/numbering" Target="numbering.xml"/><Relationship Id="f" Type="/footnotes" Target="footnotes.xml"/></Relationships>"#;
            let document = br#"<w:document><w:body><w:p><w:pPr><w:pStyle w:val="1"/><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>a</w:t><w:footnoteReference w:id="1"/></w:r></w:p></w:body></w:document>"#;
            let parts: [(&str, &[u8]); 5] = [
                ("word/_rels/document.xml.rels", rels),
                ("word/document.xml", document),
                ("word/styles.xml", xml),
                ("word/numbering.xml", xml),
                ("word/footnotes.xml", xml),
            ];
            let _ = hikitsugi_ingest::docx::extract_docx(&package(&parts));
        }
        2 => {
            let parts: [(&str, &[u8]); 3] = [
                ("ppt/_rels/presentation.xml.rels", PPTX_RELS.as_bytes()),
                ("ppt/presentation.xml", PRESENTATION.as_bytes()),
                ("ppt/slides/slide1.xml", xml),
            ];
            let _ = hikitsugi_ingest::pptx::extract_pptx(&package(&parts));
        }
        3 => {
            let parts: [(&str, &[u8]); 3] = [
                ("ppt/_rels/presentation.xml.rels", PPTX_RELS.as_bytes()),
                ("ppt/presentation.xml", xml),
                ("ppt/slides/slide1.xml", SLIDE.as_bytes()),
            ];
            let _ = hikitsugi_ingest::pptx::extract_pptx(&package(&parts));
        }
        4 => {
            let parts: [(&str, &[u8]); 4] = [
                ("_rels/.rels", PACKAGE_RELS.as_bytes()),
                ("xl/workbook.xml", WORKBOOK.as_bytes()),
                ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
                ("xl/worksheets/sheet1.xml", xml),
            ];
            let _ = hikitsugi_ingest::xlsx::extract_xlsx(&package(&parts), true);
        }
        5 => {
            let parts: [(&str, &[u8]); 5] = [
                ("_rels/.rels", PACKAGE_RELS.as_bytes()),
                ("xl/workbook.xml", WORKBOOK.as_bytes()),
                ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
                ("xl/worksheets/sheet1.xml", SHEET.as_bytes()),
                ("xl/sharedStrings.xml", xml),
            ];
            let _ = hikitsugi_ingest::xlsx::extract_xlsx(&package(&parts), true);
        }
        _ => {
            let parts: [(&str, &[u8]); 4] = [
                ("_rels/.rels", PACKAGE_RELS.as_bytes()),
                ("xl/workbook.xml", xml),
                ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
                ("xl/worksheets/sheet1.xml", SHEET.as_bytes()),
            ];
            let _ = hikitsugi_ingest::xlsx::extract_xlsx(&package(&parts), true);
        }
    }
});
