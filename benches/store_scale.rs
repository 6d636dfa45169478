//! Store throughput and latency at scale, on synthetic chunks (random 384-dimensional dense
//! vectors, BM25-like and bigram-like sparse vectors, realistic payloads and readers).
//!
//! ```text
//! cargo bench --bench store_scale                        # embedded store only
//! QDRANT_URL=http://127.0.0.1:6334 cargo bench --bench store_scale
//! STORE_SCALE_CHUNKS=100000 STORE_SCALE_QUERIES=300 cargo bench --bench store_scale
//! STORE_SCALE_EDGE=0 QDRANT_URL=http://127.0.0.1:6334 cargo bench --bench store_scale  # Qdrant only
//! ```
//!
//! For each backend it prints, at 10 000, 100 000, … chunks and at the total, the write rate of
//! the chunks written since the last figure (documents of 20 chunks, written 32 documents per
//! `replace_documents` call as the ingest pipeline does), the latency of scoped hybrid searches
//! (three prefetches, RRF, top 8) as p50/p95/p99, this process's peak resident memory and (for
//! the embedded store) the store's size on disk; with `QDRANT_URL` it also migrates the embedded
//! store into a fresh collection and prints the time. Figures, not assertions: this machine is
//! shared and noisy.

use std::path::Path;
use std::time::{Duration, Instant};

use hikitsugi::access::{Directory, Role};
use hikitsugi::migrate::migrate;
use hikitsugi::store::{
    ChunkRecord, DocumentMeta, EdgeStore, HybridQuery, QdrantOptions, QdrantStore, RrfParams,
    SearchFilters, SparseVector, StoreWrite,
};

