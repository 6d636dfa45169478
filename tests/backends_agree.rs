//! The same corpus and questions give the same top results on the embedded store and on a Qdrant
//! server (named by `QDRANT_URL`; ignored unless run with `--ignored`).
//!
//! The demo corpus is ingested into the embedded store, migrated to a fresh collection (vectors
//! copied, not recomputed), and questions are asked on both by principals of different
//! organisations: the top five passages, in order, must be the same.

use std::path::Path;
use std::sync::Arc;

use hikitsugi::access::{Directory, Operator, Role, Scope};
use hikitsugi::compare::GroupBy;
use hikitsugi::config::{Config, StorageBackend};
use hikitsugi::index::ingest_dir;
use hikitsugi::migrate::migrate;
use hikitsugi::retrieve::PassageFilters;
use hikitsugi::service::Service;
use hikitsugi::store::{QdrantStore, SearchFilters};
use indicatif::ProgressBar;

const QUESTIONS: [&str; 10] = [
    "山梨県は伴走支援をどんな体制で受け入れた？",
    "兵庫県の市町DX支援パッケージにはどんな支援メニューがある？",
    "和歌山県の業務で実施した研修の内容は？",
    "令和7年度の取組の方向性は？",
    "沖縄県が希望する伴走支援の内容",
    "自治体DXの推進体制を整えるうえでの課題",
    "デジタル人材の育成はどのように進めたか",
    "書かない窓口の導入事例",
    "京都府の申請で重点とした分野",
    "市町村との連携会議の開催状況",
];

fn scopes() -> Vec<(&'static str, Scope)> {
    let reader = |org: &str, groups: &[&str]| {
        Directory::new([(
            org.to_owned(),
            groups.iter().map(|g| (*g).to_owned()).collect(),
        )])
        .member(org, Role::Reader)
        .expect("a known organisation")
        .scope()
    };
    vec![
        ("guest", reader("guest", &[])),
        (
            "pref-hyogo",
            reader("pref-hyogo", &["hyogo-municipalities"]),
        ),
        ("pref-wakayama", reader("pref-wakayama", &[])),
    ]
}

async fn top(service: &Service, scope: &Scope, question: &str) -> Vec<(String, u32)> {
    service
        .search(scope.clone(), question, Some(5), SearchFilters::default())
        .await
        .expect("search")
        .result
        .into_iter()
        .map(|passage| (passage.chunk.document.doc_id, passage.chunk.ordinal))
        .collect()
}

/// The application file, with one top-level section per prefecture.
const APPLICATION: &str = "000_973ae0bf84c8550d.txt";

/// Each group of a comparison: its key, whether it was answered, and its citations.
async fn groups(
    service: &Service,
    scope: &Scope,
    request: &hikitsugi::service::CompareRequest,
) -> Vec<(String, bool, Vec<(String, u32)>)> {
    let compared = service
        .compare(scope.clone(), request.clone())
        .await
        .expect("compare");
    compared
        .result
        .groups
        .into_iter()
        .map(|group| {
            let citations = group
                .answer
                .citations
                .iter()
                .map(|cited| (cited.chunk.document.doc_id.clone(), cited.chunk.ordinal))
                .collect();
            (group.key, group.answer.found, citations)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Qdrant server: set QDRANT_URL and run with --ignored"]
async fn embedded_and_qdrant_backends_give_the_same_top_results() {
    let url = std::env::var("QDRANT_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("QDRANT_URL names the Qdrant server to compare with");
    let cache_dir = hikitsugi::setup::default_cache_dir().expect("cache dir");
    hikitsugi::setup::ensure_model(&cache_dir, &|_| {}).expect("model setup");
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.storage.data_dir = data.path().join("edge");
    let (edge, edge_store) =
        Service::open_with_operator(config.clone()).expect("open the embedded service");
    let summary = ingest_dir(
        &hikitsugi::index::Corpus {
            dir: Path::new("tests/demo/corpus"),
            manifest: None,
            prune: false,
        },
        |_| true,
        edge_store.as_ref(),
        &edge.encoders,
        &hikitsugi::service::read_options(&edge.config),
        &ProgressBar::hidden(),
    )
    .expect("ingest");
    assert_eq!(summary.added, 5);

    config.storage.backend = StorageBackend::Qdrant;
    config.storage.qdrant.url = url;
    config.storage.qdrant.collection = format!(
        "hikitsugi-test-agree-{}",
        data.path()
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    );
    // The stores are blocking: never called on an async worker without `block_in_place`.
    let qdrant = Arc::new(
        tokio::task::block_in_place(|| {
            QdrantStore::connect(
                &hikitsugi::store::QdrantOptions::from(&config.storage.qdrant),
                edge_store.dense_dim(),
            )
        })
        .expect("connect to Qdrant"),
    );
    let state = data.path().join("migrate.json");
    let report = tokio::task::block_in_place(|| {
        migrate(
            (edge_store.as_ref(), "edge"),
            (qdrant.as_ref(), "qdrant"),
            &state,
            100,
            &|_, _| {},
        )
    })
    .expect("migrate");
    assert_eq!(report.copied, summary.chunks as u64);
    let server = edge.with_store(config, qdrant.clone());

    let mut compared = 0;
    for (org, scope) in scopes() {
        for question in QUESTIONS {
            let (on_edge, on_server) = (
                top(&edge, &scope, question).await,
                top(&server, &scope, question).await,
            );
            assert_eq!(on_edge, on_server, "{org}: {question}");
            compared += usize::from(!on_edge.is_empty());
        }
    }
    assert!(compared >= 25, "only {compared} questions found passages");

    // Compare: per-group filtered searches on both backends give the same groups, answers and
    // citations (section groups of the application file, owner groups as each principal).
    let sections = hikitsugi::service::CompareRequest {
        question: "各道府県が希望する伴走支援の内容は".to_owned(),
        group_by: GroupBy::Section,
        groups: None,
        per_group: None,
        filters: PassageFilters {
            store: SearchFilters {
                doc_id: Some(APPLICATION.to_owned()),
                ..SearchFilters::default()
            },
            ..PassageFilters::default()
        },
        synthesis: false,
    };
    let owners = hikitsugi::service::CompareRequest {
        question: "DX推進の体制".to_owned(),
        group_by: GroupBy::Owner,
        filters: PassageFilters::default(),
        ..sections.clone()
    };
    for (org, scope) in scopes() {
        for request in [&sections, &owners] {
            let (on_edge, on_server) = (
                groups(&edge, &scope, request).await,
                groups(&server, &scope, request).await,
            );
            assert_eq!(
                on_edge, on_server,
                "{org}: compare by {:?}",
                request.group_by
            );
        }
    }
    let found = groups(&edge, &Operator.scope(), &sections)
        .await
        .into_iter()
        .filter(|(_, found, _)| *found)
        .count();
    assert_eq!(found, 5, "one answered group per prefecture");
    tokio::task::spawn_blocking(move || qdrant.drop_collection())
        .await
        .expect("join")
        .expect("drop the test collection");
}
