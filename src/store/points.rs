//! What every backend stores and checks the same way: point ids, the payload layout, input
//! validation and which of two versions is newer. Keeping these in one place is what makes the backends
//! interchangeable (a migration copies points verbatim, and both give the same answers).

use serde::Deserialize;
use uuid::Uuid;

use super::{ChunkRecord, DocumentMeta, Result, RrfParams, SparseVector, StoreError, StoredChunk};

/// Name of the dense vector in every backend.
pub const DENSE: &str = "dense";
/// Name of the BM25 sparse vector (IDF applied by the engine).
pub const BM25: &str = "bm25";
/// Name of the character-bigram sparse vector (IDF applied by the engine).
pub const BIGRAM: &str = "bigram";
/// Payload fields with a keyword index (every filter the stores apply).
pub const KEYWORD_FIELDS: [&str; 6] = [
    "readers",
    "owner",
    "doc_id",
    "kind",
    "version",
    "heading_path",
];
/// Integer index: listings read only the first chunk of each version.
pub const ORDINAL: &str = "ordinal";
/// Payload fields a listing does not need (the bulk of a payload).
pub const CHUNK_BODY_FIELDS: [&str; 2] = ["text", "heading_path"];

/// Namespace of the point ids: an arbitrary fixed UUID. Changing it changes every point id.
const POINT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_03c5_5b2e_5d0a_9f0e_1c7b_4d6f_2a11);

/// The id of a chunk's point: a UUID v5 of its document id, version and ordinal. The same in
/// every backend, so that writing a chunk twice (a retried upsert, a resumed migration) is
/// idempotent.
pub fn point_id(doc_id: &str, version: &str, ordinal: u32) -> Uuid {
    // A JSON array is an unambiguous encoding of the three parts.
    let name = serde_json::json!([doc_id, version, ordinal]).to_string();
    Uuid::new_v5(&POINT_ID_NAMESPACE, name.as_bytes())
}

/// The payload of a chunk's point: the chunk as a [`StoredChunk`] (its document's fields
/// flattened into it), as a JSON object, which is what both engines store.
pub fn chunk_payload(
    document: &DocumentMeta,
    chunk: &ChunkRecord,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let stored = StoredChunk {
        document: document.clone(),
        ordinal: chunk.ordinal,
        text: chunk.text.clone(),
        heading_path: chunk.heading_path.clone(),
        page_start: chunk.page_start,
        page_end: chunk.page_end,
        char_start: chunk.char_start,
        char_end: chunk.char_end,
        ocr: chunk.ocr,
    };
    match serde_json::to_value(stored) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(other) => Err(invalid(format!("payload is not a JSON object: {other}"))),
        Err(e) => Err(invalid(format!("payload cannot be serialised: {e}"))),
    }
}

/// The chunk record of a stored chunk, given the vectors read back from the store.
pub fn chunk_record(
    stored: StoredChunk,
    dense: Vec<f32>,
    bm25: SparseVector,
    bigram: SparseVector,
) -> (DocumentMeta, ChunkRecord) {
    let record = ChunkRecord {
        ordinal: stored.ordinal,
        text: stored.text,
        heading_path: stored.heading_path,
        page_start: stored.page_start,
        page_end: stored.page_end,
        char_start: stored.char_start,
        char_end: stored.char_end,
        ocr: stored.ocr,
        dense,
        bm25,
        bigram,
    };
    (stored.document, record)
}

/// The two payload fields that identify a document version (for counting chunks per version).
#[derive(Debug, Deserialize)]
pub struct DocumentVersion {
    pub doc_id: String,
    pub version: String,
}

/// RRF weights per source, checked.
pub struct FusionWeights {
    pub dense: f32,
    pub bm25: f32,
    pub bigram: f32,
}

pub fn fusion_weights(params: &RrfParams) -> Result<FusionWeights> {
    if params.k == 0 {
        return Err(invalid("RRF k must be at least 1".to_owned()));
    }
    let weights = FusionWeights {
        dense: params.dense_weight,
        bm25: params.bm25_weight,
        bigram: params.bigram_weight,
    };
    if [weights.dense, weights.bm25, weights.bigram]
        .iter()
        .any(|w| !w.is_finite() || *w < 0.0)
    {
        return Err(invalid(format!(
            "RRF weights must be finite and non-negative: {params:?}"
        )));
    }
    Ok(weights)
}