const DIM: usize = 384;
const CHUNKS_PER_DOC: usize = 20;
const DOCS_PER_WRITE: usize = 32;
const ORGS: usize = 60;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn dense(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM).map(|_| self.unit() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// `terms` distinct indices under `vocabulary`, Zipf-ish (small indices are common).
    fn sparse(&mut self, terms: usize, vocabulary: u64) -> SparseVector {
        let mut indices: Vec<u32> = (0..terms)
            .map(|_| {
                let u = self.unit() as f64;
                (vocabulary as f64).powf(u) as u32
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let values = indices.iter().map(|_| 1.0 + self.unit()).collect();
        SparseVector { indices, values }
    }
}

fn document(rng: &mut Rng, n: usize) -> (DocumentMeta, Vec<ChunkRecord>) {
    let owner = format!("pref-{:02}", n % ORGS);
    let mut readers = vec![owner.clone()];
    if n.is_multiple_of(7) {
        readers.push("public".to_owned());
    }
    if n.is_multiple_of(3) {
        readers.push(format!("group-{}", n % 5));
    }
    let meta = DocumentMeta {
        doc_id: format!("doc-{n:06}"),
        version: "v1".to_owned(),
        title: format!("合成文書 {n}"),
        owner,
        readers,
        kind: "report".to_owned(),
        date: Some("2024-04-01".to_owned()),
        ingested_at: 1,
        chunk_count: CHUNKS_PER_DOC as u32,
        page_count: 5,
        paged: true,
        source: "test".to_owned(),
    };
    let chunks = (0..CHUNKS_PER_DOC)
        .map(|ordinal| ChunkRecord {
            ordinal: ordinal as u32,
            // About the size of a real chunk (500 characters).
            text: "伴走支援の体制について記録した合成の段落です。".repeat(22),
            heading_path: vec!["第1章".to_owned(), "(1) 体制".to_owned()],
            page_start: 1,
            page_end: 1,
            char_start: (ordinal * 500) as u32,
            char_end: (ordinal * 500 + 499) as u32,
            ocr: false,
            dense: rng.dense(),
            bm25: rng.sparse(60, 200_000),
            bigram: rng.sparse(300, 1 << 24),
        })
        .collect();
    (meta, chunks)
}

/// Writes documents `from..to` (each of [`CHUNKS_PER_DOC`] chunks), [`DOCS_PER_WRITE`] per call.
fn write_documents(store: &dyn StoreWrite, rng: &mut Rng, from: usize, to: usize) -> Duration {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(DOCS_PER_WRITE);
    for n in from..to {
        batch.push(document(rng, n));
        if batch.len() == DOCS_PER_WRITE || n + 1 == to {
            if let Err(error) = store.replace_documents(&batch) {
                eprintln!("write failed: {error}");
                std::process::exit(1);
            }
            batch.clear();
        }
    }
    started.elapsed()
}

/// The store sizes reported on the way to `chunks`: 10 000, 100 000, … below it, then it.
fn stages(chunks: usize) -> Vec<usize> {
    let mut stages: Vec<usize> = std::iter::successors(Some(10_000_usize), |n| n.checked_mul(10))
        .take_while(|n| *n < chunks)
        .collect();
    stages.push(chunks);
    stages
}

/// Writes `chunks` chunks, reporting write rate, search latency, resident memory and disk at
/// each of [`stages`]; the total write time.
fn write_and_measure(
    backend: &str,
    store: &dyn StoreWrite,
    chunks: usize,
    queries: usize,
    dir: Option<&Path>,
) -> Duration {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written_docs = 0;
    let mut total = Duration::ZERO;
    for stage in stages(chunks) {
        let docs = stage.div_ceil(CHUNKS_PER_DOC);
        let took = write_documents(store, &mut rng, written_docs, docs);
        let added = (docs - written_docs) * CHUNKS_PER_DOC;
        written_docs = docs;
        total += took;
        report(
            backend,
            stage,
            added,
            took,
            &search_latencies(store, queries),
            dir,
        );
    }
    total
}

fn search_latencies(store: &dyn StoreWrite, queries: usize) -> Vec<Duration> {
    let mut rng = Rng(42);
    let mut latencies = Vec::with_capacity(queries);
    for q in 0..queries {
        let org = format!("pref-{:02}", q % ORGS);
        let scope = Directory::new([(org.clone(), vec![format!("group-{}", q % 5)])])
            .member(&org, Role::Reader)
            .expect("a known organisation")
            .scope();
        let query = HybridQuery {
            dense: Some(rng.dense()),
            bm25: Some(rng.sparse(6, 200_000)),
            bigram: Some(rng.sparse(20, 1 << 24)),
            filters: SearchFilters::default(),
            prefetch_limit: 50,
            limit: 8,
            fusion: RrfParams {
                k: 2,
                dense_weight: 0.5,
                bm25_weight: 0.5,
                bigram_weight: 1.0,
            },
        };
        let started = Instant::now();
        if let Err(error) = store.search(&scope, &query) {
            eprintln!("search failed: {error}");
            std::process::exit(1);
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn report(
    backend: &str,
    chunks: usize,
    added: usize,
    write: Duration,
    latencies: &[Duration],
    dir: Option<&Path>,
) {
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let disk = dir.map_or_else(String::new, |dir| {
        format!(", disk {:.0} MB", disk_bytes(dir) as f64 / 1e6)
    });
    println!(
        "{backend:>6} at {chunks} chunks: the last {added} written at {:.0} chunks/s; search p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms over {} scoped hybrid queries; peak RSS {:.0} MB{disk}",
        added as f64 / write.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.len(),
        peak_rss_kb() as f64 / 1024.0,
    );
}

/// This process's peak resident memory (`VmHWM`), in KiB; 0 when unknown.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of the files under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| match entry.file_type() {
                Ok(kind) if kind.is_dir() => disk_bytes(&entry.path()),
                Ok(_) => entry.metadata().map_or(0, |m| m.len()),
                Err(_) => 0,
            })
            .sum()
    })
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let chunks = env_number("STORE_SCALE_CHUNKS", 20_000);
    let queries = env_number("STORE_SCALE_QUERIES", 200);
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("no temporary directory: {error}");
            std::process::exit(1);
        }
    };
    // `STORE_SCALE_EDGE=0` skips the embedded store (and the migration), for a Qdrant run alone.
    let edge = (env_number("STORE_SCALE_EDGE", 1) != 0).then(|| {
        let edge_dir = dir.path().join("edge");
        let edge = EdgeStore::open(&edge_dir, DIM).unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(1);
        });
        let write = write_and_measure("edge", &edge, chunks, queries, Some(&edge_dir));
        println!(
            "  edge: {chunks} chunks in {:.1} s ({:.0} chunks/s)",
            write.as_secs_f64(),
            chunks as f64 / write.as_secs_f64()
        );
        edge
    });

    let Some(url) = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
        println!("qdrant: skipped: QDRANT_URL not set");
        return;
    };
    let options = |collection: &str| QdrantOptions {
        url: url.clone(),
        collection: collection.to_owned(),
        timeout_ms: 60_000,
        ..QdrantOptions::default()
    };
    let open = |collection: &str| {
        let store = QdrantStore::connect(&options(collection), DIM).and_then(|store| {
            store.drop_collection()?;
            QdrantStore::connect(&options(collection), DIM)
        });
        store.unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(1);
        })
    };
    let qdrant = open("hikitsugi-bench-write");
    let write = write_and_measure("qdrant", &qdrant, chunks, queries, None);
    println!(
        "qdrant: {chunks} chunks in {:.1} s ({:.0} chunks/s)",
        write.as_secs_f64(),
        chunks as f64 / write.as_secs_f64()
    );

    let drop_collections = |stores: &[&QdrantStore]| {
        for store in stores {
            if let Err(error) = store.drop_collection() {
                eprintln!("cannot drop {}: {error}", store.collection());
            }
        }
    };
    let Some(edge) = edge else {
        drop_collections(&[&qdrant]);
        return;
    };
    let target = open("hikitsugi-bench-migrate");
    let state = dir.path().join("migrate-state.json");
    match migrate(
        (&edge, "edge"),
        (&target, "qdrant"),
        &state,
        512,
        &|_, _| {},
    ) {
        Ok(report) => println!(
            "migrate: edge -> qdrant, {} points in {:.1} s ({:.0} points/s), {} document versions verified",
            report.copied,
            report.seconds,
            report.copied as f64 / report.seconds,
            report.verified_versions
        ),
        Err(error) => {
            eprintln!("migration failed: {error}");
            std::process::exit(1);
        }
    }
    drop_collections(&[&qdrant, &target]);
}
