//! Answers made only of retrieved passages, each statement followed by its citation `[n]`.
//!
//! Without a language model the answer is extractive: the sentences of the retrieved passages
//! that share the most content with the question. When the passages do not answer the question
//! ([`answerability`]), the answer says so, naming what the documents lack when the question
//! names it, and still lists the related passages.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

pub mod answerability;
pub mod verification;

use crate::config::AnswerConfig;
use crate::retrieve::normalize_query;
use crate::store::ScoredChunk;
use answerability::Assessment;
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
    /// Whether the passages answer the question, and why.
    pub assessment: Assessment,
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

/// Builds the extractive answer for `question` from `passages` (best first), as `assessment`
/// (made of the same passages) decides.
pub fn extractive_answer(
    question: &str,
    passages: Vec<ScoredChunk>,
    assessment: &Assessment,
    config: &AnswerConfig,
) -> Answer {
    if !assessment.answerable {
        return not_found(passages, assessment.clone());
    }
    let question = normalize_query(question);
    let question_terms = content_bigrams(&question);
    let focus = Focus::of(&question);

    struct Candidate<'a> {
        passage: usize,
        position: usize,
        text: &'a str,
        bigrams: HashSet<(char, char)>,
        score: f32,
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for (passage_index, passage) in passages.iter().enumerate() {
        let rank_discount = 1.0 / (1.0 + 0.15 * passage_index as f32);
        for (position, sentence) in sentences(&passage.chunk.text).enumerate() {
            if is_heading_line(sentence, &passage.chunk.heading_path)
                || is_contents_line(sentence)
                || is_fragment(sentence)
            {
                continue;
            }
            let bigrams = content_bigrams(sentence);
            let score =
                coverage(&question_terms, &bigrams) * rank_discount * focus.weight(sentence);
            if score > 0.0 {
                candidates.push(Candidate {
                    passage: passage_index,
                    position,
                    text: sentence,
                    bigrams,
                    score,
                });
            }
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let best = candidates.first().map_or(0.0, |candidate| candidate.score);
    let mut chosen: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        if chosen.len() == config.max_sentences || candidate.score < best * MIN_RELATIVE_SCORE {
            break;
        }
        let repeats = chosen
            .iter()
            .any(|other| jaccard(&other.bigrams, &candidate.bigrams) >= REPEAT_SIMILARITY);
        if !repeats {
            chosen.push(candidate);
        }
    }
    if chosen.is_empty() {
        // Every sentence that shares content with the question is a heading or a fragment.
        return not_found(passages, assessment.clone());
    }
    // The passage of the best sentence first, then the others in the order of their best
    // sentence; inside a passage, its sentences in document order.
    let passage_order: Vec<usize> = chosen.iter().fold(Vec::new(), |mut order, candidate| {
        if !order.contains(&candidate.passage) {
            order.push(candidate.passage);
        }
        order
    });
    chosen.sort_by_key(|candidate| {
        let rank = passage_order
            .iter()
            .position(|&passage| passage == candidate.passage);
        (rank, candidate.position)
    });
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
        assessment: assessment.clone(),
        mode: AnswerMode::Extractive,
        verification: None,
        warnings: Vec::new(),
    }
}

/// Sentences scoring below this share of the best one's are left out of an extractive answer.
const MIN_RELATIVE_SCORE: f32 = 0.5;
/// Sentences this similar (character-bigram Jaccard) to a chosen one are repeats.
const REPEAT_SIMILARITY: f32 = 0.8;

/// What a question asks for, when its wording says so: sentences that give that kind of fact
/// are preferred, and those that cannot give it are discounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    /// 何名, 何件, どのくらい…: a number with its counter.
    Count,
    /// いつ, 何年, 時期: a date or a year.
    Time,
    /// いくら, 金額: an amount of money.
    Amount,
    /// 名称, 何という: a name.
    Name,
    /// Anything else (どのように, なぜ…): no preference.
    Open,
}

