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
//!   version): results keep only the newest version of each document.
//! - `Fusion::Rrf { k, weights }` supports both a `k` and one weight per prefetch (see
//!   [`RrfParams`] for the exact formula), so fusion runs inside qdrant-edge.
//! - Point ids may be UUIDs: a chunk's id is a UUID v5 of (doc_id, version, ordinal).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::serde_json::{self, Value};
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfig, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations,
    Filter, Fusion, JsonPath, Match, Modifier, NamedQuery, OperationError, PayloadFieldSchema,
    PayloadSchemaType, PayloadSelector, PayloadSelectorExclude, PayloadSelectorInclude, PointId,
    PointInsertOperations, PointOperations, PointStruct, PointStructPersisted, Prefetch, QueryEnum,
    QueryRequest, ScoringQuery, ScrollRequest, UpdateOperation, Vector, VectorInternal,
    VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};
use qdrant_edge::{CreateIndex, SparseVector as EdgeSparseVector};
use serde::Deserialize;
use uuid::Uuid;

use super::points::{
    BIGRAM, BM25, CHUNK_BODY_FIELDS, DENSE, DocumentVersion, KEYWORD_FIELDS, ORDINAL,
    canonical_sparse, chunk_payload, chunk_record, collect_pages, fusion_weights, invalid,
    keep_newest_versions, newest_documents, point_id, validate_chunks, validate_dense,
    versions_by_document,
};
use super::{
    ChunkRecord, DocumentMeta, HybridQuery, PointPage, Result, ScoredChunk, SparseVector,
    StoreError, StoreRead, StoreStatus, StoreWrite, StoredChunk,
};
use crate::access::Scope;

/// Points per scroll request.
const SCROLL_PAGE: usize = 1024;

/// A [`StoreRead`] + [`StoreWrite`] backend on an embedded qdrant-edge shard in a directory.
///
/// The shard has a dense vector `dense` (cosine) and two sparse vectors, `bm25` and `bigram`,
/// both with `Modifier::Idf`. Each chunk is one point whose payload holds every field of its
/// [`DocumentMeta`] plus the chunk's own fields. All methods are blocking: call them from
/// blocking threads. Searches and listings may run concurrently with each other and with one
/// write; writes are serialised.
#[derive(Debug)]
pub struct EdgeStore {
    shard: EdgeShard,
    path: PathBuf,
    dense_dim: usize,
    /// Held across every `update` + `flush` sequence (see the module documentation).
    writes: Mutex<()>,
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
        let store = Self {
            shard,
            path: dir.to_owned(),
            dense_dim,
            writes: Mutex::new(()),
        };
        store.check_schema()?;
        store.ensure_payload_indexes()?;
        Ok(store)
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
        catch_unwind(AssertUnwindSafe(|| self.shard.flush())).map_err(|panic| {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "flush panicked".to_owned());
            StoreError::Operation {
                operation: "flush",
                reason,
            }
        })
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
        fused.truncate(query.limit);

        let ids: Vec<PointId> = fused.iter().map(|point| point.id).collect();
        let records = self
            .shard
            .retrieve(
                &ids,
                Some(WithPayloadInterface::Bool(true)),
                Some(WithVector::Bool(false)),
            )
            .map_err(|e| operation_error("retrieve", e))?;
        let mut payloads: HashMap<PointId, Option<qdrant_edge::Payload>> = records
            .into_iter()
            .map(|record| (record.id, record.payload))
            .collect();

        let mut results = Vec::with_capacity(fused.len());
        for point in fused {
            // A point deleted since the query (an old version, during a replace) is skipped.
            let Some(payload) = payloads.remove(&point.id) else {
                continue;
            };
            // The scope is applied inside the search (each prefetch's filter) and checked again
            // by the service; not here, so that the store suite tests the filter itself.
            let stored: StoredChunk = decode(point.id, payload)?;
            results.push(ScoredChunk {
                chunk: stored,
                score: point.score,
            });
        }
        Ok(keep_newest_versions(results))
    }

    fn documents(&self, scope: &Scope) -> Result<Vec<DocumentMeta>> {
        let Some(filter) = scope_filter(scope)? else {
            return Ok(Vec::new());
        };
        Ok(self
            .first_chunks(filter)
            .map(|first| newest_documents(scope, first))?
            .into_values()
            .collect())
    }

    fn document(&self, scope: &Scope, doc_id: &str) -> Result<Option<DocumentMeta>> {
        let Some(filter) = scope_filter(scope)? else {
            return Ok(None);
        };
        let filter = with_must(filter, match_keyword("doc_id", doc_id)?);
        Ok(newest_documents(scope, self.first_chunks(filter)?).remove(doc_id))
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
}

