//! All settings, in one struct, from a TOML file and `HIKITSUGI_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::role::Role;

mod issuers;
mod llm;
mod records;

pub use issuers::{IssuerConfig, SigningAlgorithm};
pub use llm::{ApiKey, LlmConfig, UnsupportedPolicy};
pub use records::{AuditConfig, MetadataConfig, QuestionPolicy};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub model: ModelConfig,
    pub chunking: ChunkingConfig,
    /// How files are read: OCR of scanned pages and images.
    pub ingest: IngestConfig,
    pub retrieval: RetrievalConfig,
    /// Reranking of the fused candidates by a cross-encoder; off without `rerank.model_dir`.
    pub rerank: RerankConfig,
    pub answer: AnswerConfig,
    /// Generated answers; without `llm.base_url` answers stay extractive.
    pub llm: LlmConfig,
    pub organisations: Vec<OrganisationConfig>,
    pub groups: Vec<GroupConfig>,
    pub api_keys: Vec<ApiKeyConfig>,
    /// Identity providers whose signed tokens (JWTs) name a user of an organisation.
    pub issuers: Vec<IssuerConfig>,
    /// Requests per minute per user and per organisation; off unless set.
    pub rate_limits: RateLimitConfig,
    /// The database of the service's own records (feedback, audit trail).
    pub metadata: MetadataConfig,
    /// The audit trail of questions, searches, reads and changes.
    pub audit: AuditConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Overridable by `HIKITSUGI_LISTEN`.
    pub listen: SocketAddr,
    pub request_timeout_ms: u64,
    /// Searches and answers running at once; more get 503 at once.
    pub max_concurrent_queries: usize,
    pub max_upload_bytes: usize,
    pub max_json_bytes: usize,
    /// Uploads being read, parsed and embedded at once; more get 503 at once.
    pub max_concurrent_uploads: usize,
    /// An upload (reading, parsing, embedding, storing) that takes longer gets 504 and stores
    /// nothing.
    pub upload_timeout_ms: u64,
    /// When set, `/metrics` wants this key's SHA-256 (hex) as a bearer token.
    pub metrics_key_sha256: Option<String>,
    /// How long a web app session lasts after sign-in.
    pub session_ttl_minutes: u64,
    /// Mark session cookies `Secure` even when no proxy says the request came over HTTPS.
    pub secure_cookies: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `edge` (embedded, in `data_dir`) or `qdrant` (a Qdrant server or cluster).
    pub backend: StorageBackend,
    /// Where the embedded store keeps its files. Overridable by `HIKITSUGI_DATA_DIR` and `--data-dir`.
    pub data_dir: PathBuf,
    pub qdrant: QdrantConfig,
}

