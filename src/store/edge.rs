//! The embedded store: one qdrant-edge 0.7.2 shard in a directory.
//!
//! What qdrant-edge 0.7.2 does and does not do, and how this module copes:
//! - `EdgeShard::update` appends to the WAL without syncing it and `EdgeShard::load` does not
//!   replay the WAL, so every write call here ends with a flush before it returns.
//! - `EdgeShard::flush` panics when another thread is inside `update` (it `try_lock`s the WAL) and
//!   panics on I/O errors; all updates and flushes go through one mutex of ours, and a panicking
//!   flush is turned into a [`StoreError`].
//! - `EdgeShard::query`, `retrieve`, `scroll` and `count` take `&self` and only take read locks
//!   (the segment holder's `RwLock` and each segment's `RwLock`); updates take the same read lock
//!   on the holder and short write locks on segments. Queries therefore run concurrently with each
//!   other and with a write. A query during a write may see part of it (some chunks of a new
//!   version): results keep only live versions (see [`super::versions`]).
//! - Document heads live beside the shard (a snapshot and a log of changes, see
//!   [`super::heads_file`]), each change written durably after the chunks it names are
//!   flushed, and in memory for readers.
//! - `Fusion::Rrf { k, weights }` supports both a `k` and one weight per prefetch (see
//!   [`RrfParams`] for the exact formula), so fusion runs inside qdrant-edge.
//! - Point ids may be UUIDs: a chunk's id is a UUID v5 of (doc_id, version, ordinal).
//! - New points go to one appendable segment, whose sparse posting lists cost O(length) per
//!   inserted point (`PostingList::upsert` rewrites every earlier entry's `max_next_weight`): a
//!   segment that only grows makes writes quadratic (405 chunks/s at 100 000). qdrant-edge runs
//!   no optimizer by itself, so after every write a thread of the store's own runs
//!   [`EdgeShard::optimize`] (holding the write lock, so writes wait for it, not the write that
//!   asked: its caller's time limit must not cover an optimization). It turns an appendable
//!   segment past the indexing threshold into an immutable one (a new appendable segment takes
//!   the next writes) and merges small segments (see [`SEGMENTS`]). The dense vector has no HNSW
//!   graph (`m = 0`): indexing stays cheap, and dense search stays exact, as in a plain segment.
//!   An optimized segment is built in a temporary directory and renamed into place before the
//!   segments it replaces are deleted; a crash between the two leaves the same points twice,
//!   which searches and scrolls deduplicate and the next merge removes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::serde_json::{self, Value};
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfig, EdgeConfigBuilder, EdgeOptimizersConfig,
    EdgeShard, EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition,
    FieldIndexOperations, Filter, Fusion, HnswIndexConfig, JsonPath, Match, Modifier, NamedQuery,
    OperationError, PayloadFieldSchema, PayloadSchemaType, PayloadSelector, PayloadSelectorExclude,
    PayloadSelectorInclude, PointId, PointInsertOperations, PointOperations, PointStruct,
    PointStructPersisted, Prefetch, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest,
    UpdateOperation, Vector, VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface,
    WithVector,
};
use qdrant_edge::{CreateIndex, SparseVector as EdgeSparseVector};
use serde::Deserialize;
use uuid::Uuid;

use super::heads_file::{Heads, HeadsChange, HeadsFile};
use super::points::{
    BIGRAM, BM25, CHUNK_BODY_FIELDS, DENSE, DocumentVersion, KEYWORD_FIELDS, ORDINAL,
    canonical_sparse, chunk_payload, chunk_record, collect_pages, fusion_weights, invalid,
    point_id, validate_dense,
};
use super::versions::{
    self, DocumentHead, VersionedBackend, heads_from_first_chunks, live_passages, live_results,
};
use super::{
    ChunkRecord, DocumentMeta, HybridQuery, PointPage, Result, ScoredChunk, SparseVector,
    StoreAdmin, StoreError, StoreRead, StoreStatus, StoreWrite, StoredChunk,
};
use crate::access::Scope;