impl StoreWrite for EdgeStore {
    /// Upserts every chunk of the new version in one update and flushes, then deletes the
    /// document's points of any other version and flushes. A crash between the two leaves both
    /// versions, each complete; readers keep the newest.
    fn replace_documents(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()> {
        let mut points = Vec::new();
        let mut other_versions = Vec::with_capacity(documents.len());
        for (document, chunks) in documents {
            validate_chunks(document, chunks)?;
            for chunk in chunks {
                points.push(self.point(document, chunk)?);
            }
            other_versions.push(Filter {
                must: Some(vec![match_keyword("doc_id", &document.doc_id)?]),
                must_not: Some(vec![match_keyword("version", &document.version)?]),
                ..Filter::new()
            });
        }
        if points.is_empty() {
            return Ok(());
        }

        let _writes = self.lock_writes();
        let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.update("upsert chunks", UpdateOperation::PointOperation(upsert))?;
        self.flush()?;
        for filter in other_versions {
            let delete = PointOperations::DeletePointsByFilter(filter);
            self.update(
                "delete other versions",
                UpdateOperation::PointOperation(delete),
            )?;
        }
        self.flush()
    }

    fn delete_document(&self, doc_id: &str) -> Result<bool> {
        let filter = Filter::new_must(match_keyword("doc_id", doc_id)?);
        let _writes = self.lock_writes();
        let existing = self
            .shard
            .count(CountRequest {
                filter: Some(filter.clone()),
                exact: true,
            })
            .map_err(|e| operation_error("count document points", e))?;
        if existing == 0 {
            return Ok(false);
        }
        let delete = PointOperations::DeletePointsByFilter(filter);
        self.update("delete document", UpdateOperation::PointOperation(delete))?;
        self.flush()?;
        Ok(true)
    }

    /// Versions of each document, oldest first (by `ingested_at`).
    fn versions(&self) -> Result<BTreeMap<String, Vec<String>>> {
        Ok(versions_by_document(self.first_chunks(Filter::new())?))
    }

    /// One upsert and one flush: points keep their ids, so importing twice changes nothing.
    fn import_points(&self, points: &[(DocumentMeta, ChunkRecord)]) -> Result<()> {
        let points = points
            .iter()
            .map(|(document, chunk)| self.point(document, chunk))
            .collect::<Result<Vec<_>>>()?;
        if points.is_empty() {
            return Ok(());
        }
        let _writes = self.lock_writes();
        let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.update("import points", UpdateOperation::PointOperation(upsert))?;
        self.flush()
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

fn operation_error(operation: &'static str, error: OperationError) -> StoreError {
    StoreError::Operation {
        operation,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Operator;
    use crate::store::{RrfParams, SearchFilters};

    const DIM: usize = 4;

    fn document(version: &str, ingested_at: u64) -> DocumentMeta {
        DocumentMeta {
            doc_id: "doc".to_owned(),
            version: version.to_owned(),
            title: "手引き".to_owned(),
            owner: "org-a".to_owned(),
            readers: vec!["org-a".to_owned()],
            kind: "guide".to_owned(),
            date: None,
            ingested_at,
            chunk_count: 2,
            page_count: 1,
        }
    }

    fn chunk(ordinal: u32, dense: [f32; DIM]) -> ChunkRecord {
        let sparse = SparseVector {
            indices: vec![ordinal, 100],
            values: vec![1.0, 0.5],
        };
        ChunkRecord {
            ordinal,
            text: format!("第{ordinal}節"),
            heading_path: Vec::new(),
            page_start: 1,
            page_end: 1,
            char_start: 0,
            char_end: 10,
            dense: dense.to_vec(),
            bm25: sparse.clone(),
            bigram: sparse,
        }
    }

    /// The state a crash between the two steps of `replace_document` leaves: both versions,
    /// complete. Readers see only the newest.
    #[test]
    fn both_versions_present_reads_show_only_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EdgeStore::open(dir.path(), DIM).expect("open");
        let old = document("v1", 1);
        let old_chunks = [
            chunk(0, [1.0, 0.0, 0.0, 0.0]),
            chunk(1, [0.0, 1.0, 0.0, 0.0]),
        ];
        store.replace_document(&old, &old_chunks).expect("replace");
        // Only the first step of a replace with v2.
        let new = document("v2", 2);
        let new_chunks = [
            chunk(0, [0.0, 0.0, 1.0, 0.0]),
            chunk(1, [0.0, 0.0, 0.0, 1.0]),
        ];
        let points = new_chunks
            .iter()
            .map(|c| store.point(&new, c))
            .collect::<Result<Vec<_>>>()
            .expect("points");
        let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        {
            let _writes = store.lock_writes();
            store
                .update("upsert", UpdateOperation::PointOperation(upsert))
                .expect("upsert");
            store.flush().expect("flush");
        }

        assert_eq!(store.point_count().expect("count"), 4);
        let versions = store.versions().expect("versions");
        assert_eq!(versions["doc"], vec!["v1".to_owned(), "v2".to_owned()]);
        let scope = Operator.scope();
        let listed = store.documents(&scope).expect("documents");
        assert_eq!(listed, vec![new.clone()]);
        assert_eq!(store.document(&scope, "doc").expect("document"), Some(new));

        // The old version's chunk is the best dense match, yet only v2 chunks come back.
        let query = HybridQuery {
            dense: Some(vec![1.0, 0.0, 0.0, 0.0]),
            bm25: None,
            bigram: None,
            filters: SearchFilters::default(),
            prefetch_limit: 10,
            limit: 10,
            fusion: RrfParams {
                k: 60,
                dense_weight: 1.0,
                bm25_weight: 1.0,
                bigram_weight: 1.0,
            },
        };
        let results = store.search(&scope, &query).expect("search");
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.chunk.document.version == "v2"));
    }
}
