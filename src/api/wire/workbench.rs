//! Bodies of the coordinator's workbench: compare, similar cases, facets and export.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AskResponse, Citation, Filters, Mode, Names, Passage, VerificationReport};
use crate::compare::{Comparison, GroupAnswer, GroupBy};
use crate::export::{Reference, Report, ReportSection, pages};
use crate::facets::{Count, Facets};
use crate::generate::Synthesis;
use crate::service::Searched;
use crate::similar::{SimilarFound, SimilarGroupBy};

/// `POST /v1/compare`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    #[schema(example = "各道府県が希望する伴走支援の内容は")]
    pub question: String,
    /// `owner`: one group per owning organisation; `document`: per document; `section`: per
    /// top-level section (first heading) of the documents in `filters`.
    pub group_by: GroupBy,
    /// Only these groups, in this order: organisation ids, doc ids or section headings (the
    /// `key` of a group in an earlier response). A group the caller cannot read comes back
    /// empty, like one that does not exist.
    pub groups: Option<Vec<String>>,
    /// Passages per group (default 3).
    pub per_group: Option<usize>,
    /// Narrows every group, as in `/v1/search`.
    pub filters: Option<Filters>,
    /// Add a short paragraph on what the groups have in common and where they differ, written
    /// by the language model from the groups' cited passages and verified sentence by sentence
    /// (default false). Needs `[llm]` on the server: without it the request is a 400.
    #[serde(default)]
    pub synthesis: bool,
}

impl CompareRequest {
    pub fn into_request(self) -> crate::service::CompareRequest {
        crate::service::CompareRequest {
            question: self.question,
            group_by: self.group_by,
            groups: self.groups,
            per_group: self.per_group,
            filters: self.filters.map(Into::into).unwrap_or_default(),
            synthesis: self.synthesis,
        }
    }
}

/// One answer per group, in group order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompareResponse {
    pub question: String,
    pub group_by: GroupBy,
    /// When `synthesis` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthesis: Option<CompareSynthesis>,
    pub groups: Vec<CompareGroup>,
    /// Server-side time, in milliseconds.
    pub took_ms: u64,
}

/// What the groups have in common and where they differ, citing the groups' passages.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompareSynthesis {
    /// False when there is no synthesis: fewer than two groups answered, the model failed, or
    /// no sentence was supported by its passages (`warnings` says which).
    pub found: bool,
    /// The verified sentences, each with its `[n]`; empty when not found.
    pub text: String,
    /// The passages `[n]` refers to, numbered from 1 in order of first use.
    pub citations: Vec<SynthesisCitation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationReport>,
    pub warnings: Vec<String>,
}

/// A passage the synthesis cites: a citation as in `/v1/ask`, and the group it belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct SynthesisCitation {
    /// The `key` of the group whose passage this is.
    pub group: String,
    #[serde(flatten)]
    pub citation: Citation,
}

impl CompareSynthesis {
    fn new(synthesis: Synthesis, groups: &[GroupAnswer], names: &Names) -> Self {
        let cited_text = synthesis.found.then_some(synthesis.text.as_str());
        let citations = synthesis
            .citations
            .into_iter()
            .enumerate()
            .map(|(index, cited)| SynthesisCitation {
                group: groups
                    .get(cited.group)
                    .map(|group| group.key.clone())
                    .unwrap_or_default(),
                citation: Citation::numbered(index + 1, cited.passage, cited_text, names),
            })
            .collect();
        Self {
            found: synthesis.found,
            citations,
            verification: synthesis.verification.map(VerificationReport::from),
            text: synthesis.text,
            warnings: synthesis.warnings,
        }
    }
}

/// A group's answer, made only of the group's passages, like `/v1/ask`'s.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompareGroup {
    /// The organisation id, doc id or section heading.
    pub key: String,
    /// For people: the organisation's name, the document's title, or the section heading
    /// without its numbering (「北海道」 for 「別添 3-1 希望する伴走支援（北海道）」).
    pub label: String,
    /// False when the group's passages do not answer the question (or it has none).
    pub found: bool,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationReport>,
    pub warnings: Vec<String>,
}

