//! The server backend: a collection on a Qdrant server or cluster, through `qdrant-client` (gRPC).
//!
//! The collection has the schema of the embedded store (a cosine dense vector `dense`, sparse
//! vectors `bm25` and `bigram` with `Modifier::Idf`, the same payload and point ids), so a
//! migration copies points verbatim and both backends rank alike. Multitenancy follows Qdrant's
//! guide: `owner` is a keyword index marked `is_tenant` (co-locates each organisation's points),
//! `readers` a keyword index that the scope filter of every prefetch uses.
//!
//! The store traits are blocking (the embedded engine is synchronous); this backend runs the
//! client on a small runtime of its own and blocks on it, so callers use it exactly as the
//! embedded store: from blocking threads, never from an async task.
//!
//! Document heads (see [`super::versions`]) are points of a second collection,
//! `<collection>-heads`, together with the per-document writer leases that serialise writers
//! across service replicas (see `heads.rs`).
//!
//! Differences from the embedded engine that users may notice:
//! - with `shard_number > 1` the BM25 and bigram IDF statistics are per shard, so sparse scores
//!   (and rarely the ranking) differ slightly from a single-shard or embedded store;
//! - HNSW search is approximate on large collections in both engines, with the same defaults.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use ::qdrant_client::qdrant::{
    CollectionParams, CollectionStatus, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, KeywordIndexParamsBuilder, Modifier, PayloadExcludeSelector,
    PayloadIncludeSelector, PointId, PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder,
    RetrievedPoint, RrfBuilder, ScrollPointsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Value, VectorInput, VectorParamsBuilder,
    VectorsConfigBuilder, point_id::PointIdOptions, vector_output, vectors_config,
};
use ::qdrant_client::{Payload, Qdrant, QdrantError};
use serde::Deserialize;
use tokio::runtime::Runtime;
use uuid::Uuid;

mod heads;

use super::points::{
    BIGRAM, BM25, CHUNK_BODY_FIELDS, DENSE, DocumentVersion, KEYWORD_FIELDS, ORDINAL,
    canonical_sparse, chunk_payload, chunk_record, collect_pages, fusion_weights, invalid,
    point_id, validate_dense,
};
use super::versions::{self, DocumentHead, VersionedBackend, live_passages, live_results};
use super::{
    ChunkRecord, DocumentMeta, HybridQuery, PointPage, Result, ScoredChunk, SparseVector,
    StoreAdmin, StoreError, StoreRead, StoreStatus, StoreWrite, StoredChunk,
};
use crate::access::Scope;
use crate::secret::ApiKey;

/// Points per scroll request.
const SCROLL_PAGE: u32 = 1024;
/// The client's minor version line; the server should be within one minor version of it.
const CLIENT_VERSION: (u64, u64) = (1, 18);

/// How to reach the server and how to create the collection.
#[derive(Debug, Clone)]
pub struct QdrantOptions {
    /// gRPC endpoint (port 6334 by default).
    pub url: String,
    /// Sent as `api-key`; never printed; empty means none.
    pub api_key: Option<ApiKey>,
    pub collection: String,
    /// Per request; a search or a batch that takes longer fails (after the retries).
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Retries of a request that failed transiently (unreachable, overloaded, timed out), with
    /// exponential backoff from 200 ms.
    pub retries: u32,
    /// Points per upsert request.
    pub batch_size: usize,
    /// Used only when the collection is created.
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_payload: bool,
    pub on_disk_vectors: bool,
}

impl Default for QdrantOptions {
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

/// A [`StoreRead`] + [`StoreWrite`] backend on a Qdrant server collection.
pub struct QdrantStore {
    client: Qdrant,
    options: QdrantOptions,
    dense_dim: usize,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("options", &self.options)
            .field("dense_dim", &self.dense_dim)
            .finish_non_exhaustive()
    }
}

