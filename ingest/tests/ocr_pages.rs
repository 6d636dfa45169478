//! Pages without a text layer, and image files, go through the caller's OCR.

use std::path::Path;
use std::sync::Arc;

use hikitsugi_ingest::{
    ChunkOptions, DocumentMetadata, Format, IngestError, LoadOptions, PageOcr, extract_with,
    parse_document_with,
};

/// Reads every page as `text`, or fails with `text` as the reason.
struct FakeOcr {
    text: &'static str,
    fails: bool,
}

impl PageOcr for FakeOcr {
    fn engine(&self) -> String {
        "fake".to_owned()
    }

    fn pdf_page(&self, _pdf: &[u8], page: u32) -> Result<String, String> {
        assert_eq!(page, 2, "only the page without a text layer is recognised");
        self.result()
    }

    fn image(&self, _image: &[u8], extension: &str) -> Result<String, String> {
        assert_eq!(extension, "png");
        self.result()
    }
}

impl FakeOcr {
    fn result(&self) -> Result<String, String> {
        if self.fails {
            Err(self.text.to_owned())
        } else {
            Ok(self.text.to_owned())
        }
    }
}

fn with_ocr(text: &'static str, fails: bool) -> LoadOptions {
    LoadOptions {
        ocr: Some(Arc::new(FakeOcr { text, fails })),
        ..LoadOptions::default()
    }
}

fn scanned() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pdf/scanned.reportlab-image.pdf");
    std::fs::read(path).expect("the fixture")
}

#[test]
fn a_page_without_text_is_read_by_ocr_and_recorded_as_such() {
    let options = with_ocr("第2回会議の議事録。電子申請の導入を決めた。", false);
    let extraction = extract_with("scan.pdf", Format::Pdf, &scanned(), &options).expect("read");
    assert_eq!(extraction.ocr_pages, vec![2]);
    assert!(extraction.unreadable_pages.is_empty());
    assert!(extraction.pages[0].contains("スキャン資料の送付について"));
    assert_eq!(
        extraction.pages[1],
        "第2回会議の議事録。電子申請の導入を決めた。"
    );

    let metadata = DocumentMetadata {
        title: None,
        owner: "pref-test".to_owned(),
        readers: vec!["pref-test".to_owned()],
        kind: "minutes".to_owned(),
        date: None,
    };
    let document = parse_document_with(
        "scan.pdf",
        Format::Pdf,
        &scanned(),
        metadata,
        &ChunkOptions::default(),
        &options,
    )
    .expect("parsed");
    let marked: Vec<(u32, u32, bool)> = document
        .chunks
        .iter()
        .map(|chunk| (chunk.page_start, chunk.page_end, document.is_ocr(chunk)))
        .collect();
    assert!(
        marked.iter().all(|&(_, end, ocr)| ocr == (end == 2)),
        "{marked:?}"
    );
    assert!(marked.iter().any(|&(_, _, ocr)| ocr), "{marked:?}");
}

#[test]
fn a_failed_or_empty_recognition_reports_the_page_and_keeps_the_rest() {
    for (options, reason) in [
        (
            with_ocr("tesseract timed out", true),
            "no text layer (scanned image?); OCR failed: tesseract timed out",
        ),
        (
            with_ocr("  \n", false),
            "no text layer (scanned image?); OCR found no text on it",
        ),
        (LoadOptions::default(), "no text layer (scanned image?)"),
    ] {
        let extraction = extract_with("scan.pdf", Format::Pdf, &scanned(), &options).expect("read");
        assert!(extraction.ocr_pages.is_empty());
        assert_eq!(extraction.unreadable_pages.len(), 1);
        assert_eq!(extraction.unreadable_pages[0].page, 2);
        assert_eq!(extraction.unreadable_pages[0].reason, reason);
        assert!(extraction.pages[0].contains("スキャン資料の送付について"));
    }
}

#[test]
fn image_files_need_ocr() {
    let extraction = extract_with(
        "scan.png",
        Format::Image,
        b"\x89PNG",
        &with_ocr("申請書の写し", false),
    )
    .expect("read");
    assert_eq!(
        (extraction.pages.as_slice(), extraction.ocr_pages.as_slice()),
        (["申請書の写し".to_owned()].as_slice(), [1].as_slice())
    );
    assert_eq!(Format::from_path("写し.JPG").expect("known"), Format::Image);
    let refused = extract_with(
        "scan.png",
        Format::Image,
        b"\x89PNG",
        &LoadOptions::default(),
    )
    .expect_err("no OCR");
    assert!(
        matches!(refused, IngestError::OcrUnavailable { .. }),
        "{refused}"
    );
    let failed = extract_with(
        "scan.png",
        Format::Image,
        b"\x89PNG",
        &with_ocr("unreadable image", true),
    )
    .expect_err("failed");
    assert!(failed.to_string().contains("unreadable image"), "{failed}");
}
