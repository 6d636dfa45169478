//! Putting documents into the store: extraction and chunking on worker threads, embedding in
//! batches, one durable write per document version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hikitsugi_ingest::{
    ChunkOptions, DocumentMetadata, Extraction, Format, LoadOptions, MANIFEST_FILE, Manifest,
    ParsedDocument, extract_with, parse_document_with,
};
use indicatif::ProgressBar;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::convert::{self, ConvertError};
use crate::embed::{EmbedError, Encoders};
use crate::store::{ChunkRecord, DocumentHead, DocumentMeta, StoreAdmin, StoreError, StoreWrite};

/// Bump when extraction, normalisation, chunking or the sparse encoders change what a document
/// becomes, so that every document is re-ingested. (3: documents record their source.)
const PIPELINE_VERSION: &str = "3";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "no manifest at {path}: create {MANIFEST_FILE} in the corpus folder (see README) or pass --manifest"
    )]
    ManifestMissing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] hikitsugi_ingest::ManifestError),
    #[error(transparent)]
    Ingest(#[from] hikitsugi_ingest::IngestError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("{doc_id}: the manifest gives it no owner; add [defaults] owner or an entry for it")]
    NoOwner { doc_id: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the write was abandoned before it reached the store")]
    Abandoned,
    #[error(
        "reading the file failed unexpectedly (an internal error; please report it with the file)"
    )]
    ReaderPanicked,
}

/// What an ingest run did.
#[derive(Debug, Default, Serialize)]
pub struct IngestSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub pruned: usize,
    pub chunks: usize,
    pub failed: Vec<FailedDocument>,
    /// Pages that gave no text, per document.
    pub unreadable_pages: Vec<(String, u32, String)>,
    pub seconds: f64,
    /// Seconds spent computing vectors (dense and sparse).
    pub embed_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct FailedDocument {
    pub doc_id: String,
    pub reason: String,
}

/// A document to ingest: its id, where its bytes come from, and its metadata.
pub struct Source {
    pub doc_id: String,
    /// Decides the format (by extension); usually the file's path relative to the corpus.
    pub format_hint: String,
    pub bytes: SourceBytes,
    /// `None` when the manifest gives the document no owner (reported as a failure).
    pub metadata: Option<DocumentMetadata>,
}

pub enum SourceBytes {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl SourceBytes {
    fn read(self) -> Result<Vec<u8>, IndexError> {
        match self {
            SourceBytes::File(path) => {
                std::fs::read(&path).map_err(|source| IndexError::Io { path, source })
            }
            SourceBytes::Memory(bytes) => Ok(bytes),
        }
    }
}

/// Reads and parses a source, without looking at the store (for `hikitsugi chunks`).
pub fn parse_source(source: Source, options: &ReadOptions) -> Result<ParsedDocument, IndexError> {
    let metadata = source.metadata.ok_or_else(|| IndexError::NoOwner {
        doc_id: source.doc_id.clone(),
    })?;
    let bytes = source.bytes.read()?;
    parse_bytes(
        &source.doc_id,
        &source.format_hint,
        &bytes,
        metadata,
        options,
    )
}

/// How sources are read and cut: the chunking, and the loaders' options (OCR).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub chunking: ChunkOptions,
    pub load: LoadOptions,
}

/// How long LibreOffice may take to convert one legacy office file.
const CONVERT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Parses the bytes of a file whose type `format_hint` (a file name) gives; legacy office files
/// (.doc, .xls, .ppt, .rtf, .odt, .ods, .odp) are converted with LibreOffice first.
pub fn parse_bytes(
    doc_id: &str,
    format_hint: &str,
    bytes: &[u8],
    metadata: DocumentMetadata,
    options: &ReadOptions,
) -> Result<ParsedDocument, IndexError> {
    let (format, bytes) = readable(doc_id, format_hint, bytes)?;
    Ok(parse_document_with(
        doc_id,
        format,
        &bytes,
        metadata,
        &options.chunking,
        &options.load,
    )?)
}

/// The normalised text of a file, as [`parse_bytes`] reads it (for `hikitsugi extract`).
pub fn extract_bytes(
    name: &str,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Extraction, IndexError> {
    let (format, bytes) = readable(name, name, bytes)?;
    Ok(extract_with(name, format, &bytes, options)?)
}

/// A file's format and the bytes its loader reads: converted by LibreOffice for legacy formats.
fn readable<'a>(
    doc_id: &str,
    format_hint: &str,
    bytes: &'a [u8],
) -> Result<(Format, std::borrow::Cow<'a, [u8]>), IndexError> {
    if let Some(legacy) = convert::legacy_format(format_hint) {
        let converted = convert::convert(legacy, doc_id, bytes, CONVERT_TIMEOUT)?;
        let format = Format::from_path(&format!("converted.{}", legacy.target))?;
        return Ok((format, converted.into()));
    }
    Ok((Format::from_path(format_hint)?, bytes.into()))
}

