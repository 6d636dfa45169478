//! The `[llm]` section: an OpenAI-compatible Chat Completions endpoint for generated answers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
pub use crate::secret::ApiKey;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The API root, e.g. `http://127.0.0.1:8000/v1` (vLLM, llama.cpp's server),
    /// `http://127.0.0.1:11434/v1` (Ollama) or a cloud provider's. Unset: extractive answers.
    pub base_url: Option<String>,
    /// The `model` field of each request.
    pub model: String,
    /// The API key, best given as `HIKITSUGI_LLM__API_KEY`; never serialised or printed.
    #[serde(skip_serializing)]
    pub api_key: Option<ApiKey>,
    /// Or the name of another environment variable holding the key (e.g. `OPENAI_API_KEY`).
    pub api_key_env: Option<String>,
    /// Whole generation, from sending the request to the last token; past it the answer falls
    /// back to the extractive one. Must stay below `server.request_timeout_ms`.
    pub timeout_ms: u64,
    /// Streamed answers: from sending the request to the first token.
    pub first_token_timeout_ms: u64,
    pub max_tokens: u32,
    pub temperature: f32,
    /// The first this many retrieved passages are given to the model (prompt length, and with
    /// it the time to the first token, grows with each).
    pub max_passages: usize,
    /// A directory with `system.txt` and `user.txt` replacing the built-in `prompts/` (and,
    /// when it has them, `synthesis-system.txt` and `synthesis-user.txt` for comparisons).
    pub prompts_dir: Option<PathBuf>,
    /// What happens to a sentence its passages do not support: `drop` it or `mark` it.
    pub unsupported: UnsupportedPolicy,
    /// Share of a sentence's content (character bigrams) its cited passage must contain.
    pub min_support: f32,
}

/// What a generated sentence that its passages do not support becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedPolicy {
    /// Removed from the answer (and listed in the verification report).
    Drop,
    /// Kept, followed by a visible mark, and listed in the verification report.
    Mark,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: String::new(),
            api_key: None,
            api_key_env: None,
            timeout_ms: 25_000,
            first_token_timeout_ms: 15_000,
            max_tokens: 512,
            temperature: 0.0,
            max_passages: 5,
            prompts_dir: None,
            unsupported: UnsupportedPolicy::Drop,
            // Calibrated on shared/eval/seed (tests/generation/calibration.rs): reference-answer
            // sentences pass against their true source 87% of the time, against the most
            // similar wrong passage 5%; 0.60–0.75 separate equally, the lowest keeps paraphrases.
            min_support: 0.6,
        }
    }
}

impl LlmConfig {
    /// Whether answers are generated: `base_url` is set and not empty (an empty value, as a
    /// deployment's environment may leave it, means off).
    pub fn is_enabled(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty())
    }

    /// The API key: `api_key`, else the variable `api_key_env` names (unset or empty: none).
    pub fn resolved_api_key(&self) -> Option<ApiKey> {
        let given = self
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned())
            .or_else(|| {
                self.api_key_env
                    .as_deref()
                    .and_then(|name| std::env::var(name).ok())
            });
        given.filter(|key| !key.trim().is_empty()).map(ApiKey::new)
    }

    pub(super) fn validate(&self, request_timeout_ms: u64) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(format!("llm: {message}")));
        let Some(base_url) = self.base_url.as_deref().filter(|_| self.is_enabled()) else {
            return Ok(());
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return invalid(format!(
                "base_url {base_url:?} must start with http:// or https://"
            ));
        }
        if self.model.trim().is_empty() {
            return invalid("model must be set when base_url is".to_owned());
        }
        if self.timeout_ms == 0
            || self.first_token_timeout_ms == 0
            || self.max_tokens == 0
            || self.max_passages == 0
        {
            return invalid(
                "timeout_ms, first_token_timeout_ms, max_tokens and max_passages must be at least 1"
                    .to_owned(),
            );
        }
        if self.timeout_ms >= request_timeout_ms {
            return invalid(format!(
                "timeout_ms ({}) must be below server.request_timeout_ms ({request_timeout_ms}), \
                 so that a slow model falls back to the extractive answer instead of timing out the request",
                self.timeout_ms
            ));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return invalid("temperature must be within 0–2".to_owned());
        }
        if !(0.0..=1.0).contains(&self.min_support) {
            return invalid("min_support must be within 0–1".to_owned());
        }
        Ok(())
    }
}
