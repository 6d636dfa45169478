//! The command line as an operator uses it: `hash-key` from standard input, `eval`
//! refusing a store that holds documents it did not write, `extract` reading scanned pages by OCR.

use std::io::Write;
use std::process::{Command, Stdio};

fn hikitsugi() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hikitsugi"));
    command.env("RUST_LOG", "warn");
    command
}

#[test]
fn hash_key_reads_the_key_from_standard_input() {
    let mut child = hikitsugi()
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hikitsugi hash-key");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"demo-hyogo-key\n")
        .expect("write the key");
    let output = child.wait_with_output().expect("output");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        hikitsugi::access::hash_key("demo-hyogo-key")
    );
    // The same as the argument form.
    let argument = hikitsugi()
        .args(["hash-key", "demo-hyogo-key"])
        .output()
        .expect("output");
    assert_eq!(argument.stdout, output.stdout);
    let empty = hikitsugi()
        .arg("hash-key")
        .stdin(Stdio::null())
        .output()
        .expect("output");
    assert!(!empty.status.success());
}

/// `eval --data-dir` pointed at a real store refuses before writing or pruning anything.
#[test]
fn eval_refuses_a_store_holding_documents_it_did_not_write() {
    let paths = hikitsugi::setup::ensure_model(
        &hikitsugi::setup::default_cache_dir().expect("cache dir"),
        &|_| {},
    )
    .expect("model setup");
    let root = tempfile::tempdir().expect("tempdir");
    let corpus = root.path().join("corpus");
    std::fs::create_dir_all(&corpus).expect("corpus");
    std::fs::write(
        corpus.join("hikitsugi.toml"),
        "[defaults]\nowner = \"org-a\"\nreaders = [\"public\"]\n",
    )
    .expect("manifest");
    std::fs::write(
        corpus.join("kiroku.txt"),
        "本番の記録\n\n窓口を一本化した。",
    )
    .expect("doc");
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\ndir = {:?}\nonnxruntime = {:?}\n\n[[organisations]]\nid = \"org-a\"\nname = \"A\"\n",
            paths.model_dir, paths.ort_dylib
        ),
    )
    .expect("config");
    let data = root.path().join("data");
    let with_store = |command: &mut Command| {
        command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data);
    };
    let mut ingest = hikitsugi();
    with_store(&mut ingest);
    let status = ingest.arg("ingest").arg(&corpus).status().expect("ingest");
    assert!(status.success());

    let questions = root.path().join("questions.jsonl");
    std::fs::write(
        &questions,
        "{\"id\": \"q1\", \"question\": \"窓口はどうなったか\"}\n",
    )
    .expect("questions");
    let contexts = root.path().join("contexts.jsonl");
    std::fs::write(
        &contexts,
        "{\"id\": \"c1\", \"title\": \"t\", \"text\": \"評価用の文脈。\"}\n",
    )
    .expect("contexts");
    let mut eval = hikitsugi();
    with_store(&mut eval);
    let output = eval
        .arg("eval")
        .arg("--questions")
        .arg(&questions)
        .arg("--contexts")
        .arg(&contexts)
        .output()
        .expect("eval");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kiroku.txt") && stderr.contains("store of its own"),
        "{stderr}"
    );
    let store = hikitsugi::store::EdgeStore::open_existing(&data).expect("open");
    let heads = hikitsugi::store::StoreAdmin::heads(&store).expect("heads");
    assert_eq!(heads.keys().collect::<Vec<_>>(), vec!["kiroku.txt"]);
}

