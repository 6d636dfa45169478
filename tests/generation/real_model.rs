//! The real small model end to end: `tests/llm/server.py` runs Qwen2.5-Coder-0.5B-Instruct
//! (llama.cpp through xllamacpp) behind an OpenAI-compatible endpoint, and the service answers
//! the `../shared/eval/seed` questions with it, through the same streaming path as the API.
//!
//! Ignored by default: it needs `tests/llm/setup.sh` to have run, and takes 10–30 minutes on two
//! cores (the model reads each prompt at about 40–110 tokens/s). Run it with
//!
//! ```sh
//! tests/llm/setup.sh
//! cargo test --release --test generation real_model -- --ignored --nocapture
//! ```
//!
//! `HIKITSUGI_REAL_MODEL_QUESTIONS=N` limits the run to the first N questions;
//! `HIKITSUGI_LLM_DIR` says where setup put the venv and the model;
//! `HIKITSUGI_REAL_MODEL=1.5b` runs Qwen2.5-Coder-1.5B-Instruct instead (`tests/llm/setup.sh 1.5b`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hikitsugi::config::Config;
use hikitsugi::eval::{Question, evaluate, read_jsonl};
use hikitsugi::service::Service;
use indicatif::ProgressBar;

/// The model file `tests/llm/setup.sh` assembles, by `HIKITSUGI_REAL_MODEL` (default 0.5b).
fn model_file() -> &'static str {
    match std::env::var("HIKITSUGI_REAL_MODEL").as_deref() {
        Ok("1.5b") => "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        Ok("0.5b") | Err(_) => "qwen2.5-coder-0.5b-instruct.gguf",
        Ok(other) => panic!("HIKITSUGI_REAL_MODEL={other}: use 0.5b or 1.5b"),
    }
}

fn llm_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HIKITSUGI_LLM_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("hikitsugi/llm")
}

/// The model server, stopped when dropped.
struct ModelServer {
    child: Child,
    base_url: String,
}

impl ModelServer {
    fn start() -> Self {
        let dir = llm_dir();
        let python = dir.join("venv/bin/python");
        let model = dir.join(model_file());
        assert!(
            python.exists() && model.exists(),
            "run tests/llm/setup.sh first (looked in {})",
            dir.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/llm/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--model")
            .arg(model)
            .args(["--port", "0", "--context", "8192"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the model server starts");
        let stdout = child.stdout.take().expect("its stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the model server's first line");
        let base_url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the model server: {line:?}"))
            .to_owned();
        Self {
            child,
            base_url: format!("{base_url}/v1"),
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/llm/setup.sh and 10–30 minutes; see the module docs"]
async fn the_real_model_answers_the_seed_questions_through_the_service() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let mut questions: Vec<Question> =
        read_jsonl(&shared.join("eval/seed/questions.jsonl")).expect("the seed questions");
    if let Some(limit) = std::env::var("HIKITSUGI_REAL_MODEL_QUESTIONS")
        .ok()
        .and_then(|value| value.parse().ok())
    {
        questions.truncate(limit);
    }

    let server = ModelServer::start();
    let data_dir = tempfile::Builder::new()
        .prefix("real-model-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a data directory");
    let mut config = Config::default();
    config.storage.data_dir = data_dir.path().to_owned();
    config.server.request_timeout_ms = 600_000;
    config.llm.base_url = Some(server.base_url.clone());
    config.llm.model = model_file().to_owned();
    config.llm.first_token_timeout_ms = 240_000;
    config.llm.timeout_ms = 400_000;
    config.llm.max_tokens = 256;
    config.llm.max_passages = 3;
    let service = tokio::task::spawn_blocking(move || {
        let (service, service_store) =
            Service::open_with_operator(config).expect("the service opens");
        let manifest = "[defaults]\nowner = \"eval\"\nreaders = [\"public\"]\n";
        let corpus = tempfile::tempdir().expect("a corpus directory");
        for entry in std::fs::read_dir(shared.join("corpus/text")).expect("the seed corpus") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|ext| ext == "txt") {
                std::fs::copy(&path, corpus.path().join(path.file_name().expect("a name")))
                    .expect("a copy");
            }
        }
        std::fs::write(corpus.path().join("hikitsugi.toml"), manifest).expect("a manifest");
        let summary = hikitsugi::index::ingest_dir(
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
        .expect("the corpus ingests");
        assert!(summary.failed.is_empty(), "{summary:?}");
        service
    })
    .await
    .expect("setup");

    let (report, outcomes) = evaluate(&service, &questions)
        .await
        .expect("every question is answered");
    for outcome in &outcomes {
        println!("{}", serde_json::to_string(outcome).unwrap_or_default());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );

    let generation = report.generation.expect("a generation report");
    assert!(generation.generated > 0, "the model answered nothing");
    assert_eq!(
        generation.fallbacks, 0,
        "the model failed on some questions"
    );
    assert!(
        generation.answerable_with_verified_citation > 0.0,
        "no answer carried a verified citation"
    );
}
