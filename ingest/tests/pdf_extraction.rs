//! PDF extraction: accuracy against known source texts, page problems, robustness.
//!
//! Accuracy score: the fidelity metric of `shared/corpus/README.md` (see `fidelity/mod.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use hikitsugi_ingest::pdf::{PageProblem, PdfError, PdfPage, extract_pdf};
use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, Stream, StringFormat, dictionary};
use proptest::prelude::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pdf");
const MIN_SCORE: f64 = 0.99;

mod fidelity;

use fidelity::score;

fn joined(pages: &[PdfPage]) -> String {
    pages
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn pdfs_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    files.sort();
    files
}

/// The part of a file name before its first dot: `004_x.chromium.pdf` → `004_x`.
fn stem(path: &Path) -> String {
    let name = path.file_name().expect("file name").to_string_lossy();
    name.split('.').next().unwrap_or_default().to_string()
}

/// Extracts each PDF that has a source text beside it, prints its score, and checks them.
fn check_accuracy(pdfs: &[PathBuf], text_dir: &Path) -> usize {
    let mut checked = 0;
    let mut failures = Vec::new();
    let (mut pages_total, mut seconds) = (0usize, 0f64);
    for pdf in pdfs {
        let text_path = text_dir.join(format!("{}.txt", stem(pdf)));
        let Ok(expected) = std::fs::read_to_string(&text_path) else {
            continue;
        };
        let bytes = std::fs::read(pdf).expect("read pdf");
        let started = Instant::now();
        let pages = extract_pdf(&bytes).unwrap_or_else(|e| panic!("{}: {e}", pdf.display()));
        seconds += started.elapsed().as_secs_f64();
        pages_total += pages.len();
        let problems: Vec<String> = pages
            .iter()
            .filter_map(|p| {
                p.problem
                    .as_ref()
                    .map(|problem| format!("p{}: {problem}", p.number))
            })
            .collect();
        let (s, distance, length) = score(&joined(&pages), &expected);
        let name = pdf.file_name().expect("file name").to_string_lossy();
        println!(
            "{name}: score {s:.4} (distance {distance} over {length} chars, {} pages)",
            pages.len()
        );
        if s < MIN_SCORE || !problems.is_empty() {
            failures.push(format!("{name}: score {s:.4}, problems {problems:?}"));
        }
        checked += 1;
    }
    println!(
        "{pages_total} pages in {seconds:.3} s: {:.0} pages/s",
        pages_total as f64 / seconds.max(1e-9)
    );
    assert!(failures.is_empty(), "below {MIN_SCORE}: {failures:#?}");
    checked
}

#[test]
fn corpus_pdfs_match_their_source_texts() {
    let corpus = Path::new(CORPUS);
    let checked = check_accuracy(&pdfs_in(&corpus.join("pdf")), &corpus.join("text"));
    assert!(checked >= 8, "only {checked} corpus PDFs found");
}

