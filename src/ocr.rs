//! Optical character recognition of scanned PDF pages and image files with Debian's `tesseract`
//! (packages `tesseract-ocr`, `tesseract-ocr-jpn`, `tesseract-ocr-jpn-vert`); PDF pages are first
//! rendered at 300 dpi by poppler's `pdftoppm` (package `poppler-utils`). Each page runs in a
//! temporary directory of its own, under a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hikitsugi_ingest::PageOcr;

use crate::tool;

/// The Debian packages OCR needs, as an `apt-get install` line names them.
pub const PACKAGES: &str = "tesseract-ocr tesseract-ocr-jpn tesseract-ocr-jpn-vert poppler-utils";

/// Resolution scanned pages are rendered at: tesseract's models are trained on about 300 dpi.
const RENDER_DPI: &str = "300";

/// The OCR for `ingest.ocr`: tesseract when `enabled` and installed; when enabled but missing, an
/// engine whose every page fails with a reason naming the packages (so that each scanned page is
/// reported, and the rest of the document still goes in); `None` when disabled.
pub fn engine(enabled: bool, page_timeout: Duration) -> Option<Arc<dyn PageOcr>> {
    if !enabled {
        return None;
    }
    Some(match Tesseract::find(page_timeout) {
        Ok(tesseract) => Arc::new(tesseract),
        Err(reason) => Arc::new(Unavailable { reason }),
    })
}

/// `ocr`, reading no page once `abandoned()` says nobody waits for the result any more (an upload
/// that timed out or whose client left): each later page fails at once instead of keeping a core
/// busy for the rest of a long scan. The page being read when it happens runs to its end.
pub fn until_abandoned(
    ocr: Arc<dyn PageOcr>,
    abandoned: impl Fn() -> bool + Send + Sync + 'static,
) -> Arc<dyn PageOcr> {
    Arc::new(UntilAbandoned { ocr, abandoned })
}

struct UntilAbandoned<F> {
    ocr: Arc<dyn PageOcr>,
    abandoned: F,
}

impl<F: Fn() -> bool + Send + Sync> UntilAbandoned<F> {
    fn check(&self) -> Result<(), String> {
        if (self.abandoned)() {
            return Err("the request was abandoned before this page was read".to_owned());
        }
        Ok(())
    }
}

impl<F: Fn() -> bool + Send + Sync> PageOcr for UntilAbandoned<F> {
    fn engine(&self) -> String {
        self.ocr.engine()
    }

    fn pdf_page(&self, pdf: &[u8], page: u32) -> Result<String, String> {
        self.check()?;
        self.ocr.pdf_page(pdf, page)
    }

    fn image(&self, image: &[u8], extension: &str) -> Result<String, String> {
        self.check()?;
        self.ocr.image(image, extension)
    }
}

/// OCR by the tesseract and pdftoppm programs found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tesseract {
    tesseract: PathBuf,
    pdftoppm: Option<PathBuf>,
    /// Whether `jpn_vert`, the model for vertical writing, is installed beside `jpn`.
    vertical_model: bool,
    page_timeout: Duration,
}

impl Tesseract {
    /// The programs on `PATH`, with tesseract's Japanese model installed; else why not.
    pub fn find(page_timeout: Duration) -> Result<Self, String> {
        let missing =
            || format!("OCR needs tesseract with its Japanese models: apt-get install {PACKAGES}");
        let tesseract = tool::on_path(&["tesseract"]).ok_or_else(missing)?;
        let listed = Command::new(&tesseract)
            .arg("--list-langs")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|error| format!("{} did not start: {error}", tesseract.display()))?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let has = |language: &str| listed.lines().any(|line| line.trim() == language);
        if !has("jpn") {
            return Err(missing());
        }
        Ok(Self {
            vertical_model: has("jpn_vert"),
            tesseract,
            pdftoppm: tool::on_path(&["pdftoppm"]),
            page_timeout,
        })
    }

    /// Runs `command` under the page time limit; `what` names it in errors.
    fn run(&self, command: &mut Command, what: &str) -> Result<(), String> {
        let finished =
            tool::run(command, self.page_timeout).map_err(|error| format!("{what} {error}"))?;
        if finished.status.success() {
            return Ok(());
        }
        Err(format!(
            "{what} failed ({}): {}",
            finished.status, finished.last_error_line
        ))
    }

    /// The text tesseract reads in the image file `image`: read as horizontal writing, and read
    /// again with the vertical model when that reading is unsure (vertical pages read with the
    /// horizontal model give a few words of low confidence); the surer reading is kept.
    fn recognise(&self, work: &Path, image: &Path) -> Result<String, String> {
        let horizontal = self.read_words(work, image, "jpn")?;
        if horizontal.confidence >= SURE_CONFIDENCE || !self.vertical_model {
            return Ok(horizontal.text);
        }
        let vertical = self.read_words(work, image, "jpn_vert")?;
        Ok(if vertical.confidence > horizontal.confidence {
            vertical.text
        } else {
            horizontal.text
        })
    }

    fn read_words(&self, work: &Path, image: &Path, language: &str) -> Result<Reading, String> {
        let base = work.join(language);
        let mut command = Command::new(&self.tesseract);
        command
            .arg(image)
            .arg(&base)
            .args(["-l", language, "--psm", "3", "tsv"])
            .env("OMP_THREAD_LIMIT", "1");
        self.run(&mut command, "tesseract")?;
        let tsv = std::fs::read_to_string(base.with_extension("tsv"))
            .map_err(|error| format!("tesseract wrote no text: {error}"))?;
        Ok(Reading::from_tsv(&tsv))
    }
}

