//! Crash tests of the write path: a real `hikitsugi ingest` and a real `hikitsugi serve` taking
//! uploads, each killed with SIGKILL at pseudo-random moments, 20 times each.
//!
//! After every kill: every document that was complete before is still there, every document
//! the store shows is complete (its live version has exactly its chunks, one version), and
//! during the uploads a reader querying the server throughout never saw a partial or mixed
//! version. At the end a run that is not killed leaves exactly the expected chunks per document
//! and no other version.
//!
//! The embedded store runs here. (Its directory is locked by the writing process, so during a
//! CLI ingest the reader is the next process that opens it; during uploads it is an HTTP
//! client.) With `QDRANT_URL` set the same runs use a collection on that server.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hikitsugi::access::Operator;
use hikitsugi::store::StoreAdmin;
use serde_json::Value;

const KEY: &str = "crash-test-key";
const KILLS: u64 = 20;

/// A small deterministic generator for kill times and document contents.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

struct Setup {
    _root: tempfile::TempDir,
    config_path: PathBuf,
    corpus: PathBuf,
    data: PathBuf,
    collection: Option<String>,
}

fn setup(name: &str) -> Setup {
    let paths = hikitsugi::setup::ensure_model(
        &hikitsugi::setup::default_cache_dir().expect("cache dir"),
        &|_| {},
    )
    .expect("model setup");
    let root = tempfile::tempdir().expect("tempdir");
    let corpus = root.path().join("corpus");
    std::fs::create_dir_all(&corpus).expect("corpus dir");
    std::fs::write(
        corpus.join("hikitsugi.toml"),
        "[defaults]\nowner = \"org-a\"\nreaders = [\"org-a\"]\nkind = \"minutes\"\n",
    )
    .expect("manifest");
    let collection = qdrant_url().map(|_| {
        format!(
            "hikitsugi-test-crash-{name}-{}",
            root.path()
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default()
        )
    });
    let config_path = root.path().join("config.toml");
    let mut config = format!(
        "[model]\ndir = {:?}\nonnxruntime = {:?}\n\n[[organisations]]\nid = \"org-a\"\nname = \"A県\"\n\n[[api_keys]]\nlabel = \"crash\"\norg = \"org-a\"\nrole = \"editor\"\nsha256 = \"{}\"\n",
        paths.model_dir,
        paths.ort_dylib,
        hikitsugi::access::hash_key(KEY)
    );
    if let (Some(url), Some(collection)) = (qdrant_url(), &collection) {
        config.push_str(&format!(
            "\n[storage]\nbackend = \"qdrant\"\n\n[storage.qdrant]\nurl = {url:?}\ncollection = {collection:?}\n"
        ));
    }
    std::fs::write(&config_path, config).expect("config");
    Setup {
        data: root.path().join("data"),
        _root: root,
        config_path,
        corpus,
        collection,
    }
}