/// Points per scroll request.
const SCROLL_PAGE: usize = 1024;
/// How the optimizer keeps the segments, measured with `benches/store_scale.rs` (100 000
/// synthetic chunks, 384 dimensions, one run each on a 2-core machine): with qdrant-edge's
/// defaults (2 segments on 2 cores, indexing past 10 MB) every indexed segment is merged again
/// at once and writes slow down quadratically (over 4 minutes, stopped); never optimizing wrote
/// 405 chunks/s, searches p50 8.5 ms; 8 segments 924 chunks/s, 18.6 ms (each search visits
/// every segment); 4 segments indexed past 10 MB 626 chunks/s, 9.2 ms; 4 past 40 MB
/// 1 052 chunks/s, 10.1 ms (these); 4 past 80 MB 884 chunks/s, 13.2 ms. (Optimizing inside
/// the write call then; from the store's own thread, these settings wrote 816 chunks/s.)
const SEGMENTS: usize = 4;
/// Kilobytes of one vector's storage past which an appendable segment is indexed.
const INDEXING_THRESHOLD_KB: usize = 40_000;

/// A [`StoreRead`] + [`StoreWrite`] backend on an embedded qdrant-edge shard in a directory.
///
/// The shard has a dense vector `dense` (cosine) and two sparse vectors, `bm25` and `bigram`,
/// both with `Modifier::Idf`. Each chunk is one point whose payload holds every field of its
/// [`DocumentMeta`] plus the chunk's own fields. All methods are blocking: call them from
/// blocking threads. Searches and listings may run concurrently with each other and with one
/// write; writes are serialised.
#[derive(Debug)]
pub struct EdgeStore {
    shard: Arc<EdgeShard>,
    path: PathBuf,
    dense_dim: usize,
    /// Held across every write, from the first update to the last flush or head write (see
    /// the module documentation), and by every optimization; it is also the per-document
    /// writer lock.
    writes: Arc<Mutex<()>>,
    /// The document heads as last written to `heads_file`.
    heads: RwLock<Heads>,
    /// Taken with `writes` held, so it is never waited for.
    heads_file: Mutex<HeadsFile>,
    optimizer: Optimizer,
}

/// The thread that optimizes the shard's segments after writes (see the module documentation).
#[derive(Debug)]
struct Optimizer {
    /// Asks for one optimization; a request already waiting covers the next ones.
    requests: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Optimizer {
    fn spawn(
        shard: Arc<EdgeShard>,
        writes: Arc<Mutex<()>>,
        path: PathBuf,
    ) -> std::io::Result<Self> {
        let (requests, received) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-optimizer".to_owned())
            .spawn(move || {
                // Requests still queued when the store is dropped are served before this ends.
                while received.recv().is_ok() {
                    let _writes = writes.lock().unwrap_or_else(PoisonError::into_inner);
                    optimize(&shard, &path);
                }
            })?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    fn request(&self) {
        if let Some(requests) = &self.requests {
            // Full: an optimization is already asked for, and it will see this write.
            let _ = requests.try_send(());
        }
    }
}

impl Drop for Optimizer {
    /// Waits for the optimization asked for last, so that the shard is closed (and its
    /// directory free to open again) when the store is dropped.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store's optimizer thread panicked");
        }
    }
}

/// Optimizes the segments that need it, then flushes. The updates it works on are already
/// durable, so a failure loses nothing: it is logged, and the next write asks again.
fn optimize(shard: &EdgeShard, path: &Path) {
    let started = std::time::Instant::now();
    let failed = |error: String| {
        tracing::warn!(%error, path = %path.display(), "optimizing the store's segments failed; the next write tries again");
    };
    match catch_unwind(AssertUnwindSafe(|| shard.optimize())) {
        Ok(Ok(false)) => {}
        Ok(Ok(true)) => {
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "store segments optimized"
            );
            if let Err(error) = flush_shard(shard) {
                failed(error.to_string());
            }
        }
        Ok(Err(error)) => failed(error.to_string()),
        Err(panic) => failed(panic_reason(panic.as_ref())),
    }
}

/// Makes every update so far durable. Call with the write lock held.
fn flush_shard(shard: &EdgeShard) -> Result<()> {
    catch_unwind(AssertUnwindSafe(|| shard.flush())).map_err(|panic| StoreError::Operation {
        operation: "flush",
        reason: panic_reason(panic.as_ref()),
    })
}

