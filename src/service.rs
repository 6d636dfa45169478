//! The service's operations, shared by the HTTP API and the CLI: each takes a principal (or the
//! local operator), runs the blocking work (embedding, store calls, PDF parsing) off the async
//! runtime, and returns domain types.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hikitsugi_ingest::{DocumentMetadata, LoadOptions, ParsedDocument};

use crate::access::{Directory, Principal, Role, Scope};
use crate::answer::answerability::{self, Assessment};
use crate::answer::{Answer, extractive_answer};
use crate::compare::{self, Comparison, GroupAnswer, GroupBy, MAX_GROUPS, SectionCache};
use crate::config::{Config, OcrMode};
use crate::convert::ConvertError;
use crate::embed::{DenseOptions, Encoders, Reranker};
use crate::facets::{Facets, facets};
use crate::generate::{AskEvent, GenerateError, Generator, GroupEvidence, record_answer};
use crate::index::{
    IndexError, ReadOptions, parse_bytes, upload_source, version_of, write_documents,
};
use crate::metadata::{Feedback, MetadataError, MetadataStore};
use crate::retrieve::{
    DateRange, PassageFilters, Reranking, RetrieveError, Retriever, relative_top_score,
};
use crate::similar::{
    SimilarFound, SimilarGroup, SimilarGroupBy, SimilarPassage, diversify, group_candidates,
    shared_terms,
};
use crate::store::{
    DocumentMeta, ScoredChunk, StoreAdmin, StoreError, StoreStatus, StoreWrite, StoredChunk,
};

/// Everything a request needs, cheap to clone. The store handle reads only inside a scope (and
/// writes); the operator's handle ([`StoreAdmin`]) is handed out only by
/// [`Service::open_with_operator`], to CLI commands.
/// How `config` has sources read: its chunking, and OCR when `ingest.ocr` is `auto` (looked up
/// on `PATH` now, so that installing tesseract takes effect without a restart).
pub fn read_options(config: &Config) -> ReadOptions {
    ReadOptions {
        chunking: config.chunking.options(),
        load: LoadOptions {
            include_hidden_sheets: false,
            ocr: crate::ocr::engine(
                config.ingest.ocr == OcrMode::Auto,
                std::time::Duration::from_secs(config.ingest.ocr_page_timeout_s),
            ),
        },
    }
}

/// The configured organisations and their groups, as the [`Directory`] that makes principals.
pub fn directory(config: &Config) -> Directory {
    Directory::new(
        config
            .organisations
            .iter()
            .map(|org| (org.id.clone(), org.groups.clone())),
    )
}

#[derive(Clone)]
pub struct Service {
    pub config: Arc<Config>,
    store: Arc<dyn StoreWrite>,
    /// Feedback and the audit trail.
    metadata: Arc<MetadataStore>,
    pub encoders: Arc<Encoders>,
    /// The language model that writes answers; `None` answers extractively.
    pub generator: Option<Arc<Generator>>,
    /// The cross-encoder that reorders retrieved passages; `None` keeps the fused order.
    pub reranker: Option<Arc<Reranker>>,
    /// The top-level sections of documents compared by section, by doc id and version.
    sections: Arc<SectionCache>,
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
    #[error("the request was abandoned (timed out or disconnected)")]
    Cancelled,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Tells blocking work whether the request that wanted it is gone (timed out, disconnected):
/// checked at each stage boundary, so abandoned work stops there instead of running on.
#[derive(Clone)]
pub struct Stages(Arc<AtomicBool>);

impl Stages {
    /// `Err(Cancelled)` once the request is gone.
    pub fn next(&self) -> Result<(), ServiceError> {
        if self.0.load(Ordering::Relaxed) {
            return Err(ServiceError::Cancelled);
        }
        Ok(())
    }
}

/// Marks the work abandoned when the awaiting future is dropped.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Longest title of an upload, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Longest file name of an upload, in characters.
const MAX_FILE_NAME_CHARS: usize = 200;
/// Longest kind, date or reader id of an upload, in characters.
const MAX_ID_CHARS: usize = 64;
/// Most reader tokens of an upload.
const MAX_READERS: usize = 32;
/// Limits of a piece of feedback.
const MAX_FEEDBACK_QUESTION_CHARS: usize = 1_000;
const MAX_FEEDBACK_ANSWER_CHARS: usize = 20_000;
const MAX_FEEDBACK_COMMENT_CHARS: usize = 2_000;
const MAX_FEEDBACK_CITATIONS: usize = 50;
/// Passages per compared group unless the request says otherwise.
pub const DEFAULT_PER_GROUP: usize = 3;
/// Most documents whose sections one comparison reads: sections are found by reading every
/// chunk of each document (once per version, then cached), and sections of many documents are
/// rarely one comparison.
const MAX_SECTION_DOCUMENTS: usize = 3;
/// The documents of the best passages whose whole text is searched for a name the question
/// gives and those passages do not (see [`Assessment::find_names_in`]).
const NAME_DOCUMENTS_READ: usize = 3;
/// Longest draft that `similar` reads, in characters.
pub const MAX_DRAFT_CHARS: usize = 5_000;
/// Candidates drawn per similar passage returned, for diversification to choose from.
const SIMILAR_CANDIDATES_PER_RESULT: usize = 5;
/// Most similar passages from one document.
const SIMILAR_PER_DOCUMENT: usize = 2;
/// Similar passages per group, when grouped, unless the request says otherwise.
pub const DEFAULT_SIMILAR_PER_GROUP: usize = 3;
/// Most similar passages per group.
pub const MAX_SIMILAR_PER_GROUP: usize = 5;

/// A search's passages and how long it took.
pub struct Searched<T> {
    pub result: T,
    pub took_ms: u64,
}

impl Service {
    /// Runs `work` on a blocking thread. When the returned future is dropped before the work
    /// ends, `work` sees it at its next [`Stages::next`] and stops there.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Service, Stages) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let service = self.clone();
        let span = tracing::Span::current();
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(abandoned.clone());
        let stages = Stages(abandoned);
        tokio::task::spawn_blocking(move || span.in_scope(|| work(service, stages)))
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

