//! Model instances that share one tokenizer: the query instances and the passage instance.
//!
//! fastembed's `TextEmbedding` parses its own copy of the tokenizer: for multilingual-e5 (an
//! XLM-R Unigram of 250 000 pieces) that is about 240 MB resident per instance, measured with
//! heaptrack, and parsing it leaves ~300 MB more of freed heap behind. Queries want one instance
//! per core, and documents one more, so each [`ModelInstance`] here is only an ONNX Runtime
//! session of the model file, built as fastembed builds it (graph optimisation level 3, the same
//! environment), and all of them tokenise with one tokenizer configured as fastembed configures
//! it, whose vocabulary is a finite-state transducer of a few megabytes rather than
//! `tokenizers`' 213 MB trie ([`CompactTokenizer`]). Batches are padded to their longest text,
//! as fastembed pads them. The vectors equal fastembed's: mean pooling over the attention mask,
//! then L2 normalisation (a test compares them on the real model, for queries and batches of
//! passages).

use std::sync::Arc;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use serde::Deserialize;
use tokenizers::{
    AddedToken, DecoderWrapper, Encoding, Model, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TokenizerImpl, TruncationParams,
};

use super::dense::Embed;
use super::model::{
    LoadError, MAX_TOKENS, MODEL_FILE, ModelPaths, onnx_environment, read_tokenizer_files,
};
use super::unigram::CompactTokenizer;

/// The model's output that holds one vector per token.
const TOKEN_OUTPUT: &str = "last_hidden_state";

/// What every instance shares: the tokenizer, the ONNX Runtime environment, and where the model
/// file is.
pub struct SharedModel {
    tokenizer: Arc<SharedTokenizer>,
    /// The token a batch's shorter texts are padded with (masked out).
    pad_id: u32,
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
        let mut tokenizer = SharedTokenizer::parse(&files.tokenizer_file)
            .map_err(|e| invalid(format!("tokenizer.json: {e}")))?;
        // As fastembed's `load_tokenizer`: truncation at the model's limit, and the special
        // tokens of special_tokens_map.json added as special. Batches are padded when they are
        // run (`ModelInstance::embed_batch`).
        let config: serde_json::Value = serde_json::from_slice(&files.tokenizer_config_file)
            .map_err(|e| invalid(format!("tokenizer_config.json: {e}")))?;
        let model_max = config["model_max_length"]
            .as_f64()
            .ok_or_else(|| invalid("tokenizer_config.json has no model_max_length".to_owned()))?;
        let truncation = TruncationParams {
            max_length: MAX_TOKENS.min(model_max as usize),
            ..Default::default()
        };
        let special: serde_json::Value = serde_json::from_slice(&files.special_tokens_map_file)
            .map_err(|e| invalid(format!("special_tokens_map.json: {e}")))?;
        let special: Vec<AddedToken> = match special {
            serde_json::Value::Object(tokens) => {
                tokens.values().filter_map(special_token).collect()
            }
            _ => Vec::new(),
        };
        tokenizer
            .configure(truncation, &special)
            .map_err(|e| invalid(e.to_string()))?;
        // As fastembed: config.json's pad_token_id, else the id of tokenizer_config.json's
        // pad_token, else 0.
        let model_config: serde_json::Value = serde_json::from_slice(&files.config_file)
            .map_err(|e| invalid(format!("config.json: {e}")))?;
        let pad_token = &config["pad_token"];
        let pad_id = model_config["pad_token_id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .or_else(|| {
                pad_token
                    .as_str()
                    .or_else(|| pad_token["content"].as_str())
                    .and_then(|token| tokenizer.token_to_id(token))
            })
            .unwrap_or(0);
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
            pad_id,
            environment,
            paths: paths.clone(),
        })
    }

    /// How many tokens the model reads of `text`.
    pub fn token_count(&self, text: &str) -> Result<usize, String> {
        self.tokenizer
            .encode(text)
            .map(|encoding| encoding.len())
            .map_err(|e| format!("tokenization failed: {e}"))
    }

    /// A new session of the model with `threads` intra-op threads, which wait for work by
    /// spinning when `spin` (quicker to resume, but a core kept busy meanwhile).
    pub fn instance(&self, threads: usize, spin: bool) -> Result<ModelInstance, LoadError> {
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
            .with_intra_op_spinning(spin)
            .map_err(|e| failed(e.to_string()))?
            .commit_from_file(self.paths.model_dir.join(MODEL_FILE))
            .map_err(|e| failed(e.to_string()))?;
        let token_types = session
            .inputs()
            .iter()
            .any(|input| input.name() == "token_type_ids");
        Ok(ModelInstance {
            tokenizer: self.tokenizer.clone(),
            pad_id: self.pad_id,
            session,
            token_types,
        })
    }
}

/// The instances' tokenizer: a SentencePiece Unigram model (e5's) gets the compact vocabulary of
/// [`CompactTokenizer`], any other model `tokenizers`' own.
enum SharedTokenizer {
    Compact(CompactTokenizer),
    Other(Tokenizer),
}

type Pipeline<M> =
    TokenizerImpl<M, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

