//! Repairs the defects text extraction leaves in Japanese documents.
//!
//! Per character: Unicode NFKC (keeping circled numbers such as ①, which NFKC would turn into
//! plain digits and which these documents use as list and heading markers). Per line: runs of
//! spaces collapsed, spaces between Japanese and Latin letters or digits removed. Per page: lines
//! broken mid-sentence joined. Across pages: running headers, footers and bare page numbers dropped.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use crate::structure::{detect_heading, detect_markdown_heading, starts_list_item};

/// NFKC, except for enclosed alphanumerics (①, ⑴, ㉑ …), which carry structure.
pub fn normalize_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start = 0;
    for (index, ch) in text.char_indices() {
        if is_preserved(ch) {
            out.extend(text[run_start..index].nfkc());
            out.push(ch);
            run_start = index + ch.len_utf8();
        }
    }
    out.extend(text[run_start..].nfkc());
    out
}

fn is_preserved(ch: char) -> bool {
    matches!(ch, '\u{2460}'..='\u{24FF}' | '\u{3251}'..='\u{325F}' | '\u{32B1}'..='\u{32BF}')
}

/// Normalises every page of a document. Returns one string per page, lines joined by `\n`.
pub fn normalize_pages(raw_pages: &[String], markdown: bool) -> Vec<String> {
    let mut pages: Vec<Vec<String>> = raw_pages
        .iter()
        .map(|page| normalize_chars(page).lines().map(clean_line).collect())
        .collect();
    drop_running_lines(&mut pages);
    pages.iter_mut().for_each(drop_bare_page_numbers);
    pages
        .into_iter()
        .map(|lines| {
            join_broken_lines(&lines, markdown)
                .join("\n")
                .trim_matches('\n')
                .to_owned()
        })
        .collect()
}

/// Collapses whitespace runs (tabs survive: they separate table cells), removes the spaces that
/// extraction puts between Japanese and Latin letters or digits, and drops control characters.
/// The space after a line's leading section number (「１ 令和６年度の取組」) is kept: it is what
/// makes the line a heading.
fn clean_line(line: &str) -> String {
    let mut collapsed = String::with_capacity(line.len());
    let mut pending_space = false;
    for ch in line.trim().chars() {
        if ch == '\t' {
            pending_space = false;
            collapsed.push('\t');
        } else if ch.is_whitespace() {
            pending_space = !collapsed.ends_with('\t');
        } else if ch.is_control() {
            continue;
        } else {
            if pending_space {
                let previous = collapsed.chars().next_back();
                let artifact =
                    previous.is_some_and(|previous| space_is_extraction_artifact(previous, ch));
                if !artifact || is_section_number(collapsed.trim_start_matches(['#', ' '])) {
                    collapsed.push(' ');
                }
                pending_space = false;
            }
            collapsed.push(ch);
        }
    }
    collapsed
}

/// One or two ASCII digits: what precedes the space of a "number space title" heading (after the
/// `#`s of a Markdown heading).
fn is_section_number(text: &str) -> bool {
    (1..=2).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn space_is_extraction_artifact(before: char, after: char) -> bool {
    (is_japanese(before) && is_latin_or_digit(after))
        || (is_latin_or_digit(before) && is_japanese(after))
}

/// Kana, kanji and Japanese punctuation.
pub fn is_japanese(ch: char) -> bool {
    matches!(ch,
        '\u{3000}'..='\u{303F}'   // CJK symbols and punctuation
        | '\u{3040}'..='\u{30FF}' // hiragana, katakana
        | '\u{31F0}'..='\u{31FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF01}'..='\u{FF60}' // full-width forms NFKC keeps
        | '\u{FF61}'..='\u{FF9F}'
        | '\u{20000}'..='\u{2FFFF}')
}

fn is_latin_or_digit(ch: char) -> bool {
    ch.is_ascii_alphanumeric()
}

const RUNNING_LINE_POSITIONS: usize = 2;
const MIN_PAGES_FOR_RUNNING_LINES: usize = 3;

/// Drops lines that recur (digits ignored) among the first or last lines of most pages.
fn drop_running_lines(pages: &mut [Vec<String>]) {
    if pages.len() < MIN_PAGES_FOR_RUNNING_LINES {
        return;
    }
    let mut pages_with_key: HashMap<String, usize> = HashMap::new();
    for lines in pages.iter() {
        let mut keys: Vec<String> = edge_line_indices(lines)
            .map(|index| running_key(&lines[index]))
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            *pages_with_key.entry(key).or_default() += 1;
        }
    }
    let threshold = (pages.len() / 2).max(MIN_PAGES_FOR_RUNNING_LINES);
    for lines in pages.iter_mut() {
        let running: Vec<usize> = edge_line_indices(lines)
            .filter(|&index| !lines[index].ends_with('。'))
            .filter(|&index| {
                pages_with_key
                    .get(&running_key(&lines[index]))
                    .is_some_and(|&n| n >= threshold)
            })
            .collect();
        for index in running.into_iter().rev() {
            lines.remove(index);
        }
    }
}

/// Indices of the first and last few non-empty lines of a page, without duplicates, ascending.
fn edge_line_indices(lines: &[String]) -> impl Iterator<Item = usize> {
    let non_empty: Vec<usize> = (0..lines.len())
        .filter(|&index| !lines[index].is_empty())
        .collect();
    let mut edges: Vec<usize> = non_empty
        .iter()
        .take(RUNNING_LINE_POSITIONS)
        .copied()
        .collect();
    edges.extend(non_empty.iter().rev().take(RUNNING_LINE_POSITIONS).copied());
    edges.sort_unstable();
    edges.dedup();
    edges.into_iter()
}

