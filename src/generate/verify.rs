//! Checks a generated answer against the passages it was given, before anyone sees it.
//!
//! The model's text is split into sentences; the citation markers after (or inside) each
//! sentence, `[n]`, `[n][m]`, `[n, m]` or `【n】`, refer to the passages as numbered in the
//! prompt. Then:
//! - a marker that points to no passage is removed (and reported);
//! - a sentence with markers is *supported* when at least one cited passage contains at least
//!   `min_support` of the sentence's content (its character bigrams, after the normalisation the
//!   extractive answer uses); only the markers of supporting passages stay;
//! - a sentence without markers is *attributed* to the passage that supports it best, when that
//!   one reaches `min_support`;
//! - any other sentence is *unsupported*: dropped, or kept with a visible mark, as configured;
//! - the model's "the documents do not say" sentence is recognised as such and never shown as a
//!   claim.
//!
//! The kept markers are renumbered 1, 2, … in order of first appearance, and the answer's
//! citations are exactly those passages. Lexical overlap is the measure because a grounded
//! answer reuses its passage's words (numbers, names, terms) and a hallucinated one does not; the
//! threshold is calibrated on `shared/eval/seed` (see `tests/support_calibration.rs`).

use std::collections::HashSet;

use hikitsugi_ingest::normalize_chars;

pub use crate::answer::verification::{Action, CheckedSentence, Verdict, Verification};
use crate::answer::{content_bigrams, coverage};
use crate::config::UnsupportedPolicy;
use crate::store::ScoredChunk;

/// Follows a sentence kept under [`UnsupportedPolicy::Mark`].
pub const UNSUPPORTED_MARK: &str = "〔資料で確認できない記述〕";

/// Phrases by which the model says the passages do not answer (as the prompts ask it to).
const NOT_IN_DOCUMENTS_PHRASES: [&str; 4] = [
    "記載がありません",
    "記載されていません",
    "記述がありません",
    "資料にはありません",
];

/// The verified answer: its text (empty when nothing supported remains) and which passages it
/// cites, in the order of its new numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub text: String,
    /// Indices into the prompt's passages (from 0); `[1]` in `text` is the first of these.
    pub cited: Vec<usize>,
    pub verification: Verification,
}

impl Verified {
    /// Whether any supported sentence remains.
    pub fn found(&self) -> bool {
        !self.cited.is_empty()
    }
}

