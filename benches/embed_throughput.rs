//! Passage embedding throughput, the way `hikitsugi ingest` embeds: the texts of a JSON-lines
//! file (one JSON string per line), prefixed with `passage: `, through the dense encoder's
//! passage instance with the default configuration (batches of `model.batch_size`, sorted by
//! length). `benches/embed-versus-peer.sh` runs it beside the Python peer on the same list.
//!
//! ```text
//! cargo bench --bench embed_throughput -- TEXTS.jsonl
//! ```
//!
//! Prints one JSON line: texts, tokens (the tokenizer's count, truncated at 512 as the model
//! reads them), seconds of embedding (after one warm-up call that loads the model), tokens/s.
//! The peak RSS `embed-versus-peer.sh` reports is the encoder's: it counts the tokens too.

use std::time::Instant;

use anyhow::{Context, bail};
use hikitsugi::config::Config;
use hikitsugi::embed::DenseEncoder;
use hikitsugi::service::{dense_options, model_paths};

fn main() -> anyhow::Result<()> {
    let Some(path) = std::env::args().skip(1).find(|arg| !arg.starts_with("--")) else {
        bail!("usage: cargo bench --bench embed_throughput -- TEXTS.jsonl");
    };
    let texts = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path}"))?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str::<String>)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{path} must hold one JSON string per line"))?;
    if texts.is_empty() {
        bail!("{path} holds no texts");
    }

    let config = Config::default();
    let paths = model_paths(&config).context("run `hikitsugi setup` first")?;
    let mut options = dense_options(&config.model);
    options.query_instances = 1;
    let encoder = DenseEncoder::load(&paths, &options)?;
    let mut tokens = 0;
    for text in &texts {
        tokens += encoder.passage_tokens(text)?;
    }
    encoder.embed_passages(&texts[..1])?;
    let started = Instant::now();
    let vectors = encoder.embed_passages(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    if vectors.len() != texts.len() {
        bail!("{} vectors for {} texts", vectors.len(), texts.len());
    }
    println!(
        "{}",
        serde_json::json!({
            "embedder": "hikitsugi",
            "texts": texts.len(),
            "tokens": tokens,
            "seconds": (seconds * 100.0).round() / 100.0,
            "tokens_per_s": (tokens as f64 / seconds).round() as u64,
        })
    );
    Ok(())
}