impl CompareResponse {
    pub fn new(searched: Searched<Comparison>, names: &Names) -> Self {
        let comparison = searched.result;
        Self {
            question: comparison.question,
            group_by: comparison.group_by,
            synthesis: comparison
                .synthesis
                .map(|synthesis| CompareSynthesis::new(synthesis, &comparison.groups, names)),
            groups: comparison
                .groups
                .into_iter()
                .map(|group| {
                    let answered = AskResponse::new(
                        Searched {
                            result: group.answer,
                            took_ms: 0,
                        },
                        names,
                    );
                    CompareGroup {
                        key: group.key,
                        label: group.label,
                        found: answered.found,
                        answer: answered.answer,
                        citations: answered.citations,
                        mode: answered.mode,
                        verification: answered.verification,
                        warnings: answered.warnings,
                    }
                })
                .collect(),
            took_ms: searched.took_ms,
        }
    }
}

/// `POST /v1/similar`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// A draft paragraph, up to 5,000 characters.
    #[schema(example = "市町村のDX推進体制を整えるため、県が専門人材を派遣し、職員研修を行う。")]
    pub text: String,
    /// How many passages, or with `group_by` how many groups (default and maximum as for
    /// `/v1/search`).
    pub top_k: Option<usize>,
    /// Leave out the caller's own organisation's documents (default false).
    #[serde(default)]
    pub exclude_owner: bool,
    /// `owner` or `document`: the response holds `groups`, one per owning organisation or
    /// document, in the order of their best passage, each with its best passages (diversified
    /// as the list is), instead of `passages`.
    pub group_by: Option<SimilarGroupBy>,
    /// Passages per group, with `group_by` (default 3, at most 5).
    pub per_group: Option<usize>,
}

impl SimilarRequest {
    pub fn into_request(self) -> crate::service::SimilarRequest {
        crate::service::SimilarRequest {
            text: self.text,
            top_k: self.top_k,
            exclude_own: self.exclude_owner,
            group_by: self.group_by,
            per_group: self.per_group,
        }
    }
}

/// Passages like the draft, diversified (at most two per document): as one list, or grouped.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarResponse {
    /// Best first; empty with `group_by` (the passages are in `groups`).
    pub passages: Vec<SimilarPassage>,
    /// With `group_by`: best group first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<SimilarGroup>>,
    pub took_ms: u64,
}

/// The passages of one owner or document most like the draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarGroup {
    /// The organisation id or doc id.
    pub key: String,
    /// For people: the organisation's name or the document's title.
    pub label: String,
    pub passages: Vec<SimilarPassage>,
}

/// A passage like the draft; `matched_terms` are the key terms it shares with the draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarPassage {
    #[serde(flatten)]
    pub passage: Passage,
}

impl SimilarResponse {
    pub fn new(searched: Searched<SimilarFound>, names: &Names) -> Self {
        let passages = |found: Vec<crate::similar::SimilarPassage>| -> Vec<SimilarPassage> {
            found
                .into_iter()
                .map(|found| SimilarPassage {
                    passage: Passage::with_terms(found.passage, found.shared_terms, names),
                })
                .collect()
        };
        let (list, groups) = match searched.result {
            SimilarFound::Passages(found) => (passages(found), None),
            SimilarFound::Groups { group_by, groups } => {
                let groups = groups
                    .into_iter()
                    .map(|group| {
                        let passages = passages(group.passages);
                        let label = match group_by {
                            SimilarGroupBy::Owner => names.organisation(&group.key),
                            SimilarGroupBy::Document => passages.first().map_or_else(
                                || group.key.clone(),
                                |first| first.passage.title.clone(),
                            ),
                        };
                        SimilarGroup {
                            key: group.key,
                            label,
                            passages,
                        }
                    })
                    .collect();
                (Vec::new(), Some(groups))
            }
        };
        Self {
            passages: list,
            groups,
            took_ms: searched.took_ms,
        }
    }
}

/// `GET /v1/facets`: what the caller may read, counted per owner, kind and year.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsResponse {
    pub documents: u64,
    pub passages: u64,
    pub owners: Vec<Facet>,
    pub kinds: Vec<Facet>,
    /// By the year of the document's date; undated documents have `key` null.
    pub years: Vec<Facet>,
}

/// One value of a facet and what it counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Facet {
    /// The value to filter by (organisation id, kind, year).
    pub key: Option<String>,
    /// For people.
    pub label: String,
    pub documents: u64,
    pub passages: u64,
}

impl Facet {
    fn new(key: Option<String>, label: String, count: Count) -> Self {
        Self {
            key,
            label,
            documents: count.documents,
            passages: count.passages,
        }
    }
}

