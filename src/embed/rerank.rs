//! Reranking fused candidates with a cross-encoder (a fastembed user-defined reranker).

use std::path::Path;
use std::sync::Mutex;

use fastembed::TextRerank;

use super::EmbedError;
use super::model::load_reranker;

/// A cross-encoder that scores (query, passage) pairs. `TextRerank::rerank` needs `&mut self`,
/// so calls take turns on one instance.
pub struct Reranker {
    model: Mutex<TextRerank>,
    batch_size: usize,
}

impl Reranker {
    pub fn load(
        ort_dylib: &Path,
        model_dir: &Path,
        max_tokens: usize,
        batch_size: usize,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            model: Mutex::new(load_reranker(ort_dylib, model_dir, max_tokens)?),
            batch_size: batch_size.max(1),
        })
    }

    /// The score of each passage for `query`, in the passages' order (higher is better).
    pub fn scores(&self, query: &str, passages: &[String]) -> Result<Vec<f32>, EmbedError> {
        if passages.is_empty() {
            return Ok(Vec::new());
        }
        let mut model = self
            .model
            .lock()
            .map_err(|_| EmbedError::Inference("a reranking call panicked".to_owned()))?;
        let documents: Vec<&str> = passages.iter().map(String::as_str).collect();
        let ranked = model
            .rerank(query, documents.as_slice(), false, Some(self.batch_size))
            .map_err(|error| EmbedError::Inference(format!("reranking failed: {error}")))?;
        let mut scores = vec![f32::NEG_INFINITY; passages.len()];
        for result in ranked {
            if let Some(score) = scores.get_mut(result.index) {
                *score = result.score;
            }
        }
        Ok(scores)
    }
}