impl Drop for QdrantStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside an async context (the service
        // may drop its last handle there); nothing is pending when the store goes away.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl QdrantStore {
    /// Connects, checks the server, and creates the collection (with its payload indexes) when it
    /// does not exist. An existing collection must have this store's vectors with a dense vector
    /// of `dense_dim` dimensions, otherwise [`StoreError::SchemaMismatch`].
    pub fn connect(options: &QdrantOptions, dense_dim: usize) -> Result<Self> {
        let store = Self::connect_without_collection(options, dense_dim)?;
        store.ensure_collection()?;
        store.ensure_heads()?;
        let settled = versions::finish_interrupted(&store)?;
        if settled > 0 {
            tracing::info!(documents = settled, collection = %store.options.collection, "finished interrupted writes");
        }
        Ok(store)
    }

    /// A client that has checked the server, before anything is done to the collection.
    fn connect_without_collection(options: &QdrantOptions, dense_dim: usize) -> Result<Self> {
        if dense_dim == 0 {
            return Err(invalid("the dense dimension must be positive".to_owned()));
        }
        if options.batch_size == 0 {
            return Err(invalid(
                "storage.qdrant.batch_size must be positive".to_owned(),
            ));
        }
        let open_error = |reason: String| StoreError::Open {
            path: options.url.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|e| open_error(format!("cannot start the client runtime: {e}")))?;
        let client = Qdrant::from_url(&options.url)
            .api_key(
                options
                    .api_key
                    .as_ref()
                    .map(|key| key.expose().to_owned())
                    .filter(|key| !key.trim().is_empty()),
            )
            .timeout(Duration::from_millis(options.timeout_ms))
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .skip_compatibility_check()
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let store = Self {
            client,
            options: options.clone(),
            dense_dim,
            runtime: Some(runtime),
        };
        let version = store.server_version()?;
        if !compatible(&version) {
            tracing::warn!(
                server = %version,
                client = ?CLIENT_VERSION,
                "the Qdrant server's version is more than one minor version away from the client's"
            );
        }
        Ok(store)
    }

    /// Connects to an existing collection, with the dense dimension it was created with; a
    /// missing collection is an error (nothing is created).
    pub fn connect_existing(options: &QdrantOptions) -> Result<Self> {
        // A store of any dimension, only to read the collection's.
        let probe = Self::connect_without_collection(options, 1)?;
        let name = options.collection.clone();
        let exists = probe.call("collection exists", || {
            probe.client.collection_exists(name.clone())
        })?;
        if !exists {
            return Err(StoreError::Open {
                path: options.url.clone(),
                reason: format!(
                    "there is no collection {:?} on this server",
                    options.collection
                ),
            });
        }
        let dense_dim = probe.collection_dense_dim()?;
        drop(probe);
        Self::connect(options, dense_dim)
    }

    /// The collection name this store writes to.
    pub fn collection(&self) -> &str {
        &self.options.collection
    }

    /// Deletes the whole collection and its heads (for tests and for starting a migration over).
    pub fn drop_collection(&self) -> Result<()> {
        for name in [self.options.collection.clone(), self.heads_collection()] {
            self.call("delete collection", || {
                let name = name.clone();
                async move { self.client.delete_collection(name).await.map(|_| ()) }
            })?;
        }
        Ok(())
    }

    /// Runs one request, retrying transient failures with exponential backoff.
    fn call<T, F, Fut>(&self, operation: &'static str, request: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, QdrantError>>,
    {
        // `runtime` is only taken in `drop`, so this is always `Some` here.
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Operation {
                operation,
                reason: "the store is closed".to_owned(),
            });
        };
        runtime.block_on(async {
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            loop {
                match request().await {
                    Ok(value) => return Ok(value),
                    Err(error) if attempt < self.options.retries && is_transient(&error) => {
                        attempt += 1;
                        let wait = match &error {
                            QdrantError::ResourceExhaustedError {
                                retry_after_seconds,
                                ..
                            } => Duration::from_secs(*retry_after_seconds).max(delay),
                            _ => delay,
                        };
                        tracing::warn!(operation, attempt, error = %error, ?wait, "Qdrant request failed; retrying");
                        tokio::time::sleep(wait).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(error) => return Err(self.error(operation, error)),
                }
            }
        })
    }

    fn error(&self, operation: &'static str, error: QdrantError) -> StoreError {
        let url = self.options.url.clone();
        if is_connect_failure(&error) {
            return StoreError::Unreachable {
                url,
                reason: format!("{operation}: connection failed"),
            };
        }
        if let QdrantError::ResponseError { status } = &error {
            match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    return StoreError::Unauthorized {
                        url,
                        reason: status.message().to_owned(),
                    };
                }
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    return StoreError::Unreachable {
                        url,
                        reason: format!("{operation}: {}", status.message()),
                    };
                }
                _ => {}
            }
        }
        StoreError::Operation {
            operation,
            reason: error.to_string(),
        }
    }

    fn server_version(&self) -> Result<String> {
        self.call("health check", || self.client.health_check())
            .map(|reply| reply.version)
    }

    fn ensure_collection(&self) -> Result<()> {
        let name = self.options.collection.clone();
        let exists = self.call("collection exists", || {
            self.client.collection_exists(name.clone())
        })?;
        if !exists {
            self.create_collection()?;
        }
        self.check_schema()?;
        self.ensure_payload_indexes()
    }

    fn create_collection(&self) -> Result<()> {
        let o = &self.options;
        let idf = || SparseVectorParamsBuilder::default().modifier(Modifier::Idf);
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(BM25, idf());
        sparse.add_named_vector_params(BIGRAM, idf());
        let mut dense = VectorsConfigBuilder::default();
        dense.add_named_vector_params(
            DENSE,
            VectorParamsBuilder::new(self.dense_dim as u64, Distance::Cosine)
                .on_disk(o.on_disk_vectors),
        );
        let request = CreateCollectionBuilder::new(o.collection.clone())
            .vectors_config(dense)
            .sparse_vectors_config(sparse)
            .shard_number(o.shard_number)
            .replication_factor(o.replication_factor)
            .write_consistency_factor(o.write_consistency_factor)
            .on_disk_payload(o.on_disk_payload)
            .build();
        let created = self.call("create collection", || {
            self.client.create_collection(request.clone())
        });
        match created {
            Ok(_) => {
                tracing::info!(collection = %o.collection, "created the Qdrant collection");
                Ok(())
            }
            // Another replica of the service created it in the meantime.
            Err(StoreError::Operation { reason, .. }) if reason.contains("already exists") => {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    fn collection_params(&self) -> Result<Option<CollectionParams>> {
        let name = self.options.collection.clone();
        let info = self
            .call("collection info", || {
                self.client.collection_info(name.clone())
            })?
            .result
            .ok_or_else(|| StoreError::Operation {
                operation: "collection info",
                reason: "the server returned no collection info".to_owned(),
            })?;
        Ok(info.config.and_then(|config| config.params))
    }

    /// The dense vectors of the collection: (name, size, distance).
    fn dense_vectors(params: Option<&CollectionParams>) -> Vec<(String, u64, i32)> {
        match params
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref())
        {
            Some(vectors_config::Config::ParamsMap(map)) => map
                .map
                .iter()
                .map(|(name, v)| (name.clone(), v.size, v.distance))
                .collect(),
            Some(vectors_config::Config::Params(v)) => vec![(String::new(), v.size, v.distance)],
            None => Vec::new(),
        }
    }

    fn collection_dense_dim(&self) -> Result<usize> {
        let params = self.collection_params()?;
        Self::dense_vectors(params.as_ref())
            .into_iter()
            .find(|(name, _, _)| name == DENSE)
            .map(|(_, size, _)| size as usize)
            .ok_or_else(|| StoreError::SchemaMismatch {
                path: format!(
                    "{} (collection {})",
                    self.options.url, self.options.collection
                ),
                found: "no dense vector".to_owned(),
                expected: format!("a dense vector named {DENSE}"),
            })
    }

    fn check_schema(&self) -> Result<()> {
        let params = self.collection_params()?;
        let dense = Self::dense_vectors(params.as_ref());
        let sparse: Vec<(String, Option<i32>)> = params
            .as_ref()
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .map(|s| {
                s.map
                    .iter()
                    .map(|(name, v)| (name.clone(), v.modifier))
                    .collect()
            })
            .unwrap_or_default();
        let dense_ok = dense.len() == 1
            && dense[0]
                == (
                    DENSE.to_owned(),
                    self.dense_dim as u64,
                    Distance::Cosine as i32,
                );
        let sparse_ok = sparse.len() == 2
            && [BM25, BIGRAM].iter().all(|name| {
                sparse
                    .iter()
                    .any(|(n, m)| n == name && *m == Some(Modifier::Idf as i32))
            });
        if dense_ok && sparse_ok {
            return Ok(());
        }
        let mut found: Vec<String> = dense
            .iter()
            .map(|(name, size, distance)| {
                let distance = Distance::try_from(*distance)
                    .map(|d| d.as_str_name())
                    .unwrap_or("unknown");
                format!("{name}: dense {size} {distance}")
            })
            .chain(sparse.iter().map(|(name, modifier)| {
                let modifier = match modifier.map(Modifier::try_from) {
                    Some(Ok(modifier)) => modifier.as_str_name(),
                    _ => "None",
                };
                format!("{name}: sparse, modifier {modifier}")
            }))
            .collect();
        found.sort();
        Err(StoreError::SchemaMismatch {
            path: format!(
                "{} (collection {})",
                self.options.url, self.options.collection
            ),
            found: found.join("; "),
            expected: format!(
                "{BIGRAM}: sparse, modifier Idf; {BM25}: sparse, modifier Idf; {DENSE}: dense {} Cosine",
                self.dense_dim
            ),
        })
    }

    fn ensure_payload_indexes(&self) -> Result<()> {
        let name = self.options.collection.clone();
        let existing = self
            .call("collection info", || {
                self.client.collection_info(name.clone())
            })?
            .result
            .map(|info| info.payload_schema)
            .unwrap_or_default();
        let wanted = KEYWORD_FIELDS
            .iter()
            .map(|field| (*field, FieldType::Keyword))
            .chain([(ORDINAL, FieldType::Integer)]);
        for (field, field_type) in wanted {
            if existing
                .get(field)
                .is_some_and(|info| info.data_type == field_type as i32)
            {
                continue;
            }
            let mut request =
                CreateFieldIndexCollectionBuilder::new(name.clone(), field, field_type).wait(true);
            if field == "owner" {
                // Qdrant's multitenancy: points of one tenant are stored together.
                request = request
                    .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true));
            }
            let request = request.build();
            self.call("create payload index", || {
                self.client.create_field_index(request.clone())
            })?;
        }
        Ok(())
    }

    fn point(&self, document: &DocumentMeta, chunk: &ChunkRecord) -> Result<PointStruct> {
        validate_dense(&chunk.dense, self.dense_dim, || {
            format!(
                "the dense vector of chunk {} of {}",
                chunk.ordinal, document.doc_id
            )
        })?;
        let bm25 = canonical_sparse(&chunk.bm25, BM25)?;
        let bigram = canonical_sparse(&chunk.bigram, BIGRAM)?;
        let vectors: HashMap<String, ::qdrant_client::qdrant::Vector> = HashMap::from([
            (
                DENSE.to_owned(),
                ::qdrant_client::qdrant::Vector::new_dense(chunk.dense.clone()),
            ),
            (
                BM25.to_owned(),
                ::qdrant_client::qdrant::Vector::new_sparse(bm25.indices, bm25.values),
            ),
            (
                BIGRAM.to_owned(),
                ::qdrant_client::qdrant::Vector::new_sparse(bigram.indices, bigram.values),
            ),
        ]);
        let payload = Payload::from(chunk_payload(document, chunk)?);
        let id = point_id(&document.doc_id, &document.version, chunk.ordinal);
        Ok(PointStruct::new(id.to_string(), vectors, payload))
    }

    /// Upserts in batches of `batch_size`, each acknowledged once applied (`wait`).
    fn upsert(&self, operation: &'static str, points: Vec<PointStruct>) -> Result<()> {
        let name = &self.options.collection;
        for batch in points.chunks(self.options.batch_size) {
            let request = UpsertPointsBuilder::new(name.clone(), batch.to_vec())
                .wait(true)
                .build();
            self.call(operation, || self.client.upsert_points(request.clone()))?;
        }
        Ok(())
    }

    fn delete_by_filter(&self, operation: &'static str, filter: Filter) -> Result<()> {
        let request = DeletePointsBuilder::new(self.options.collection.clone())
            .points(filter)
            .wait(true)
            .build();
        self.call(operation, || self.client.delete_points(request.clone()))
            .map(|_| ())
    }

    fn count(&self, filter: Option<Filter>) -> Result<u64> {
        let mut request = CountPointsBuilder::new(self.options.collection.clone()).exact(true);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let request = request.build();
        let response = self.call("count", || self.client.count(request.clone()))?;
        Ok(response.result.map_or(0, |r| r.count))
    }

    /// One page of points in id order from `offset` (inclusive).
    fn scroll_page(
        &self,
        filter: Option<Filter>,
        payload: ::qdrant_client::qdrant::with_payload_selector::SelectorOptions,
        with_vectors: bool,
        offset: Option<PointId>,
        limit: u32,
    ) -> Result<(Vec<RetrievedPoint>, Option<PointId>)> {
        let mut request = ScrollPointsBuilder::new(self.options.collection.clone())
            .limit(limit)
            .with_payload(payload)
            .with_vectors(with_vectors);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        if let Some(offset) = offset {
            request = request.offset(offset);
        }
        let request = request.build();
        let response = self.call("scroll", || self.client.scroll(request.clone()))?;
        Ok((response.result, response.next_page_offset))
    }

    fn scroll_all(
        &self,
        filter: Filter,
        payload: ::qdrant_client::qdrant::with_payload_selector::SelectorOptions,
    ) -> Result<Vec<RetrievedPoint>> {
        collect_pages(|offset| {
            self.scroll_page(
                Some(filter.clone()),
                payload.clone(),
                false,
                offset,
                SCROLL_PAGE,
            )
        })
    }

    /// The first chunk of every version matching `filter`, as document metadata.
    fn first_chunks(&self, filter: Filter) -> Result<Vec<DocumentMeta>> {
        let filter = with_must(filter, Condition::matches(ORDINAL, 0i64));
        let without_body = PayloadExcludeSelector {
            fields: CHUNK_BODY_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        };
        self.scroll_all(filter, without_body.into())?
            .into_iter()
            .map(|point| decode(point.id, point.payload))
            .collect()
    }
}

