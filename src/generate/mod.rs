//! Generated answers with verified citations.
//!
//! With `[llm]` configured, an answer is written by an OpenAI-compatible chat model
//! ([`client`]) from the caller's retrieved passages, given to it as numbered, quoted data
//! ([`prompt`]); then every sentence is checked against the passages it cites ([`verify`])
//! before the answer is returned. The model sees only the passages retrieval found inside the
//! caller's scope, so it cannot reveal anything else, whatever a document tells it to do.
//!
//! Trade-offs:
//! - When the passages do not answer the question (`crate::answer::answerability`), the
//!   model is not asked: the answer is "not found", as without a model. A small model tends to
//!   answer anyway from loosely related passages.
//! - Any failure of the model (unreachable, an HTTP error, too slow, unreadable output) gives
//!   the extractive answer, with a warning in the response and in the log: never an error.
//! - Streamed text deltas are the model's raw words; only the final event is verified.

mod client;
mod prompt;
mod synthesis;
mod verify;

pub use client::{ChatClient, ChatMessage, ChatRole, Completion, CompletionStream, LlmError};
pub use prompt::{PromptError, Prompts};
pub use synthesis::{GroupEvidence, Synthesis, SynthesisCitation};
pub use verify::{
    Action, CheckedSentence, UNSUPPORTED_MARK, Verdict, Verification, Verified, verify,
};

use std::sync::Arc;
use std::time::Instant;

use futures_util::Stream;
use tracing::Instrument;

use crate::answer::answerability::Assessment;
use crate::answer::{Answer, AnswerMode, extractive_answer, not_found};
use crate::config::{AnswerConfig, LlmConfig, UnsupportedPolicy};
use crate::store::ScoredChunk;

/// Answers by mode (`generated`, `extractive`).
pub const ANSWERS_METRIC: &str = "hikitsugi_answers_total";
/// Generations that fell back to the extractive answer, by reason.
pub const FALLBACKS_METRIC: &str = "hikitsugi_llm_fallbacks_total";
/// Streamed generations cancelled because the caller went away.
pub const CANCELLED_METRIC: &str = "hikitsugi_llm_cancelled_total";
/// Generated sentences no passage supported (dropped or marked).
pub const UNSUPPORTED_METRIC: &str = "hikitsugi_llm_unsupported_sentences_total";

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Client(#[from] LlmError),
}

/// One event of a streamed answer.
#[derive(Debug, Clone)]
pub enum AskEvent {
    /// The passages, numbered from 1 as the model sees them (and as the deltas' `[n]` mean).
    Passages(Vec<ScoredChunk>),
    /// The model has started writing (once, at its first token); carries no text.
    Generating,
    /// One more sentence of the answer, verified against the passages: its text and its
    /// citation numbers, numbered as the final answer numbers them.
    Sentence { text: String, citations: Vec<usize> },
    /// The verified answer (or the extractive one); always the last event.
    Answer(Answer),
}

/// The configured model, prompts and verification settings.
#[derive(Debug)]
pub struct Generator {
    client: ChatClient,
    prompts: Prompts,
    config: LlmConfig,
}

