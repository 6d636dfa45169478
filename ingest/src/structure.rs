//! Headings as these documents write them, and the heading path of every line.
//!
//! Each numbering style has a fixed rank ("別添 3-1" above "第1章" above "1." above "1 総則"
//! above "（1）" and "■" above "1）" and "●" above "①"); a heading closes every open heading of
//! the same or a lower rank.
//! Markdown documents use their `#` levels instead.

/// A heading found on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heading {
    /// 0 is the outermost.
    pub rank: u8,
}

/// The longest line that can still be a heading: longer lines are paragraphs that happen to
/// start with a number.
const MAX_HEADING_CHARS: usize = 60;

/// Detects a heading in a plain-text line (already NFKC-normalised and trimmed).
pub fn detect_heading(line: &str) -> Option<Heading> {
    if line.is_empty()
        || line.contains('\t')
        || line.chars().count() > MAX_HEADING_CHARS
        || line.ends_with('。')
    {
        return None;
    }
    let rank = if is_annex(line) {
        0
    } else if is_chapter(line) {
        1
    } else if strip_number_dot(line).is_some() {
        2
    } else if strip_number_space(line).is_some() {
        3
    } else if strip_paren_number(line).is_some() || is_square(line) || is_bracketed(line) {
        4
    } else if strip_half_paren_number(line).is_some() || is_bullet_title(line) {
        5
    } else if starts_circled_number(line) {
        6
    } else {
        return None;
    };
    Some(Heading { rank })
}

/// Detects a Markdown ATX heading (`#` … `######`).
pub fn detect_markdown_heading(line: &str) -> Option<Heading> {
    let hashes = line.chars().take_while(|&ch| ch == '#').count();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes)
        && (rest.starts_with(' ') || rest.is_empty())
        && !rest.trim().is_empty())
    .then(|| Heading {
        rank: (hashes - 1) as u8,
    })
}

/// The text a Markdown heading shows, without its `#` marks.
pub fn markdown_heading_text(line: &str) -> &str {
    line.trim_start_matches('#')
        .trim()
        .trim_end_matches('#')
        .trim()
}

/// Whether a line starts a list item (and so never continues the previous line).
pub fn starts_list_item(line: &str) -> bool {
    let Some(first) = line.chars().next() else {
        return false;
    };
    matches!(
        first,
        '・' | '•'
            | '●'
            | '○'
            | '◆'
            | '◇'
            | '■'
            | '□'
            | '▶'
            | '►'
            | '▸'
            | '※'
            | '-'
            | '*'
            | '【'
            | '〔'
            | '《'
            | '<'
            | '＜'
            | '◎'
            | '★'
            | '☆'
            | '→'
            | '⇒'
    ) || starts_circled_number(line)
        || strip_number_dot(line).is_some()
        || strip_paren_number(line).is_some()
        || strip_half_paren_number(line).is_some()
}

fn is_annex(line: &str) -> bool {
    line.strip_prefix("別添")
        .or_else(|| line.strip_prefix("別紙"))
        .is_some_and(|rest| {
            rest.trim_start()
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit())
        })
}

fn is_chapter(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('第') else {
        return false;
    };
    let digits = rest
        .chars()
        .take_while(|ch| ch.is_ascii_digit() || "一二三四五六七八九十".contains(*ch))
        .count();
    digits > 0
        && rest
            .chars()
            .nth(digits)
            .is_some_and(|ch| matches!(ch, '章' | '部' | '編'))
}

/// "1. 申請主体" → Some("申請主体"). The number is followed by a dot and a space or Japanese text,
/// so that "1.5倍" or "2025.02" is not a heading.
fn strip_number_dot(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let rest = line[digits..].strip_prefix('.')?;
    let next = rest.chars().next()?;
    (next == ' ' || crate::normalize::is_japanese(next)).then(|| rest.trim_start())
}

/// The longest title a "number space title" or "●" heading has: longer lines are more likely a
/// wrapped sentence.
const MAX_TITLE_CHARS: usize = 40;

/// "1 総則" → Some("総則"): one or two digits, one space, then Japanese text that reads as a title
/// (short, no sentence punctuation, no parenthesis closed that it did not open), so that a wrapped
/// line such as "10 市町が参加し、" is not one.
fn strip_number_space(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let title = line[digits..].strip_prefix(' ')?;
    reads_as_title(title).then_some(title)
}

/// Whether the text after a numbering mark or bullet reads as a title rather than as a sentence
/// (or a wrapped line) that happens to start with one.
fn reads_as_title(title: &str) -> bool {
    title
        .chars()
        .next()
        .is_some_and(crate::normalize::is_japanese)
        && title.chars().count() <= MAX_TITLE_CHARS
        && !title.contains(['。', '、', ','])
        && title.matches('(').count() >= title.matches(')').count()
        && !title.ends_with(['が', 'を', 'に', 'は', 'で', 'と', 'の'])
}

/// "(1)…", "(2-1)…" (full-width parentheses are ASCII after NFKC).
fn strip_paren_number(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('(')?;
    let close = rest.find(')')?;
    let inside = &rest[..close];
    let numbered = !inside.is_empty()
        && inside.len() <= 5
        && inside.chars().all(|ch| ch.is_ascii_digit() || ch == '-')
        && inside.starts_with(|ch: char| ch.is_ascii_digit());
    numbered
        .then(|| rest[close + 1..].trim_start())
        .filter(|title| !title.is_empty())
}