impl EdgeStore {
    /// Opens the store in `dir`, creating it (and `dir`) when there is no shard there yet.
    ///
    /// An existing shard must have exactly the vectors this store writes, with a dense vector of
    /// `dense_dim` dimensions; otherwise this returns [`StoreError::SchemaMismatch`]. Missing
    /// payload indexes are created. qdrant-edge locks the directory's WAL: while one `EdgeStore`
    /// (in this process or another) has the directory open, opening it again fails with
    /// [`StoreError::Open`], so share one instance (e.g. in an `Arc`).
    pub fn open(dir: &Path, dense_dim: usize) -> Result<Self> {
        let open_error = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        if dense_dim == 0 {
            return Err(invalid("the dense dimension must be positive".to_owned()));
        }
        fs::create_dir_all(dir)
            .map_err(|e| open_error(format!("cannot create the directory: {e}")))?;

        let shard = if shard_exists(dir) {
            EdgeShard::load(dir, None).map_err(|e| open_error(e.to_string()))?
        } else {
            EdgeShard::new(dir, expected_config(dense_dim))
                .map_err(|e| open_error(e.to_string()))?
        };
        let shard = Arc::new(shard);
        let writes = Arc::new(Mutex::new(()));
        let optimizer = Optimizer::spawn(shard.clone(), writes.clone(), dir.to_owned())
            .map_err(|e| open_error(format!("cannot start the optimizer thread: {e}")))?;
        let (heads_file, stored_heads) = HeadsFile::open(dir)?;
        let heads_stored = stored_heads.is_some();
        let store = Self {
            shard,
            path: dir.to_owned(),
            dense_dim,
            writes,
            heads: RwLock::new(stored_heads.unwrap_or_default()),
            heads_file: Mutex::new(heads_file),
            optimizer,
        };
        store.check_schema()?;
        store.ensure_segment_layout()?;
        store.ensure_payload_indexes()?;
        if !heads_stored {
            store.derive_heads()?;
        }
        let settled = versions::finish_interrupted(&store)?;
        if settled > 0 {
            tracing::info!(documents = settled, path = %dir.display(), "finished interrupted writes");
        }
        Ok(store)
    }

    /// Gives a store written before heads existed heads derived from its chunks (the newest
    /// version of each document live).
    fn derive_heads(&self) -> Result<()> {
        let derived: Heads = heads_from_first_chunks(self.first_chunks(Filter::new())?)
            .into_iter()
            .map(|h| (h.doc_id.clone(), h))
            .collect();
        if derived.is_empty() {
            return Ok(());
        }
        let _writes = self.lock_writes();
        self.heads_file().snapshot(&derived)?;
        tracing::info!(
            documents = derived.len(),
            "derived document heads for a store written before them"
        );
        *self.heads.write().unwrap_or_else(PoisonError::into_inner) = derived;
        Ok(())
    }

    fn heads_file(&self) -> MutexGuard<'_, HeadsFile> {
        // A panic inside a change leaves the file's offsets where the last whole change ended.
        self.heads_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `change` durably, then publishes it to readers; folds the log into a snapshot
    /// when it has grown (a failure there is logged: the change itself is stored). Call with
    /// the write lock held.
    fn change_heads(&self, change: HeadsChange) -> Result<()> {
        let mut file = self.heads_file();
        file.append(&change)?;
        change.apply(&mut self.heads.write().unwrap_or_else(PoisonError::into_inner));
        if file.wants_snapshot()
            && let Err(error) = file.snapshot(&self.heads_snapshot())
        {
            tracing::warn!(%error, "the document heads' log could not be folded into a snapshot; it keeps growing until one can be written");
        }
        Ok(())
    }

    fn heads_snapshot(&self) -> std::sync::RwLockReadGuard<'_, Heads> {
        // A change is applied only once stored, by inserts and removals that do not panic.
        self.heads.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn upsert_points(&self, points: Vec<PointStructPersisted>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.update("upsert chunks", UpdateOperation::PointOperation(upsert))?;
        self.flush_and_optimize()
    }