impl Generator {
    /// The generator of `config`, or `None` when no model is configured. Loads and checks the
    /// prompt templates.
    pub fn from_config(config: &LlmConfig) -> Result<Option<Self>, GenerateError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        Ok(Some(Self {
            client: ChatClient::new(config)?,
            prompts: Prompts::configured(config.prompts_dir.as_deref())?,
            config: config.clone(),
        }))
    }

    /// A generated, verified answer to `question` from `passages` (best first); the extractive
    /// answer when the evidence is too weak or the model fails.
    pub async fn answer(
        &self,
        question: &str,
        passages: Vec<ScoredChunk>,
        assessment: &Assessment,
        answer_config: &AnswerConfig,
    ) -> Answer {
        let extractive = extractive_answer(question, passages.clone(), assessment, answer_config);
        if !extractive.found {
            return extractive;
        }
        let passages = self.given(passages);
        let messages = self.prompts.messages(question, &passages);
        let started = Instant::now();
        let completion = self.client.complete(&messages).await;
        match completion {
            Ok(completion) if !completion.text.trim().is_empty() => {
                tracing::info!(
                    model = self.client.model(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    finish_reason = completion.finish_reason.as_deref().unwrap_or("-"),
                    "answer generated"
                );
                self.verified(&completion.text, passages, extractive.assessment)
            }
            Ok(_) => fallback(extractive, &empty_answer()),
            Err(error) => fallback(extractive, &error),
        }
    }

    /// The streamed form of [`Generator::answer`]: the passages, the model's text deltas, then
    /// the verified answer. Dropping the stream cancels the generation.
    pub fn answer_stream(
        self: Arc<Self>,
        question: String,
        passages: Vec<ScoredChunk>,
        assessment: Assessment,
        answer_config: AnswerConfig,
    ) -> impl Stream<Item = AskEvent> + Send + 'static {
        let span = tracing::Span::current();
        let extractive =
            extractive_answer(&question, passages.clone(), &assessment, &answer_config);
        let passages = self.given(passages);
        let state = StreamState {
            generator: self,
            question,
            passages,
            extractive,
            step: Step::Begin,
            raw: String::new(),
            started: Instant::now(),
            generating: false,
            sent_sentences: 0,
            queued: std::collections::VecDeque::new(),
        };
        futures_util::stream::unfold(state, move |mut state| {
            let span = span.clone();
            async move {
                let event = state.advance().await?;
                Some((event, state))
            }
            .instrument(span)
        })
    }

    /// The passages the model is given: the best `llm.max_passages`.
    fn given(&self, mut passages: Vec<ScoredChunk>) -> Vec<ScoredChunk> {
        passages.truncate(self.config.max_passages);
        passages
    }

    fn verified(&self, raw: &str, passages: Vec<ScoredChunk>, assessment: Assessment) -> Answer {
        let verified = verify(
            raw,
            &passages,
            self.config.min_support,
            self.config.unsupported,
        );
        let verification = verified.verification;
        let unsupported = verification.unsupported();
        tracing::info!(
            sentences = verification.sentences.len(),
            unsupported,
            invalid_markers = verification.invalid_markers.len(),
            found = !verified.cited.is_empty(),
            "generated answer verified"
        );
        let mut warnings = Vec::new();
        if unsupported > 0 {
            metrics::counter!(UNSUPPORTED_METRIC).increment(unsupported as u64);
            warnings.push(match self.config.unsupported {
                UnsupportedPolicy::Drop => {
                    format!("資料で根拠を確認できなかった{unsupported}文を回答から除きました。")
                }
                UnsupportedPolicy::Mark => format!(
                    "資料で根拠を確認できなかった{unsupported}文に「{UNSUPPORTED_MARK}」を付けました。"
                ),
            });
        }
        let (found, text, citations) = if verified.cited.is_empty() {
            let not_found = not_found(passages, assessment.clone());
            (false, not_found.text, not_found.citations)
        } else {
            // The cited passages, in the order of their new numbers.
            let mut slots: Vec<Option<ScoredChunk>> = passages.into_iter().map(Some).collect();
            let citations = verified
                .cited
                .iter()
                .filter_map(|&index| slots.get_mut(index).and_then(Option::take))
                .collect();
            (true, verified.text, citations)
        };
        Answer {
            found,
            text,
            citations,
            assessment,
            mode: AnswerMode::Generated,
            verification: Some(verification),
            warnings,
        }
    }
}

/// Counts an answer by mode; call once per answer returned.
pub fn record_answer(answer: &Answer) {
    let mode = match answer.mode {
        AnswerMode::Generated => "generated",
        AnswerMode::Extractive => "extractive",
    };
    metrics::counter!(ANSWERS_METRIC, "mode" => mode).increment(1);
}

fn empty_answer() -> LlmError {
    LlmError::Malformed {
        reason: "the model returned no text".to_owned(),
    }
}

/// The extractive answer in place of a failed generation, with the reason in the log, the
/// metrics and (in Japanese) the response.
fn fallback(mut extractive: Answer, error: &LlmError) -> Answer {
    let (reason, warning) = match error {
        LlmError::Unreachable { .. } | LlmError::Build { .. } => (
            "unreachable",
            "回答生成モデルに接続できなかったため、資料から抜き出した文で回答しています。",
        ),
        LlmError::Timeout { .. } => (
            "timeout",
            "回答生成モデルの応答が時間内に終わらなかったため、資料から抜き出した文で回答しています。",
        ),
        LlmError::Status { .. } | LlmError::Upstream { .. } => (
            "error",
            "回答生成モデルがエラーを返したため、資料から抜き出した文で回答しています。",
        ),
        LlmError::Interrupted { .. } => (
            "interrupted",
            "回答生成モデルの応答が途中で途切れたため、資料から抜き出した文で回答しています。",
        ),
        LlmError::Malformed { .. } => (
            "malformed",
            "回答生成モデルの出力を読み取れなかったため、資料から抜き出した文で回答しています。",
        ),
    };
    tracing::warn!(reason, %error, "generation failed; answering extractively");
    metrics::counter!(FALLBACKS_METRIC, "reason" => reason).increment(1);
    extractive.mode = AnswerMode::Extractive;
    extractive.warnings.push(warning.to_owned());
    extractive
}

enum Step {
    Begin,
    Connect,
    Streaming(CompletionStream),
    Finished,
}

struct StreamState {
    generator: Arc<Generator>,
    question: String,
    /// What the model is given.
    passages: Vec<ScoredChunk>,
    /// The answer without the model, from every retrieved passage: the fallback.
    extractive: Answer,
    step: Step,
    raw: String,
    started: Instant,
    /// Between asking the model and the final event: dropping the state then cancels.
    generating: bool,
    /// Verified sentences already sent.
    sent_sentences: usize,
    /// Events found but not yet returned.
    queued: std::collections::VecDeque<AskEvent>,
}

