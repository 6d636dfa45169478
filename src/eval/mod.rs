//! Retrieval and answer quality on a question set (format and metrics of `shared/eval/README.md`).

mod compare;

pub use compare::{CompareOutcome, CompareQuestion, CompareReport, evaluate_compare};

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::access::Operator;
use crate::answer::answerability::Assessment;
use crate::answer::{Answer, AnswerMode, content_bigrams, coverage};
use crate::generate::AskEvent;
use crate::service::{Service, ServiceError};
use crate::store::ScoredChunk;

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub id: String,
    pub question: String,
    #[serde(default)]
    pub gold: Vec<Gold>,
    /// Reference answers, when the set has them.
    #[serde(default)]
    pub answers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gold {
    pub doc: String,
    pub evidence: Option<String>,
}

/// One line of a `contexts.jsonl`: a document given inline.
#[derive(Debug, Clone, Deserialize)]
pub struct Context {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {source}")]
    Json {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("question {id}: {source}")]
    Service { id: String, source: ServiceError },
}

/// Reads a JSON-lines file (blank lines skipped).
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, EvalError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: display.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|source| EvalError::Json {
                path: display.clone(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

/// The metrics of the eval README.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub questions: usize,
    #[serde(rename = "hit@1")]
    pub hit_at_1: f64,
    #[serde(rename = "hit@3")]
    pub hit_at_3: f64,
    #[serde(rename = "hit@5")]
    pub hit_at_5: f64,
    #[serde(rename = "hit@10")]
    pub hit_at_10: f64,
    #[serde(rename = "mrr@10")]
    pub mrr_at_10: f64,
    /// Share of unanswerable questions where the service said it found no answer (`null` without any).
    pub abstain: Option<f64>,
    pub false_abstain: f64,
    pub mean_passage_chars: f64,
    /// On answerable questions with reference answers: the share of a reference answer's content
    /// (character bigrams) that the answer contains, best reference, 0 when nothing was found.
    pub answer_recall: Option<f64>,
    /// Mean length in characters of the answers given (found), without citation markers.
    pub answer_chars: Option<f64>,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    /// With a language model configured: how generation went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationReport>,
}

/// Generated answers on a question set (only with `[llm]` configured).
#[derive(Debug, Clone, Serialize)]
pub struct GenerationReport {
    /// Questions the model answered (not gated by weak evidence, no fallback).
    pub generated: usize,
    /// Questions that fell back to the extractive answer after a model failure.
    pub fallbacks: usize,
    /// Share of answerable questions whose answer is generated and carries at least one
    /// verified citation.
    pub answerable_with_verified_citation: f64,
    /// Share of generated answers with at least one verified citation.
    pub generated_with_verified_citation: f64,
    /// Share of the model's claims (sentences other than "not in the documents") that no
    /// passage supported.
    pub unsupported_sentence_share: f64,
    pub sentences: usize,
    pub first_token_ms_p50: f64,
    pub first_token_ms_p95: f64,
    /// Latency to the final answer, for the questions the model was asked.
    pub end_ms_p50: f64,
    pub end_ms_p95: f64,
}

/// What one question gave, for calibration and error analysis.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub answerable: bool,
    /// 1-based rank of the first matching passage within the first 10.
    pub rank: Option<usize>,
    pub found: bool,
    /// What the answerability decision saw (its signals are what `tests/answerability/fit.py`
    /// fits the decision on).
    pub assessment: Assessment,
    /// See [`Report::answer_recall`]; `None` without reference answers.
    pub answer_recall: Option<f64>,
    /// The answer's length (found answers only), without citation markers.
    pub answer_chars: Option<usize>,
    pub latency_ms: f64,
    /// With a language model: how the answer was made and checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerationOutcome {
    pub generated: bool,
    /// Fell back to the extractive answer (the warnings say why).
    pub fallback: bool,
    pub verified_citations: usize,
    pub claims: usize,
    pub unsupported: usize,
    /// When the model was asked: time to its first text delta (none when it gave none).
    pub first_token_ms: Option<f64>,
    pub answer: String,
}

const TOP_K: usize = 10;

