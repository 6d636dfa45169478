//! Answers made only of retrieved passages, each statement followed by its citation `[n]`.
//!
//! Without a language model the answer is extractive: the sentences of the retrieved passages
//! that share the most content with the question. When even the best passage covers too little of
//! the question, or when the question asks for an amount of money that no passage states, the
//! answer says that the documents do not answer it, and still lists the related passages.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

pub mod verification;

use crate::config::AnswerConfig;
use crate::retrieve::normalize_query;
use crate::store::ScoredChunk;
use verification::Verification;

/// What is shown when the evidence is too weak.
pub const NOT_FOUND_MESSAGE: &str = "お探しの内容に答える記述は、閲覧できる資料の中に見つかりませんでした。関連する可能性のある箇所を下に示します。";

#[derive(Debug, Clone)]
pub struct Answer {
    pub found: bool,
    pub text: String,
    /// Numbered from 1: in retrieval order for extractive answers and "not found", in order of
    /// first citation for generated ones.
    pub citations: Vec<ScoredChunk>,
    /// How much of the question the best passage covers, 0–1.
    pub support: f32,
    pub mode: AnswerMode,
    /// For generated answers: how each sentence of the model's text was checked.
    pub verification: Option<Verification>,
    /// For people, in Japanese: e.g. why a generated answer fell back to the extractive one.
    pub warnings: Vec<String>,
}

/// How an answer's text was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    /// Written by the language model, then verified sentence by sentence.
    Generated,
    /// Sentences taken from the passages (no model configured, evidence too weak to ask one,
    /// or a fallback: see the warnings).
    Extractive,
}

/// Builds the extractive answer for `question` from `passages` (best first).
pub fn extractive_answer(
    question: &str,
    passages: Vec<ScoredChunk>,
    config: &AnswerConfig,
) -> Answer {
    let question_terms = content_bigrams(&normalize_query(question));
    let support = passages
        .iter()
        .map(|passage| coverage(&question_terms, &content_bigrams(&passage.chunk.text)))
        .fold(0.0_f32, f32::max);
    let amount_missing = asks_for_money(question)
        && !passages
            .iter()
            .any(|passage| states_money(&passage.chunk.text));
    if passages.is_empty() || support < config.min_support || amount_missing {
        return not_found(passages, support);
    }

    struct Candidate<'a> {
        passage: usize,
        position: usize,
        text: &'a str,
        score: f32,
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for (passage_index, passage) in passages.iter().enumerate() {
        let rank_discount = 1.0 / (1.0 + 0.15 * passage_index as f32);
        for (position, sentence) in sentences(&passage.chunk.text).enumerate() {
            if is_heading_line(sentence, &passage.chunk.heading_path) {
                continue;
            }
            let score = coverage(&question_terms, &content_bigrams(sentence)) * rank_discount;
            if score > 0.0 {
                candidates.push(Candidate {
                    passage: passage_index,
                    position,
                    text: sentence,
                    score,
                });
            }
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut seen = HashSet::new();
    let mut chosen: Vec<Candidate> = candidates
        .into_iter()
        .filter(|candidate| seen.insert(candidate.text.to_owned()))
        .take(config.max_sentences)
        .collect();
    if chosen.is_empty() {
        // Every sentence that shares content with the question is a heading.
        return not_found(passages, support);
    }
    chosen.sort_by_key(|candidate| (candidate.passage, candidate.position));
    let text = chosen
        .iter()
        .map(|candidate| {
            format!(
                "{}[{}]",
                candidate.text.replace('\t', " "),
                candidate.passage + 1
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Answer {
        found: true,
        text,
        citations: passages,
        support,
        mode: AnswerMode::Extractive,
        verification: None,
        warnings: Vec::new(),
    }
}

/// Whether a line of a passage is a heading (「(2) 伴走支援の内容」, 「# 概要」, or one of the
/// passage's own headings however it is written): a heading names a topic, it does not answer
/// a question about it.
fn is_heading_line(line: &str, heading_path: &[String]) -> bool {
    let squeezed = |text: &str| -> String {
        text.trim_start_matches('#')
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    let bare = squeezed(line);
    bare.is_empty()
        || hikitsugi_ingest::is_heading_line(line)
        || heading_path.iter().any(|heading| squeezed(heading) == bare)
}

/// Whether the question asks how much money something is (いくら, 金額, 何円, 予算額…). Documents
/// often discuss a subject without ever giving its figure; passages that share the question's
/// words then do not answer it.
fn asks_for_money(question: &str) -> bool {
    static MONEY_QUESTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"いくら|金額|何[十百千万億]*円|(?:予算|費用|経費|事業費|契約)の?総?額")
            .expect("valid regex")
    });
    MONEY_QUESTION.is_match(question)
}

/// Whether `text` states an amount of money (「1,200万円」, 「85億円」, 「三千円」).
fn states_money(text: &str) -> bool {
    static MONEY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"[0-9〇一二三四五六七八九十百千万億兆][0-9,.〇一二三四五六七八九十百千万億兆]*\s?円",
        )
        .expect("valid regex")
    });
    MONEY.is_match(text)
}