/// Reads the manifest of a corpus folder (`dir/hikitsugi.toml` unless `manifest_path` is given).
pub fn load_manifest(
    dir: &Path,
    manifest_path: Option<&Path>,
) -> Result<(Manifest, PathBuf), IndexError> {
    let manifest_path = manifest_path.map_or_else(|| dir.join(MANIFEST_FILE), Path::to_path_buf);
    let manifest_source =
        std::fs::read_to_string(&manifest_path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => IndexError::ManifestMissing {
                path: manifest_path.clone(),
            },
            _ => IndexError::Io {
                path: manifest_path.clone(),
                source,
            },
        })?;
    let manifest = Manifest::parse(&manifest_source, &manifest_path.display().to_string())?;
    Ok((manifest, manifest_path))
}

/// The files under `dir` as sources, with their metadata from `manifest`.
pub fn dir_sources(
    dir: &Path,
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<Vec<Source>, IndexError> {
    let files = list_files(dir, manifest_path)?;
    for line in manifest.unmatched_entries(files.iter().map(|(doc_id, _)| doc_id.as_str())) {
        tracing::warn!(manifest = %manifest_path.display(), line, "manifest entry matches no file");
    }
    Ok(files
        .into_iter()
        .map(|(doc_id, path)| Source {
            metadata: manifest.metadata_for(&doc_id),
            format_hint: doc_id.clone(),
            doc_id,
            bytes: SourceBytes::File(path),
        })
        .collect())
}

/// Where documents come from: the `source` every stored document records.
pub fn corpus_source(dir: &Path) -> Result<String, IndexError> {
    let canonical = dir.canonicalize().map_err(|source| IndexError::Io {
        path: dir.to_owned(),
        source,
    })?;
    Ok(format!("corpus:{}", canonical.display()))
}

/// The source of documents uploaded by members of `org`.
pub fn upload_source(org: &str) -> String {
    format!("upload:{org}")
}

/// How an ingest run treats the store.
pub struct IngestPlan<'a> {
    /// Recorded in every document written (see [`corpus_source`]).
    pub source: &'a str,
    /// Remove stored documents of the same source that are not among the sources ingested.
    pub prune: bool,
}

/// A corpus folder to ingest.
pub struct Corpus<'a> {
    pub dir: &'a Path,
    /// The manifest, when not `dir/hikitsugi.toml`.
    pub manifest: Option<&'a Path>,
    /// Remove this folder's stored documents whose files are gone.
    pub prune: bool,
}

/// Ingests every file under `corpus.dir` (document id = path relative to it, `/`-separated).
/// The manifest's owners and readers must all be accepted by `is_known_reader`.
pub fn ingest_dir(
    corpus: &Corpus<'_>,
    is_known_reader: impl Fn(&str) -> bool,
    store: &dyn StoreAdmin,
    encoders: &Encoders,
    options: &ReadOptions,
    progress: &ProgressBar,
) -> Result<IngestSummary, IndexError> {
    let (manifest, manifest_path) = load_manifest(corpus.dir, corpus.manifest)?;
    manifest.check_ids(is_known_reader)?;
    let sources = dir_sources(corpus.dir, &manifest, &manifest_path)?;
    let source = corpus_source(corpus.dir)?;
    let plan = IngestPlan {
        source: &source,
        prune: corpus.prune,
    };
    ingest_sources(sources, &plan, store, encoders, options, progress)
}

