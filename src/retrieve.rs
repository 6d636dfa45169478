//! From a question to the passages the caller may read: hybrid search inside the caller's scope.

use hikitsugi_ingest::normalize_chars;

use crate::access::Scope;
use crate::config::RetrievalConfig;
use crate::embed::{EmbedError, Encoders};
use crate::store::{HybridQuery, RrfParams, ScoredChunk, SearchFilters, StoreError, StoreRead};

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

/// The best `top_k` passages for `query` inside `scope`, best first.
pub fn retrieve(
    store: &dyn StoreRead,
    encoders: &Encoders,
    config: &RetrievalConfig,
    scope: &Scope,
    query: &str,
    top_k: usize,
    filters: SearchFilters,
) -> Result<Vec<ScoredChunk>, RetrieveError> {
    let query = normalize_query(query);
    let vectors = encoders.encode_query(&query)?;
    let request = HybridQuery {
        dense: (config.dense_weight > 0.0).then_some(vectors.dense),
        bm25: (config.bm25_weight > 0.0 && !vectors.bm25.indices.is_empty())
            .then_some(vectors.bm25),
        bigram: (config.bigram_weight > 0.0 && !vectors.bigram.indices.is_empty())
            .then_some(vectors.bigram),
        filters,
        prefetch_limit: config.prefetch.max(top_k),
        limit: top_k,
        fusion: RrfParams {
            k: config.rrf_k,
            dense_weight: config.dense_weight,
            bm25_weight: config.bm25_weight,
            bigram_weight: config.bigram_weight,
        },
    };
    let found = store.search(scope, &request)?;
    Ok(drop_out_of_scope(scope, found))
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
