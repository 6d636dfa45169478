//! The shared store suite on [`EdgeStore`], plus checks specific to qdrant-edge.

#[macro_use]
mod store_suite;

use std::fs;
use std::path::Path;

use hikitsugi::access::Operator;
use hikitsugi::store::{EdgeStore, StoreAdmin, StoreRead, StoreWrite};
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
