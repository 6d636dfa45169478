//! Loading the embedding model and a reranker with fastembed, from files already on disk (put
//! there by `hikitsugi setup`, or by an operator). Nothing here downloads or installs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fastembed::{
    InitOptionsUserDefined, Pooling, RerankInitOptionsUserDefined, TextEmbedding, TextRerank,
    TokenizerFiles, UserDefinedEmbeddingModel, UserDefinedRerankingModel,
};

/// Dimension of the embedding vectors.
pub const EMBEDDING_DIM: usize = 384;
/// The ONNX graph's file name in a model directory.
pub(super) const MODEL_FILE: &str = "model.onnx";
/// Longest input in tokens; longer texts are truncated by the tokenizer.
pub const MAX_TOKENS: usize = 512;

/// Locations of a ready model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The fastembed user-defined model directory (`model.onnx`, `tokenizer.json`, …).
    pub model_dir: PathBuf,
    /// The ONNX Runtime shared library to load (`libonnxruntime.so.1.31.1` in the environment).
    pub ort_dylib: PathBuf,
}

/// Why a model could not be loaded. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file of the embedding model cannot be read.
    #[error("cannot read {}: {source}; run `hikitsugi setup` to rebuild the model", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The ONNX Runtime library could not be loaded.
    #[error("cannot load ONNX Runtime from {}: {message}; run `hikitsugi setup` to reinstall it", path.display())]
    OrtLoad { path: PathBuf, message: String },
    /// ONNX Runtime could not start.
    #[error("cannot start ONNX Runtime from {}: {message}; run `hikitsugi setup` to reinstall it", path.display())]
    OrtStart { path: PathBuf, message: String },
    /// The model's tokenizer files are not usable.
    #[error("cannot read the tokenizer of {}: {reason}; run `hikitsugi setup` to rebuild the model", dir.display())]
    Tokenizer { dir: PathBuf, reason: String },
    /// ONNX Runtime refused the model file.
    #[error("cannot load the embedding model from {}: {message}; run `hikitsugi setup` to rebuild it", dir.display())]
    Session { dir: PathBuf, message: String },
    /// fastembed refused the model files.
    #[error("cannot load the embedding model from {}: {source}; run `hikitsugi setup` to rebuild it", dir.display())]
    ModelLoad {
        dir: PathBuf,
        #[source]
        source: Box<fastembed::Error>,
    },
    /// A file of the configured reranker cannot be read.
    #[error("cannot read the reranker file {} ({source}): point rerank.model_dir (HIKITSUGI_RERANK__MODEL_DIR) at a fastembed reranker directory with model.onnx, tokenizer.json, config.json, special_tokens_map.json and tokenizer_config.json, or unset it to turn reranking off", path.display())]
    RerankerUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// fastembed refused the reranker's files.
    #[error("cannot load the reranker from {}: {source}; rerank.model_dir must hold a cross-encoder ONNX model with a `logits` output and its tokenizer files", dir.display())]
    RerankerLoad {
        dir: PathBuf,
        #[source]
        source: Box<fastembed::Error>,
    },
}

/// Loads ONNX Runtime from `paths.ort_dylib` and the model from `paths.model_dir` into fastembed
/// (mean pooling, vectors L2-normalised, inputs truncated to [`MAX_TOKENS`] tokens). Prefix
/// queries with `"query: "` and passages with `"passage: "`. The service embeds with its own
/// sessions ([`crate::embed::DenseEncoder`]); this is the reference their vectors are checked
/// against, and a plain embedder for scripts.
///
/// The first call in a process decides which ONNX Runtime library is loaded; later calls reuse
/// it. `TextEmbedding::embed` takes `&mut self`: use one instance per worker thread, or a lock.
///
/// `threads` caps ONNX Runtime's intra-op threads (`None`: one per core).
pub fn load_embedder(
    paths: &ModelPaths,
    threads: Option<usize>,
) -> Result<TextEmbedding, LoadError> {
    let environment = onnx_environment(&paths.ort_dylib)?;
    let (onnx, tokenizer_files) = read_model_files(&paths.model_dir, |path, source| {
        LoadError::Unreadable { path, source }
    })?;
    let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
    let mut options = InitOptionsUserDefined::new().with_max_length(MAX_TOKENS);
    options.intra_threads = threads;
    options.environment = Some(environment);
    TextEmbedding::try_new_from_user_defined(model, options).map_err(|source| {
        LoadError::ModelLoad {
            dir: paths.model_dir.clone(),
            source: Box::new(source),
        }
    })
}

/// Loads a fastembed user-defined reranker (a cross-encoder) from `model_dir`, with the ONNX
/// Runtime of `ort_dylib`. `TextRerank::rerank` takes `&mut self`: use a lock.
pub fn load_reranker(
    ort_dylib: &Path,
    model_dir: &Path,
    max_tokens: usize,
) -> Result<TextRerank, LoadError> {
    let environment = onnx_environment(ort_dylib)?;
    let (onnx, tokenizer_files) = read_model_files(model_dir, |path, source| {
        LoadError::RerankerUnreadable { path, source }
    })?;
    let model = UserDefinedRerankingModel::new(onnx, tokenizer_files);
    let mut options = RerankInitOptionsUserDefined::new().with_max_length(max_tokens);
    options.environment = Some(environment);
    TextRerank::try_new_from_user_defined(model, options).map_err(|source| {
        LoadError::RerankerLoad {
            dir: model_dir.to_owned(),
            source: Box::new(source),
        }
    })
}

/// The process's ONNX Runtime environment (ONNX Runtime allows one), made on the first call
/// with the library at `ort_dylib`; later calls return it whatever path they name. fastembed is
/// always handed this environment, so it never makes its own.
pub(super) fn onnx_environment(
    ort_dylib: &Path,
) -> Result<ort::environment::Environment, LoadError> {
    static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);
    let mut environment = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(environment) = environment.as_ref() {
        return Ok(environment.clone());
    }
    let builder = ort::init_from(ort_dylib).map_err(|e| LoadError::OrtLoad {
        path: ort_dylib.to_owned(),
        message: e.to_string(),
    })?;
    let built = builder.build().map_err(|e| LoadError::OrtStart {
        path: ort_dylib.to_owned(),
        message: e.to_string(),
    })?;
    Ok(environment.insert(built).clone())
}

/// `model.onnx` and the tokenizer files of a fastembed user-defined model directory.
fn read_model_files(
    dir: &Path,
    unreadable: impl Fn(PathBuf, io::Error) -> LoadError,
) -> Result<(Vec<u8>, TokenizerFiles), LoadError> {
    let tokenizer_files = read_tokenizer_files(dir, &unreadable)?;
    let path = dir.join(MODEL_FILE);
    let onnx = fs::read(&path).map_err(|source| unreadable(path, source))?;
    Ok((onnx, tokenizer_files))
}

/// The tokenizer files of a fastembed user-defined model directory.
pub(super) fn read_tokenizer_files(
    dir: &Path,
    unreadable: impl Fn(PathBuf, io::Error) -> LoadError,
) -> Result<TokenizerFiles, LoadError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read(&path).map_err(|source| unreadable(path, source))
    };
    Ok(TokenizerFiles {
        tokenizer_file: read("tokenizer.json")?,
        config_file: read("config.json")?,
        special_tokens_map_file: read("special_tokens_map.json")?,
        tokenizer_config_file: read("tokenizer_config.json")?,
    })
}