#[test]
fn fixture_pdfs_match_their_source_texts() {
    let fixtures = Path::new(FIXTURES);
    let checked = check_accuracy(&pdfs_in(fixtures), fixtures);
    assert!(
        checked >= 8,
        "only {checked} fixture PDFs with source texts found"
    );
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn multi_column_and_vertical_pages_start_with_their_title() {
    for (stem, title) in [
        ("ja_columns", "地域社会DX事例集 本事例集の位置づけ"),
        ("ja_tategaki", "地域社会DXをめぐる課題"),
        ("ja_dan", "地域DXの推進体制"),
    ] {
        for producer in ["chromium", "libreoffice"] {
            let name = format!("{stem}.{producer}.pdf");
            let pages = extract_pdf(&fixture(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let first = pages[0].text.lines().next().unwrap_or_default();
            assert_eq!(first.replace(' ', ""), title.replace(' ', ""), "{name}");
        }
    }
}

#[test]
fn image_only_page_has_no_text_and_costs_only_that_page() {
    let pages = extract_pdf(&fixture("scanned.reportlab-image.pdf")).expect("opens");
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].problem, None);
    assert!(
        pages[0].text.contains("スキャン資料の送付について"),
        "{:?}",
        pages[0].text
    );
    assert_eq!(pages[1].problem, Some(PageProblem::NoText));
    assert_eq!(pages[1].text, "");
    assert_eq!(
        PageProblem::NoText.to_string(),
        "no text layer (scanned image?)"
    );
}

#[test]
fn encrypted_pdfs() {
    for name in [
        "ja_notes.encrypted-rc4.pdf",
        "ja_notes.encrypted-aes256.pdf",
    ] {
        let pages = extract_pdf(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(joined(&pages).contains("窓口業務"), "{name}");
    }
    let locked = extract_pdf(&fixture("locked.encrypted-password.pdf"));
    assert!(matches!(locked, Err(PdfError::Encrypted)), "{locked:?}");
}

#[test]
fn identity_h_without_to_unicode_is_unknown_encoding() {
    let mut doc = Document::load_mem(&fixture("ja_report.chromium.pdf")).expect("fixture loads");
    for object in doc.objects.values_mut() {
        if let Ok(dict) = object.as_dict_mut()
            && dict.has_type(b"Font")
        {
            dict.remove(b"ToUnicode");
        }
    }
    let pages = extract_pdf(&save(&mut doc)).expect("opens");
    for page in &pages {
        assert!(
            matches!(&page.problem, Some(PageProblem::UnknownEncoding { font }) if font.contains("IPAexGothic")),
            "page {}: {:?}",
            page.number,
            page.problem
        );
        assert_eq!(page.text, "");
    }
}

#[test]
fn identity_h_font_drawing_only_blank_glyphs_is_not_unknown() {
    let mut doc = Document::load_mem(&fixture("ja_report.chromium.pdf")).expect("fixture loads");
    let page_id = *doc.get_pages().get(&1).expect("page 1");
    let fonts = doc.get_page_fonts(page_id).expect("page fonts");
    let (name, font) = fonts
        .iter()
        .find(|(_, font)| {
            font.get(b"BaseFont")
                .and_then(Object::as_name)
                .is_ok_and(|n| n.ends_with(b"IPAexGothic"))
        })
        .expect("an IPAexGothic font on page 1");
    let cmap_id = font
        .get(b"ToUnicode")
        .and_then(Object::as_reference)
        .expect("ToUnicode");
    let cmap = doc
        .get_object(cmap_id)
        .and_then(Object::as_stream)
        .expect("stream")
        .decompressed_content()
        .expect("cmap");
    let cmap = String::from_utf8_lossy(&cmap);
    let space = cmap
        .lines()
        .find_map(|line| {
            line.strip_suffix(" <0020>")
                .map(|code| code.trim_matches(['<', '>']).to_string())
        })
        .expect("a space glyph in the ToUnicode map");
    let name = name.clone();
    let content = format!(
        "BT /{} 12 Tf 72 700 Td <{space}{space}> Tj ET",
        String::from_utf8_lossy(&name)
    );
    let content_id = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
    for object in doc.objects.values_mut() {
        if let Ok(dict) = object.as_dict_mut()
            && dict.has_type(b"Font")
        {
            dict.remove(b"ToUnicode");
        }
    }
    doc.get_dictionary_mut(page_id)
        .expect("page")
        .set("Contents", content_id);
    let pages = extract_pdf(&save(&mut doc)).expect("opens");
    assert_eq!(pages[0].problem, Some(PageProblem::NoText));
}

fn save(doc: &mut Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save");
    bytes
}

/// A one-page PDF whose font `/F1` is `font`, with `to_unicode` as its ToUnicode CMap.
fn one_page_pdf(mut font: Dictionary, to_unicode: Option<String>, content: &[u8]) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    if let Some(cmap) = to_unicode {
        let cmap_id = doc.add_object(Stream::new(Dictionary::new(), cmap.into_bytes()));
        font.set("ToUnicode", cmap_id);
    }
    let font_id = doc.add_object(font);
    let content_id = doc.add_object(Stream::new(Dictionary::new(), content.to_vec()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    save(&mut doc)
}

/// An Identity-H Type0 font.
fn identity_font() -> Dictionary {
    dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => "TestGothic",
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![Object::Dictionary(dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => "TestGothic",
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "DW" => 1000,
        })],
    }
}

/// A ToUnicode CMap of two-byte `bfchar` entries.
fn to_unicode(bfchar: &[(&str, &str)]) -> Option<String> {
    let entries: String = bfchar
        .iter()
        .map(|(code, text)| format!("<{code}> <{text}>\n"))
        .collect();
    Some(format!(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
         {} beginbfchar\n{entries}endbfchar\nendcmap end end\n",
        bfchar.len()
    ))
}

fn show_codes(codes: &str) -> Vec<u8> {
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new(
                "Tj",
                vec![Object::String(hex(codes), StringFormat::Hexadecimal)],
            ),
            Operation::new("ET", vec![]),
        ],
    };
    content.encode().expect("encode content")
}