impl FacetsResponse {
    pub fn new(facets: Facets, names: &Names) -> Self {
        Self {
            documents: facets.total.documents,
            passages: facets.total.passages,
            owners: facets
                .owners
                .into_iter()
                .map(|(owner, count)| {
                    Facet::new(Some(owner.clone()), names.organisation(&owner), count)
                })
                .collect(),
            kinds: facets
                .kinds
                .into_iter()
                .map(|(kind, count)| Facet::new(Some(kind.clone()), kind, count))
                .collect(),
            years: facets
                .years
                .into_iter()
                .map(|(year, count)| {
                    let label = match &year {
                        Some(year) => format!("{year}年"),
                        None => "日付なし".to_owned(),
                    };
                    Facet::new(year, label, count)
                })
                .collect(),
        }
    }
}

/// Query of `POST /v1/export`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub format: ExportFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Markdown (`text/markdown`).
    Md,
    /// Word, with each citation a footnote.
    Docx,
}

/// `POST /v1/export`: an answer to write out — the body of an `/v1/ask` response with its
/// `question`, or of a `/v1/compare` response. Other fields of those responses are ignored, so
/// a response can be sent back as it came.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExportRequest {
    pub question: String,
    /// An `/v1/ask` answer.
    pub answer: Option<String>,
    pub found: Option<bool>,
    #[serde(default)]
    pub citations: Vec<ExportCitation>,
    /// The groups of a `/v1/compare` response.
    #[serde(default)]
    pub groups: Vec<ExportGroup>,
    /// The synthesis of a `/v1/compare` response, exported before the groups when found.
    pub synthesis: Option<ExportSynthesis>,
}

/// A comparison's synthesis as exported.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExportSynthesis {
    pub found: bool,
    pub text: String,
    #[serde(default)]
    pub citations: Vec<ExportCitation>,
}

/// A compared group as exported.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExportGroup {
    pub label: String,
    pub found: bool,
    pub answer: String,
    #[serde(default)]
    pub citations: Vec<ExportCitation>,
}

/// A citation as exported (the fields of a response's citation that a reference shows).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExportCitation {
    pub n: usize,
    /// The cited document and version, as the response gave them (for the audit trail).
    #[serde(default)]
    pub doc_id: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub title: String,
    pub owner: String,
    pub owner_name: Option<String>,
    #[serde(default)]
    pub page_start: Option<u32>,
    #[serde(default)]
    pub page_end: Option<u32>,
    #[serde(default)]
    pub heading_path: Vec<String>,
    pub text: String,
    /// The sentences the answer relies on; the quote, when given.
    #[serde(default)]
    pub highlights: Vec<String>,
}

impl From<ExportCitation> for Reference {
    fn from(citation: ExportCitation) -> Self {
        let quote = if citation.highlights.is_empty() {
            citation.text
        } else {
            citation.highlights.join("…")
        };
        Self {
            n: citation.n,
            title: citation.title,
            organisation: citation.owner_name.unwrap_or(citation.owner),
            pages: pages(citation.page_start, citation.page_end),
            heading_path: citation.heading_path,
            quote,
        }
    }
}

impl ExportRequest {
    /// The report, or why the body holds no answer.
    pub fn into_report(self) -> Result<Report, &'static str> {
        let sections = match (self.answer, self.groups.is_empty()) {
            (Some(answer), true) => vec![ReportSection {
                heading: None,
                found: self.found.unwrap_or(true),
                answer,
                references: self.citations.into_iter().map(Into::into).collect(),
            }],
            (None, false) => {
                let synthesis =
                    self.synthesis
                        .filter(|synthesis| synthesis.found)
                        .map(|synthesis| ReportSection {
                            heading: Some("共通点と相違点".to_owned()),
                            found: true,
                            answer: synthesis.text,
                            references: synthesis.citations.into_iter().map(Into::into).collect(),
                        });
                synthesis
                    .into_iter()
                    .chain(self.groups.into_iter().map(|group| ReportSection {
                        heading: Some(group.label),
                        found: group.found,
                        answer: group.answer,
                        references: group.citations.into_iter().map(Into::into).collect(),
                    }))
                    .collect()
            }
            _ => {
                return Err(
                    "answer（/v1/ask の結果）か groups（/v1/compare の結果）のどちらか一方を送ってください。",
                );
            }
        };
        Ok(Report {
            question: self.question,
            sections,
        })
    }
}