    /// Opens an existing store in `dir` with the dense dimension it was created with; a directory
    /// without a store is an error (nothing is created).
    pub fn open_existing(dir: &Path) -> Result<Self> {
        if !shard_exists(dir) {
            return Err(StoreError::Open {
                path: dir.display().to_string(),
                reason: "there is no store in this directory".to_owned(),
            });
        }
        let shard = EdgeShard::load(dir, None).map_err(|e| StoreError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let dense_dim = shard.config().vectors.get(DENSE).map(|v| v.size);
        drop(shard);
        match dense_dim {
            Some(dense_dim) => Self::open(dir, dense_dim),
            None => Err(StoreError::SchemaMismatch {
                path: dir.display().to_string(),
                found: "no dense vector".to_owned(),
                expected: format!("a dense vector named {DENSE}"),
            }),
        }
    }

    fn check_schema(&self) -> Result<()> {
        let config = self.shard.config();
        let dense_ok = config.vectors.len() == 1
            && config.vectors.get(DENSE).is_some_and(|v| {
                v.size == self.dense_dim
                    && v.distance == Distance::Cosine
                    && v.multivector_config.is_none()
            });
        let sparse_ok = config.sparse_vectors.len() == 2
            && [BM25, BIGRAM].iter().all(|name| {
                config
                    .sparse_vectors
                    .get(*name)
                    .is_some_and(|v| v.modifier == Some(Modifier::Idf))
            });
        if dense_ok && sparse_ok {
            return Ok(());
        }
        Err(StoreError::SchemaMismatch {
            path: self.path.display().to_string(),
            found: describe_schema(&config),
            expected: describe_schema(&expected_config(self.dense_dim)),
        })
    }

    /// Sets how the shard's segments are optimized (see the module documentation): no HNSW
    /// graph, segments indexed past [`INDEXING_THRESHOLD_KB`], and [`SEGMENTS`] segments before
    /// small ones are merged. A store made before these settings gets them too (its segments
    /// change as they are optimized).
    fn ensure_segment_layout(&self) -> Result<()> {
        let optimizers = EdgeOptimizersConfig {
            default_segment_number: Some(SEGMENTS),
            indexing_threshold: Some(INDEXING_THRESHOLD_KB),
            ..EdgeOptimizersConfig::default()
        };
        let (graph_off, merged_as_wanted) = {
            let config = self.shard.config();
            (config.hnsw_config.m == 0, config.optimizers == optimizers)
        };
        let _writes = self.lock_writes();
        if !graph_off {
            self.shard
                .set_hnsw_config(HnswIndexConfig {
                    m: 0,
                    ..HnswIndexConfig::default()
                })
                .map_err(|e| operation_error("configure the dense index", e))?;
        }
        if !merged_as_wanted {
            self.shard
                .set_optimizers_config(optimizers)
                .map_err(|e| operation_error("configure the optimizers", e))?;
        }
        Ok(())
    }

    fn ensure_payload_indexes(&self) -> Result<()> {
        let existing = self.shard.info().payload_schema;
        let wanted = KEYWORD_FIELDS
            .iter()
            .map(|field| (*field, PayloadSchemaType::Keyword))
            .chain([(ORDINAL, PayloadSchemaType::Integer)]);
        let _writes = self.lock_writes();
        let mut created = false;
        for (field, schema) in wanted {
            let field_name = json_path(field)?;
            if existing
                .get(&field_name)
                .is_some_and(|info| info.data_type == schema)
            {
                continue;
            }
            let operation = UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name,
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                }),
            );
            self.update("create payload index", operation)?;
            created = true;
        }
        if created {
            self.flush()?;
        }
        Ok(())
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic while it was held leaves nothing inconsistent.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one update operation. Call with the write lock held.
    fn update(&self, operation: &'static str, update: UpdateOperation) -> Result<()> {
        self.shard
            .update(update)
            .map_err(|e| operation_error(operation, e))
    }

    /// Makes every update so far durable. Call with the write lock held.
    fn flush(&self) -> Result<()> {
        flush_shard(&self.shard)
    }

    /// Makes every update so far durable and asks for the segments to be optimized. Call with
    /// the write lock held, at the end of a write.
    fn flush_and_optimize(&self) -> Result<()> {
        self.flush()?;
        self.optimizer.request();
        Ok(())
    }

    fn point(&self, document: &DocumentMeta, chunk: &ChunkRecord) -> Result<PointStructPersisted> {
        validate_dense(&chunk.dense, self.dense_dim, || {
            format!(
                "the dense vector of chunk {} of {}",
                chunk.ordinal, document.doc_id
            )
        })?;
        let vectors = Vectors::new_named([
            (DENSE, Vector::new_dense(chunk.dense.clone())),
            (BM25, Vector::from(edge_sparse(&chunk.bm25, BM25)?)),
            (BIGRAM, Vector::from(edge_sparse(&chunk.bigram, BIGRAM)?)),
        ]);
        // `PointStruct::new` panics unless the payload is a JSON object: only objects get there.
        let payload = Value::Object(chunk_payload(document, chunk)?);
        let id = point_id(&document.doc_id, &document.version, chunk.ordinal);
        Ok(PointStruct::new(PointId::Uuid(id), vectors, payload).into())
    }

    /// One page of points matching `filter` in id order, starting at `offset` (inclusive).
    fn scroll_page(
        &self,
        filter: Option<Filter>,
        with_payload: WithPayloadInterface,
        with_vector: bool,
        offset: Option<PointId>,
        limit: usize,
    ) -> Result<(Vec<qdrant_edge::Record>, Option<PointId>)> {
        let request = ScrollRequest {
            offset,
            limit: Some(limit),
            filter,
            with_payload: Some(with_payload),
            with_vector: WithVector::Bool(with_vector),
            order_by: None,
        };
        self.shard
            .scroll(request)
            .map_err(|e| operation_error("scroll", e))
    }

    /// Every point matching `filter`, with the payload selected by `with_payload`.
    fn scroll_all(
        &self,
        filter: Filter,
        with_payload: WithPayloadInterface,
    ) -> Result<Vec<qdrant_edge::Record>> {
        collect_pages(|offset| {
            self.scroll_page(
                Some(filter.clone()),
                with_payload.clone(),
                false,
                offset,
                SCROLL_PAGE,
            )
        })
    }

    /// The first chunk of every version matching `filter`, as document metadata.
    fn first_chunks(&self, filter: Filter) -> Result<Vec<DocumentMeta>> {
        let filter = with_must(filter, match_integer(ORDINAL, 0)?);
        let without_body =
            WithPayloadInterface::Selector(PayloadSelector::Exclude(PayloadSelectorExclude {
                exclude: CHUNK_BODY_FIELDS
                    .iter()
                    .map(|field| json_path(field))
                    .collect::<Result<_>>()?,
            }));
        self.scroll_all(filter, without_body)?
            .into_iter()
            .map(|record| decode::<DocumentMeta>(record.id, record.payload))
            .collect()
    }
}