impl StoreRead for QdrantStore {
    /// One prefetch per vector present in the query (and with a weight above zero), each carrying
    /// the full filter (scope and search filters), fused by the server's weighted RRF.
    fn search(&self, scope: &Scope, query: &HybridQuery) -> Result<Vec<ScoredChunk>> {
        let weights = fusion_weights(&query.fusion)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let Some(filter) = search_filter(scope, query) else {
            return Ok(Vec::new());
        };
        let mut sources: Vec<(&str, VectorInput, f32)> = Vec::new();
        if let Some(dense) = &query.dense {
            validate_dense(dense, self.dense_dim, || "the dense query".to_owned())?;
            sources.push((DENSE, VectorInput::new_dense(dense.clone()), weights.dense));
        }
        for (name, vector, weight) in [
            (BM25, &query.bm25, weights.bm25),
            (BIGRAM, &query.bigram, weights.bigram),
        ] {
            if let Some(vector) = vector {
                let SparseVector { indices, values } = canonical_sparse(vector, name)?;
                sources.push((name, VectorInput::new_sparse(indices, values), weight));
            }
        }
        // As in the embedded store: a source with weight 0 would only add unscored candidates.
        sources.retain(|(_, _, weight)| *weight > 0.0);
        if sources.is_empty() {
            return Err(invalid(
                "the query has no vector with a positive weight".to_owned(),
            ));
        }

        let prefetch_limit = query.prefetch_limit.max(1) as u64;
        let candidates = prefetch_limit * sources.len() as u64;
        let mut request = QueryPointsBuilder::new(self.options.collection.clone());
        let mut source_weights = Vec::with_capacity(sources.len());
        for (name, vector, weight) in sources {
            request = request.add_prefetch(
                PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(vector))
                    .using(name)
                    .filter(filter.clone())
                    .limit(prefetch_limit),
            );
            source_weights.push(weight);
        }
        // Every fused candidate comes back (ids and scores only), so that ties are broken by
        // point id exactly as the embedded store does.
        let request = request
            .query(Query::new_rrf(
                RrfBuilder::with_k(query.fusion.k).weights(source_weights),
            ))
            .limit(candidates)
            .with_payload(false)
            .build();
        let response = self.call("query", || self.client.query(request.clone()))?;
        let mut fused: Vec<(Uuid, f32)> = response
            .result
            .into_iter()
            .map(|point| Ok((uuid_of(point.id)?, point.score)))
            .collect::<Result<_>>()?;
        fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        live_results(
            scope,
            &fused,
            query.limit,
            |ids| {
                let point_ids: Vec<PointId> = ids.iter().map(|id| id.to_string().into()).collect();
                let request = GetPointsBuilder::new(self.options.collection.clone(), point_ids)
                    .with_payload(true)
                    .with_vectors(false)
                    .build();
                let retrieved =
                    self.call("retrieve", || self.client.get_points(request.clone()))?;
                let mut payloads: HashMap<Uuid, HashMap<String, Value>> = HashMap::new();
                for point in retrieved.result {
                    payloads.insert(uuid_of(point.id)?, point.payload);
                }
                ids.iter()
                    .map(|id| {
                        payloads
                            .remove(id)
                            .map(|payload| {
                                decode::<StoredChunk>(Some(id.to_string().into()), payload)
                            })
                            .transpose()
                    })
                    .collect()
            },
            |doc_ids| self.read_heads(doc_ids),
        )
    }

    fn documents(&self, scope: &Scope) -> Result<Vec<DocumentMeta>> {
        self.readable_heads(scope)
    }

    fn document(&self, scope: &Scope, doc_id: &str) -> Result<Option<DocumentMeta>> {
        Ok(self
            .read_heads(&[doc_id.to_owned()])?
            .remove(doc_id)
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
                let filter = Filter::must([
                    Condition::matches("doc_id", doc_id.to_owned()),
                    Condition::matches("version", live.version.clone()),
                ]);
                self.scroll_all(filter, true.into())?
                    .into_iter()
                    .map(|point| decode::<StoredChunk>(point.id, point.payload))
                    .collect()
            },
        )
    }

    fn status(&self) -> Result<StoreStatus> {
        let version = self.server_version()?;
        let name = self.options.collection.clone();
        let info = self
            .call("collection info", || {
                self.client.collection_info(name.clone())
            })?
            .result;
        let status = info.map(|info| {
            CollectionStatus::try_from(info.status)
                .map(|s| s.as_str_name().to_ascii_lowercase())
                .unwrap_or_else(|_| "unknown".to_owned())
        });
        Ok(StoreStatus {
            backend: "qdrant",
            server_version: Some(version),
            collection_status: status,
        })
    }

    fn dense_dim(&self) -> usize {
        self.dense_dim
    }
}

