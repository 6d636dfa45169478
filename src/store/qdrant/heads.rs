//! Document heads and writer leases on a Qdrant server: points of the collection
//! `<collection>-heads` (a one-dimensional placeholder vector each; only their payload matters).
//!
//! - A head point (id: UUID v5 of the doc id) holds the [`DocumentHead`] as JSON in `head`, plus
//!   `readers` (the live version's, for scoped listings) and `state` (`settled` or `unsettled`).
//!   One upsert replaces it atomically: that is the switch of versions.
//! - A lease point (another UUID v5 of the doc id) serialises writers of one document across
//!   replicas: it is created with `insert_only` (a second writer's insert changes nothing), read
//!   back to see whose token it holds, taken over only when expired, by an upsert conditioned on
//!   the expired token (`update_filter`), and deleted, conditioned on the owner's token, when the
//!   write ends.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::qdrant_client::Payload;
use ::qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, GetPointsBuilder, PointId, PointStruct, ScrollPointsBuilder,
    UpdateMode, UpsertPointsBuilder, VectorParamsBuilder,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{QdrantStore, SCROLL_PAGE, decode, scope_filter, uuid_of, with_must};
use crate::access::Scope;
use crate::store::points::{collect_pages, invalid};
use crate::store::versions::{DocumentHead, VersionedBackend, heads_from_first_chunks};
use crate::store::{ChunkRecord, DocumentMeta, Result, StoreError};

const HEAD_NAMESPACE: Uuid = Uuid::from_u128(0x2f0c_1e7a_8b44_5c61_a3d9_6e15_07b2_c4f8);
const LEASE_NAMESPACE: Uuid = Uuid::from_u128(0x91d4_63aa_0f5e_5b27_8c1b_3a7e_d260_4e9c);
/// How long a lease holds without being released; a writer that died holding one delays the
/// next writer of that document by at most this long.
const LEASE: Duration = Duration::from_secs(120);
/// How long a writer waits for another writer of the same document.
const LOCK_WAIT: Duration = Duration::from_secs(150);

fn head_id(doc_id: &str) -> Uuid {
    Uuid::new_v5(&HEAD_NAMESPACE, doc_id.as_bytes())
}

fn lease_id(doc_id: &str) -> Uuid {
    Uuid::new_v5(&LEASE_NAMESPACE, doc_id.as_bytes())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[derive(Debug, Deserialize)]
struct StoredHead {
    head: DocumentHead,
}

#[derive(Debug, Deserialize)]
struct StoredLease {
    token: String,
    expires_at: u64,
}

/// Leases held by one writer; released (each only if still its own) when dropped.
pub struct Leases<'a> {
    store: &'a QdrantStore,
    held: Vec<(Uuid, String)>,
}

impl Drop for Leases<'_> {
    fn drop(&mut self) {
        for (id, token) in &self.held {
            let filter = Filter::must([
                Condition::has_id([PointId::from(id.to_string())]),
                Condition::matches("token", token.clone()),
            ]);
            if let Err(error) = self.store.delete_heads_where("release lease", filter) {
                tracing::warn!(%error, lease = %id, "cannot release a document lease; it expires by itself");
            }
        }
    }
}

impl QdrantStore {
    pub(super) fn heads_collection(&self) -> String {
        format!("{}-heads", self.options.collection)
    }

    /// Creates the heads collection when missing; a chunk collection written before heads
    /// existed gets heads derived from its chunks (the newest version of each document live).
    pub(super) fn ensure_heads(&self) -> Result<()> {
        let name = self.heads_collection();
        let exists = self.call("collection exists", || {
            self.client.collection_exists(name.clone())
        })?;
        if exists {
            return Ok(());
        }
        let request = CreateCollectionBuilder::new(name.clone())
            .vectors_config(VectorParamsBuilder::new(1, Distance::Dot))
            .shard_number(1)
            .replication_factor(self.options.replication_factor)
            .write_consistency_factor(self.options.write_consistency_factor)
            .build();
        match self.call("create heads collection", || {
            self.client.create_collection(request.clone())
        }) {
            Ok(_) => {}
            // Another replica created it in the meantime.
            Err(StoreError::Operation { reason, .. }) if reason.contains("already exists") => {
                return Ok(());
            }
            Err(error) => return Err(error),
        }
        for (field, field_type) in [
            ("kind", FieldType::Keyword),
            ("readers", FieldType::Keyword),
            ("state", FieldType::Keyword),
        ] {
            let request = CreateFieldIndexCollectionBuilder::new(name.clone(), field, field_type)
                .wait(true)
                .build();
            self.call("create payload index", || {
                self.client.create_field_index(request.clone())
            })?;
        }
        let derived = heads_from_first_chunks(self.first_chunks(Filter::default())?);
        if !derived.is_empty() {
            tracing::info!(
                documents = derived.len(),
                "derived document heads for a collection written before them"
            );
            self.write_heads(&derived)?;
        }
        Ok(())
    }

