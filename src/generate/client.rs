//! A client for the OpenAI-compatible Chat Completions API (`POST {base_url}/chat/completions`),
//! which vLLM, Ollama, llama.cpp's server and the cloud providers all speak: one request, the
//! answer either whole or streamed as server-sent events of `chat.completion.chunk` objects.
//!
//! Timeouts are the client's own, so that each failure has a name: when streaming,
//! `first_token_timeout` runs from sending the request to the first text delta; `timeout`
//! bounds the whole generation (and is the only one for a whole answer, whose headers come only
//! once it is complete). Dropping a [`CompletionStream`] drops the HTTP
//! response, which closes the connection: that is how a disconnected caller cancels generation.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{ApiKey, LlmConfig};

/// Longest error body kept from the endpoint, for the log.
const MAX_ERROR_BODY_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the HTTP client cannot be built: {source}")]
    Build { source: reqwest::Error },
    #[error("the endpoint is unreachable: {source}")]
    Unreachable { source: reqwest::Error },
    #[error("no {stage} within {after_ms} ms")]
    Timeout { stage: TimeoutStage, after_ms: u64 },
    #[error("the endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the endpoint reported an error: {message}")]
    Upstream { message: String },
    #[error("the response is malformed: {reason}")]
    Malformed { reason: String },
    #[error("the response stream broke off: {reason}")]
    Interrupted { reason: String },
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    FirstToken,
    Completion,
}

impl std::fmt::Display for TimeoutStage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            TimeoutStage::FirstToken => "first token",
            TimeoutStage::Completion => "complete answer",
        })
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
}

impl ChatMessage {
    pub fn system(content: String) -> Self {
        Self {
            role: ChatRole::System,
            content,
        }
    }

    pub fn user(content: String) -> Self {
        Self {
            role: ChatRole::User,
            content,
        }
    }
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    choices: Vec<ResponseChoice>,
}

