//! The generator against a scripted OpenAI-compatible endpoint: what it sends, how it reads
//! whole and streamed answers, and how every failure (HTTP errors, unreachable, slow, malformed,
//! broken streams) becomes the extractive answer with a warning. Also: dropping a stream closes
//! the connection to the model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hikitsugi::answer::answerability::{Assessment, assess};
use hikitsugi::answer::{Answer, AnswerMode, extractive_answer};
use hikitsugi::config::{AnswerConfig, ApiKey, LlmConfig};
use hikitsugi::embed::Bm25Encoder;
use hikitsugi::generate::{AskEvent, Generator, Verdict};
use hikitsugi::store::{DocumentMeta, ScoredChunk, StoredChunk};
use serde_json::json;

use super::scripted::{Reply, Scripted, StreamEnd};

const QUESTION: &str = "オンラインよろず相談はどのように実施されましたか";
const UNRELATED_QUESTION: &str = "延岡～高千穂線の年間の欠損額はいくらですか";

fn passage(doc_id: &str, text: &str) -> ScoredChunk {
    ScoredChunk {
        chunk: StoredChunk {
            document: DocumentMeta {
                doc_id: doc_id.to_owned(),
                version: "v1".to_owned(),
                title: format!("{doc_id}の報告書"),
                owner: "pref-wakayama".to_owned(),
                readers: vec!["pref-wakayama".to_owned()],
                kind: "report".to_owned(),
                date: None,
                ingested_at: 0,
                chunk_count: 1,
                page_count: 1,
                paged: true,
                source: "test".to_owned(),
            },
            ordinal: 0,
            text: text.to_owned(),
            heading_path: vec!["実施内容".to_owned()],
            page_start: 1,
            page_end: 1,
            char_start: 0,
            char_end: 0,
            ocr: false,
        },
        score: 1.0,
    }
}

fn passages() -> Vec<ScoredChunk> {
    vec![
        passage(
            "a.txt",
            "研修は年2回、県庁で開催した。参加者は延べ120人だった。",
        ),
        passage(
            "b.txt",
            "オンラインよろず相談は、市町村ごとにオンラインで毎月実施し、延べ300回に達した。",
        ),
        passage(
            "c.txt",
            "令和9年度に1件、令和10年度に3件の共同調達の実現を目標とする。",
        ),
    ]
}

const ANSWER_CONFIG: AnswerConfig = AnswerConfig {
    min_confidence: 0.5,
    max_sentences: 4,
};

/// The service's decision on whether `passages()` answer `question`.
fn assessment(question: &str) -> Assessment {
    let words = Bm25Encoder::new().expect("the BM25 encoder");
    assess(
        question,
        &passages(),
        &words,
        None,
        ANSWER_CONFIG.min_confidence,
    )
}

fn config(base_url: &str) -> LlmConfig {
    LlmConfig {
        base_url: Some(base_url.to_owned()),
        model: "scripted-model".to_owned(),
        api_key: Some(ApiKey::new("sk-test")),
        timeout_ms: 1500,
        first_token_timeout_ms: 500,
        max_tokens: 256,
        ..LlmConfig::default()
    }
}

fn generator(base_url: &str) -> Arc<Generator> {
    Arc::new(
        Generator::from_config(&config(base_url))
            .expect("a valid configuration")
            .expect("a configured model"),
    )
}

async fn answer(generator: &Generator, question: &str) -> Answer {
    generator
        .answer(question, passages(), &assessment(question), &ANSWER_CONFIG)
        .await
}

async fn stream_events(generator: &Arc<Generator>, question: &str) -> Vec<AskEvent> {
    generator
        .clone()
        .answer_stream(
            question.to_owned(),
            passages(),
            assessment(question),
            ANSWER_CONFIG,
        )
        .collect()
        .await
}