    fn head_point(head: &DocumentHead) -> Result<PointStruct> {
        let readers: Vec<String> = head
            .live
            .as_ref()
            .map(|live| live.readers.clone())
            .unwrap_or_default();
        let payload = serde_json::json!({
            "kind": "head",
            "doc_id": head.doc_id,
            "readers": readers,
            "state": if head.is_settled() { "settled" } else { "unsettled" },
            "head": head,
        });
        let serde_json::Value::Object(payload) = payload else {
            return Err(invalid("a head payload is not an object".to_owned()));
        };
        Ok(PointStruct::new(
            head_id(&head.doc_id).to_string(),
            vec![1.0_f32],
            Payload::from(payload),
        ))
    }

    fn scroll_heads(&self, filter: Filter) -> Result<Vec<DocumentHead>> {
        let name = self.heads_collection();
        let points = collect_pages(|offset: Option<PointId>| {
            let mut request = ScrollPointsBuilder::new(name.clone())
                .limit(SCROLL_PAGE)
                .with_payload(true)
                .with_vectors(false)
                .filter(filter.clone());
            if let Some(offset) = offset {
                request = request.offset(offset);
            }
            let request = request.build();
            let response = self.call("scroll heads", || self.client.scroll(request.clone()))?;
            Ok((response.result, response.next_page_offset))
        })?;
        points
            .into_iter()
            .map(|point| decode::<StoredHead>(point.id, point.payload).map(|stored| stored.head))
            .collect()
    }

    pub(super) fn all_heads(&self) -> Result<BTreeMap<String, DocumentHead>> {
        Ok(self
            .scroll_heads(Filter::must([Condition::matches(
                "kind",
                "head".to_owned(),
            )]))?
            .into_iter()
            .map(|head| (head.doc_id.clone(), head))
            .collect())
    }

    /// Live versions readable in `scope`, ordered by doc id; the scope filters the scroll on
    /// the server and is checked again here.
    pub(super) fn readable_heads(&self, scope: &Scope) -> Result<Vec<DocumentMeta>> {
        let Some(filter) = scope_filter(scope) else {
            return Ok(Vec::new());
        };
        let filter = with_must(filter, Condition::matches("kind", "head".to_owned()));
        let mut documents: Vec<DocumentMeta> = self
            .scroll_heads(filter)?
            .into_iter()
            .filter_map(|head| head.readable(scope).cloned())
            .collect();
        documents.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
        Ok(documents)
    }

    fn delete_heads_where(&self, operation: &'static str, filter: Filter) -> Result<()> {
        let request = DeletePointsBuilder::new(self.heads_collection())
            .points(filter)
            .wait(true)
            .build();
        self.call(operation, || self.client.delete_points(request.clone()))
            .map(|_| ())
    }

    fn lease_point(doc_id: &str, token: &str) -> Result<PointStruct> {
        let payload = serde_json::json!({
            "kind": "lease",
            "doc_id": doc_id,
            "token": token,
            "expires_at": now_ms() + LEASE.as_millis() as u64,
        });
        let serde_json::Value::Object(payload) = payload else {
            return Err(invalid("a lease payload is not an object".to_owned()));
        };
        Ok(PointStruct::new(
            lease_id(doc_id).to_string(),
            vec![1.0_f32],
            Payload::from(payload),
        ))
    }

    fn current_lease(&self, doc_id: &str) -> Result<Option<StoredLease>> {
        let request = GetPointsBuilder::new(
            self.heads_collection(),
            vec![PointId::from(lease_id(doc_id).to_string())],
        )
        .with_payload(true)
        .with_vectors(false)
        .build();
        let response = self.call("read lease", || self.client.get_points(request.clone()))?;
        response
            .result
            .into_iter()
            .next()
            .map(|point| decode::<StoredLease>(point.id, point.payload))
            .transpose()
    }