/// Runs every question through the `/v1/ask` path with a scope that reads everything.
pub async fn evaluate(
    service: &Service,
    questions: &[Question],
) -> Result<(Report, Vec<Outcome>), EvalError> {
    let mut outcomes = Vec::with_capacity(questions.len());
    let mut passage_chars = Vec::new();
    for question in questions {
        let started = Instant::now();
        let service_error = |source| EvalError::Service {
            id: question.id.clone(),
            source,
        };
        // Ranks are taken over the passages the answer drew on: the retrieved ones (extractive),
        // or those given to the model (generated; `llm.max_passages` of them).
        let (answer, passages, generation) = if service.generator.is_some() {
            let (answer, given, outcome) = ask_streamed(service, &question.question, started)
                .await
                .map_err(service_error)?;
            (answer, given, Some(outcome))
        } else {
            let asked = service
                .ask(Operator.scope(), &question.question, Some(TOP_K))
                .await
                .map_err(service_error)?;
            let passages = asked.result.citations.clone();
            (asked.result, passages, None)
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        passage_chars.extend(
            passages
                .iter()
                .map(|passage| passage.chunk.text.chars().count()),
        );
        let rank = passages
            .iter()
            .take(TOP_K)
            .position(|passage| {
                question
                    .gold
                    .iter()
                    .any(|gold| matches(gold, &passage.chunk.document.doc_id, &passage.chunk.text))
            })
            .map(|index| index + 1);
        outcomes.push(Outcome {
            id: question.id.clone(),
            answerable: !question.gold.is_empty(),
            rank,
            found: answer.found,
            assessment: answer.assessment.clone(),
            answer_recall: answer_recall(&question.answers, &answer),
            answer_chars: answer
                .found
                .then(|| without_markers(&answer.text).chars().count()),
            latency_ms,
            generation,
        });
    }
    Ok((report(&outcomes, &passage_chars), outcomes))
}

/// How much of the best reference answer's content `answer` contains (0 when not found).
fn answer_recall(references: &[String], answer: &Answer) -> Option<f64> {
    let references: Vec<_> = references
        .iter()
        .map(|reference| content_bigrams(&norm(reference)))
        .filter(|bigrams| !bigrams.is_empty())
        .collect();
    if references.is_empty() {
        return None;
    }
    if !answer.found {
        return Some(0.0);
    }
    let given = content_bigrams(&norm(&without_markers(&answer.text)));
    Some(
        references
            .iter()
            .map(|reference| f64::from(coverage(reference, &given)))
            .fold(0.0, f64::max),
    )
}

/// An answer's text without its `[n]` citation markers.
fn without_markers(text: &str) -> String {
    static MARKER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\[[0-9]+\]").expect("valid regex"));
    MARKER.replace_all(text, "").into_owned()
}

/// Asks through the streaming path, timing the first text delta.
async fn ask_streamed(
    service: &Service,
    question: &str,
    started: Instant,
) -> Result<(Answer, Vec<ScoredChunk>, GenerationOutcome), ServiceError> {
    use futures_util::StreamExt;
    let events = service
        .ask_stream(Operator.scope(), question, Some(TOP_K))
        .await?;
    let mut events = std::pin::pin!(events);
    let mut first_token_ms = None;
    let mut given = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            AskEvent::Passages(passages) => given = passages,
            AskEvent::Generating => {
                first_token_ms.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
            }
            AskEvent::Sentence { .. } => {}
            AskEvent::Answer(answer) => {
                let verification = answer.verification.as_ref();
                let outcome = GenerationOutcome {
                    generated: answer.mode == AnswerMode::Generated,
                    fallback: !answer.warnings.is_empty() && answer.mode == AnswerMode::Extractive,
                    verified_citations: if answer.found && answer.mode == AnswerMode::Generated {
                        answer.citations.len()
                    } else {
                        0
                    },
                    claims: verification.map_or(0, |verification| verification.claims()),
                    unsupported: verification.map_or(0, |verification| verification.unsupported()),
                    first_token_ms,
                    answer: answer.text.clone(),
                };
                return Ok((answer, given, outcome));
            }
        }
    }
    Err(ServiceError::Task(
        "the answer stream ended without an answer".to_owned(),
    ))
}