/// "Not found", listing the related `passages`.
pub fn not_found(passages: Vec<ScoredChunk>, support: f32) -> Answer {
    Answer {
        found: false,
        text: NOT_FOUND_MESSAGE.to_owned(),
        citations: passages,
        support,
        mode: AnswerMode::Extractive,
        verification: None,
        warnings: Vec::new(),
    }
}

/// The sentences of `passage` that support the sentences of `answer` carrying the marker
/// `[n]`: for each such sentence, the passage sentence holding most of its content (at least
/// half of it), as exact substrings of `passage`, in passage order, without repeats.
pub fn supporting_sentences(answer: &str, n: usize, passage: &str) -> Vec<String> {
    let marker = format!("[{n}]");
    let candidates: Vec<(&str, HashSet<(char, char)>)> = sentences(passage)
        .map(|sentence| (sentence, content_bigrams(sentence)))
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    for (sentence, markers) in marked_sentences(answer) {
        if !markers.contains(&marker) {
            continue;
        }
        let terms = content_bigrams(&sentence);
        let best = candidates
            .iter()
            .enumerate()
            .map(|(index, (_, bigrams))| (index, coverage(&terms, bigrams)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((index, support)) = best
            && support >= 0.5
            && !chosen.contains(&index)
        {
            chosen.push(index);
        }
    }
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|index| candidates[index].0.to_owned())
        .collect()
}

/// The sentences of an answer with the `[n]` markers that follow each.
fn marked_sentences(answer: &str) -> Vec<(String, String)> {
    let mut result: Vec<(String, String)> = Vec::new();
    let mut text = String::new();
    let mut markers = String::new();
    let mut chars = answer.chars().peekable();
    while let Some(character) = chars.next() {
        if character == '[' {
            let mut number = String::new();
            while let Some(digit) = chars.peek().filter(|c| c.is_ascii_digit()) {
                number.push(*digit);
                chars.next();
            }
            if !number.is_empty() && chars.peek() == Some(&']') {
                chars.next();
                markers.push_str(&format!("[{number}]"));
                continue;
            }
            text.push('[');
            text.push_str(&number);
            continue;
        }
        if !markers.is_empty() {
            result.push((std::mem::take(&mut text), std::mem::take(&mut markers)));
        }
        text.push(character);
    }
    if !text.trim().is_empty() || !markers.is_empty() {
        result.push((text, markers));
    }
    result
}

/// Sentences of a passage: split after 。！？ and at line ends, trimmed, without empty ones.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['。', '!', '?', '\n', '\u{c}'])
        .map(|sentence| sentence.trim())
        .filter(|sentence| sentence.chars().count() >= 4)
}