impl StoreWrite for QdrantStore {
    /// See [`super::versions`]; the chunks are upserted in batches, each acknowledged.
    fn replace_documents(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()> {
        versions::replace(self, documents)
    }

    fn delete_document(&self, doc_id: &str) -> Result<bool> {
        versions::delete(self, doc_id)
    }
}

impl StoreAdmin for QdrantStore {
    fn heads(&self) -> Result<BTreeMap<String, DocumentHead>> {
        self.all_heads()
    }

    fn point_count(&self) -> Result<u64> {
        self.count(None)
    }

    fn export_points(&self, from: Option<Uuid>, limit: usize) -> Result<PointPage> {
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        let (page, next) = self.scroll_page(
            None,
            true.into(),
            true,
            from.map(|id| id.to_string().into()),
            limit,
        )?;
        let points = page
            .into_iter()
            .map(|point| {
                let id = point.id.clone();
                let stored: StoredChunk = decode(point.id, point.payload)?;
                let (dense, bm25, bigram) = server_vectors(id, point.vectors)?;
                Ok(chunk_record(stored, dense, bm25, bigram))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = next.map(|id| uuid_of(Some(id))).transpose()?;
        Ok(PointPage { points, next })
    }

    fn chunk_counts(&self) -> Result<BTreeMap<(String, String), u64>> {
        let only_version = PayloadIncludeSelector {
            fields: vec!["doc_id".to_owned(), "version".to_owned()],
        };
        let mut counts = BTreeMap::new();
        for point in self.scroll_all(Filter::default(), only_version.into())? {
            let key: DocumentVersion = decode(point.id, point.payload)?;
            *counts.entry((key.doc_id, key.version)).or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn import_points(&self, points: &[(DocumentMeta, ChunkRecord)]) -> Result<()> {
        let points = points
            .iter()
            .map(|(document, chunk)| self.point(document, chunk))
            .collect::<Result<Vec<_>>>()?;
        self.upsert("import points", points)
    }

    fn import_heads(&self, heads: &[DocumentHead]) -> Result<()> {
        versions::check_heads_complete(heads, &self.chunk_counts()?)?;
        self.write_heads(heads)
    }
}

/// The client reports a failed connection as an `Internal` status with this message.
fn is_connect_failure(error: &QdrantError) -> bool {
    matches!(error, QdrantError::ResponseError { status }
        if status.code() == tonic::Code::Internal && status.message().starts_with("Failed to connect"))
}

/// Failures worth retrying: the server is momentarily unreachable, overloaded or slow.
fn is_transient(error: &QdrantError) -> bool {
    if is_connect_failure(error) {
        return true;
    }
    match error {
        QdrantError::ResourceExhaustedError { .. } => true,
        QdrantError::ResponseError { status } => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Aborted
                | tonic::Code::ResourceExhausted
        ),
        _ => false,
    }
}

/// Whether a server version is within one minor version of the client's.
fn compatible(server_version: &str) -> bool {
    let mut parts = server_version.split('.').map(u64::from_str);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => {
            major == CLIENT_VERSION.0 && minor.abs_diff(CLIENT_VERSION.1) <= 1
        }
        _ => false,
    }
}

/// The scope as a filter (`readers` matches any of the scope's tokens), an empty filter for
/// everything, or `None` when the scope has no tokens and so can read nothing.
fn scope_filter(scope: &Scope) -> Option<Filter> {
    match scope.reader_tokens() {
        None => Some(Filter::default()),
        Some([]) => None,
        Some(tokens) => Some(Filter::must([Condition::matches(
            "readers",
            tokens.to_vec(),
        )])),
    }
}

/// The scope filter plus the query's filters, or `None` when the scope can read nothing.
fn search_filter(scope: &Scope, query: &HybridQuery) -> Option<Filter> {
    let mut filter = scope_filter(scope)?;
    let filters = &query.filters;
    for (field, value) in [
        ("owner", &filters.owner),
        ("kind", &filters.kind),
        ("doc_id", &filters.doc_id),
        ("heading_path", &filters.section),
    ] {
        if let Some(value) = value {
            filter = with_must(filter, Condition::matches(field, value.clone()));
        }
    }
    Some(filter)
}

fn with_must(mut filter: Filter, condition: Condition) -> Filter {
    filter.must.push(condition);
    filter
}

fn uuid_of(id: Option<PointId>) -> Result<Uuid> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => {
            Uuid::parse_str(&text).map_err(|e| StoreError::Operation {
                operation: "read point id",
                reason: format!("{text} is not a UUID: {e}"),
            })
        }
        other => Err(StoreError::Operation {
            operation: "read point id",
            reason: format!("expected a UUID point id, got {other:?}"),
        }),
    }
}

/// The three named vectors of an exported point.
fn server_vectors(
    id: Option<PointId>,
    vectors: Option<::qdrant_client::qdrant::VectorsOutput>,
) -> Result<(Vec<f32>, SparseVector, SparseVector)> {
    let missing = |what: &str| StoreError::Operation {
        operation: "export points",
        reason: format!("point {id:?} has no {what} vector"),
    };
    let vectors = vectors.ok_or_else(|| missing("named"))?;
    let dense = match vectors.get_vector_by_name(DENSE) {
        Some(vector_output::Vector::Dense(dense)) => dense.data,
        _ => return Err(missing(DENSE)),
    };
    let sparse = |name: &str| match vectors.get_vector_by_name(name) {
        Some(vector_output::Vector::Sparse(sparse)) => Ok(SparseVector {
            indices: sparse.indices,
            values: sparse.values,
        }),
        _ => Err(missing(name)),
    };
    Ok((dense, sparse(BM25)?, sparse(BIGRAM)?))
}

fn decode<T: for<'de> Deserialize<'de>>(
    id: Option<PointId>,
    payload: HashMap<String, Value>,
) -> Result<T> {
    Payload::from(payload)
        .deserialize()
        .map_err(|e| StoreError::Operation {
            operation: "read payload",
            reason: format!("point {id:?} has an unexpected payload: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_within_one_minor_are_compatible() {
        assert!(compatible("1.18.3"));
        assert!(compatible("1.17.0"));
        assert!(compatible("1.19.1"));
        assert!(!compatible("1.16.0"));
        assert!(!compatible("2.18.0"));
        assert!(!compatible("dev"));
    }

    #[test]
    fn only_overload_and_unavailability_are_retried() {
        let status = |code| QdrantError::ResponseError {
            status: tonic::Status::new(code, "x"),
        };
        assert!(is_transient(&status(tonic::Code::Unavailable)));
        assert!(is_transient(&status(tonic::Code::DeadlineExceeded)));
        assert!(!is_transient(&status(tonic::Code::InvalidArgument)));
        assert!(!is_transient(&status(tonic::Code::Unauthenticated)));
        assert!(!is_transient(&status(tonic::Code::NotFound)));
        assert!(!is_transient(&status(tonic::Code::Internal)));
        assert!(is_transient(&QdrantError::ResponseError {
            status: tonic::Status::internal("Failed to connect to http://x:6334/: refused"),
        }));
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        let options = QdrantOptions {
            // A port nothing listens on (reserved, closed on loopback).
            url: "http://127.0.0.1:9".to_owned(),
            retries: 1,
            connect_timeout_ms: 500,
            ..QdrantOptions::default()
        };
        match QdrantStore::connect(&options, 8) {
            Err(StoreError::Unreachable { url, .. }) => assert_eq!(url, options.url),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let options = QdrantOptions {
            api_key: Some(ApiKey::new("secret-key")),
            ..QdrantOptions::default()
        };
        assert!(!format!("{options:?}").contains("secret-key"));
    }
}
