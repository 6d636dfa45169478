//! The shared store suite on [`EdgeStore`], plus checks specific to qdrant-edge.

#[macro_use]
mod store_suite;

use std::fs;
use std::path::Path;

use hikitsugi::access::Operator;
use hikitsugi::store::{ChunkRecord, EdgeStore, StoreAdmin, StoreRead, StoreWrite};
use store_suite::{DIM, Fixture, meta, query_for, stored_versions};

store_suite!(EdgeStore::open);

/// Writes are durable when the call returns, without relying on `Drop` (which flushes): the
/// store is leaked, as if the process had crashed, and a copy of its directory as it is on disk
/// opens with every write. (The leaked store keeps its WAL locked, so the copy is opened.)
#[test]
fn writes_survive_without_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open");
    let mut fixture = Fixture::default();
    let (doc, chunks) = fixture.document(meta("doc", "v1", "org-a", &["org-a"], 1), 3);
    store.replace_document(&doc, &chunks).expect("replace");
    let (doc2, chunks2) = fixture.document(meta("doc", "v2", "org-a", &["org-a"], 2), 2);
    store.replace_document(&doc2, &chunks2).expect("replace");
    let (other, other_chunks) = fixture.document(meta("other", "v1", "org-b", &["org-b"], 1), 1);
    store
        .replace_document(&other, &other_chunks)
        .expect("replace");
    assert!(store.delete_document("other").expect("delete"));
    std::mem::forget(store);

    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), copy.path());
    let reopened = EdgeStore::open(copy.path(), DIM).expect("open the copy");
    assert_eq!(reopened.point_count().expect("count"), 2);
    let versions = stored_versions(&reopened);
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        vec![("doc".to_owned(), vec!["v2".to_owned()])]
    );
    let results = reopened
        .search(&Operator.scope(), &query_for(&chunks2[1], 5))
        .expect("search");
    assert_eq!(
        (
            results[0].chunk.document.version.as_str(),
            results[0].chunk.ordinal
        ),
        ("v2", 1)
    );
}

/// A store that grows past its indexing threshold (40 MB of one vector: some 6 600 chunks of
/// 1 536 dimensions) is optimized into more than one segment after it is written, and
/// searches stay exact: every chunk's own vectors find it first, before and after reopening,
/// with no chunk counted twice.
#[test]
fn a_growing_store_is_optimized_and_searches_stay_exact() {
    const DENSE_DIM: usize = 1536;
    const DOCUMENTS: u32 = 72;
    const CHUNKS: u32 = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DENSE_DIM).expect("open");
    let mut fixture = Fixture::default();
    let mut probes: Vec<(String, ChunkRecord)> = Vec::new();
    let documents: Vec<_> = (0..DOCUMENTS)
        .map(|n| {
            let doc_id = format!("doc-{n:03}");
            let (doc, mut chunks) =
                fixture.document(meta(&doc_id, "v1", "org-a", &["org-a"], 1), CHUNKS);
            for chunk in &mut chunks {
                let seed = chunk.dense.clone();
                chunk.dense = (0..DENSE_DIM)
                    .map(|i| seed[i % DIM] * ((i / DIM) as f32 + 1.0).sin())
                    .collect();
            }
            probes.push((doc_id, chunks[(n % CHUNKS) as usize].clone()));
            (doc, chunks)
        })
        .collect();
    for batch in documents.chunks(20) {
        store.replace_documents(batch).expect("write");
    }
    let check = |store: &EdgeStore| {
        let total = u64::from(DOCUMENTS * CHUNKS);
        assert_eq!(store.point_count().expect("count"), total);
        let counts = store.chunk_counts().expect("chunk counts");
        assert_eq!(counts.len(), DOCUMENTS as usize);
        assert!(counts.values().all(|count| *count == u64::from(CHUNKS)));
        for (doc_id, chunk) in &probes {
            let mut query = query_for(chunk, 1);
            query.bm25 = None;
            query.bigram = None;
            let found = store.search(&Operator.scope(), &query).expect("search");
            assert_eq!(
                (
                    found[0].chunk.document.doc_id.as_str(),
                    found[0].chunk.ordinal
                ),
                (doc_id.as_str(), chunk.ordinal)
            );
        }
    };
    check(&store);
    // Dropping the store waits for the optimization its writes asked for.
    drop(store);
    let segments = fs::read_dir(dir.path().join("segments"))
        .expect("the segments directory")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().is_dir()))
        .count();
    assert!(segments > 1, "still one segment");

    check(&EdgeStore::open(dir.path(), DENSE_DIM).expect("reopen"));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create directory");
    for entry in fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