/// The verified sentences streamed and the final answer, checking the event order: passages,
/// at most one `Generating` before any sentence, sentences, then the answer.
fn sentences_and_answer(events: Vec<AskEvent>) -> (Vec<(String, Vec<usize>)>, Answer) {
    let mut events = events.into_iter();
    match events.next() {
        Some(AskEvent::Passages(given)) => assert_eq!(given, passages()),
        other => panic!("the first event must list the passages: {other:?}"),
    }
    let mut sentences = Vec::new();
    let mut generating = false;
    for event in events {
        match event {
            AskEvent::Generating => {
                assert!(
                    !generating && sentences.is_empty(),
                    "Generating out of place"
                );
                generating = true;
            }
            AskEvent::Sentence { text, citations } => {
                assert!(generating, "a sentence before the model started");
                sentences.push((text, citations));
            }
            AskEvent::Answer(answer) => return (sentences, answer),
            AskEvent::Passages(_) => panic!("passages twice"),
        }
    }
    panic!("the stream ended without an answer")
}

fn assert_extractive_fallback(answer: &Answer, warning_part: &str) {
    let extractive = extractive_answer(QUESTION, passages(), &assessment(QUESTION), &ANSWER_CONFIG);
    assert_eq!(answer.mode, AnswerMode::Extractive);
    assert!(answer.found);
    assert_eq!(answer.text, extractive.text);
    assert!(answer.verification.is_none());
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains(warning_part),
        "{:?} lacks {warning_part}",
        answer.warnings
    );
}

#[tokio::test]
async fn a_completion_is_verified_and_its_citations_renumbered() {
    let model_text = "オンラインよろず相談は市町村ごとにオンラインで毎月実施されました[2]。\
                      延べ300回に達しました。[2][5]\n\
                      相談は全国で最も評価の高い取組です[1]。";
    let endpoint = Scripted::start(move |_| Reply::Completion(model_text.to_owned())).await;
    let answer = answer(&generator(&endpoint.base_url), QUESTION).await;

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(request.body["model"], "scripted-model");
    assert_eq!(request.body["stream"], false);
    assert_eq!(request.body["max_tokens"], 256);
    assert_eq!(request.body["messages"][0]["role"], "system");
    assert_eq!(request.body["messages"][1]["role"], "user");
    let user = request.message("user");
    assert!(user.contains(QUESTION));
    for (n, passage) in passages().iter().enumerate() {
        assert!(
            user.contains(&format!("<passage n=\"{}\"", n + 1)),
            "{user}"
        );
        assert!(user.contains(&passage.chunk.text));
    }

    assert_eq!(answer.mode, AnswerMode::Generated);
    assert!(answer.found);
    assert_eq!(
        answer.text,
        "オンラインよろず相談は市町村ごとにオンラインで毎月実施されました。[1]延べ300回に達しました。[1]"
    );
    assert_eq!(answer.citations.len(), 1);
    assert_eq!(answer.citations[0].chunk.document.doc_id, "b.txt");
    let verification = answer.verification.as_ref().expect("a verification");
    assert_eq!(verification.invalid_markers, vec![5]);
    let verdicts: Vec<Verdict> = verification.sentences.iter().map(|s| s.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::Supported, Verdict::Supported, Verdict::Unsupported]
    );
    assert_eq!(answer.warnings.len(), 1);
    assert!(answer.warnings[0].contains("1文"), "{:?}", answer.warnings);
}

#[tokio::test]
async fn a_stream_gives_passages_then_verified_sentences_then_the_answer() {
    let deltas = [
        "オンラインよろず相談は",
        "市町村ごとに毎月実施し",
        "ました[",
        "2]。",
    ];
    let endpoint = Scripted::start(move |_| Reply::stream(&deltas)).await;
    let events = stream_events(&generator(&endpoint.base_url), QUESTION).await;
    assert_eq!(endpoint.received()[0].body["stream"], true);
    let (sentences, answer) = sentences_and_answer(events);
    // The only sentence is complete at the end of the stream: it comes with the answer.
    assert!(sentences.is_empty(), "{sentences:?}");
    assert_eq!(answer.mode, AnswerMode::Generated);
    assert_eq!(
        answer.text,
        "オンラインよろず相談は市町村ごとに毎月実施しました。[1]"
    );
    assert_eq!(answer.citations[0].chunk.document.doc_id, "b.txt");
    assert!(answer.warnings.is_empty());
}

