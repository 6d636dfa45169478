//! The synthesis of a comparison: a short paragraph on what the compared groups have in common
//! and where they differ, written by the model from the passages the groups' answers cite and
//! verified sentence by sentence like an answer.
//!
//! All groups' passages go into one numbered list (each marked with its group), so the
//! model's `[n]` are checked by [`verify`] like an answer's and each verified citation maps
//! back to its group. A synthesis has no extractive fallback: when the model fails, or no
//! sentence survives verification, there is no synthesis, and a warning says why.

use std::time::Instant;

use crate::config::UnsupportedPolicy;
use crate::store::ScoredChunk;

use super::{Generator, LlmError, UNSUPPORTED_MARK, UNSUPPORTED_METRIC, Verification, verify};

/// Most passages a synthesis is given, over all groups: an equal share of each group's best.
pub const MAX_SYNTHESIS_PASSAGES: usize = 15;

/// One compared group as the synthesis sees it: its label and the passages its answer cites,
/// best first (none when the group has no answer).
#[derive(Debug, Clone, Copy)]
pub struct GroupEvidence<'a> {
    pub label: &'a str,
    pub passages: &'a [ScoredChunk],
}

/// What the groups have in common and where they differ.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// Whether a verified sentence remains.
    pub found: bool,
    /// The verified sentences; `[n]` is the n-th of `citations`. Empty when not found.
    pub text: String,
    pub citations: Vec<SynthesisCitation>,
    /// `None` when the model was not asked or did not answer.
    pub verification: Option<Verification>,
    /// Why there is no synthesis, or what verification removed (in Japanese).
    pub warnings: Vec<String>,
}

/// A passage the synthesis cites, and the group it belongs to.
#[derive(Debug, Clone)]
pub struct SynthesisCitation {
    /// Index of the group among those given to [`Generator::synthesis`].
    pub group: usize,
    pub passage: ScoredChunk,
}

impl Synthesis {
    fn none(warning: &str) -> Self {
        Self {
            found: false,
            text: String::new(),
            citations: Vec::new(),
            verification: None,
            warnings: vec![warning.to_owned()],
        }
    }
}

impl Generator {
    /// The synthesis of `groups`, compared on `question`. Needs two groups with passages.
    pub async fn synthesis(&self, question: &str, groups: &[GroupEvidence<'_>]) -> Synthesis {
        let answering = groups
            .iter()
            .filter(|group| !group.passages.is_empty())
            .count();
        if answering < 2 {
            return Synthesis::none(
                "回答のあるグループが2つ未満のため、共通点と相違点のまとめは作成しませんでした。",
            );
        }
        let given = synthesis_passages(groups);
        let labelled: Vec<(&str, &ScoredChunk)> = given
            .iter()
            .map(|&(group, passage)| (groups[group].label, passage))
            .collect();
        let messages = self.prompts.synthesis_messages(question, &labelled);
        let started = Instant::now();
        match self.client.complete(&messages).await {
            Ok(completion) if !completion.text.trim().is_empty() => {
                tracing::info!(
                    model = self.client.model(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    groups = answering,
                    passages = given.len(),
                    "synthesis generated"
                );
                self.verified_synthesis(&completion.text, &given)
            }
            Ok(_) => failed(&super::empty_answer()),
            Err(error) => failed(&error),
        }
    }

    fn verified_synthesis(&self, raw: &str, given: &[(usize, &ScoredChunk)]) -> Synthesis {
        let passages: Vec<ScoredChunk> = given
            .iter()
            .map(|(_, passage)| (*passage).clone())
            .collect();
        let verified = verify(
            raw,
            &passages,
            self.config.min_support,
            self.config.unsupported,
        );
        let unsupported = verified.verification.unsupported();
        tracing::info!(
            sentences = verified.verification.sentences.len(),
            unsupported,
            invalid_markers = verified.verification.invalid_markers.len(),
            found = verified.found(),
            "synthesis verified"
        );
        let mut warnings = Vec::new();
        if unsupported > 0 {
            metrics::counter!(UNSUPPORTED_METRIC).increment(unsupported as u64);
            warnings.push(match self.config.unsupported {
                UnsupportedPolicy::Drop => format!(
                    "資料で根拠を確認できなかった{unsupported}文をまとめから除きました。"
                ),
                UnsupportedPolicy::Mark => format!(
                    "資料で根拠を確認できなかった{unsupported}文に「{UNSUPPORTED_MARK}」を付けました。"
                ),
            });
        }
        let citations: Vec<SynthesisCitation> = verified
            .cited
            .iter()
            .filter_map(|&index| given.get(index))
            .map(|&(group, passage)| SynthesisCitation {
                group,
                passage: passage.clone(),
            })
            .collect();
        let found = !citations.is_empty();
        if !found {
            warnings.push(
                "資料で根拠を確認できる文がなかったため、共通点と相違点のまとめは表示しません。"
                    .to_owned(),
            );
        }
        Synthesis {
            found,
            text: if found { verified.text } else { String::new() },
            citations,
            verification: Some(verified.verification),
            warnings,
        }
    }
}

/// The passages given to the model, in group order, with their group's index: an equal
/// share of each group's best, [`MAX_SYNTHESIS_PASSAGES`] in all.
fn synthesis_passages<'a>(groups: &[GroupEvidence<'a>]) -> Vec<(usize, &'a ScoredChunk)> {
    let answering = groups
        .iter()
        .filter(|group| !group.passages.is_empty())
        .count();
    let share = (MAX_SYNTHESIS_PASSAGES / answering.max(1)).max(1);
    groups
        .iter()
        .enumerate()
        .flat_map(|(index, group)| {
            group
                .passages
                .iter()
                .take(share)
                .map(move |passage| (index, passage))
        })
        .take(MAX_SYNTHESIS_PASSAGES)
        .collect()
}