fn running_key(line: &str) -> String {
    line.chars()
        .filter(|ch| !ch.is_whitespace())
        .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
        .collect()
}

/// Drops page-number lines ("12", "- 12 -", "12/40", "P.12") that stand alone between blank lines
/// or page edges.
fn drop_bare_page_numbers(lines: &mut Vec<String>) {
    let standalone_numbers: Vec<usize> = (0..lines.len())
        .filter(|&index| {
            let blank_before = index == 0 || lines[index - 1].is_empty();
            let blank_after = index + 1 == lines.len() || lines[index + 1].is_empty();
            blank_before && blank_after && is_page_number(&lines[index])
        })
        .collect();
    for index in standalone_numbers.into_iter().rev() {
        lines.remove(index);
    }
}

fn is_page_number(line: &str) -> bool {
    let compact: String = line.chars().filter(|ch| !ch.is_whitespace()).collect();
    let core = compact.trim_matches(|ch| matches!(ch, '-' | '—' | '–' | '−'));
    let core = core
        .strip_prefix("P.")
        .or_else(|| core.strip_prefix("p."))
        .unwrap_or(core);
    let mut parts = core.splitn(2, '/');
    let is_number = |part: &str| {
        !part.is_empty() && part.len() <= 4 && part.chars().all(|ch| ch.is_ascii_digit())
    };
    match (parts.next(), parts.next()) {
        (Some(page), None) => is_number(page),
        (Some(page), Some(total)) => is_number(page) && is_number(total),
        _ => false,
    }
}

/// Joins a line with the next when the sentence obviously continues there.
fn join_broken_lines(lines: &[String], markdown: bool) -> Vec<String> {
    let mut joined: Vec<String> = Vec::with_capacity(lines.len());
    let mut previous_continues = false;
    for line in lines {
        match joined.last_mut() {
            Some(previous) if previous_continues && continues_previous(line, markdown) => {
                let boundary_is_latin = previous
                    .chars()
                    .next_back()
                    .is_some_and(|ch| ch.is_ascii_alphanumeric())
                    && line
                        .chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_alphanumeric());
                if boundary_is_latin {
                    previous.push(' ');
                }
                previous.push_str(line);
            }
            _ => joined.push(line.clone()),
        }
        previous_continues = joined
            .last()
            .is_some_and(|last| may_continue(last, markdown));
    }
    joined
}

/// A line that does not end a sentence, a heading, a label or a table row.
fn may_continue(line: &str, markdown: bool) -> bool {
    let Some(last) = line.chars().next_back() else {
        return false;
    };
    !line.contains('\t')
        && !matches!(
            last,
            '。' | '．'
                | '.'
                | '!'
                | '?'
                | '！'
                | '？'
                | ':'
                | '：'
                | '」'
                | '』'
                | ')'
                | '）'
                | '】'
                | '〕'
                | '》'
                | '>'
                | '＞'
        )
        && !is_heading(line, markdown)
}

fn is_heading(line: &str, markdown: bool) -> bool {
    if markdown {
        detect_markdown_heading(line).is_some() || line.starts_with("```")
    } else {
        detect_heading(line).is_some()
    }
}

/// A line that can be the continuation of the previous one.
fn continues_previous(line: &str, markdown: bool) -> bool {
    !line.is_empty()
        && !line.contains('\t')
        && !is_heading(line, markdown)
        && !starts_list_item(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize_one(text: &str) -> String {
        normalize_pages(&[text.to_owned()], false).remove(0)
    }

    #[test]
    fn removes_spaces_between_japanese_and_latin_or_digits_only() {
        assert_eq!(
            normalize_one("DX 推進課に担当職員 11 名"),
            "DX推進課に担当職員11名"
        );
        assert_eq!(
            normalize_one("Google Workspace を導入"),
            "Google Workspaceを導入"
        );
    }

    #[test]
    fn keeps_the_space_after_a_leading_section_number() {
        assert_eq!(
            normalize_one("１　令和６年度の取組の総括"),
            "1 令和6年度の取組の総括"
        );
        assert_eq!(normalize_one("11 名が参加した。"), "11 名が参加した。");
        assert_eq!(normalize_one("2025 年度に 11 名"), "2025年度に11名");
    }

    #[test]
    fn applies_nfkc_but_keeps_circled_numbers() {
        assert_eq!(normalize_chars("ＤＸ推進（１）①ｶﾞｲﾄﾞ"), "DX推進(1)①ガイド");
    }

    #[test]
    fn joins_lines_broken_mid_sentence_and_keeps_the_rest() {
        let text =
            "和歌山県では市町村の\nDX推進を支援した。\n次の文。\n・箇条書き\n1. 見出し\n表\tの行";
        assert_eq!(
            normalize_one(text),
            "和歌山県では市町村のDX推進を支援した。\n次の文。\n・箇条書き\n1. 見出し\n表\tの行"
        );
    }

    #[test]
    fn drops_running_headers_and_page_numbers() {
        let pages: Vec<String> = (1..=4)
            .map(|n| format!("地域社会DX事例集\n\n本文その{n}です。\n\n- {n} -"))
            .collect();
        let normalized = normalize_pages(&pages, false);
        for (index, page) in normalized.iter().enumerate() {
            assert_eq!(page, &format!("本文その{}です。", index + 1));
        }
    }

    #[test]
    fn keeps_numbers_that_are_not_standalone() {
        assert_eq!(normalize_one("人数\n11\n名"), "人数11名");
    }
}
