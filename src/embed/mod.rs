//! Text to vectors: dense (e5) for meaning, BM25 words and character bigrams for wording.

mod dense;
mod model;
mod rerank;
mod session;
mod sparse;
mod unigram;

pub use dense::{DenseEncoder, DenseOptions, EmbedError, QUERY_CACHE_METRIC};
pub use model::{EMBEDDING_DIM, LoadError, MAX_TOKENS, ModelPaths, load_embedder, load_reranker};
pub use rerank::Reranker;
pub use sparse::{BigramEncoder, Bm25Encoder, SparseEncoderError};

use crate::store::SparseVector;

/// The three encoders every chunk and query goes through.
pub struct Encoders {
    pub dense: DenseEncoder,
    pub bm25: Bm25Encoder,
    pub bigram: BigramEncoder,
}

/// The vectors of one text.
pub struct TextVectors {
    pub dense: Vec<f32>,
    pub bm25: SparseVector,
    pub bigram: SparseVector,
}

impl Encoders {
    /// Vectors of a query (already normalised): the dense vector of its text, the lexical ones
    /// of `lexical` (the text with any added wordings).
    pub fn encode_query(&self, query: &str, lexical: &str) -> Result<TextVectors, EmbedError> {
        Ok(TextVectors {
            dense: self.dense.embed_query(query)?,
            bm25: self.bm25.encode_query(lexical),
            bigram: self.bigram.encode_query(lexical),
        })
    }

    /// Vectors of passages (already normalised), in order.
    pub fn encode_passages(&self, passages: &[String]) -> Result<Vec<TextVectors>, EmbedError> {
        let dense = self.dense.embed_passages(passages)?;
        Ok(dense
            .into_iter()
            .zip(passages)
            .map(|(dense, passage)| TextVectors {
                dense,
                bm25: self.bm25.encode_document(passage),
                bigram: self.bigram.encode_document(passage),
            })
            .collect())
    }
}
