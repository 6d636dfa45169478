//! A scripted OpenAI-compatible endpoint: `POST /v1/chat/completions` answers whatever the
//! test's script says for each request, records every request it received, and notices when a
//! client closes a streamed response before its end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the endpoint does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A `chat.completion` whose message content is this text.
    Completion(String),
    /// A streamed answer: these text deltas, `delay` apart, then how the stream ends. A request
    /// without `stream: true` gets them as one completion.
    Stream {
        deltas: Vec<String>,
        delay: Duration,
        end: StreamEnd,
    },
    /// This status and body.
    Status(u16, String),
    /// A 200 response with this body, as is.
    Raw(&'static str, String),
    /// Nothing (no headers) for this long, then a completion.
    Slow(Duration, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `finish_reason: "stop"`, then `data: [DONE]`.
    Done,
    /// The connection closes without a finish reason.
    Cut,
    /// The stream stays open and silent.
    Hang,
    /// A chunk that is not JSON.
    Garbage,
    /// An OpenAI error object in the stream.
    Error,
}

impl Reply {
    pub fn stream(deltas: &[&str]) -> Self {
        Self::Stream {
            deltas: deltas.iter().map(|delta| (*delta).to_owned()).collect(),
            delay: Duration::from_millis(5),
            end: StreamEnd::Done,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub authorization: Option<String>,
}

impl Received {
    /// The messages' contents, joined: everything the model was shown.
    pub fn prompt_text(&self) -> String {
        self.body["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(|message| message["content"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    pub fn message(&self, role: &str) -> String {
        self.body["messages"]
            .as_array()
            .and_then(|messages| messages.iter().find(|message| message["role"] == role))
            .and_then(|message| message["content"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

type Script = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

#[derive(Clone)]
struct EndpointState {
    script: Script,
    received: Arc<Mutex<Vec<Received>>>,
    closed_early: Arc<watch::Sender<usize>>,
}

/// A running scripted endpoint.
pub struct Scripted {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    closed_early: watch::Receiver<usize>,
}

impl Scripted {
    /// Serves `script` on a free port of this test's runtime.
    pub async fn start(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let (closed_sender, closed_early) = watch::channel(0);
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = EndpointState {
            script: Arc::new(script),
            received: received.clone(),
            closed_early: Arc::new(closed_sender),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the scripted endpoint serves");
        });
        Self {
            base_url: format!("http://{address}/v1"),
            received,
            closed_early,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// Waits until a client has closed `count` streamed responses before their end.
    pub async fn wait_for_early_closes(&self, count: usize, within: Duration) -> bool {
        let mut closed = self.closed_early.clone();
        tokio::time::timeout(within, closed.wait_for(|closed| *closed >= count))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    pub fn early_closes(&self) -> usize {
        *self.closed_early.borrow()
    }
}

async fn chat_completions(
    State(state): State<EndpointState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let received = Received {
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    state
        .received
        .lock()
        .expect("not poisoned")
        .push(received.clone());
    let streaming = received.body["stream"] == true;
    match (state.script)(&received) {
        Reply::Stream { deltas, .. } if !streaming => completion(&deltas.concat()).into_response(),
        Reply::Completion(text) => completion(&text).into_response(),
        Reply::Slow(delay, text) => {
            tokio::time::sleep(delay).await;
            completion(&text).into_response()
        }
        Reply::Status(status, body) => (
            StatusCode::from_u16(status).expect("a status"),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Reply::Raw(content_type, body) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Reply::Stream { deltas, delay, end } => {
            let guard = CloseGuard {
                finished: false,
                closed_early: state.closed_early.clone(),
            };
            let events = sse_events(&deltas, end);
            let body = futures_util::stream::unfold(
                (events.into_iter(), guard, end),
                move |(mut events, mut guard, end)| async move {
                    tokio::time::sleep(delay).await;
                    match events.next() {
                        Some(event) => Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (events, guard, end),
                        )),
                        None if end == StreamEnd::Hang => {
                            std::future::pending::<()>().await;
                            None
                        }
                        None => {
                            guard.finish();
                            None
                        }
                    }
                },
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(body))
                .expect("a response")
        }
    }
}

fn completion(text: &str) -> axum::Json<Value> {
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop"
        }]
    }))
}

fn chunk(delta: Value, finish_reason: Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "scripted",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }]
    });
    format!("data: {chunk}\n\n")
}

fn sse_events(deltas: &[String], end: StreamEnd) -> Vec<String> {
    let mut events = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    events.extend(
        deltas
            .iter()
            .map(|delta| chunk(json!({ "content": delta }), Value::Null)),
    );
    match end {
        StreamEnd::Done => {
            events.push(chunk(json!({}), json!("stop")));
            events.push("data: [DONE]\n\n".to_owned());
        }
        StreamEnd::Cut | StreamEnd::Hang => {}
        StreamEnd::Garbage => events.push("data: {\"choices\": [{\"delta\": \n\n".to_owned()),
        StreamEnd::Error => events.push(
            "data: {\"error\": {\"message\": \"the model crashed\", \"code\": 500}}\n\n".to_owned(),
        ),
    }
    events
}

/// Counts a streamed response the client closed before its end.
struct CloseGuard {
    finished: bool,
    closed_early: Arc<watch::Sender<usize>>,
}

impl CloseGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.closed_early.send_modify(|closed| *closed += 1);
        }
    }
}
