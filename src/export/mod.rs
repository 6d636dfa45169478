//! Answers as documents a coordinator can paste into a draft: Markdown, and Word (DOCX) with
//! each citation as a real footnote. The question, the answer (or each compared group's answer)
//! with its `[n]`, and numbered references: title, organisation, page, heading path and the
//! quoted passage.

mod docx;
mod markdown;

pub use docx::docx;
pub use markdown::markdown;

/// What is exported: one answer, or one per compared group.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub question: String,
    pub sections: Vec<ReportSection>,
}

/// One answer and the references its `[n]` point to.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSection {
    /// The compared group's label; `None` for a single answer.
    pub heading: Option<String>,
    pub found: bool,
    /// Lines, each ending in its citation markers `[n]`.
    pub answer: String,
    pub references: Vec<Reference>,
}

/// A cited passage and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub n: usize,
    pub title: String,
    pub organisation: String,
    /// `p.3` or `pp.3–4`; `None` for documents without pages.
    pub pages: Option<String>,
    pub heading_path: Vec<String>,
    /// The passage's sentences the answer relies on (the whole passage when none is marked).
    pub quote: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the DOCX file could not be written: {0}")]
    Docx(String),
}

impl Reference {
    /// 「title（organisation）p.3 見出し > 見出し」: the reference without its quote.
    pub fn source_line(&self) -> String {
        let mut line = format!("{}（{}）", self.title, self.organisation);
        if let Some(pages) = &self.pages {
            line.push(' ');
            line.push_str(pages);
        }
        if !self.heading_path.is_empty() {
            line.push(' ');
            line.push_str(&self.heading_path.join(" > "));
        }
        line
    }
}

/// `p.3` or `pp.3–4`, from a passage's first and last page (none, or 0: the document has no
/// pages).
pub fn pages(start: Option<u32>, end: Option<u32>) -> Option<String> {
    match (start?, end) {
        (0, _) => None,
        (start, Some(end)) if end > start => Some(format!("pp.{start}–{end}")),
        (start, _) => Some(format!("p.{start}")),
    }
}

/// Splits an answer line into text and citation markers, in order.
fn segments(line: &str) -> Vec<Segment<'_>> {
    static MARKER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\[(\d{1,3})\]").expect("valid regex"));
    let mut parts = Vec::new();
    let mut last = 0;
    for found in MARKER.captures_iter(line) {
        let whole = found.get(0).expect("group 0 always matches");
        if whole.start() > last {
            parts.push(Segment::Text(&line[last..whole.start()]));
        }
        match found[1].parse() {
            Ok(n) => parts.push(Segment::Marker(n)),
            Err(_) => parts.push(Segment::Text(whole.as_str())),
        }
        last = whole.end();
    }
    if last < line.len() {
        parts.push(Segment::Text(&line[last..]));
    }
    parts
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Text(&'a str),
    Marker(usize),
}

#[cfg(test)]
pub(crate) fn sample() -> Report {
    Report {
        question: "伴走支援の体制は".to_owned(),
        sections: vec![
            ReportSection {
                heading: Some("北海道".to_owned()),
                found: true,
                answer: "担当職員11名を配置する。[1]\n課長補佐が総括する。[1][2]".to_owned(),
                references: vec![
                    Reference {
                        n: 1,
                        title: "別添3 希望する伴走支援".to_owned(),
                        organisation: "総務省".to_owned(),
                        pages: pages(Some(3), Some(3)),
                        heading_path: vec!["別添 3-1 希望する伴走支援(北海道)".to_owned()],
                        quote: "担当職員 11 名を配置する。".to_owned(),
                    },
                    Reference {
                        n: 2,
                        title: "事例集".to_owned(),
                        organisation: "総務省".to_owned(),
                        pages: None,
                        heading_path: Vec::new(),
                        quote: "課長補佐 1 名を実務総括担当と位置付け".to_owned(),
                    },
                ],
            },
            ReportSection {
                heading: Some("沖縄県".to_owned()),
                found: false,
                answer: "お探しの内容に答える記述は見つかりませんでした。".to_owned(),
                references: Vec::new(),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_split_from_text() {
        assert_eq!(
            segments("体制を整えた。[1][12] 次に[x]"),
            [
                Segment::Text("体制を整えた。"),
                Segment::Marker(1),
                Segment::Marker(12),
                Segment::Text(" 次に[x]"),
            ]
        );
    }

    #[test]
    fn page_ranges_read_as_people_write_them() {
        assert_eq!(pages(Some(3), Some(3)).as_deref(), Some("p.3"));
        assert_eq!(pages(Some(3), Some(5)).as_deref(), Some("pp.3–5"));
        assert_eq!(pages(None, None), None);
        assert_eq!(pages(Some(0), Some(0)), None);
    }
}