/// Ingests documents: unchanged versions are skipped, changed ones replaced, failures collected.
/// With `plan.prune`, stored documents of `plan.source` that are not among `sources` are removed;
/// documents of other sources (other folders, uploads) are never touched.
pub fn ingest_sources(
    sources: Vec<Source>,
    plan: &IngestPlan<'_>,
    store: &dyn StoreAdmin,
    encoders: &Encoders,
    options: &ReadOptions,
    progress: &ProgressBar,
) -> Result<IngestSummary, IndexError> {
    let started = Instant::now();
    let stored = store.heads()?;
    let mut summary = IngestSummary::default();
    progress.set_length(sources.len() as u64);
    let present: BTreeSet<String> = sources.iter().map(|source| source.doc_id.clone()).collect();

    let (sender, receiver) =
        crossbeam_channel::bounded::<(String, Result<Prepared, IndexError>)>(4);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let queue = crossbeam_channel::unbounded();
    for source in sources {
        // Cannot fail: the receiver lives until the end of this function.
        let _ = queue.0.send(source);
    }
    drop(queue.0);
    std::thread::scope(|scope| -> Result<(), IndexError> {
        for _ in 0..workers {
            let (queue, sender, stored) = (queue.1.clone(), sender.clone(), &stored);
            scope.spawn(move || {
                for source in queue {
                    let doc_id = source.doc_id.clone();
                    // A reader bug on one hostile file costs that file, not the run.
                    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        prepare(source, options, stored)
                    }))
                    .unwrap_or(Err(IndexError::ReaderPanicked));
                    if sender.send((doc_id, prepared)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut batch = WriteBatch::default();
        for (doc_id, prepared) in receiver {
            progress.set_message(doc_id.clone());
            match prepared {
                Ok(Prepared::Unchanged) => summary.unchanged += 1,
                Ok(Prepared::Parsed { document, version }) => {
                    for page in &document.unreadable_pages {
                        summary.unreadable_pages.push((
                            doc_id.clone(),
                            page.page,
                            page.reason.clone(),
                        ));
                    }
                    batch.chunks += document.chunks.len();
                    batch.documents.push((*document, version));
                    if batch.chunks >= WRITE_BATCH_CHUNKS {
                        batch.write(store, encoders, plan.source, &stored, &mut summary)?;
                    }
                }
                Err(error) => summary.failed.push(FailedDocument {
                    doc_id,
                    reason: error.to_string(),
                }),
            }
            progress.inc(1);
        }
        batch.write(store, encoders, plan.source, &stored, &mut summary)
    })?;

    if plan.prune {
        let gone = stored.values().filter(|head| {
            head.live
                .as_ref()
                .is_some_and(|live| live.source == plan.source)
                && !present.contains(head.doc_id.as_str())
        });
        for head in gone {
            if store.delete_document(&head.doc_id)? {
                summary.pruned += 1;
            }
        }
    }
    // Workers finish in any order; reports are in document order.
    summary.failed.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
    summary.unreadable_pages.sort();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

enum Prepared {
    Unchanged,
    Parsed {
        document: Box<ParsedDocument>,
        version: String,
    },
}

fn prepare(
    source: Source,
    options: &ReadOptions,
    stored: &BTreeMap<String, DocumentHead>,
) -> Result<Prepared, IndexError> {
    let bytes = source.bytes.read()?;
    let doc_id = source.doc_id;
    let metadata = source.metadata.ok_or_else(|| IndexError::NoOwner {
        doc_id: doc_id.clone(),
    })?;
    let version = version_of(&source.format_hint, &bytes, &metadata, options);
    // A live version is complete by construction (its head was written after its chunks).
    if stored.get(&doc_id).is_some_and(|head| {
        head.is_settled()
            && head
                .live
                .as_ref()
                .is_some_and(|live| live.version == version)
    }) {
        return Ok(Prepared::Unchanged);
    }
    let document = parse_bytes(&doc_id, &source.format_hint, &bytes, metadata, options)?;
    Ok(Prepared::Parsed {
        document: Box::new(document),
        version,
    })
}

/// A version changes when the bytes, the metadata, the chunking or the pipeline change, and, for
/// files that may hold scanned pages (PDF, images), the OCR engine (so that installing OCR reads
/// the pages it could not read before).
pub fn version_of(
    format_hint: &str,
    bytes: &[u8],
    metadata: &DocumentMetadata,
    options: &ReadOptions,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(PIPELINE_VERSION.as_bytes());
    hasher.update(
        format!(
            "{metadata:?}|{}|{}",
            options.chunking.max_chars, options.chunking.overlap_chars
        )
        .as_bytes(),
    );
    match Format::from_path(format_hint) {
        Ok(Format::Pdf | Format::Image) => {
            let engine = options.load.ocr.as_ref().map(|ocr| ocr.engine());
            hasher.update(format!("|ocr:{engine:?}").as_bytes());
        }
        // Versions stored before documents recorded whether they have pages read as paged:
        // another version makes the next ingest store these again, located by headings only.
        Ok(format) if !format.has_pages() => hasher.update(b"|unpaged"),
        _ => {}
    }
    hasher.update(bytes);
    hex::encode(&hasher.finalize()[..16])
}

/// Documents are embedded and written together until they hold this many chunks: embedding
/// batches stay full and a corpus of many small documents costs few durable writes.
const WRITE_BATCH_CHUNKS: usize = 128;

#[derive(Default)]
struct WriteBatch {
    documents: Vec<(ParsedDocument, String)>,
    chunks: usize,
}

impl WriteBatch {
    /// Writes the batch. When a document fails (its embedding, say), the others are written one
    /// by one so that only the failing one is reported. A store error stops the whole ingest.
    fn write(
        &mut self,
        store: &dyn StoreWrite,
        encoders: &Encoders,
        source: &str,
        stored: &BTreeMap<String, DocumentHead>,
        summary: &mut IngestSummary,
    ) -> Result<(), IndexError> {
        let documents = std::mem::take(&mut self.documents);
        self.chunks = 0;
        if documents.is_empty() {
            return Ok(());
        }
        match write_documents(&documents, source, store, encoders, &|| true) {
            Ok(written) => {
                summary.chunks += written.chunks;
                summary.embed_seconds += written.embed_seconds;
                for (document, _) in &documents {
                    if stored
                        .get(&document.id)
                        .is_some_and(|head| head.live.is_some())
                    {
                        summary.updated += 1
                    } else {
                        summary.added += 1
                    }
                }
                Ok(())
            }
            Err(IndexError::Store(error)) => Err(IndexError::Store(error)),
            Err(_) if documents.len() > 1 => {
                for document in documents {
                    self.chunks = document.0.chunks.len();
                    self.documents = vec![document];
                    self.write(store, encoders, source, stored, summary)?;
                }
                Ok(())
            }
            Err(error) => {
                let doc_id = documents
                    .into_iter()
                    .next()
                    .map(|(document, _)| document.id)
                    .unwrap_or_default();
                summary.failed.push(FailedDocument {
                    doc_id,
                    reason: error.to_string(),
                });
                Ok(())
            }
        }
    }
}

/// What [`write_documents`] wrote.
pub struct Written {
    pub chunks: usize,
    pub embed_seconds: f64,
}

/// Embeds parsed documents (with their versions) and replaces any stored version of each, in
/// one durable write; `source` says where they came from (see [`corpus_source`]). When
/// `still_wanted` says no after embedding, nothing is written ([`IndexError::Abandoned`]).
pub fn write_documents(
    documents: &[(ParsedDocument, String)],
    source: &str,
    store: &dyn StoreWrite,
    encoders: &Encoders,
    still_wanted: &dyn Fn() -> bool,
) -> Result<Written, IndexError> {
    let indexing_texts: Vec<String> = documents
        .iter()
        .flat_map(|(document, _)| {
            document
                .chunks
                .iter()
                .map(|chunk| chunk.indexing_text(&document.title))
        })
        .collect();
    let embed_started = Instant::now();
    let mut vectors = encoders.encode_passages(&indexing_texts)?.into_iter();
    let embed_seconds = embed_started.elapsed().as_secs_f64();
    if !still_wanted() {
        return Err(IndexError::Abandoned);
    }
    let mut writes = Vec::with_capacity(documents.len());
    for (document, version) in documents {
        let chunks: Vec<ChunkRecord> = document
            .chunks
            .iter()
            .zip(vectors.by_ref())
            .map(|(chunk, vectors)| ChunkRecord {
                ordinal: chunk.ordinal,
                text: chunk.text.clone(),
                heading_path: chunk.heading_path.clone(),
                page_start: chunk.page_start,
                page_end: chunk.page_end,
                char_start: chunk.char_start as u32,
                char_end: chunk.char_end as u32,
                ocr: document.is_ocr(chunk),
                dense: vectors.dense,
                bm25: vectors.bm25,
                bigram: vectors.bigram,
            })
            .collect();
        writes.push((document_meta(document, version, source), chunks));
    }
    store.replace_documents(&writes)?;
    Ok(Written {
        chunks: indexing_texts.len(),
        embed_seconds,
    })
}

fn document_meta(document: &ParsedDocument, version: &str, source: &str) -> DocumentMeta {
    let metadata = &document.metadata;
    let mut readers = metadata.readers.clone();
    if !readers.contains(&metadata.owner) {
        readers.push(metadata.owner.clone());
    }
    readers.sort();
    readers.dedup();
    DocumentMeta {
        doc_id: document.id.clone(),
        version: version.to_owned(),
        title: document.title.clone(),
        owner: metadata.owner.clone(),
        readers,
        kind: metadata.kind.clone(),
        date: metadata.date.clone(),
        ingested_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64),
        chunk_count: document.chunks.len() as u32,
        page_count: document.page_count,
        paged: document.format.has_pages(),
        source: source.to_owned(),
    }
}

/// Files under `dir`, sorted, as (document id, path); hidden files and the manifest skipped.
fn list_files(dir: &Path, manifest_path: &Path) -> Result<Vec<(String, PathBuf)>, IndexError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|source| IndexError::Io {
            path: current.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| IndexError::Io {
                path: current.clone(),
                source,
            })?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') || path == manifest_path {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let doc_id = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((doc_id, path));
            }
        }
    }
    files.sort();
    Ok(files)
}
