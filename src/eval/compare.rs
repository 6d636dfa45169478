//! Comparisons on a question set: does each group's answer come from the group, and do groups
//! with nothing to say say so? The format is described in `tests/compare/README.md`.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{EvalError, norm, percentile};
use crate::access::{Operator, Role, Scope};
use crate::compare::{GroupAnswer, GroupBy};
use crate::retrieve::PassageFilters;
use crate::service::{CompareRequest, Service, ServiceError};
use crate::store::{ScoredChunk, SearchFilters};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuestion {
    pub id: String,
    pub question: String,
    pub group_by: GroupBy,
    /// The organisation asking; none: the operator, who reads everything.
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub filters: Option<QuestionFilters>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// The expected labels are all the groups there should be.
    #[serde(default)]
    pub exact_groups: bool,
    pub expect: Vec<ExpectedGroup>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionFilters {
    pub owner: Option<String>,
    pub kind: Option<String>,
    pub doc_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedGroup {
    pub label: String,
    /// Text that answers the question for this group; `None`: the group has nothing to say.
    pub evidence: Option<String>,
}

/// The figures of a comparison question set.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub questions: usize,
    /// Groups answered, over all questions.
    pub groups: usize,
    /// Share of groups with citations whose first citation lies in the group (its owner,
    /// document or section).
    pub first_citation_in_group: f64,
    /// Groups expected to answer, with the text that answers.
    pub expected_answers: usize,
    /// Of those: share whose first citation holds that text.
    pub evidence_first: f64,
    /// Of those: share where some citation holds it.
    pub evidence_cited: f64,
    /// Of those: share that said `found: true`.
    pub answered: f64,
    /// Groups expected to have nothing to say.
    pub expected_nothing: usize,
    /// Of those: share that said `found: false`.
    pub nothing_reported: f64,
    /// Expected labels that no group had.
    pub missing_groups: usize,
    /// Groups beyond the expected ones, for questions with `exact_groups`.
    pub unexpected_groups: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
}

/// One question's groups, for error analysis.
#[derive(Debug, Clone, Serialize)]
pub struct CompareOutcome {
    pub id: String,
    pub groups: Vec<GroupOutcome>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupOutcome {
    pub label: String,
    pub found: bool,
    pub first_citation_in_group: Option<bool>,
    /// `None` when the question expects nothing of this group (or nothing was said about it).
    pub evidence_rank: Option<Option<usize>>,
    pub expected_nothing: bool,
}

/// Runs every comparison through the `/v1/compare` path, each in its asker's scope.
pub async fn evaluate_compare(
    service: &Service,
    questions: &[CompareQuestion],
) -> Result<(CompareReport, Vec<CompareOutcome>), EvalError> {
    let mut outcomes = Vec::with_capacity(questions.len());
    for question in questions {
        let service_error = |source| EvalError::Service {
            id: question.id.clone(),
            source,
        };
        let scope = scope_of(service, question.org.as_deref()).map_err(service_error)?;
        let filters = question.filters.clone().unwrap_or_default();
        let request = CompareRequest {
            question: question.question.clone(),
            group_by: question.group_by,
            groups: question.groups.clone(),
            per_group: None,
            filters: PassageFilters::from(SearchFilters {
                owner: filters.owner,
                kind: filters.kind,
                doc_id: filters.doc_id,
                section: None,
            }),
            synthesis: false,
        };
        let started = Instant::now();
        let compared = service
            .compare(scope, request)
            .await
            .map_err(service_error)?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcomes.push(outcome(question, &compared.result.groups, latency_ms));
    }
    Ok((report(&outcomes), outcomes))
}

fn scope_of(service: &Service, org: Option<&str>) -> Result<Scope, ServiceError> {
    let Some(org) = org else {
        return Ok(Operator.scope());
    };
    let principal = crate::service::directory(&service.config)
        .member(org, Role::Reader)
        .ok_or_else(|| {
            ServiceError::InvalidRequest(format!(
                "the question's org {org:?} is not among the configuration's [[organisations]]"
            ))
        })?;
    Ok(principal.scope())
}

fn outcome(question: &CompareQuestion, groups: &[GroupAnswer], latency_ms: f64) -> CompareOutcome {
    let expected = |label: &str| question.expect.iter().find(|e| e.label == label);
    let group_outcomes = groups
        .iter()
        .map(|group| {
            let citations = &group.answer.citations;
            let expectation = expected(&group.label);
            GroupOutcome {
                label: group.label.clone(),
                found: group.answer.found,
                first_citation_in_group: citations
                    .first()
                    .map(|first| lies_in(question.group_by, &group.key, first)),
                evidence_rank: expectation
                    .and_then(|e| e.evidence.as_ref())
                    .map(|evidence| {
                        citations
                            .iter()
                            .position(|cited| norm(&cited.chunk.text).contains(&norm(evidence)))
                            .map(|index| index + 1)
                    }),
                expected_nothing: expectation.is_some_and(|e| e.evidence.is_none()),
            }
        })
        .collect();
    let labels: Vec<&str> = groups.iter().map(|group| group.label.as_str()).collect();
    CompareOutcome {
        id: question.id.clone(),
        groups: group_outcomes,
        missing: question
            .expect
            .iter()
            .filter(|e| !labels.contains(&e.label.as_str()))
            .map(|e| e.label.clone())
            .collect(),
        unexpected: if question.exact_groups {
            labels
                .iter()
                .filter(|label| expected(label).is_none())
                .map(|label| (*label).to_owned())
                .collect()
        } else {
            Vec::new()
        },
        latency_ms,
    }
}

/// Whether a passage belongs to the group with this key.
fn lies_in(group_by: GroupBy, key: &str, passage: &ScoredChunk) -> bool {
    let chunk = &passage.chunk;
    match group_by {
        GroupBy::Owner => chunk.document.owner == key,
        GroupBy::Document => chunk.document.doc_id == key,
        GroupBy::Section => chunk.heading_path.first().is_some_and(|first| first == key),
    }
}

fn report(outcomes: &[CompareOutcome]) -> CompareReport {
    let groups: Vec<&GroupOutcome> = outcomes.iter().flat_map(|o| &o.groups).collect();
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let with_citations: Vec<bool> = groups
        .iter()
        .filter_map(|group| group.first_citation_in_group)
        .collect();
    let answers: Vec<(&&GroupOutcome, Option<usize>)> = groups
        .iter()
        .filter_map(|group| group.evidence_rank.map(|rank| (group, rank)))
        .collect();
    let nothing: Vec<&&GroupOutcome> = groups.iter().filter(|g| g.expected_nothing).collect();
    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    CompareReport {
        questions: outcomes.len(),
        groups: groups.len(),
        first_citation_in_group: share(
            with_citations.iter().filter(|inside| **inside).count(),
            with_citations.len(),
        ),
        expected_answers: answers.len(),
        evidence_first: share(
            answers.iter().filter(|(_, rank)| *rank == Some(1)).count(),
            answers.len(),
        ),
        evidence_cited: share(
            answers.iter().filter(|(_, rank)| rank.is_some()).count(),
            answers.len(),
        ),
        answered: share(
            answers.iter().filter(|(group, _)| group.found).count(),
            answers.len(),
        ),
        expected_nothing: nothing.len(),
        nothing_reported: share(nothing.iter().filter(|g| !g.found).count(), nothing.len()),
        missing_groups: outcomes.iter().map(|o| o.missing.len()).sum(),
        unexpected_groups: outcomes.iter().map(|o| o.unexpected.len()).sum(),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p95: percentile(&latencies, 0.95),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(
        label: &str,
        found: bool,
        first_in: Option<bool>,
        rank: Option<Option<usize>>,
        nothing: bool,
    ) -> GroupOutcome {
        GroupOutcome {
            label: label.to_owned(),
            found,
            first_citation_in_group: first_in,
            evidence_rank: rank,
            expected_nothing: nothing,
        }
    }

    #[test]
    fn shares_count_each_kind_of_expectation() {
        let outcomes = [CompareOutcome {
            id: "c1".to_owned(),
            groups: vec![
                group("北海道", true, Some(true), Some(Some(1)), false),
                group("山梨県", true, Some(true), Some(Some(3)), false),
                group("京都府", false, Some(false), Some(None), false),
                group("沖縄県", false, None, None, true),
                group("宮崎県", true, Some(true), None, true),
            ],
            missing: vec!["青森県".to_owned()],
            unexpected: Vec::new(),
            latency_ms: 10.0,
        }];
        let report = report(&outcomes);
        assert_eq!(report.groups, 5);
        assert!((report.first_citation_in_group - 0.75).abs() < 1e-9);
        assert_eq!(report.expected_answers, 3);
        assert!((report.evidence_first - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.evidence_cited - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.answered - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.expected_nothing, 2);
        assert!((report.nothing_reported - 0.5).abs() < 1e-9);
        assert_eq!(report.missing_groups, 1);
    }
}
