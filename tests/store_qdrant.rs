//! The shared store suite on [`QdrantStore`], against the Qdrant server named by `QDRANT_URL`:
//! every test is ignored unless asked for (`QDRANT_URL=http://127.0.0.1:6334 cargo test --test
//! store_qdrant -- --ignored`), and fails when asked for without a server.
//!
//! Each store of the suite is a collection named after its temporary directory
//! (`hikitsugi-test-…`); they stay on the server, so point the tests at a throwaway one.

#[macro_use]
mod store_suite;

use std::path::Path;

use hikitsugi::store::{QdrantOptions, QdrantStore, StoreError, StoreRead};
use store_suite::DIM;

fn qdrant_url() -> String {
    std::env::var("QDRANT_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("QDRANT_URL names the Qdrant server to test (e.g. http://127.0.0.1:6334)")
}

/// The options of the collection standing for `dir`.
fn options_for(dir: &Path) -> QdrantOptions {
    let name = dir
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        })
        .unwrap_or_default();
    QdrantOptions {
        url: qdrant_url(),
        collection: format!("hikitsugi-test-{name}"),
        ..QdrantOptions::default()
    }
}

fn open(dir: &Path, dim: usize) -> Result<QdrantStore, StoreError> {
    QdrantStore::connect(&options_for(dir), dim)
}

store_suite!(
    open,
    #[ignore = "needs a Qdrant server: set QDRANT_URL and run with --ignored"]
);

#[test]
#[ignore = "needs a Qdrant server: set QDRANT_URL and run with --ignored"]
fn a_wrong_api_key_or_url_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unreachable = QdrantOptions {
        url: "http://127.0.0.1:9".to_owned(),
        retries: 0,
        ..options_for(dir.path())
    };
    let error = QdrantStore::connect(&unreachable, DIM).expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("storage.qdrant.url"));
}

#[test]
#[ignore = "needs a Qdrant server: set QDRANT_URL and run with --ignored"]
fn status_names_the_server_version_and_a_green_collection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), DIM).expect("open");
    let status = store.status().expect("status");
    assert_eq!(status.backend, "qdrant");
    assert!(status.server_version.is_some_and(|v| v.starts_with("1.")));
    assert_eq!(status.collection_status.as_deref(), Some("green"));
    store.drop_collection().expect("drop");
}
