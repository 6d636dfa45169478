//! Passages of other documents most like a draft paragraph: what a coordinator looks for before
//! writing a support plan ("who has done this before, and how did they write it?").
//!
//! The draft is searched like a question, then the candidates are diversified by maximal
//! marginal relevance, so that near-identical passages (a plan and its summary, two versions of
//! one paragraph) do not fill the list, and capped per document.
//!
//! Grouped by owner or document, the same candidates are cut into groups (in the order of each
//! group's best candidate) and each group diversified on its own: one search, so a group is
//! there because one of its passages is among the draft's best matches, the question a
//! coordinator asks ("which prefectures have written something like this?").

use std::collections::HashSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::store::ScoredChunk;

/// How relevance weighs against novelty when picking the next passage (1.0: relevance only).
const MMR_LAMBDA: f32 = 0.7;
/// Most terms reported per passage.
const MAX_SHARED_TERMS: usize = 8;

/// A passage like the draft, and the key terms it shares with it.
#[derive(Debug, Clone)]
pub struct SimilarPassage {
    pub passage: ScoredChunk,
    /// Words of the passage (runs of kanji, katakana, Latin letters or digits) that the draft
    /// contains, longest first.
    pub shared_terms: Vec<String>,
}

/// What similar passages are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SimilarGroupBy {
    /// One group per owning organisation.
    Owner,
    /// One group per document.
    Document,
}

impl FromStr for SimilarGroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "owner" => Ok(Self::Owner),
            "document" => Ok(Self::Document),
            other => Err(format!("unknown grouping {other:?}: use owner or document")),
        }
    }
}

/// The passages like the draft of one owner or document, best first.
#[derive(Debug, Clone)]
pub struct SimilarGroup {
    /// The organisation id or doc id.
    pub key: String,
    pub passages: Vec<SimilarPassage>,
}

/// Similar passages, as asked: one list, or grouped.
#[derive(Debug, Clone)]
pub enum SimilarFound {
    Passages(Vec<SimilarPassage>),
    Groups {
        group_by: SimilarGroupBy,
        groups: Vec<SimilarGroup>,
    },
}

/// `candidates` (best first) cut into groups by owner or doc id: the first `groups` groups in
/// the order of their best candidate, each holding its candidates best first.
pub fn group_candidates(
    candidates: Vec<ScoredChunk>,
    group_by: SimilarGroupBy,
    groups: usize,
) -> Vec<(String, Vec<ScoredChunk>)> {
    let mut grouped: Vec<(String, Vec<ScoredChunk>)> = Vec::new();
    for candidate in candidates {
        let document = &candidate.chunk.document;
        let key = match group_by {
            SimilarGroupBy::Owner => &document.owner,
            SimilarGroupBy::Document => &document.doc_id,
        };
        match grouped.iter().position(|(existing, _)| existing == key) {
            Some(index) => grouped[index].1.push(candidate),
            None if grouped.len() < groups => {
                let key = key.clone();
                grouped.push((key, vec![candidate]));
            }
            None => {}
        }
    }
    grouped
}

/// The best `top_k` of `candidates` (best first by fused score), at most `per_document` from
/// one document, each chosen by maximal marginal relevance: its relevance (the fused score
/// relative to the best) against its character-bigram overlap with the passages already chosen.
pub fn diversify(
    candidates: Vec<ScoredChunk>,
    top_k: usize,
    per_document: usize,
) -> Vec<ScoredChunk> {
    let best = candidates
        .iter()
        .map(|candidate| candidate.score)
        .fold(f32::MIN, f32::max);
    let bigrams: Vec<HashSet<(char, char)>> = candidates
        .iter()
        .map(|candidate| content_bigrams(&candidate.chunk.text))
        .collect();
    let mut remaining: Vec<usize> = (0..candidates.len()).collect();
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < top_k {
        let per_doc = |index: usize| {
            chosen
                .iter()
                .filter(|&&picked| {
                    candidates[picked].chunk.document.doc_id
                        == candidates[index].chunk.document.doc_id
                })
                .count()
        };
        let next = remaining
            .iter()
            .copied()
            .filter(|&index| per_doc(index) < per_document)
            .map(|index| {
                let relevance = if best > 0.0 {
                    candidates[index].score / best
                } else {
                    0.0
                };
                let redundancy = chosen
                    .iter()
                    .map(|&picked| jaccard(&bigrams[index], &bigrams[picked]))
                    .fold(0.0_f32, f32::max);
                (
                    index,
                    MMR_LAMBDA * relevance - (1.0 - MMR_LAMBDA) * redundancy,
                )
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let Some((index, _)) = next else { break };
        chosen.push(index);
        remaining.retain(|&candidate| candidate != index);
    }
    let mut candidates: Vec<Option<ScoredChunk>> = candidates.into_iter().map(Some).collect();
    chosen
        .into_iter()
        .filter_map(|index| candidates[index].take())
        .collect()
}

/// The words of `passage` that `draft` contains: maximal runs of kanji, katakana, Latin
/// letters or digits, two characters or more, longest first, without repeats.
pub fn shared_terms(draft: &str, passage: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in content_words(passage) {
        if word.chars().count() >= 2 && draft.contains(word) && !terms.iter().any(|t| t == word) {
            terms.push(word.to_owned());
        }
    }
    terms.sort_by_key(|term| std::cmp::Reverse(term.chars().count()));
    let mut kept: Vec<String> = Vec::new();
    for term in terms {
        // 「支援」 says nothing that 「伴走支援」 has not said.
        if !kept.iter().any(|longer| longer.contains(term.as_str())) {
            kept.push(term);
        }
    }
    kept.truncate(MAX_SHARED_TERMS);
    kept
}

fn is_content_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || ('\u{30A0}'..='\u{30FF}').contains(&c)
        || ('\u{4E00}'..='\u{9FFF}').contains(&c)
        || ('\u{3400}'..='\u{4DBF}').contains(&c)
        || c == '々'
}

fn content_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_content_char(c))
        .filter(|word| !word.is_empty())
}