impl StoreRead for EdgeStore {
    /// One prefetch per vector present in the query (and with a weight above zero), each carrying
    /// the full filter (scope and search filters), fused by qdrant-edge's weighted RRF.
    fn search(&self, scope: &Scope, query: &HybridQuery) -> Result<Vec<ScoredChunk>> {
        let weights = fusion_weights(&query.fusion)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let Some(filter) = search_filter(scope, query)? else {
            return Ok(Vec::new());
        };

        let mut sources: Vec<(&str, VectorInternal, f32)> = Vec::new();
        if let Some(dense) = &query.dense {
            validate_dense(dense, self.dense_dim, || "the dense query".to_owned())?;
            sources.push((DENSE, VectorInternal::Dense(dense.clone()), weights.dense));
        }
        if let Some(bm25) = &query.bm25 {
            sources.push((
                BM25,
                VectorInternal::Sparse(edge_sparse(bm25, BM25)?),
                weights.bm25,
            ));
        }
        if let Some(bigram) = &query.bigram {
            let vector = VectorInternal::Sparse(edge_sparse(bigram, BIGRAM)?);
            sources.push((BIGRAM, vector, weights.bigram));
        }
        // A source with weight 0 would add nothing to any score, but its points would still be
        // returned (with score 0): leave it out.
        sources.retain(|(_, _, weight)| *weight > 0.0);
        if sources.is_empty() {
            return Err(invalid(
                "the query has no vector with a positive weight".to_owned(),
            ));
        }

        let prefetch_limit = query.prefetch_limit.max(1);
        let candidates = prefetch_limit * sources.len();
        let (prefetches, weights): (Vec<Prefetch>, Vec<OrderedFloat<f32>>) = sources
            .into_iter()
            .map(|(name, vector, weight)| {
                let prefetch = Prefetch {
                    prefetches: Vec::new(),
                    query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                        vector, name,
                    )))),
                    limit: prefetch_limit,
                    params: None,
                    filter: Some(filter.clone()),
                    score_threshold: None,
                };
                (prefetch, OrderedFloat(weight))
            })
            .unzip();
        // Every fused candidate comes back (ids and scores only) so that ties can be broken by
        // point id here: qdrant-edge orders equal scores arbitrarily, and results must not change
        // from one call to the next.
        let request = QueryRequest {
            prefetches,
            query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: query.fusion.k as usize,
                weights: Some(weights),
            })),
            filter: None,
            score_threshold: None,
            limit: candidates,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(false),
        };
        let mut fused = self
            .shard
            .query(request)
            .map_err(|e| operation_error("query", e))?;
        fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        let fused: Vec<(PointId, f32)> = fused.into_iter().map(|p| (p.id, p.score)).collect();

        live_results(
            scope,
            &fused,
            query.limit,
            |ids| {
                let records = self
                    .shard
                    .retrieve(
                        ids,
                        Some(WithPayloadInterface::Bool(true)),
                        Some(WithVector::Bool(false)),
                    )
                    .map_err(|e| operation_error("retrieve", e))?;
                let mut payloads: HashMap<PointId, Option<qdrant_edge::Payload>> = records
                    .into_iter()
                    .map(|record| (record.id, record.payload))
                    .collect();
                ids.iter()
                    .map(|id| {
                        payloads
                            .remove(id)
                            .map(|payload| decode::<StoredChunk>(*id, payload))
                            .transpose()
                    })
                    .collect()
            },
            |doc_ids| self.read_heads(doc_ids),
        )
    }

    fn documents(&self, scope: &Scope) -> Result<Vec<DocumentMeta>> {
        Ok(self
            .heads_snapshot()
            .values()
            .filter_map(|head| head.readable(scope).cloned())
            .collect())
    }

    fn document(&self, scope: &Scope, doc_id: &str) -> Result<Option<DocumentMeta>> {
        Ok(self
            .heads_snapshot()
            .get(doc_id)
            .and_then(|head| head.readable(scope).cloned()))
    }

    fn passages(
        &self,
        scope: &Scope,
        doc_id: &str,
        ordinals: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<(DocumentMeta, Vec<StoredChunk>)>> {
        live_passages(
            &ordinals,
            || self.document(scope, doc_id),
            |live| {
                let filter = Filter::new_must(match_keyword("doc_id", doc_id)?);
                let filter = with_must(filter, match_keyword("version", &live.version)?);
                self.scroll_all(filter, WithPayloadInterface::Bool(true))?
                    .into_iter()
                    .map(|record| decode::<StoredChunk>(record.id, record.payload))
                    .collect()
            },
        )
    }

    fn status(&self) -> Result<StoreStatus> {
        self.point_count()?;
        Ok(StoreStatus {
            backend: "edge",
            server_version: None,
            collection_status: None,
        })
    }

    fn dense_dim(&self) -> usize {
        self.dense_dim
    }
}