/// Character bigrams that carry content: not whitespace or punctuation, and not made only of
/// hiragana (particles and endings such as 「した」「ですか」).
pub(crate) fn content_bigrams(text: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|ch| ch.is_alphanumeric()).collect();
    chars
        .windows(2)
        .filter(|pair| {
            !pair
                .iter()
                .all(|&ch| ('\u{3040}'..='\u{309F}').contains(&ch))
        })
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// Share of `question`'s bigrams found in `passage` (0 when `question` has none).
pub(crate) fn coverage(question: &HashSet<(char, char)>, passage: &HashSet<(char, char)>) -> f32 {
    if question.is_empty() {
        return 0.0;
    }
    question.intersection(passage).count() as f32 / question.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocumentMeta, StoredChunk};

    fn passage(doc_id: &str, text: &str, score: f32) -> ScoredChunk {
        ScoredChunk {
            chunk: StoredChunk {
                document: DocumentMeta {
                    doc_id: doc_id.to_owned(),
                    version: "v1".to_owned(),
                    title: "報告書".to_owned(),
                    owner: "pref-wakayama".to_owned(),
                    readers: vec!["pref-wakayama".to_owned()],
                    kind: "report".to_owned(),
                    date: None,
                    ingested_at: 0,
                    chunk_count: 1,
                    page_count: 1,
                    source: "test".to_owned(),
                },
                ordinal: 0,
                text: text.to_owned(),
                heading_path: Vec::new(),
                page_start: 1,
                page_end: 1,
                char_start: 0,
                char_end: text.chars().count() as u32,
            },
            score,
        }
    }

    const CONFIG: AnswerConfig = AnswerConfig {
        min_support: 0.4,
        max_sentences: 2,
    };

    #[test]
    fn answers_with_the_best_sentences_and_their_citation_numbers() {
        let passages = vec![
            passage(
                "a.txt",
                "研修は年2回開催した。オンラインよろず相談は毎月実施した。",
                0.9,
            ),
            passage(
                "b.txt",
                "よろず相談はオンラインで市町村ごとに実施し、300回に達した。",
                0.8,
            ),
        ];
        let answer = extractive_answer(
            "オンラインよろず相談はどのように実施されましたか",
            passages,
            &CONFIG,
        );
        assert!(answer.found);
        assert_eq!(answer.citations.len(), 2);
        assert_eq!(
            answer.text,
            "オンラインよろず相談は毎月実施した。[1]\nよろず相談はオンラインで市町村ごとに実施し、300回に達した。[2]"
        );
        assert!(!answer.text.contains("研修"));
    }

    #[test]
    fn heading_lines_are_not_quoted_as_answers() {
        let mut headed = passage(
            "a.txt",
            "(2) 市町村への「オンラインよろず相談」の実施\nオンラインよろず相談は毎月オンラインで実施した。",
            0.9,
        );
        headed.chunk.heading_path = vec![
            "3.業務の実施内容".to_owned(),
            "(2)市町村への「オンラインよろず相談」の実施".to_owned(),
        ];
        let answer = extractive_answer(
            "オンラインよろず相談はどのように実施されましたか",
            vec![headed],
            &CONFIG,
        );
        assert!(answer.found);
        assert_eq!(
            answer.text,
            "オンラインよろず相談は毎月オンラインで実施した。[1]"
        );
    }

    #[test]
    fn weak_evidence_is_not_an_answer_but_passages_stay_listed() {
        let passages = vec![passage("a.txt", "研修は年2回開催した。", 0.9)];
        let answer = extractive_answer(
            "延岡~高千穂線の年間の欠損額はいくらですか",
            passages,
            &CONFIG,
        );
        assert!(!answer.found);
        assert_eq!(answer.text, NOT_FOUND_MESSAGE);
        assert_eq!(answer.citations.len(), 1);
    }

    #[test]
    fn a_question_about_money_needs_a_passage_that_states_an_amount() {
        let question = "市町村行政DX推進による行政経営変革支援業務の委託契約金額はいくらですか";
        let without_amount = vec![passage(
            "a.txt",
            "市町村行政DX推進による行政経営変革支援業務の委託契約を結び、支援業務を実施した。",
            0.9,
        )];
        let answer = extractive_answer(question, without_amount, &CONFIG);
        assert!(answer.support >= CONFIG.min_support, "{}", answer.support);
        assert!(!answer.found, "no amount in the passages: {}", answer.text);
        assert_eq!(answer.citations.len(), 1);

        let with_amount = vec![passage(
            "a.txt",
            "行政経営変革支援業務の委託契約金額は1,200万円であった。",
            0.9,
        )];
        assert!(extractive_answer(question, with_amount, &CONFIG).found);

        assert!(states_money("総工費は85億円") && states_money("三千円") && states_money("5 円"));
        assert!(!states_money("円滑に進めた") && !states_money("円グラフで示す"));
        assert!(asks_for_money("予算額は") && asks_for_money("何万円かかりますか"));
        assert!(!asks_for_money("費用をどう分担しましたか"));
    }

    #[test]
    fn no_passages_is_not_found() {
        let answer = extractive_answer("何か", Vec::new(), &CONFIG);
        assert!(!answer.found && answer.citations.is_empty());
    }
}
