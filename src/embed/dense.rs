//! Dense sentence vectors (multilingual-e5) through fastembed, off the async runtime.

use std::sync::Mutex;

use fastembed::TextEmbedding;

use crate::setup::{ModelPaths, SetupError, load_embedder};

/// Dense vectors of the configured model. `TextEmbedding::embed` needs `&mut self`, so each
/// worker owns one model instance behind its own lock; callers take whichever is free.
pub struct DenseEncoder {
    workers: Vec<Mutex<TextEmbedding>>,
    batch_size: usize,
    dim: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("embedding failed: {0}")]
    Inference(String),
}

const QUERY_PREFIX: &str = "query: ";
const PASSAGE_PREFIX: &str = "passage: ";

impl DenseEncoder {
    /// Loads `workers` instances of the model.
    pub fn load(paths: &ModelPaths, workers: usize, batch_size: usize) -> Result<Self, EmbedError> {
        let workers = (0..workers.max(1))
            .map(|_| load_embedder(paths).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut encoder = Self {
            workers,
            batch_size: batch_size.max(1),
            dim: 0,
        };
        encoder.dim = encoder
            .embed(&["dimension probe".to_owned()], PASSAGE_PREFIX)?
            .first()
            .map_or(0, Vec::len);
        Ok(encoder)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(&[query.to_owned()], QUERY_PREFIX)?
            .pop()
            .ok_or_else(|| EmbedError::Inference("the model returned no vector".to_owned()))
    }

    pub fn embed_passages(&self, passages: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(passages, PASSAGE_PREFIX)
    }

    fn embed(&self, texts: &[String], prefix: &str) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prefixed: Vec<String> = texts.iter().map(|text| format!("{prefix}{text}")).collect();
        let mut worker = self.lock_a_worker()?;
        let vectors = worker
            .embed(prefixed, Some(self.batch_size))
            .map_err(|error| EmbedError::Inference(error.to_string()))?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::Inference(format!(
                "{} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }

    fn lock_a_worker(&self) -> Result<std::sync::MutexGuard<'_, TextEmbedding>, EmbedError> {
        for worker in &self.workers {
            if let Ok(guard) = worker.try_lock() {
                return Ok(guard);
            }
        }
        self.workers[0]
            .lock()
            .map_err(|_| EmbedError::Inference("an embedding worker panicked".to_owned()))
    }
}
