//! Query model instances that share one tokenizer.
//!
//! fastembed's `TextEmbedding` parses its own copy of the tokenizer: for multilingual-e5 (an
//! XLM-R Unigram of 250 000 pieces) that is about 240 MB resident per instance, measured with
//! heaptrack. Queries want one instance per core, so each [`QueryModel`] here is only an ONNX
//! Runtime session of the model file, built as fastembed builds it (graph optimisation level 3,
//! the same environment), and all of them tokenise with one tokenizer configured as fastembed
//! configures it, whose vocabulary is a finite-state transducer of a few megabytes rather than
//! `tokenizers`' 213 MB trie ([`CompactTokenizer`]). The vectors equal fastembed's: mean pooling
//! over the attention mask, then L2 normalisation (a test compares them on the real model).

use std::sync::Arc;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{AddedToken, TruncationParams};

use super::dense::Embed;
use super::model::{
    LoadError, MAX_TOKENS, MODEL_FILE, ModelPaths, onnx_environment, read_tokenizer_files,
};
use super::unigram::CompactTokenizer;

/// The model's output that holds one vector per token.
const TOKEN_OUTPUT: &str = "last_hidden_state";

/// What every query instance shares: the tokenizer, the ONNX Runtime environment, and where the
/// model file is.
pub struct SharedModel {
    tokenizer: Arc<CompactTokenizer>,
    environment: Environment,
    paths: ModelPaths,
}

impl SharedModel {
    /// Reads the model directory and parses its tokenizer once.
    pub fn load(paths: &ModelPaths) -> Result<Self, LoadError> {
        let environment = onnx_environment(&paths.ort_dylib)?;
        let files = read_tokenizer_files(&paths.model_dir, |path, source| LoadError::Unreadable {
            path,
            source,
        })?;
        let invalid = |reason: String| LoadError::Tokenizer {
            dir: paths.model_dir.clone(),
            reason,
        };
        let mut tokenizer: CompactTokenizer = serde_json::from_slice(&files.tokenizer_file)
            .map_err(|e| invalid(format!("tokenizer.json: {e}")))?;
        // As fastembed's `load_tokenizer`: truncation at the model's limit, and the special
        // tokens of special_tokens_map.json added as special. A single text needs no padding.
        let config: serde_json::Value = serde_json::from_slice(&files.tokenizer_config_file)
            .map_err(|e| invalid(format!("tokenizer_config.json: {e}")))?;
        let model_max = config["model_max_length"]
            .as_f64()
            .ok_or_else(|| invalid("tokenizer_config.json has no model_max_length".to_owned()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(model_max as usize),
                ..Default::default()
            }))
            .map_err(|e| invalid(e.to_string()))?;
        let special: serde_json::Value = serde_json::from_slice(&files.special_tokens_map_file)
            .map_err(|e| invalid(format!("special_tokens_map.json: {e}")))?;
        if let serde_json::Value::Object(tokens) = special {
            tokenizer
                .add_special_tokens(tokens.values().filter_map(special_token))
                .map_err(|e| invalid(e.to_string()))?;
        }
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
            environment,
            paths: paths.clone(),
        })
    }

    /// A new session of the model with `threads` intra-op threads.
    pub fn instance(&self, threads: usize) -> Result<QueryModel, LoadError> {
        let failed = |message: String| LoadError::Session {
            dir: self.paths.model_dir.clone(),
            message,
        };
        let session = Session::builder(&self.environment)
            .map_err(|e| failed(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| failed(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| failed(e.to_string()))?
            // Several instances share the cores: a thread waiting for work must not spin on one.
            .with_intra_op_spinning(false)
            .map_err(|e| failed(e.to_string()))?
            .commit_from_file(self.paths.model_dir.join(MODEL_FILE))
            .map_err(|e| failed(e.to_string()))?;
        let token_types = session
            .inputs()
            .iter()
            .any(|input| input.name() == "token_type_ids");
        Ok(QueryModel {
            tokenizer: self.tokenizer.clone(),
            session,
            token_types,
        })
    }
}

/// A special token as special_tokens_map.json gives it: a string, or an object with its options.
fn special_token(value: &serde_json::Value) -> Option<AddedToken> {
    if let Some(content) = value.as_str() {
        return Some(AddedToken::from(content.to_owned(), true));
    }
    Some(AddedToken {
        content: value["content"].as_str()?.to_owned(),
        special: true,
        single_word: value["single_word"].as_bool()?,
        lstrip: value["lstrip"].as_bool()?,
        rstrip: value["rstrip"].as_bool()?,
        normalized: value["normalized"].as_bool()?,
    })
}

/// One ONNX Runtime session of the model, tokenising with the shared tokenizer.
pub struct QueryModel {
    tokenizer: Arc<CompactTokenizer>,
    session: Session,
    token_types: bool,
}

impl QueryModel {
    fn embed_one(&mut self, text: &str) -> Result<Vec<f32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| format!("tokenization failed: {e}"))?;
        let tokens = encoding.get_ids().len();
        let as_tensor = |values: &[u32]| {
            Tensor::from_array((
                [1, values.len()],
                values
                    .iter()
                    .map(|&value| i64::from(value))
                    .collect::<Vec<_>>(),
            ))
            .map_err(|e| e.to_string())
        };
        let mut inputs = ort::inputs![
            "input_ids" => as_tensor(encoding.get_ids())?,
            "attention_mask" => as_tensor(encoding.get_attention_mask())?,
        ];
        if self.token_types {
            inputs.push((
                "token_type_ids".into(),
                as_tensor(encoding.get_type_ids())?.into(),
            ));
        }
        let outputs = self.session.run(inputs).map_err(|e| e.to_string())?;
        let output = outputs
            .get(TOKEN_OUTPUT)
            .ok_or_else(|| format!("the model has no {TOKEN_OUTPUT} output"))?;
        let (shape, values) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let dim = match shape.as_ref() {
            [1, rows, dim] if *rows as usize == tokens => *dim as usize,
            other => return Err(format!("unexpected {TOKEN_OUTPUT} shape {other:?}")),
        };
        Ok(mean_pooled(values, encoding.get_attention_mask(), dim))
    }
}

/// The mean of the token vectors the mask keeps, L2-normalised (fastembed's `Pooling::Mean`).
fn mean_pooled(tokens: &[f32], mask: &[u32], dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; dim];
    let mut kept = 0.0f32;
    for (token, &keep) in tokens.chunks_exact(dim).zip(mask) {
        if keep == 0 {
            continue;
        }
        kept += 1.0;
        for (total, value) in sum.iter_mut().zip(token) {
            *total += value;
        }
    }
    let kept = if kept == 0.0 { 1.0 } else { kept };
    sum.iter_mut().for_each(|value| *value /= kept);
    // fastembed adds this epsilon too.
    let norm = sum.iter().map(|value| value * value).sum::<f32>().sqrt() + 1e-12;
    sum.iter_mut().for_each(|value| *value /= norm);
    sum
}

impl Embed for QueryModel {
    fn embed(&mut self, texts: Vec<String>, _batch_size: usize) -> Result<Vec<Vec<f32>>, String> {
        texts.iter().map(|text| self.embed_one(text)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_the_kept_tokens_and_normalises() {
        let tokens = [3.0, 2.0, 3.0, 6.0, 100.0, 100.0];
        let pooled = mean_pooled(&tokens, &[1, 1, 0], 2);
        assert_eq!(pooled, vec![0.6, 0.8]);
        assert_eq!(
            mean_pooled(&[0.0, 0.0], &[1], 2),
            vec![0.0, 0.0],
            "a zero vector stays zero"
        );
    }
}
