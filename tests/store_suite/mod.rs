//! A test suite any [`StoreAdmin`] backend can run.
//!
//! A backend's test file declares `#[macro_use] mod store_suite;` and calls
//! `store_suite!(open)`, where `open: Fn(&Path, usize) -> Result<S, StoreError>` opens (creating
//! it when needed) the store identified by a fresh directory with a given dense dimension. Every
//! function here is also public, for running one check on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use hikitsugi::access::{Directory, Operator, PUBLIC, Role, Scope};
use hikitsugi::migrate::{MigrationState, migrate};
use hikitsugi::store::{
    ChunkRecord, DocumentHead, DocumentMeta, HybridQuery, RrfParams, ScoredChunk, SearchFilters,
    SparseVector, StoreAdmin, StoreError, StoreWrite,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Dense dimension of the fixtures: small, the store does not care.
pub const DIM: usize = 8;

/// Generates one `#[test]` per check of the suite, for the store opened by `$open`. Attributes
/// after it go on every test, e.g. `#[ignore = "…"]` for backends that need a server.
macro_rules! store_suite {
    ($open:expr $(, #[$attr:meta])*) => {
        $(#[$attr])*
        #[test]
        fn scope_filtering() {
            $crate::store_suite::scope_filtering(&$open);
        }
        $(#[$attr])*
        #[test]
        fn search_filters_narrow_within_scope() {
            $crate::store_suite::search_filters_narrow_within_scope(&$open);
        }
        $(#[$attr])*
        #[test]
        fn replace_leaves_only_the_new_version() {
            $crate::store_suite::replace_leaves_only_the_new_version(&$open);
        }
        $(#[$attr])*
        #[test]
        fn delete_removes_every_version() {
            $crate::store_suite::delete_removes_every_version(&$open);
        }
        $(#[$attr])*
        #[test]
        fn documents_are_scoped_and_one_per_document() {
            $crate::store_suite::documents_are_scoped_and_one_per_document(&$open);
        }
        $(#[$attr])*
        #[test]
        fn reopen_keeps_data() {
            $crate::store_suite::reopen_keeps_data(&$open);
        }
        $(#[$attr])*
        #[test]
        fn concurrent_searches_during_writes() {
            $crate::store_suite::concurrent_searches_during_writes(&$open);
        }
        $(#[$attr])*
        #[test]
        fn exact_match_ranks_first_for_every_query_kind() {
            $crate::store_suite::exact_match_ranks_first_for_every_query_kind(&$open);
        }
        $(#[$attr])*
        #[test]
        fn other_dense_dimension_is_a_schema_mismatch() {
            $crate::store_suite::other_dense_dimension_is_a_schema_mismatch(&$open);
        }
        $(#[$attr])*
        #[test]
        fn invalid_input_is_rejected() {
            $crate::store_suite::invalid_input_is_rejected(&$open);
        }
        $(#[$attr])*
        #[test]
        fn random_principals_never_see_outside_their_scope() {
            $crate::store_suite::random_principals_never_see_outside_their_scope(&$open);
        }
        $(#[$attr])*
        #[test]
        fn export_then_import_copies_every_point() {
            $crate::store_suite::export_then_import_copies_every_point(&$open);
        }
        $(#[$attr])*
        #[test]
        fn migration_resumes_and_verifies() {
            $crate::store_suite::migration_resumes_and_verifies(&$open);
        }
        $(#[$attr])*
        #[test]
        fn readers_never_see_a_partial_or_mixed_version() {
            $crate::store_suite::readers_never_see_a_partial_or_mixed_version(&$open);
        }
        $(#[$attr])*
        #[test]
        fn narrowing_readers_is_atomic() {
            $crate::store_suite::narrowing_readers_is_atomic(&$open);
        }
        $(#[$attr])*
        #[test]
        fn concurrent_replacements_leave_one_complete_version() {
            $crate::store_suite::concurrent_replacements_leave_one_complete_version(&$open);
        }
        $(#[$attr])*
        #[test]
        fn interrupted_writes_are_finished_on_open() {
            $crate::store_suite::interrupted_writes_are_finished_on_open(&$open);
        }
    };
}

/// Deterministic fixture data: chunks with distinct vectors.
///
/// Every chunk gets a random dense vector, and sparse vectors made of four indices of its own
/// (weight 1–2) plus a few of ten shared indices (weight 0.1), so that a query equal to a chunk's
/// vectors finds that chunk first with each vector kind.
pub struct Fixture {
    state: u64,
    next_chunk: u32,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new(0x9e37_79b9_7f4a_7c15)
    }
}

impl Fixture {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            next_chunk: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn sparse(&mut self, base: u32, chunk: u32) -> SparseVector {
        let mut entries: BTreeMap<u32, f32> = BTreeMap::new();
        for shared in 0..10 {
            if self.next().is_multiple_of(3) {
                entries.insert(base + shared, 0.1);
            }
        }
        for own in 0..4 {
            entries.insert(base + 1000 + chunk * 4 + own, 1.0 + self.unit());
        }
        SparseVector {
            indices: entries.keys().copied().collect(),
            values: entries.values().copied().collect(),
        }
    }

    /// A chunk with fresh vectors.
    pub fn chunk(&mut self, ordinal: u32, text: &str) -> ChunkRecord {
        let n = self.next_chunk;
        self.next_chunk += 1;
        let dense = (0..DIM).map(|_| self.unit() * 2.0 - 1.0).collect();
        ChunkRecord {
            ordinal,
            text: text.to_owned(),
            heading_path: vec!["見出し".to_owned()],
            page_start: 1,
            page_end: 1,
            char_start: ordinal * 100,
            char_end: ordinal * 100 + 99,
            ocr: false,
            dense,
            bm25: self.sparse(0, n),
            bigram: self.sparse(1 << 20, n),
        }
    }

    /// A document with `chunks` chunks.
    pub fn document(
        &mut self,
        meta: DocumentMeta,
        chunks: u32,
    ) -> (DocumentMeta, Vec<ChunkRecord>) {
        let records = (0..chunks)
            .map(|o| self.chunk(o, &format!("{} の第{o}節", meta.doc_id)))
            .collect();
        (
            DocumentMeta {
                chunk_count: chunks,
                ..meta
            },
            records,
        )
    }
}

/// Document metadata with sensible defaults.
pub fn meta(
    doc_id: &str,
    version: &str,
    owner: &str,
    readers: &[&str],
    ingested_at: u64,
) -> DocumentMeta {
    DocumentMeta {
        doc_id: doc_id.to_owned(),
        version: version.to_owned(),
        title: format!("{doc_id} の手引き"),
        owner: owner.to_owned(),
        readers: readers.iter().map(|r| (*r).to_owned()).collect(),
        kind: "guide".to_owned(),
        date: Some("2024-04-01".to_owned()),
        ingested_at,
        chunk_count: 0,
        page_count: 1,
        paged: true,
        source: "test".to_owned(),
    }
}

/// Every stored version of each document (live or not), sorted: what is on disk.
pub fn stored_versions(store: &dyn StoreAdmin) -> BTreeMap<String, Vec<String>> {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (doc_id, version) in store.chunk_counts().expect("chunk counts").into_keys() {
        versions.entry(doc_id).or_default().push(version);
    }
    versions
}

/// A query with every vector of `chunk`, equal weights.
pub fn query_for(chunk: &ChunkRecord, limit: usize) -> HybridQuery {
    HybridQuery {
        dense: Some(chunk.dense.clone()),
        bm25: Some(chunk.bm25.clone()),
        bigram: Some(chunk.bigram.clone()),
        filters: SearchFilters::default(),
        prefetch_limit: 50,
        limit,
        fusion: RrfParams {
            k: 60,
            dense_weight: 1.0,
            bm25_weight: 1.0,
            bigram_weight: 1.0,
        },
    }
}

fn principal(org: &str, groups: &[&str]) -> Scope {
    Directory::new([(
        org.to_owned(),
        groups.iter().map(|g| (*g).to_owned()).collect(),
    )])
    .member(org, Role::Reader)
    .expect("a known organisation")
    .scope()
}

fn doc_ids(results: &[ScoredChunk]) -> BTreeSet<String> {
    results
        .iter()
        .map(|r| r.chunk.document.doc_id.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn put(store: &dyn StoreWrite, (meta, chunks): &(DocumentMeta, Vec<ChunkRecord>)) {
    let mut meta = meta.clone();
    meta.chunk_count = chunks.len() as u32;
    store
        .replace_document(&meta, chunks)
        .expect("replace_document");
}

/// Five documents with different readers; returns them and one chunk of each.
fn shared_corpus(
    store: &dyn StoreWrite,
    fixture: &mut Fixture,
) -> Vec<(DocumentMeta, Vec<ChunkRecord>)> {
    let docs = vec![
        fixture.document(meta("pub-1", "v1", "org-a", &["org-a", PUBLIC], 1), 2),
        fixture.document(meta("a-1", "v1", "org-a", &["org-a"], 1), 2),
        fixture.document(meta("a-g", "v1", "org-a", &["org-a", "grp-x"], 1), 1),
        fixture.document(meta("b-1", "v1", "org-b", &["org-b"], 1), 3),
        fixture.document(meta("b-g", "v1", "org-b", &["org-b", "grp-x"], 1), 1),
    ];
    for doc in &docs {
        put(store, doc);
    }
    docs
}

/// Search, `documents()` and `document()` each see exactly the documents of the scope.
pub fn scope_filtering<S: StoreAdmin>(open: &impl Fn(&Path, usize) -> Result<S, StoreError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let docs = shared_corpus(&store, &mut Fixture::default());
    let cases: Vec<(Scope, BTreeSet<String>)> = vec![
        (principal("org-a", &[]), set(&["pub-1", "a-1", "a-g"])),
        (
            principal("org-b", &["grp-x"]),
            set(&["pub-1", "b-1", "b-g", "a-g"]),
        ),
        (principal("org-c", &[]), set(&["pub-1"])),
        (
            principal("org-c", &["grp-x"]),
            set(&["pub-1", "a-g", "b-g"]),
        ),
        (
            Operator.scope(),
            set(&["pub-1", "a-1", "a-g", "b-1", "b-g"]),
        ),
    ];
    for (scope, expected) in cases {
        let listed: BTreeSet<String> = store
            .documents(&scope)
            .expect("documents")
            .into_iter()
            .map(|d| d.doc_id)
            .collect();
        assert_eq!(listed, expected, "documents() for {scope:?}");
        // Searching with each document's first chunk finds exactly the readable documents.
        let mut found = BTreeSet::new();
        for (meta, chunks) in &docs {
            let results = store
                .search(&scope, &query_for(&chunks[0], 20))
                .expect("search");
            assert!(
                results
                    .iter()
                    .all(|r| scope.permits(&r.chunk.document.readers))
            );
            found.extend(doc_ids(&results));
            let readable = expected.contains(&meta.doc_id);
            if readable {
                let best = &results[0].chunk;
                assert_eq!(
                    (best.document.doc_id.as_str(), best.ordinal),
                    (meta.doc_id.as_str(), 0)
                );
            } else {
                assert!(
                    results
                        .iter()
                        .all(|r| r.chunk.document.doc_id != meta.doc_id)
                );
            }
            let single = store.document(&scope, &meta.doc_id).expect("document");
            assert_eq!(
                single.is_some(),
                readable,
                "document({}) in {scope:?}",
                meta.doc_id
            );
        }
        assert_eq!(found, expected, "search for {scope:?}");
    }
    assert_eq!(
        store
            .document(&Operator.scope(), "missing")
            .expect("document"),
        None
    );
}

/// Owner, kind and doc id filters narrow the results and never widen the scope.
pub fn search_filters_narrow_within_scope<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let docs = shared_corpus(&store, &mut fixture);
    let mut report = meta("b-report", "v1", "org-b", &["org-b", PUBLIC], 1);
    report.kind = "report".to_owned();
    put(&store, &fixture.document(report, 1));

    let probe = &docs[0].1[0];
    let search = |scope: &Scope, filters: SearchFilters| {
        let mut query = query_for(probe, 50);
        query.filters = filters;
        doc_ids(&store.search(scope, &query).expect("search"))
    };
    let by_owner = |owner: &str| SearchFilters {
        owner: Some(owner.to_owned()),
        ..SearchFilters::default()
    };
    let everything = Operator.scope();
    assert_eq!(
        search(&everything, by_owner("org-b")),
        set(&["b-1", "b-g", "b-report"])
    );
    assert_eq!(
        search(&principal("org-c", &[]), by_owner("org-b")),
        set(&["b-report"])
    );
    assert_eq!(
        search(&principal("org-c", &[]), by_owner("org-a")),
        set(&["pub-1"])
    );
    let by_kind = SearchFilters {
        kind: Some("report".to_owned()),
        ..SearchFilters::default()
    };
    assert_eq!(
        search(&principal("org-a", &[]), by_kind),
        set(&["b-report"])
    );
    let by_doc = |doc: &str| SearchFilters {
        doc_id: Some(doc.to_owned()),
        ..SearchFilters::default()
    };
    assert_eq!(
        search(&principal("org-a", &[]), by_doc("a-1")),
        set(&["a-1"])
    );
    assert_eq!(search(&principal("org-c", &[]), by_doc("a-1")), set(&[]));
    let all_three = SearchFilters {
        owner: Some("org-a".to_owned()),
        kind: Some("guide".to_owned()),
        doc_id: Some("a-g".to_owned()),
        section: None,
    };
    assert_eq!(
        search(&principal("org-b", &["grp-x"]), all_three.clone()),
        set(&["a-g"])
    );
    assert_eq!(search(&principal("org-b", &[]), all_three), set(&[]));

    let mut sectioned = fixture.document(meta("sections", "v1", "org-b", &[PUBLIC], 1), 3);
    sectioned.1[0].heading_path = vec!["北海道".to_owned()];
    sectioned.1[1].heading_path = vec!["山梨県".to_owned(), "体制".to_owned()];
    sectioned.1[2].heading_path = vec!["京都府".to_owned(), "北海道".to_owned()];
    put(&store, &sectioned);
    let in_section = |section: &str| {
        let mut query = query_for(&sectioned.1[0], 50);
        query.filters = SearchFilters {
            doc_id: Some("sections".to_owned()),
            section: Some(section.to_owned()),
            ..SearchFilters::default()
        };
        let mut ordinals: Vec<u32> = store
            .search(&principal("org-c", &[]), &query)
            .expect("search")
            .iter()
            .map(|found| found.chunk.ordinal)
            .collect();
        ordinals.sort_unstable();
        ordinals
    };
    assert_eq!(in_section("山梨県"), vec![1]);
    assert_eq!(
        in_section("北海道"),
        vec![0, 2],
        "a heading anywhere in the path matches in the store"
    );
    assert_eq!(in_section("沖縄県"), Vec::<u32>::new());
}

/// After a replace only the new version's chunks exist: in search, listings and versions.
pub fn replace_leaves_only_the_new_version<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let old = fixture.document(meta("doc", "v1", "org-a", &["org-a"], 1), 3);
    let other = fixture.document(meta("other", "v1", "org-a", &["org-a"], 1), 1);
    put(&store, &old);
    put(&store, &other);
    assert_eq!(store.point_count().expect("count"), 4);

    let new = fixture.document(meta("doc", "v2", "org-a", &["org-a"], 2), 2);
    put(&store, &new);
    assert_eq!(store.point_count().expect("count"), 3);
    let versions = stored_versions(&store);
    assert_eq!(versions.get("doc"), Some(&vec!["v2".to_owned()]));
    assert_eq!(versions.get("other"), Some(&vec!["v1".to_owned()]));

    let scope = principal("org-a", &[]);
    for chunk in old.1.iter().chain(&new.1) {
        let results = store.search(&scope, &query_for(chunk, 20)).expect("search");
        let of_doc: Vec<&ScoredChunk> = results
            .iter()
            .filter(|r| r.chunk.document.doc_id == "doc")
            .collect();
        assert_eq!(of_doc.len(), 2, "both chunks of v2 and nothing else");
        assert!(of_doc.iter().all(|r| r.chunk.document.version == "v2"));
    }
    let listed = store
        .document(&scope, "doc")
        .expect("document")
        .expect("doc is readable");
    assert_eq!(
        (
            listed.version.as_str(),
            listed.ingested_at,
            listed.chunk_count
        ),
        ("v2", 2, 2)
    );

    // Re-writing the same version is idempotent.
    put(&store, &new);
    assert_eq!(store.point_count().expect("count"), 3);
}

/// `delete_document` removes every chunk and reports whether there was anything.
pub fn delete_removes_every_version<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let doc = fixture.document(meta("doc", "v1", "org-a", &["org-a", PUBLIC], 1), 3);
    let keep = fixture.document(meta("keep", "v1", "org-a", &["org-a", PUBLIC], 1), 1);
    put(&store, &doc);
    put(&store, &keep);

    assert!(store.delete_document("doc").expect("delete"));
    assert!(!store.delete_document("doc").expect("second delete"));
    assert!(
        !store
            .delete_document("never-existed")
            .expect("delete of nothing")
    );
    assert_eq!(store.point_count().expect("count"), 1);
    assert!(!stored_versions(&store).contains_key("doc"));
    let everything = Operator.scope();
    assert_eq!(store.document(&everything, "doc").expect("document"), None);
    let results = store
        .search(&everything, &query_for(&doc.1[0], 20))
        .expect("search");
    assert_eq!(doc_ids(&results), set(&["keep"]));
}

/// One entry per document however many chunks and replacements, newest metadata, by doc id.
pub fn documents_are_scoped_and_one_per_document<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    for (i, version) in ["v1", "v2", "v3"].iter().enumerate() {
        let at = i as u64 + 1;
        put(
            &store,
            &fixture.document(meta("zeta", version, "org-a", &["org-a"], at), 4),
        );
        put(
            &store,
            &fixture.document(meta("alpha", version, "org-b", &["org-b", "grp-x"], at), 2),
        );
    }
    let listed = store
        .documents(&principal("org-b", &[]))
        .expect("documents");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].doc_id.as_str(), listed[0].version.as_str()),
        ("alpha", "v3")
    );
    let listed = store
        .documents(&principal("org-a", &["grp-x"]))
        .expect("documents");
    let summary: Vec<(&str, &str, u32)> = listed
        .iter()
        .map(|d| (d.doc_id.as_str(), d.version.as_str(), d.chunk_count))
        .collect();
    assert_eq!(summary, vec![("alpha", "v3", 2), ("zeta", "v3", 4)]);
    assert!(
        store
            .documents(&principal("org-c", &[]))
            .expect("documents")
            .is_empty()
    );
    let versions = stored_versions(&store);
    assert_eq!(versions.len(), 2);
    assert!(versions.values().all(|v| v == &vec!["v3".to_owned()]));
}

/// Dropping the store and opening the directory again keeps documents, chunks and vectors.
///
/// Results are compared exactly for a dense query only: sparse scores use IDF statistics, which
/// a backend may legitimately recompute on opening (qdrant-edge counts deleted points in them
/// until the segment is reloaded or optimised).
pub fn reopen_keeps_data<S: StoreAdmin>(open: &impl Fn(&Path, usize) -> Result<S, StoreError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fixture = Fixture::default();
    let store = open(dir.path(), DIM).expect("open");
    let docs = shared_corpus(&store, &mut fixture);
    put(
        &store,
        &fixture.document(meta("a-1", "v2", "org-a", &["org-a"], 2), 1),
    );
    assert!(store.delete_document("b-g").expect("delete"));
    let everything = Operator.scope();
    let before = store.documents(&everything).expect("documents");
    let probe = &docs[3].1[1];
    let dense_probe = HybridQuery {
        bm25: None,
        bigram: None,
        ..query_for(probe, 5)
    };
    let dense_before = store.search(&everything, &dense_probe).expect("search");
    let count_before = store.point_count().expect("count");
    drop(store);

    let store = open(dir.path(), DIM).expect("reopen");
    assert_eq!(store.documents(&everything).expect("documents"), before);
    assert_eq!(store.point_count().expect("count"), count_before);
    assert_eq!(
        store.search(&everything, &dense_probe).expect("search"),
        dense_before
    );
    for sparse_probe in [
        HybridQuery {
            dense: None,
            bigram: None,
            ..query_for(probe, 5)
        },
        HybridQuery {
            dense: None,
            bm25: None,
            ..query_for(probe, 5)
        },
    ] {
        let results = store.search(&everything, &sparse_probe).expect("search");
        let best = &results[0].chunk;
        assert_eq!(
            (
                best.document.doc_id.as_str(),
                best.ordinal,
                best.text.as_str()
            ),
            ("b-1", 1, "b-1 の第1節")
        );
    }
}

/// Searches and listings on several threads while another thread replaces and deletes documents:
/// no error, no panic, nothing outside the scope, never two versions of a document at once.
pub fn concurrent_searches_during_writes<S: StoreAdmin + 'static>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path(), DIM).expect("open"));
    let mut fixture = Fixture::default();
    let docs = shared_corpus(store.as_ref(), &mut fixture);
    let probes: Vec<HybridQuery> = docs
        .iter()
        .map(|(_, chunks)| query_for(&chunks[0], 10))
        .collect();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = [
        principal("org-a", &[]),
        principal("org-c", &["grp-x"]),
        Operator.scope(),
    ]
    .into_iter()
    .map(|scope| {
        let (store, done, probes) = (Arc::clone(&store), Arc::clone(&done), probes.clone());
        thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) || rounds == 0 {
                for probe in &probes {
                    let results = store.search(&scope, probe).expect("search during writes");
                    assert!(
                        results
                            .iter()
                            .all(|r| scope.permits(&r.chunk.document.readers))
                    );
                    let mut versions: BTreeMap<&str, &str> = BTreeMap::new();
                    for r in &results {
                        let d = &r.chunk.document;
                        let seen = versions
                            .entry(d.doc_id.as_str())
                            .or_insert(d.version.as_str());
                        assert_eq!(*seen, d.version.as_str(), "two versions of {}", d.doc_id);
                    }
                }
                let listed = store.documents(&scope).expect("documents during writes");
                assert!(listed.iter().all(|d| scope.permits(&d.readers)));
                rounds += 1;
            }
            rounds
        })
    })
    .collect();

    for round in 0..12u64 {
        let version = format!("v{}", round + 2);
        put(
            store.as_ref(),
            &fixture.document(meta("a-1", &version, "org-a", &["org-a"], round + 2), 3),
        );
        put(
            store.as_ref(),
            &fixture.document(meta("churn", &version, "org-c", &["org-c"], round + 2), 2),
        );
        if round % 4 == 2 {
            assert!(store.delete_document("churn").expect("delete during reads"));
        }
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        let rounds = reader.join().expect("reader thread panicked");
        assert!(rounds > 0);
    }
    let versions = stored_versions(store.as_ref());
    assert_eq!(versions.get("a-1"), Some(&vec!["v13".to_owned()]));
    assert_eq!(versions.get("churn"), Some(&vec!["v13".to_owned()]));
}

/// A chunk whose vectors equal the query's ranks first, whichever vectors the query has.
pub fn exact_match_ranks_first_for_every_query_kind<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let docs: Vec<_> = (0..8)
        .map(|i| fixture.document(meta(&format!("d{i}"), "v1", "org-a", &[PUBLIC], 1), 3))
        .collect();
    for doc in &docs {
        put(&store, doc);
    }
    let scope = principal("org-z", &[]);
    let top = |query: &HybridQuery| {
        let results = store.search(&scope, query).expect("search");
        assert!(
            results.windows(2).all(|w| w[0].score >= w[1].score),
            "ordered by score"
        );
        assert!(results.len() <= query.limit);
        let best = &results[0].chunk;
        (best.document.doc_id.clone(), best.ordinal)
    };
    for (d, (meta, chunks)) in docs.iter().enumerate() {
        let ordinal = (d % 3) as u32;
        let target = &chunks[ordinal as usize];
        let expected = (meta.doc_id.clone(), ordinal);
        let full = query_for(target, 5);
        assert_eq!(top(&full), expected, "hybrid");
        let dense_only = HybridQuery {
            bm25: None,
            bigram: None,
            ..full.clone()
        };
        assert_eq!(top(&dense_only), expected, "dense only");
        let bm25_only = HybridQuery {
            dense: None,
            bigram: None,
            ..full.clone()
        };
        assert_eq!(top(&bm25_only), expected, "bm25 only");
        let bigram_only = HybridQuery {
            dense: None,
            bm25: None,
            ..full.clone()
        };
        assert_eq!(top(&bigram_only), expected, "bigram only");
        let sparse_only = HybridQuery {
            dense: None,
            ..full.clone()
        };
        assert_eq!(top(&sparse_only), expected, "both sparse vectors");
    }
    // Weights: the dense vector of chunk a against the sparse vectors of chunk b. A source with
    // weight 0 has no say. With k = 1 a source's best result scores its weight and the n-th at most
    // weight / n, so a dense weight of 5 beats two sparse sources of weight 1 and vice versa.
    let (a, b) = (&docs[1].1[0], &docs[6].1[2]);
    let mixed = |k, dense_weight, sparse_weight| HybridQuery {
        dense: Some(a.dense.clone()),
        bm25: Some(b.bm25.clone()),
        bigram: Some(b.bigram.clone()),
        fusion: RrfParams {
            k,
            dense_weight,
            bm25_weight: sparse_weight,
            bigram_weight: sparse_weight,
        },
        ..query_for(a, 5)
    };
    let (chunk_a, chunk_b) = (("d1".to_owned(), 0), ("d6".to_owned(), 2));
    assert_eq!(top(&mixed(60, 1.0, 0.0)), chunk_a);
    assert_eq!(top(&mixed(60, 0.0, 1.0)), chunk_b);
    assert_eq!(top(&mixed(1, 5.0, 1.0)), chunk_a);
    assert_eq!(top(&mixed(1, 1.0, 5.0)), chunk_b);
}

/// Opening a store with another dense dimension than it was created with fails.
pub fn other_dense_dimension_is_a_schema_mismatch<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    put(
        &store,
        &Fixture::default().document(meta("doc", "v1", "org-a", &["org-a"], 1), 1),
    );
    drop(store);
    match open(dir.path(), DIM * 2) {
        Err(StoreError::SchemaMismatch { .. }) => {}
        Err(other) => panic!("expected SchemaMismatch, got {other}"),
        Ok(_) => panic!("expected SchemaMismatch, the store opened"),
    }
    let store = open(dir.path(), DIM).expect("the right dimension still opens");
    assert_eq!(store.point_count().expect("count"), 1);
}

/// Malformed writes and queries are `InvalidInput` and change nothing.
pub fn invalid_input_is_rejected<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let (meta, chunks) = fixture.document(meta("doc", "v1", "org-a", &["org-a"], 1), 2);
    let is_invalid =
        |result: Result<(), StoreError>| matches!(result, Err(StoreError::InvalidInput { .. }));

    assert!(is_invalid(store.replace_document(&meta, &[])));
    let mut wrong_dim = chunks.clone();
    wrong_dim[1].dense.push(0.5);
    assert!(is_invalid(store.replace_document(&meta, &wrong_dim)));
    let mut duplicate = chunks.clone();
    duplicate[1].ordinal = 0;
    assert!(is_invalid(store.replace_document(&meta, &duplicate)));
    let mut ragged = chunks.clone();
    ragged[0].bm25.values.pop();
    assert!(is_invalid(store.replace_document(&meta, &ragged)));
    assert_eq!(store.point_count().expect("count"), 0);

    store
        .replace_document(&meta, &chunks)
        .expect("valid document");
    let scope = Operator.scope();
    let mut query = query_for(&chunks[0], 5);
    query.dense = Some(vec![1.0; DIM + 1]);
    assert!(matches!(
        store.search(&scope, &query),
        Err(StoreError::InvalidInput { .. })
    ));
    let none = HybridQuery {
        dense: None,
        bm25: None,
        bigram: None,
        ..query_for(&chunks[0], 5)
    };
    assert!(matches!(
        store.search(&scope, &none),
        Err(StoreError::InvalidInput { .. })
    ));
    let mut k0 = query_for(&chunks[0], 5);
    k0.fusion.k = 0;
    assert!(matches!(
        store.search(&scope, &k0),
        Err(StoreError::InvalidInput { .. })
    ));
}

const ORGS: [&str; 4] = ["org-a", "org-b", "org-c", "org-d"];
const GROUPS: [&str; 3] = ["grp-x", "grp-y", "grp-z"];

/// One store with random documents and readers; 1000 random principals and queries: no result is
/// ever outside the principal's scope, and a readable chunk is found first by its own vectors.
pub fn random_principals_never_see_outside_their_scope<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::new(42);
    let tokens: Vec<&str> = ORGS
        .iter()
        .chain(&GROUPS)
        .copied()
        .chain([PUBLIC])
        .collect();
    let mut chunks: Vec<(DocumentMeta, ChunkRecord)> = Vec::new();
    for i in 0..40 {
        let owner = ORGS[(fixture.next() % 3) as usize];
        let mut readers = vec![owner];
        readers.extend(
            tokens
                .iter()
                .copied()
                .filter(|_| fixture.next().is_multiple_of(5)),
        );
        readers.sort_unstable();
        readers.dedup();
        let doc = fixture.document(
            meta(&format!("doc-{i:02}"), "v1", owner, &readers, 1),
            1 + i % 3,
        );
        put(&store, &doc);
        chunks.extend(doc.1.iter().map(|chunk| (doc.0.clone(), chunk.clone())));
    }

    let strategy = (
        0..ORGS.len(),
        proptest::sample::subsequence(GROUPS.to_vec(), 0..=GROUPS.len()),
        0..chunks.len(),
        0u8..7,
        1usize..12,
    );
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(org, groups, target, kinds, limit)| {
            let scope = principal(ORGS[org], &groups);
            let (meta, chunk) = &chunks[target];
            let query = HybridQuery {
                dense: (kinds & 1 != 0).then(|| chunk.dense.clone()),
                bm25: (kinds & 2 != 0).then(|| chunk.bm25.clone()),
                bigram: (kinds & 4 != 0 || kinds == 0).then(|| chunk.bigram.clone()),
                ..query_for(chunk, limit)
            };
            let results = store
                .search(&scope, &query)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for r in &results {
                prop_assert!(
                    scope.permits(&r.chunk.document.readers),
                    "{} (readers {:?}) returned to {:?}",
                    r.chunk.document.doc_id,
                    r.chunk.document.readers,
                    scope
                );
            }
            prop_assert!(results.len() <= limit);
            if scope.permits(&meta.readers) {
                let best = results
                    .first()
                    .map(|r| (r.chunk.document.doc_id.as_str(), r.chunk.ordinal));
                prop_assert_eq!(best, Some((meta.doc_id.as_str(), chunk.ordinal)));
            } else {
                prop_assert!(
                    results
                        .iter()
                        .all(|r| r.chunk.document.doc_id != meta.doc_id)
                );
            }
            Ok(())
        })
        .expect("property holds");
}

/// Every point exported page by page (pages smaller than the corpus) and imported into a second
/// store: same ids and payload, same vectors (dense ones as the engine normalised them), same
/// listings and search results; importing again changes nothing.
pub fn export_then_import_copies_every_point<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let source = open(dir_a.path(), DIM).expect("open source");
    let target = open(dir_b.path(), DIM).expect("open target");
    let mut fixture = Fixture::default();
    let docs = shared_corpus(&source, &mut fixture);

    let mut exported = Vec::new();
    let mut from = None;
    let mut pages = 0;
    loop {
        let page = source.export_points(from, 3).expect("export");
        assert!(page.points.len() <= 3);
        pages += 1;
        target.import_points(&page.points).expect("import");
        exported.extend(page.points);
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    let written: usize = docs.iter().map(|(_, chunks)| chunks.len()).sum();
    assert_eq!(exported.len(), written);
    assert!(pages >= 3, "{pages} pages");
    for (meta, chunks) in &docs {
        for chunk in chunks {
            let (stored_meta, stored) = exported
                .iter()
                .find(|(m, c)| m.doc_id == meta.doc_id && c.ordinal == chunk.ordinal)
                .expect("every chunk is exported");
            assert_eq!(stored_meta.readers, meta.readers);
            assert_eq!(
                (&stored.text, &stored.heading_path),
                (&chunk.text, &chunk.heading_path)
            );
            assert_eq!(stored.bm25, chunk.bm25);
            assert_eq!(stored.bigram, chunk.bigram);
            let (a, b) = (normalised(&stored.dense), normalised(&chunk.dense));
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
                "{a:?} vs {b:?}"
            );
        }
    }

    target.import_points(&exported).expect("import again");
    assert_eq!(target.point_count().expect("count"), written as u64);
    // Imported points are invisible until their heads are imported (a migration's last step).
    assert!(
        target
            .documents(&Operator.scope())
            .expect("documents")
            .is_empty()
    );
    let heads: Vec<DocumentHead> = source.heads().expect("heads").into_values().collect();
    target.import_heads(&heads).expect("import heads");
    assert_eq!(
        target.chunk_counts().expect("counts"),
        source.chunk_counts().expect("counts")
    );
    let everything = Operator.scope();
    assert_eq!(
        target.documents(&everything).expect("documents"),
        source.documents(&everything).expect("documents")
    );
    let probe = &docs[3].1[1];
    let dense_probe = HybridQuery {
        bm25: None,
        bigram: None,
        ..query_for(probe, 5)
    };
    let found = |store: &S| -> Vec<(String, u32)> {
        store
            .search(&principal("org-b", &[]), &dense_probe)
            .expect("search")
            .into_iter()
            .map(|r| (r.chunk.document.doc_id, r.chunk.ordinal))
            .collect()
    };
    assert_eq!(found(&target), found(&source));
    assert_eq!(found(&target)[0], ("b-1".to_owned(), 1));
}

/// A migration interrupted after its first batch (its state file says where the next batch
/// starts) goes on from there when run again, copies only the rest, and verifies the counts;
/// a target missing chunks fails the verification.
pub fn migration_resumes_and_verifies<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let source = open(dir_a.path(), DIM).expect("open source");
    let target = open(dir_b.path(), DIM).expect("open target");
    let mut fixture = Fixture::default();
    shared_corpus(&source, &mut fixture);
    let total = source.point_count().expect("count");
    let state_path = dir_a.path().join("migrate-state.json");

    // What a run interrupted after one acknowledged batch of 4 leaves behind.
    let first = source.export_points(None, 4).expect("export");
    target.import_points(&first.points).expect("import");
    MigrationState {
        source: "a".to_owned(),
        target: "b".to_owned(),
        next: first.next,
        copied: 4,
    }
    .save(&state_path)
    .expect("save state");

    let other = migrate((&source, "x"), (&target, "b"), &state_path, 4, &|_, _| {});
    assert!(
        other.is_err(),
        "a state file of another migration is refused"
    );

    let report = migrate((&source, "a"), (&target, "b"), &state_path, 4, &|_, _| {})
        .expect("resumed migration");
    assert_eq!((report.resumed_after, report.copied), (4, total - 4));
    assert_eq!(report.verified_versions, 5);
    assert!(
        !state_path.exists(),
        "the state file is removed once verified"
    );
    assert_eq!(
        target.chunk_counts().expect("counts"),
        source.chunk_counts().expect("counts")
    );

    // A document the target lost is caught by the verification.
    assert!(target.delete_document("b-1").expect("delete"));
    let report = migrate((&source, "a"), (&target, "b"), &state_path, 100, &|_, _| {})
        .expect("a fresh run copies everything again");
    assert_eq!(report.copied, total);
    let (meta, chunks) = fixture.document(meta("late", "v1", "org-a", &["org-a"], 1), 2);
    source.replace_document(&meta, &chunks).expect("replace");
    MigrationState {
        source: "a".to_owned(),
        target: "b".to_owned(),
        next: None,
        copied: total,
    }
    .save(&state_path)
    .expect("save state");
    let stale = migrate((&source, "a"), (&target, "b"), &state_path, 100, &|_, _| {});
    assert!(
        matches!(
            stale,
            Err(hikitsugi::migrate::MigrateError::Verification { count: 1, .. })
        ),
        "{stale:?}"
    );
}

fn normalised(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter().map(|x| x / norm).collect()
}

/// What a reader sees of one document: its live version in a listing, and all of that version's
/// chunks through `passages`; panics unless they agree (complete, one version).
fn check_complete(store: &dyn StoreAdmin, scope: &Scope, doc_id: &str) -> Option<String> {
    let listed = store.document(scope, doc_id).expect("document");
    let passages = store
        .passages(scope, doc_id, 0..=u32::MAX)
        .expect("passages");
    let (document, chunks) = passages?;
    assert!(
        chunks
            .iter()
            .all(|c| c.document.version == document.version),
        "passages of {doc_id} mix versions"
    );
    assert_eq!(
        chunks.len() as u32,
        document.chunk_count,
        "{doc_id} {}: a partial version is visible",
        document.version
    );
    let ordinals: Vec<u32> = chunks.iter().map(|c| c.ordinal).collect();
    assert_eq!(ordinals, (0..document.chunk_count).collect::<Vec<_>>());
    if let Some(listed) = listed {
        // The listing may have moved on between the two reads, never backwards to nothing.
        assert!(listed.ingested_at >= document.ingested_at || listed.version == document.version);
    }
    Some(document.version)
}

/// While one thread replaces a large document again and again, readers always find it, and
/// always whole: its listing, its passages and search results show one complete version.
pub fn readers_never_see_a_partial_or_mixed_version<S: StoreAdmin + 'static>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path(), DIM).expect("open"));
    let mut fixture = Fixture::default();
    let first = fixture.document(meta("big", "v0", "org-a", &["org-a"], 1), 40);
    put(store.as_ref(), &first);
    let probe = query_for(&first.1[3], 20);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        thread::spawn(move || {
            let scope = principal("org-a", &[]);
            let mut checks = 0;
            while !done.load(Ordering::Relaxed) || checks == 0 {
                assert!(
                    check_complete(store.as_ref(), &scope, "big").is_some(),
                    "the document vanished during a replacement"
                );
                let results = store.search(&scope, &probe).expect("search");
                let versions: BTreeSet<&str> = results
                    .iter()
                    .map(|r| r.chunk.document.version.as_str())
                    .collect();
                assert!(versions.len() <= 1, "search mixed versions: {versions:?}");
                checks += 1;
            }
            checks
        })
    };
    for round in 1..=8u64 {
        let chunks = 25 + (round as u32 * 7) % 30;
        put(
            store.as_ref(),
            &fixture.document(
                meta("big", &format!("v{round}"), "org-a", &["org-a"], round + 1),
                chunks,
            ),
        );
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader panicked") > 0);
    assert_eq!(
        stored_versions(store.as_ref()).get("big"),
        Some(&vec!["v8".to_owned()])
    );
}

/// Narrowing a document's readers: once the replacement returns, the organisation taken off the
/// readers finds nothing of it, in search, listings or passages; before, it saw the old version.
pub fn narrowing_readers_is_atomic<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let wide = fixture.document(meta("plan", "v1", "org-a", &["org-a", "org-b"], 1), 3);
    put(&store, &wide);
    let outsider = principal("org-b", &[]);
    assert_eq!(
        check_complete(&store, &outsider, "plan"),
        Some("v1".to_owned())
    );

    let narrow = fixture.document(meta("plan", "v2", "org-a", &["org-a"], 2), 3);
    put(&store, &narrow);
    assert_eq!(store.document(&outsider, "plan").expect("document"), None);
    assert!(
        store
            .passages(&outsider, "plan", 0..=u32::MAX)
            .expect("passages")
            .is_none()
    );
    assert!(store.documents(&outsider).expect("documents").is_empty());
    for chunk in wide.1.iter().chain(&narrow.1) {
        let results = store
            .search(&outsider, &query_for(chunk, 20))
            .expect("search");
        assert!(
            results.is_empty(),
            "org-b still finds the narrowed document"
        );
    }
    assert_eq!(
        check_complete(&store, &principal("org-a", &[]), "plan"),
        Some("v2".to_owned())
    );
}

