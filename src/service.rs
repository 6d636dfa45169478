//! The service's operations, shared by the HTTP API and the CLI: each takes a principal (or the
//! local operator), runs the blocking work (embedding, store calls, PDF parsing) off the async
//! runtime, and returns domain types.

use std::sync::Arc;
use std::time::Instant;

use hikitsugi_ingest::{ChunkOptions, DocumentMetadata, ParsedDocument, parse_document};

use crate::access::{Principal, Role, Scope};
use crate::answer::{Answer, extractive_answer};
use crate::config::Config;
use crate::embed::{Encoders, Reranker};
use crate::generate::{AskEvent, GenerateError, Generator, record_answer};
use crate::index::{IndexError, version_of, write_documents};
use crate::retrieve::{Reranking, RetrieveError, Retriever};
use crate::store::{DocumentMeta, ScoredChunk, SearchFilters, StoreError, StoreWrite};

/// Everything a request needs, cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub config: Arc<Config>,
    pub store: Arc<dyn StoreWrite>,
    pub encoders: Arc<Encoders>,
    /// The language model that writes answers; `None` answers extractively.
    pub generator: Option<Arc<Generator>>,
    /// The cross-encoder that reorders retrieved passages; `None` keeps the fused order.
    pub reranker: Option<Arc<Reranker>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Retrieve(#[from] RetrieveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the principal's role does not allow this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A search's passages and how long it took.
pub struct Searched<T> {
    pub result: T,
    pub took_ms: u64,
}

impl Service {
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Service) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let service = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(service)))
            .await
            .map_err(|error| ServiceError::Task(error.to_string()))?
    }

    fn checked_top_k(&self, top_k: Option<usize>) -> Result<usize, ServiceError> {
        let retrieval = &self.config.retrieval;
        match top_k.unwrap_or(retrieval.default_top_k) {
            0 => Err(ServiceError::InvalidRequest(
                "top_k は1以上にしてください。".to_owned(),
            )),
            top_k if top_k > retrieval.max_top_k => Err(ServiceError::InvalidRequest(format!(
                "top_k は{}以下にしてください。",
                retrieval.max_top_k
            ))),
            top_k => Ok(top_k),
        }
    }

    fn checked_query(&self, query: &str, what: &str) -> Result<String, ServiceError> {
        let trimmed = query.trim();
        let max = self.config.retrieval.max_query_chars;
        if trimmed.is_empty() {
            return Err(ServiceError::InvalidRequest(format!("{what}が空です。")));
        }
        if trimmed.chars().count() > max {
            return Err(ServiceError::InvalidRequest(format!(
                "{what}は{max}文字以内にしてください。"
            )));
        }
        Ok(trimmed.to_owned())
    }

    /// Passages for `query` inside `scope`.
    pub async fn search(
        &self,
        scope: Scope,
        query: &str,
        top_k: Option<usize>,
        filters: SearchFilters,
    ) -> Result<Searched<Vec<ScoredChunk>>, ServiceError> {
        let top_k = self.checked_top_k(top_k)?;
        let query = self.checked_query(query, "検索語")?;
        let started = Instant::now();
        let passages = self
            .blocking(move |service| {
                let retriever = Retriever {
                    store: service.store.as_ref(),
                    encoders: &service.encoders,
                    config: &service.config.retrieval,
                    reranking: service.reranker.as_deref().map(|reranker| Reranking {
                        reranker,
                        candidates: service.config.rerank.candidates,
                    }),
                };
                Ok(retriever.retrieve(&scope, &query, top_k, filters)?)
            })
            .await?;
        Ok(Searched {
            result: passages,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// An answer to `question` from passages inside `scope`.
    pub async fn ask(
        &self,
        scope: Scope,
        question: &str,
        top_k: Option<usize>,
    ) -> Result<Searched<Answer>, ServiceError> {
        let started = Instant::now();
        let question = self.checked_query(question, "質問")?;
        let searched = self
            .search(scope, &question, top_k, SearchFilters::default())
            .await?;
        let answer = match &self.generator {
            Some(generator) => {
                generator
                    .answer(&question, searched.result, &self.config.answer)
                    .await
            }
            None => extractive_answer(&question, searched.result, &self.config.answer),
        };
        record_answer(&answer);
        Ok(Searched {
            result: answer,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// [`Service::ask`] as events: the passages, the model's text as it comes (when a model is
    /// configured), then the final answer. Invalid requests and retrieval failures are errors
    /// before any event; after that, every failure ends in an extractive final answer. Dropping
    /// the stream cancels the generation.
    pub async fn ask_stream(
        &self,
        scope: Scope,
        question: &str,
        top_k: Option<usize>,
    ) -> Result<impl futures_util::Stream<Item = AskEvent> + Send + 'static, ServiceError> {
        let question = self.checked_query(question, "質問")?;
        let searched = self
            .search(scope, &question, top_k, SearchFilters::default())
            .await?;
        let answer_config = self.config.answer;
        Ok(match &self.generator {
            Some(generator) => futures_util::future::Either::Left(generator.clone().answer_stream(
                question,
                searched.result,
                answer_config,
            )),
            None => {
                let answer = extractive_answer(&question, searched.result.clone(), &answer_config);
                record_answer(&answer);
                futures_util::future::Either::Right(futures_util::stream::iter([
                    AskEvent::Passages(searched.result),
                    AskEvent::Answer(answer),
                ]))
            }
        })
    }

    pub async fn documents(&self, scope: Scope) -> Result<Vec<DocumentMeta>, ServiceError> {
        self.blocking(move |service| Ok(service.store.documents(&scope)?))
            .await
    }

    /// Stores an uploaded document owned by the principal's organisation. Editors and admins only.
    pub async fn upload(
        &self,
        principal: &Principal,
        file_name: String,
        bytes: Vec<u8>,
        metadata: UploadMetadata,
    ) -> Result<DocumentMeta, ServiceError> {
        if principal.role() < Role::Editor {
            return Err(ServiceError::Forbidden);
        }
        let doc_id = upload_doc_id(principal.org(), &file_name)?;
        metadata.validate()?;
        let metadata = DocumentMetadata {
            title: metadata.title,
            owner: principal.org().to_owned(),
            readers: metadata
                .readers
                .unwrap_or_else(|| vec![principal.org().to_owned()]),
            kind: metadata.kind.unwrap_or_else(|| "document".to_owned()),
            date: metadata.date,
        };
        let options = self.config.chunking.options();
        let scope = principal.scope();
        self.blocking(move |service| {
            let version = version_of(&bytes, &metadata, &options);
            let document = parse(&doc_id, &bytes, metadata, &options)?;
            write_documents(
                &[(document, version)],
                service.store.as_ref(),
                &service.encoders,
            )?;
            service
                .store
                .document(&scope, &doc_id)?
                .ok_or(ServiceError::NotFound)
        })
        .await
    }

    /// Deletes a document. Only editors and admins of the owner organisation; a document the
    /// caller cannot read is reported as not found.
    pub async fn delete(&self, principal: &Principal, doc_id: String) -> Result<(), ServiceError> {
        let principal = principal.clone();
        self.blocking(move |service| {
            let document = service
                .store
                .document(&principal.scope(), &doc_id)?
                .ok_or(ServiceError::NotFound)?;
            if principal.role() < Role::Editor || document.owner != principal.org() {
                return Err(ServiceError::Forbidden);
            }
            service.store.delete_document(&doc_id)?;
            Ok(())
        })
        .await
    }
}

/// Metadata sent with an upload; the owner is always the uploader's organisation.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMetadata {
    pub title: Option<String>,
    /// Org ids, group ids or `public`; default: the uploader's organisation only.
    pub readers: Option<Vec<String>>,
    pub kind: Option<String>,
    pub date: Option<String>,
}

impl UploadMetadata {
    fn validate(&self) -> Result<(), ServiceError> {
        let ids = self.readers.iter().flatten().chain(self.kind.as_ref());
        if let Some(bad) = ids
            .into_iter()
            .find(|id| !hikitsugi_ingest::is_valid_id(id))
        {
            return Err(ServiceError::InvalidRequest(format!(
                "「{bad}」は使えません。readers と kind には半角英数字と - _ . : だけを使ってください。"
            )));
        }
        Ok(())
    }
}

fn parse(
    doc_id: &str,
    bytes: &[u8],
    metadata: DocumentMetadata,
    options: &ChunkOptions,
) -> Result<ParsedDocument, ServiceError> {
    parse_document(doc_id, bytes, metadata, options)
        .map_err(|error| ServiceError::InvalidRequest(error.to_string()))
}

/// Uploaded documents live under `uploads/<org>/<file name>`.
fn upload_doc_id(org: &str, file_name: &str) -> Result<String, ServiceError> {
    let name = std::path::Path::new(file_name)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty() && !name.starts_with('.'))
        .ok_or_else(|| ServiceError::InvalidRequest("ファイル名がありません。".to_owned()))?;
    Ok(format!("uploads/{org}/{name}"))
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    #[error(transparent)]
    Sparse(#[from] crate::embed::SparseEncoderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

impl Service {
    /// Loads the model and opens the store the configuration names.
    pub fn open(config: Config) -> Result<Self, OpenError> {
        // First, so that a bad prompt template fails before the slow model load.
        let generator = Generator::from_config(&config.llm)?.map(Arc::new);
        let paths = model_paths(&config)?;
        let dense = crate::embed::DenseEncoder::load(
            &paths,
            config.model.workers,
            config.model.batch_size,
        )?;
        let reranker = match &config.rerank.model_dir {
            Some(model_dir) => Some(Arc::new(Reranker::load(
                &paths.ort_dylib,
                model_dir,
                config.rerank.max_tokens,
                config.rerank.batch_size,
            )?)),
            None => None,
        };
        let store = crate::store::open(&config.storage, dense.dim())?;
        let encoders = Encoders {
            dense,
            bm25: crate::embed::Bm25Encoder::new()?,
            bigram: crate::embed::BigramEncoder::default(),
        };
        Ok(Self {
            config: Arc::new(config),
            store,
            encoders: Arc::new(encoders),
            generator,
            reranker,
        })
    }
}

/// Where the model and ONNX Runtime are: from the configuration, else from `hikitsugi setup`'s cache.
pub fn model_paths(config: &Config) -> Result<crate::setup::ModelPaths, crate::setup::SetupError> {
    let cache_dir = match &config.model.cache_dir {
        Some(dir) => dir.clone(),
        None => crate::setup::default_cache_dir()?,
    };
    let located = match (&config.model.dir, &config.model.onnxruntime) {
        (Some(model_dir), Some(ort_dylib)) => {
            return Ok(crate::setup::ModelPaths {
                model_dir: model_dir.clone(),
                ort_dylib: ort_dylib.clone(),
            });
        }
        _ => crate::setup::locate_model(&cache_dir)?,
    };
    Ok(crate::setup::ModelPaths {
        model_dir: config.model.dir.clone().unwrap_or(located.model_dir),
        ort_dylib: config
            .model
            .onnxruntime
            .clone()
            .unwrap_or(located.ort_dylib),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_live_under_their_organisation_by_file_name() {
        assert_eq!(
            upload_doc_id("pref-hyogo", "../../etc/議事録.md").unwrap(),
            "uploads/pref-hyogo/議事録.md"
        );
        assert!(upload_doc_id("pref-hyogo", "").is_err());
        assert!(upload_doc_id("pref-hyogo", ".hidden").is_err());
    }

    #[test]
    fn upload_metadata_ids_are_checked() {
        let valid = UploadMetadata {
            readers: Some(vec!["pref-hyogo".into(), "public".into()]),
            kind: Some("minutes".into()),
            ..Default::default()
        };
        assert!(valid.validate().is_ok());
        let spaced = UploadMetadata {
            readers: Some(vec!["pref hyogo".into()]),
            ..Default::default()
        };
        assert!(
            matches!(spaced.validate(), Err(ServiceError::InvalidRequest(message)) if message.contains("pref hyogo"))
        );
        let japanese_kind = UploadMetadata {
            kind: Some("議事録".into()),
            ..Default::default()
        };
        assert!(japanese_kind.validate().is_err());
    }
}