/// "1)…" without an opening parenthesis.
fn strip_half_paren_number(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    line[digits..]
        .strip_prefix(')')
        .map(str::trim_start)
        .filter(|title| !title.is_empty())
}

fn starts_circled_number(line: &str) -> bool {
    line.chars().next().is_some_and(|ch| matches!(ch, '\u{2460}'..='\u{2473}' | '\u{3251}'..='\u{325F}' | '\u{32B1}'..='\u{32BF}'))
}

/// "●近隣自治体における共同でのDX推進" heads the numbered items below it; a "●" line that is a
/// sentence (with 。 or 、) is a bullet point, not a heading.
fn is_bullet_title(line: &str) -> bool {
    line.strip_prefix('●')
        .is_some_and(|title| reads_as_title(title.trim_start()))
}

fn is_square(line: &str) -> bool {
    line.starts_with('■') && line.chars().count() > 1
}

fn is_bracketed(line: &str) -> bool {
    line.starts_with('〔') && line.contains('〕')
}

/// Tracks the open headings while walking a document's lines.
#[derive(Debug, Default)]
pub struct HeadingPath {
    open: Vec<(u8, String)>,
}

impl HeadingPath {
    /// Opens a heading, closing those of the same or a lower rank.
    pub fn enter(&mut self, heading: Heading, text: &str) {
        while self
            .open
            .last()
            .is_some_and(|(rank, _)| *rank >= heading.rank)
        {
            self.open.pop();
        }
        self.open.push((heading.rank, text.to_owned()));
    }

    /// How many headings are open.
    pub fn depth(&self) -> usize {
        self.open.len()
    }

    pub fn current(&self) -> Vec<String> {
        self.open.iter().map(|(_, text)| text.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(line: &str) -> Option<u8> {
        detect_heading(line).map(|heading| heading.rank)
    }

    #[test]
    fn detects_the_heading_styles_of_the_corpus() {
        assert_eq!(rank("別添 3-1 希望する伴走支援(北海道)"), Some(0));
        assert_eq!(rank("別添3 希望する伴走支援"), Some(0));
        assert_eq!(rank("第1章 計画策定の背景"), Some(1));
        assert_eq!(rank("1. 申請主体"), Some(2));
        assert_eq!(rank("1 令和6年度の取組の総括"), Some(3));
        assert_eq!(rank("12 附則"), Some(3));
        assert_eq!(rank("(1)応募時点の課題"), Some(4));
        assert_eq!(rank("(2-1) 地域DX推進体制の構築支援"), Some(4));
        assert_eq!(rank("■ 設計方針"), Some(4));
        assert_eq!(rank("〔取組実績〕"), Some(4));
        assert_eq!(rank("1)【地域課題】"), Some(5));
        assert_eq!(
            rank("●近隣自治体における共同でのDX推進(子育てDX:金武町)"),
            Some(5)
        );
        assert_eq!(rank("①設置イメージ"), Some(6));
    }

    #[test]
    fn paragraphs_and_numbers_are_not_headings() {
        assert_eq!(
            rank("①【課題抽出(都留市、富士川町)】では、市町村の職員が参加した。"),
            None
        );
        assert_eq!(rank("1.5倍に増加"), None);
        assert_eq!(rank("2025.02"), None);
        assert_eq!(rank("1. 地域社会DX概論\t3"), None);
        assert_eq!(rank("10 市町が参加し、県と意見を交換した"), None);
        assert_eq!(
            rank("●市町の申し出に応じて県又は民間の人材を派遣し、伴走支援を実施"),
            None
        );
        assert_eq!(
            rank("10 市町の担当者が"),
            None,
            "a wrapped line ending in a particle"
        );
        assert_eq!(
            rank("23 条の2の 15 の2第3項関係)"),
            None,
            "a wrapped line closing a parenthesis"
        );
        assert_eq!(rank("1令和6年度"), None, "no space: a number glued to text");
        assert_eq!(rank("2025 年度"), None);
        assert_eq!(
            rank("3 DX"),
            None,
            "the title must start with Japanese text"
        );
        assert_eq!(rank("本事例集の位置づけ"), None);
    }

    #[test]
    fn markdown_headings_use_their_level() {
        assert_eq!(
            detect_markdown_heading("## 体制"),
            Some(Heading { rank: 1 })
        );
        assert_eq!(detect_markdown_heading("#hashtag"), None);
        assert_eq!(markdown_heading_text("## 体制 ##"), "体制");
    }

    #[test]
    fn a_heading_closes_those_of_the_same_or_lower_rank() {
        let mut path = HeadingPath::default();
        path.enter(Heading { rank: 0 }, "別添 3-1 (北海道)");
        path.enter(Heading { rank: 2 }, "1. 申請主体");
        path.enter(Heading { rank: 3 }, "(1)課題");
        path.enter(Heading { rank: 2 }, "2. 連携地域");
        assert_eq!(path.current(), vec!["別添 3-1 (北海道)", "2. 連携地域"]);
        path.enter(Heading { rank: 0 }, "別添 3-2 (山梨県)");
        assert_eq!(path.current(), vec!["別添 3-2 (山梨県)"]);
    }
}
