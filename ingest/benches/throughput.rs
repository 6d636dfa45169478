//! Prints PDF extraction speed (pages/s) and chunking speed (MB/s) on the corpus, and the
//! extraction speed of the office and HTML fixtures (files/s, MB/s, pages/s for slides).
//!
//! `cargo bench -p hikitsugi-ingest` (no criterion: these are figures for a note, read off one
//! run on a quiet machine; the machine here is shared and noisy).

use std::path::{Path, PathBuf};
use std::time::Instant;

use hikitsugi_ingest::pdf::extract_pdf;
use hikitsugi_ingest::{ChunkOptions, DocumentMetadata, extract, parse_document};

const ROUNDS: usize = 5;

fn files_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");

    let pdfs: Vec<Vec<u8>> = files_in(&corpus.join("pdf"), "pdf")
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    let started = Instant::now();
    let mut pages = 0;
    for _ in 0..ROUNDS {
        for bytes in &pdfs {
            pages += extract_pdf(bytes).expect("corpus PDF opens").len();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "pdf extraction: {pages} pages in {seconds:.3} s = {:.0} pages/s",
        pages as f64 / seconds
    );

    let texts: Vec<(String, Vec<u8>)> = files_in(&corpus.join("text"), "txt")
        .iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(path).unwrap(),
            )
        })
        .collect();
    let metadata = DocumentMetadata {
        title: None,
        owner: "bench".into(),
        readers: vec![],
        kind: "bench".into(),
        date: None,
    };
    let options = ChunkOptions::default();
    let bytes: usize = texts.iter().map(|(_, bytes)| bytes.len()).sum();
    let started = Instant::now();
    let mut chunks = 0;
    for _ in 0..ROUNDS {
        for (name, text) in &texts {
            chunks += parse_document(name, text, metadata.clone(), &options)
                .expect("corpus text parses")
                .chunks
                .len();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "normalise + chunk: {:.2} MB ({chunks} chunks) in {seconds:.3} s = {:.2} MB/s",
        (bytes * ROUNDS) as f64 / 1e6,
        (bytes * ROUNDS) as f64 / 1e6 / seconds
    );

    let office = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/office");
    for extension in ["docx", "xlsx", "pptx", "html"] {
        let files: Vec<(String, Vec<u8>)> = files_in(&office, extension)
            .iter()
            .map(|path| {
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(path).unwrap(),
                )
            })
            .collect();
        let bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        let started = Instant::now();
        let mut pages = 0;
        for _ in 0..ROUNDS {
            for (name, bytes) in &files {
                pages += extract(name, bytes).expect("fixture reads").pages.len();
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let count = (files.len() * ROUNDS) as f64;
        println!(
            "{extension} extraction: {count} files, {pages} pages in {seconds:.3} s = {:.0} files/s, {:.0} pages/s, {:.2} MB/s",
            count / seconds,
            pages as f64 / seconds,
            (bytes * ROUNDS) as f64 / 1e6 / seconds
        );
    }
}