/// No synthesis, with the reason in the log and (in Japanese) the response.
fn failed(error: &LlmError) -> Synthesis {
    let warning = match error {
        LlmError::Unreachable { .. } | LlmError::Build { .. } => {
            "回答生成モデルに接続できなかったため、共通点と相違点のまとめは作成できませんでした。"
        }
        LlmError::Timeout { .. } => {
            "回答生成モデルの応答が時間内に終わらなかったため、共通点と相違点のまとめは作成できませんでした。"
        }
        LlmError::Status { .. } | LlmError::Upstream { .. } => {
            "回答生成モデルがエラーを返したため、共通点と相違点のまとめは作成できませんでした。"
        }
        LlmError::Interrupted { .. } => {
            "回答生成モデルの応答が途中で途切れたため、共通点と相違点のまとめは作成できませんでした。"
        }
        LlmError::Malformed { .. } => {
            "回答生成モデルの出力を読み取れなかったため、共通点と相違点のまとめは作成できませんでした。"
        }
    };
    tracing::warn!(%error, "synthesis failed");
    Synthesis::none(warning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocumentMeta, StoredChunk};

    fn passage(doc_id: &str, ordinal: u32) -> ScoredChunk {
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
                    chunk_count: 10,
                    page_count: 1,
                    paged: true,
                    source: String::new(),
                },
                ordinal,
                text: format!("{doc_id} {ordinal}"),
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

    #[test]
    fn each_group_gets_an_equal_share_of_the_passages() {
        let many: Vec<ScoredChunk> = (0..10).map(|ordinal| passage("a", ordinal)).collect();
        let few = vec![passage("b", 0)];
        let groups = [
            GroupEvidence {
                label: "A",
                passages: &many,
            },
            GroupEvidence {
                label: "空",
                passages: &[],
            },
            GroupEvidence {
                label: "B",
                passages: &few,
            },
        ];
        let given: Vec<(usize, u32)> = synthesis_passages(&groups)
            .into_iter()
            .map(|(group, passage)| (group, passage.chunk.ordinal))
            .collect();
        let share = MAX_SYNTHESIS_PASSAGES / 2;
        assert_eq!(given.len(), share + 1);
        assert!(given[..share].iter().all(|&(group, _)| group == 0));
        assert_eq!(given[share], (2, 0));
    }
}