/// Whether `a` is a newer version than `b` of the same document.
pub fn is_newer(a: &DocumentMeta, b: &DocumentMeta) -> bool {
    (a.ingested_at, &a.version) > (b.ingested_at, &b.version)
}

/// Every item of a paged listing: `fetch(cursor)` returns one page and the next page's cursor
/// (`None` after the last page), starting from `None`.
pub fn collect_pages<T, C>(
    mut fetch: impl FnMut(Option<C>) -> Result<(Vec<T>, Option<C>)>,
) -> Result<Vec<T>> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = fetch(cursor)?;
        items.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// A document's chunks must be non-empty, with unique ordinals including 0.
pub fn validate_chunks(document: &DocumentMeta, chunks: &[ChunkRecord]) -> Result<()> {
    if chunks.is_empty() {
        return Err(invalid(format!(
            "document {} has no chunks (use delete_document to remove a document)",
            document.doc_id
        )));
    }
    let mut ordinals: Vec<u32> = chunks.iter().map(|c| c.ordinal).collect();
    ordinals.sort_unstable();
    if ordinals.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(format!(
            "document {} has duplicate chunk ordinals",
            document.doc_id
        )));
    }
    if ordinals[0] != 0 {
        return Err(invalid(format!(
            "document {} has no chunk with ordinal 0 (listings read it)",
            document.doc_id
        )));
    }
    Ok(())
}

/// A dense vector of `dim` finite values.
pub fn validate_dense(vector: &[f32], dim: usize, what: impl FnOnce() -> String) -> Result<()> {
    if vector.len() != dim || !vector.iter().all(|x| x.is_finite()) {
        return Err(invalid(format!(
            "{} must have {dim} finite values, got {}",
            what(),
            vector.len()
        )));
    }
    Ok(())
}

/// A sparse vector as both engines want it: sorted by index, unique indices, finite values.
pub fn canonical_sparse(vector: &SparseVector, name: &str) -> Result<SparseVector> {
    if vector.indices.len() != vector.values.len() {
        return Err(invalid(format!(
            "sparse vector {name} has {} indices and {} values",
            vector.indices.len(),
            vector.values.len()
        )));
    }
    if !vector.values.iter().all(|v| v.is_finite()) {
        return Err(invalid(format!(
            "sparse vector {name} has a non-finite value"
        )));
    }
    let mut pairs: Vec<(u32, f32)> = vector
        .indices
        .iter()
        .copied()
        .zip(vector.values.iter().copied())
        .collect();
    pairs.sort_unstable_by_key(|(index, _)| *index);
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(invalid(format!(
            "sparse vector {name} has duplicate indices"
        )));
    }
    let (indices, values) = pairs.into_iter().unzip();
    Ok(SparseVector { indices, values })
}

pub fn invalid(reason: String) -> StoreError {
    StoreError::InvalidInput { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable() {
        let id = point_id("doc", "v1", 0);
        assert_eq!(id, point_id("doc", "v1", 0));
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, point_id("doc", "v1", 1));
        assert_ne!(id, point_id("doc", "v2", 0));
        // No ambiguity between the parts.
        assert_ne!(point_id("a\",\"b", "c", 0), point_id("a", "b\",\"c", 0));
    }

    #[test]
    fn canonical_sparse_sorts_and_rejects_bad_vectors() {
        let sorted = canonical_sparse(
            &SparseVector {
                indices: vec![9, 2],
                values: vec![0.5, 1.0],
            },
            "bm25",
        )
        .expect("valid");
        assert_eq!(sorted.indices, vec![2, 9]);
        assert_eq!(sorted.values, vec![1.0, 0.5]);
        for bad in [
            SparseVector {
                indices: vec![1, 1],
                values: vec![1.0, 1.0],
            },
            SparseVector {
                indices: vec![1],
                values: vec![f32::NAN],
            },
            SparseVector {
                indices: vec![1, 2],
                values: vec![1.0],
            },
        ] {
            assert!(matches!(
                canonical_sparse(&bad, "bm25"),
                Err(StoreError::InvalidInput { .. })
            ));
        }
    }
}