    /// Takes the lease of `doc_id` for `token`: `true` once held, `false` when another writer
    /// holds an unexpired lease and `wait` is false (or waited longer than [`LOCK_WAIT`]).
    fn acquire(&self, doc_id: &str, token: &str, wait: bool) -> Result<bool> {
        let started = Instant::now();
        let name = self.heads_collection();
        loop {
            let insert =
                UpsertPointsBuilder::new(name.clone(), vec![Self::lease_point(doc_id, token)?])
                    .update_mode(UpdateMode::InsertOnly)
                    .wait(true)
                    .build();
            self.call("take lease", || self.client.upsert_points(insert.clone()))?;
            match self.current_lease(doc_id)? {
                Some(lease) if lease.token == token => return Ok(true),
                Some(lease) if lease.expires_at < now_ms() => {
                    tracing::warn!(%doc_id, "taking over an expired document lease");
                    let take_over = UpsertPointsBuilder::new(
                        name.clone(),
                        vec![Self::lease_point(doc_id, token)?],
                    )
                    .update_filter(Filter::must([Condition::matches(
                        "token",
                        lease.token.clone(),
                    )]))
                    .wait(true)
                    .build();
                    self.call("take over lease", || {
                        self.client.upsert_points(take_over.clone())
                    })?;
                    continue;
                }
                // Released between our insert and our read: insert again.
                None => continue,
                Some(_) if !wait || started.elapsed() > LOCK_WAIT => return Ok(false),
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn upsert_heads(&self, points: Vec<PointStruct>) -> Result<()> {
        let name = self.heads_collection();
        for batch in points.chunks(self.options.batch_size) {
            let request = UpsertPointsBuilder::new(name.clone(), batch.to_vec())
                .wait(true)
                .build();
            self.call("write heads", || self.client.upsert_points(request.clone()))?;
        }
        Ok(())
    }
}

impl VersionedBackend for QdrantStore {
    type Lock<'a> = Leases<'a>;

    /// Leases in doc id order (the caller passes them sorted), so two writers of overlapping
    /// sets cannot wait for each other forever.
    fn lock_documents(&self, doc_ids: &[String]) -> Result<Leases<'_>> {
        let mut leases = Leases {
            store: self,
            held: Vec::with_capacity(doc_ids.len()),
        };
        for doc_id in doc_ids {
            let token = Uuid::new_v4().to_string();
            if !self.acquire(doc_id, &token, true)? {
                return Err(StoreError::Operation {
                    operation: "lock document",
                    reason: format!(
                        "another writer has been writing {doc_id} for over {} s; try again later",
                        LOCK_WAIT.as_secs()
                    ),
                });
            }
            leases.held.push((lease_id(doc_id), token));
        }
        Ok(leases)
    }

    fn try_lock_document(&self, doc_id: &str) -> Result<Option<Leases<'_>>> {
        let token = Uuid::new_v4().to_string();
        if !self.acquire(doc_id, &token, false)? {
            return Ok(None);
        }
        Ok(Some(Leases {
            store: self,
            held: vec![(lease_id(doc_id), token)],
        }))
    }

    fn read_heads(&self, doc_ids: &[String]) -> Result<HashMap<String, DocumentHead>> {
        if doc_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<PointId> = doc_ids
            .iter()
            .map(|doc_id| PointId::from(head_id(doc_id).to_string()))
            .collect();
        let request = GetPointsBuilder::new(self.heads_collection(), ids)
            .with_payload(true)
            .with_vectors(false)
            .build();
        let response = self.call("read heads", || self.client.get_points(request.clone()))?;
        let mut heads = HashMap::with_capacity(doc_ids.len());
        for point in response.result {
            uuid_of(point.id.clone())?;
            let stored: StoredHead = decode(point.id, point.payload)?;
            heads.insert(stored.head.doc_id.clone(), stored.head);
        }
        Ok(heads)
    }

    fn unsettled_heads(&self) -> Result<Vec<DocumentHead>> {
        self.scroll_heads(Filter::must([
            Condition::matches("kind", "head".to_owned()),
            Condition::matches("state", "unsettled".to_owned()),
        ]))
    }

    fn write_heads(&self, heads: &[DocumentHead]) -> Result<()> {
        let points = heads
            .iter()
            .map(Self::head_point)
            .collect::<Result<Vec<_>>>()?;
        self.upsert_heads(points)
    }

    fn remove_heads(&self, doc_ids: &[String]) -> Result<()> {
        if doc_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<PointId> = doc_ids
            .iter()
            .map(|doc_id| PointId::from(head_id(doc_id).to_string()))
            .collect();
        self.delete_heads_where("remove heads", Filter::must([Condition::has_id(ids)]))
    }

    fn write_chunks(&self, documents: &[(DocumentMeta, Vec<ChunkRecord>)]) -> Result<()> {
        let mut points = Vec::new();
        for (document, chunks) in documents {
            for chunk in chunks {
                points.push(self.point(document, chunk)?);
            }
        }
        self.upsert("upsert chunks", points)
    }

    fn delete_versions(&self, versions: &[(String, Vec<String>)]) -> Result<()> {
        for (doc_id, versions) in versions {
            if versions.is_empty() {
                continue;
            }
            let filter = Filter::must([
                Condition::matches("doc_id", doc_id.clone()),
                Condition::matches("version", versions.clone()),
            ]);
            self.delete_by_filter("delete versions", filter)?;
        }
        Ok(())
    }

    fn delete_all_chunks(&self, doc_id: &str) -> Result<()> {
        let filter = Filter::must([Condition::matches("doc_id", doc_id.to_owned())]);
        self.delete_by_filter("delete document", filter)
    }
}