/// `feedback export` writes an organisation's 👎 questions in the eval format, for review.
#[test]
fn feedback_export_writes_the_down_voted_questions_as_eval_questions() {
    use hikitsugi::metadata::{CitedVersion, Feedback, MetadataStore, Rating};
    let data = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(data.path()).expect("open");
    for (org, rating, question) in [
        ("pref-a", Rating::Down, "窓口はいつ一本化されましたか"),
        ("pref-a", Rating::Up, "研修は何回ですか"),
        ("pref-b", Rating::Down, "他県の質問"),
    ] {
        store
            .record_feedback(Feedback {
                id: String::new(),
                created_at: 0,
                org: org.to_owned(),
                user: "u".to_owned(),
                question: question.to_owned(),
                answer: "資料には見当たりません。".to_owned(),
                mode: "extractive".to_owned(),
                found: false,
                rating,
                comment: None,
                citations: vec![CitedVersion {
                    doc_id: "a.txt".to_owned(),
                    version: "v1".to_owned(),
                }],
            })
            .expect("record");
    }
    drop(store);
    let output = hikitsugi()
        .arg("--data-dir")
        .arg(data.path())
        .args(["feedback", "export", "--org", "pref-a"])
        .output()
        .expect("export");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["question"], "窓口はいつ一本化されましたか");
    assert_eq!(lines[0]["gold"], serde_json::json!([]));
    assert_eq!(lines[0]["type"], "review");
    assert_eq!(lines[0]["feedback"]["cited"][0]["doc_id"], "a.txt");
    // What `hikitsugi eval --questions` reads.
    let _: hikitsugi::eval::Question =
        serde_json::from_value(lines[0].clone()).expect("a question");
}

/// Character accuracy of `read` against `expected`, as `shared/corpus/README.md` defines text
/// fidelity (normalised, whitespace removed, 1 − edit distance / longer length).
fn accuracy(read: &str, expected: &str) -> f64 {
    let comparable = |text: &str| -> String {
        hikitsugi_ingest::normalize_chars(text)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    let (read, expected) = (comparable(read), comparable(expected));
    let longer = read.chars().count().max(expected.chars().count()).max(1);
    1.0 - strsim::levenshtein(&read, &expected) as f64 / longer as f64
}

/// Scanned pages and image files are read by OCR (tesseract and pdftoppm, which `.ci/run`
/// installs); with `ingest.ocr = "off"` the scanned page is reported and an image refused.
#[test]
fn extract_reads_scanned_pages_and_images_by_ocr() {
    let root = env!("CARGO_MANIFEST_DIR");
    let expected =
        std::fs::read_to_string(format!("{root}/ingest/tests/fixtures/pdf/ja_notes.txt"))
            .expect("the notes' text");
    let scanned_pdf = format!("{root}/tests/fixtures/ocr/scanned-notes.pdf");
    let scanned_png = format!("{root}/tests/fixtures/ocr/scanned-notes.png");

    let pdf = hikitsugi()
        .args(["extract", &scanned_pdf])
        .output()
        .expect("extract");
    let stderr = String::from_utf8_lossy(&pdf.stderr);
    assert!(pdf.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&pdf.stdout);
    let pages: Vec<&str> = text.split('\u{c}').collect();
    assert_eq!(pages.len(), 2, "{text}");
    assert!(!stderr.contains("unreadable"), "{stderr}");
    let text_layer = accuracy(pages[0], &expected);
    let recognised = accuracy(pages[1], &expected);
    eprintln!("text layer {text_layer:.3}, OCR of the scanned page {recognised:.3}");
    assert!(text_layer > 0.98, "{}", pages[0]);
    assert!(recognised >= 0.9, "{}", pages[1]);

    let png = hikitsugi()
        .args(["extract", &scanned_png])
        .output()
        .expect("extract");
    assert!(
        png.status.success(),
        "{}",
        String::from_utf8_lossy(&png.stderr)
    );
    let image = accuracy(&String::from_utf8_lossy(&png.stdout), &expected);
    eprintln!("OCR of the image file {image:.3}");
    assert!(image >= 0.9, "{}", String::from_utf8_lossy(&png.stdout));

    let off = hikitsugi()
        .env("HIKITSUGI_INGEST__OCR", "off")
        .args(["extract", &scanned_pdf])
        .output()
        .expect("extract");
    let stderr = String::from_utf8_lossy(&off.stderr);
    assert!(off.status.success(), "{stderr}");
    assert!(
        stderr.contains("page 2 unreadable: no text layer"),
        "{stderr}"
    );
    let refused = hikitsugi()
        .env("HIKITSUGI_INGEST__OCR", "off")
        .args(["extract", &scanned_png])
        .output()
        .expect("extract");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("read by OCR"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