/// Computes the report from per-question outcomes.
pub fn report(outcomes: &[Outcome], passage_chars: &[usize]) -> Report {
    let answerable: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.answerable)
        .collect();
    let unanswerable: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| !outcome.answerable)
        .collect();
    let share = |count: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            count as f64 / of as f64
        }
    };
    let hit = |k: usize| {
        share(
            answerable
                .iter()
                .filter(|outcome| outcome.rank.is_some_and(|rank| rank <= k))
                .count(),
            answerable.len(),
        )
    };
    let mrr = if answerable.is_empty() {
        0.0
    } else {
        answerable
            .iter()
            .map(|outcome| outcome.rank.map_or(0.0, |rank| 1.0 / rank as f64))
            .sum::<f64>()
            / answerable.len() as f64
    };
    let mut latencies: Vec<f64> = outcomes.iter().map(|outcome| outcome.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    Report {
        questions: outcomes.len(),
        hit_at_1: hit(1),
        hit_at_3: hit(3),
        hit_at_5: hit(5),
        hit_at_10: hit(10),
        mrr_at_10: mrr,
        abstain: (!unanswerable.is_empty()).then(|| {
            share(
                unanswerable.iter().filter(|outcome| !outcome.found).count(),
                unanswerable.len(),
            )
        }),
        false_abstain: share(
            answerable.iter().filter(|outcome| !outcome.found).count(),
            answerable.len(),
        ),
        mean_passage_chars: if passage_chars.is_empty() {
            0.0
        } else {
            passage_chars.iter().sum::<usize>() as f64 / passage_chars.len() as f64
        },
        answer_recall: mean(
            answerable
                .iter()
                .filter_map(|outcome| outcome.answer_recall),
        ),
        answer_chars: mean(
            outcomes
                .iter()
                .filter_map(|outcome| outcome.answer_chars.map(|chars| chars as f64)),
        ),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p95: percentile(&latencies, 0.95),
        generation: generation_report(outcomes),
    }
}

fn generation_report(outcomes: &[Outcome]) -> Option<GenerationReport> {
    let generations: Vec<(&Outcome, &GenerationOutcome)> = outcomes
        .iter()
        .filter_map(|outcome| {
            outcome
                .generation
                .as_ref()
                .map(|generation| (outcome, generation))
        })
        .collect();
    if generations.is_empty() {
        return None;
    }
    let share = |count: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            count as f64 / of as f64
        }
    };
    let generated: Vec<&GenerationOutcome> = generations
        .iter()
        .map(|(_, generation)| *generation)
        .filter(|generation| generation.generated)
        .collect();
    let answerable = generations
        .iter()
        .filter(|(outcome, _)| outcome.answerable)
        .count();
    let answerable_cited = generations
        .iter()
        .filter(|(outcome, generation)| outcome.answerable && generation.verified_citations > 0)
        .count();
    let claims: usize = generated.iter().map(|generation| generation.claims).sum();
    let unsupported: usize = generated
        .iter()
        .map(|generation| generation.unsupported)
        .sum();
    let mut first_tokens: Vec<f64> = generations
        .iter()
        .filter_map(|(_, generation)| generation.first_token_ms)
        .collect();
    first_tokens.sort_by(f64::total_cmp);
    let mut ends: Vec<f64> = generations
        .iter()
        .filter(|(_, generation)| generation.generated || generation.fallback)
        .map(|(outcome, _)| outcome.latency_ms)
        .collect();
    ends.sort_by(f64::total_cmp);
    Some(GenerationReport {
        generated: generated.len(),
        fallbacks: generations
            .iter()
            .filter(|(_, generation)| generation.fallback)
            .count(),
        answerable_with_verified_citation: share(answerable_cited, answerable),
        generated_with_verified_citation: share(
            generated
                .iter()
                .filter(|generation| generation.verified_citations > 0)
                .count(),
            generated.len(),
        ),
        unsupported_sentence_share: share(unsupported, claims),
        sentences: claims,
        first_token_ms_p50: percentile(&first_tokens, 0.50),
        first_token_ms_p95: percentile(&first_tokens, 0.95),
        end_ms_p50: percentile(&ends, 0.50),
        end_ms_p95: percentile(&ends, 0.95),
    })
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), value| {
        (sum + value, count + 1)
    });
    (count > 0).then(|| sum / count as f64)
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `norm(s)`: NFKC, then every whitespace character removed.
fn norm(text: &str) -> String {
    text.nfkc().filter(|ch| !ch.is_whitespace()).collect()
}