/// `[storage.qdrant]`: how to reach the server and how to create the collection (see the
/// README for each key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QdrantConfig {
    pub url: String,
    /// Set it through `HIKITSUGI_STORAGE__QDRANT__API_KEY`, not in a file. Never serialised
    /// or printed; empty means none.
    #[serde(skip_serializing)]
    pub api_key: Option<ApiKey>,
    pub collection: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub retries: u32,
    pub batch_size: usize,
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_payload: bool,
    pub on_disk_vectors: bool,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".to_owned(),
            api_key: None,
            collection: "hikitsugi".to_owned(),
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            retries: 3,
            batch_size: 256,
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_payload: true,
            on_disk_vectors: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Edge,
    Qdrant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A fastembed-compatible model directory (model.onnx, tokenizer.json, …). Default: the model
    /// `hikitsugi setup` prepares in the cache directory.
    pub dir: Option<PathBuf>,
    /// The ONNX Runtime shared library. Default: the one `hikitsugi setup` installs.
    pub onnxruntime: Option<PathBuf>,
    /// Where `hikitsugi setup` keeps the model and ONNX Runtime. Default: `$HIKITSUGI_CACHE_DIR`,
    /// else `$XDG_CACHE_HOME/hikitsugi`, else `~/.cache/hikitsugi`.
    pub cache_dir: Option<PathBuf>,
    /// Texts embedded in one call.
    pub batch_size: usize,
    /// Model instances for query embedding, each embedding one query at a time; one more embeds
    /// documents. Default: one per core.
    pub workers: usize,
    /// ONNX Runtime threads of each query instance. Threads waiting for work do not spin, so
    /// instances × threads may exceed the cores: a lone query then uses two cores, and
    /// concurrent queries run side by side, one per instance.
    pub query_threads: usize,
    /// Query vectors kept in memory by query text (0: no cache), for questions asked again.
    pub query_cache: usize,
    /// Embeddings that may wait for a free instance; beyond that, 503 at once.
    pub max_queue: usize,
    /// Threads of the instance that embeds documents (ingest, uploads); 0: one per core. Fewer
    /// leave cores to queries while uploads are embedded.
    pub passage_threads: usize,
    /// How much the documents' embedding yields the CPU to queries: the `nice` value (0–19) of
    /// its threads; 0 runs it at the same priority as queries.
    pub passage_nice: i32,
    /// Seconds the document instance stays loaded with nothing to embed (0: for good); it is
    /// loaded again, in about a second, by the next ingest or upload.
    pub passage_unload_after_s: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            dir: None,
            onnxruntime: None,
            cache_dir: None,
            batch_size: 16,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            query_threads: 2,
            query_cache: 1024,
            max_queue: 64,
            passage_threads: 0,
            passage_nice: 10,
            passage_unload_after_s: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkingConfig {
    pub max_chars: usize,
    pub overlap_chars: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// `auto`: pages without a usable text layer, and image files, are read by OCR (tesseract);
    /// `off`: they are reported unreadable (image files are refused).
    pub ocr: OcrMode,
    /// Time one page may take to render and recognise.
    pub ocr_page_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrMode {
    Auto,
    Off,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            ocr: OcrMode::Auto,
            ocr_page_timeout_s: 120,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    pub default_top_k: usize,
    pub max_top_k: usize,
    /// Candidates each prefetch (dense, BM25, bigram) brings before fusion.
    pub prefetch: usize,
    pub rrf_k: u32,
    pub dense_weight: f32,
    pub bm25_weight: f32,
    pub bigram_weight: f32,
    pub max_query_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerankConfig {
    /// A fastembed user-defined reranker directory: `model.onnx` (a cross-encoder with a `logits`
    /// output), `tokenizer.json`, `config.json`, `special_tokens_map.json`,
    /// `tokenizer_config.json`. Unset: no reranking.
    pub model_dir: Option<PathBuf>,
    /// How many fused candidates the reranker scores (at least the requested `top_k` are).
    pub candidates: usize,
    /// Query and passage together are cut to this many tokens.
    pub max_tokens: usize,
    /// Pairs scored in one model call.
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnswerConfig {
    /// Below this confidence that the passages answer the question (see
    /// `answer::answerability`), the answer says nothing was found.
    pub min_confidence: f32,
    pub max_sentences: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub sha256: String,
    pub org: String,
    pub role: Role,
    /// A name for logs (never the key).
    #[serde(default)]
    pub label: String,
}

/// `[rate_limits]`: each a rate in requests per minute and a burst (requests that may arrive at
/// once); a rate of 0 turns that limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Per caller: a token's user, else an API key (by label).
    pub per_user_per_minute: u32,
    /// 0: the same as `per_user_per_minute`.
    pub per_user_burst: u32,
    /// Per organisation, all its callers together.
    pub per_org_per_minute: u32,
    /// 0: the same as `per_org_per_minute`.
    pub per_org_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 30_000,
            max_concurrent_queries: 32,
            max_upload_bytes: 50 * 1024 * 1024,
            max_json_bytes: 64 * 1024,
            max_concurrent_uploads: 2,
            upload_timeout_ms: 600_000,
            metrics_key_sha256: None,
            session_ttl_minutes: 8 * 60,
            secure_cookies: false,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Edge,
            data_dir: PathBuf::from("data"),
            qdrant: QdrantConfig::default(),
        }
    }
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        let defaults = hikitsugi_ingest::ChunkOptions::default();
        Self {
            max_chars: defaults.max_chars,
            overlap_chars: defaults.overlap_chars,
        }
    }
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            default_top_k: 5,
            max_top_k: 50,
            prefetch: 50,
            // Tuned on shared/eval (see README, "Quality"): the lexical side carries Japanese
            // retrieval with this small dense model; dense and bigrams add recall and break ties.
            rrf_k: 2,
            dense_weight: 0.5,
            bm25_weight: 0.5,
            bigram_weight: 1.0,
            max_query_chars: 1000,
        }
    }
}

