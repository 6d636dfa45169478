//! The reranking stage: a configured cross-encoder reorders the fused candidates, and a missing
//! one is a clear error at start. The model is a tiny ONNX cross-encoder written by
//! `tests/rerank/make_model.py` whose score is the number of tokens of a marker word in the pair,
//! so the expected order is known.

use std::path::{Path, PathBuf};
use std::process::Command;

use hikitsugi::access::Operator;
use hikitsugi::config::Config;
use hikitsugi::index::ingest_dir;
use hikitsugi::service::Service;
use hikitsugi::store::SearchFilters;
use indicatif::ProgressBar;

const MARKER: &str = "ひまわり";
const QUERY: &str = "伴走支援の体制";

/// Sets up the embedding model and writes the marker-counting reranker into `out`.
fn setup(out: &Path) -> PathBuf {
    let cache_dir = hikitsugi::setup::default_cache_dir().expect("cache dir");
    let paths = hikitsugi::setup::ensure_model(&cache_dir, &|_| {}).expect("model setup");
    let python = cache_dir.join("venv").join("bin").join("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rerank/make_model.py");
    let status = Command::new(&python)
        .arg(script)
        .arg(&paths.model_dir)
        .arg(out)
        .arg(MARKER)
        .status()
        .expect("run make_model.py");
    assert!(status.success(), "make_model.py failed: {status}");
    out.to_owned()
}

fn corpus(dir: &Path) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write(
        "hikitsugi.toml",
        "[defaults]\nowner = \"pref-test\"\nreaders = [\"public\"]\nkind = \"report\"\n",
    );
    write(
        "taisei.txt",
        "伴走支援の体制\n\n県は伴走支援の体制を整え、伴走支援の窓口を置いた。",
    );
    write(
        "kaigi.txt",
        "会議の記録\n\n伴走支援について話し合った。会場にはひまわりを飾った。",
    );
    write(
        "hana.txt",
        "花の記録\n\n支援の一環で、ひまわり畑でひまわりを育て、ひまわりの種を配った。",
    );
}

fn open(
    data_dir: &Path,
    reranker: Option<PathBuf>,
) -> (Service, std::sync::Arc<dyn hikitsugi::store::StoreAdmin>) {
    let mut config = Config::default();
    config.storage.data_dir = data_dir.to_owned();
    config.rerank.model_dir = reranker;
    Service::open_with_operator(config).expect("open service")
}

async fn search(service: &Service) -> Vec<(String, f32)> {
    service
        .search(Operator.scope(), QUERY, Some(3), SearchFilters::default())
        .await
        .expect("search")
        .result
        .into_iter()
        .map(|passage| (passage.chunk.document.doc_id, passage.score))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_reranker_orders_the_fused_candidates_by_its_scores() {
    let (docs, data, model) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    corpus(docs.path());
    let reranker = setup(&model.path().join("reranker"));

    let (fused_only, fused_only_store) = open(data.path(), None);
    let summary = ingest_dir(
        &hikitsugi::index::Corpus {
            dir: docs.path(),
            manifest: None,
            prune: false,
        },
        |_| true,
        fused_only_store.as_ref(),
        &fused_only.encoders,
        &hikitsugi::service::read_options(&fused_only.config),
        &ProgressBar::hidden(),
    )
    .expect("ingest");
    assert_eq!(summary.added, 3);
    let fused = search(&fused_only).await;
    assert_eq!(
        fused.first().map(|(doc, _)| doc.as_str()),
        Some("taisei.txt"),
        "without a reranker the lexical match leads: {fused:?}"
    );
    drop((fused_only, fused_only_store));

    let reranked = search(&open(data.path(), Some(reranker)).0).await;
    let order: Vec<&str> = reranked.iter().map(|(doc, _)| doc.as_str()).collect();
    assert_eq!(
        order,
        ["hana.txt", "kaigi.txt", "taisei.txt"],
        "{reranked:?}"
    );
    let scores: Vec<f32> = reranked.iter().map(|(_, score)| *score).collect();
    assert!(
        scores[0] > scores[1] && scores[1] > scores[2],
        "scores are the reranker's, best first: {scores:?}"
    );
    assert_eq!(scores[2], 0.0, "no marker token, score 0: {scores:?}");
}

#[test]
fn a_missing_reranker_directory_is_an_error_that_names_the_setting() {
    let data = tempfile::tempdir().unwrap();
    let cache_dir = hikitsugi::setup::default_cache_dir().expect("cache dir");
    hikitsugi::setup::ensure_model(&cache_dir, &|_| {}).expect("model setup");
    let mut config = Config::default();
    config.storage.data_dir = data.path().to_owned();
    config.rerank.model_dir = Some(data.path().join("no-such-reranker"));
    let error = Service::open(config)
        .err()
        .expect("opening must fail")
        .to_string();
    assert!(
        error.contains("rerank.model_dir") && error.contains("no-such-reranker"),
        "{error}"
    );
}
