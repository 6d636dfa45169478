//! From a question to the passages the caller may read: hybrid search inside the caller's scope.

use std::sync::LazyLock;

use hikitsugi_ingest::{indexing_text, normalize_chars};
use regex::Regex;

use crate::access::Scope;
use crate::config::RetrievalConfig;
use crate::embed::{EmbedError, Encoders, Reranker, TextVectors};
use crate::store::{
    DocumentMeta, HybridQuery, RrfParams, ScoredChunk, SearchFilters, StoreError, StoreRead,
};

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts results that came back from the store outside the caller's scope (must stay 0).
pub const SCOPE_VIOLATIONS_METRIC: &str = "hikitsugi_scope_violations_total";

/// Normalises a query the way documents are normalised (NFKC, collapsed whitespace).
pub fn normalize_query(query: &str) -> String {
    normalize_chars(query)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text a query's lexical vectors are made of: the query, followed by the other way of
/// writing each era year it names. Japanese public-sector documents write the same year as
/// 「令和7年度」 and as 「R7」 (平成 as 「H30」), often both in one document, so a question in
/// either form should match passages in the other. The dense vector keeps the question as asked.
pub fn lexical_query(query: &str) -> String {
    static ERA_NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(令和|平成)(\d{1,2}|元)年").expect("valid regex"));
    static ERA_LETTER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^A-Za-z0-9])([RH])(\d{1,2})(?:[^0-9A-Za-z]|$)").expect("valid regex")
    });
    let mut variants = Vec::new();
    for era in ERA_NAME.captures_iter(query) {
        let letter = if &era[1] == "令和" { 'R' } else { 'H' };
        let year = if &era[2] == "元" { "1" } else { &era[2] };
        variants.push(format!("{letter}{year}"));
    }
    for era in ERA_LETTER.captures_iter(query) {
        let name = if &era[1] == "R" { "令和" } else { "平成" };
        variants.push(format!("{name}{}年", &era[2]));
    }
    if variants.is_empty() {
        return query.to_owned();
    }
    format!("{query} {}", variants.join(" "))
}

/// A range of document dates (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`, both ends inclusive, compared
/// by month). Not a scope filter: applied to the best candidates after the search, and a
/// document without a date is outside every range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl DateRange {
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// Whether a document's date lies in the range.
    pub fn contains(&self, date: Option<&str>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(date) = date else {
            return false;
        };
        let after_start = self
            .from
            .as_deref()
            .is_none_or(|from| month(date, "12") >= month(from, "01"));
        let before_end = self
            .to
            .as_deref()
            .is_none_or(|to| month(date, "01") <= month(to, "12"));
        after_start && before_end
    }
}

/// `YYYY-MM` of a date; a bare year takes `month_of_year`.
fn month(date: &str, month_of_year: &str) -> String {
    match date.get(..7) {
        Some(month) if date.len() >= 7 => month.to_owned(),
        _ => format!("{}-{month_of_year}", date.get(..4).unwrap_or(date)),
    }
}

/// What narrows a search inside the caller's scope: the store's filters (applied inside the
/// vector search) and a date range (applied after it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassageFilters {
    pub store: SearchFilters,
    pub dates: DateRange,
}

impl PassageFilters {
    /// Whether a document lies inside the filters' owner, kind, document and dates (a section
    /// filter concerns its chunks, not the document).
    pub fn admits_document(&self, document: &DocumentMeta) -> bool {
        let store = &self.store;
        let matches =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        matches(&store.owner, &document.owner)
            && matches(&store.kind, &document.kind)
            && matches(&store.doc_id, &document.doc_id)
            && self.dates.contains(document.date.as_deref())
    }
}

impl From<SearchFilters> for PassageFilters {
    fn from(store: SearchFilters) -> Self {
        Self {
            store,
            dates: DateRange::default(),
        }
    }
}

/// What retrieval runs on.
pub struct Retriever<'a> {
    pub store: &'a dyn StoreRead,
    pub encoders: &'a Encoders,
    pub config: &'a RetrievalConfig,
    /// A cross-encoder that reorders the fused candidates, when one is configured.
    pub reranking: Option<Reranking<'a>>,
}

/// A reranker and how many fused candidates it scores.
pub struct Reranking<'a> {
    pub reranker: &'a Reranker,
    /// Fused candidates the reranker scores (at least `top_k`).
    pub candidates: usize,
}

/// A query encoded once, to be searched with several filters (e.g. one per compared group).
pub struct EncodedQuery {
    /// The query, normalised.
    pub text: String,
    vectors: TextVectors,
}