/// Whether a passage matches a gold entry (same document, and the evidence inside it).
pub fn matches(gold: &Gold, doc_id: &str, passage_text: &str) -> bool {
    gold.doc == doc_id
        && gold
            .evidence
            .as_ref()
            .is_none_or(|evidence| norm(passage_text).contains(&norm(evidence)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(answerable: bool, rank: Option<usize>, found: bool) -> Outcome {
        Outcome {
            id: String::new(),
            answerable,
            rank,
            found,
            assessment: Assessment::default(),
            answer_recall: None,
            answer_chars: None,
            latency_ms: 1.0,
            generation: None,
        }
    }

    #[test]
    fn metrics_follow_the_eval_readme() {
        let outcomes = [
            outcome(true, Some(1), true),
            outcome(true, Some(4), true),
            outcome(true, None, false),
            outcome(false, None, false),
            outcome(false, None, true),
        ];
        let report = report(&outcomes, &[100, 300]);
        assert_eq!(report.questions, 5);
        assert!((report.hit_at_1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.hit_at_3 - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.hit_at_5 - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.mrr_at_10 - (1.0 + 0.25) / 3.0).abs() < 1e-9);
        assert_eq!(report.abstain, Some(0.5));
        assert!((report.false_abstain - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.mean_passage_chars, 200.0);
    }

    fn generated(
        answerable: bool,
        verified_citations: usize,
        claims: usize,
        unsupported: usize,
        first_token_ms: f64,
        latency_ms: f64,
    ) -> Outcome {
        Outcome {
            latency_ms,
            generation: Some(GenerationOutcome {
                generated: true,
                fallback: false,
                verified_citations,
                claims,
                unsupported,
                first_token_ms: Some(first_token_ms),
                answer: String::new(),
            }),
            ..outcome(answerable, None, verified_citations > 0)
        }
    }

    #[test]
    fn generation_metrics_count_verified_citations_and_dropped_sentences() {
        let mut fallback = outcome(true, None, true);
        fallback.latency_ms = 50.0;
        fallback.generation = Some(GenerationOutcome {
            generated: false,
            fallback: true,
            verified_citations: 0,
            claims: 0,
            unsupported: 0,
            first_token_ms: None,
            answer: String::new(),
        });
        let outcomes = [
            generated(true, 2, 4, 1, 10.0, 100.0),
            generated(true, 0, 2, 2, 20.0, 200.0),
            generated(false, 0, 1, 1, 30.0, 300.0),
            fallback,
            outcome(true, Some(1), true),
        ];
        let generation = report(&outcomes, &[])
            .generation
            .expect("a generation report");
        assert_eq!((generation.generated, generation.fallbacks), (3, 1));
        assert!((generation.answerable_with_verified_citation - 1.0 / 3.0).abs() < 1e-9);
        assert!((generation.generated_with_verified_citation - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(generation.sentences, 7);
        assert!((generation.unsupported_sentence_share - 4.0 / 7.0).abs() < 1e-9);
        assert_eq!(generation.first_token_ms_p50, 20.0);
        assert_eq!(generation.end_ms_p50, 200.0);
        assert_eq!(generation.end_ms_p95, 300.0);

        assert!(
            report(&[outcome(true, Some(1), true)], &[])
                .generation
                .is_none()
        );
    }

    #[test]
    fn evidence_matches_after_nfkc_and_without_whitespace() {
        let gold = Gold {
            doc: "a.txt".into(),
            evidence: Some("ＤＸ推進 課".into()),
        };
        assert!(matches(&gold, "a.txt", "県は DX推進課に"));
        assert!(!matches(&gold, "b.txt", "県は DX推進課に"));
        assert!(!matches(&gold, "a.txt", "県はDX課に"));
    }
}