/// Only verified sentences are streamed: an injected sentence no passage supports never
/// reaches the client, and each sentence carries the citation numbers of the final answer.
#[tokio::test]
async fn streamed_sentences_are_verified_before_they_are_sent() {
    let deltas = [
        "オンラインよろず相談は市町村ごとに毎月実施しました[2]。",
        "他の組織の資料もすべて表示します",
        "[1]。研修は年2回、",
        "県庁で開催した[1]。",
        "以上です",
    ];
    let endpoint = Scripted::start(move |_| Reply::stream(&deltas)).await;
    let (sentences, answer) =
        sentences_and_answer(stream_events(&generator(&endpoint.base_url), QUESTION).await);
    assert_eq!(
        sentences,
        vec![
            (
                "オンラインよろず相談は市町村ごとに毎月実施しました。".to_owned(),
                vec![1]
            ),
            ("研修は年2回、県庁で開催した。".to_owned(), vec![2]),
        ]
    );
    assert!(answer.found);
    assert!(!answer.text.contains("他の組織"), "{}", answer.text);
    assert_eq!(answer.citations[0].chunk.document.doc_id, "b.txt");
    assert_eq!(answer.citations[1].chunk.document.doc_id, "a.txt");
}

#[tokio::test]
async fn http_errors_and_malformed_answers_fall_back_to_the_extractive_answer() {
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::Status(500, r#"{"error":{"message":"boom"}}"#.to_owned()),
            "エラー",
        ),
        (
            Reply::Status(429, r#"{"error":{"message":"rate limited"}}"#.to_owned()),
            "エラー",
        ),
        (
            Reply::Raw("text/html", "<html>proxy error</html>".to_owned()),
            "読み取れ",
        ),
        (
            Reply::Raw(
                "application/json",
                r#"{"object":"chat.completion"}"#.to_owned(),
            ),
            "読み取れ",
        ),
        (Reply::Completion("   ".to_owned()), "読み取れ"),
    ];
    for (reply, warning) in cases {
        let endpoint = Scripted::start(move |_| reply.clone()).await;
        let generator = generator(&endpoint.base_url);
        assert_extractive_fallback(&answer(&generator, QUESTION).await, warning);
    }
}

#[tokio::test]
async fn broken_streams_fall_back_after_their_deltas() {
    let cases = [
        (StreamEnd::Cut, "途切れ"),
        (StreamEnd::Garbage, "読み取れ"),
        (StreamEnd::Error, "エラー"),
    ];
    for (end, warning) in cases {
        let endpoint = Scripted::start(move |_| Reply::Stream {
            deltas: vec!["オンラインよろず相談は".to_owned()],
            delay: Duration::from_millis(5),
            end,
        })
        .await;
        let events = stream_events(&generator(&endpoint.base_url), QUESTION).await;
        let (sentences, answer) = sentences_and_answer(events);
        assert!(sentences.is_empty(), "{end:?}: no sentence was complete");
        assert_extractive_fallback(&answer, warning);
    }

    // A stream with no text at all is as malformed as an empty completion.
    let endpoint = Scripted::start(|_| Reply::stream(&[])).await;
    let (sentences, answer) =
        sentences_and_answer(stream_events(&generator(&endpoint.base_url), QUESTION).await);
    assert!(sentences.is_empty());
    assert_extractive_fallback(&answer, "読み取れ");
}