/// Verifies `raw`, the model's answer over `passages` (numbered from 1 in the prompt).
pub fn verify(
    raw: &str,
    passages: &[ScoredChunk],
    min_support: f32,
    policy: UnsupportedPolicy,
) -> Verified {
    let passage_terms: Vec<HashSet<(char, char)>> = passages
        .iter()
        .map(|passage| content_bigrams(&normalize_chars(&passage.chunk.text)))
        .collect();
    let mut invalid_markers = Vec::new();
    let mut checked = Vec::new();
    let mut lines: Vec<Vec<(usize, Vec<usize>)>> = Vec::new();
    for line in split_sentences(&normalize_chars(raw)) {
        let mut kept_line = Vec::new();
        for sentence in line {
            let (cited, invalid): (Vec<usize>, Vec<usize>) = sentence
                .markers
                .iter()
                .partition(|&&n| (1..=passages.len()).contains(&n));
            invalid_markers.extend(invalid);
            let cited = dedup(cited);
            let terms = content_bigrams(&sentence.text);
            let support_of = |n: usize| coverage(&terms, &passage_terms[n - 1]);
            let (verdict, supported_by, support) = if says_not_in_documents(&sentence.text) {
                (Verdict::NotInDocuments, Vec::new(), 0.0)
            } else if cited.is_empty() {
                let best = (1..=passages.len())
                    .map(|n| (n, support_of(n)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((n, support)) if support >= min_support && !terms.is_empty() => {
                        (Verdict::Attributed, vec![n], support)
                    }
                    best => (Verdict::Unsupported, Vec::new(), best.map_or(0.0, |b| b.1)),
                }
            } else {
                let supports: Vec<(usize, f32)> =
                    cited.iter().map(|&n| (n, support_of(n))).collect();
                let best = supports.iter().map(|s| s.1).fold(0.0_f32, f32::max);
                let supported_by: Vec<usize> = supports
                    .iter()
                    .filter(|(_, support)| *support >= min_support && !terms.is_empty())
                    .map(|(n, _)| *n)
                    .collect();
                let verdict = if supported_by.is_empty() {
                    Verdict::Unsupported
                } else {
                    Verdict::Supported
                };
                (verdict, supported_by, best)
            };
            let action = match (verdict, policy) {
                (Verdict::Supported | Verdict::Attributed, _) => Action::Kept,
                (Verdict::NotInDocuments, _) | (Verdict::Unsupported, UnsupportedPolicy::Drop) => {
                    Action::Dropped
                }
                (Verdict::Unsupported, UnsupportedPolicy::Mark) => Action::Marked,
            };
            if action != Action::Dropped {
                kept_line.push((checked.len(), supported_by.clone()));
            }
            checked.push(CheckedSentence {
                text: sentence.text,
                verdict,
                action,
                supported_by,
                cited,
                citations: Vec::new(),
                support,
            });
        }
        if !kept_line.is_empty() {
            lines.push(kept_line);
        }
    }

    // Renumber in order of first appearance, counting only sentences that are kept as claims.
    let mut order: Vec<usize> = Vec::new();
    let mut text_lines = Vec::new();
    for line in &lines {
        let mut text = String::new();
        for (index, supported_by) in line {
            let sentence = &mut checked[*index];
            text.push_str(&sentence.text);
            if sentence.action == Action::Marked {
                text.push_str(UNSUPPORTED_MARK);
            }
            for &n in supported_by {
                let position = match order.iter().position(|&seen| seen == n - 1) {
                    Some(position) => position,
                    None => {
                        order.push(n - 1);
                        order.len() - 1
                    }
                };
                sentence.citations.push(position + 1);
                text.push_str(&format!("[{}]", position + 1));
            }
        }
        text_lines.push(text);
    }
    Verified {
        text: if order.is_empty() {
            String::new()
        } else {
            text_lines.join("\n")
        },
        cited: order,
        verification: Verification {
            sentences: checked,
            invalid_markers: dedup(invalid_markers),
            min_support,
        },
    }
}

fn dedup(numbers: Vec<usize>) -> Vec<usize> {
    let mut seen = HashSet::new();
    numbers.into_iter().filter(|n| seen.insert(*n)).collect()
}

fn says_not_in_documents(sentence: &str) -> bool {
    let compact: String = sentence.chars().filter(|ch| !ch.is_whitespace()).collect();
    NOT_IN_DOCUMENTS_PHRASES
        .iter()
        .any(|phrase| compact.contains(phrase))
}

/// A sentence of the model's text and the citation markers that belong to it.
#[derive(Debug, Clone, PartialEq)]
struct RawSentence {
    text: String,
    markers: Vec<usize>,
}

/// Lines of sentences. A sentence ends after 。！？!? or at a line end; markers written right
/// after its end (`…した。[1]`) still belong to it.
fn split_sentences(text: &str) -> Vec<Vec<RawSentence>> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut sentences = Vec::new();
        let mut current = RawSentence {
            text: String::new(),
            markers: Vec::new(),
        };
        let mut ended = false;
        let mut rest = line;
        while let Some(ch) = rest.chars().next() {
            if let Some((numbers, length)) = parse_marker(rest) {
                current.markers.extend(numbers);
                rest = &rest[length..];
                continue;
            }
            rest = &rest[ch.len_utf8()..];
            if ended && ch.is_whitespace() {
                continue;
            }
            if ended {
                finish(&mut sentences, &mut current);
                ended = false;
            }
            current.text.push(ch);
            if matches!(ch, '。' | '!' | '?' | '！' | '？') {
                ended = true;
            }
        }
        finish(&mut sentences, &mut current);
        if !sentences.is_empty() {
            lines.push(sentences);
        }
    }
    lines
}