/// Mean word confidence (0–100) at or above which a horizontal reading is kept as it is.
const SURE_CONFIDENCE: f64 = 60.0;

/// What one tesseract run read: the text, lines in reading order, and its mean word confidence.
#[derive(Debug, PartialEq)]
struct Reading {
    text: String,
    confidence: f64,
}

impl Reading {
    /// From tesseract's TSV output: words (level 5) joined into their lines, lines into
    /// paragraphs, paragraphs separated by an empty line.
    fn from_tsv(tsv: &str) -> Self {
        let mut text = String::new();
        let mut line_key = None;
        let mut paragraph_key = None;
        let (mut confidence_sum, mut words) = (0.0, 0usize);
        for row in tsv.lines().skip(1) {
            let fields: Vec<&str> = row.split('\t').collect();
            let [
                level,
                _page,
                block,
                paragraph,
                line,
                _word,
                _left,
                _top,
                _width,
                _height,
                confidence,
                word,
            ] = fields[..]
            else {
                continue;
            };
            let Ok(confidence) = confidence.parse::<f64>() else {
                continue;
            };
            if level != "5" || confidence < 0.0 || word.trim().is_empty() {
                continue;
            }
            confidence_sum += confidence;
            words += 1;
            if paragraph_key != Some((block, paragraph)) {
                if paragraph_key.is_some() {
                    text.push_str("\n\n");
                }
                paragraph_key = Some((block, paragraph));
                line_key = Some(line);
            } else if line_key != Some(line) {
                text.push('\n');
                line_key = Some(line);
            } else {
                text.push(' ');
            }
            text.push_str(word.trim());
        }
        Self {
            text: join_japanese(&text),
            confidence: if words == 0 {
                0.0
            } else {
                confidence_sum / words as f64
            },
        }
    }
}

impl PageOcr for Tesseract {
    fn engine(&self) -> String {
        let vertical = if self.vertical_model { "+jpn_vert" } else { "" };
        format!("tesseract jpn{vertical}")
    }

    fn pdf_page(&self, pdf: &[u8], page: u32) -> Result<String, String> {
        let pdftoppm = self.pdftoppm.as_ref().ok_or_else(|| {
            format!("rendering a PDF page for OCR needs pdftoppm: apt-get install {PACKAGES}")
        })?;
        let work = scratch()?;
        let input = work.path().join("input.pdf");
        std::fs::write(&input, pdf)
            .map_err(|error| format!("cannot write a temporary file: {error}"))?;
        let page = page.to_string();
        let rendered = work.path().join("page");
        let mut command = Command::new(pdftoppm);
        command
            .args([
                "-r",
                RENDER_DPI,
                "-gray",
                "-png",
                "-singlefile",
                "-f",
                &page,
                "-l",
                &page,
            ])
            .arg(&input)
            .arg(&rendered);
        self.run(&mut command, "pdftoppm")?;
        self.recognise(work.path(), &rendered.with_extension("png"))
    }

    fn image(&self, image: &[u8], extension: &str) -> Result<String, String> {
        let work = scratch()?;
        let input = work.path().join(format!("input.{extension}"));
        std::fs::write(&input, image)
            .map_err(|error| format!("cannot write a temporary file: {error}"))?;
        self.recognise(work.path(), &input)
    }
}

/// OCR that is enabled but not installed: every page fails, saying what to install.
struct Unavailable {
    reason: String,
}