impl SharedTokenizer {
    fn parse(json: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            model: ModelKind,
        }
        #[derive(Deserialize)]
        struct ModelKind {
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        let file: File = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if file.model.kind.as_deref() == Some("Unigram") {
            Ok(Self::Compact(
                serde_json::from_slice(json).map_err(|e| e.to_string())?,
            ))
        } else {
            Ok(Self::Other(
                Tokenizer::from_bytes(json).map_err(|e| e.to_string())?,
            ))
        }
    }

    fn configure(
        &mut self,
        truncation: TruncationParams,
        special: &[AddedToken],
    ) -> tokenizers::Result<()> {
        fn configure<M: Model>(
            tokenizer: &mut Pipeline<M>,
            truncation: TruncationParams,
            special: &[AddedToken],
        ) -> tokenizers::Result<()> {
            tokenizer.with_truncation(Some(truncation))?;
            tokenizer.add_special_tokens(special.iter().cloned())?;
            Ok(())
        }
        match self {
            Self::Compact(tokenizer) => configure(tokenizer, truncation, special),
            Self::Other(tokenizer) => configure(tokenizer, truncation, special),
        }
    }

    fn encode(&self, text: &str) -> tokenizers::Result<Encoding> {
        match self {
            Self::Compact(tokenizer) => tokenizer.encode(text, true),
            Self::Other(tokenizer) => tokenizer.encode(text, true),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Compact(tokenizer) => tokenizer.token_to_id(token),
            Self::Other(tokenizer) => tokenizer.token_to_id(token),
        }
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
pub struct ModelInstance {
    tokenizer: Arc<SharedTokenizer>,
    pad_id: u32,
    session: Session,
    token_types: bool,
}

impl ModelInstance {
    /// The vectors of `texts`, run as one batch padded to its longest text.
    fn embed_batch(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = texts
            .iter()
            .map(|text| self.tokenizer.encode(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tokenization failed: {e}"))?;
        let rows = encodings.len();
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        let mut types = Vec::with_capacity(rows * width);
        for encoding in &encodings {
            let padding = width - encoding.len();
            ids.extend(encoding.get_ids().iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(i64::from(self.pad_id), padding));
            mask.extend(encoding.get_attention_mask().iter().map(|&m| i64::from(m)));
            mask.extend(std::iter::repeat_n(0, padding));
            types.extend(encoding.get_type_ids().iter().map(|&t| i64::from(t)));
            types.extend(std::iter::repeat_n(0, padding));
        }
        let as_tensor = |values: &[i64]| {
            Tensor::from_array(([rows, width], values.to_vec())).map_err(|e| e.to_string())
        };
        let mut inputs = ort::inputs![
            "input_ids" => as_tensor(&ids)?,
            "attention_mask" => as_tensor(&mask)?,
        ];
        if self.token_types {
            inputs.push(("token_type_ids".into(), as_tensor(&types)?.into()));
        }
        let outputs = self.session.run(inputs).map_err(|e| e.to_string())?;
        let output = outputs
            .get(TOKEN_OUTPUT)
            .ok_or_else(|| format!("the model has no {TOKEN_OUTPUT} output"))?;
        let (shape, values) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let dim = match shape.as_ref() {
            [r, w, dim] if *r as usize == rows && *w as usize == width => *dim as usize,
            other => return Err(format!("unexpected {TOKEN_OUTPUT} shape {other:?}")),
        };
        if width == 0 || dim == 0 {
            return Err(format!(
                "unexpected {TOKEN_OUTPUT} shape {:?}",
                shape.as_ref()
            ));
        }
        Ok(values
            .chunks_exact(width * dim)
            .zip(mask.chunks_exact(width))
            .map(|(tokens, mask)| mean_pooled(tokens, mask, dim))
            .collect())
    }
}

/// The mean of the token vectors the mask keeps, L2-normalised (fastembed's `Pooling::Mean`).
fn mean_pooled(tokens: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
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

impl Embed for ModelInstance {
    fn embed(&mut self, texts: Vec<String>, batch_size: usize) -> Result<Vec<Vec<f32>>, String> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(batch_size.max(1)) {
            vectors.extend(self.embed_batch(batch)?);
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer_json(pre_tokenizer: &str, model: &str) -> String {
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": null, "pre_tokenizer": {pre_tokenizer}, "post_processor": null,
                "decoder": null, "model": {model}}}"#
        )
    }

    #[test]
    fn a_unigram_model_gets_the_compact_vocabulary_and_any_other_tokenizers_own() {
        let unigram = tokenizer_json(
            r#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}"#,
            r#"{"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["▁hello", -1.0], ["▁world", -1.0]]}"#,
        );
        let word_level = tokenizer_json(
            r#"{"type": "Whitespace"}"#,
            r#"{"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"}"#,
        );
        for (json, compact) in [(unigram, true), (word_level, false)] {
            let tokenizer = SharedTokenizer::parse(json.as_bytes()).unwrap();
            assert_eq!(matches!(tokenizer, SharedTokenizer::Compact(_)), compact);
            let encoding = tokenizer.encode("hello world").unwrap();
            assert_eq!(encoding.get_ids(), [1, 2]);
        }
        assert!(SharedTokenizer::parse(b"{\"model\": {\"type\": \"Unigram\"}}").is_err());
        assert!(SharedTokenizer::parse(b"not json").is_err());
    }

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
