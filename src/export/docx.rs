//! A report as a Word document: the question as the title, each answer line a paragraph, and
//! every citation marker a footnote holding its reference and quoted passage. Japanese fonts
//! are set as the document defaults, headings carry outline levels (so they show in the
//! navigation pane and in tables of contents).

use docx_rs::{Docx, Footnote, Paragraph, Run, RunFonts};

use super::{ExportError, Reference, Report, Segment, segments};

/// Mincho for body text, as Japanese administrative documents are set; Word and LibreOffice
/// substitute an installed Japanese font where it is missing.
const BODY_FONT: &str = "游明朝";
const HEADING_FONT: &str = "游ゴシック";
/// Half-points.
const BODY_SIZE: usize = 21;
const TITLE_SIZE: usize = 32;
const HEADING_SIZE: usize = 26;

pub fn docx(report: &Report) -> Result<Vec<u8>, ExportError> {
    let fonts = RunFonts::new()
        .ascii(BODY_FONT)
        .hi_ansi(BODY_FONT)
        .east_asia(BODY_FONT);
    let mut document = Docx::new()
        .default_fonts(fonts)
        .default_size(BODY_SIZE)
        .add_paragraph(heading(&report.question, 0, TITLE_SIZE));
    for section in &report.sections {
        let label = section.heading.as_deref().unwrap_or("回答");
        document = document.add_paragraph(heading(label, 1, HEADING_SIZE));
        for line in section
            .answer
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            document = document.add_paragraph(answer_line(line.trim(), &section.references));
        }
        if !section.found && !section.references.is_empty() {
            document = document.add_paragraph(
                Paragraph::new().add_run(Run::new().add_text("関連する箇所").bold()),
            );
            for reference in &section.references {
                document = document.add_paragraph(reference_paragraph(reference));
            }
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    document
        .build()
        .pack(&mut bytes)
        .map_err(|error| ExportError::Docx(error.to_string()))?;
    Ok(bytes.into_inner())
}

fn heading(text: &str, level: usize, size: usize) -> Paragraph {
    let fonts = RunFonts::new()
        .ascii(HEADING_FONT)
        .hi_ansi(HEADING_FONT)
        .east_asia(HEADING_FONT);
    Paragraph::new()
        .add_run(Run::new().add_text(text).bold().size(size).fonts(fonts))
        .outline_lvl(level)
}

/// The line's text with each `[n]` replaced by a footnote on reference `n` (a marker without a
/// reference stays as written).
fn answer_line(line: &str, references: &[Reference]) -> Paragraph {
    let mut paragraph = Paragraph::new();
    for segment in segments(line) {
        paragraph = match segment {
            Segment::Text(text) => paragraph.add_run(Run::new().add_text(text)),
            Segment::Marker(n) => match references.iter().find(|reference| reference.n == n) {
                Some(reference) => paragraph.add_run(Run::new().add_footnote_reference(
                    Footnote::new().add_content(reference_paragraph(reference)),
                )),
                None => paragraph.add_run(Run::new().add_text(format!("[{n}]"))),
            },
        };
    }
    paragraph
}

/// 「[n] title（organisation）p.3 見出し」 and the quote in 「」.
fn reference_paragraph(reference: &Reference) -> Paragraph {
    Paragraph::new()
        .add_run(Run::new().add_text(format!("[{}] {}", reference.n, reference.source_line())))
        .add_run(Run::new().add_text(format!("「{}」", reference.quote.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sample;

    fn part(docx: &[u8], part: &str) -> String {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(docx)).expect("a zip");
        let mut xml = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(part).expect(part), &mut xml)
            .expect("utf-8");
        xml
    }

    /// The text of every `<w:t>` in one part of the package, paragraph by paragraph.
    fn part_text(docx: &[u8], name: &str) -> Vec<String> {
        let xml = part(docx, name);
        let paragraph = regex::Regex::new(r"(?s)<w:p[ >].*?</w:p>").expect("valid regex");
        let text = regex::Regex::new(r"<w:t[^>]*>([^<]*)</w:t>").expect("valid regex");
        paragraph
            .find_iter(&xml)
            .map(|p| {
                text.captures_iter(p.as_str())
                    .map(|t| t[1].to_owned())
                    .collect::<String>()
            })
            .filter(|line| !line.is_empty())
            .collect()
    }

    #[test]
    fn citations_become_footnotes_with_their_references() {
        let bytes = docx(&sample()).expect("docx");
        let body = part_text(&bytes, "word/document.xml");
        assert_eq!(
            body,
            [
                "伴走支援の体制は",
                "北海道",
                "担当職員11名を配置する。",
                "課長補佐が総括する。",
                "沖縄県",
                "お探しの内容に答える記述は見つかりませんでした。",
            ]
        );
        let notes = part_text(&bytes, "word/footnotes.xml");
        assert_eq!(
            notes,
            [
                "[1] 別添3 希望する伴走支援（総務省） p.3 別添 3-1 希望する伴走支援(北海道)「担当職員 11 名を配置する。」",
                "[1] 別添3 希望する伴走支援（総務省） p.3 別添 3-1 希望する伴走支援(北海道)「担当職員 11 名を配置する。」",
                "[2] 事例集（総務省）「課長補佐 1 名を実務総括担当と位置付け」",
            ]
        );
        assert!(part(&bytes, "word/styles.xml").contains(r#"w:eastAsia="游明朝""#));
    }
}
