//! Calibration of `llm.min_support` on `../shared/eval/seed`: how well the verifier's support
//! measure tells a sentence cited to its real source from the same sentence cited to the wrong
//! passage.
//!
//! Claims are the sentences of the reference answers (written by people, paraphrasing the
//! source). Each is checked, with the production verifier, against its gold passage (the chunk
//! of the gold document that contains the evidence: must be supported) and against the chunk of
//! another document that supports it best (the most convincing wrong citation: must not be).
//! `cargo test --test generation calibration -- --nocapture` prints the table.

use std::path::{Path, PathBuf};

use hikitsugi::config::{LlmConfig, UnsupportedPolicy};
use hikitsugi::generate::verify;
use hikitsugi::store::{DocumentMeta, ScoredChunk, StoredChunk};
use hikitsugi_ingest::{ChunkOptions, DocumentMetadata, parse_document};
use serde::Deserialize;

#[derive(Deserialize)]
struct Question {
    id: String,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default)]
    gold: Vec<Gold>,
}

#[derive(Deserialize)]
struct Gold {
    doc: String,
    evidence: Option<String>,
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Every chunk of the seed corpus, as the service would chunk it.
fn corpus_chunks() -> Vec<ScoredChunk> {
    let dir = shared().join("corpus/text");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    let mut chunks = Vec::new();
    for path in files {
        let doc_id = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("a readable corpus file");
        let metadata = DocumentMetadata {
            title: None,
            owner: "eval".to_owned(),
            readers: vec!["public".to_owned()],
            kind: "document".to_owned(),
            date: None,
        };
        let document = parse_document(&doc_id, &bytes, metadata, &ChunkOptions::default())
            .expect("a parsable corpus file");
        for chunk in document.chunks {
            chunks.push(ScoredChunk {
                chunk: StoredChunk {
                    document: DocumentMeta {
                        doc_id: doc_id.clone(),
                        version: String::new(),
                        title: document.title.clone(),
                        owner: "eval".to_owned(),
                        readers: vec!["public".to_owned()],
                        kind: "document".to_owned(),
                        date: None,
                        ingested_at: 0,
                        chunk_count: 0,
                        page_count: 0,
                        paged: true,
                        source: "test".to_owned(),
                    },
                    ordinal: chunk.ordinal,
                    text: chunk.text,
                    heading_path: chunk.heading_path,
                    page_start: chunk.page_start,
                    page_end: chunk.page_end,
                    char_start: 0,
                    char_end: 0,
                    ocr: false,
                },
                score: 1.0,
            });
        }
    }
    chunks
}

/// The verifier's support of `claim` cited to `passage`.
fn support(claim: &str, passage: &ScoredChunk) -> f32 {
    let verified = verify(
        &format!("{claim}[1]"),
        std::slice::from_ref(passage),
        0.0,
        UnsupportedPolicy::Drop,
    );
    verified
        .verification
        .sentences
        .first()
        .map_or(0.0, |sentence| sentence.support)
}

fn compact(text: &str) -> String {
    hikitsugi_ingest::normalize_chars(text)
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .collect()
}

#[test]
fn the_default_support_threshold_separates_true_from_wrong_citations() {
    let path = shared().join("eval/seed/questions.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let questions: Vec<Question> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a question"))
        .collect();
    let chunks = corpus_chunks();

    let mut true_citations = Vec::new();
    let mut wrong_citations = Vec::new();
    for question in &questions {
        let Some(gold) = question.gold.iter().find(|gold| gold.evidence.is_some()) else {
            continue;
        };
        let evidence = compact(gold.evidence.as_deref().unwrap_or_default());
        let Some(source) = chunks.iter().find(|chunk| {
            chunk.chunk.document.doc_id == gold.doc
                && compact(&chunk.chunk.text).contains(&evidence)
        }) else {
            panic!("{}: no chunk holds the evidence", question.id);
        };
        for answer in &question.answers {
            for claim in answer
                .split_inclusive('。')
                .filter(|claim| claim.chars().count() >= 4)
            {
                true_citations.push(support(claim, source));
                let wrong = chunks
                    .iter()
                    .filter(|chunk| chunk.chunk.document.doc_id != gold.doc)
                    .map(|chunk| support(claim, chunk))
                    .fold(0.0_f32, f32::max);
                wrong_citations.push(wrong);
            }
        }
    }
    assert!(
        true_citations.len() >= 30,
        "{} claims",
        true_citations.len()
    );

    let share_at_least = |values: &[f32], threshold: f32| {
        values.iter().filter(|&&value| value >= threshold).count() as f32 / values.len() as f32
    };
    println!(
        "{} claims; threshold: true citations supported / wrong citations supported",
        true_citations.len()
    );
    let mut best = (0.0_f32, f32::MIN);
    for step in 1..=18 {
        let threshold = step as f32 * 0.05;
        let accepted = share_at_least(&true_citations, threshold);
        let fooled = share_at_least(&wrong_citations, threshold);
        println!("{threshold:.2}: {accepted:.2} / {fooled:.2}");
        if accepted - fooled > best.1 {
            best = (threshold, accepted - fooled);
        }
    }
    let default = LlmConfig::default().min_support;
    let accepted = share_at_least(&true_citations, default);
    let fooled = share_at_least(&wrong_citations, default);
    println!(
        "default {default:.2}: {accepted:.2} / {fooled:.2}; best separation at {:.2}",
        best.0
    );
    // The separation curve has a plateau (0.45–0.75 on seed): its arg-max moves between equally
    // good thresholds as chunks change, so the default must be as good as the best, not equal.
    assert!(
        accepted - fooled >= best.1 - 0.02,
        "the default separates {:.2}, the best threshold {:.2} separates {:.2}; recalibrate llm.min_support",
        accepted - fooled,
        best.0,
        best.1
    );
    assert!(accepted >= 0.7, "only {accepted:.2} of true citations pass");
    assert!(fooled <= 0.2, "{fooled:.2} of wrong citations pass");
}
