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
        &hikitsugi::service::read_options(&service.config),
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
    write("notes.jtd", b"an Ichitaro file, a format no reader takes");

    let service = service(data.path());
    let first = ingest(&service, corpus.path(), false);
    assert_eq!((first.added, first.updated, first.unchanged), (2, 0, 0));
    let failed: Vec<&str> = first
        .failed
        .iter()
        .map(|failed| failed.doc_id.as_str())
        .collect();
    assert_eq!(failed, vec!["notes.jtd", "scan.pdf"]);
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
        &hikitsugi::service::read_options(&service.config),
        &ProgressBar::hidden(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("hikitsugi.toml") && error.contains("--manifest"),
        "{error}"
    );
}

/// A corpus ingest with --prune removes only its own folder's documents: an upload and a
/// document of another folder stay (today's `hikitsugi demo` restarts prune the demo corpus).
#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_only_documents_of_the_same_folder() {
    let (corpus, other, data) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    for dir in [corpus.path(), other.path()] {
        std::fs::write(dir.join("hikitsugi.toml"), MANIFEST).unwrap();
    }
    std::fs::write(
        corpus.path().join("kaigi.txt"),
        "定例会議の記録\n\n電子申請を導入する。",
    )
    .unwrap();
    std::fs::write(
        other.path().join("betsu.txt"),
        "別の記録\n\n窓口を一本化する。",
    )
    .unwrap();
    let opened = service(data.path());
    assert_eq!(ingest(&opened, corpus.path(), true).added, 1);
    assert_eq!(ingest(&opened, other.path(), true).added, 1);
    let uploader = hikitsugi::access::Directory::new([("pref-test".to_owned(), Vec::new())])
        .member("pref-test", hikitsugi::access::Role::Editor)
        .expect("a known organisation");
    opened
        .0
        .upload(
            &uploader,
            "minutes.md".to_owned(),
            "# 議事録\n\n窓口の電子整理券を導入する。"
                .as_bytes()
                .to_vec(),
            hikitsugi::service::UploadMetadata::default(),
        )
        .await
        .expect("upload");

    std::fs::remove_file(corpus.path().join("kaigi.txt")).unwrap();
    std::fs::write(corpus.path().join("shin.txt"), "新しい記録\n\n研修を行う。").unwrap();
    let pruned = ingest(&opened, corpus.path(), true);
    assert_eq!((pruned.added, pruned.pruned), (1, 1));
    let listed: Vec<String> = opened
        .0
        .documents(Operator.scope())
        .await
        .expect("documents")
        .into_iter()
        .map(|document| document.doc_id)
        .collect();
    assert_eq!(
        listed,
        vec!["betsu.txt", "shin.txt", "uploads/pref-test/minutes.md"]
    );
}

/// A manifest naming an organisation or group the configuration does not know is refused
/// before anything is stored, with its line.
#[test]
fn a_manifest_naming_an_unknown_organisation_is_refused_with_its_line() {
    let (corpus, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(
        corpus.path().join("hikitsugi.toml"),
        "[defaults]\nowner = \"pref-test\"\nreaders = [\"public\"]\n\n[[documents]]\npath = \"a.txt\"\nreaders = [\"pref-nowhere\"]\n",
    )
    .unwrap();
    std::fs::write(corpus.path().join("a.txt"), "記録\n\n本文。").unwrap();
    let (service, store) = service(data.path());
    let error = ingest_dir(
        &hikitsugi::index::Corpus {
            dir: corpus.path(),
            manifest: None,
            prune: false,
        },
        |id| id == "pref-test",
        store.as_ref(),
        &service.encoders,
        &hikitsugi::service::read_options(&service.config),
        &ProgressBar::hidden(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("pref-nowhere") && error.contains("line 6"),
        "{error}"
    );
    assert!(
        store.heads().expect("heads").is_empty(),
        "nothing was stored"
    );
}

/// A scanned page goes in through OCR and its passages say so, in the store and in citations;
/// the text-layer page beside it does not.
#[tokio::test(flavor = "multi_thread")]
async fn scanned_pages_go_in_by_ocr_and_their_passages_are_marked() {
    let corpus = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(corpus.path().join("hikitsugi.toml"), MANIFEST).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ocr/scanned-notes.pdf"
        ),
        corpus.path().join("scanned-notes.pdf"),
    )
    .unwrap();
    let service = service(data.path());
    let summary = ingest(&service, corpus.path(), false);
    assert_eq!(summary.added, 1, "{:?}", summary.failed);
    assert!(
        summary.unreadable_pages.is_empty(),
        "{:?}",
        summary.unreadable_pages
    );
    let searched = service
        .0
        .search(
            Operator.scope(),
            "書かない窓口 タブレット",
            Some(10),
            SearchFilters::default(),
        )
        .await
        .expect("search");
    let pages: Vec<(u32, u32, bool)> = searched
        .result
        .iter()
        .map(|passage| {
            (
                passage.chunk.page_start,
                passage.chunk.page_end,
                passage.chunk.ocr,
            )
        })
        .collect();
    assert!(
        pages.iter().any(|&(start, _, ocr)| start == 2 && ocr),
        "{pages:?}"
    );
    assert!(
        pages.iter().any(|&(_, end, ocr)| end == 1 && !ocr),
        "{pages:?}"
    );
    assert!(
        pages.iter().all(|&(_, end, ocr)| ocr == (end == 2)),
        "a passage is OCR exactly when it reaches the scanned page: {pages:?}"
    );
}