#[derive(Debug, Deserialize)]
struct ResponseChoice {
    message: ResponseMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkDelta {
    content: Option<String>,
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// `stop`, `length`, … as the endpoint said.
    pub finish_reason: Option<String>,
}

/// The Chat Completions client of one configured endpoint and model.
#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<ApiKey>,
    max_tokens: u32,
    temperature: f32,
    timeout: Duration,
    first_token_timeout: Duration,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChatClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    /// The client of `config` (whose `base_url` must be set; see [`LlmConfig::is_enabled`]).
    pub fn new(config: &LlmConfig) -> Result<Self, LlmError> {
        let base_url = config.base_url.as_deref().unwrap_or_default();
        let first_token_timeout = Duration::from_millis(config.first_token_timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(first_token_timeout)
            .build()
            .map_err(|source| LlmError::Build { source })?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: config.model.clone(),
            api_key: config.resolved_api_key(),
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            timeout: Duration::from_millis(config.timeout_ms),
            first_token_timeout,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sends the request; the response once its headers arrived with a success status.
    async fn send(
        &self,
        messages: &[ChatMessage],
        stream: bool,
        deadlines: &Deadlines,
    ) -> Result<reqwest::Response, LlmError> {
        let body = ChatRequest {
            model: &self.model,
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            stream,
        };
        let mut request = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        // A whole (non-streamed) answer has its headers only once it is complete, so only the
        // overall deadline applies to it.
        let sent = if stream {
            deadlines.before_first_token(request.send()).await?
        } else {
            deadlines.before_end(request.send()).await?
        };
        let response = sent.map_err(|source| LlmError::Unreachable { source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The error body is for the log only; an endpoint that never finishes it is cut short.
        let body = deadlines
            .before_end(response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(LlmError::Status {
            status: status.as_u16(),
            body: body.chars().take(MAX_ERROR_BODY_CHARS).collect(),
        })
    }

    /// The whole answer in one response (`stream: false`).
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, LlmError> {
        let deadlines = Deadlines::start(self.first_token_timeout, self.timeout);
        let response = self.send(messages, false, &deadlines).await?;
        let bytes = deadlines
            .before_end(response.bytes())
            .await?
            .map_err(|error| LlmError::Interrupted {
                reason: error.to_string(),
            })?;
        let parsed: ChatResponse =
            serde_json::from_slice(&bytes).map_err(|error| LlmError::Malformed {
                reason: format!("not a chat completion: {error}"),
            })?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Malformed {
                reason: "no choices".to_owned(),
            })?;
        Ok(Completion {
            text: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason,
        })
    }

    /// The answer as it is generated (`stream: true`).
    pub async fn stream(&self, messages: &[ChatMessage]) -> Result<CompletionStream, LlmError> {
        let deadlines = Deadlines::start(self.first_token_timeout, self.timeout);
        let response = self.send(messages, true, &deadlines).await?;
        let events: BoxedEvents = Box::pin(response.bytes_stream().eventsource());
        Ok(CompletionStream {
            events,
            deadlines,
            received_text: false,
            finish_reason: None,
            finished: false,
        })
    }
}

type BoxedEvents = std::pin::Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// Both deadlines of one request, from when it was sent.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    first_token: Instant,
    end: Instant,
    first_token_timeout: Duration,
    timeout: Duration,
}

impl Deadlines {
    fn start(first_token_timeout: Duration, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            first_token: now + first_token_timeout.min(timeout),
            end: now + timeout,
            first_token_timeout,
            timeout,
        }
    }

    async fn before_first_token<T>(&self, work: impl Future<Output = T>) -> Result<T, LlmError> {
        let stage = if self.first_token < self.end {
            TimeoutStage::FirstToken
        } else {
            TimeoutStage::Completion
        };
        tokio::time::timeout_at(self.first_token, work)
            .await
            .map_err(|_| LlmError::Timeout {
                stage,
                after_ms: match stage {
                    TimeoutStage::FirstToken => self.first_token_timeout.as_millis() as u64,
                    TimeoutStage::Completion => self.timeout.as_millis() as u64,
                },
            })
    }

    async fn before_end<T>(&self, work: impl Future<Output = T>) -> Result<T, LlmError> {
        tokio::time::timeout_at(self.end, work)
            .await
            .map_err(|_| LlmError::Timeout {
                stage: TimeoutStage::Completion,
                after_ms: self.timeout.as_millis() as u64,
            })
    }
}

/// Text deltas of a streamed answer. Dropping it closes the connection to the endpoint.
pub struct CompletionStream {
    events: BoxedEvents,
    deadlines: Deadlines,
    received_text: bool,
    finish_reason: Option<String>,
    finished: bool,
}

impl std::fmt::Debug for CompletionStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CompletionStream")
            .field("received_text", &self.received_text)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CompletionStream {
    /// The next non-empty text delta; `None` once the endpoint said the answer is complete.
    pub async fn next_delta(&mut self) -> Result<Option<String>, LlmError> {
        while !self.finished {
            let event = if self.received_text {
                self.deadlines.before_end(self.events.next()).await?
            } else {
                self.deadlines
                    .before_first_token(self.events.next())
                    .await?
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    return Err(LlmError::Interrupted {
                        reason: error.to_string(),
                    });
                }
                // Servers end with `data: [DONE]`; a stream that just stops after a finish
                // reason is complete too, one that stops before it broke off.
                None if self.finish_reason.is_some() => {
                    self.finished = true;
                    break;
                }
                None => {
                    return Err(LlmError::Interrupted {
                        reason: "the stream ended before the answer was complete".to_owned(),
                    });
                }
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                self.finished = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: ChatChunk =
                serde_json::from_str(data).map_err(|error| LlmError::Malformed {
                    reason: format!("not a chat completion chunk: {error}"),
                })?;
            if let Some(error) = chunk.error {
                return Err(LlmError::Upstream {
                    message: error_message(&error),
                });
            }
            let mut text = String::new();
            for choice in chunk.choices {
                if let Some(content) = choice.delta.content {
                    text.push_str(&content);
                }
                if choice.finish_reason.is_some() {
                    self.finish_reason = choice.finish_reason;
                }
            }
            if !text.is_empty() {
                self.received_text = true;
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// The finish reason the endpoint gave, once it gave one.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }
}

/// The `message` of an OpenAI-style error object, else the object itself.
fn error_message(error: &serde_json::Value) -> String {
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    message.chars().take(MAX_ERROR_BODY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_the_chat_completions_format() {
        let messages = [
            ChatMessage::system("規則".to_owned()),
            ChatMessage::user("質問".to_owned()),
        ];
        let request = ChatRequest {
            model: "qwen",
            messages: &messages,
            max_tokens: 64,
            temperature: 0.0,
            stream: true,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "model": "qwen",
                "messages": [
                    { "role": "system", "content": "規則" },
                    { "role": "user", "content": "質問" }
                ],
                "max_tokens": 64,
                "temperature": 0.0,
                "stream": true
            })
        );
    }

    #[test]
    fn the_endpoint_is_the_base_url_plus_chat_completions() {
        let config = LlmConfig {
            base_url: Some("http://127.0.0.1:9/v1/".to_owned()),
            model: "m".to_owned(),
            ..LlmConfig::default()
        };
        let client = ChatClient::new(&config).unwrap();
        assert_eq!(client.endpoint, "http://127.0.0.1:9/v1/chat/completions");
        assert!(!format!("{client:?}").contains("api_key"));
    }

    #[test]
    fn error_objects_give_their_message() {
        assert_eq!(
            error_message(&serde_json::json!({ "message": "context too long", "code": 400 })),
            "context too long"
        );
        assert_eq!(error_message(&serde_json::json!("boom")), "\"boom\"");
    }
}