impl Focus {
    fn of(question: &str) -> Self {
        static COUNT: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"何(?:名|人|件|回|社|校|か所|箇所|団体|市町村|倍|割|%|年間|か月|ヶ月)|どのくらい|どれくらい|いくつ|何種類").expect("valid regex")
        });
        static TIME: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"いつ|何年|何月|何日|時期|何時").expect("valid regex"));
        static NAME: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"名称|何という|何と呼|名前|何と言").expect("valid regex"));
        if asks_for_money(question) {
            Focus::Amount
        } else if COUNT.is_match(question) {
            Focus::Count
        } else if TIME.is_match(question) {
            Focus::Time
        } else if NAME.is_match(question) {
            Focus::Name
        } else {
            Focus::Open
        }
    }

    /// Whether a sentence gives what this focus asks for (every sentence does for an open
    /// question).
    fn given_by(self, sentence: &str) -> bool {
        static COUNTED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"[0-9〇一二三四五六七八九十百千万]+(?:[.,][0-9]+)?\s?(?:名|人|件|回|社|校|か所|箇所|団体|市町村|倍|割|%|年間|か月|ヶ月|種類|つ)").expect("valid regex")
        });
        static DATED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?:令和|平成|昭和)(?:[0-9]{1,2}|元)年|[0-9]{4}年|[0-9]{1,2}月|[RH][0-9]{1,2}(?:年度)?|年度").expect("valid regex")
        });
        static NAMED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"「[^「」]+」|[\p{Katakana}ー]{3,}").expect("valid regex")
        });
        match self {
            Focus::Count => COUNTED.is_match(sentence),
            Focus::Time => DATED.is_match(sentence),
            Focus::Amount => states_money(sentence),
            Focus::Name => NAMED.is_match(sentence),
            Focus::Open => true,
        }
    }

    /// How much a sentence's score counts for this focus.
    fn weight(self, sentence: &str) -> f32 {
        match (self, self.given_by(sentence)) {
            (Focus::Open, _) => 1.0,
            (_, true) => 1.5,
            (_, false) => 0.6,
        }
    }
}

/// Whether a line is an entry of a table of contents (「第2章 体制……12」, 「1. 概要 3」).
fn is_contents_line(line: &str) -> bool {
    static CONTENTS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?:…|\.{3,}|・{3,}|‥|－{2,}|-{3,}|─{2,})\s*[0-9]{1,3}\s*$|^[^。]{1,40}\s[0-9]{1,3}$",
        )
        .expect("valid regex")
    });
    CONTENTS.is_match(line)
}

/// Whether a line is too short or too bare to be read as a sentence of an answer: fewer than
/// eight content characters, or a short line that ends in neither a full stop nor a word that
/// ends a sentence (a table cell, a label, a caption).
fn is_fragment(line: &str) -> bool {
    let content = line.chars().filter(|c| c.is_alphanumeric()).count();
    let ends_sentence = line.ends_with(['。', '！', '？', '!', '?', '）', ')'])
        || line.ends_with("する")
        || line.ends_with("した")
        || line.ends_with("いる")
        || line.ends_with("ある");
    content < 8 || (content < 16 && !ends_sentence)
}