impl PageOcr for Unavailable {
    fn engine(&self) -> String {
        "unavailable".to_owned()
    }

    fn pdf_page(&self, _pdf: &[u8], _page: u32) -> Result<String, String> {
        Err(self.reason.clone())
    }

    fn image(&self, _image: &[u8], _extension: &str) -> Result<String, String> {
        Err(self.reason.clone())
    }
}

fn scratch() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(|error| format!("no temporary directory: {error}"))
}

/// Tesseract's Japanese models put a space between every two characters: spaces next to a
/// Japanese character (kana, kanji, full-width forms) are dropped, others kept. Form feeds
/// (tesseract's page separator) are dropped: they separate a document's pages.
fn join_japanese(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut joined = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\u{c}' {
            i += 1;
            continue;
        }
        if c == ' ' || c == '\u{3000}' {
            let end = (i..chars.len())
                .find(|&j| chars[j] != ' ' && chars[j] != '\u{3000}')
                .unwrap_or(chars.len());
            let before = joined.chars().next_back();
            let after = chars.get(end).copied();
            if !(before.is_some_and(is_japanese) || after.is_some_and(is_japanese)) {
                joined.push(' ');
            }
            i = end;
            continue;
        }
        joined.push(c);
        i += 1;
    }
    joined
}

fn is_japanese(c: char) -> bool {
    matches!(c,
        '\u{3000}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF00}'..='\u{FFEF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Records the pages it is asked for.
    #[derive(Default)]
    struct Recording(Mutex<Vec<u32>>);

    impl PageOcr for Recording {
        fn engine(&self) -> String {
            "recording".to_owned()
        }
        fn pdf_page(&self, _pdf: &[u8], page: u32) -> Result<String, String> {
            self.0.lock().unwrap().push(page);
            Ok(format!("page {page}"))
        }
        fn image(&self, _image: &[u8], _extension: &str) -> Result<String, String> {
            Ok("image".to_owned())
        }
    }

    #[test]
    fn an_abandoned_reading_reads_no_more_pages() {
        let recording = Arc::new(Recording::default());
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        let ocr = until_abandoned(recording.clone(), move || flag.load(Ordering::Relaxed));
        assert_eq!(ocr.engine(), "recording");
        assert_eq!(ocr.pdf_page(b"", 1).as_deref(), Ok("page 1"));
        abandoned.store(true, Ordering::Relaxed);
        assert!(ocr.pdf_page(b"", 2).unwrap_err().contains("abandoned"));
        assert!(ocr.image(b"", "png").is_err());
        assert_eq!(*recording.0.lock().unwrap(), [1]);
    }

    #[test]
    fn spaces_between_japanese_characters_are_dropped_and_others_kept() {
        assert_eq!(
            join_japanese("令 和 5 年 度 の 推 進 体 制 （ 案 ）\nDX 推 進 計 画 version 2\n\u{c}"),
            "令和5年度の推進体制（案）\nDX推進計画version 2\n"
        );
    }

    #[test]
    fn tesseract_words_become_lines_and_paragraphs_with_their_mean_confidence() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t2480\t3508\t-1\t\n\
            5\t1\t1\t1\t1\t1\t10\t10\t50\t20\t90\t推進\n\
            5\t1\t1\t1\t1\t2\t60\t10\t50\t20\t80\t体制\n\
            5\t1\t1\t1\t2\t1\t10\t40\t50\t20\t70\tDX\n\
            5\t1\t1\t1\t2\t2\t60\t40\t50\t20\t60\tplan\n\
            5\t1\t2\t1\t1\t1\t10\t90\t50\t20\t50\t以上\n";
        let reading = Reading::from_tsv(tsv);
        assert_eq!(reading.text, "推進体制\nDX plan\n\n以上");
        assert!(
            (reading.confidence - 70.0).abs() < 1e-9,
            "{}",
            reading.confidence
        );
        assert_eq!(Reading::from_tsv("level\n").confidence, 0.0);
    }

    #[test]
    fn enabled_but_missing_ocr_reports_each_page_with_the_packages() {
        let missing = Unavailable {
            reason: format!(
                "OCR needs tesseract with its Japanese models: apt-get install {PACKAGES}"
            ),
        };
        let reason = missing.pdf_page(b"%PDF", 1).expect_err("unavailable");
        assert!(reason.contains("tesseract-ocr-jpn"), "{reason}");
        assert!(engine(false, Duration::from_secs(1)).is_none());
    }
}