impl Default for RerankConfig {
    fn default() -> Self {
        Self {
            model_dir: None,
            candidates: 30,
            max_tokens: 512,
            batch_size: 16,
        }
    }
}

impl Default for AnswerConfig {
    fn default() -> Self {
        // Fitted with the weights of answer::answerability (tests/answerability/README.md).
        Self {
            min_confidence: 0.5,
            max_sentences: 4,
        }
    }
}

impl ChunkingConfig {
    pub fn options(&self) -> hikitsugi_ingest::ChunkOptions {
        hikitsugi_ingest::ChunkOptions {
            max_chars: self.max_chars,
            overlap_chars: self.overlap_chars,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file (if given), then `HIKITSUGI_*` variables (`HIKITSUGI_LISTEN`,
    /// `HIKITSUGI_DATA_DIR`, and `HIKITSUGI_SECTION__KEY` for any other key).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Missing {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        // `HIKITSUGI_CONFIG` names this file and is the CLI's business, not a setting.
        let env = Env::prefixed("HIKITSUGI_").ignore(&["config"]).map(|key| {
            match key.as_str().to_ascii_lowercase().as_str() {
                "listen" => "server.listen".into(),
                "data_dir" => "storage.data_dir".into(),
                "cache_dir" => "model.cache_dir".into(),
                other => other.replace("__", ".").into(),
            }
        });
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.chunking
            .options()
            .validate()
            .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        let known_org = |id: &str| self.organisations.iter().any(|org| org.id == id);
        for org in &self.organisations {
            for group in &org.groups {
                if !self.groups.iter().any(|known| &known.id == group) {
                    return Err(ConfigError::Invalid(format!(
                        "organisation {} names unknown group {group}",
                        org.id
                    )));
                }
            }
        }
        let mut labels_by_hash: std::collections::HashMap<String, &str> =
            std::collections::HashMap::new();
        for key in &self.api_keys {
            if let Some(first) =
                labels_by_hash.insert(key.sha256.to_ascii_lowercase(), key.label.as_str())
            {
                return Err(ConfigError::Invalid(format!(
                    "api keys {first:?} and {:?} have the same sha256: one key would act as two principals; give each its own key",
                    key.label
                )));
            }
            if !known_org(&key.org) {
                return Err(ConfigError::Invalid(format!(
                    "api key {:?} names unknown organisation {}",
                    key.label, key.org
                )));
            }
            let is_sha256 =
                key.sha256.len() == 64 && key.sha256.bytes().all(|byte| byte.is_ascii_hexdigit());
            if !is_sha256 {
                return Err(ConfigError::Invalid(format!(
                    "api key {:?}: sha256 must be 64 hex digits (the SHA-256 of the key, never the key itself)",
                    key.label
                )));
            }
        }
        issuers::validate(&self.issuers, known_org)?;
        records::validate(&self.metadata, &self.audit)?;
        let rerank = &self.rerank;
        if rerank.candidates == 0
            || rerank.candidates > self.retrieval.prefetch
            || rerank.max_tokens == 0
            || rerank.batch_size == 0
        {
            return Err(ConfigError::Invalid(
                "rerank: need 0 < candidates <= retrieval.prefetch, max_tokens > 0 and batch_size > 0"
                    .to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&self.answer.min_confidence) {
            return Err(ConfigError::Invalid(
                "answer.min_confidence must lie between 0 and 1".to_owned(),
            ));
        }
        let retrieval = &self.retrieval;
        if retrieval.default_top_k == 0
            || retrieval.default_top_k > retrieval.max_top_k
            || retrieval.prefetch < retrieval.max_top_k
        {
            return Err(ConfigError::Invalid(
                "retrieval: need 0 < default_top_k <= max_top_k <= prefetch".to_owned(),
            ));
        }
        if let Some(hash) = &self.server.metrics_key_sha256
            && (hash.len() != 64 || !hash.bytes().all(|byte| byte.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Invalid(
                "server.metrics_key_sha256 must be 64 hex digits (`hikitsugi hash-key` prints it)"
                    .to_owned(),
            ));
        }
        if self.server.max_concurrent_uploads == 0 || self.server.upload_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "server: max_concurrent_uploads and upload_timeout_ms must be at least 1"
                    .to_owned(),
            ));
        }
        if self.server.max_concurrent_queries == 0 || self.server.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "server: max_concurrent_queries and request_timeout_ms must be at least 1"
                    .to_owned(),
            ));
        }
        self.llm.validate(self.server.request_timeout_ms)?;
        if self.model.batch_size == 0 || self.model.workers == 0 || self.model.query_threads == 0 {
            return Err(ConfigError::Invalid(
                "model: batch_size, workers and query_threads must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether `id` is a configured organisation or group (the tokens a document's owner and
    /// readers may name, besides `public`).
    pub fn is_known_reader(&self, id: &str) -> bool {
        self.organisations.iter().any(|org| org.id == id)
            || self.groups.iter().any(|group| group.id == id)
    }

    /// The organisation's display name, or its id when it has none.
    pub fn organisation_name<'a>(&'a self, org: &'a str) -> &'a str {
        self.organisations
            .iter()
            .find(|known| known.id == org)
            .map_or(org, |known| known.name.as_str())
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    /// Config tests run in a figment `Jail`: it serialises them and clears `HIKITSUGI_*`
    /// variables, which another test (or the developer's shell) may have set.
    fn jailed(test: impl FnOnce(&mut figment::Jail) -> figment::error::Result<()>) {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            test(jail)
        });
    }

    #[test]
    fn the_demo_configuration_loads_and_maps_keys_to_organisations() {
        jailed(|_| {
            let demo = Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/demo/config.toml"
            ));
            let config = Config::load(Some(demo)).map_err(|error| error.to_string())?;
            assert_eq!(config.api_keys.len(), 3);
            let hyogo = config
                .organisations
                .iter()
                .find(|org| org.id == "pref-hyogo");
            assert_eq!(
                hyogo.map(|org| org.groups.as_slice()),
                Some(["hyogo-municipalities".to_owned()].as_slice())
            );
            Ok(())
        });
    }

    #[test]
    fn environment_variables_override_the_file() {
        jailed(|jail| {
            jail.create_file(
                "config.toml",
                "[server]\nlisten = \"127.0.0.1:1\"\n[retrieval]\nrrf_k = 7\n",
            )?;
            jail.set_env("HIKITSUGI_LISTEN", "127.0.0.1:9999");
            jail.set_env("HIKITSUGI_DATA_DIR", "/tmp/elsewhere");
            jail.set_env("HIKITSUGI_RETRIEVAL__PREFETCH", "80");
            jail.set_env("HIKITSUGI_CONFIG", "config.toml");
            let config =
                Config::load(Some(Path::new("config.toml"))).map_err(|error| error.to_string())?;
            assert_eq!(config.server.listen.port(), 9999);
            assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/elsewhere"));
            assert_eq!((config.retrieval.rrf_k, config.retrieval.prefetch), (7, 80));
            Ok(())
        });
    }

    #[test]
    fn the_llm_section_is_off_by_default_and_its_key_comes_from_the_environment() {
        jailed(|jail| {
            assert!(
                !Config::load(None)
                    .map_err(|e| e.to_string())?
                    .llm
                    .is_enabled()
            );
            jail.create_file(
                "config.toml",
                "[llm]\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodel = \"qwen\"\nunsupported = \"mark\"\n",
            )?;
            jail.set_env("HIKITSUGI_LLM__API_KEY", "sk-secret");
            jail.set_env("HIKITSUGI_LLM__TIMEOUT_MS", "9000");
            let config =
                Config::load(Some(Path::new("config.toml"))).map_err(|error| error.to_string())?;
            assert!(config.llm.is_enabled());
            assert_eq!(config.llm.unsupported, UnsupportedPolicy::Mark);
            assert_eq!(config.llm.timeout_ms, 9000);
            let key = config
                .llm
                .resolved_api_key()
                .map(|key| key.expose().to_owned());
            assert_eq!(key.as_deref(), Some("sk-secret"));
            assert!(!format!("{config:?}").contains("sk-secret"));
            assert!(
                !toml::to_string(&config)
                    .map_err(|e| e.to_string())?
                    .contains("sk-secret")
            );

            jail.set_env("HIKITSUGI_LLM__API_KEY", "");
            jail.set_env("OTHER_KEY", "sk-other");
            let mut config = Config::load(None).map_err(|error| error.to_string())?;
            config.llm.api_key = None;
            config.llm.api_key_env = Some("OTHER_KEY".to_owned());
            let key = config
                .llm
                .resolved_api_key()
                .map(|key| key.expose().to_owned());
            assert_eq!(key.as_deref(), Some("sk-other"));
            Ok(())
        });
    }

    #[test]
    fn rerank_settings_come_from_the_environment_and_impossible_ones_are_refused() {
        jailed(|jail| {
            assert_eq!(
                Config::load(None)
                    .map_err(|e| e.to_string())?
                    .rerank
                    .model_dir,
                None
            );
            jail.set_env("HIKITSUGI_RERANK__MODEL_DIR", "/models/reranker");
            jail.set_env("HIKITSUGI_RERANK__CANDIDATES", "20");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.rerank.model_dir,
                Some(PathBuf::from("/models/reranker"))
            );
            assert_eq!(config.rerank.candidates, 20);
            for candidates in ["0", "51"] {
                jail.set_env("HIKITSUGI_RERANK__CANDIDATES", candidates);
                let error = Config::load(None).err().map(|e| e.to_string());
                assert!(
                    error.as_deref().is_some_and(|e| e.contains("rerank")),
                    "{candidates}: {error:?}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn two_keys_with_one_hash_are_refused_with_both_labels() {
        jailed(|jail| {
            let path = jail.directory().join("config.toml");
            let key = |label: &str, org: &str| {
                format!(
                    "[[api_keys]]\nlabel = \"{label}\"\norg = \"{org}\"\nrole = \"reader\"\nsha256 = \"{}\"\n",
                    crate::access::hash_key("same-key")
                )
            };
            let body = format!(
                "[[organisations]]\nid = \"a\"\nname = \"A\"\n[[organisations]]\nid = \"b\"\nname = \"B\"\n{}{}",
                key("first", "a"),
                key("second", "b")
            );
            std::fs::write(&path, body).unwrap();
            let error = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(
                error.contains("\"first\"") && error.contains("\"second\""),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn llm_settings_that_cannot_work_are_refused() {
        jailed(|jail| {
            let write = |body: &str| {
                let path = jail.directory().join("config.toml");
                std::fs::write(&path, body).unwrap();
                Config::load(Some(&path)).map_err(|error| error.to_string())
            };
            let llm = "[llm]\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodel = \"qwen\"\n";
            assert!(write(llm).is_ok());
            assert!(
                write("[llm]\nbase_url = \"http://x/v1\"\n")
                    .unwrap_err()
                    .contains("model")
            );
            assert!(
                write("[llm]\nbase_url = \"ftp://x\"\nmodel = \"m\"\n")
                    .unwrap_err()
                    .contains("http")
            );
            let slow = format!("{llm}timeout_ms = 30000\n");
            assert!(write(&slow).unwrap_err().contains("request_timeout_ms"));
            let slow_but_allowed = format!("[server]\nrequest_timeout_ms = 60000\n{slow}");
            assert!(write(&slow_but_allowed).is_ok());
            assert!(write(&format!("{llm}min_support = 1.5\n")).is_err());
            assert!(write(&format!("{llm}unsupported = \"hide\"\n")).is_err());
            Ok(())
        });
    }

    #[test]
    fn issuers_take_defaults_and_refuse_none_hmac_and_unknown_organisations() {
        jailed(|jail| {
            let write = |issuer: &str| {
                let path = jail.directory().join("config.toml");
                let body = format!(
                    "[[organisations]]\nid = \"a\"\nname = \"A\"\n[[issuers]]\nid = \"portal\"\nissuer = \"https://portal.example\"\naudience = \"hikitsugi\"\njwks_file = \"portal.jwks\"\n{issuer}"
                );
                std::fs::write(&path, body).unwrap();
                Config::load(Some(&path)).map_err(|error| error.to_string())
            };
            let config = write("organisations = [\"a\"]\n")?;
            let issuer = &config.issuers[0];
            assert_eq!(
                (
                    issuer.user_claim.as_str(),
                    issuer.org_claim.as_str(),
                    issuer.groups_claim.as_str()
                ),
                ("sub", "org", "groups")
            );
            assert_eq!(issuer.algorithms.len(), 3);
            assert_eq!(issuer.max_lifetime_minutes, 60);
            assert_eq!(config.rate_limits, RateLimitConfig::default());

            let hmac = write("organisations = [\"a\"]\nalgorithms = [\"RS256\", \"HS256\"]\n")
                .unwrap_err();
            assert!(hmac.contains("HS256") && hmac.contains("refused"), "{hmac}");
            let none = write("organisations = [\"a\"]\nalgorithms = [\"none\"]\n").unwrap_err();
            assert!(none.contains("\"none\" is refused"), "{none}");
            let unknown = write("organisations = [\"a\", \"b\"]\n").unwrap_err();
            assert!(unknown.contains("unknown organisation b"), "{unknown}");
            let origin = write(
                "organisations = [\"a\"]\nsign_in_origins = [\"https://portal.example/login\"]\n",
            )
            .unwrap_err();
            assert!(origin.contains("sign_in_origins"), "{origin}");
            assert!(write("organisations = []\n").is_err());
            Ok(())
        });
    }

    #[test]
    fn invalid_settings_are_refused_with_a_reason() {
        jailed(|jail| {
            let write = |body: &str| {
                let path = jail.directory().join("config.toml");
                std::fs::write(&path, body).unwrap();
                Config::load(Some(&path))
            };
            let plaintext_key = "[[organisations]]\nid = \"a\"\nname = \"A\"\n[[api_keys]]\nsha256 = \"secret\"\norg = \"a\"\nrole = \"reader\"\n";
            assert!(
                write(plaintext_key)
                    .unwrap_err()
                    .to_string()
                    .contains("64 hex digits")
            );
            assert!(
                write("[retrieval]\ndefault_top_k = 0\n")
                    .unwrap_err()
                    .to_string()
                    .contains("top_k")
            );
            assert!(write("[server]\nlisten = \"nowhere\"\n").is_err());
            assert!(
                write("[sever]\nlisten = \"127.0.0.1:1\"\n")
                    .unwrap_err()
                    .to_string()
                    .contains("sever")
            );
            assert!(matches!(
                Config::load(Some(Path::new("/no/such.toml"))),
                Err(ConfigError::Missing { .. })
            ));
            Ok(())
        });
    }
}