/// Jaccard similarity of two bigram sets (0 when both are empty).
fn jaccard(a: &HashSet<(char, char)>, b: &HashSet<(char, char)>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
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

/// "Not found", listing the related `passages`; when the question names things that no passage
/// mentions, the answer names them.
pub fn not_found(passages: Vec<ScoredChunk>, assessment: Assessment) -> Answer {
    let text = if assessment.missing_names.is_empty() {
        NOT_FOUND_MESSAGE.to_owned()
    } else {
        let names: Vec<String> = assessment
            .missing_names
            .iter()
            .map(|name| format!("「{name}」"))
            .collect();
        format!(
            "閲覧できる資料には{}についての記述が見当たりません。関連する可能性のある箇所を下に示します。",
            names.join("・")
        )
    };
    Answer {
        found: false,
        text,
        citations: passages,
        assessment,
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

    pub(super) fn passage(doc_id: &str, text: &str, score: f32) -> ScoredChunk {
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
                    paged: true,
                    source: "test".to_owned(),
                },
                ordinal: 0,
                text: text.to_owned(),
                heading_path: Vec::new(),
                page_start: 1,
                page_end: 1,
                char_start: 0,
                char_end: text.chars().count() as u32,
                ocr: false,
            },
            score,
        }
    }

    const CONFIG: AnswerConfig = AnswerConfig {
        min_confidence: 0.5,
        max_sentences: 2,
    };

    /// The extractive answer, assessed as the service assesses it (without fused scores).
    fn assessed_answer(question: &str, passages: Vec<ScoredChunk>) -> Answer {
        let words = crate::embed::Bm25Encoder::new().expect("the BM25 encoder");
        let assessment =
            answerability::assess(question, &passages, &words, None, CONFIG.min_confidence);
        extractive_answer(question, passages, &assessment, &CONFIG)
    }

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
        let answer = assessed_answer("オンラインよろず相談はどのように実施されましたか", passages);
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
        let answer = assessed_answer(
            "オンラインよろず相談はどのように実施されましたか",
            vec![headed],
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
        let answer = assessed_answer("延岡~高千穂線の年間の欠損額はいくらですか", passages);
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
        let answer = assessed_answer(question, without_amount);
        assert!(answer.assessment.missing_amount, "{:?}", answer.assessment);
        assert!(!answer.found, "no amount in the passages: {}", answer.text);
        assert_eq!(answer.citations.len(), 1);

        let with_amount = vec![passage(
            "a.txt",
            "行政経営変革支援業務の委託契約金額は1,200万円であった。",
            0.9,
        )];
        assert!(assessed_answer(question, with_amount).found);

        assert!(states_money("総工費は85億円") && states_money("三千円") && states_money("5 円"));
        assert!(!states_money("円滑に進めた") && !states_money("円グラフで示す"));
        assert!(asks_for_money("予算額は") && asks_for_money("何万円かかりますか"));
        assert!(!asks_for_money("費用をどう分担しましたか"));
    }

    #[test]
    fn the_sentence_giving_what_the_question_asks_for_comes_first() {
        let passages = vec![
            passage(
                "a.txt",
                "DX推進ディレクターは各市町の取組を支援する役割を担う。",
                0.9,
            ),
            passage(
                "b.txt",
                "令和7年度のDX推進ディレクターは県内で12名を任命した。DX推進ディレクターの任期は1年である。",
                0.8,
            ),
        ];
        let answer = assessed_answer("令和7年度のDX推進ディレクターは何名ですか", passages);
        assert!(answer.found, "{:?}", answer.assessment);
        let first = answer.text.lines().next().expect("a sentence");
        assert_eq!(
            first,
            "令和7年度のDX推進ディレクターは県内で12名を任命した。[2]"
        );
    }

    #[test]
    fn contents_lines_fragments_and_repeats_are_not_answer_sentences() {
        assert!(is_contents_line("第2章 推進体制……………12"));
        assert!(is_contents_line("地域社会DX実現に向けた取組 8"));
        assert!(!is_contents_line(
            "研修は年2回開催し、延べ120名が参加した。"
        ));
        assert!(is_fragment("推進体制"));
        assert!(is_fragment("共同調達・共同利用の推進"));
        assert!(!is_fragment("共同調達を推進した。"));

        let passages = vec![passage(
            "a.txt",
            "目次\n共同調達の進め方……3\n共同調達は県と市町が共同で仕様を定めて進めた。\n共同調達は県と市町が共同で仕様を定めて進めた。",
            0.9,
        )];
        let answer = assessed_answer("共同調達はどのように進めましたか", passages);
        assert_eq!(
            answer.text,
            "共同調達は県と市町が共同で仕様を定めて進めた。[1]"
        );
    }

    #[test]
    fn no_passages_is_not_found() {
        let answer = assessed_answer("何か", Vec::new());
        assert!(!answer.found && answer.citations.is_empty());
    }
}