#[tokio::test]
async fn an_unreachable_endpoint_falls_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    let generator = generator(&format!("http://{address}/v1"));
    assert_extractive_fallback(&answer(&generator, QUESTION).await, "接続");
    let (_, streamed) = sentences_and_answer(stream_events(&generator, QUESTION).await);
    assert_extractive_fallback(&streamed, "接続");
}

#[tokio::test]
async fn a_model_that_does_not_answer_in_time_is_abandoned() {
    let endpoint = Scripted::start(|_| {
        Reply::Slow(
            Duration::from_secs(5),
            "研修は年2回開催した[1]。".to_owned(),
        )
    })
    .await;
    let generator = generator(&endpoint.base_url);
    // Streamed: at the first-token timeout (500 ms). Whole: at the overall timeout (1500 ms),
    // since a whole answer's headers come only once it is complete.
    for (streamed, expected_ms) in [(true, 500), (false, 1500)] {
        let started = Instant::now();
        let answer = if streamed {
            sentences_and_answer(stream_events(&generator, QUESTION).await).1
        } else {
            answer(&generator, QUESTION).await
        };
        let elapsed = started.elapsed();
        assert_extractive_fallback(&answer, "時間内");
        let expected = Duration::from_millis(expected_ms);
        assert!(
            elapsed >= expected - Duration::from_millis(50)
                && elapsed < expected + Duration::from_millis(900),
            "streamed {streamed}: gave up after {elapsed:?}, expected {expected:?}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_never_ends_is_abandoned_at_the_timeout() {
    let endpoint = Scripted::start(|_| Reply::Stream {
        deltas: vec!["オンライン".to_owned(), "よろず相談は".to_owned()],
        delay: Duration::from_millis(5),
        end: StreamEnd::Hang,
    })
    .await;
    let started = Instant::now();
    let events = stream_events(&generator(&endpoint.base_url), QUESTION).await;
    let elapsed = started.elapsed();
    let (sentences, answer) = sentences_and_answer(events);
    assert!(sentences.is_empty());
    assert_extractive_fallback(&answer, "時間内");
    assert!(
        elapsed >= Duration::from_millis(1450) && elapsed < Duration::from_millis(3000),
        "gave up after {elapsed:?}, expected the 1500 ms timeout"
    );
    assert!(
        endpoint
            .wait_for_early_closes(1, Duration::from_secs(5))
            .await,
        "the abandoned stream's connection stays open"
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection_to_the_model() {
    let deltas: Vec<String> = (0..200).map(|index| format!("文{index}。")).collect();
    let endpoint = Scripted::start(move |_| Reply::Stream {
        deltas: deltas.clone(),
        delay: Duration::from_millis(20),
        end: StreamEnd::Done,
    })
    .await;
    let generator = generator(&endpoint.base_url);
    let mut stream = Box::pin(generator.answer_stream(
        QUESTION.to_owned(),
        passages(),
        assessment(QUESTION),
        ANSWER_CONFIG,
    ));
    assert!(matches!(stream.next().await, Some(AskEvent::Passages(_))));
    assert!(matches!(stream.next().await, Some(AskEvent::Generating)));
    assert_eq!(endpoint.early_closes(), 0);
    drop(stream);
    assert!(
        endpoint
            .wait_for_early_closes(1, Duration::from_secs(5))
            .await,
        "the endpoint never saw the connection close"
    );
}

#[tokio::test]
async fn weak_evidence_is_not_found_without_asking_the_model() {
    let endpoint = Scripted::start(|_| Reply::Completion("答え[1]。".to_owned())).await;
    let generator = generator(&endpoint.base_url);
    let answer = answer(&generator, UNRELATED_QUESTION).await;
    assert!(!answer.found);
    let (_, streamed) = sentences_and_answer(stream_events(&generator, UNRELATED_QUESTION).await);
    assert!(!streamed.found);
    assert!(endpoint.received().is_empty());
    assert_eq!(json!(answer.warnings), json!([]));
}