impl StreamState {
    async fn advance(&mut self) -> Option<AskEvent> {
        if let Some(event) = self.queued.pop_front() {
            return Some(event);
        }
        match std::mem::replace(&mut self.step, Step::Finished) {
            Step::Begin => {
                self.step = Step::Connect;
                Some(AskEvent::Passages(self.passages.clone()))
            }
            Step::Connect => {
                let extractive = self.extractive();
                if !extractive.found {
                    return Some(self.finish(extractive));
                }
                let messages = self
                    .generator
                    .prompts
                    .messages(&self.question, &self.passages);
                self.generating = true;
                match self.generator.client.stream(&messages).await {
                    Ok(stream) => self.next_delta(stream).await,
                    Err(error) => Some(self.finish(fallback(extractive, &error))),
                }
            }
            Step::Streaming(stream) => self.next_delta(stream).await,
            Step::Finished => None,
        }
    }

    /// Reads the model's text until there is something to send: the first-token event, a newly
    /// verified sentence, or the final answer.
    async fn next_delta(&mut self, mut stream: CompletionStream) -> Option<AskEvent> {
        loop {
            match stream.next_delta().await {
                Ok(Some(delta)) => {
                    let first = self.raw.is_empty();
                    self.raw.push_str(&delta);
                    self.queue_verified_sentences();
                    if first {
                        tracing::info!(
                            elapsed_ms = self.started.elapsed().as_millis() as u64,
                            "first token"
                        );
                        self.queued.push_front(AskEvent::Generating);
                    }
                    if let Some(event) = self.queued.pop_front() {
                        self.step = Step::Streaming(stream);
                        return Some(event);
                    }
                }
                Ok(None) => return self.end(stream, Ok(())),
                Err(error) => return self.end(stream, Err(error)),
            }
        }
    }

    /// Verifies the complete sentences of the text so far and queues those not sent yet that
    /// verification keeps. A sentence is complete once text follows its end and its markers.
    fn queue_verified_sentences(&mut self) {
        let Some(complete) = complete_sentences(&self.raw) else {
            return;
        };
        let config = &self.generator.config;
        let verified = verify(
            complete,
            &self.passages,
            config.min_support,
            config.unsupported,
        );
        let kept: Vec<CheckedSentence> = verified
            .verification
            .sentences
            .into_iter()
            .filter(|sentence| sentence.action != Action::Dropped)
            .collect();
        for sentence in kept.into_iter().skip(self.sent_sentences) {
            self.sent_sentences += 1;
            let text = match sentence.action {
                Action::Marked => format!("{}{UNSUPPORTED_MARK}", sentence.text),
                _ => sentence.text,
            };
            self.queued.push_back(AskEvent::Sentence {
                text,
                citations: sentence.citations,
            });
        }
    }

    fn end(&mut self, stream: CompletionStream, ended: Result<(), LlmError>) -> Option<AskEvent> {
        match ended {
            Ok(()) if self.raw.trim().is_empty() => {
                let answer = fallback(self.extractive(), &empty_answer());
                Some(self.finish(answer))
            }
            Ok(()) => {
                tracing::info!(
                    model = self.generator.client.model(),
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    finish_reason = stream.finish_reason().unwrap_or("-"),
                    "answer generated"
                );
                let extractive = self.extractive();
                let answer = self.generator.verified(
                    &self.raw,
                    std::mem::take(&mut self.passages),
                    extractive.assessment,
                );
                Some(self.finish(answer))
            }
            Err(error) => {
                let answer = fallback(self.extractive(), &error);
                Some(self.finish(answer))
            }
        }
    }

    fn extractive(&self) -> Answer {
        self.extractive.clone()
    }

    fn finish(&mut self, answer: Answer) -> AskEvent {
        self.step = Step::Finished;
        self.generating = false;
        record_answer(&answer);
        AskEvent::Answer(answer)
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if self.generating {
            tracing::info!("the caller went away; generation cancelled");
            metrics::counter!(CANCELLED_METRIC).increment(1);
        }
    }
}

/// The part of `raw` made of complete sentences: up to the last sentence end (。！？!? or a
/// line break) that is followed, after its citation markers, by more text. `None` before the
/// first such end.
fn complete_sentences(raw: &str) -> Option<&str> {
    let mut complete = None;
    let mut ended_at: Option<usize> = None;
    let mut in_marker = false;
    for (index, character) in raw.char_indices() {
        match ended_at {
            Some(_) if character == '[' || character == '［' => in_marker = true,
            Some(_) if in_marker => in_marker = !(character == ']' || character == '］'),
            Some(_) if character.is_whitespace() && character != '\n' => {}
            Some(_) => {
                complete = Some(index);
                ended_at = None;
            }
            None => {}
        }
        if matches!(character, '。' | '！' | '？' | '!' | '?' | '\n') {
            ended_at = Some(index);
            in_marker = false;
        }
    }
    complete.map(|end| &raw[..end])
}
