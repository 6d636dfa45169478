//! Ingesting a folder into the embedded store: added, unchanged, updated, pruned and failed
//! documents, and what a search sees afterwards.

use std::path::Path;
use std::sync::Arc;

use hikitsugi::access::Operator;
use hikitsugi::config::Config;
use hikitsugi::index::ingest_dir;
use hikitsugi::service::Service;
use hikitsugi::store::{SearchFilters, StoreAdmin};
use indicatif::ProgressBar;

const MANIFEST: &str =
    "[defaults]\nowner = \"pref-test\"\nreaders = [\"public\"]\nkind = \"minutes\"\n";

fn service(data_dir: &Path) -> (Service, Arc<dyn StoreAdmin>) {
    let cache_dir = hikitsugi::setup::default_cache_dir().expect("cache dir");
    hikitsugi::setup::ensure_model(&cache_dir, &|_| {}).expect("model setup");
    let mut config = Config::default();
    config.storage.data_dir = data_dir.to_owned();
    Service::open_with_operator(config).expect("open service")
}

fn ingest(
    (service, service_store): &(Service, Arc<dyn StoreAdmin>),
    corpus: &Path,
    prune: bool,
) -> hikitsugi::index::IngestSummary {
    ingest_dir(
        &hikitsugi::index::Corpus {
            dir: corpus,
            manifest: None,
            prune,
        },
        |_| true,
        service_store.as_ref(),
        &service.encoders,
        &service.config.chunking.options(),
        &ProgressBar::hidden(),
    )
    .expect("ingest")
}

async fn doc_ids_for(service: &Service, query: &str) -> Vec<(String, String)> {
    let searched = service
        .search(Operator.scope(), query, Some(5), SearchFilters::default())
        .await
        .expect("search");
    searched
        .result
        .into_iter()
        .map(|passage| (passage.chunk.document.doc_id, passage.chunk.text))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_tracks_versions_reports_failures_and_prunes() {
    let corpus = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| std::fs::write(corpus.path().join(name), text).unwrap();
    write("hikitsugi.toml", MANIFEST.as_bytes());
    write(
        "kaigi.txt",
        "定例会議の記録\n\n会議では電子申請の導入時期を令和7年度と決めた。".as_bytes(),
    );
    write(
        "kenshu.md",
        "# 研修\n\n職員研修は年2回、オンラインで実施する。".as_bytes(),
    );
    write("scan.pdf", b"%PDF-1.4 not really a pdf");
    write("notes.docx", b"PK\x03\x04");

    let service = service(data.path());
    let first = ingest(&service, corpus.path(), false);
    assert_eq!((first.added, first.updated, first.unchanged), (2, 0, 0));
    let failed: Vec<&str> = first
        .failed
        .iter()
        .map(|failed| failed.doc_id.as_str())
        .collect();
    assert_eq!(failed, vec!["notes.docx", "scan.pdf"]);
    assert!(
        first.failed[0].reason.contains(".pdf"),
        "{}",
        first.failed[0].reason
    );
    assert!(first.chunks >= 2);

    let again = ingest(&service, corpus.path(), false);
    assert_eq!(
        (again.added, again.updated, again.unchanged, again.chunks),
        (0, 0, 2, 0)
    );

    write(
        "kaigi.txt",
        "定例会議の記録\n\n会議では電子申請の導入時期を令和8年度に延期すると決めた。".as_bytes(),
    );
    let updated = ingest(&service, corpus.path(), false);
    assert_eq!(
        (updated.added, updated.updated, updated.unchanged),
        (0, 1, 1)
    );
    let found = doc_ids_for(&service.0, "電子申請の導入時期").await;
    let kaigi: Vec<&String> = found
        .iter()
        .filter(|(doc_id, _)| doc_id == "kaigi.txt")
        .map(|(_, text)| text)
        .collect();
    assert_eq!(
        kaigi.len(),
        1,
        "only the new version is searchable: {found:?}"
    );
    assert!(kaigi[0].contains("令和8年度"));

    std::fs::remove_file(corpus.path().join("kenshu.md")).unwrap();
    let kept = ingest(&service, corpus.path(), false);
    assert_eq!(kept.pruned, 0);
    assert!(
        doc_ids_for(&service.0, "職員研修")
            .await
            .iter()
            .any(|(doc_id, _)| doc_id == "kenshu.md")
    );
    let pruned = ingest(&service, corpus.path(), true);
    assert_eq!(pruned.pruned, 1);
    assert!(
        !doc_ids_for(&service.0, "職員研修")
            .await
            .iter()
            .any(|(doc_id, _)| doc_id == "kenshu.md")
    );
}

#[test]
fn a_corpus_without_manifest_is_refused_with_what_to_do() {
    let corpus = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (service, service_store) = service(data.path());
    let error = ingest_dir(
        &hikitsugi::index::Corpus {
            dir: corpus.path(),
            manifest: None,
            prune: false,
        },
        |_| true,
        service_store.as_ref(),
        &service.encoders,
        &service.config.chunking.options(),
        &ProgressBar::hidden(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("hikitsugi.toml") && error.contains("--manifest"),
        "{error}"
    );
}