/// Two writers replacing the same document at once: they serialise, readers always find one
/// complete version, and one complete version is left (never none).
pub fn concurrent_replacements_leave_one_complete_version<S: StoreAdmin + 'static>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path(), DIM).expect("open"));
    let mut seed = Fixture::default();
    put(
        store.as_ref(),
        &seed.document(meta("doc", "start", "org-a", &["org-a"], 1), 5),
    );
    let writers: Vec<_> = ["x", "y"]
        .into_iter()
        .enumerate()
        .map(|(index, writer)| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut fixture = Fixture::new(index as u64 + 100);
                for round in 0..6u64 {
                    let version = format!("{writer}{round}");
                    let document = fixture.document(
                        meta("doc", &version, "org-a", &["org-a"], round + 2),
                        6 + index as u32,
                    );
                    put(store.as_ref(), &document);
                    assert!(
                        check_complete(store.as_ref(), &Operator.scope(), "doc").is_some(),
                        "the document vanished"
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer panicked");
    }
    let versions = stored_versions(store.as_ref());
    let left = versions.get("doc").expect("the document is still stored");
    assert_eq!(left.len(), 1, "exactly one version left: {left:?}");
    assert_eq!(
        check_complete(store.as_ref(), &Operator.scope(), "doc").as_ref(),
        Some(&left[0])
    );
}

/// A store reopened after a crash in the middle of a replacement: the half-written new version
/// (step 2) or the not yet deleted old version (step 4) is invisible, then removed on opening.
pub fn interrupted_writes_are_finished_on_open<S: StoreAdmin>(
    open: &impl Fn(&Path, usize) -> Result<S, StoreError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let written = fixture.document(meta("written", "v1", "org-a", &["org-a"], 1), 3);
    let retiring = fixture.document(meta("retiring", "v1", "org-a", &["org-a"], 1), 2);
    put(&store, &written);
    put(&store, &retiring);

    // A crash after part of the new version of "written" was stored, and one after the switch
    // of "retiring" but before its old version was deleted.
    let half = fixture.document(meta("written", "v2", "org-a", &["org-a"], 2), 4);
    let half_points: Vec<_> = half.1[..2]
        .iter()
        .map(|c| (half.0.clone(), c.clone()))
        .collect();
    store
        .import_points(&half_points)
        .expect("import half a version");
    let switched = fixture.document(meta("retiring", "v2", "org-a", &["org-a"], 2), 2);
    let switched_points: Vec<_> = switched
        .1
        .iter()
        .map(|c| (switched.0.clone(), c.clone()))
        .collect();
    store
        .import_points(&switched_points)
        .expect("import the new version");
    store
        .import_heads(&[
            DocumentHead {
                doc_id: "written".to_owned(),
                live: Some(written.0.clone()),
                pending: vec!["v2".to_owned()],
                retired: Vec::new(),
            },
            DocumentHead {
                doc_id: "retiring".to_owned(),
                live: Some(switched.0.clone()),
                pending: Vec::new(),
                retired: vec!["v1".to_owned()],
            },
        ])
        .expect("heads as a crash leaves them");

    let scope = principal("org-a", &[]);
    assert_eq!(
        check_complete(&store, &scope, "written"),
        Some("v1".to_owned())
    );
    assert_eq!(
        check_complete(&store, &scope, "retiring"),
        Some("v2".to_owned())
    );
    for chunk in &half.1[..2] {
        let results = store.search(&scope, &query_for(chunk, 20)).expect("search");
        assert!(
            results
                .iter()
                .all(|r| r.chunk.document.version != "v2" || r.chunk.document.doc_id != "written")
        );
    }
    drop(store);

    let store = open(dir.path(), DIM).expect("reopen");
    let versions = stored_versions(&store);
    assert_eq!(versions.get("written"), Some(&vec!["v1".to_owned()]));
    assert_eq!(versions.get("retiring"), Some(&vec!["v2".to_owned()]));
    assert!(
        store
            .heads()
            .expect("heads")
            .values()
            .all(DocumentHead::is_settled)
    );
    // A head naming a version whose chunks are not all there is refused.
    let missing = fixture.document(meta("missing", "v1", "org-a", &["org-a"], 1), 3);
    assert!(
        store
            .import_heads(&[DocumentHead {
                doc_id: "missing".to_owned(),
                live: Some(missing.0),
                pending: Vec::new(),
                retired: Vec::new(),
            }])
            .is_err()
    );
}