impl Retriever<'_> {
    /// The best `top_k` passages for `query` inside `scope`, best first.
    pub fn retrieve(
        &self,
        scope: &Scope,
        query: &str,
        top_k: usize,
        filters: PassageFilters,
    ) -> Result<Vec<ScoredChunk>, RetrieveError> {
        let query = self.encode(query)?;
        self.retrieve_encoded(scope, &query, top_k, filters)
    }

    /// Normalises and encodes a query for [`Retriever::retrieve_encoded`].
    pub fn encode(&self, query: &str) -> Result<EncodedQuery, RetrieveError> {
        let text = normalize_query(query);
        let vectors = self.encoders.encode_query(&text, &lexical_query(&text))?;
        Ok(EncodedQuery { text, vectors })
    }

    /// [`Retriever::retrieve`] for a query already encoded.
    pub fn retrieve_encoded(
        &self,
        scope: &Scope,
        query: &EncodedQuery,
        top_k: usize,
        filters: PassageFilters,
    ) -> Result<Vec<ScoredChunk>, RetrieveError> {
        let config = self.config;
        let vectors = &query.vectors;
        let wanted = match &self.reranking {
            Some(reranking) => reranking.candidates.max(top_k),
            None => top_k,
        };
        let PassageFilters {
            store: filters,
            dates,
        } = filters;
        let section = filters.section.clone();
        let checked_after = !dates.is_empty() || section.is_some();
        let mut request = HybridQuery {
            dense: (config.dense_weight > 0.0).then(|| vectors.dense.clone()),
            bm25: (config.bm25_weight > 0.0 && !vectors.bm25.indices.is_empty())
                .then(|| vectors.bm25.clone()),
            bigram: (config.bigram_weight > 0.0 && !vectors.bigram.indices.is_empty())
                .then(|| vectors.bigram.clone()),
            filters,
            prefetch_limit: config.prefetch.max(wanted),
            limit: wanted,
            fusion: RrfParams {
                k: config.rrf_k,
                dense_weight: config.dense_weight,
                bm25_weight: config.bm25_weight,
                bigram_weight: config.bigram_weight,
            },
        };
        let admitted = |passage: &ScoredChunk| {
            (dates.is_empty() || dates.contains(passage.chunk.document.date.as_deref()))
                && section
                    .as_ref()
                    .is_none_or(|section| passage.chunk.heading_path.first() == Some(section))
        };
        // Filters checked after the search drop some of what the store returns. Filtering keeps
        // the fused order, so the first `wanted` admitted of a few more candidates are the first
        // of all of them; only when too few are admitted is every candidate drawn on. (Payloads
        // are read per result: drawing on every candidate at once costs one read per candidate.)
        if checked_after {
            request.limit = (wanted * 2).min(request.prefetch_limit);
        }
        let mut found = drop_out_of_scope(scope, self.store.search(scope, &request)?);
        if checked_after {
            found.retain(admitted);
            if found.len() < wanted && request.limit < request.prefetch_limit {
                request.limit = request.prefetch_limit;
                found = drop_out_of_scope(scope, self.store.search(scope, &request)?);
                found.retain(admitted);
            }
        }
        match &self.reranking {
            Some(reranking) => rerank(reranking.reranker, &query.text, found, top_k),
            None => {
                found.truncate(top_k);
                Ok(found)
            }
        }
    }
}

/// The `top_k` best of `found` by the reranker's scores (which replace the fused ones); equal
/// scores keep the fused order.
fn rerank(
    reranker: &Reranker,
    query: &str,
    found: Vec<ScoredChunk>,
    top_k: usize,
) -> Result<Vec<ScoredChunk>, RetrieveError> {
    let passages: Vec<String> = found
        .iter()
        .map(|passage| {
            let chunk = &passage.chunk;
            indexing_text(&chunk.document.title, &chunk.heading_path, &chunk.text)
        })
        .collect();
    let scores = reranker.scores(query, &passages)?;
    let mut reranked: Vec<ScoredChunk> = found
        .into_iter()
        .zip(scores)
        .map(|(passage, score)| ScoredChunk { score, ..passage })
        .collect();
    reranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    reranked.truncate(top_k);
    Ok(reranked)
}

/// The best passage's fused score over the highest the store's weighted RRF gives (a passage
/// first in every retriever): how far the retrievers agree on it. `None` without passages.
pub fn relative_top_score(config: &RetrievalConfig, passages: &[ScoredChunk]) -> Option<f32> {
    let k = config.rrf_k as f32;
    let highest: f32 = [
        config.dense_weight,
        config.bm25_weight,
        config.bigram_weight,
    ]
    .into_iter()
    .filter(|weight| *weight > 0.0)
    .map(|weight| 1.0 / (1.0 / weight + k - 1.0))
    .sum();
    let best = passages.first()?;
    (highest > 0.0).then(|| best.score / highest)
}

/// The store filters by scope inside the search; this second check only guards against a
/// backend bug, and any hit is logged and counted.
fn drop_out_of_scope(scope: &Scope, found: Vec<ScoredChunk>) -> Vec<ScoredChunk> {
    found
        .into_iter()
        .filter(|passage| {
            let permitted = scope.permits(&passage.chunk.document.readers);
            if !permitted {
                tracing::error!(doc_id = %passage.chunk.document.doc_id, "store returned a passage outside the caller's scope; dropped");
                metrics::counter!(SCOPE_VIOLATIONS_METRIC).increment(1);
            }
            permitted
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges_compare_by_month_and_leave_out_undated_documents() {
        let range = DateRange {
            from: Some("2024-04".to_owned()),
            to: Some("2025-03".to_owned()),
        };
        assert!(range.contains(Some("2024-04")));
        assert!(range.contains(Some("2025-03-31")));
        assert!(range.contains(Some("2024")), "a year overlapping the range");
        assert!(!range.contains(Some("2024-03-31")));
        assert!(!range.contains(Some("2025-04")));
        assert!(!range.contains(None));
        assert!(DateRange::default().contains(None));
        let from_only = DateRange {
            from: Some("2026".to_owned()),
            to: None,
        };
        assert!(from_only.contains(Some("2026-03")) && !from_only.contains(Some("2025-12")));
    }

    #[test]
    fn era_years_are_added_in_their_other_form() {
        assert_eq!(
            lexical_query("令和7年度のDX推進ディレクターは何名"),
            "令和7年度のDX推進ディレクターは何名 R7"
        );
        assert_eq!(
            lexical_query("R6の実績とH30、平成元年"),
            "R6の実績とH30、平成元年 H1 令和6年 平成30年"
        );
        assert_eq!(lexical_query("RPAとR2D2とAR10"), "RPAとR2D2とAR10");
        assert_eq!(lexical_query("伴走支援の体制"), "伴走支援の体制");
    }
}