fn qdrant_url() -> Option<String> {
    std::env::var("QDRANT_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A document of `paragraphs` paragraphs whose wording depends on `seed`.
fn document_text(title: &str, seed: u64, paragraphs: u64) -> String {
    let mut text = format!("# {title}\n\n");
    for index in 0..paragraphs {
        text.push_str(&format!(
            "## 第{index}節\n\n{title}の第{index}節では、版{seed}の取り組みとして市町村のDX推進体制を整え、職員研修を年{}回実施した。相談窓口は{}か所に設けた。\n\n",
            seed % 5 + 1,
            index + seed % 7
        ));
    }
    text
}

fn hikitsugi(setup: &Setup) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hikitsugi"));
    command
        .arg("--config")
        .arg(&setup.config_path)
        .arg("--data-dir")
        .arg(&setup.data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The operator's view of the store the child processes wrote (they have exited).
fn open_store(setup: &Setup) -> Arc<dyn StoreAdmin> {
    match (qdrant_url(), &setup.collection) {
        (Some(url), Some(collection)) => {
            let options = hikitsugi::store::QdrantOptions {
                url,
                collection: collection.clone(),
                ..Default::default()
            };
            Arc::new(hikitsugi::store::QdrantStore::connect_existing(&options).expect("connect"))
        }
        _ => Arc::new(hikitsugi::store::EdgeStore::open_existing(&setup.data).expect("open")),
    }
}

/// Every document the store shows is complete; returns doc id → live version.
fn check_complete(store: &dyn StoreAdmin) -> BTreeMap<String, String> {
    let scope = Operator.scope();
    let mut live = BTreeMap::new();
    for document in store.documents(&scope).expect("documents") {
        let (meta, passages) = store
            .passages(&scope, &document.doc_id, 0..=u32::MAX)
            .expect("passages")
            .expect("a listed document has passages");
        assert_eq!(meta.version, document.version);
        assert_eq!(
            passages.len() as u32,
            meta.chunk_count,
            "{} {}: a partial version is visible",
            meta.doc_id,
            meta.version
        );
        assert!(passages.iter().all(|p| p.document.version == meta.version));
        live.insert(document.doc_id, document.version);
    }
    live
}

/// Chunks per document that `hikitsugi chunks` gives for the corpus as it is now.
fn expected_chunks(setup: &Setup) -> BTreeMap<String, u32> {
    let output = hikitsugi(setup)
        .arg("chunks")
        .arg(&setup.corpus)
        .stdout(Stdio::piped())
        .output()
        .expect("hikitsugi chunks");
    assert!(output.status.success());
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let chunk: Value = serde_json::from_str(line).expect("a JSON chunk");
        *counts
            .entry(chunk["doc_id"].as_str().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

fn kill(mut child: Child) {
    // SIGKILL: no destructor, no flush, no cleanup.
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn ingest_killed_at_random_points_never_loses_or_tears_a_document() {
    let setup = setup("ingest");
    let mut random = Lcg(0x5eed);
    let names: Vec<String> = (0..6).map(|index| format!("doc{index}.md")).collect();
    for (index, name) in names.iter().enumerate() {
        let text = document_text(name, 0, 4 + index as u64);
        std::fs::write(setup.corpus.join(name), text).expect("write");
    }
    // A first complete run, timed, to spread the kills over a run's length.
    let started = Instant::now();
    let status = hikitsugi(&setup)
        .args(["ingest", "--prune"])
        .arg(&setup.corpus)
        .status()
        .expect("ingest");
    assert!(status.success());
    let run = started.elapsed();

    let mut complete = {
        let store = open_store(&setup);
        check_complete(store.as_ref())
    };
    assert_eq!(complete.len(), names.len());
    for round in 1..=KILLS {
        for name in &names {
            if random.below(3) == 0 {
                let paragraphs = 2 + random.below(9);
                let text = document_text(name, round, paragraphs);
                std::fs::write(setup.corpus.join(name), text).expect("rewrite");
            }
        }
        let child = hikitsugi(&setup)
            .args(["ingest", "--prune"])
            .arg(&setup.corpus)
            .spawn()
            .expect("spawn ingest");
        let delay = Duration::from_millis(random.below(run.as_millis() as u64 + 500));
        std::thread::sleep(delay);
        kill(child);

        let store = open_store(&setup);
        let now = check_complete(store.as_ref());
        for doc_id in complete.keys() {
            assert!(
                now.contains_key(doc_id),
                "round {round} (killed after {delay:?}): {doc_id} was lost"
            );
        }
        complete = now;
    }

    let status = hikitsugi(&setup)
        .args(["ingest", "--prune"])
        .arg(&setup.corpus)
        .status()
        .expect("ingest");
    assert!(status.success());
    let store = open_store(&setup);
    let live = check_complete(store.as_ref());
    let expected = expected_chunks(&setup);
    let listed: BTreeMap<String, u32> = store
        .documents(&Operator.scope())
        .expect("documents")
        .into_iter()
        .map(|document| (document.doc_id, document.chunk_count))
        .collect();
    assert_eq!(listed, expected, "exactly the expected chunks per document");
    let stored: BTreeSet<(String, String)> = store
        .chunk_counts()
        .expect("chunk counts")
        .into_keys()
        .collect();
    let live: BTreeSet<(String, String)> = live.into_iter().collect();
    assert_eq!(stored, live, "no version but the live one is left");
    drop_collection(&setup);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn start_server(setup: &Setup, port: u16) -> Child {
    let child = hikitsugi(setup)
        .arg("serve")
        .env("HIKITSUGI_LISTEN", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("spawn serve");
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if get_ok(&ready) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(child);
    panic!("the server did not become ready");
}

/// A runtime for the harness's HTTP calls (the tests run on plain threads).
fn http_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn get_ok(url: &str) -> bool {
    http_runtime().block_on(async {
        reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    })
}

/// What a reader sees through the API: every listed document's passages are one complete
/// version. Connection failures (the server was just killed) end the check quietly.
async fn read_once(client: &reqwest::Client, base: &str) -> Result<usize, String> {
    let Ok(response) = client
        .get(format!("{base}/v1/documents"))
        .bearer_auth(KEY)
        .send()
        .await
    else {
        return Ok(0);
    };
    let Ok(listing) = response.json::<Value>().await else {
        return Ok(0);
    };
    let mut checked = 0;
    for document in listing["documents"].as_array().into_iter().flatten() {
        let doc_id = document["doc_id"].as_str().unwrap_or_default();
        let Ok(response) = client
            .get(format!("{base}/v1/passages"))
            .query(&[("doc_id", doc_id)])
            .bearer_auth(KEY)
            .send()
            .await
        else {
            return Ok(checked);
        };
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            // Deleted or replaced between the two calls is fine; torn is not.
            continue;
        }
        let Ok(body) = response.json::<Value>().await else {
            return Ok(checked);
        };
        let version = body["document"]["version"].as_str().unwrap_or_default();
        let count = body["document"]["chunk_count"].as_u64().unwrap_or_default();
        let passages = body["passages"].as_array().map_or(0, Vec::len) as u64;
        if passages != count {
            return Err(format!(
                "{doc_id} {version}: {passages} of {count} passages visible"
            ));
        }
        checked += 1;
    }
    Ok(checked)
}

#[test]
fn uploads_killed_at_random_points_never_lose_or_tear_a_document() {
    let setup = setup("upload");
    let mut random = Lcg(0xface);
    let runtime = http_runtime();
    let client = reqwest::Client::new();
    let mut complete: BTreeSet<String> = BTreeSet::new();
    let mut reads = 0;
    // Round 0 is not killed until its uploads are done, so later rounds have documents to
    // lose; the 20 rounds after it are killed at random moments.
    for round in 0..=KILLS {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let server = start_server(&setup, port);
        // Everything complete before this round is still there, whole.
        let before = runtime
            .block_on(read_once(&client, &base))
            .expect("complete after restart");
        assert!(
            before >= complete.len(),
            "round {round}: documents were lost"
        );
        let listing: Value = runtime.block_on(async {
            client
                .get(format!("{base}/v1/documents"))
                .bearer_auth(KEY)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("JSON")
        });
        let listed: BTreeSet<String> = listing["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["doc_id"].as_str().map(str::to_owned))
            .collect();
        assert!(
            complete.is_subset(&listed),
            "round {round}: {complete:?} not all in {listed:?}"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (stop, base) = (Arc::clone(&stop), base.clone());
            std::thread::spawn(move || {
                let runtime = http_runtime();
                let client = reqwest::Client::new();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    reads += runtime.block_on(read_once(&client, &base))?;
                }
                Ok::<usize, String>(reads)
            })
        };
        let uploads: Vec<(String, String)> = (0..3)
            .map(|_| {
                let name = format!("upload{}.md", random.below(4));
                let text = document_text(&name, round, 2 + random.below(12));
                (name, text)
            })
            .collect();
        let delay = Duration::from_millis(300 + random.below(4000));
        let wait_for_uploads = round == 0;
        let uploader = {
            let base = base.clone();
            std::thread::spawn(move || {
                let runtime = http_runtime();
                let client = reqwest::Client::new();
                let mut stored = Vec::new();
                for (name, text) in uploads {
                    let form = reqwest::multipart::Form::new().part(
                        "file",
                        reqwest::multipart::Part::bytes(text.into_bytes()).file_name(name.clone()),
                    );
                    let sent = runtime.block_on(
                        client
                            .post(format!("{base}/v1/documents"))
                            .bearer_auth(KEY)
                            .multipart(form)
                            .send(),
                    );
                    match sent {
                        Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                            stored.push(format!("uploads/org-a/{name}"));
                        }
                        Ok(response) => {
                            let status = response.status();
                            let body = runtime.block_on(response.text()).unwrap_or_default();
                            panic!("an upload was refused: {status} {body}");
                        }
                        // The server was killed.
                        Err(_) => break,
                    }
                }
                stored
            })
        };
        let stored = if wait_for_uploads {
            let stored = uploader.join().expect("uploader panicked");
            assert!(!stored.is_empty(), "no upload was stored");
            std::thread::sleep(Duration::from_millis(300));
            kill(server);
            stored
        } else {
            std::thread::sleep(delay);
            kill(server);
            uploader.join().expect("uploader panicked")
        };
        stop.store(true, Ordering::Relaxed);
        reads += reader
            .join()
            .expect("reader panicked")
            .unwrap_or_else(|torn| panic!("round {round}: a reader saw a torn version: {torn}"));
        complete.extend(listed);
        complete.extend(stored);
    }
    assert!(reads > 0, "the reader never read a document");
    let store = open_store(&setup);
    let live = check_complete(store.as_ref());
    assert!(complete.iter().all(|doc_id| live.contains_key(doc_id)));
    let stored: BTreeSet<(String, String)> = store
        .chunk_counts()
        .expect("chunk counts")
        .into_keys()
        .collect();
    let live: BTreeSet<(String, String)> = live.into_iter().collect();
    assert_eq!(
        stored, live,
        "no version but the live one is left after reopening"
    );
    drop(store);
    drop_collection(&setup);
    let _ = std::io::stderr().flush();
}

fn drop_collection(setup: &Setup) {
    if let (Some(url), Some(collection)) = (qdrant_url(), &setup.collection) {
        let options = hikitsugi::store::QdrantOptions {
            url,
            collection: collection.clone(),
            ..Default::default()
        };
        if let Ok(store) = hikitsugi::store::QdrantStore::connect_existing(&options) {
            let _ = store.drop_collection();
        }
    }
}