fn hex(codes: &str) -> Vec<u8> {
    (0..codes.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&codes[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn radicals_become_unified_ideographs() {
    let cmap = to_unicode(&[("0001", "2EA0"), ("0002", "2FB0"), ("0003", "4E3B")]);
    let pages = extract_pdf(&one_page_pdf(
        identity_font(),
        cmap,
        &show_codes("000300010002"),
    ))
    .expect("opens");
    assert_eq!(pages[0].problem, None);
    assert_eq!(pages[0].text, "主民革");
}

#[test]
fn identity_font_without_map_in_constructed_pdf() {
    let pages = extract_pdf(&one_page_pdf(
        identity_font(),
        None,
        &show_codes("00030004"),
    ))
    .expect("opens");
    assert_eq!(
        pages[0].problem,
        Some(PageProblem::UnknownEncoding {
            font: "TestGothic".to_string()
        })
    );
    assert_eq!(pages[0].text, "");
}

#[test]
fn private_use_text_is_garbled() {
    let cmap = to_unicode(&[("0001", "E001"), ("0002", "E002"), ("0003", "5730")]);
    let pages = extract_pdf(&one_page_pdf(
        identity_font(),
        cmap,
        &show_codes("0001000200030001"),
    ))
    .expect("opens");
    assert!(
        matches!(pages[0].problem, Some(PageProblem::Garbled { .. })),
        "{:?}",
        pages[0].problem
    );
    assert_eq!(pages[0].text, "");
}

#[test]
fn cid_residue_is_garbled() {
    let font = dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" };
    let content = b"BT /F1 12 Tf 72 700 Td ((cid:12)(cid:34) residue) Tj ET";
    let pages = extract_pdf(&one_page_pdf(font, None, content)).expect("opens");
    assert!(
        matches!(pages[0].problem, Some(PageProblem::Garbled { .. })),
        "{:?}",
        pages[0].problem
    );
}

#[test]
fn unparsable_content_stream_fails_that_page() {
    let font = dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" };
    // lopdf stops quietly at most syntax errors; a broken inline image is a hard error.
    let content = b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET BI /W 4 /H 4 /BPC 8 /CS /G garbage";
    let pages = extract_pdf(&one_page_pdf(font, None, content)).expect("opens");
    assert!(
        matches!(pages[0].problem, Some(PageProblem::Failed { .. })),
        "{:?}",
        pages[0].problem
    );
    assert_eq!(pages[0].text, "");
}

#[test]
fn simple_font_encodings_and_spacing() {
    let font = dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => dictionary! {
            "Type" => "Encoding",
            "BaseEncoding" => "WinAnsiEncoding",
            "Differences" => vec![1.into(), "uni3042".into(), "eacute".into(), "f_i".into()],
        },
    };
    // "ab" then a gap of 0.7 em before "\x01\x02\x03": a space goes there.
    let content = b"BT /F1 10 Tf 72 700 Td (ab) Tj 18 0 Td (\\001\\002\\003 caf\\351) Tj 0 -20 Td [(ne) -300 (xt)] TJ ET";
    let pages = extract_pdf(&one_page_pdf(font, None, content)).expect("opens");
    assert_eq!(pages[0].problem, None);
    assert_eq!(pages[0].text, "ab あéfi café\nne xt");
}

#[test]
fn form_xobjects_are_followed_and_cycles_stop() {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let form_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    // The form draws text and then itself: the cycle must be cut, not followed.
    let form = Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Resources" => dictionary! {
                "Font" => dictionary! { "F1" => font_id },
                "XObject" => dictionary! { "X1" => form_id },
            },
        },
        b"BT /F1 12 Tf 72 700 Td (Form text) Tj ET /X1 Do".to_vec(),
    );
    doc.objects.insert(form_id, Object::Stream(form));
    let content = b"/X1 Do q 1 0 0 1 0 -100 cm /X1 Do Q".to_vec();
    let content_id = doc.add_object(Stream::new(Dictionary::new(), content));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        "Resources" => dictionary! { "XObject" => dictionary! { "X1" => form_id } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let pages = extract_pdf(&save(&mut doc)).expect("opens");
    assert_eq!(pages[0].problem, None);
    assert_eq!(pages[0].text, "Form text\nForm text");
}

#[test]
fn not_a_pdf_is_malformed() {
    assert!(matches!(
        extract_pdf(b"hello"),
        Err(PdfError::Malformed { .. })
    ));
    assert!(extract_pdf(b"").is_err());
}

/// Hostile inputs (cycles, deep nesting, absurd numbers) and inputs the fuzzer found:
/// each must give pages or an error, quickly.
#[test]
fn regression_inputs_neither_panic_nor_hang() {
    let dir = Path::new(FIXTURES).join("regressions");
    let inputs = pdfs_in(&dir);
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    for path in inputs {
        let bytes = std::fs::read(&path).expect("read regression input");
        let started = Instant::now();
        let result = extract_pdf(&bytes);
        let elapsed = started.elapsed();
        println!("{}: {elapsed:?}: {result:?}", path.display());
        assert!(elapsed.as_secs() < 10, "{}: {elapsed:?}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = extract_pdf(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_header_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n".to_vec();
        pdf.extend_from_slice(&bytes);
        let _ = extract_pdf(&pdf);
    }

    #[test]
    fn mutated_corpus_pdf_never_panics(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..24),
        cut in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let mut pdf = std::fs::read(Path::new(CORPUS).join("pdf/004_8f744ed686420421.reportlab-cid.pdf"))
            .expect("corpus PDF");
        for (at, byte) in edits {
            let i = at.index(pdf.len());
            pdf[i] = byte;
        }
        if let Some(cut) = cut {
            pdf.truncate(cut.index(pdf.len()));
        }
        let _ = extract_pdf(&pdf);
    }

    #[test]
    fn mutated_uncompressed_pdf_never_panics(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..24),
        cut in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let cmap = to_unicode(&[("0001", "2EA0"), ("0002", "D840DC0B")]);
        let mut pdf = one_page_pdf(identity_font(), cmap, &show_codes("000100020003"));
        for (at, byte) in edits {
            let i = at.index(pdf.len());
            pdf[i] = byte;
        }
        if let Some(cut) = cut {
            pdf.truncate(cut.index(pdf.len()));
        }
        let _ = extract_pdf(&pdf);
    }
}