fn content_bigrams(text: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    chars.windows(2).map(|pair| (pair[0], pair[1])).collect()
}

fn jaccard(a: &HashSet<(char, char)>, b: &HashSet<(char, char)>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocumentMeta, StoredChunk};

    fn scored(doc_id: &str, ordinal: u32, text: &str, score: f32) -> ScoredChunk {
        ScoredChunk {
            chunk: StoredChunk {
                document: DocumentMeta {
                    doc_id: doc_id.to_owned(),
                    version: "v1".to_owned(),
                    title: doc_id.to_owned(),
                    owner: "org".to_owned(),
                    readers: vec!["org".to_owned()],
                    kind: "plan".to_owned(),
                    date: None,
                    ingested_at: 0,
                    chunk_count: 3,
                    page_count: 1,
                    paged: true,
                    source: String::new(),
                },
                ordinal,
                text: text.to_owned(),
                heading_path: Vec::new(),
                page_start: 1,
                page_end: 1,
                char_start: 0,
                char_end: 0,
                ocr: false,
            },
            score,
        }
    }

    #[test]
    fn a_near_copy_gives_way_to_a_different_passage() {
        let candidates = vec![
            scored("a", 0, "市町村職員向けのDX研修を年2回開催した。", 1.0),
            scored("b", 0, "市町村職員向けのDX研修を年2回開催しました。", 0.95),
            scored("c", 0, "共同調達の仕様書を県が作成して配布した。", 0.7),
        ];
        let picked: Vec<String> = diversify(candidates, 2, 2)
            .into_iter()
            .map(|found| found.chunk.document.doc_id)
            .collect();
        assert_eq!(picked, ["a", "c"]);
    }

    #[test]
    fn one_document_gives_at_most_its_share() {
        let candidates = vec![
            scored("a", 0, "体制の構築について", 1.0),
            scored("a", 1, "人材育成の方針について", 0.9),
            scored("a", 2, "予算の確保について", 0.8),
            scored("b", 0, "広域連携の進め方", 0.1),
        ];
        let picked: Vec<(String, u32)> = diversify(candidates, 4, 2)
            .into_iter()
            .map(|found| (found.chunk.document.doc_id, found.chunk.ordinal))
            .collect();
        assert_eq!(picked, [("a".into(), 0), ("a".into(), 1), ("b".into(), 0)]);
    }

    #[test]
    fn groups_follow_their_best_candidate() {
        let mut candidates = vec![
            scored("a", 0, "体制", 1.0),
            scored("b", 0, "研修", 0.9),
            scored("a", 1, "予算", 0.8),
            scored("c", 0, "連携", 0.7),
        ];
        candidates[1].chunk.document.owner = "other".to_owned();
        let by_document: Vec<(String, usize)> =
            group_candidates(candidates.clone(), SimilarGroupBy::Document, 2)
                .into_iter()
                .map(|(key, members)| (key, members.len()))
                .collect();
        assert_eq!(by_document, [("a".into(), 2), ("b".into(), 1)]);
        let by_owner: Vec<(String, Vec<u32>)> =
            group_candidates(candidates, SimilarGroupBy::Owner, 5)
                .into_iter()
                .map(|(key, members)| {
                    (
                        key,
                        members.iter().map(|member| member.chunk.ordinal).collect(),
                    )
                })
                .collect();
        assert_eq!(
            by_owner,
            [("org".into(), vec![0, 1, 0]), ("other".into(), vec![0])]
        );
    }

    #[test]
    fn shared_terms_are_words_the_draft_contains() {
        let draft = "本県ではDX推進ディレクターを市町村に派遣し、オンライン相談を実施する。";
        let passage =
            "DX推進ディレクターの派遣と、オンライン相談の窓口を設けた。研修も行った。相談は随時。";
        assert_eq!(
            shared_terms(draft, passage),
            ["DX推進ディレクター", "オンライン相談", "派遣"],
            "「相談」 is part of a longer shared term"
        );
    }
}