impl StoreWrite for EdgeStore {
    /// See [`super::versions`]: pending heads, one upsert and flush of every chunk, the switch
    /// of heads, then one delete and flush of the previous versions.
    fn replace_documents(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()> {
        versions::replace(self, documents)
    }

    fn delete_document(&self, doc_id: &str) -> Result<bool> {
        versions::delete(self, doc_id)
    }
}

impl StoreAdmin for EdgeStore {
    fn heads(&self) -> Result<BTreeMap<String, DocumentHead>> {
        Ok(self.heads_snapshot().clone())
    }

    fn point_count(&self) -> Result<u64> {
        let count = self
            .shard
            .count(CountRequest {
                filter: None,
                exact: true,
            })
            .map_err(|e| operation_error("count", e))?;
        Ok(count as u64)
    }

    fn export_points(&self, from: Option<Uuid>, limit: usize) -> Result<PointPage> {
        let (records, next) = self.scroll_page(
            None,
            WithPayloadInterface::Bool(true),
            true,
            from.map(PointId::Uuid),
            limit.max(1),
        )?;
        let points = records
            .into_iter()
            .map(|record| {
                let stored: StoredChunk = decode(record.id, record.payload)?;
                let (dense, bm25, bigram) = edge_vectors(record.id, record.vector)?;
                Ok(chunk_record(stored, dense, bm25, bigram))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = match next {
            None => None,
            Some(PointId::Uuid(id)) => Some(id),
            Some(other) => {
                return Err(StoreError::Operation {
                    operation: "export points",
                    reason: format!("point {other} does not have a UUID id"),
                });
            }
        };
        Ok(PointPage { points, next })
    }

    fn chunk_counts(&self) -> Result<BTreeMap<(String, String), u64>> {
        let only_version =
            WithPayloadInterface::Selector(PayloadSelector::Include(PayloadSelectorInclude {
                include: vec![json_path("doc_id")?, json_path("version")?],
            }));
        let mut counts = BTreeMap::new();
        for record in self.scroll_all(Filter::new(), only_version)? {
            let key: DocumentVersion = decode(record.id, record.payload)?;
            *counts.entry((key.doc_id, key.version)).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// One upsert and one flush: points keep their ids, so importing twice changes nothing.
    fn import_points(&self, points: &[(DocumentMeta, ChunkRecord)]) -> Result<()> {
        let points = points
            .iter()
            .map(|(document, chunk)| self.point(document, chunk))
            .collect::<Result<Vec<_>>>()?;
        let _writes = self.lock_writes();
        self.upsert_points(points)
    }

    fn import_heads(&self, heads: &[DocumentHead]) -> Result<()> {
        versions::check_heads_complete(heads, &self.chunk_counts()?)?;
        let _writes = self.lock_writes();
        self.write_heads(heads)
    }
}

/// The write lock is the document lock: one writer at a time, whatever the documents.
impl VersionedBackend for EdgeStore {
    type Lock<'a> = MutexGuard<'a, ()>;

    fn lock_documents(&self, _doc_ids: &[String]) -> Result<Self::Lock<'_>> {
        Ok(self.lock_writes())
    }

    fn try_lock_document(&self, _doc_id: &str) -> Result<Option<Self::Lock<'_>>> {
        Ok(match self.writes.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
    }

    fn read_heads(&self, doc_ids: &[String]) -> Result<HashMap<String, DocumentHead>> {
        let heads = self.heads_snapshot();
        Ok(doc_ids
            .iter()
            .filter_map(|doc_id| heads.get(doc_id).map(|h| (doc_id.clone(), h.clone())))
            .collect())
    }

    fn unsettled_heads(&self) -> Result<Vec<DocumentHead>> {
        Ok(self
            .heads_snapshot()
            .values()
            .filter(|head| !head.is_settled())
            .cloned()
            .collect())
    }

    fn write_heads(&self, heads: &[DocumentHead]) -> Result<()> {
        if heads.is_empty() {
            return Ok(());
        }
        self.change_heads(HeadsChange::Put(heads.to_vec()))
    }

    fn remove_heads(&self, doc_ids: &[String]) -> Result<()> {
        if doc_ids.is_empty() {
            return Ok(());
        }
        self.change_heads(HeadsChange::Remove(doc_ids.to_vec()))
    }

    fn write_chunks(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()> {
        let mut points = Vec::new();
        for (document, chunks) in documents {
            for chunk in chunks {
                points.push(self.point(document, chunk)?);
            }
        }
        self.upsert_points(points)
    }

    fn delete_versions(&self, versions: &[(String, Vec<String>)]) -> Result<()> {
        let mut deleted = false;
        for (doc_id, versions) in versions {
            if versions.is_empty() {
                continue;
            }
            let filter = Filter::new_must(match_keyword("doc_id", doc_id)?);
            let versions =
                FieldCondition::new_match(json_path("version")?, Match::from(versions.clone()));
            let filter = with_must(filter, Condition::Field(versions));
            let delete = PointOperations::DeletePointsByFilter(filter);
            self.update("delete versions", UpdateOperation::PointOperation(delete))?;
            deleted = true;
        }
        if deleted {
            self.flush_and_optimize()?;
        }
        Ok(())
    }

    fn delete_all_chunks(&self, doc_id: &str) -> Result<()> {
        let filter = Filter::new_must(match_keyword("doc_id", doc_id)?);
        let delete = PointOperations::DeletePointsByFilter(filter);
        self.update("delete document", UpdateOperation::PointOperation(delete))?;
        self.flush_and_optimize()
    }
}

/// The scope filter plus the query's filters, or `None` when the scope can read nothing.
fn search_filter(scope: &Scope, query: &HybridQuery) -> Result<Option<Filter>> {
    let Some(mut filter) = scope_filter(scope)? else {
        return Ok(None);
    };
    let filters = &query.filters;
    for (field, value) in [
        ("owner", &filters.owner),
        ("kind", &filters.kind),
        ("doc_id", &filters.doc_id),
        ("heading_path", &filters.section),
    ] {
        if let Some(value) = value {
            filter = with_must(filter, match_keyword(field, value)?);
        }
    }
    Ok(Some(filter))
}

/// The shard configuration this store creates and expects.
fn expected_config(dense_dim: usize) -> EdgeConfig {
    let idf = || {
        EdgeSparseVectorParamsBuilder::new()
            .modifier(Modifier::Idf)
            .build()
    };
    EdgeConfigBuilder::new()
        .vector(
            DENSE,
            EdgeVectorParamsBuilder::new(dense_dim, Distance::Cosine).build(),
        )
        .sparse_vector(BM25, idf())
        .sparse_vector(BIGRAM, idf())
        .build()
}

fn describe_schema(config: &EdgeConfig) -> String {
    let mut dense: Vec<String> = config
        .vectors
        .iter()
        .map(|(name, v)| {
            let multi = if v.multivector_config.is_some() {
                ", multivector"
            } else {
                ""
            };
            format!("{name}: dense {} {:?}{multi}", v.size, v.distance)
        })
        .collect();
    let mut sparse: Vec<String> = config
        .sparse_vectors
        .iter()
        .map(|(name, v)| {
            format!(
                "{name}: sparse, modifier {:?}",
                v.modifier.unwrap_or_default()
            )
        })
        .collect();
    dense.sort();
    sparse.sort();
    dense.extend(sparse);
    dense.join("; ")
}

/// Whether `dir` already holds a shard (its configuration or any segment).
fn shard_exists(dir: &Path) -> bool {
    dir.join("edge_config.json").is_file()
        || fs::read_dir(dir.join("segments")).is_ok_and(|mut entries| entries.next().is_some())
}

/// The scope as a filter (`readers` matches any of the scope's tokens), `Some(Filter::new())`
/// for everything, or `None` when the scope has no tokens and so can read nothing.
fn scope_filter(scope: &Scope) -> Result<Option<Filter>> {
    match scope.reader_tokens() {
        None => Ok(Some(Filter::new())),
        Some([]) => Ok(None),
        Some(tokens) => {
            let readers =
                FieldCondition::new_match(json_path("readers")?, Match::from(tokens.to_vec()));
            Ok(Some(Filter::new_must(Condition::Field(readers))))
        }
    }
}

fn with_must(mut filter: Filter, condition: Condition) -> Filter {
    filter.must.get_or_insert_with(Vec::new).push(condition);
    filter
}

fn match_keyword(field: &str, value: &str) -> Result<Condition> {
    Ok(Condition::Field(FieldCondition::new_match(
        json_path(field)?,
        Match::from(value.to_owned()),
    )))
}

fn match_integer(field: &str, value: i64) -> Result<Condition> {
    Ok(Condition::Field(FieldCondition::new_match(
        json_path(field)?,
        Match::from(value),
    )))
}

fn json_path(field: &str) -> Result<JsonPath> {
    field.parse().map_err(|_| StoreError::Operation {
        operation: "payload field name",
        reason: format!("{field:?} is not a valid JSON path"),
    })
}

/// A sparse vector as qdrant-edge wants it (see [`canonical_sparse`]).
fn edge_sparse(vector: &SparseVector, name: &str) -> Result<EdgeSparseVector> {
    let SparseVector { indices, values } = canonical_sparse(vector, name)?;
    EdgeSparseVector::new(indices, values)
        .map_err(|e| invalid(format!("sparse vector {name} is invalid: {e}")))
}

/// The three named vectors of an exported point.
fn edge_vectors(
    id: PointId,
    vector: Option<VectorStructInternal>,
) -> Result<(Vec<f32>, SparseVector, SparseVector)> {
    let missing = |what: &str| StoreError::Operation {
        operation: "export points",
        reason: format!("point {id} has no {what} vector"),
    };
    let Some(VectorStructInternal::Named(mut named)) = vector else {
        return Err(missing("named"));
    };
    let dense = match named.remove(DENSE) {
        Some(VectorInternal::Dense(dense)) => dense,
        _ => return Err(missing(DENSE)),
    };
    let mut sparse = |name: &str| match named.remove(name) {
        Some(VectorInternal::Sparse(vector)) => Ok(SparseVector {
            indices: vector.indices,
            values: vector.values,
        }),
        _ => Err(missing(name)),
    };
    let bm25 = sparse(BM25)?;
    let bigram = sparse(BIGRAM)?;
    Ok((dense, bm25, bigram))
}

fn decode<T: for<'de> Deserialize<'de>>(
    id: PointId,
    payload: Option<qdrant_edge::Payload>,
) -> Result<T> {
    let payload = payload.ok_or_else(|| StoreError::Operation {
        operation: "read payload",
        reason: format!("point {id} has no payload"),
    })?;
    serde_json::from_value(Value::Object(payload.0)).map_err(|e| StoreError::Operation {
        operation: "read payload",
        reason: format!("point {id} has an unexpected payload: {e}"),
    })
}

fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

fn operation_error(operation: &'static str, error: OperationError) -> StoreError {
    StoreError::Operation {
        operation,
        reason: error.to_string(),
    }
}