fn finish(sentences: &mut Vec<RawSentence>, current: &mut RawSentence) {
    let text = current.text.trim().to_owned();
    let markers = std::mem::take(&mut current.markers);
    current.text.clear();
    if !text.is_empty() {
        sentences.push(RawSentence { text, markers });
    } else if let Some(previous) = sentences.last_mut() {
        previous.markers.extend(markers);
    }
}

/// A citation marker at the start of `text`: `[1]`, `[1,2]`, `[1、2]`, `[1][2]` (one at a time)
/// or `【1】`; its numbers and its length in bytes. Brackets around anything else are text.
fn parse_marker(text: &str) -> Option<(Vec<usize>, usize)> {
    let close = match text.chars().next()? {
        '[' => ']',
        '【' => '】',
        _ => return None,
    };
    let open_length = text.chars().next()?.len_utf8();
    let end = text[open_length..].find(close)? + open_length;
    let inner = &text[open_length..end];
    if inner.is_empty() || inner.chars().count() > 20 {
        return None;
    }
    let mut numbers = Vec::new();
    for part in inner.split([',', '、', ' ', '，']) {
        if part.is_empty() {
            continue;
        }
        numbers.push(part.parse::<usize>().ok()?);
    }
    (!numbers.is_empty()).then_some((numbers, end + close.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocumentMeta, StoredChunk};

    fn passage(text: &str) -> ScoredChunk {
        ScoredChunk {
            chunk: StoredChunk {
                document: DocumentMeta {
                    doc_id: "a.txt".to_owned(),
                    version: "v1".to_owned(),
                    title: "報告書".to_owned(),
                    owner: "org".to_owned(),
                    readers: vec!["org".to_owned()],
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
                char_end: 0,
                ocr: false,
            },
            score: 1.0,
        }
    }

    fn passages() -> Vec<ScoredChunk> {
        vec![
            passage("研修は年2回、県庁で開催した。参加者は延べ120人だった。"),
            passage("オンラインよろず相談は市町村ごとに毎月実施し、300回に達した。"),
            passage("令和9年度に1件、令和10年度に3件の共同調達の実現を目標とする。"),
        ]
    }

    #[test]
    fn markers_split_and_attach_to_their_sentence() {
        let lines =
            split_sentences("研修は年2回開催した。[1] 相談は毎月[2][3]。\n- 目標は3件【3】\n[9]");
        assert_eq!(
            lines,
            vec![
                vec![
                    RawSentence {
                        text: "研修は年2回開催した。".into(),
                        markers: vec![1]
                    },
                    RawSentence {
                        text: "相談は毎月。".into(),
                        markers: vec![2, 3]
                    },
                ],
                vec![RawSentence {
                    text: "- 目標は3件".into(),
                    markers: vec![3]
                }],
            ]
        );
        assert_eq!(parse_marker("[1, 2]x"), Some((vec![1, 2], 6)));
        assert_eq!(parse_marker("[注]"), None);
        assert_eq!(parse_marker("[]"), None);
    }

    #[test]
    fn supported_sentences_stay_and_are_renumbered_by_first_citation() {
        let raw =
            "オンラインよろず相談は市町村ごとに毎月実施しました[2]。研修は年2回開催されました。[1]";
        let verified = verify(raw, &passages(), 0.5, UnsupportedPolicy::Drop);
        assert_eq!(
            verified.text,
            "オンラインよろず相談は市町村ごとに毎月実施しました。[1]研修は年2回開催されました。[2]"
        );
        assert_eq!(verified.cited, vec![1, 0]);
        let citations: Vec<&[usize]> = verified
            .verification
            .sentences
            .iter()
            .map(|sentence| sentence.citations.as_slice())
            .collect();
        assert_eq!(citations, vec![&[1][..], &[2][..]]);
        assert!(verified.found());
        assert!(
            verified
                .verification
                .sentences
                .iter()
                .all(|sentence| sentence.verdict == Verdict::Supported)
        );
    }

    #[test]
    fn a_marker_to_no_passage_is_removed_and_reported() {
        let raw = "研修は年2回開催した。[7][1]";
        let verified = verify(raw, &passages(), 0.5, UnsupportedPolicy::Drop);
        assert_eq!(verified.text, "研修は年2回開催した。[1]");
        assert_eq!(verified.verification.invalid_markers, vec![7]);
        assert_eq!(verified.verification.sentences[0].cited, vec![1]);
    }

    #[test]
    fn an_unsupported_claim_is_dropped_or_marked() {
        let raw = "研修は年2回開催した[1]。県は来年度に新庁舎を建設する予定です[1]。";
        let dropped = verify(raw, &passages(), 0.5, UnsupportedPolicy::Drop);
        assert_eq!(dropped.text, "研修は年2回開催した。[1]");
        assert_eq!(dropped.verification.count(Action::Dropped), 1);
        assert_eq!(dropped.verification.unsupported(), 1);
        let unsupported = &dropped.verification.sentences[1];
        assert_eq!(unsupported.verdict, Verdict::Unsupported);
        assert!(unsupported.supported_by.is_empty() && unsupported.support < 0.5);

        let marked = verify(raw, &passages(), 0.5, UnsupportedPolicy::Mark);
        assert_eq!(
            marked.text,
            format!(
                "研修は年2回開催した。[1]県は来年度に新庁舎を建設する予定です。{UNSUPPORTED_MARK}"
            )
        );
        assert_eq!(marked.verification.count(Action::Marked), 1);
    }

    #[test]
    fn a_citation_to_the_wrong_passage_does_not_count() {
        // True of passage 3, cited as passage 1.
        let raw = "令和10年度に3件の共同調達の実現を目標とする。[1]";
        let verified = verify(raw, &passages(), 0.5, UnsupportedPolicy::Drop);
        let sentence = &verified.verification.sentences[0];
        assert_eq!(sentence.verdict, Verdict::Unsupported);
        assert_eq!(sentence.cited, vec![1]);
        assert!(!verified.found() && verified.text.is_empty());
    }

    #[test]
    fn an_uncited_sentence_is_attributed_only_when_a_passage_supports_it() {
        let raw = "参加者は延べ120人だった。\n全国で最も多い参加者数でした。";
        let verified = verify(raw, &passages(), 0.5, UnsupportedPolicy::Drop);
        assert_eq!(verified.text, "参加者は延べ120人だった。[1]");
        let verdicts: Vec<Verdict> = verified
            .verification
            .sentences
            .iter()
            .map(|sentence| sentence.verdict)
            .collect();
        assert_eq!(verdicts, vec![Verdict::Attributed, Verdict::Unsupported]);
    }

    #[test]
    fn saying_the_documents_do_not_answer_is_not_found() {
        let verified = verify(
            "資料には記載がありません。",
            &passages(),
            0.5,
            UnsupportedPolicy::Mark,
        );
        assert!(!verified.found());
        assert_eq!(
            verified.verification.sentences[0].verdict,
            Verdict::NotInDocuments
        );
        assert_eq!(verified.verification.claims(), 0);
        assert_eq!(verified.verification.count(Action::Dropped), 1);
    }

    #[test]
    fn full_width_markers_and_digits_are_read_after_normalisation() {
        let verified = verify(
            "研修は年２回開催した。［１］",
            &passages(),
            0.5,
            UnsupportedPolicy::Drop,
        );
        assert_eq!(verified.text, "研修は年2回開催した。[1]");
    }
}