    /// The retriever over this service's store and encoders; `rerank` uses the configured
    /// cross-encoder, if any.
    fn retriever(&self, rerank: bool) -> Retriever<'_> {
        Retriever {
            store: self.store.as_ref(),
            encoders: &self.encoders,
            config: &self.config.retrieval,
            reranking: self
                .reranker
                .as_deref()
                .filter(|_| rerank)
                .map(|reranker| Reranking {
                    reranker,
                    candidates: self.config.rerank.candidates,
                }),
        }
    }

    /// Passages for `query` inside `scope`.
    pub async fn search(
        &self,
        scope: Scope,
        query: &str,
        top_k: Option<usize>,
        filters: impl Into<PassageFilters>,
    ) -> Result<Searched<Vec<ScoredChunk>>, ServiceError> {
        let filters = filters.into();
        check_dates(&filters.dates)?;
        let top_k = self.checked_top_k(top_k)?;
        let query = self.checked_query(query, "検索語")?;
        let started = Instant::now();
        let passages = self
            .blocking(move |service, stages| {
                stages.next()?;
                let retriever = service.retriever(true);
                Ok(retriever.retrieve(&scope, &query, top_k, filters)?)
            })
            .await?;
        Ok(Searched {
            result: passages,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// One answer per group (owner, document or section) inside `scope`: each group searched
    /// with its own filter, its answer made only of its passages (see [`crate::compare`]).
    pub async fn compare(
        &self,
        scope: Scope,
        request: CompareRequest,
    ) -> Result<Searched<Comparison>, ServiceError> {
        let started = Instant::now();
        let question = self.checked_query(&request.question, "質問")?;
        let per_group = self.checked_top_k(Some(request.per_group.unwrap_or(DEFAULT_PER_GROUP)))?;
        check_dates(&request.filters.dates)?;
        if let Some(keys) = &request.groups {
            if keys.is_empty() {
                return Err(ServiceError::InvalidRequest(
                    "groups が空です。比較するグループを指定するか、groups を省いてください。"
                        .to_owned(),
                ));
            }
            if keys.len() > MAX_GROUPS {
                return Err(ServiceError::InvalidRequest(format!(
                    "groups は{MAX_GROUPS}個までにしてください。"
                )));
            }
        }
        let synthesis = match (request.synthesis, &self.generator) {
            (false, _) => None,
            (true, Some(generator)) => Some(generator.clone()),
            (true, None) => {
                return Err(ServiceError::InvalidRequest(
                    "synthesis（共通点と相違点のまとめ）を使うには、サーバーに言語モデル（[llm]）を設定する必要があります。"
                        .to_owned(),
                ));
            }
        };
        let group_by = request.group_by;
        let group_question = compare::group_question(&question);
        let searched_question = group_question.clone();
        let grouped = self
            .blocking(move |service, stages| {
                let base = request.filters;
                let documents: Vec<DocumentMeta> = service
                    .store
                    .documents(&scope)?
                    .into_iter()
                    .filter(|document| base.admits_document(document))
                    .collect();
                if group_by == GroupBy::Section && documents.len() > MAX_SECTION_DOCUMENTS {
                    return Err(ServiceError::InvalidRequest(format!(
                        "章ごとの比較は、filters で資料を{MAX_SECTION_DOCUMENTS}件以内に絞ってください（doc_id の指定をおすすめします）。"
                    )));
                }
                let mut sections = Vec::new();
                if group_by == GroupBy::Section {
                    for document in &documents {
                        stages.next()?;
                        let read = service.sections.sections(document, || {
                            let chunks =
                                service.store.passages(&scope, &document.doc_id, 0..=u32::MAX)?;
                            Ok::<_, StoreError>(chunks.map_or_else(Vec::new, |(_, chunks)| {
                                compare::document_sections(&chunks)
                            }))
                        })?;
                        sections.extend(read.iter().cloned());
                    }
                }
                let organisation_name =
                    |id: &str| service.config.organisation_name(id).to_owned();
                let known = compare::groups(group_by, &documents, &sections, &base, &organisation_name);
                let groups = match &request.groups {
                    Some(keys) => compare::named_groups(group_by, keys, &known, &base, &organisation_name),
                    None => known,
                };
                if groups.len() > MAX_GROUPS {
                    return Err(ServiceError::InvalidRequest(format!(
                        "比較するグループが{}件あり、上限の{MAX_GROUPS}件を超えます。filters か groups で絞り込んでください。",
                        groups.len()
                    )));
                }
                stages.next()?;
                let retriever = service.retriever(true);
                let query = retriever.encode(&searched_question)?;
                let passages = std::thread::scope(|threads| {
                    let searches: Vec<_> = groups
                        .iter()
                        .map(|group| {
                            let (retriever, query, scope) = (&retriever, &query, &scope);
                            let (service, question) = (&service, searched_question.as_str());
                            threads.spawn(move || {
                                let passages = match &group.filters {
                                    Some(filters) => retriever.retrieve_encoded(
                                        scope,
                                        query,
                                        per_group,
                                        filters.clone(),
                                    )?,
                                    None => Vec::new(),
                                };
                                let assessment = service.assess(scope, question, &passages)?;
                                Ok::<_, RetrieveError>((passages, assessment))
                            })
                        })
                        .collect();
                    searches
                        .into_iter()
                        .map(|search| {
                            search
                                .join()
                                .map_err(|_| ServiceError::Task("a group's search panicked".to_owned()))?
                                .map_err(ServiceError::from)
                        })
                        .collect::<Result<Vec<_>, ServiceError>>()
                })?;
                Ok(groups.into_iter().zip(passages).collect::<Vec<_>>())
            })
            .await?;
        let answer_config = self.config.answer;
        let answers = match &self.generator {
            Some(generator) => {
                futures_util::future::join_all(grouped.into_iter().map(
                    |(group, (passages, assessment))| {
                        let question = group_question.as_str();
                        async move {
                            let answer = generator
                                .answer(question, passages, &assessment, &answer_config)
                                .await;
                            GroupAnswer {
                                key: group.key,
                                label: group.label,
                                answer,
                            }
                        }
                    },
                ))
                .await
            }
            // Extractive answers are CPU work: off the async runtime, the groups in parallel.
            None => {
                let question = group_question.clone();
                self.blocking(move |_, stages| {
                    stages.next()?;
                    std::thread::scope(|threads| {
                        let answering: Vec<_> = grouped
                            .into_iter()
                            .map(|(group, (passages, assessment))| {
                                let question = question.as_str();
                                threads.spawn(move || GroupAnswer {
                                    answer: extractive_answer(
                                        question,
                                        passages,
                                        &assessment,
                                        &answer_config,
                                    ),
                                    key: group.key,
                                    label: group.label,
                                })
                            })
                            .collect();
                        answering
                            .into_iter()
                            .map(|answer| {
                                answer.join().map_err(|_| {
                                    ServiceError::Task("a group's answer panicked".to_owned())
                                })
                            })
                            .collect::<Result<Vec<_>, ServiceError>>()
                    })
                })
                .await?
            }
        };
        let synthesis = match synthesis {
            Some(generator) => {
                let evidence: Vec<GroupEvidence> = answers
                    .iter()
                    .map(|group| GroupEvidence {
                        label: &group.label,
                        passages: if group.answer.found {
                            group.answer.citations.as_slice()
                        } else {
                            &[]
                        },
                    })
                    .collect();
                Some(generator.synthesis(&question, &evidence).await)
            }
            None => None,
        };
        Ok(Searched {
            result: Comparison {
                question,
                group_by,
                groups: answers,
                synthesis,
            },
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Passages most like a draft, diversified and at most two from one document, in one list
    /// or grouped by owner or document; without the principal's own organisation's documents
    /// when `exclude_own` (see [`crate::similar`]).
    pub async fn similar(
        &self,
        principal: &Principal,
        request: SimilarRequest,
    ) -> Result<Searched<SimilarFound>, ServiceError> {
        let started = Instant::now();
        let draft = request.text.trim().to_owned();
        if draft.is_empty() {
            return Err(ServiceError::InvalidRequest("text が空です。".to_owned()));
        }
        if draft.chars().count() > MAX_DRAFT_CHARS {
            return Err(ServiceError::InvalidRequest(format!(
                "text は{MAX_DRAFT_CHARS}文字以内にしてください。"
            )));
        }
        let top_k = self.checked_top_k(request.top_k)?;
        let per_group = match (request.group_by, request.per_group) {
            (_, Some(0)) => {
                return Err(ServiceError::InvalidRequest(
                    "per_group は1以上にしてください。".to_owned(),
                ));
            }
            (_, Some(per_group)) if per_group > MAX_SIMILAR_PER_GROUP => {
                return Err(ServiceError::InvalidRequest(format!(
                    "per_group は{MAX_SIMILAR_PER_GROUP}以下にしてください。"
                )));
            }
            (None, Some(_)) => {
                return Err(ServiceError::InvalidRequest(
                    "per_group は group_by と一緒に指定してください。".to_owned(),
                ));
            }
            (_, per_group) => per_group.unwrap_or(DEFAULT_SIMILAR_PER_GROUP),
        };
        let (group_by, exclude_own) = (request.group_by, request.exclude_own);
        let scope = principal.scope();
        let own = principal.org().to_owned();
        let found = self
            .blocking(move |service, stages| {
                stages.next()?;
                // The reranker reads at most a few hundred tokens of a query: a draft is longer.
                let retriever = service.retriever(false);
                let wanted = match group_by {
                    None => top_k,
                    Some(_) => top_k.saturating_mul(per_group),
                };
                let candidates = wanted.saturating_mul(SIMILAR_CANDIDATES_PER_RESULT);
                let query = retriever.encode(&draft)?;
                let mut found = retriever.retrieve_encoded(
                    &scope,
                    &query,
                    candidates.max(service.config.retrieval.prefetch),
                    PassageFilters::default(),
                )?;
                if exclude_own {
                    found.retain(|passage| passage.chunk.document.owner != own);
                }
                let with_terms = |passages: Vec<ScoredChunk>| -> Vec<SimilarPassage> {
                    passages
                        .into_iter()
                        .map(|passage| SimilarPassage {
                            shared_terms: shared_terms(&query.text, &passage.chunk.text),
                            passage,
                        })
                        .collect()
                };
                Ok(match group_by {
                    None => SimilarFound::Passages(with_terms(diversify(
                        found,
                        top_k,
                        SIMILAR_PER_DOCUMENT,
                    ))),
                    Some(group_by) => {
                        let per_document = match group_by {
                            SimilarGroupBy::Owner => SIMILAR_PER_DOCUMENT,
                            SimilarGroupBy::Document => per_group,
                        };
                        let groups = group_candidates(found, group_by, top_k)
                            .into_iter()
                            .map(|(key, members)| SimilarGroup {
                                key,
                                passages: with_terms(diversify(members, per_group, per_document)),
                            })
                            .collect();
                        SimilarFound::Groups { group_by, groups }
                    }
                })
            })
            .await?;
        Ok(Searched {
            result: found,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Counts of the documents and passages readable in `scope`, per owner, kind and year.
    pub async fn facets(&self, scope: Scope) -> Result<Facets, ServiceError> {
        self.blocking(move |service, _| Ok(facets(&service.store.documents(&scope)?)))
            .await
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
        let (passages, assessment) = self.evidence(scope, &question, top_k).await?;
        let answer = match &self.generator {
            Some(generator) => {
                generator
                    .answer(&question, passages, &assessment, &self.config.answer)
                    .await
            }
            None => extractive_answer(&question, passages, &assessment, &self.config.answer),
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
        let (passages, assessment) = self.evidence(scope, &question, top_k).await?;
        let answer_config = self.config.answer;
        Ok(match &self.generator {
            Some(generator) => futures_util::future::Either::Left(generator.clone().answer_stream(
                question,
                passages,
                assessment,
                answer_config,
            )),
            None => {
                let answer =
                    extractive_answer(&question, passages.clone(), &assessment, &answer_config);
                record_answer(&answer);
                futures_util::future::Either::Right(futures_util::stream::iter([
                    AskEvent::Passages(passages),
                    AskEvent::Answer(answer),
                ]))
            }
        })
    }

    /// The passages for a question (already checked) inside `scope`, and whether they answer it.
    async fn evidence(
        &self,
        scope: Scope,
        question: &str,
        top_k: Option<usize>,
    ) -> Result<(Vec<ScoredChunk>, Assessment), ServiceError> {
        let top_k = self.checked_top_k(top_k)?;
        let question = question.to_owned();
        self.blocking(move |service, stages| {
            stages.next()?;
            let passages = service.retriever(true).retrieve(
                &scope,
                &question,
                top_k,
                PassageFilters::default(),
            )?;
            let assessment = service.assess(&scope, &question, &passages)?;
            Ok((passages, assessment))
        })
        .await
    }

    /// Whether `passages`, as [`Service::retriever`] found them in `scope`, answer `question`.
    fn assess(
        &self,
        scope: &Scope,
        question: &str,
        passages: &[ScoredChunk],
    ) -> Result<Assessment, StoreError> {
        // A reranker replaces the fused scores with its own.
        let top_score = self
            .reranker
            .is_none()
            .then(|| relative_top_score(&self.config.retrieval, passages))
            .flatten();
        let min_confidence = self.config.answer.min_confidence;
        let mut assessment = answerability::assess(
            question,
            passages,
            &self.encoders.bm25,
            top_score,
            min_confidence,
        );
        if !assessment.missing_names.is_empty() {
            let mut documents = Vec::new();
            let mut read: Vec<&str> = Vec::new();
            for passage in passages.iter().take(NAME_DOCUMENTS_READ) {
                let doc_id = passage.chunk.document.doc_id.as_str();
                if read.contains(&doc_id) {
                    continue;
                }
                read.push(doc_id);
                if let Some((_, chunks)) = self.store.passages(scope, doc_id, 0..=u32::MAX)? {
                    documents.extend(chunks);
                }
            }
            assessment.find_names_in(question, &documents, min_confidence);
        }
        Ok(assessment)
    }

    /// The documents readable in `scope`. Their reader lists show only the tokens of the scope
    /// (the caller's organisation, its groups, `public`): who else may read a document is not
    /// the caller's business.
    pub async fn documents(&self, scope: Scope) -> Result<Vec<DocumentMeta>, ServiceError> {
        self.blocking(move |service, _| {
            let mut documents = service.store.documents(&scope)?;
            for document in &mut documents {
                document.readers = visible_readers(&scope, &document.readers);
            }
            Ok(documents)
        })
        .await
    }

    /// Chunks of a readable document around `around` (`radius` on each side), or all of them
    /// when `around` is `None`. A document the scope cannot read is [`ServiceError::NotFound`],
    /// exactly like one that does not exist.
    pub async fn passages(
        &self,
        scope: Scope,
        doc_id: String,
        around: Option<u32>,
        radius: u32,
    ) -> Result<(DocumentMeta, Vec<StoredChunk>), ServiceError> {
        let ordinals = match around {
            Some(ordinal) => ordinal.saturating_sub(radius)..=ordinal.saturating_add(radius),
            None => 0..=u32::MAX,
        };
        self.blocking(move |service, _| {
            let (mut document, passages) = service
                .store
                .passages(&scope, &doc_id, ordinals)?
                .ok_or(ServiceError::NotFound)?;
            document.readers = visible_readers(&scope, &document.readers);
            Ok((document, passages))
        })
        .await
    }

    /// Stores a principal's feedback on an answer. Every cited document must be one the
    /// principal may read (the version is kept as given: the document may have been replaced
    /// since the answer), so feedback cannot name documents of other organisations.
    pub async fn give_feedback(
        &self,
        principal: &Principal,
        user: String,
        mut feedback: Feedback,
    ) -> Result<Feedback, ServiceError> {
        let limits = [
            (
                feedback.question.chars().count(),
                MAX_FEEDBACK_QUESTION_CHARS,
                "question",
            ),
            (
                feedback.answer.chars().count(),
                MAX_FEEDBACK_ANSWER_CHARS,
                "answer",
            ),
            (
                feedback.comment.as_ref().map_or(0, |c| c.chars().count()),
                MAX_FEEDBACK_COMMENT_CHARS,
                "comment",
            ),
            (
                feedback.citations.len(),
                MAX_FEEDBACK_CITATIONS,
                "citations",
            ),
        ];
        if let Some((_, max, field)) = limits.iter().find(|(length, max, _)| length > max) {
            return Err(ServiceError::InvalidRequest(format!(
                "{field} が長すぎます（上限 {max}）。"
            )));
        }
        if feedback.question.trim().is_empty() {
            return Err(ServiceError::InvalidRequest(
                "question が空です。".to_owned(),
            ));
        }
        feedback.org = principal.org().to_owned();
        feedback.user = user;
        let scope = principal.scope();
        self.blocking(move |service, _| {
            for cited in &feedback.citations {
                if service.store.document(&scope, &cited.doc_id)?.is_none() {
                    return Err(ServiceError::InvalidRequest(format!(
                        "citations の文書「{}」は見つかりません。",
                        cited.doc_id
                    )));
                }
            }
            Ok(service.metadata.record_feedback(feedback)?)
        })
        .await
    }

    /// The feedback of the principal's organisation (admins only), newest first.
    pub async fn feedback(&self, principal: &Principal) -> Result<Vec<Feedback>, ServiceError> {
        if principal.role() < Role::Admin {
            return Err(ServiceError::Forbidden);
        }
        let org = principal.org().to_owned();
        self.blocking(move |service, _| Ok(service.metadata.feedback_of(&org, false)?))
            .await
    }

    /// The metadata database (feedback, and the audit trail the HTTP layer writes).
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    /// The same store, model and generator with another configuration and metadata database
    /// (e.g. an audit trail of its own).
    pub fn with_metadata(&self, config: Config, metadata: Arc<MetadataStore>) -> Self {
        Self {
            config: Arc::new(config),
            metadata,
            ..self.clone()
        }
    }

    /// The same store, model and generator with another configuration (e.g. other limits).
    pub fn with_config(&self, config: Config) -> Self {
        Self {
            config: Arc::new(config),
            ..self.clone()
        }
    }

    /// The same model and generator on another store, with `config` (e.g. to compare backends).
    pub fn with_store(&self, config: Config, store: Arc<dyn StoreWrite>) -> Self {
        Self {
            config: Arc::new(config),
            store,
            sections: Arc::default(),
            ..self.clone()
        }
    }

    /// Whether the store answers (for readiness probes).
    pub async fn store_status(&self) -> Result<StoreStatus, ServiceError> {
        self.blocking(move |service, _| Ok(service.store.status()?))
            .await
    }

    /// Stores an uploaded document owned by the principal's organisation. Editors and admins
    /// only (checked by the HTTP layer before the body is read, and again here). Readers may be
    /// the uploader's organisation, its groups and `public`; an admin may name any configured
    /// organisation or group.
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
        let readers = metadata
            .readers
            .unwrap_or_else(|| vec![principal.org().to_owned()]);
        self.check_upload_readers(principal, &readers)?;
        let metadata = DocumentMetadata {
            title: metadata.title,
            owner: principal.org().to_owned(),
            readers,
            kind: metadata.kind.unwrap_or_else(|| "document".to_owned()),
            date: metadata.date,
        };
        let mut options = read_options(&self.config);
        let scope = principal.scope();
        let source = upload_source(principal.org());
        self.blocking(move |service, stages| {
            if let Some(ocr) = options.load.ocr.take() {
                let stages = stages.clone();
                options.load.ocr = Some(crate::ocr::until_abandoned(ocr, move || {
                    stages.next().is_err()
                }));
            }
            let version = version_of(&doc_id, &bytes, &metadata, &options);
            let document = parse(&doc_id, &bytes, metadata, &options)?;
            stages.next()?;
            write_documents(
                &[(document, version)],
                &source,
                service.store.as_ref(),
                &service.encoders,
                &|| stages.next().is_ok(),
            )?;
            service
                .store
                .document(&scope, &doc_id)?
                .ok_or(ServiceError::NotFound)
        })
        .await
    }

    fn check_upload_readers(
        &self,
        principal: &Principal,
        readers: &[String],
    ) -> Result<(), ServiceError> {
        let own: Vec<&str> = std::iter::once(principal.org())
            .chain(principal.groups().iter().map(String::as_str))
            .chain([crate::access::PUBLIC])
            .collect();
        let allowed = |reader: &str| {
            own.contains(&reader)
                || (principal.role() == Role::Admin && self.config.is_known_reader(reader))
        };
        if readers.len() > MAX_READERS {
            return Err(ServiceError::InvalidRequest(format!(
                "readers は{MAX_READERS}個までにしてください。"
            )));
        }
        match readers.iter().find(|reader| !allowed(reader)) {
            None => Ok(()),
            Some(refused) => Err(ServiceError::InvalidRequest(format!(
                "readers に「{refused}」は指定できません。指定できるのは {} です。",
                own.join("、")
            ))),
        }
    }

    /// Deletes a document. Only editors and admins of the owner organisation; a document the
    /// caller cannot read is reported as not found.
    pub async fn delete(&self, principal: &Principal, doc_id: String) -> Result<(), ServiceError> {
        let principal = principal.clone();
        self.blocking(move |service, _| {
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

/// A comparison to run (see [`Service::compare`]).
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub question: String,
    pub group_by: GroupBy,
    /// The groups to answer, by key, in this order; default: every group in the scope and
    /// the filters.
    pub groups: Option<Vec<String>>,
    /// Passages per group (default [`DEFAULT_PER_GROUP`], at most `retrieval.max_top_k`).
    pub per_group: Option<usize>,
    pub filters: PassageFilters,
    /// Add what the groups have in common and where they differ (needs `[llm]`).
    pub synthesis: bool,
}

/// A search for passages like a draft (see [`Service::similar`]).
#[derive(Debug, Clone)]
pub struct SimilarRequest {
    /// The draft, at most [`MAX_DRAFT_CHARS`] characters.
    pub text: String,
    /// How many passages, or with `group_by` how many groups.
    pub top_k: Option<usize>,
    /// Leave out the principal's own organisation's documents.
    pub exclude_own: bool,
    /// One group per owner or document, each with its best passages.
    pub group_by: Option<SimilarGroupBy>,
    /// Passages per group (default [`DEFAULT_SIMILAR_PER_GROUP`], at most
    /// [`MAX_SIMILAR_PER_GROUP`]); only with `group_by`.
    pub per_group: Option<usize>,
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
        if self
            .title
            .as_ref()
            .is_some_and(|title| title.chars().count() > MAX_TITLE_CHARS)
        {
            return Err(ServiceError::InvalidRequest(format!(
                "title は{MAX_TITLE_CHARS}文字以内にしてください。"
            )));
        }
        let short = self
            .readers
            .iter()
            .flatten()
            .chain(self.kind.as_ref())
            .chain(self.date.as_ref());
        if let Some(long) = short
            .into_iter()
            .find(|id| id.chars().count() > MAX_ID_CHARS)
        {
            return Err(ServiceError::InvalidRequest(format!(
                "「{}…」は長すぎます。readers・kind・date は{MAX_ID_CHARS}文字以内にしてください。",
                long.chars().take(20).collect::<String>()
            )));
        }
        if let Some(date) = &self.date
            && !is_document_date(date)
        {
            return Err(ServiceError::InvalidRequest(format!(
                "date「{date}」は YYYY、YYYY-MM または YYYY-MM-DD の形で指定してください。"
            )));
        }
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
    options: &ReadOptions,
) -> Result<ParsedDocument, ServiceError> {
    parse_bytes(doc_id, doc_id, bytes, metadata, options).map_err(|error| {
        tracing::info!(doc_id, %error, "upload refused: the file cannot be read");
        match unreadable_upload(&error) {
            Some(message) => ServiceError::InvalidRequest(message),
            None => ServiceError::from(error),
        }
    })
}

/// What the uploader of a file that cannot be read is told, in Japanese (the log keeps the
/// details); `None` for failures that are not the file's.
fn unreadable_upload(error: &IndexError) -> Option<String> {
    use hikitsugi_ingest::IngestError;
    Some(match error {
        IndexError::Ingest(IngestError::UnsupportedFormat { extension, supported, .. }) => {
            let extension = if extension.is_empty() { "拡張子なし".to_owned() } else { format!(".{extension}") };
            format!("この種類のファイル（{extension}）は登録できません。対応している形式: {supported}、および LibreOffice がある場合の .doc .xls .ppt .rtf .odt .ods .odp")
        }
        IndexError::Ingest(IngestError::UndecodableText { .. }) => "テキストの文字コードを判別できませんでした（UTF-8、UTF-16、Shift_JIS、EUC-JP に対応しています）。UTF-8 で保存し直してから登録してください。".to_owned(),
        IndexError::Ingest(IngestError::Pdf { .. }) => "PDF として読み込めませんでした。ファイルが壊れているか、パスワードで保護されている可能性があります。".to_owned(),
        IndexError::Ingest(IngestError::Office { format, .. }) => format!("{format} として読み込めませんでした。ファイルが壊れていないか、{format} 形式で保存されているかを確認してください。"),
        IndexError::Ingest(IngestError::Html { .. }) => "HTML として読み込めませんでした。ファイルが壊れていないかを確認してください。".to_owned(),
        IndexError::Ingest(IngestError::NoReadableText { pages, .. }) => format!("{pages}ページのどこからも文字を読み取れませんでした。スキャンした資料は、サーバーで文字認識（OCR）が使えるようにするか、文字認識をしてから登録してください。"),
        IndexError::Ingest(IngestError::OcrUnavailable { .. }) => "画像ファイルは文字認識（OCR）で読み取りますが、このサーバーでは文字認識が無効です。管理者に ingest.ocr の設定を確認してもらうか、文字を含む PDF などで登録してください。".to_owned(),
        IndexError::Ingest(IngestError::OcrFailed { .. }) => format!("画像から文字を読み取れませんでした（文字認識に失敗しました）。管理者に {} のインストールを確認してもらうか、解像度の高い画像や文字を含む PDF で登録してください。", crate::ocr::PACKAGES),
        IndexError::Convert(ConvertError::Missing { extension, target, package, .. }) => format!(".{extension} のファイルを読むには LibreOffice が必要ですが、サーバーにインストールされていません。管理者に {package} のインストールを依頼するか、.{target} で保存し直して登録してください。"),
        IndexError::Convert(ConvertError::NotThatFormat { extension, target, .. }) => format!("ファイルの中身が .{extension} の形式ではありません。作成したアプリケーションで開けるかを確認して保存し直すか、.{target} で保存して登録してください。"),
        IndexError::Convert(ConvertError::TimedOut { seconds, target, .. }) => format!("LibreOffice での変換が{seconds}秒以内に終わりませんでした。.{target} で保存し直して登録してください。"),
        IndexError::Convert(ConvertError::Failed { target, .. }) => format!("LibreOffice で変換できませんでした。ファイルが開けるかを確認するか、.{target} で保存し直して登録してください。"),
        _ => return None,
    })
}

fn check_dates(dates: &DateRange) -> Result<(), ServiceError> {
    match [&dates.from, &dates.to]
        .into_iter()
        .flatten()
        .find(|date| !is_document_date(date))
    {
        Some(bad) => Err(ServiceError::InvalidRequest(format!(
            "日付「{bad}」は YYYY、YYYY-MM または YYYY-MM-DD の形で指定してください。"
        ))),
        None => Ok(()),
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, digits only.
fn is_document_date(date: &str) -> bool {
    let parts: Vec<&str> = date.split('-').collect();
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [year] => digits(year, 4),
        [year, month] => digits(year, 4) && digits(month, 2),
        [year, month, day] => digits(year, 4) && digits(month, 2) && digits(day, 2),
        _ => false,
    }
}

/// The reader tokens of a document that the scope holds (all of them for the operator).
fn visible_readers(scope: &Scope, readers: &[String]) -> Vec<String> {
    match scope.reader_tokens() {
        None => readers.to_vec(),
        Some(tokens) => readers
            .iter()
            .filter(|reader| tokens.contains(reader))
            .cloned()
            .collect(),
    }
}

/// Uploaded documents live under `uploads/<org>/<file name>`.
fn upload_doc_id(org: &str, file_name: &str) -> Result<String, ServiceError> {
    let name = std::path::Path::new(file_name)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty() && !name.starts_with('.'))
        .ok_or_else(|| ServiceError::InvalidRequest("ファイル名がありません。".to_owned()))?;
    if name.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(ServiceError::InvalidRequest(format!(
            "ファイル名は{MAX_FILE_NAME_CHARS}文字以内にしてください。"
        )));
    }
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
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl Service {
    /// Loads the model and opens the store the configuration names.
    pub fn open(config: Config) -> Result<Self, OpenError> {
        Ok(Self::open_with_operator(config)?.0)
    }

    /// [`Service::open`], plus the operator's handle on the same store (for CLI commands).
    pub fn open_with_operator(config: Config) -> Result<(Self, Arc<dyn StoreAdmin>), OpenError> {
        // First, so that a bad prompt template fails before the slow model load.
        let generator = Generator::from_config(&config.llm)?.map(Arc::new);
        let paths = model_paths(&config)?;
        let dense = crate::embed::DenseEncoder::load(&paths, &dense_options(&config.model))?;
        let reranker = match &config.rerank.model_dir {
            Some(model_dir) => Some(Arc::new(Reranker::load(
                &paths.ort_dylib,
                model_dir,
                config.rerank.max_tokens,
                config.rerank.batch_size,
            )?)),
            None => None,
        };
        let store = open_store(&config.storage, dense.dim())?;
        let metadata = Arc::new(MetadataStore::open_configured(
            &config.metadata,
            &config.storage.data_dir,
        )?);
        let encoders = Encoders {
            dense,
            bm25: crate::embed::Bm25Encoder::new()?,
            bigram: crate::embed::BigramEncoder::default(),
        };
        let service = Self {
            config: Arc::new(config),
            store: store.clone(),
            metadata,
            encoders: Arc::new(encoders),
            generator,
            reranker,
            sections: Arc::default(),
        };
        Ok((service, store))
    }
}

impl From<&crate::config::QdrantConfig> for crate::store::QdrantOptions {
    fn from(config: &crate::config::QdrantConfig) -> Self {
        Self {
            url: config.url.clone(),
            api_key: config.api_key.clone(),
            collection: config.collection.clone(),
            timeout_ms: config.timeout_ms,
            connect_timeout_ms: config.connect_timeout_ms,
            retries: config.retries,
            batch_size: config.batch_size,
            shard_number: config.shard_number,
            replication_factor: config.replication_factor,
            write_consistency_factor: config.write_consistency_factor,
            on_disk_payload: config.on_disk_payload,
            on_disk_vectors: config.on_disk_vectors,
        }
    }
}

/// Opens the store the configuration names, for chunks with `dense_dim`-dimensional vectors;
/// opening finishes any write an earlier process left half done.
pub fn open_store(
    config: &crate::config::StorageConfig,
    dense_dim: usize,
) -> Result<Arc<dyn StoreAdmin>, StoreError> {
    use crate::config::StorageBackend;
    Ok(match config.backend {
        StorageBackend::Edge => {
            Arc::new(crate::store::EdgeStore::open(&config.data_dir, dense_dim)?)
        }
        StorageBackend::Qdrant => {
            let options = crate::store::QdrantOptions::from(&config.qdrant);
            Arc::new(crate::store::QdrantStore::connect(&options, dense_dim)?)
        }
    })
}

/// How the dense encoder runs, from `[model]`.
pub fn dense_options(model: &crate::config::ModelConfig) -> DenseOptions {
    DenseOptions {
        query_instances: model.workers,
        query_threads: model.query_threads,
        batch_size: model.batch_size,
        max_queue: model.max_queue,
        passage_threads: (model.passage_threads > 0).then_some(model.passage_threads),
        passage_nice: model.passage_nice,
        passage_unload_after: (model.passage_unload_after_s > 0)
            .then(|| std::time::Duration::from_secs(model.passage_unload_after_s)),
        query_cache: model.query_cache,
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
